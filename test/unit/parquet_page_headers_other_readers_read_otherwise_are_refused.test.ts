/**
 * The footer checks (parquet_footers_other_readers_read_otherwise_are_refused)
 * have a counterpart one level down: a data page header that carries min/max
 * statistics (readers may skip the page by them, and no hash covers them), in
 * a version 2 or a version 1 data page header, or an index page header, is
 * refused, naming the file; the writer writes none of these.
 *
 * The forged files are real exports (ParquetFileWriter, SNAPPY) with one page
 * header re-serialised with the extra field, everything after it moved, the
 * footer rewritten with the moved offsets and the manifest's SHA-256
 * recomputed, as a forger would. The same rewrite without the extra field
 * verifies: what is refused is the field, not the rewriting. And since
 * hyparquet and pyarrow read on where a stricter walk stops, a chunk whose
 * pages the verifier cannot follow to its end (a header it cannot parse, a
 * chunk past the end of the file, a chunk started elsewhere than where
 * readers start it) is refused too, not handed to the lenient reader (a
 * review found statistics that got through each of these ways).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parquetMetadata, type FileMetaData } from 'hyparquet';
// The Thrift compact protocol of the Parquet libraries (test-only: to forge page headers and footers).
import { deserializeTCompactProtocol } from 'hyparquet/src/thrift.js';
import { ByteWriter } from 'hyparquet-writer';
import { serializeTCompactProtocol } from 'hyparquet-writer/src/thrift.js';
import { writeMetadata } from 'hyparquet-writer/src/metadata.js';
import { EXPORT_COLUMNS } from '../../src/export/columns.ts';
import type { ExportManifest } from '../../src/export/manifest.ts';
import { verifyExport } from '../../src/export/verify_export.ts';
import { chainedRows, writeOneFileExport } from '../helpers/synthetic_export.ts';

const DATA_FILE = 'events-00001.parquet';
const REASON = EXPORT_COLUMNS.findIndex(([name]) => name === 'reason');
let work: string;
let counter = 0;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'parquet-page-headers-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Thrift = Record<string, unknown>;

/** The struct with its fields in id order, as the compact protocol writes them. */
function inFieldOrder(struct: Thrift): Thrift {
  const id = (key: string): number => Number(key.slice('field_'.length));
  return Object.fromEntries(Object.entries(struct).sort(([a], [b]) => id(a) - id(b)));
}

interface Target {
  group: number;
  column: number;
  /** Applied to the footer after the offsets moved (a forger's further edits). */
  footer?: (m: FileMetaData) => void;
}

/** A three-row-group export whose first data page of one column chunk (default: `reason`, row group 2) gets `edit` applied to its header. */
async function forgedExport(edit: (header: Thrift) => void, target: Target = { group: 1, column: REASON }): Promise<string> {
  const rows = chainedRows(30, (i) => ({
    event_id: `01JNK${String(i).padStart(21, '0')}`, tenant_id: 'plant_pages', occurred_at: 1741068900000000n + BigInt(i), ingested_at: 1741068900000000n + BigInt(i),
    actor_type: 'user', actor_id: 'operator.1', actor_name: null, auth_method: null, source_ip: null, user_agent_hash: null, action: 'update',
    resource_type: 'batch', resource_id: `B-${i}`, parent_type: null, parent_id: null, changes: '[]',
    reason: i % 2 ? `Deviation ${i} closed after review` : null, context: '{}', db_identity: '{}',
  }));
  const dir = await writeOneFileExport(path.join(work, `export-${++counter}`), 'parquet', rows, 10);
  const file = path.join(dir, DATA_FILE);
  const bytes = await readFile(file);
  const metadata: FileMetaData = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const chunk = metadata.row_groups[target.group]!.columns[target.column]!.meta_data!;
  // The first data page's header: read it, edit it, write it again.
  const at = Number(chunk.data_page_offset);
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length), offset: at };
  const header = deserializeTCompactProtocol(reader) as Thrift;
  const headerEnd = reader.offset;
  edit(header);
  const out = new ByteWriter();
  serializeTCompactProtocol(out, inFieldOrder(header));
  const newHeader = new Uint8Array(out.getBuffer());
  const delta = newHeader.length - (headerEnd - at);
  // Everything after the header moves by delta: the offsets in the footer with it.
  const moved = (offset: bigint | undefined): bigint | undefined => (offset !== undefined && offset > BigInt(at) ? offset + BigInt(delta) : offset);
  for (const group of metadata.row_groups) {
    for (const c of group.columns) {
      const m = c.meta_data!;
      m.data_page_offset = moved(m.data_page_offset)!;
      m.dictionary_page_offset = moved(m.dictionary_page_offset);
      c.file_offset = moved(c.file_offset)!;
    }
    group.file_offset = moved(group.file_offset);
  }
  chunk.total_compressed_size += BigInt(delta);
  chunk.total_uncompressed_size += BigInt(delta);
  metadata.row_groups[target.group]!.total_byte_size += BigInt(delta);
  target.footer?.(metadata);
  const footerLength = bytes.readUInt32LE(bytes.length - 8);
  const body = Buffer.concat([bytes.subarray(0, at), newHeader, bytes.subarray(headerEnd, bytes.length - 8 - footerLength)]);
  const footerWriter = new ByteWriter();
  writeMetadata(footerWriter, metadata as unknown as Parameters<typeof writeMetadata>[1]);
  // (writeMetadata() appends the footer's length: written again with the magic)
  await replaceDataFile(dir, body, Buffer.from(footerWriter.getBuffer()).subarray(0, -4));
  return dir;
}

