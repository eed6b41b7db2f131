/**
 * Parquet export files, written with hyparquet-writer and read with hyparquet
 * (pure JavaScript: no native build, no install script; works after `npm ci`).
 *
 * Types: sequence_no INT64; occurred_at, ingested_at INT64 TIMESTAMP(MICROS,
 * isAdjustedToUTC) so DuckDB, Spark and pandas read them as timestamps with
 * microseconds; text, jsonb and json as BYTE_ARRAY UTF8 (PostgreSQL's text
 * output, never the JSON logical type, so readers do not re-serialise it);
 * encoding_version INT32; prev_hash and record_hash as 64 hex characters
 * (not compressed: see UNCOMPRESSED_COLUMNS; every other column SNAPPY).
 * One row group per write (the export's fetch batch), so memory stays bounded.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, type AsyncBuffer, type ColumnData, type FileMetaData, type RowGroup } from 'hyparquet';
import { EvidenceFileError } from '../errors.ts';
import { BODY_FIELDS, type ChainEncoder } from '../chain/encoding.ts';
import type { ChainEvent } from '../chain/verifier.ts';
import { EXPORT_COLUMNS, REQUIRED_COLUMNS, type ExportEventSink, type ExportRow } from './columns.ts';
import { decodeLowerHex32, decodeLowerHex32View } from './jsonl.ts';
import { snappyDecompress } from './snappy.ts';
import { loadNativeCore, nativeThreads } from './native.ts';
import { DecodeBuffers, decodeRowGroup, ParquetPageRefused, refuseForeignFooterFields, refuseForeignPageHeaders, schemaIsExportLayout, type DecodedRowGroup } from './parquet_decode.ts';

// hyparquet-writer bundles its own hyparquet version: use the writer's schema type.
type SchemaElement = ConstructorParameters<typeof ParquetWriter>[0]['schema'][number];

export interface WrittenFile {
  sha256: string;
  bytes: number;
}

/** A data file being written. */
export interface DataFileWriter {
  readonly path: string;
  writeRows(rows: ExportRow[]): Promise<void>;
  close(): Promise<WrittenFile>;
}

function schemaElement(name: string, kind: string): SchemaElement {
  const repetition_type = REQUIRED_COLUMNS.has(name as never) ? 'REQUIRED' : 'OPTIONAL';
  switch (kind) {
    case 'int64':
      return { name, type: 'INT64', repetition_type };
    case 'int32':
      return { name, type: 'INT32', repetition_type };
    case 'timestamp':
      return { name, type: 'INT64', repetition_type, logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' } };
    default:
      return { name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type };
  }
}

/**
 * Columns written without compression: the hex of a SHA-256 does not
 * compress (Snappy kept 12.6 of 13.6 MB a column for 200,000 events), and
 * decompressing its short literals and back references was a tenth of the
 * verifier's time. The other columns are SNAPPY.
 */
const UNCOMPRESSED_COLUMNS: ReadonlySet<string> = new Set(['prev_hash', 'record_hash']);

export const PARQUET_SCHEMA: SchemaElement[] = [
  { name: 'root', num_children: EXPORT_COLUMNS.length },
  ...EXPORT_COLUMNS.map(([name, kind]) => schemaElement(name, kind)),
];

/** Writes row groups straight to the file descriptor, hashing what it writes. */
function hashingFileWriter(fd: number, digest: Hash): ByteWriter & { bytes: number } {
  const writer = new ByteWriter() as ByteWriter & { bytes: number; flush: () => void };
  writer.bytes = 0;
  writer.flush = () => {
    const chunk = new Uint8Array(writer.buffer, 0, writer.index);
    digest.update(chunk);
    let done = 0;
    while (done < chunk.length) done += writeSync(fd, chunk, done);
    writer.bytes += chunk.length;
    writer.index = 0;
  };
  writer.finish = () => writer.flush();
  return writer;
}

export class ParquetFileWriter implements DataFileWriter {
  private readonly fd: number;
  private readonly digest = createHash('sha256');
  private readonly byteWriter: ByteWriter & { bytes: number };
  private readonly writer: ParquetWriter;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'wx');
    this.byteWriter = hashingFileWriter(this.fd, this.digest);
    this.writer = new ParquetWriter({
      writer: this.byteWriter,
      schema: PARQUET_SCHEMA,
      createdBy: 'pg-audit-trail export',
      kvMetadata: [{ key: 'pg-audit-trail.encoding_version', value: '1' }],
      // No statistics and no page index: readers skip row groups and pages by
      // them, and no hash covers them, so the verifier refuses files that
      // carry them (refuseWhatOtherReadersWouldReadOtherwise()).
      statistics: false,
    });
  }

  async writeRows(rows: ExportRow[]): Promise<void> {
    if (rows.length === 0) return;
    const column = <T>(f: (r: ExportRow) => T): T[] => rows.map(f);
    const columnData = EXPORT_COLUMNS.map(([name]) => {
      const data = (() => {
        switch (name) {
          case 'sequence_no':
            return column((r) => BigInt(r.sequence_no));
          case 'occurred_at':
            return column((r) => BigInt(r.occurred_at_us));
          case 'ingested_at':
            return column((r) => BigInt(r.ingested_at_us));
          default:
            return column((r) => r[name]);
        }
      })();
      return { name, data, offsetIndex: false, columnIndex: false, ...(UNCOMPRESSED_COLUMNS.has(name) ? { codec: 'UNCOMPRESSED' as const } : {}) };
    });
    await this.writer.write({ columnData, rowGroupSize: rows.length });
  }

  async close(): Promise<WrittenFile> {
    await this.writer.finish();
    closeSync(this.fd);
    return { sha256: this.digest.digest('hex'), bytes: this.byteWriter.bytes };
  }
}

