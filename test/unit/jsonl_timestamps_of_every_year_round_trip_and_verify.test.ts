/**
 * Every timestamp the hash encoding holds (int64 microseconds since 1970,
 * which covers PostgreSQL's timestamptz from its minimum 4714-11-24 BC up to
 * 294247 AD) round-trips through a JSONL export and verifies: years outside
 * 0000-9999 are written as ISO-8601 expanded years (a sign and 6 digits), and
 * the reader recomputes the same record_hash. Years 0000-9999 are written as
 * before, byte for byte. The same rows verify as Parquet.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainEncoder, isoFromMicros, microsFromIso, type EventBodyFields } from '../../src/chain/encoding.ts';
import type { ExportRow } from '../../src/export/columns.ts';
import { jsonlLine, parseJsonlEvent } from '../../src/export/jsonl.ts';
import { verifyExport } from '../../src/export/verify_export.ts';
import { chainedRows, writeOneFileExport } from '../helpers/synthetic_export.ts';
import { seededRandom } from '../helpers/random.ts';

/** Microseconds of a UTC date of an astronomical year (0 is 1 BC), computed with Date (not with the code under test). */
function micros(year: number, month: number, day: number, h: number, m: number, s: number, us: number): bigint {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(h, m, s, 0);
  return BigInt(d.getTime()) * 1000n + BigInt(us);
}

const INT64_MAX = (1n << 63n) - 1n;

/** [the JSONL text, its microseconds] */
const CASES: ReadonlyArray<readonly [string, bigint]> = [
  ['-004713-11-24T00:00:00.000000Z', micros(-4713, 11, 24, 0, 0, 0, 0)], // PostgreSQL's minimum, 4714-11-24 BC
  ['-004712-01-01T00:00:00.000000Z', micros(-4712, 1, 1, 0, 0, 0, 0)], // 4713-01-01 BC
  ['-000001-12-31T23:59:59.999999Z', micros(-1, 12, 31, 23, 59, 59, 999_999)], // the last moment of 2 BC
  ['0000-01-01T00:00:00.000000Z', micros(0, 1, 1, 0, 0, 0, 0)], // 1 BC
  ['0000-12-31T23:59:59.999999Z', micros(0, 12, 31, 23, 59, 59, 999_999)],
  ['0001-01-01T00:00:00.000000Z', micros(1, 1, 1, 0, 0, 0, 0)], // 1 AD
  ['1969-12-31T23:59:59.999999Z', -1n],
  ['2025-03-04T06:15:00.123456Z', micros(2025, 3, 4, 6, 15, 0, 123_456)],
  ['9999-12-31T23:59:59.999999Z', micros(9999, 12, 31, 23, 59, 59, 999_999)],
  ['+010000-01-01T00:00:00.000000Z', micros(10000, 1, 1, 0, 0, 0, 0)],
  ['+200000-01-01T00:00:00.123456Z', micros(200000, 1, 1, 0, 0, 0, 123_456)], // the red-team review's value
  ['+275760-09-13T00:00:00.000001Z', 8_640_000_000_000_000_001n], // just past the end of JavaScript's Date
  ['+294247-01-10T04:00:54.775807Z', INT64_MAX], // the last moment the encoding (and audit_trail.encode_body) can hold
];

let work: string;
let counter = 0;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jsonl-years-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Event i: occurred_at is case i, ingested_at the case after it (the cases wrap around). */
function rows(): ExportRow[] {
  return chainedRows(CASES.length, (i): EventBodyFields => ({
    event_id: `01JNK${String(i).padStart(21, '0')}`,
    tenant_id: 'plant_years',
    occurred_at: (CASES[i - 1] as readonly [string, bigint])[1],
    ingested_at: (CASES[i % CASES.length] as readonly [string, bigint])[1],
    actor_type: 'user',
    actor_id: 'operator.1',
    actor_name: null,
    auth_method: null,
    source_ip: null,
    user_agent_hash: null,
    action: 'update',
    resource_type: 'production_order',
    resource_id: `PO-${i}`,
    parent_type: null,
    parent_id: null,
    changes: '[]',
    reason: null,
    context: '{}',
    db_identity: '{"login":"mes_app","app":"mes","client":null,"pid":4242,"xid":1234567}',
  }));
}

