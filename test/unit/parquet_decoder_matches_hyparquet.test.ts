/**
 * The verifier's own Parquet page decoder (src/export/parquet_decode.ts)
 * gives exactly the values hyparquet gives on real export files (NULLs,
 * empty strings, text outside the BMP, values large enough to fill several
 * pages, several row groups, dictionary columns with NULLs, timestamps before
 * 1970 and beyond 2^53), and the verifier's readers deliver the same bodies
 * and hashes both ways. On damaged pages it either refuses
 * (ParquetLayoutError, then hyparquet decides) or gives what hyparquet
 * gives: never a value hyparquet would not give. A file of another layout is
 * read through hyparquet, with the same events.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { closeSync, openSync, writeSync } from 'node:fs';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { AsyncBuffer, FileMetaData, RowGroup } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainEncoder, GENESIS_HASH, type EventBodyFields } from '../../src/chain/encoding.ts';
import { EXPORT_COLUMNS, REQUIRED_COLUMNS, type ExportEventSink, type ExportRow } from '../../src/export/columns.ts';
import { deliverColumnGroup, deliverDecodedGroup, openParquetExport, PARQUET_SCHEMA, ParquetFileWriter, readColumnGroup, readParquetEvents, readParquetInto, rowGroupRange } from '../../src/export/parquet.ts';
import { DecodeBuffers, decodeRowGroup, ParquetLayoutError, schemaIsExportLayout, type DecodedRowGroup } from '../../src/export/parquet_decode.ts';
import { seededRandom } from '../helpers/random.ts';
import { chainedRows } from '../helpers/synthetic_export.ts';

const TENANT = 'plant_decoder';
let work: string;
let counter = 0;

/** Events with the awkward values; `big` rows carry a changes value of about 300 kB (several 1 MiB pages per row group). */
function rowsOf(n: number, big: ReadonlySet<number> = new Set()): ExportRow[] {
  return chainedRows(n, (i): EventBodyFields => {
  const occurred = i === 3 ? -86_400_000_123n : i === 4 ? 2n ** 60n + 7n : 1_741_068_900_000_000n + BigInt(i) * 1000n;
  return {
    event_id: `01JNK${String(i).padStart(21, '0')}`,
    tenant_id: TENANT,
    occurred_at: occurred,
    ingested_at: occurred + 17n,
    actor_type: i % 11 === 0 ? 'system' : 'user',
    actor_id: i % 9 === 0 ? '' : `operator.${i % 40}`,
    actor_name: i % 3 === 0 ? 'Zoë Çelik \u{1F600} \u{1D11E} \u{10348}' : null,
    auth_method: 'badge',
    source_ip: i % 2 === 0 ? null : '10.1.2.3',
    user_agent_hash: null,
    action: 'update',
    resource_type: 'production_order',
    resource_id: i % 7 === 0 ? null : `PO-${i}`,
    parent_type: null,
    parent_id: null,
    changes: big.has(i) ? `[{"field": "notes", "after": "${i} ${'x\u{1F600}'.repeat(60_000)}"}]` : `[{"after": ${i + 1}, "field": "quantity", "before": ${i}}]`,
    reason: i % 5 === 0 ? '' : i % 5 === 1 ? 'line 1\nline 2 "quoted" \\ tab\t \u{1F4A5}' : null,
    context: '{"capture_method": "trigger"}',
    db_identity: `{"login":"mes_app","app":"mes","client":"10.0.0.7","pid":4242,"xid":${1000 + (i % 3)}}`,
  };
  });
}

/** Writes rows as an export file in row groups of the given sizes. */
async function writeFile(rows: ExportRow[], groups: number[]): Promise<string> {
  const file = path.join(work, `events-${++counter}.parquet`);
  const writer = new ParquetFileWriter(file);
  let at = 0;
  for (const size of groups) {
    await writer.writeRows(rows.slice(at, at + size));
    at += size;
  }
  expect(at).toBe(rows.length);
  await writer.close();
  return file;
}

/**
 * Writes rows with hyparquet-writer directly, in the export's schema (without
 * statistics or a page index, which the verifier refuses from any writer),
 * with per-column options (an encoding, a codec) as another writer, or an
 * older version of ours, might have used.
 */
