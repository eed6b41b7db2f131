/**
 * Timestamps at the edges: audit_trail.record() refuses an occurred_at
 * outside years 1 to 9999 (after 9999, before Christ, infinity: 22008, an
 * input error, not a moment); at the edges it accepts, the database's
 * verify() and an export in either format agree that the chain is intact,
 * and the hashes recomputed from the export equal the database's
 * record_hash. (Years outside 0000-9999 in the JSONL text form are covered
 * by test/unit/jsonl_timestamps_of_every_year_round_trip_and_verify.test.ts.)
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
  ['0001-01-01 00:00:00+00', '0001-01-01T00:00:00.000000Z'],
  ['1969-12-31 23:59:59.999999+00', '1969-12-31T23:59:59.999999Z'],
  ['9999-12-31 23:59:59.999999+00', '9999-12-31T23:59:59.999999Z'],
] as const;

/** Refused by record(): not moments of a real action. */
const REFUSED = ['200000-01-01 00:00:00.123456+00', '10000-01-01 00:00:00+00', '0001-12-31 23:59:59.999999+00 BC', '4714-11-24 00:00:00+00 BC', 'infinity', '-infinity'];

beforeAll(async () => {
  const c = await db.connect();
  await recordEvents(c, TENANT, MOMENTS.map(([occurredAt], i) => ({ occurredAt, resourceId: `PO-${i}` })));
});

describe('timestamps at the edges of years 1 to 9999', () => {
  it('record() refuses an occurred_at outside them with 22008 and a hint, and writes nothing', async () => {
    const c = await db.connect();
    const before = await c.query<{ n: string }>(`select count(*) as n from audit_trail.events where tenant_id = $1`, [TENANT]);
    for (const moment of REFUSED) {
      await c.query('begin');
      await c.query(`select set_config('audit_trail.actor_id', 'usr_1', true)`);
      const err = await c.query(`select audit_trail.record('read', 'batch_record', 'B-1', tenant => $1, occurred_at => $2::timestamptz)`, [TENANT, moment])
        .then(() => null, (e: { code?: string; hint?: string }) => e);
      await c.query('rollback');
      expect(err, moment).toMatchObject({ code: '22008' });
      expect(err?.hint, moment).toContain('occurred_at');
    }
    const after = await c.query<{ n: string }>(`select count(*) as n from audit_trail.events where tenant_id = $1`, [TENANT]);
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
  });

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
