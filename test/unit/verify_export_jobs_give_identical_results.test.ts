/**
 * verify --export with worker threads (--jobs 2), and with the native core
 * on one thread or several, reports exactly what the single-threaded
 * TypeScript verifier (--jobs 1) reports: the same problem, sequence_no,
 * detail and file, or the same error, on clean and tampered exports of both
 * formats. Batches are made small so that events cross batch boundaries and
 * several batches are in flight. No database: the exports are written with
 * the exporter's own file writers.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainEncoder, GENESIS_HASH } from '../../src/chain/encoding.ts';
import type { ExportRow } from '../../src/export/columns.ts';
import { jsonlLine, parseJsonlEvent } from '../../src/export/jsonl.ts';
import type { ExportManifest } from '../../src/export/manifest.ts';
import { verifyExport, type VerifyExportOptions } from '../../src/export/verify_export.ts';
import { setNativeCoreEnabled } from '../../src/export/native.ts';
import { productionOrderRows, writeOneFileExport } from '../helpers/synthetic_export.ts';

const TENANT = 'plant_jobs';
const EVENTS = 600;
const encoder = new ChainEncoder();
let work: string;
let counter = 0;

function rowsOf(n: number, tenant = TENANT): ExportRow[] {
  return productionOrderRows(n, tenant);
}

/** Writes an export of `rows` (row groups of 37 rows for Parquet) and returns its directory. */
async function writeExport(format: 'jsonl' | 'parquet', rows: ExportRow[]): Promise<string> {
  return writeOneFileExport(path.join(work, `export-${++counter}`), format, rows, 37);
}

type Line = Record<string, unknown>;

/** Edits the JSONL file as text and recomputes the manifest's digest and counts (an attacker with the files in hand). */
async function editJsonl(dir: string, edit: (lines: string[]) => string, keepDigest = false): Promise<void> {
  const file = path.join(dir, 'events-00001.jsonl');
  const text = edit((await readFile(file, 'utf8')).split('\n').slice(0, -1));
  await writeFile(file, text);
  if (keepDigest) return;
  const manifestFile = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as ExportManifest;
  const entry = manifest.files[0] as ExportManifest['files'][number];
  entry.sha256 = createHash('sha256').update(text).digest('hex');
  entry.bytes = Buffer.byteLength(text);
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
}

/** Replaces a data file's bytes and recomputes its digest in the manifest. */
async function writeBytes(dir: string, name: string, bytes: Buffer): Promise<void> {
  await writeFile(path.join(dir, name), bytes);
  const manifestFile = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as ExportManifest;
  const entry = manifest.files[0] as ExportManifest['files'][number];
  entry.sha256 = createHash('sha256').update(bytes).digest('hex');
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
}

const joinLines = (lines: string[]): string => lines.map((l) => `${l}\n`).join('');

/** Recomputes prev_hash/record_hash of the lines from index `from` on, as a forger would. */
function rechain(lines: string[], from: number): string[] {
  const objects = lines.map((l) => JSON.parse(l) as Line);
  for (let i = from; i < objects.length; i++) {
    const line = objects[i] as Line;
    line['prev_hash'] = i === 0 ? '0'.repeat(64) : (objects[i - 1] as Line)['record_hash'];
    const e = parseJsonlEvent(JSON.stringify(line), 'x', i + 1);
    line['record_hash'] = encoder.recordHash(e, e.sequence_no, e.prev_hash).toString('hex');
  }
  return objects.map((o) => JSON.stringify(o));
}

function setField(line: string, key: string, value: unknown): string {
  const o = JSON.parse(line) as Line;
  o[key] = value;
  return JSON.stringify(o);
}

/** What verification gives: the report (without which code decoded), or the error it throws. */
async function outcome(dir: string, options: Partial<VerifyExportOptions>): Promise<unknown> {
  try {
    const { core: _core, ...report } = await verifyExport({ dir, batchBytes: 3000, ...options });
    return { report };
  } catch (err) {
    const e = err as Error & { code?: string; file?: string; hint?: string };
    return { error: { name: e.name, message: e.message, code: e.code, file: e.file, hint: e.hint } };
  }
}