/** Writes the export's data file as `body`, `footer`, the footer's length and the magic, and recomputes the manifest's digest. */
async function replaceDataFile(dir: string, body: Uint8Array, footer: Uint8Array): Promise<void> {
  const length = Buffer.alloc(4);
  length.writeUInt32LE(footer.length);
  const forged = Buffer.concat([body, footer, length, Buffer.from('PAR1')]);
  await writeFile(path.join(dir, DATA_FILE), forged);
  const manifestFile = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as ExportManifest;
  manifest.files[0]!.sha256 = createHash('sha256').update(forged).digest('hex');
  manifest.files[0]!.bytes = forged.length;
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
}

async function verdict(dir: string, jobs: number): Promise<string> {
  try {
    const report = await verifyExport({ dir, jobs });
    return report.ok ? 'OK' : `broken: ${report.problem} at ${report.firstBadSequenceNo}`;
  } catch (err) {
    const e = err as Error & { code?: string; file?: string };
    return `${e.code}: ${e.message}`;
  }
}

describe('Parquet page headers', () => {
  it('a header rewritten with nothing added verifies (the forging itself is sound), and so does one with a version 1 header without statistics', async () => {
    const dir = await forgedExport((h) => {
      expect(h['field_8']).toBeTypeOf('object');
    });
    for (const jobs of [1, 2]) expect(await verdict(dir, jobs)).toBe('OK');
    // (other writers write version 1 pages: their header is harmless without statistics, and readers go by the page type)
    const v1 = await forgedExport((h) => {
      h['field_5'] = { field_1: 10, field_2: 0, field_3: 3, field_4: 3 };
    });
    for (const jobs of [1, 2]) expect(await verdict(v1, jobs)).toBe('OK');
  });

  it('are refused when other readers could read them otherwise', async () => {
    const cases: Array<[string, (h: Thrift) => void, RegExp]> = [
      ['min/max statistics in the data page header', (h) => {
        (h['field_8'] as Thrift)['field_8'] = { field_5: new TextEncoder().encode('zzz'), field_6: new TextEncoder().encode('aaa') };
      }, /a data page header carries statistics/],
      ['min/max statistics in a version 1 data page header beside the version 2 one', (h) => {
        h['field_5'] = { field_1: 10, field_2: 0, field_3: 3, field_4: 3, field_5: { field_5: new TextEncoder().encode('zzz'), field_6: new TextEncoder().encode('aaa') } };
      }, /a data page header carries statistics/],
      ['statistics under a field id beyond 16 bits (C++ readers read 65544 as 8)', (h) => {
        (h['field_8'] as Thrift)['field_65544'] = { field_5: new TextEncoder().encode('zzz'), field_6: new TextEncoder().encode('aaa') };
      }, /field id 65544 that is not a 16-bit field id/],
      ['an index page header', (h) => {
        h['field_6'] = {};
      }, /carries an index page header/],
    ];
    for (const [what, edit, message] of cases) {
      const dir = await forgedExport(edit);
      await expectRefused(dir, what, message);
    }
  });

  it('are refused where the pages cannot be followed, since a more lenient reader would read them', async () => {
    const statistics = (h: Thrift): void => {
      (h['field_8'] as Thrift)['field_8'] = { field_5: new TextEncoder().encode('zzz'), field_6: new TextEncoder().encode('aaa') };
    };
    // A struct 17 levels deep where the CRC (an i32) belongs, before the statistics.
    let deep: Thrift = { field_1: 1 };
    for (let i = 0; i < 17; i++) deep = { field_1: deep };
    const cases: Array<[string, () => Promise<string>, RegExp]> = [
      ['statistics behind a dictionary page offset of 0 (readers start at the data page)', () =>
        forgedExport(statistics, { group: 0, column: 0, footer: (m) => (m.row_groups[0]!.columns[0]!.meta_data!.dictionary_page_offset = 0n) }),
        /are refused: a data page header carries statistics/],
      ['statistics behind a CRC field nested too deeply to skip', () =>
        forgedExport((h) => { statistics(h); h['field_4'] = deep; }), /cannot be read \(a page header of reason cannot be read/],
      ['a chunk that the footer says ends one byte before its last page does', () =>
        forgedExport(() => undefined, { group: 1, column: REASON, footer: (m) => {
          m.row_groups[1]!.columns[REASON]!.meta_data!.total_compressed_size -= 1n;
        } }), /cannot be read \(a page (header )?of reason (runs past its column chunk|cannot be read)/],
      ['statistics in a last chunk that the footer says reaches past the file', () =>
        forgedExport(statistics, { group: 2, column: EXPORT_COLUMNS.length - 1, footer: (m) => {
          const last = m.row_groups[2]!.columns[EXPORT_COLUMNS.length - 1]!.meta_data!;
          last.total_compressed_size += 1_000_000n;
        } }), /cannot be read|outside the file|past/],
    ];
    for (const [what, forge, message] of cases) {
      const dir = await forge();
      await expectRefused(dir, what, message);
    }
  });
});

/** Refused with --jobs 1 and 2: 22P02, naming the file and what is wrong. */
async function expectRefused(dir: string, what: string, message: RegExp): Promise<void> {
  for (const jobs of [1, 2]) {
    const v = await verdict(dir, jobs);
    expect(v, `${what}, --jobs ${jobs}`).toMatch(/^22P02: /);
    expect(v, `${what}, --jobs ${jobs}`).toContain(DATA_FILE);
    expect(v, `${what}, --jobs ${jobs}`).toMatch(message);
  }
}

/**
 * A footer whose ColumnMetaData holds `extra` fields, re-serialised field by field (the generic Thrift
 * reading of hyparquet and writing of hyparquet-writer), the manifest's digest recomputed.
 */
async function footerForged(extra: Thrift, trailing = new Uint8Array(0)): Promise<string> {
  const rows = chainedRows(20, (i) => ({
    event_id: `01JNK${String(i).padStart(21, '0')}`, tenant_id: 'plant_pages', occurred_at: 1741068900000000n + BigInt(i), ingested_at: 1741068900000000n + BigInt(i),
    actor_type: 'user', actor_id: `operator.${i % 2}`, actor_name: null, auth_method: null, source_ip: null, user_agent_hash: null, action: 'update',
    resource_type: 'batch', resource_id: `B-${i}`, parent_type: null, parent_id: null, changes: '[]', reason: null, context: '{}', db_identity: '{}',
  }));
  const dir = await writeOneFileExport(path.join(work, `export-${++counter}`), 'parquet', rows, 10);
  const file = path.join(dir, DATA_FILE);
  const bytes = await readFile(file);
  const footerLength = bytes.readUInt32LE(bytes.length - 8);
  const footerStart = bytes.length - 8 - footerLength;
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length), offset: footerStart };
  const footer = deserializeTCompactProtocol(reader) as Thrift;
  const chunkMeta = (((footer['field_4'] as Thrift[])[1]!['field_1'] as Thrift[])[EXPORT_COLUMNS.findIndex(([n]) => n === 'actor_id')]!['field_3']) as Thrift;
  Object.assign(chunkMeta, extra);
  const out = new ByteWriter();
  serializeTCompactProtocol(out, footer);
  await replaceDataFile(dir, bytes.subarray(0, footerStart), Buffer.concat([new Uint8Array(out.getBuffer()), trailing]));
  return dir;
}

describe('Parquet footers, byte by byte', () => {
  it('a footer re-serialised field by field verifies; with a field id beyond 16 bits it is refused', async () => {
    for (const jobs of [1, 2]) expect(await verdict(await footerForged({}), jobs)).toBe('OK');
    // ColumnMetaData field 65548: C++ readers (Arrow, DuckDB) read it as 12, the chunk's statistics
    // (DuckDB then skipped the rows of operator.1 in a row group); hyparquet keeps it apart.
    const minMax = { field_65548: { field_5: new TextEncoder().encode('zzz'), field_6: new TextEncoder().encode('zzz') } };
    await expectRefused(await footerForged(minMax), 'statistics under ColumnMetaData field 65548', /field id 65548 that is not a 16-bit field id/);
    // Bytes inside the footer's stated length but after its last field: no reader reads them the same way.
    await expectRefused(await footerForged({}, new Uint8Array([0x15, 0x02, 0x00])), 'bytes after the footer', /the footer has 3 bytes after its end/);
  });
});