async function writeWithHyparquet(rows: ExportRow[], options: (column: string) => { encoding?: 'DELTA_BINARY_PACKED'; codec?: 'SNAPPY' | 'UNCOMPRESSED' }): Promise<string> {
  const file = path.join(work, `other-${++counter}.parquet`);
  const fd = openSync(file, 'wx');
  const out = new ByteWriter() as ByteWriter & { flush: () => void };
  out.flush = () => {
    writeSync(fd, new Uint8Array(out.buffer, 0, out.index));
    out.index = 0;
  };
  out.finish = () => out.flush();
  const writer = new ParquetWriter({ writer: out, schema: PARQUET_SCHEMA, statistics: false });
  const columnData = EXPORT_COLUMNS.map(([name]) => {
    const data =
      name === 'sequence_no' ? rows.map((r) => BigInt(r.sequence_no))
      : name === 'occurred_at' ? rows.map((r) => BigInt(r.occurred_at_us))
      : name === 'ingested_at' ? rows.map((r) => BigInt(r.ingested_at_us))
      : rows.map((r) => r[name]);
    return { name, data, offsetIndex: false, ...options(name) };
  });
  await writer.write({ columnData, rowGroupSize: rows.length });
  await writer.finish();
  closeSync(fd);
  return file;
}

interface Group {
  metadata: FileMetaData;
  group: RowGroup;
  rowStart: number;
  rows: number;
  offset: number;
  rangeEnd: number;
}

async function groupsOf(file: string): Promise<{ bytes: Buffer; groups: Group[] }> {
  const { metadata } = await openParquetExport(file, file);
  const bytes = await readFile(file);
  let rowStart = 0;
  const groups = metadata.row_groups.map((group) => {
    const rows = Number(group.num_rows);
    const g = { metadata, group, rowStart, rows, ...rowGroupRange(group, bytes.length) };
    rowStart += rows;
    return g;
  });
  return { bytes, groups };
}

const memoryFile = (bytes: Uint8Array): AsyncBuffer => ({
  byteLength: bytes.length,
  // A copy (Buffer.slice() is a view, whose .buffer is the whole pool).
  slice: async (start, end) => Uint8Array.prototype.slice.call(bytes, start, end ?? bytes.length).buffer as ArrayBuffer,
});

/** Every value of the decoded group as hyparquet would give it (bytes, bigint, number or null). */
function valuesOf(d: DecodedRowGroup): unknown[][] {
  return EXPORT_COLUMNS.map(([, kind], c) => {
    const out: unknown[] = [];
    for (let i = 0; i < d.rows; i++) {
      const s = (d.start[c] as Int32Array)[i] as number;
      const n = (d.length[c] as Int32Array)[i] as number;
      if (n < 0) out.push(null);
      else if (kind === 'int64' || kind === 'timestamp') out.push(n === 8 ? d.view.getBigInt64(s, true) : `INT64 of ${n} bytes`);
      else if (kind === 'int32') out.push(n === 4 ? d.view.getInt32(s, true) : `INT32 of ${n} bytes`);
      else out.push(Buffer.from(d.bytes.subarray(s, s + n)));
    }
    return out;
  });
}

/** hyparquet's values of a row group, in the same form (readColumnGroup() refuses a row with a value missing). */
async function hyparquetValues(file: AsyncBuffer, g: Group): Promise<unknown[][]> {
  const { columns } = await readColumnGroup(file, g.metadata, g.rowStart, g.rows, g.rowStart, 'test');
  return columns.map((values) => Array.from({ length: g.rows }, (_, i) => {
    const v = values[i];
    return v instanceof Uint8Array ? Buffer.from(v) : v;
  }));
}

/** Values as one string (a quicker comparison than toEqual() over thousands of buffers). */
function text(columns: unknown[][]): string {
  return columns.map((values) => values.map((v) => (v instanceof Uint8Array ? `b${Buffer.from(v).toString('hex')}` : typeof v === 'bigint' ? `i${v}` : `${typeof v}:${String(v)}`)).join(',')).join('\n');
}

/** A sink that keeps every event's body, position and hashes. */
function recorder(): ExportEventSink & { events: string[] } {
  const encoder = new ChainEncoder();
  const events: string[] = [];
  return {
    encoder,
    events,
    event(seq, version, prevHash, recordHash, tenant) {
      events.push(`${seq} ${version} ${prevHash.toString('hex')} ${recordHash.toString('hex')} ${tenant} ${encoder.buffer.toString('hex', 0, encoder.position)}`);
    },
  };
}