/**
 * SHA-256 of a file, streamed. With the native core the hashing runs on a
 * thread of its own (one megabyte hashed while the next is read), so that
 * it overlaps with what this thread does meanwhile.
 */
export async function fileSha256(path: string): Promise<string> {
  const core = loadNativeCore();
  if (core !== null) {
    const digest = core.digestCreate();
    const buffers = [Buffer.allocUnsafeSlow(1 << 20), Buffer.allocUnsafeSlow(1 << 20)];
    const handle = await open(path, 'r');
    try {
      for (let k = 0; ; k ^= 1) {
        // (digestStart() waits for the part before, in the other buffer, which is read into next)
        const buffer = buffers[k] as Buffer;
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        core.digestStart(digest, buffer, 0, bytesRead);
      }
      return core.digestHex(digest);
    } finally {
      core.digestJoin(digest);
      await handle.close();
    }
  }
  const digest = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) digest.update(chunk as Buffer);
  return digest.digest('hex');
}

const keepBytes = (bytes: Uint8Array): Uint8Array => bytes;
const keepMicros = (micros: bigint): bigint => micros;
const HEX64 = /^[0-9a-f]{64}$/;

function malformed(label: string, what: string, cause?: unknown): EvidenceFileError {
  return new EvidenceFileError(`${label}: ${what}`, label, '22P02', {
    hint: 'The Parquet file is damaged, truncated or was not written by audit-trail export. Ask for a fresh export, or compare with the copy that was handed over.',
    cause,
  });
}

/** A hash column value (64 lowercase hex characters, as bytes or a string) decoded into `into`. */
function hashInto(v: unknown, into: Buffer, column: string, label: string, row: number): Buffer {
  if (v instanceof Uint8Array && v.length === 64 && decodeLowerHex32(v, 0, into)) return into;
  const hexText = v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1') : v;
  if (typeof hexText !== 'string' || !HEX64.test(hexText)) throw malformed(label, `row ${row}: ${column} is not 64 hex characters`);
  into.write(hexText, 0, 'hex');
  return into;
}

/** One row group, column by column (in EXPORT_COLUMNS order): hyparquet's decoded arrays, never a row object. */
export interface ColumnGroup {
  /** Row number (0-based) of the group's first row in the file. */
  rowStart: number;
  rows: number;
  columns: ArrayLike<unknown>[];
}

