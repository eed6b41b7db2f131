/**
 * The export verifier's native core (native/verify_native.c) gives exactly
 * what the TypeScript path gives: for every batch, the same events, bodies'
 * hashes, stored hashes, versions, other tenants and the same error at the
 * same place, on lines and rows the writer writes, on awkward values, on
 * edited lines and on damaged bytes. It may decline more than the
 * TypeScript fast path (the event then goes through TypeScript), never take
 * an event the TypeScript would decide otherwise. Whole exports verify to
 * the same report both ways, with one thread and with worker threads.
 *
 * Skipped with a note where the core is not built; CI builds it
 * (scripts/build-native.mjs --required) and sets AUDIT_TRAIL_REQUIRE_NATIVE=1,
 * so that there a missing core fails them rather than skips them.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GENESIS_HASH, type EventBodyFields } from '../../src/chain/encoding.ts';
import { StreamingChainVerifier, type ChainRun } from '../../src/chain/verifier.ts';
import type { ExportRow } from '../../src/export/columns.ts';
import { decodeBatch } from '../../src/export/decode_batch.ts';
import type { DecodeResult, DecodeTask, ParquetTask } from '../../src/export/decode_protocol.ts';
import { loadNativeCore, setNativeCoreEnabled, setNativeThreads, type NativeCore } from '../../src/export/native.ts';
import { DecodeBuffers, decodeRowGroup, readHybrid, readPlain, type DecodedRowGroup } from '../../src/export/parquet_decode.ts';
import { rewriteFirstPageHeader, type ThriftField } from '../helpers/page_headers.ts';
import type { RowGroup } from 'hyparquet';
import { fileSha256, openParquetExport, ParquetFileWriter, rowGroupRange } from '../../src/export/parquet.ts';
import { verifyExport } from '../../src/export/verify_export.ts';
import { LINE_EDITS, row, writtenLines } from '../helpers/jsonl_lines.ts';
import { capturedIo } from '../helpers/cli_io.ts';
import { main } from '../../src/cli/main.ts';
import { seededRandom as random } from '../helpers/random.ts';
import { nativeCoreTestable } from '../helpers/native_core.ts';
import { chainedRows, writeOneFileExport } from '../helpers/synthetic_export.ts';

let work: string;
/** Real lines of an export, for the tests that start from one. */
let linesOfSync: string[] = [];
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'native-core-'));
  linesOfSync = await linesOf(awkwardChain(3));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});
afterEach(() => setNativeCoreEnabled(true));

/** A DecodeResult as comparable values (its ArrayBuffers cut to its events). */
function comparable(r: DecodeResult): unknown {
  return {
    count: r.count,
    seq: Array.from(new BigInt64Array(r.seq, 0, r.count), String),
    version: Array.from(new Float64Array(r.version, 0, r.count)),
    hashes: Buffer.from(r.hashes, 0, r.count * 96).toString('hex'),
    same: Array.from(new Uint8Array(r.same, 0, r.count)),
    others: r.others,
    error: r.error === null ? null : { ...r.error, lineBytes: r.error.lineBytes === undefined ? undefined : Buffer.from(r.error.lineBytes).toString('hex') },
  };
}

/** The batch decoded by the TypeScript path and by the native core (on one thread; on 2 and 3 it must give the same). */
async function bothWays(task: () => DecodeTask): Promise<{ typescript: unknown; native: unknown }> {
  setNativeCoreEnabled(false);
  const typescript = comparable(await decodeBatch(task()));
  setNativeCoreEnabled(true);
  setNativeThreads(1);
  const native = comparable(await decodeBatch(task()));
  for (const threads of [2, 3]) {
    setNativeThreads(threads);
    expect(comparable(await decodeBatch(task())), `on ${threads} threads`).toEqual(native);
  }
  setNativeThreads(1);
  return { typescript, native };
}

function core(): NativeCore {
  return loadNativeCore() as NativeCore;
}

/** How many lines of a JSONL task the core takes itself, from the first on. */
function taken(task: DecodeTask): number {
  const n = 100_000;
  const state = new Float64Array(2);
  core().jsonlDecode(new Uint8Array(task.data), 0, task.length, Buffer.from('plant_hd'), true, new BigInt64Array(n), new Float64Array(n), new Uint8Array(n * 96), new Uint8Array(n), 0, state, 1);
  return state[1] as number;
}

function jsonlTask(lines: Array<string | Buffer>, tenantId = 'plant_hd'): () => DecodeTask {
  const bytes = Buffer.concat(lines.map((l) => Buffer.concat([typeof l === 'string' ? Buffer.from(l, 'utf8') : l, Buffer.from('\n')])));
  return () => {
    const data = new ArrayBuffer(bytes.length);
    new Uint8Array(data).set(bytes);
    return { kind: 'jsonl', id: 1, label: 'f.jsonl', tenantId, data, length: bytes.length };
  };
}

const linesOf = (rows: ExportRow[]): Promise<string[]> => writtenLines(work, rows);

