import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Tests that stop the server (pg_ctl stop -m immediate). They run as a
 * project of their own, and since every project runs the global setup, they
 * get a PostgreSQL server of their own: crashing it never takes the server
 * away from the other test files, which keep running in parallel.
 */
const CRASH_TESTS = 'test/integration/crash_*.test.ts';

export default defineConfig({
  test: {
    // Separate processes: pg clients and any process-level state stay per file.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    projects: [
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