/** The file and metadata of a Parquet export file, with its columns checked. */
export async function openParquetExport(path: string, label: string): Promise<{ file: AsyncBuffer; metadata: FileMetaData }> {
  let file;
  let metadata;
  try {
    file = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw malformed(label, `not a readable Parquet file (${err instanceof Error ? err.message : String(err)})`, err);
  }
  const names = metadata.schema.slice(1).map((s) => s.name);
  for (const [name] of EXPORT_COLUMNS) {
    if (!names.includes(name)) throw malformed(label, `column ${name} is missing`);
  }
  // The footer's bytes as other readers parse them, then what hyparquet parsed of it.
  const tail = new Uint8Array(await file.slice(file.byteLength - 8, file.byteLength));
  const footerLength = new DataView(tail.buffer, tail.byteOffset, 4).getUint32(0, true);
  try {
    refuseForeignFooterFields(new Uint8Array(await file.slice(file.byteLength - 8 - footerLength, file.byteLength - 8)));
  } catch (err) {
    if (err instanceof ParquetPageRefused) throw malformed(label, err.message, err);
    throw err;
  }
  refuseWhatOtherReadersWouldReadOtherwise(metadata, label);
  return { file, metadata };
}

/**
 * Refuses a file whose footer other Parquet readers (pyarrow, pandas, DuckDB)
 * could read as other rows or values than those this verifier hashes (found
 * by a red team): columns no hash covers (or a column twice), key-value
 * metadata other than the writer's (pandas metadata can rename columns),
 * row counts that disagree (pyarrow shows pages beyond num_rows), and column
 * chunks whose pages do not start where the chunk starts or that overlap
 * (readers disagree on which pages they read).
 */
export function refuseWhatOtherReadersWouldReadOtherwise(metadata: FileMetaData, label: string): void {
  const columns = metadata.schema.slice(1);
  const seen = new Set<string>();
  for (const c of columns) {
    if (!COLUMN_INDEX.has(c.name)) throw malformed(label, `column ${JSON.stringify(c.name)} is no column of the export: no hash covers it, and readers would show it`);
    if (seen.has(c.name)) throw malformed(label, `column ${c.name} appears twice: readers disagree on which one they show`);
    if ((c.num_children ?? 0) !== 0) throw malformed(label, `column ${c.name} is nested`);
    seen.add(c.name);
  }
  for (const kv of metadata.key_value_metadata ?? []) {
    if (!kv.key.startsWith('pg-audit-trail.')) throw malformed(label, `key-value metadata ${JSON.stringify(kv.key)} is not the writer's: readers act on it (pandas metadata renames columns) and no hash covers it`);
  }
  let rows = 0n;
  for (const [g, group] of metadata.row_groups.entries()) {
    rows += BigInt(group.num_rows);
    if (group.columns.length !== columns.length) throw malformed(label, `row group ${g} has ${group.columns.length} column chunks for ${columns.length} columns`);
    const ranges: Array<[bigint, bigint, string]> = [];
    for (const chunk of group.columns) {
      const m = chunk.meta_data;
      const name = m?.path_in_schema.join('.') ?? '?';
      if (m === undefined) throw malformed(label, `row group ${g}: column ${name} has no metadata`);
      if (BigInt(m.num_values) !== BigInt(group.num_rows)) throw malformed(label, `row group ${g}: column ${name} holds ${m.num_values} values for ${group.num_rows} rows`);
      // Statistics and page indexes let readers skip row groups and pages (a forged min/max hides an event from a
      // filter, and so does a null_count equal to the number of values); no hash covers them. The writer writes none.
      const extra = m as { size_statistics?: unknown; geospatial_statistics?: unknown };
      if (m.statistics !== undefined || extra.size_statistics !== undefined || extra.geospatial_statistics !== undefined) {
        throw malformed(label, `row group ${g}: column ${name} carries statistics, which readers filter by and no hash covers`);
      }
      if (chunk.column_index_offset !== undefined || chunk.offset_index_offset !== undefined || m.bloom_filter_offset !== undefined) {
        throw malformed(label, `row group ${g}: column ${name} has a page index or bloom filter, which readers skip pages by and no hash covers`);
      }
      const data = BigInt(m.data_page_offset);
      const start = m.dictionary_page_offset === undefined ? data : BigInt(m.dictionary_page_offset);
      const end = start + BigInt(m.total_compressed_size);
      if (data < start || data >= end) throw malformed(label, `row group ${g}: column ${name}'s first data page (at ${data}) is outside its chunk (${start} to ${end})`);
      ranges.push([start, end, name]);
    }
    ranges.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (let i = 1; i < ranges.length; i++) {
      const [start, , name] = ranges[i] as [bigint, bigint, string];
      const [, previousEnd, previous] = ranges[i - 1] as [bigint, bigint, string];
      if (start < previousEnd) throw malformed(label, `row group ${g}: the chunks of columns ${previous} and ${name} overlap`);
    }
  }
  if (rows !== BigInt(metadata.num_rows)) throw malformed(label, `the footer says ${metadata.num_rows} rows, its row groups hold ${rows}`);
}

