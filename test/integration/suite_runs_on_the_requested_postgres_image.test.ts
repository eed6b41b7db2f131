/**
 * `AUDIT_TRAIL_PG_IMAGE=postgres:16 npm test` runs the suite on that image in
 * a container (test/helpers/postgres_container.ts); this test proves the run
 * is on the major version asked for. Skipped, with the reason, when the
 * variable is unset (the default run) and when no container engine is
 * reachable (then vitest.config.ts collects this file alone).
 */
import { describe, expect, inject, it } from 'vitest';
import { withSuperuser } from '../helpers/context.ts';
import { PG_IMAGE_VARIABLE, postgresImageSkipReason, requestedPostgresImage } from '../helpers/postgres_container.ts';

const image = requestedPostgresImage();
const skip = image === undefined ? `${PG_IMAGE_VARIABLE} is unset, the suite runs on the default server` : await postgresImageSkipReason();
if (image !== undefined && skip !== null) {
  console.warn(
    `[postgres image] SKIPPED: ${skip}. Where Docker (or a compatible engine) runs: ${PG_IMAGE_VARIABLE}=${image} npm test`,
  );
}

describe('the suite runs on the PostgreSQL image asked for', () => {
  it(`the server's major version is the image tag's (${image ?? 'no image asked for'})`, async (ctx) => {
    if (skip !== null || image === undefined) return ctx.skip(skip ?? undefined);
    const version = await withSuperuser(inject('pgSuperuserUrl'), async (c) => (await c.query<{ v: string }>("select current_setting('server_version_num') as v")).rows[0]?.v ?? '');
    const major = /:(\d+)/.exec(image)?.[1];
    // A tag without a version (postgres:latest) proves only that the container answered.
    if (major !== undefined) expect(Math.floor(Number(version) / 10_000)).toBe(Number(major));
    else expect(Number(version)).toBeGreaterThan(0);
  });
});
