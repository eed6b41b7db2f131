/**
 * A Parquet export whose dictionary-encoded column holds an index its
 * dictionary does not have (equal to the dictionary's size, one beyond, or
 * negative) is refused as damaged, naming the file and the first row: the
 * page decoder refuses the page ('a dictionary index out of range', it
 * never reads past the dictionary), and hyparquet, to which it then defers
 * and which reads such an index as undefined, must not let that become SQL
 * NULL (verify would report an edited event where the file is damaged).
 * The same byte holding a valid index decodes on the decoder's fast path
 * and verifies. The random damage of parquet_decoder_matches_hyparquet
 * never hit that check.
 *
 * The file is a real export (ParquetFileWriter, SNAPPY). Its `action` column
 * has five values in runs of eight rows: a dictionary of five entries, and
 * indexes of bit width 3 written as five RLE runs, eleven bytes that Snappy
 * keeps as one literal; the test changes those bytes in place (no length
 * changes: no header, footer or CRC to rewrite; the writer writes no page
 * CRC) and recomputes the manifest's SHA-256, as a forger would.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { capturedIo } from '../helpers/cli_io.ts';
import type { EventBodyFields } from '../../src/chain/encoding.ts';
import { EXPORT_COLUMNS, type ExportRow } from '../../src/export/columns.ts';
import type { ExportManifest } from '../../src/export/manifest.ts';
import { openParquetExport, ParquetFileWriter, rowGroupRange } from '../../src/export/parquet.ts';
import { decodeRowGroup } from '../../src/export/parquet_decode.ts';
import { verifyExport } from '../../src/export/verify_export.ts';
import { chainedRows, oneFileManifest } from '../helpers/synthetic_export.ts';

const TENANT = 'plant_dictionary';
const EVENTS = 40;
const ACTIONS = ['create', 'update', 'approve', 'release', 'close'];
const DATA_FILE = 'events-00001.parquet';
/** The `action` page's values as the writer writes them: bit width 3, then RLE runs (header 8 << 1) of indexes 0 to 4. */
const INDEXES = Buffer.from([3, 0x10, 0, 0x10, 1, 0x10, 2, 0x10, 3, 0x10, 4]);
const ACTION = EXPORT_COLUMNS.findIndex(([name]) => name === 'action');
let work: string;
let counter = 0;

/** Events with valid hashes; rows 8k+1 to 8k+8 have action ACTIONS[k]. */
function rowsOf(n: number): ExportRow[] {
  const t0 = 1_741_068_900_000_000n;
  return chainedRows(n, (i): EventBodyFields => {
  return {
    event_id: `01JNK${String(i).padStart(21, '0')}`,
    tenant_id: TENANT,
    occurred_at: t0 + BigInt(i) * 1000n,
    ingested_at: t0 + BigInt(i) * 1000n + 17n,
    actor_type: 'user',
    actor_id: `operator.${i % 3}`,
    actor_name: null,
    auth_method: 'badge',
    source_ip: null,
    user_agent_hash: null,
    action: ACTIONS[Math.floor((i - 1) / 8)] as string,
    resource_type: 'production_order',
    resource_id: `PO-${i}`,
    parent_type: null,
    parent_id: null,
    changes: `[{"after": ${i + 1}, "field": "quantity", "before": ${i}}]`,
    reason: null,
    context: '{"capture_method": "trigger"}',
    db_identity: '{"login":"mes_app","app":"mes","client":"10.0.0.7","pid":4242,"xid":1234567}',
  };
  });
}

/** Writes a Parquet export of `rows` in one row group; returns its directory. */
async function writeExport(rows: ExportRow[]): Promise<string> {
  const dir = path.join(work, `export-${++counter}`);
  await mkdir(dir);
  const writer = new ParquetFileWriter(path.join(dir, DATA_FILE));
  await writer.writeRows(rows);
  const written = await writer.close();
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(oneFileManifest(rows, 'parquet', DATA_FILE, written), null, 2));
  return dir;
}

/** Where INDEXES are in the data file: once, verbatim, inside the `action` column chunk, which is SNAPPY. */
async function indexesAt(file: string): Promise<number> {
  const { metadata } = await openParquetExport(file, file);
  const meta = metadata.row_groups[0]?.columns[ACTION]?.meta_data;
  expect(meta?.path_in_schema).toEqual(['action']);
  expect(meta?.codec).toBe('SNAPPY');
  expect(meta?.encodings).toContain('RLE_DICTIONARY');
  const bytes = await readFile(file);
  const from = Number(meta?.data_page_offset);
  const to = Number(meta?.dictionary_page_offset) + Number(meta?.total_compressed_size);
  const at = bytes.indexOf(INDEXES, from);
  // If the writer changes its layout, this test must be rewritten, not pass by not damaging anything.
  expect(at, 'the action page holds the indexes as one Snappy literal').toBeGreaterThan(from);
  expect(at + INDEXES.length).toBeLessThanOrEqual(to);
  expect(bytes.indexOf(INDEXES, at + 1)).toBe(-1);
  return at;
}