const COLUMN_INDEX = new Map<string, number>(EXPORT_COLUMNS.map(([name], i) => [name, i]));

/**
 * Reads rows [readStart, readStart + rows) of `metadata` (one row group) as
 * columns. `rowStart` is the file's row number (0-based) of the first of
 * them, for errors and ColumnGroup.rowStart (a worker reads a row group from
 * metadata that holds that group only). Every value is null (SQL NULL) or a
 * value: a row of a column without one is refused as damage.
 */
export async function readColumnGroup(file: AsyncBuffer, metadata: FileMetaData, readStart: number, rows: number, rowStart: number, label: string): Promise<ColumnGroup> {
  const rowEnd = rowStart + rows;
  // Pages of each column as hyparquet decodes them; placed by row number below.
  const pages: ColumnData[][] = EXPORT_COLUMNS.map(() => []);
  try {
    await parquetRead({
      file,
      metadata,
      rowStart: readStart,
      rowEnd: readStart + rows,
      parsers: { stringFromBytes: keepBytes, timestampFromMicroseconds: keepMicros },
      compressors: { SNAPPY: snappyDecompress },
      onChunk: (chunk) => {
        const i = COLUMN_INDEX.get(chunk.columnName);
        if (i !== undefined) pages[i]?.push(chunk);
      },
    });
  } catch (err) {
    throw malformed(label, `rows ${rowStart + 1} to ${rowEnd} cannot be read (${err instanceof Error ? err.message : String(err)})`, err);
  }
  const columns = pages.map((chunks): ArrayLike<unknown> => {
    const only = chunks[0];
    if (chunks.length === 1 && only !== undefined && only.rowStart === readStart && only.columnData.length >= rows) return only.columnData;
    // Several pages (or a page that starts elsewhere): one array indexed by row; rows no page holds stay undefined.
    const values: unknown[] = new Array(rows);
    for (const chunk of chunks) {
      const data = chunk.columnData;
      const offset = chunk.rowStart - readStart;
      const from = Math.max(0, -offset);
      const to = Math.min(data.length, rows - offset);
      for (let k = from; k < to; k++) values[offset + k] = data[k];
    }
    return values;
  });
  // SQL NULL is null. undefined is a value hyparquet did not find: a
  // dictionary index beyond the dictionary, a page of fewer values than its
  // rows, a row no page holds. Read as NULL, it would be reported as an
  // edited event (hash mismatch) where the file is damaged.
  let missingRow = rows;
  let missingColumn = '';
  for (let c = 0; c < columns.length; c++) {
    const values = columns[c] as ArrayLike<unknown>;
    for (let i = 0; i < missingRow; i++) {
      if (values[i] === undefined) {
        missingRow = i;
        missingColumn = EXPORT_COLUMNS[c]?.[0] ?? '?';
        break;
      }
    }
  }
  if (missingRow < rows) {
    throw malformed(label, `row ${rowStart + missingRow + 1}: ${missingColumn} has no value (a dictionary index beyond its dictionary, or a page of fewer values than rows)`);
  }
  return { rowStart, rows, columns };
}

/** The bytes file[offset, rangeEnd) that a row group's column chunks occupy, as hyparquet locates them (dictionary page, else first data page). */
export function rowGroupRange(group: RowGroup, fileSize: number): { offset: number; rangeEnd: number } {
  let from = Infinity;
  let to = 0;
  for (const chunk of group.columns) {
    const meta = chunk.meta_data;
    if (meta === undefined) continue;
    const offset = meta.dictionary_page_offset || meta.data_page_offset;
    from = Math.min(from, Number(offset));
    to = Math.max(to, Number(offset + meta.total_compressed_size));
  }
  const offset = Number.isFinite(from) ? Math.min(Math.max(0, from), fileSize) : 0;
  return { offset, rangeEnd: Math.max(offset, to) };
}

/** file[offset, min(rangeEnd, fileSize)) in one buffer (shorter if the file is). */
export async function readRange(handle: FileHandle, offset: number, rangeEnd: number, fileSize: number): Promise<Buffer> {
  const data = Buffer.alloc(Math.max(0, Math.min(rangeEnd, fileSize) - offset));
  let read = 0;
  while (read < data.length) {
    const { bytesRead } = await handle.read(data, read, data.length - read, offset + read);
    if (bytesRead === 0) break;
    read += bytesRead;
  }
  return data.subarray(0, read);
}

