import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL server per run; see test/helpers/server.ts.
    globalSetup: ['test/helpers/global-setup.ts'],
    // Separate processes: pg clients and any process-level state stay per file.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