/** Overwrites the values section of the `action` page from its start with `values`, and recomputes the manifest's SHA-256. */
async function rewriteIndexes(dir: string, values: number[]): Promise<string> {
  const file = path.join(dir, DATA_FILE);
  const at = await indexesAt(file);
  const bytes = await readFile(file);
  bytes.set(values, at);
  await writeFile(file, bytes);
  const manifestFile = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as ExportManifest;
  (manifest.files[0] as ExportManifest['files'][number]).sha256 = createHash('sha256').update(bytes).digest('hex');
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
  return file;
}

/** The page decoder's result on the file's one row group: the action values, or its error. */
async function decoded(file: string): Promise<{ actions: string[] } | { error: string }> {
  const { metadata } = await openParquetExport(file, file);
  const bytes = await readFile(file);
  const group = metadata.row_groups[0] as (typeof metadata.row_groups)[number];
  const { offset, rangeEnd } = rowGroupRange(group, bytes.length);
  try {
    const d = decodeRowGroup(metadata, group, bytes.subarray(offset, rangeEnd), offset, 0);
    const start = d.start[ACTION] as Int32Array;
    const length = d.length[ACTION] as Int32Array;
    return { actions: Array.from({ length: d.rows }, (_, i) => Buffer.from(d.bytes.subarray(start[i], (start[i] as number) + (length[i] as number))).toString()) };
  } catch (err) {
    return { error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

/** What verify --export gives: the report's verdict, or the error it throws. */
async function outcome(dir: string, jobs: number): Promise<unknown> {
  try {
    const r = await verifyExport({ dir, jobs });
    return { ok: r.ok, problem: r.problem, seq: r.firstBadSequenceNo, file: r.file };
  } catch (err) {
    const e = err as Error & { code?: string; file?: string; hint?: string };
    return { error: { name: e.name, message: e.message, code: e.code, file: e.file, hint: e.hint } };
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'parquet-dictionary-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('a dictionary index beyond the dictionary', () => {
  const rows = rowsOf(EVENTS);
  const HINT = 'The Parquet file is damaged, truncated or was not written by audit-trail export. Ask for a fresh export, or compare with the copy that was handed over.';
  const NO_VALUE = 'has no value (a dictionary index beyond its dictionary, or a page of fewer values than rows)';

  it('control: the last index of the dictionary (4 of 5 entries) decodes on the fast path and verifies', async () => {
    const dir = await writeExport(rows);
    // Written back unchanged: the same bytes, so the rewrite itself damages nothing.
    const file = await rewriteIndexes(dir, [...INDEXES]);
    expect(await decoded(file)).toEqual({ actions: rows.map((r) => r.action) });
    expect(await outcome(dir, 1)).toEqual({ ok: true, problem: null, seq: null, file: null });
  });

  const cases: Array<[string, number[], number]> = [
    // The last run's index byte: rows 33 to 40.
    ['equal to its size (5)', [...INDEXES.subarray(0, 10), 5], 33],
    ['one beyond its size (6)', [...INDEXES.subarray(0, 10), 6], 33],
    // Bit width 32, one RLE run of 40 rows of 0xffffffff (-1 as an int32); the six bytes after it are ignored.
    ['negative (bit width 32, 0xffffffff)', [32, 0x50, 0xff, 0xff, 0xff, 0xff], 1],
  ];

  it.each(cases)('%s is refused by the page decoder and by verify --export, naming the file and row', async (_name, values, row) => {
    const dir = await writeExport(rows);
    const file = await rewriteIndexes(dir, values);
    expect(await decoded(file)).toEqual({ error: 'ParquetLayoutError: a dictionary index out of range' });
    const refused = { error: { name: 'EvidenceFileError', message: `${file}: row ${row}: action ${NO_VALUE}`, code: '22P02', file, hint: HINT } };
    expect(await outcome(dir, 1)).toEqual(refused);
    // The worker threads decode the row group: the same error.
    expect(await outcome(dir, 2)).toEqual(refused);
  });

  it('the CLI says so in one line with its hint, and exits 2 (not 1: nothing was proven edited)', async () => {
    const dir = await writeExport(rows);
    const file = await rewriteIndexes(dir, [...INDEXES.subarray(0, 10), 5]);
    const io = capturedIo();
    expect(await main(['verify', '--export', dir, '--jobs', '1'], io)).toBe(2);
    expect(io.err).toBe(`error: ${file}: row 33: action ${NO_VALUE} (SQLSTATE 22P02)\nhint: ${HINT}\n`);
    expect(io.out).toBe('');
  });
});