/**
 * A Parquet file of which the main thread read the row group's bytes
 * file[offset, rangeEnd) (`bytes`, shorter when the file ends before
 * rangeEnd): reads inside that range are served from memory, anything else
 * (never, for files audit-trail wrote) from the file itself, as the
 * single-threaded reader would.
 */
export function rowGroupBuffer(path: string, fileSize: number, bytes: Uint8Array, offset: number, rangeEnd: number): AsyncBuffer {
  return {
    byteLength: fileSize,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const to = end ?? fileSize;
      if (start >= offset && to >= start && to <= rangeEnd) {
        return bytes.slice(start - offset, Math.min(to - offset, bytes.length)).buffer;
      }
      const handle = await open(path, 'r');
      try {
        const out = Buffer.alloc(Math.max(0, Math.min(to, fileSize) - start));
        const { bytesRead } = await handle.read(out, 0, out.length, start);
        return out.buffer.slice(out.byteOffset, out.byteOffset + bytesRead);
      } finally {
        await handle.close();
      }
    },
  };
}

/** One row group of a file and the bytes file[offset, rangeEnd) its column chunks occupy (shorter when the file ends first). */
export interface RowGroupBytes {
  metadata: FileMetaData;
  group: RowGroup;
  /** Row number (0-based) of the group's first row in the file. */
  rowStart: number;
  rows: number;
  bytes: Uint8Array;
  offset: number;
  rangeEnd: number;
}

/**
 * The row groups of a Parquet export file with their bytes, each read with
 * one read, the next group's while this one is decoded (hyparquet's
 * asyncBufferFromFile() streams every column chunk in 64 KiB pieces and
 * copies them, and the verifier waited for it).
 */
async function* readRowGroups(path: string, label: string): AsyncGenerator<RowGroupBytes & { fileSize: number }> {
  const { metadata } = await openParquetExport(path, label);
  const fileSize = (await stat(path)).size;
  const groups = metadata.row_groups;
  const ranges = groups.map((group) => rowGroupRange(group, fileSize));
  const handle = await open(path, 'r');
  const readGroup = (g: number): Promise<Buffer> | null => {
    const range = ranges[g];
    return range === undefined ? null : readRange(handle, range.offset, range.rangeEnd, fileSize);
  };
  let next = readGroup(0);
  try {
    let rowStart = 0;
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g] as RowGroup;
      const rows = Number(group.num_rows);
      const { offset, rangeEnd } = ranges[g] as { offset: number; rangeEnd: number };
      const bytes = (await next) as Buffer;
      next = readGroup(g + 1);
      yield { metadata, group, rowStart, rows, bytes, offset, rangeEnd, fileSize };
      rowStart += rows;
    }
  } finally {
    await next?.catch(() => undefined);
    await handle.close();
  }
}

/**
 * Reads a Parquet export file one row group at a time as hyparquet's column
 * arrays (readParquetEvents()). Text stays as UTF-8 bytes (never decoded: the
 * encoder hashes them as they are) and timestamps as microseconds.
 */
async function* readParquetColumns(path: string, label: string): AsyncGenerator<ColumnGroup> {
  for await (const { metadata, rowStart, rows, bytes, offset, rangeEnd, fileSize } of readRowGroups(path, label)) {
    const file = rowGroupBuffer(path, fileSize, bytes, offset, rangeEnd);
    yield await readColumnGroup(file, metadata, rowStart, rows, rowStart, label);
  }
}

/** The buffers of deliverRowGroup(), reused: it decodes and delivers one row group at a time. */
const decodeBuffers = new DecodeBuffers();

/**
 * Delivers the rows of one row group to `sink`: decoded by
 * parquet_decode.ts when the file is of the export's layout (`exportLayout`:
 * schemaIsExportLayout()) and its pages are too, otherwise by hyparquet
 * (`metadata` may hold this group only: the worker threads get it so; then
 * `readStart` is 0, else rowStart). Throws for a malformed row after
 * delivering the rows before it.
 */