/** A valid chain of awkward events (text outside the BMP, combining marks, right-to-left, escapes, NULLs, large values, old and far dates). */
function awkwardChain(n: number): ExportRow[] {
  return chainedRows(n, (i): EventBodyFields => {
    const occurred = i % 17 === 3 ? -62_135_596_800_000_000n + BigInt(i) : i % 17 === 4 ? 253_402_300_799_999_000n : 1_741_068_900_000_000n + BigInt(i) * 1001n;
    return {
      event_id: `01JNK${String(i).padStart(21, '0')}`,
      tenant_id: 'plant_hd',
      occurred_at: occurred,
      ingested_at: occurred + 17n,
      actor_type: 'user',
      actor_id: i % 9 === 0 ? '' : `operator.${i % 40}`,
      actor_name: i % 3 === 0 ? 'Zoë Çelik e\u0301 \u05d0\u05d1\u05d2 \u{1F600} \u{1D11E}' : null,
      auth_method: 'badge',
      source_ip: i % 2 === 0 ? null : '10.1.2.3',
      user_agent_hash: null,
      action: 'update',
      resource_type: 'production_order',
      resource_id: i % 7 === 0 ? null : `PO-${i}`,
      parent_type: null,
      parent_id: null,
      changes: i % 50 === 7 ? `[{"field": "notes", "after": "${'x\u{1F600}\\"'.repeat(20_000)}"}]` : `[{"after": ${i + 1}, "field": "quantity", "before": ${i}}]`,
      reason: i % 5 === 0 ? '' : i % 5 === 1 ? 'line 1\nline 2 "quoted" \\ tab\t \u0001 \u{1F4A5}' : null,
      context: '{"capture_method": "trigger"}',
      db_identity: `{"login":"mes_app","app":"mes","client":"10.0.0.7","pid":4242,"xid":${1000 + (i % 3)}}`,
    };
  });
}

