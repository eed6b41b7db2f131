/**
 * audit_trail.record() accepts occurred_at far from today (after year 9999,
 * before Christ): the database's verify() and an export in either format
 * agree that the chain is intact, the JSONL file holds the timestamps as
 * ISO-8601 expanded years, and the hashes recomputed from the export equal
 * the database's record_hash (no false tamper alarm on an honest export).
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { recordEvents } from '../helpers/trail.ts';
import { exportTenant, verifyExport, ChainEncoder } from '../../src/index.ts';
import { verifyTenant } from '../../src/db/verify.ts';
import { parseJsonlEvent } from '../../src/export/jsonl.ts';

const db = useTestDatabase('export_of_timestamps_outside_years_1_to_9999');
const TENANT = 'plant_far_years';

/** [occurred_at as given to PostgreSQL, as the JSONL export writes it] */
const MOMENTS = [
  ['200000-01-01 00:00:00.123456+00', '+200000-01-01T00:00:00.123456Z'],
  ['4714-11-24 00:00:00+00 BC', '-004713-11-24T00:00:00.000000Z'], // PostgreSQL's minimum
  ['0001-12-31 23:59:59.999999+00 BC', '0000-12-31T23:59:59.999999Z'], // 1 BC is year 0000
  ['0002-06-15 12:00:00+00 BC', '-000001-06-15T12:00:00.000000Z'],
  ['10000-01-01 00:00:00+00', '+010000-01-01T00:00:00.000000Z'],
  ['9999-12-31 23:59:59.999999+00', '9999-12-31T23:59:59.999999Z'],
] as const;

beforeAll(async () => {
  const c = await db.connect();
  await recordEvents(c, TENANT, MOMENTS.map(([occurredAt], i) => ({ occurredAt, resourceId: `PO-${i}` })));
});

describe('timestamps outside years 0001-9999', () => {
  it('the database verifies them', async () => {
    const c = await db.connect();
    expect(await verifyTenant(c, TENANT)).toMatchObject({ ok: true });
  });

  for (const format of ['jsonl', 'parquet'] as const) {
    it(`${format}: the export verifies and its recomputed hashes equal the database's`, async () => {
      const out = path.join(await mkdtemp(path.join(tmpdir(), 'far-years-')), 'export');
      const manifest = await exportTenant({ databaseUrl: db.url, tenant: TENANT, outDir: out, format });
      expect(await verifyExport({ dir: out })).toMatchObject({ ok: true, problem: null, eventsChecked: MOMENTS.length });
      if (format === 'parquet') return;

      const c = await db.connect();
      const { rows } = await c.query<{ record_hash: string }>(
        `select encode(record_hash, 'hex') as record_hash from audit_trail.events where tenant_id = $1 order by sequence_no`,
        [TENANT],
      );
      const file = path.join(out, (manifest.files[0] as { path: string }).path);
      const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
      expect(lines.map((l) => (JSON.parse(l) as { occurred_at: string }).occurred_at)).toEqual(MOMENTS.map(([, iso]) => iso));
      const encoder = new ChainEncoder();
      expect(
        lines.map((l, i) => {
          const e = parseJsonlEvent(l, file, i + 1);
          return encoder.recordHash(e, e.sequence_no, e.prev_hash).toString('hex');
        }),
      ).toEqual(rows.map((r) => r.record_hash));
    });
  }
});