export async function deliverRowGroup(
  { metadata, group, rowStart, rows, bytes, offset, rangeEnd }: RowGroupBytes,
  readStart: number,
  path: string,
  fileSize: number,
  exportLayout: boolean,
  sink: ExportEventSink,
  label: string,
): Promise<void> {
  // Page headers too are read by other readers (refuseWhatOtherReadersWouldReadOtherwise() checks the footer):
  // every page of every chunk is followed first, and the file refused where that fails.
  try {
    refuseForeignPageHeaders(group, bytes, offset);
  } catch (err) {
    if (!(err instanceof ParquetPageRefused)) throw err;
    const rowsOf = `rows ${rowStart + 1} to ${rowStart + rows}`;
    throw malformed(label, err.damaged ? `${rowsOf} cannot be read (${err.message})` : `${rowsOf} are refused: ${err.message}`, err);
  }
  let decoded: DecodedRowGroup | null = null;
  if (exportLayout) {
    try {
      decoded = decodeRowGroup(metadata, group, bytes, offset, rowStart, decodeBuffers);
    } catch (err) {
      // (the walk above refuses these first; never deferred to a more lenient reader)
      if (err instanceof ParquetPageRefused) throw malformed(label, `rows ${rowStart + 1} to ${rowStart + rows} are refused: ${err.message}`, err);
      // Pages of another layout, or damaged: hyparquet decodes them or names the problem.
      decoded = null;
    }
  }
  if (decoded !== null) {
    deliverDecodedGroup(decoded, sink, label);
    return;
  }
  const file = rowGroupBuffer(path, fileSize, bytes, offset, rangeEnd);
  deliverColumnGroup(await readColumnGroup(file, metadata, readStart, rows, rowStart, label), sink, label);
}

/**
 * Reads a Parquet export file into `sink`, one row group at a time, without
 * an object per value (parquet_decode.ts; hyparquet's column arrays for a
 * file or row group of another layout); yields the number of events of each
 * row group.
 */
export async function* readParquetInto(path: string, label: string, sink: ExportEventSink): AsyncGenerator<number> {
  let exportLayout: boolean | undefined;
  for await (const g of readRowGroups(path, label)) {
    exportLayout ??= schemaIsExportLayout(g.metadata, REQUIRED_COLUMNS);
    await deliverRowGroup(g, g.rowStart, path, g.fileSize, exportLayout, sink, label);
    yield g.rows;
  }
}

const C = Object.fromEntries(EXPORT_COLUMNS.map(([name], i) => [name, i])) as Record<(typeof EXPORT_COLUMNS)[number][0], number>;

/** A text or jsonb value: UTF-8 bytes, SQL NULL (null or missing), or a string. */
function textField(encoder: ChainEncoder, v: unknown, column: string, label: string, row: number): void {
  if (v instanceof Uint8Array) encoder.fieldBytes(v);
  else if (v === null || v === undefined) encoder.fieldNull();
  else if (typeof v === 'string') encoder.fieldBytes(Buffer.from(v, 'utf8'));
  else throw malformed(label, `row ${row}: ${column} is not text`);
}

const scratchPrevHash = Buffer.alloc(32);
const scratchRecordHash = Buffer.alloc(32);

/** Delivers the rows of one row group to `sink`; throws for a malformed row, after delivering the rows before it. */
export function deliverColumnGroup({ rowStart, rows, columns }: ColumnGroup, sink: ExportEventSink, label: string): void {
  const encoder = sink.encoder;
  const prevHash = scratchPrevHash;
  const recordHash = scratchRecordHash;
  const col = (name: keyof typeof C): ArrayLike<unknown> => columns[C[name]] as ArrayLike<unknown>;
  const sequenceNo = col('sequence_no');
  const occurredAt = col('occurred_at');
  const ingestedAt = col('ingested_at');
  const version = col('encoding_version');
  const prev = col('prev_hash');
  const record = col('record_hash');
  // The body's text and jsonb columns, in encoding order, with the two timestamps (null here) in their places.
  const body: Array<ArrayLike<unknown> | null> = [
    col('event_id'), col('tenant_id'), null, null, col('actor_type'), col('actor_id'), col('actor_name'), col('auth_method'),
    col('source_ip'), col('user_agent_hash'), col('action'), col('resource_type'), col('resource_id'), col('parent_type'),
    col('parent_id'), col('changes'), col('reason'), col('context'), col('db_identity'),
  ];
  const bodyNames = BODY_FIELDS.map(([name]) => name);
  for (let i = 0; i < rows; i++) {
    const row = rowStart + i + 1;
    const seq = sequenceNo[i];
    const occurred = occurredAt[i];
    const ingested = ingestedAt[i];
    if (typeof seq !== 'bigint' || typeof occurred !== 'bigint' || typeof ingested !== 'bigint') {
      throw malformed(label, `row ${row}: sequence_no, occurred_at and ingested_at must be INT64`);
    }
    encoder.beginBody();
    for (let f = 0; f < body.length; f++) {
      const values = body[f] as ArrayLike<unknown> | null;
      if (values === null) encoder.fieldTimestamp(f === 2 ? occurred : ingested);
      else textField(encoder, values[i], bodyNames[f] as string, label, row);
    }
    sink.event(
      seq,
      Number(version[i]),
      hashInto(prev[i], prevHash, 'prev_hash', label, row),
      hashInto(record[i], recordHash, 'record_hash', label, row),
      null,
    );
  }
}