describe.runIf(nativeCoreTestable())('the native core of verify --export', () => {
  it('decodes JSONL lines the writer writes (valid chains and random rows) exactly as the TypeScript path', async () => {
    const chain = await linesOf(awkwardChain(300));
    const { typescript, native } = await bothWays(jsonlTask(chain));
    expect(native).toEqual(typescript);
    expect((native as { count: number }).count).toBe(300);
    expect((native as { same: number[] }).same.every((s) => s === 1)).toBe(true);
    // (and the core took every line itself: none went the TypeScript way)
    expect(taken(jsonlTask(chain)())).toBe(300);
    // Random rows: random hashes (never the same), other tenants among them, escapes everywhere.
    const rnd = random(21);
    const rows = await linesOf(Array.from({ length: 2000 }, (_, i) => row(rnd, i + 1)));
    for (let i = 0; i < rows.length; i += 250) {
      const both = await bothWays(jsonlTask(rows.slice(i, i + 250)));
      expect(both.native).toEqual(both.typescript);
    }
  });

  it('gives the same events and the same error at the same line for edited and damaged lines', async () => {
    const rnd = random(22);
    const good = await linesOf(awkwardChain(40));
    let errors = 0;
    let taken = 0;
    for (const [i, line] of good.entries()) {
      for (const edit of LINE_EDITS) {
        const edited = edit(line);
        const damaged = Buffer.from(edited, 'utf8');
        if (damaged.length > 0) damaged[Math.floor(rnd() * damaged.length)] = Math.floor(rnd() * 256);
        for (const bad of [edited, damaged]) {
          // The edited line among good ones: events before it, it, events after it.
          const batch = [...good.slice(Math.max(0, i - 2), i), bad, ...good.slice(i + 1, i + 3)];
          const { typescript, native } = await bothWays(jsonlTask(batch));
          expect(native, `${String(bad).slice(0, 200)}`).toEqual(typescript);
          if ((native as { error: unknown }).error !== null) errors++;
          else taken++;
        }
      }
    }
    expect(errors).toBeGreaterThan(100);
    expect(taken).toBeGreaterThan(100);
  });

  it('on several threads stops at the same line as on one, wherever in the batch it is', async () => {
    const lines = await linesOf(awkwardChain(1000));
    for (const at of [0, 1, 63, 64, 200, 333, 334, 500, 666, 667, 998, 999]) {
      for (const bad of [(l: string) => l.replace('"sequence_no":', '"sequence_no":0'), (l: string) => l.replace('"tenant_id":"plant_hd"', '"tenant_id":"plant_x"')]) {
        const batch = lines.map((l, i) => (i === at ? bad(l) : l));
        const { typescript, native } = await bothWays(jsonlTask(batch));
        expect(native, `line ${at + 1}`).toEqual(typescript);
        for (const threads of [4, 7]) {
          setNativeThreads(threads);
          expect(comparable(await decodeBatch(jsonlTask(batch)())), `line ${at + 1} on ${threads} threads`).toEqual(native);
        }
        setNativeThreads(1);
      }
    }
  });

  it('names events of another tenant as the TypeScript path does', async () => {
    const lines = await linesOf(awkwardChain(30));
    const { typescript, native } = await bothWays(jsonlTask(lines, 'plant_other'));
    expect(native).toEqual(typescript);
    expect((native as { others: unknown[] }).others.length).toBe(30);
    // A tenant id that no bytes stand for (a lone surrogate): every event goes through TypeScript.
    const lone = await bothWays(jsonlTask(lines, 'plant_\ud800'));
    expect(lone.native).toEqual(lone.typescript);
  });

  it('on several threads, in a row group of many runs, leaves the same rows to the TypeScript as on one, at run boundaries too', async () => {
    const rows = awkwardChain(3000);
    // Rows of another tenant (taken by the TypeScript) at the first, around the runs' boundaries (256 rows), in a cluster and last.
    for (const i of [0, 255, 256, 257, 511, 512, 1000, 1001, 1002, 1003, 2047, 2999]) (rows[i] as ExportRow).tenant_id = 'plant_other';
    const file = path.join(work, 'many-runs.parquet');
    const writer = new ParquetFileWriter(file);
    await writer.writeRows(rows);
    await writer.close();
    const { metadata } = await openParquetExport(file, file);
    const bytes = await readFile(file);
    const group = metadata.row_groups[0] as RowGroup;
    const { offset, rangeEnd } = rowGroupRange(group, bytes.length);
    const task = (): DecodeTask => {
      const data = new ArrayBuffer(rangeEnd - offset);
      new Uint8Array(data).set(bytes.subarray(offset, rangeEnd));
      return {
        kind: 'parquet', id: 1, label: file, tenantId: 'plant_hd', data, length: data.byteLength, path: file, fileSize: bytes.length,
        offset, rangeEnd, metadata: { ...metadata, row_groups: [group], num_rows: group.num_rows }, rowStart: 0, rows: 3000,
      };
    };
    const { typescript, native } = await bothWays(task);
    expect(native).toEqual(typescript);
    expect((native as { others: Array<[number, string]> }).others.map(([i]) => i)).toEqual([0, 255, 256, 257, 511, 512, 1000, 1001, 1002, 1003, 2047, 2999]);
    for (const threads of [4, 7]) {
      setNativeThreads(threads);
      expect(comparable(await decodeBatch(task())), `on ${threads} threads`).toEqual(native);
    }
    setNativeThreads(1);
  });

  it('decodes Parquet row groups (real and damaged) exactly as the TypeScript path', async () => {
    const rows = awkwardChain(900);
    (rows[600] as ExportRow).record_hash = 'Z'.repeat(64); // a malformed hash: refused at that row both ways
    (rows[300] as ExportRow).tenant_id = 'plant_other';
    const file = path.join(work, 'rows.parquet');
    const writer = new ParquetFileWriter(file);
    for (const size of [1, 250, 300, 349]) await writer.writeRows(rows.splice(0, size));
    await writer.close();
    const { metadata } = await openParquetExport(file, file);
    const bytes = await readFile(file);
    const tasks: Array<(damage?: (b: Uint8Array) => void) => DecodeTask> = [];
    let rowStart = 0;
    for (const group of metadata.row_groups) {
      const { offset, rangeEnd } = rowGroupRange(group, bytes.length);
      const groupRows = Number(group.num_rows);
      const start = rowStart;
      tasks.push((damage) => {
        const data = new ArrayBuffer(rangeEnd - offset);
        const view = new Uint8Array(data);
        view.set(bytes.subarray(offset, rangeEnd));
        damage?.(view);
        return {
          kind: 'parquet', id: 1, label: file, tenantId: 'plant_hd', data, length: data.byteLength, path: file, fileSize: bytes.length,
          offset, rangeEnd, metadata: { ...metadata, row_groups: [group], num_rows: BigInt(groupRows) }, rowStart: start, rows: groupRows,
        };
      });
      rowStart += groupRows;
    }
    // The core takes every row of a clean group itself.
    const first = tasks[1]?.() as ParquetTask;
    const group = first.metadata.row_groups[0] as RowGroup;
    const decoded = decodeRowGroup(first.metadata, group, new Uint8Array(first.data), first.offset, first.rowStart);
    const r = { seq: new BigInt64Array(250), version: new Float64Array(250), hashes: new Uint8Array(250 * 96), same: new Uint8Array(250) };
    const state = new Float64Array(2);
    core().parquetRows(decoded.bytes, decoded.start, decoded.length, 0, 250, Buffer.from('plant_hd'), true, r.seq, r.version, r.hashes, r.same, 0, state, 1);
    expect(state[0]).toBe(250);
    expect(Array.from(r.same).every((s) => s === 1)).toBe(true);
    // A stored hash is taken only as 64 lowercase hex digits: every byte value at every position, each hex digit's value.
    const prevAt = decoded.start[21]?.[0] as number;
    const prevHex = Buffer.from(decoded.bytes.subarray(prevAt, prevAt + 64));
    for (let position = 0; position < 64; position++) {
      for (let byte = 0; byte < 256; byte++) {
        decoded.bytes.set(prevHex, prevAt);
        decoded.bytes[prevAt + position] = byte;
        core().parquetRows(decoded.bytes, decoded.start, decoded.length, 0, 1, Buffer.from('plant_hd'), true, r.seq, r.version, r.hashes, r.same, 0, state, 1);
        const text = Buffer.from(decoded.bytes.subarray(prevAt, prevAt + 64)).toString('latin1');
        const hex = /^[0-9a-f]{64}$/.test(text);
        expect(state[0], `byte ${byte} at ${position}`).toBe(hex ? 1 : 0);
        if (hex) expect(Buffer.from(r.hashes.subarray(0, 32)).toString('hex')).toBe(text);
      }
    }
    decoded.bytes.set(prevHex, prevAt);
    const results: unknown[] = [];
    for (const task of tasks) {
      const { typescript, native } = await bothWays(() => task());
      expect(native).toEqual(typescript);
      results.push(native);
    }
    const errors = results.map((r) => (r as { error: { message: string } | null }).error?.message ?? null);
    expect(errors.filter((e) => e !== null)).toEqual([`${file}: row 601: record_hash is not 64 hex characters`]);
    expect(results.flatMap((r) => (r as { others: unknown[] }).others)).toEqual([[49, 'plant_other']]);
    // Damaged bytes (Snappy streams, levels, values): the same events or the same refusal.
    const rnd = random(23);
    for (let trial = 0; trial < 300; trial++) {
      const task = tasks[1 + (trial % 3)] as (damage?: (b: Uint8Array) => void) => DecodeTask;
      const flips = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => [rnd(), Math.floor(rnd() * 256)] as const);
      const damage = (b: Uint8Array): void => {
        for (const [at, value] of flips) b[Math.floor(at * b.length)] = value;
      };
      const { typescript, native } = await bothWays(() => task(damage));
      expect(native).toEqual(typescript);
    }
  });

  it('decodes damaged row groups to the values the TypeScript decodes, or leaves them to it', async () => {
    const rows = awkwardChain(700);
    const file = path.join(work, 'damaged-groups.parquet');
    const writer = new ParquetFileWriter(file);
    for (const size of [350, 350]) await writer.writeRows(rows.splice(0, size));
    await writer.close();
    const { metadata } = await openParquetExport(file, file);
    const fileBytes = await readFile(file);
    const rnd = random(28);
    const int = (n: number): number => Math.floor(rnd() * n);
    /** The decoded values (hex, NULL) of every column and row, or the error thrown. */
    const decode = (group: RowGroup, bytes: Uint8Array, offset: number): unknown => {
      try {
        const d = decodeRowGroup({ ...metadata, row_groups: [group] }, group, bytes, offset, 0);
        return d.start.map((s, c) => Array.from(s, (at, i) => ((d.length[c]?.[i] as number) < 0 ? 'NULL' : Buffer.from(d.bytes.subarray(at, at + (d.length[c]?.[i] as number))).toString('hex'))));
      } catch (err) {
        return `${(err as Error).name}: ${(err as Error).message}`;
      }
    };
    let decodedBoth = 0;
    for (let trial = 0; trial < 1500; trial++) {
      const group = metadata.row_groups[trial % 2] as RowGroup;
      const { offset, rangeEnd } = rowGroupRange(group, fileBytes.length);
      const bytes = Uint8Array.from(fileBytes.subarray(offset, rangeEnd));
      // A few bytes changed: anywhere, or in the first bytes of a column chunk (its page header).
      for (let k = 1 + int(3); k > 0; k--) {
        const meta = group.columns[int(23)]?.meta_data;
        const at = rnd() < 0.5 || meta === undefined ? int(bytes.length) : Number(meta.dictionary_page_offset || meta.data_page_offset) - offset + int(24);
        if (at < bytes.length) bytes[at] = rnd() < 0.5 ? int(256) : (bytes[at] as number) ^ (1 << int(8));
      }
      setNativeCoreEnabled(false);
      const typescript = decode(group, bytes, offset);
      setNativeCoreEnabled(true);
      setNativeThreads(1 + (trial % 3));
      expect(decode(group, bytes, offset), `trial ${trial}`).toEqual(typescript);
      if (typeof typescript !== 'string') decodedBoth++;
    }
    setNativeThreads(1);
    expect(decodedBoth).toBeGreaterThan(100);
  });

  it('reads page headers in forms the writer never writes as the TypeScript path does, or leaves them to it', async () => {
    const rows = awkwardChain(600);
    const file = path.join(work, 'headers.parquet');
    const writer = new ParquetFileWriter(file);
    for (const size of [300, 300]) await writer.writeRows(rows.splice(0, size));
    await writer.close();
    const { metadata } = await openParquetExport(file, file);
    const fileBytes = await readFile(file);
    const group = metadata.row_groups[1] as RowGroup;
    const { offset, rangeEnd } = rowGroupRange(group, fileBytes.length);
    const original = fileBytes.subarray(offset, rangeEnd);
    const SEQ = 0;
    const TENANT = 2; // a dictionary page, then a data page
    const ACTOR_NAME = 6; // OPTIONAL, with NULLs
    const nested = (fields: ThriftField[], id: number): ThriftField[] => (fields.find((f) => f.id === id) as ThriftField).value as ThriftField[];
    const variants: Array<[string, number, (f: ThriftField[]) => ThriftField[], boolean]> = [
      ['as written', SEQ, (f) => f, true],
      ['as written (a dictionary page)', TENANT, (f) => f, true],
      ['as written (definition levels)', ACTOR_NAME, (f) => f, true],
      ['an overlong varint', SEQ, (f) => f.map((x) => (x.id === 2 ? { ...x, overlong: 2 } : x)), true],
      ['is_compressed written out', SEQ, (f) => (nested(f, 8).push({ id: 7, type: 1, value: true }), f), true],
      ['is_sorted written out', TENANT, (f) => (nested(f, 7).push({ id: 3, type: 2, value: false }), f), true],
      ['a dictionary page header on a data page too', SEQ, (f) => [...f.slice(0, 3), { id: 7, type: 12, value: [{ id: 1, type: 5, value: 0 }] }, ...f.slice(3)], true],
      ['a long-form field id', SEQ, (f) => f.map((x, k) => (k === 0 ? { ...x, longId: true } : x)), false],
      ['a CRC', SEQ, (f) => [...f.slice(0, 3), { id: 4, type: 5, value: 12345 }, ...f.slice(3)], false],
      ['fields out of order', SEQ, (f) => [f[1] as ThriftField, f[0] as ThriftField, ...f.slice(2)], false],
      ['a size given twice', SEQ, (f) => [...f.slice(0, 3), { id: 2, type: 5, value: ((f[1] as ThriftField).value as number) + 1, longId: true }, ...f.slice(3)], false],
      ['a size as i64', SEQ, (f) => f.map((x) => (x.id === 2 ? { ...x, type: 6 } : x)), false],
      ['an unknown field in the data page header', SEQ, (f) => (nested(f, 8).push({ id: 9, type: 5, value: 1 }), f), false],
      ['is_compressed false on a compressed page', SEQ, (f) => (nested(f, 8).push({ id: 7, type: 2, value: false }), f), false],
      ['statistics', SEQ, (f) => (nested(f, 8).push({ id: 8, type: 12, value: [] }), f), false],
      ['an index page header', SEQ, (f) => [...f.slice(0, 3), { id: 6, type: 12, value: [] }, ...f.slice(3)], false],
    ];
    for (const [name, column, rewrite, nativeTakes] of variants) {
      const changed = rewriteFirstPageHeader(original, offset, group, column, rewrite);
      if (name.startsWith('as written')) expect(Buffer.from(changed.bytes).equals(original), name).toBe(true);
      const groupMetadata = { ...metadata, row_groups: [changed.group], num_rows: changed.group.num_rows };
      const task = (): DecodeTask => {
        const data = new ArrayBuffer(changed.bytes.length);
        new Uint8Array(data).set(changed.bytes);
        return {
          kind: 'parquet', id: 1, label: file, tenantId: 'plant_hd', data, length: data.byteLength, path: file, fileSize: fileBytes.length,
          offset, rangeEnd: offset + changed.bytes.length, metadata: groupMetadata, rowStart: 300, rows: 300,
        };
      };
      const { typescript, native } = await bothWays(task);
      expect(native, name).toEqual(typescript);
      // Whether the core decoded the group itself (true) or left it to the TypeScript (false).
      const buffers = new DecodeBuffers();
      let decoded: DecodedRowGroup | null = null;
      try {
        decoded = decodeRowGroup(groupMetadata, changed.group, changed.bytes, offset, 300, buffers);
      } catch {
        // (the TypeScript refuses the group: the core must have declined it too)
      }
      const starts = Array.from({ length: 23 }, () => new Int32Array(300));
      const lengths = Array.from({ length: 23 }, () => new Int32Array(300));
      const took = core().parquetGroup(changed.bytes, buffers.description, 300, new Uint8Array(buffers.description[7 * 22 + 6] as number), starts, lengths, 1);
      expect(took, name).toBe(nativeTakes);
      if (took) {
        // ... to the same values as the TypeScript.
        const value = (bytes: Uint8Array, s: Int32Array[], l: Int32Array[], c: number, i: number): string =>
          (l[c]?.[i] as number) < 0 ? 'NULL' : Buffer.from(bytes.subarray(s[c]?.[i] as number, (s[c]?.[i] as number) + (l[c]?.[i] as number))).toString('hex');
        setNativeCoreEnabled(false);
        const ts = decodeRowGroup(groupMetadata, changed.group, changed.bytes, offset, 300);
        setNativeCoreEnabled(true);
        const nativeBytes = new Uint8Array(buffers.description[7 * 22 + 6] as number);
        core().parquetGroup(changed.bytes, buffers.description, 300, nativeBytes, starts, lengths, 2);
        for (let c = 0; c < 23; c++) {
          for (let i = 0; i < 300; i++) expect(value(nativeBytes, starts, lengths, c, i)).toBe(value(ts.bytes, ts.start, ts.length, c, i));
        }
        expect(decoded).not.toBeNull();
      }
    }
  });

  it('finds the runs of events that pass the chain checks exactly where StreamingChainVerifier.pushBatch() alone does', () => {
    const rnd = random(27);
    const int = (n: number): number => Math.floor(rnd() * n);
    const hashOf = (k: number): Buffer => createHash('sha256').update(`event ${k}`).digest();
    let problems = 0;
    for (let trial = 0; trial < 1500; trial++) {
      // Batches of a valid chain from sequence_no 1 (or from further on), then a few changes of every kind the checks look at.
      const from = trial % 5 === 0 ? BigInt(1 + int(1000)) : 1n;
      const batches = 1 + int(3);
      const sizes = Array.from({ length: batches }, () => int(40));
      const total = sizes.reduce((a, b) => a + b, 0);
      const seq = new BigInt64Array(total);
      const version = new Float64Array(total).fill(1);
      const hashes = Buffer.alloc(total * 96);
      const same = new Uint8Array(total).fill(1);
      let prev = from === 1n ? GENESIS_HASH : hashOf(-1);
      for (let i = 0; i < total; i++) {
        seq[i] = from + BigInt(i);
        const h = hashOf(i);
        prev.copy(hashes, i * 96);
        h.copy(hashes, i * 96 + 32);
        h.copy(hashes, i * 96 + 64);
        prev = h;
      }
      const others: Array<[number, string]> = [];
      for (let change = int(4); change > 0 && total > 0; change--) {
        const i = int(total);
        switch (int(7)) {
          case 0: seq[i] = (seq[i] as bigint) + BigInt(int(3) - 1 || 1); break;
          case 1: version[i] = [2, 0, Number.NaN, 1.5][int(4)] as number; break;
          case 2: { same[i] = 0; const at = i * 96 + 32 + int(32); hashes[at] = (hashes[at] as number) ^ 1; break; }
          case 3: { const at = i * 96 + int(32); hashes[at] = (hashes[at] as number) ^ (1 << int(8)); break; } // a broken link
          case 4: others.push([i, 'plant_other']); break;
          case 5: seq[i] = [0n, -1n, 9223372036854775807n, -9223372036854775808n][int(4)] as bigint; break;
          default: hashes.copy(hashes, i * 96 + 64, i * 96 + 32, i * 96 + 64); break; // the hash as stored (no change)
        }
      }
      others.sort((a, b) => a[0] - b[0]);
      const unique = others.filter((o, k) => k === 0 || (others[k - 1] as [number, string])[0] !== o[0]);
      const outcome = (run: ChainRun | undefined): unknown => {
        const v = new StreamingChainVerifier('plant_hd', from);
        let at = 0;
        for (const size of sizes) {
          const slice = <T extends { subarray(a: number, b: number): T }>(a: T, w = 1): T => a.subarray(at * w, (at + size) * w);
          const batchOthers = unique.filter(([i]) => i >= at && i < at + size).map(([i, t]) => [i - at, t] as const);
          v.pushBatch(size, slice(seq), slice(version), slice(hashes, 96), slice(same), batchOthers, 'f', run);
          at += size;
        }
        const problem = v.finish();
        return { problem, checked: v.eventsChecked, last: v.lastSequenceNo, hash: v.lastRecordHash?.toString('hex') ?? null };
      };
      const typescript = outcome(undefined);
      expect(outcome(core().chainRun), `trial ${trial}`).toEqual(typescript);
      if ((typescript as { problem: unknown }).problem !== null) problems++;
    }
    expect(problems).toBeGreaterThan(500);
    // Where the fast path ends: each condition alone.
    const seq = BigInt64Array.from([5n, 6n, 7n]);
    const hashes = Buffer.alloc(3 * 96);
    const chain = [hashOf(0), hashOf(1), hashOf(2), hashOf(3)];
    for (let i = 0; i < 3; i++) {
      (chain[i] as Buffer).copy(hashes, i * 96);
      (chain[i + 1] as Buffer).copy(hashes, i * 96 + 32);
      (chain[i + 1] as Buffer).copy(hashes, i * 96 + 64);
    }
    const run = (s = seq, v = new Float64Array([1, 1, 1]), h: Buffer = hashes, same = new Uint8Array([1, 1, 1]), expected = 5n, prev: Uint8Array = chain[0] as Buffer): number =>
      core().chainRun(s, v, h, same, 0, 3, expected, 1, prev, 0);
    expect(run()).toBe(3);
    expect(run(BigInt64Array.from([5n, 6n, 8n]))).toBe(2);
    expect(run(undefined, new Float64Array([1, 2, 1]))).toBe(1);
    expect(run(undefined, undefined, undefined, new Uint8Array([1, 1, 0]))).toBe(2);
    expect(run(undefined, undefined, undefined, undefined, 6n)).toBe(0);
    expect(run(undefined, undefined, undefined, undefined, undefined, chain[1] as Buffer)).toBe(0);
    expect(core().chainRun(BigInt64Array.from([9223372036854775807n, -9223372036854775808n]), new Float64Array([1, 1]), Buffer.concat([hashes.subarray(0, 96), hashes.subarray(96, 192)]), new Uint8Array([1, 1]), 0, 2, 9223372036854775807n, 1, chain[0] as Buffer, 0)).toBe(1);
  });

  it('verifies whole exports to the same report with and without it, on one thread and on two (TypeScript: a worker thread; native: its own threads)', async () => {
    for (const format of ['jsonl', 'parquet'] as const) {
      const rows = awkwardChain(1200);
      (rows[800] as ExportRow).reason = 'tampered';
      const dir = await writeOneFileExport(path.join(work, `whole-${format}`), format, rows, 250);
      const reports: unknown[] = [];
      for (const native of [false, true]) {
        for (const jobs of [1, 2]) {
          setNativeCoreEnabled(native);
          const { core: used, ...r } = await verifyExport({ dir, jobs, batchBytes: 64 << 10 });
          expect(used.core).toBe(native ? 'native' : 'typescript');
          reports.push(r);
        }
      }
      expect(reports[1]).toEqual(reports[0]);
      expect(reports[2]).toEqual(reports[0]);
      expect(reports[3]).toEqual(reports[0]);
      expect(reports[0]).toMatchObject({ ok: false });
      expect(JSON.stringify(reports[0])).toContain('801');
    }
  });

  it('audit-trail verify --export --json says which code decoded and hashed the events', async () => {
    const dir = await writeOneFileExport(path.join(work, 'cli-json'), 'jsonl', awkwardChain(20));
    const run = async (): Promise<Record<string, unknown>> => {
      const io = capturedIo();
      expect(await main(['verify', '--export', dir, '--json'], io)).toBe(0);
      return (JSON.parse(io.out) as { export: Record<string, unknown> }).export;
    };
    expect(await run()).toMatchObject({ ok: true, events_checked: 20, decoded_by: 'native' });
    expect(await run()).not.toHaveProperty('why_not_native');
    setNativeCoreEnabled(false);
    expect(await run()).toMatchObject({ ok: true, events_checked: 20, decoded_by: 'typescript', why_not_native: 'switched off' });
  });

  it('reads Parquet values (PLAIN, RLE/bit-packed of every bit width) as parquet_decode.ts does, or leaves the refusal to it', () => {
    const rnd = random(24);
    const int = (n: number): number => Math.floor(rnd() * n);
    let agreed = 0;
    let refused = 0;
    for (let trial = 0; trial < 4000; trial++) {
      // RLE/bit-packed hybrid runs of a random bit width (0 to 32, and a few beyond), possibly damaged or cut.
      const width = trial % 50 === 0 ? 33 + int(5) : int(33);
      const bytes: number[] = [];
      let values = 0;
      for (let run = 0; run < 1 + int(6); run++) {
        if (rnd() < 0.5) {
          const length = int(300);
          let header = length * 2;
          do {
            bytes.push((header & 0x7f) | (header >= 0x80 ? 0x80 : 0));
            header = Math.floor(header / 128);
          } while (header > 0);
          for (let k = 0; k < (width + 7) >> 3; k++) bytes.push(int(256));
          values += length;
        } else {
          const groups = 1 + int(6);
          bytes.push(groups * 2 + 1);
          for (let k = 0; k < groups * width; k++) bytes.push(int(256));
          values += groups * 8;
        }
      }
      if (trial % 3 === 1 && bytes.length > 0) bytes[int(bytes.length)] = int(256);
      const b = Uint8Array.from(trial % 7 === 2 ? bytes.slice(0, int(bytes.length + 1)) : bytes);
      const count = trial % 5 === 3 ? values + int(20) : Math.max(0, values - int(10));
      const ts = new Int32Array(count + 8);
      const native = new Int32Array(count + 8);
      let want: number | string;
      try {
        want = readHybrid(b, 0, b.length, width, ts, count);
      } catch (err) {
        want = (err as Error).message;
      }
      const got = core().readHybrid(b, 0, b.length, width, native, count);
      if (got < 0) {
        expect(typeof want, `width ${width}: the core refused what readHybrid() reads`).toBe('string');
        refused++;
      } else {
        expect(got).toBe(want);
        expect(Array.from(native.subarray(0, count))).toEqual(Array.from(ts.subarray(0, count)));
        agreed++;
      }
    }
    expect(agreed).toBeGreaterThan(1000);
    expect(refused).toBeGreaterThan(500);
    // PLAIN values: BYTE_ARRAY with their 4-byte lengths, INT32, INT64; exact, short, long.
    for (let trial = 0; trial < 2000; trial++) {
      const width = [0, 4, 8][trial % 3] as number;
      const count = int(40);
      const parts: number[] = [];
      for (let k = 0; k < count; k++) {
        const n = width === 0 ? int(20) : width;
        if (width === 0) parts.push(n & 0xff, n >> 8, 0, 0);
        for (let i = 0; i < n; i++) parts.push(int(256));
      }
      if (trial % 4 === 1) parts.push(int(256));
      if (trial % 4 === 2 && parts.length > 0) parts[int(parts.length)] = int(256);
      const bytes = Uint8Array.from(parts);
      const target = { bytes, view: new DataView(bytes.buffer), out: 0 };
      const tsStart = new Int32Array(count + 3);
      const tsLength = new Int32Array(count + 3);
      let ok = true;
      try {
        readPlain(target, 0, bytes.length, width === 8 ? 'INT64' : width === 4 ? 'INT32' : 'BYTE_ARRAY', count, tsStart, tsLength, 3);
      } catch {
        ok = false;
      }
      const start = new Int32Array(count + 3);
      const length = new Int32Array(count + 3);
      const got = core().readPlain(bytes, 0, bytes.length, width, count, start, length, 3);
      if (got) {
        expect(ok).toBe(true);
        expect([Array.from(start), Array.from(length)]).toEqual([Array.from(tsStart), Array.from(tsLength)]);
      } else {
        expect(ok).toBe(false);
      }
    }
  });

  it('hashes files (the manifest digests, on a thread of its own) to what node:crypto gives', async () => {
    const rnd = random(25);
    for (const size of [0, 1, 1 << 20, (1 << 20) + 1, 3.5 * (1 << 20)]) {
      const bytes = Buffer.from(Array.from({ length: size }, () => Math.floor(rnd() * 256)));
      const file = path.join(work, `digest-${size}.bin`);
      await writeFile(file, bytes);
      expect(await fileSha256(file)).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
  });

  it('survives random and adversarial arguments (a crash here kills the test run)', () => {
    const rnd = random(26);
    const int = (n: number): number => Math.floor(rnd() * n);
    const WEIRD = [0, -1, 1, 3, 4, 7, 8, 63, 64, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 63), 1e300, Number.NaN, Infinity, -Infinity, 0.5];
    const num = (max: number): number => (rnd() < 0.2 ? (WEIRD[int(WEIRD.length)] as number) : int(max + 2) - 1);
    /** A typed array of about n elements: plain, empty, at an odd offset of a bigger buffer, or detached. */
    const typed = <T extends Uint8Array | Int32Array | Float64Array | BigInt64Array>(make: (n: number) => T, n: number): T => {
      const r = rnd();
      if (r < 0.05) return make(0);
      if (r < 0.1) return make(n + 16).subarray(1 + int(7), 1 + int(7) + n) as T;
      if (r < 0.13) {
        const t = make(n);
        structuredClone(t.buffer, { transfer: [t.buffer as ArrayBuffer] }); // detached
        return t;
      }
      return make(n);
    };
    const bytes = (n: number): Uint8Array => {
      const b = typed((k) => new Uint8Array(k), n);
      for (let i = 0; i < b.length; i++) b[i] = rnd() < 0.3 ? ([0x0a, 0x22, 0x5c, 0x7b, 0x30][int(5)] as number) : int(256);
      return b;
    };
    const results = (n: number): [BigInt64Array, Float64Array, Uint8Array, Uint8Array] => [
      typed((k) => new BigInt64Array(k), n), typed((k) => new Float64Array(k), n), typed((k) => new Uint8Array(k), n * 96), typed((k) => new Uint8Array(k), n),
    ];
    const tryCall = (f: () => unknown): void => {
      try {
        f();
      } catch (err) {
        expect(String(err)).toMatch(/verify_native|detached|TypeError/); // bad arguments: refused, never a crash
      }
    };
    const c = core();
    const line = `${linesOfSync[0] ?? ''}\n`;
    for (let trial = 0; trial < 3000; trial++) {
      const n = int(200);
      const data = rnd() < 0.5 ? bytes(n) : Buffer.from(line.slice(0, int(line.length + 1)) + (rnd() < 0.5 ? '\n' : ''));
      const [seq, version, hashes, same] = results(int(20));
      tryCall(() => c.jsonlDecode(data, num(n), num(n), bytes(int(10)), rnd() < 0.8, seq, version, hashes, same, num(20), typed((k) => new Float64Array(k), 2), num(4) || 1));
      const cols = (): Int32Array[] => Array.from({ length: rnd() < 0.95 ? 23 : int(30) }, () => {
        const a = typed((k) => new Int32Array(k), int(30));
        for (let i = 0; i < a.length; i++) a[i] = rnd() < 0.3 ? (WEIRD[int(WEIRD.length)] as number) | 0 : int(n + 10) - 5;
        return a;
      });
      tryCall(() => c.parquetRows(data, cols(), cols(), num(30), num(30), bytes(int(10)), rnd() < 0.8, seq, version, hashes, same, num(20), typed((k) => new Float64Array(k), 2), num(4) || 1));
      // A row group description: mostly a plausible one (chunks inside data, parts of the output in order), so that garbage pages get decoded.
      const description = typed((k) => new Float64Array(k), rnd() < 0.9 ? 7 * 23 : int(200));
      const output = typed((k) => new Uint8Array(k), int(2000));
      for (let col = 0, part = 0; col * 7 < description.length; col++) {
        const chunkStart = int(n + 1);
        const size = int(150);
        const plausible = [chunkStart, chunkStart + int(n - chunkStart + 1), [0, 4, 8][int(3)] as number, int(2), int(2), part, part + size];
        part += size;
        for (let k = 0; k < 7 && col * 7 + k < description.length; k++) description[col * 7 + k] = rnd() < 0.03 ? (WEIRD[int(WEIRD.length)] as number) : (plausible[k] as number);
      }
      tryCall(() => c.parquetGroup(data, description, num(30), output, cols(), cols(), num(4) || 1));
      tryCall(() => c.chainRun(seq, version, hashes, same, num(20), num(20), BigInt(int(40) - 2), 1, bytes(int(40)), num(10)));
      tryCall(() => c.snappyDecompress(data, num(n), num(n), typed((k) => new Uint8Array(k), int(300)), num(300), num(300)));
      const out = typed((k) => new Int32Array(k), int(300));
      tryCall(() => c.readPlain(data, num(n), num(n), [0, 4, 8, 3][int(4)] as number, num(50), out, typed((k) => new Int32Array(k), int(60)), num(10)));
      tryCall(() => c.readHybrid(data, num(n), num(n), num(34), out, num(300)));
      tryCall(() => c.definedCount(out, num(300)));
      tryCall(() => c.spreadValues(rnd() < 0.5 ? null : out, num(300), out, typed((k) => new Int32Array(k), int(60)), rnd() < 0.5 ? null : out, num(60), typed((k) => new Int32Array(k), int(300)), typed((k) => new Int32Array(k), int(300)), num(300)));
      const d = c.digestCreate();
      tryCall(() => c.digestStart(d, data, num(n), num(n)));
      tryCall(() => c.digestJoin(d));
      tryCall(() => c.digestHex(d));
      tryCall(() => c.digestStart({} as never, data, 0, 0));
    }
  });

  it('scripts/build-native.mjs without a working compiler says so and leaves the built core alone; --required makes that an error', () => {
    const script = fileURLToPath(new URL('../../scripts/build-native.mjs', import.meta.url));
    const built = fileURLToPath(new URL('../../native/build/verify_native.node', import.meta.url));
    const before = statSync(built).mtimeMs;
    const run = (args: string[]) => spawnSync(process.execPath, [script, ...args], { env: { ...process.env, CC: '/bin/false' }, encoding: 'utf8' });
    const lenient = run([]);
    expect(lenient.status).toBe(0);
    expect(lenient.stderr).toContain('the native core of verify --export was not built (/bin/false failed');
    expect(lenient.stderr).toContain('uses its TypeScript path');
    const strict = run(['--required']);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toContain('was not built');
    expect(statSync(built).mtimeMs).toBe(before);
    expect(loadNativeCore()).not.toBeNull();
  });
});