/**
 * Verifies on the TypeScript path with --jobs 1, --jobs 2 (bundled worker)
 * and --jobs 3 (tsx loader in the worker), and with the native core
 * (src/export/native.ts) on 1 and 3 threads; all must agree.
 */
async function sameWithJobs(dir: string, options: Partial<VerifyExportOptions> = {}): Promise<Record<string, unknown>> {
  setNativeCoreEnabled(false);
  try {
    const single = await outcome(dir, { ...options, jobs: 1 });
    expect(await outcome(dir, { ...options, jobs: 2 })).toEqual(single);
    expect(await outcome(dir, { ...options, jobs: 3, workerLoader: 'tsx' })).toEqual(single);
    setNativeCoreEnabled(true);
    expect(await outcome(dir, { ...options, jobs: 1 }), 'native core, 1 thread').toEqual(single);
    expect(await outcome(dir, { ...options, jobs: 3 }), 'native core, 3 threads').toEqual(single);
    return single as Record<string, unknown>;
  } finally {
    setNativeCoreEnabled(true);
  }
}

const problemOf = (o: Record<string, unknown>): unknown => {
  const r = o['report'] as { problem: string | null; firstBadSequenceNo: number | null } | undefined;
  return r === undefined ? o['error'] : { problem: r.problem, seq: r.firstBadSequenceNo };
};

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'verify-jobs-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('verify --export gives the same result with --jobs 1 and --jobs 2', () => {
  const rows = rowsOf(EVENTS);

  it('on clean exports of both formats, and a split view between them', async () => {
    const jsonl = await writeExport('jsonl', rows);
    const parquet = await writeExport('parquet', rows);
    expect(problemOf(await sameWithJobs(jsonl))).toEqual({ problem: null, seq: null });
    expect(problemOf(await sameWithJobs(parquet, { compareWith: [jsonl] }))).toEqual({ problem: null, seq: null });
    const other = rowsOf(EVENTS);
    (other[299] as ExportRow).reason = 'another history';
    const forked = await writeExport('jsonl', rechainRows(other));
    expect(problemOf(await sameWithJobs(parquet, { compareWith: [forked] }))).toEqual({ problem: 'split view', seq: 300 });
  });

  const cases: Array<[string, (lines: string[]) => string, unknown, boolean?]> = [
    ['an edited field', (l) => joinLines(l.map((x, i) => (i === 250 ? setField(x, 'reason', 'forged') : x))), { problem: 'hash mismatch', seq: 251 }],
    ['a deleted event', (l) => joinLines(l.filter((_, i) => i !== 300)), { problem: 'gap', seq: 301 }],
    ['two events swapped', (l) => joinLines(l.map((x, i) => (i === 400 ? (l[401] as string) : i === 401 ? (l[400] as string) : x))), { problem: 'out of order', seq: 401 }],
    ['a duplicate event', (l) => joinLines([...l.slice(0, 201), l[200] as string, ...l.slice(201)]), { problem: 'duplicate', seq: 201 }],
    ['an event rewritten with its own hash', (l) => joinLines(rechain(l.map((x, i) => (i === 99 ? setField(x, 'reason', 'forged') : x)), 99).map((x, i) => (i > 99 ? (l[i] as string) : x))), { problem: 'broken link', seq: 100 }],
    ['an event moved from another tenant', (l) => joinLines(rechain(l.map((x, i) => (i === 500 ? setField(x, 'tenant_id', 'plant_other') : x)), 500)), { problem: 'wrong tenant', seq: 501 }],
    ['an unknown encoding_version', (l) => joinLines(rechain(l.map((x, i) => (i === 150 ? setField(x, 'encoding_version', 2) : x)), 150)), { problem: 'unsupported encoding', seq: 151 }],
    ['whitespace in a line (decoded by JSON.parse)', (l) => joinLines(l.map((x, i) => (i === 10 ? x.replace('"action":', '"action": ') : x))), { problem: null, seq: null }],
    ['a data file edited without the manifest', (l) => joinLines(l.map((x, i) => (i === 450 ? setField(x, 'reason', 'forged') : x))), { problem: 'hash mismatch', seq: 451 }, true],
  ];

  it.each(cases)('on a JSONL export with %s', async (_name, edit, expected, keepDigest) => {
    const dir = await writeExport('jsonl', rows);
    await editJsonl(dir, edit, keepDigest === true);
    expect(problemOf(await sameWithJobs(dir))).toEqual(expected);
  });

  it('on JSONL exports refused as damaged: garbage in a line, a cut last line, invalid UTF-8', async () => {
    const garbage = await writeExport('jsonl', rows);
    await editJsonl(garbage, (l) => joinLines(l.map((x, i) => (i === 333 ? '{"sequence_no": garbage' : x))));
    const g = await sameWithJobs(garbage);
    expect((g['error'] as { message: string }).message).toMatch(/line 334: not valid JSON/);

    const cut = await writeExport('jsonl', rows);
    await editJsonl(cut, (l) => joinLines(l).slice(0, -40));
    const c = await sameWithJobs(cut);
    expect((c['error'] as { message: string }).message).toMatch(/line 600: the last line has no end/);

    const binary = await writeExport('jsonl', rows);
    const file = path.join(binary, 'events-00001.jsonl');
    const bytes = await readFile(file);
    const at = bytes.indexOf('PO-77"');
    bytes[at + 1] = 0xff;
    await writeBytes(binary, 'events-00001.jsonl', bytes);
    const b = await sameWithJobs(binary);
    expect((b['error'] as { message: string }).message).toMatch(/line 77: not valid UTF-8/);
  });

  it('on JSONL lines longer than a batch, after a batch that grew for a long line', async () => {
    // A 9 MiB line grows the 4 MiB batch buffer to 16 MiB; the 8 MiB line after it is carried into the next batch.
    const long = rechainRows(rowsOf(3).map((r, i) => ({ ...r, reason: i === 2 ? 'short' : 'r'.repeat((9 - i) << 20) })));
    const dir = await writeExport('jsonl', long);
    expect(problemOf(await sameWithJobs(dir, { batchBytes: undefined }))).toEqual({ problem: null, seq: null });
  });

  it('on Parquet exports: an edited value, and a truncated file', async () => {
    const edited = rowsOf(EVENTS);
    (edited[444] as ExportRow).actor_id = 'forger';
    const dir = await writeExport('parquet', edited);
    expect(problemOf(await sameWithJobs(dir))).toEqual({ problem: 'hash mismatch', seq: 445 });

    const damaged = await writeExport('parquet', rows);
    const damagedFile = path.join(damaged, 'events-00001.parquet');
    const damagedBytes = await readFile(damagedFile);
    damagedBytes.fill(0x5a, Math.floor(damagedBytes.length / 2), Math.floor(damagedBytes.length / 2) + 300);
    await writeBytes(damaged, 'events-00001.parquet', damagedBytes);
    const d = await sameWithJobs(damaged);
    expect((d['error'] as { message: string }).message).toMatch(/rows \d+ to \d+ cannot be read/);

    const truncated = await writeExport('parquet', rows);
    const file = path.join(truncated, 'events-00001.parquet');
    await writeFile(file, (await readFile(file)).subarray(0, 5000));
    const t = await sameWithJobs(truncated);
    expect((t['error'] as { message: string }).message).toMatch(/not a readable Parquet file/);
  });
});

/** Rows whose prev_hash/record_hash are recomputed from their fields. */
function rechainRows(rows: ExportRow[]): ExportRow[] {
  let prev: Buffer = GENESIS_HASH;
  for (const r of rows) {
    r.prev_hash = prev.toString('hex');
    const e = parseJsonlEvent(jsonlLine(r), 'x', 1);
    prev = encoder.recordHash(e, e.sequence_no, e.prev_hash);
    r.record_hash = prev.toString('hex');
  }
  return rows;
}