const BODY_COLUMNS = BODY_FIELDS.map(([name]) => C[name]);
const OCCURRED_AT = C.occurred_at;
const INGESTED_AT = C.ingested_at;
let outBuffer: Buffer | null = null;
let outView: DataView = new DataView(new ArrayBuffer(0));

/**
 * Delivers the rows of a row group decoded by parquet_decode.ts to `sink`,
 * with the same checks and errors as deliverColumnGroup(). Each body is
 * written straight into the encoder's buffer: a text value is its bytes in
 * the decoded pages, a timestamp its eight little-endian bytes reversed (the
 * encoding's int64 big-endian), copied four bytes at a time.
 */
export function deliverDecodedGroup(decoded: DecodedRowGroup, sink: ExportEventSink, label: string): void {
  const results = sink.results;
  const core = results === undefined ? null : loadNativeCore();
  if (results === undefined || core === null) {
    deliverDecodedRows(decoded, 0, decoded.rows, sink, label);
    return;
  }
  // Runs of rows through the native core (src/export/native.ts); a row it does not take goes through deliverDecodedRows().
  let row = 0;
  while (row < decoded.rows) {
    if (results.count === results.seq.length) results.grow();
    core.parquetRows(decoded.bytes, decoded.start, decoded.length, row, decoded.rows, results.tenantBytes, results.tenantOk, results.seq, results.version, results.hashes, results.same, results.count, nativeState, nativeThreads());
    const next = nativeState[0] as number;
    results.count += next - row;
    row = next;
    if (row < decoded.rows && results.count < results.seq.length) {
      deliverDecodedRows(decoded, row, row + 1, sink, label);
      row++;
    }
  }
}

/** Scratch for the native core's state (the next row). */
const nativeState = new Float64Array(2);