/** The events readParquetInto() delivers from a file, as recorder() writes them down. */
async function eventsOf(file: string): Promise<string[]> {
  const r = recorder();
  for await (const _ of readParquetInto(file, 'same', r));
  return r.events;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'parquet-decoder-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the export Parquet decoder', () => {
  it('decodes real export files to exactly hyparquet\'s values, in several row groups and pages', async () => {
    const rows = rowsOf(1900, new Set([500, 501, 502, 503, 504, 505, 506, 1899]));
    const file = await writeFile(rows, [1, 257, 1000, 42, 600]);
    const { bytes, groups } = await groupsOf(file);
    expect(groups.length).toBe(5);
    expect(schemaIsExportLayout(groups[0]?.metadata as FileMetaData, REQUIRED_COLUMNS)).toBe(true);
    const buffers = new DecodeBuffers();
    let pagesOfChanges = 0;
    for (const g of groups) {
      // The fast path must take every group of a file our writer wrote (no silent fallback).
      const decoded = decodeRowGroup(g.metadata, g.group, bytes.subarray(g.offset, g.rangeEnd), g.offset, g.rowStart, buffers);
      expect(decoded.rows).toBe(g.rows);
      expect(text(valuesOf(decoded))).toBe(text(await hyparquetValues(memoryFile(bytes), g)));
      const changes = g.group.columns[EXPORT_COLUMNS.findIndex(([n]) => n === 'changes')]?.meta_data;
      // (more than one 1 MiB page's worth of values: several data pages; the writer writes no encoding_stats that would count them)
      if (Number(changes?.total_uncompressed_size ?? 0) > 1 << 20) pagesOfChanges++;
    }
    // Values of about 300 kB: a row group whose changes fill several 1 MiB pages.
    expect(pagesOfChanges).toBeGreaterThan(0);
    // Every kind of awkward value occurs (or the comparison above proved less than it says).
    const all = rows.map((r) => JSON.stringify(r));
    expect(all.some((r) => r.includes('\u{1F600}'))).toBe(true);
    expect(rows.some((r) => r.reason === '')).toBe(true);
    expect(rows.some((r) => r.actor_id === '')).toBe(true);
    expect(rows.some((r) => r.source_ip === null) && rows.some((r) => r.source_ip !== null)).toBe(true);
  });

  it('a row group of NULLs only, and one of a single row', async () => {
    const rows = rowsOf(3).map((r) => ({ ...r, actor_name: null, reason: null, resource_id: null }));
    const file = await writeFile(rows, [1, 2]);
    const { bytes, groups } = await groupsOf(file);
    for (const g of groups) {
      const decoded = decodeRowGroup(g.metadata, g.group, bytes.subarray(g.offset, g.rangeEnd), g.offset, g.rowStart);
      expect(text(valuesOf(decoded))).toBe(text(await hyparquetValues(memoryFile(bytes), g)));
    }
  });

  it('delivers the same bodies, positions and hashes as the hyparquet path', async () => {
    const rows = rowsOf(700, new Set([350]));
    const file = await writeFile(rows, [300, 400]);
    const fast = recorder();
    for await (const _ of readParquetInto(file, file, fast));
    const reference = recorder();
    const { bytes, groups } = await groupsOf(file);
    for (const g of groups) {
      deliverColumnGroup(await readColumnGroup(memoryFile(bytes), g.metadata, g.rowStart, g.rows, g.rowStart, file), reference, file);
    }
    expect(fast.events.length).toBe(700);
    expect(fast.events).toEqual(reference.events);
    // And the bodies are the canonical encoding: every recomputed hash is the stored one.
    const encoder = new ChainEncoder();
    let prev: Buffer = GENESIS_HASH;
    let i = 0;
    for await (const batch of readParquetEvents(file, file)) {
      for (const e of batch) {
        expect(encoder.recordHash(e, e.sequence_no, prev).toString('hex')).toBe(rows[i]?.record_hash);
        prev = e.record_hash;
        i++;
      }
    }
  });

  it('refuses a malformed hash or INT64 row as the hyparquet path does, after the rows before it', async () => {
    const rows = rowsOf(20);
    (rows[12] as ExportRow).prev_hash = 'ABCD'.repeat(16); // upper case: not the export's hex
    const file = await writeFile(rows, [20]);
    const { bytes, groups } = await groupsOf(file);
    const g = groups[0] as Group;
    const fast = recorder();
    const decoded = decodeRowGroup(g.metadata, g.group, bytes.subarray(g.offset, g.rangeEnd), g.offset, g.rowStart);
    expect(() => deliverDecodedGroup(decoded, fast, file)).toThrow(`${file}: row 13: prev_hash is not 64 hex characters`);
    const reference = recorder();
    const group = await readColumnGroup(memoryFile(bytes), g.metadata, g.rowStart, g.rows, g.rowStart, file);
    expect(() => deliverColumnGroup(group, reference, file)).toThrow(`${file}: row 13: prev_hash is not 64 hex characters`);
    expect(fast.events).toEqual(reference.events);
    expect(fast.events.length).toBe(12);
  });

  it('on damaged pages refuses or gives what hyparquet gives, never another value', async () => {
    const rows = rowsOf(300);
    const file = await writeFile(rows, [120, 180]);
    const { bytes, groups } = await groupsOf(file);
    const rnd = seededRandom(2024);
    let refused = 0;
    let same = 0;
    for (let trial = 0; trial < 400; trial++) {
      const g = groups[trial % groups.length] as Group;
      const damaged = Buffer.from(bytes);
      // One to three bytes of the group's pages (headers, levels, Snappy streams) changed.
      const flips = 1 + Math.floor(rnd() * 3);
      for (let k = 0; k < flips; k++) {
        const at = g.offset + Math.floor(rnd() * (g.rangeEnd - g.offset));
        damaged[at] = rnd() < 0.5 ? Math.floor(rnd() * 256) : (damaged[at] as number) ^ (1 << Math.floor(rnd() * 8));
      }
      let fast: unknown[][] | null = null;
      try {
        fast = valuesOf(decodeRowGroup(g.metadata, g.group, damaged.subarray(g.offset, g.rangeEnd), g.offset, g.rowStart));
      } catch (err) {
        expect(err).toBeInstanceOf(ParquetLayoutError);
        refused++;
        continue;
      }
      // Accepted: hyparquet must read the same bytes to the same values.
      expect(text(await hyparquetValues(memoryFile(damaged), g))).toBe(text(fast));
      same++;
    }
    expect(refused).toBeGreaterThan(50);
    expect(same).toBeGreaterThan(50);
  });

  it('reads a file of another layout through hyparquet, with the same events', async () => {
    const rows = rowsOf(150);
    const ours = await writeFile(rows, [150]);
    // The same columns written with another encoding for sequence_no, as another writer might.
    const other = await writeWithHyparquet(rows, (name) => (name === 'sequence_no' ? { encoding: 'DELTA_BINARY_PACKED' as const } : {}));
    const { bytes, groups } = await groupsOf(other);
    const g = groups[0] as Group;
    expect(() => decodeRowGroup(g.metadata, g.group, bytes.subarray(g.offset, g.rangeEnd), g.offset, 0)).toThrow(ParquetLayoutError);
    const b = await eventsOf(other);
    expect(b.length).toBe(150);
    expect(b).toEqual(await eventsOf(ours));
  });

  it('writes the hash columns uncompressed and the others SNAPPY; files with SNAPPY hash columns (older exports) read the same', async () => {
    const rows = rowsOf(400, new Set([77]));
    const ours = await writeFile(rows, [150, 250]);
    const older = await writeWithHyparquet(rows, () => ({ codec: 'SNAPPY' }));
    const codecs = async (file: string): Promise<Map<string, string>> => {
      const { groups } = await groupsOf(file);
      const seen = new Map<string, string>();
      for (const g of groups) g.group.columns.forEach((c) => seen.set(c.meta_data?.path_in_schema.join('.') ?? '?', c.meta_data?.codec ?? '?'));
      return seen;
    };
    const written = await codecs(ours);
    expect(written.size).toBe(EXPORT_COLUMNS.length);
    for (const [name, codec] of written) expect([name, codec]).toEqual([name, name === 'prev_hash' || name === 'record_hash' ? 'UNCOMPRESSED' : 'SNAPPY']);
    expect(new Set((await codecs(older)).values())).toEqual(new Set(['SNAPPY']));
    // Both on the verifier's own decoder (no fallback to hyparquet), with the same events as hyparquet's path.
    for (const file of [ours, older]) {
      const { bytes, groups } = await groupsOf(file);
      for (const g of groups) {
        const decoded = decodeRowGroup(g.metadata, g.group, bytes.subarray(g.offset, g.rangeEnd), g.offset, g.rowStart);
        expect(text(valuesOf(decoded))).toBe(text(await hyparquetValues(memoryFile(bytes), g)));
      }
    }
    const a = await eventsOf(ours);
    expect(a.length).toBe(400);
    expect(await eventsOf(older)).toEqual(a);
  });
});
