import pg from 'pg';
import { ConnectionConfigError, DatabaseError, NotUtf8Error } from '../errors.ts';

/** Where to connect. `databaseUrl` wins over the DATABASE_URL environment variable. */
export interface ConnectionOptions {
  /** A postgres:// (or postgresql://) connection URL; default: process.env.DATABASE_URL. */
  databaseUrl?: string | undefined;
}

/** Resolves the connection string or explains how to give one. */
export function resolveDatabaseUrl(options: ConnectionOptions = {}, env: NodeJS.ProcessEnv = process.env): string {
  const url = options.databaseUrl ?? env['DATABASE_URL'];
  if (url === undefined || url.trim() === '') {
    throw new ConnectionConfigError(`no database to connect to: ${url === undefined ? 'neither --database-url nor DATABASE_URL is set' : 'the connection string is blank'}`, {
      hint: 'Pass --database-url postgres://user@host:5432/dbname or export DATABASE_URL.',
    });
  }
  NotUtf8Error.refuseIn(options.databaseUrl === undefined ? 'DATABASE_URL' : 'the connection string', url,
    'Give the connection string in UTF-8, and percent-encode any byte outside ASCII in the password (%C3%BC for ü).');
  // libpq's key=value form (host=... dbname=...) would be read as a URL path and connect somewhere else.
  if (!/^postgres(ql)?:\/\//i.test(url.trim())) {
    throw new ConnectionConfigError('the connection string is not a postgres:// URL', {
      hint: 'Write it as postgres://user:password@host:5432/dbname (key=value strings such as "host=... dbname=..." are not supported); percent-encode @ # / : in the password.',
    });
  }
  return url;
}

/** How long to wait for a server to accept and answer a new connection. */
const CONNECT_TIMEOUT_MS = 30_000;

// Every connection says who it is, so the audit trail's db_identity and
// pg_stat_activity name this tool.
const applicationName = 'audit-trail';

/** Opens one client; the caller ends it. */
export async function connectClient(options: ConnectionOptions = {}): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: resolveDatabaseUrl(options),
    application_name: applicationName,
    // A server that accepts the connection and never answers must not hang a cron job.
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  // A connection the server ends (a terminated backend, a restart) fails the
  // query in progress, which reports it; without a listener the 'error' event
  // would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw DatabaseError.fromPg(err);
  }
  return client;
}

/** Creates a pool; the caller ends it. */
export function createPool(options: ConnectionOptions & { max?: number } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: resolveDatabaseUrl(options),
    application_name: applicationName,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    max: options.max ?? 4,
  });
  // An idle client that loses its server must not crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/** Runs `fn` with a fresh client and always ends it; pg errors become DatabaseError. */
export async function withClient<T>(options: ConnectionOptions, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectClient(options);
  try {
    return await fn(client);
  } catch (err) {
    throw DatabaseError.fromPg(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}