async function writeExport(format: 'jsonl' | 'parquet', exportRows: ExportRow[]): Promise<string> {
  return writeOneFileExport(path.join(work, `export-${++counter}`), format, exportRows);
}

/** The writer's timestamp text before expanded years (Date's toISOString), for years 0000-9999. */
function previousIso(us: bigint): string {
  let seconds = us / 1_000_000n;
  let fraction = us % 1_000_000n;
  if (fraction < 0n) {
    fraction += 1_000_000n;
    seconds -= 1n;
  }
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}.${fraction.toString().padStart(6, '0')}Z`;
}

describe('JSONL timestamps of every year', () => {
  it('writes years outside 0000-9999 as a sign and 6 digits and reads every one back exactly', () => {
    for (const [iso, us] of CASES) {
      expect(isoFromMicros(us)).toBe(iso);
      expect(microsFromIso(iso)).toBe(us);
    }
  });

  it('writes years 0000-9999 byte for byte as before', () => {
    const rnd = seededRandom(20250304);
    const lo = micros(0, 1, 1, 0, 0, 0, 0);
    const span = Number(micros(10000, 1, 1, 0, 0, 0, 0) - lo);
    for (let i = 0; i < 100_000; i++) {
      const us = lo + BigInt(Math.floor(rnd() * span));
      expect(isoFromMicros(us)).toBe(previousIso(us));
    }
  });

  it('refuses what the encoding cannot hold or ISO-8601 does not allow, as a damaged file (22P02)', () => {
    const line = JSON.parse(jsonlLine(rows()[0] as ExportRow)) as Record<string, unknown>;
    for (const bad of ['+294276-12-31T23:59:59.999999Z', '-290309-01-01T00:00:00.000000Z', '-000000-01-01T00:00:00.000000Z', '+200000-02-30T00:00:00.000000Z', '+20000-01-01T00:00:00.000000Z']) {
      expect(microsFromIso(bad)).toBeNull();
      expect(() => parseJsonlEvent(JSON.stringify({ ...line, occurred_at: bad }), 'f.jsonl', 1)).toThrow(expect.objectContaining({ code: '22P02' }));
    }
  });

  for (const format of ['jsonl', 'parquet'] as const) {
    it(`${format}: an export of them verifies, with one and with several threads`, async () => {
      const exportRows = rows();
      const dir = await writeExport(format, exportRows);
      for (const jobs of [1, 3]) {
        const report = await verifyExport({ dir, jobs, workerLoader: 'tsx', batchBytes: 500 });
        expect(report).toMatchObject({ ok: true, problem: null, firstBadSequenceNo: null, eventsChecked: CASES.length });
      }
    });
  }

  it('jsonl: the lines hold the documented text and give the hashes computed from the microseconds', async () => {
    const exportRows = rows();
    const dir = await writeExport('jsonl', exportRows);
    const lines = (await readFile(path.join(dir, 'events-00001.jsonl'), 'utf8')).split('\n').slice(0, -1);
    expect(lines).toHaveLength(CASES.length);
    const encoder = new ChainEncoder();
    for (const [i, l] of lines.entries()) {
      const o = JSON.parse(l) as Record<string, unknown>;
      expect(o['occurred_at']).toBe((CASES[i] as readonly [string, bigint])[0]);
      expect(o['ingested_at']).toBe((CASES[(i + 1) % CASES.length] as readonly [string, bigint])[0]);
      const e = parseJsonlEvent(l, 'events-00001.jsonl', i + 1);
      const row = exportRows[i] as ExportRow;
      expect(e.occurred_at).toBe(BigInt(row.occurred_at_us));
      expect(e.ingested_at).toBe(BigInt(row.ingested_at_us));
      expect(encoder.recordHash(e, e.sequence_no, e.prev_hash).toString('hex')).toBe(row.record_hash);
    }
  });
});