/** deliverDecodedGroup() in TypeScript, for the rows from..to of the group. */
function deliverDecodedRows({ rowStart, view, start, length }: DecodedRowGroup, from: number, to: number, sink: ExportEventSink, label: string): void {
  const encoder = sink.encoder;
  const prevHash = scratchPrevHash;
  const recordHash = scratchRecordHash;
  const columnStart = BODY_COLUMNS.map((c) => start[c] as Int32Array);
  const columnLength = BODY_COLUMNS.map((c) => length[c] as Int32Array);
  const fields = columnStart.length;
  const seqStart = start[C.sequence_no] as Int32Array;
  const seqLength = length[C.sequence_no] as Int32Array;
  const occurredLength = length[OCCURRED_AT] as Int32Array;
  const ingestedLength = length[INGESTED_AT] as Int32Array;
  const versionStart = start[C.encoding_version] as Int32Array;
  const versionLength = length[C.encoding_version] as Int32Array;
  const prevStart = start[C.prev_hash] as Int32Array;
  const prevLength = length[C.prev_hash] as Int32Array;
  const recordStart = start[C.record_hash] as Int32Array;
  const recordLength = length[C.record_hash] as Int32Array;
  // The two timestamps' places among the body fields.
  const occurredField = BODY_COLUMNS.indexOf(OCCURRED_AT);
  const ingestedField = BODY_COLUMNS.indexOf(INGESTED_AT);
  // Room for the longest body of the group (each field at its column's longest value), reserved once per row;
  // four bytes to spare: a word copy may write up to three past a value (the next field overwrites them).
  let bodyRoom = 4;
  for (let f = 0; f < fields; f++) {
    const lengths = columnLength[f] as Int32Array;
    let longest = 0;
    for (let i = from; i < to; i++) longest = Math.max(longest, lengths[i] as number);
    bodyRoom += 4 + longest;
  }
  for (let i = from; i < to; i++) {
    const row = rowStart + i + 1;
    if (seqLength[i] !== 8 || occurredLength[i] !== 8 || ingestedLength[i] !== 8) {
      throw malformed(label, `row ${row}: sequence_no, occurred_at and ingested_at must be INT64`);
    }
    encoder.beginBody(bodyRoom);
    const b = encoder.buffer;
    if (b !== outBuffer) {
      outBuffer = b;
      outView = new DataView(b.buffer, b.byteOffset, b.byteLength);
    }
    const out = outView;
    let p = encoder.position;
    for (let f = 0; f < fields; f++) {
      const n = (columnLength[f] as Int32Array)[i] as number;
      if (n < 0) {
        out.setInt32(p, -1);
        p += 4;
        continue;
      }
      out.setUint32(p, n);
      p += 4;
      const s = (columnStart[f] as Int32Array)[i] as number;
      if (f === occurredField || f === ingestedField) {
        out.setUint32(p, view.getUint32(s + 4, true));
        out.setUint32(p + 4, view.getUint32(s, true));
      } else {
        for (let k = 0; k < n; k += 4) out.setInt32(p + k, view.getInt32(s + k, true), true);
      }
      p += n;
    }
    encoder.position = p;
    if (prevLength[i] !== 64 || !decodeLowerHex32View(view, prevStart[i] as number, prevHash)) throw malformed(label, `row ${row}: prev_hash is not 64 hex characters`);
    if (recordLength[i] !== 64 || !decodeLowerHex32View(view, recordStart[i] as number, recordHash)) throw malformed(label, `row ${row}: record_hash is not 64 hex characters`);
    const version = versionLength[i] === 4 ? view.getInt32(versionStart[i] as number, true) : Number.NaN;
    sink.event(view.getBigInt64(seqStart[i] as number, true), version, prevHash, recordHash, null);
  }
}

/**
 * Reads a Parquet export file one row group at a time as event objects (for
 * tools and tests; the verifier uses readParquetInto()). Text stays as UTF-8
 * bytes (never decoded).
 */
export async function* readParquetEvents(path: string, label: string): AsyncGenerator<ChainEvent[]> {
  for await (const { rowStart, rows, columns } of readParquetColumns(path, label)) {
    const value = (name: keyof typeof C, i: number): unknown => (columns[C[name]] as ArrayLike<unknown>)[i];
    const text = (name: keyof typeof C, i: number): Uint8Array | null => (value(name, i) ?? null) as Uint8Array | null;
    const batch: ChainEvent[] = new Array(rows);
    for (let i = 0; i < rows; i++) {
      const row = rowStart + i + 1;
      const seq = value('sequence_no', i);
      const occurred = value('occurred_at', i);
      const ingested = value('ingested_at', i);
      if (typeof seq !== 'bigint' || typeof occurred !== 'bigint' || typeof ingested !== 'bigint') {
        throw malformed(label, `row ${row}: sequence_no, occurred_at and ingested_at must be INT64`);
      }
      batch[i] = {
        sequence_no: seq,
        event_id: text('event_id', i),
        tenant_id: text('tenant_id', i),
        occurred_at: occurred,
        ingested_at: ingested,
        actor_type: text('actor_type', i),
        actor_id: text('actor_id', i),
        actor_name: text('actor_name', i),
        auth_method: text('auth_method', i),
        source_ip: text('source_ip', i),
        user_agent_hash: text('user_agent_hash', i),
        action: text('action', i),
        resource_type: text('resource_type', i),
        resource_id: text('resource_id', i),
        parent_type: text('parent_type', i),
        parent_id: text('parent_id', i),
        changes: text('changes', i),
        reason: text('reason', i),
        context: text('context', i),
        db_identity: text('db_identity', i),
        encoding_version: Number(value('encoding_version', i)),
        prev_hash: Buffer.from(hashInto(value('prev_hash', i), Buffer.alloc(32), 'prev_hash', label, row)),
        record_hash: Buffer.from(hashInto(value('record_hash', i), Buffer.alloc(32), 'record_hash', label, row)),
      };
    }
    yield batch;
  }
}
