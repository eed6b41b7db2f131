import { configDefaults, defineConfig } from 'vitest/config';
import { postgresImageSkipReason } from './test/helpers/postgres_container.ts';

/**
 * Tests that stop the server (pg_ctl stop -m immediate). They run as a
 * project of their own, and since every project runs the global setup, they
 * get a PostgreSQL server of their own: crashing it never takes the server
 * away from the other test files, which keep running in parallel.
 */
const CRASH_TESTS = 'test/integration/crash_*.test.ts';

/**
 * AUDIT_TRAIL_PG_IMAGE=postgres:16 runs the suite on that image in a container
 * (test/helpers/postgres_container.ts). Where no container engine answers
 * there is no server to run it on: the run is narrowed to the one test that
 * checks the server's version, which is skipped naming the reason, and
 * exits 0. Unset (the default), nothing here changes the run.
 */
const PG_IMAGE_TEST = 'test/integration/suite_runs_on_the_requested_postgres_image.test.ts';
const pgImageSkip = await postgresImageSkipReason();
// vitest evaluates this file more than once per run; say it once.
const NOTED = Symbol.for('pg-audit-trail.pg-image-skip-noted');
if (pgImageSkip !== null && !(globalThis as Record<symbol, unknown>)[NOTED]) {
  (globalThis as Record<symbol, unknown>)[NOTED] = true;
  console.warn(`[test server] SKIPPED: ${pgImageSkip}. Only ${PG_IMAGE_TEST} is collected (and skipped).`);
}

export default defineConfig({
  test: {
    // Separate processes: pg clients and any process-level state stay per file.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    ...(pgImageSkip !== null ? { passWithNoTests: true } : {}),
    projects: pgImageSkip !== null ? [{ extends: true, test: { name: 'suite', include: [PG_IMAGE_TEST] } }] : [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, CRASH_TESTS],
          // One PostgreSQL server per run; see test/helpers/server.ts.
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'crash',
          include: [CRASH_TESTS],
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
