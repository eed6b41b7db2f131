/**
 * A decoder for the Parquet pages that audit-trail export writes (with
 * hyparquet-writer, see parquet.ts), straight into flat arrays: the bytes of
 * a row group's pages decompressed into one buffer, and per column and row
 * the offset and length of the value in it. No object per value, so the
 * verifier spends its time in SHA-256 rather than in the garbage collector
 * (hyparquet makes a Uint8Array per text value and a BigInt per integer).
 *
 * It handles exactly the layout the writer produces: the export's schema
 * (PARQUET_SCHEMA, same names, types and repetition), SNAPPY or UNCOMPRESSED
 * column chunks, an optional PLAIN dictionary page, then DATA_PAGE_V2 pages
 * with PLAIN or RLE_DICTIONARY values and RLE/bit-packed definition levels
 * for OPTIONAL columns. Anything else, and anything inconsistent (a header
 * or Snappy stream that does not parse, lengths that leave the page, counts
 * that do not add up), is a ParquetLayoutError: the reader then reads that
 * row group with hyparquet's generic decoder, which either decodes it or
 * fails with its own error (naming the file and rows). So for any file this
 * decoder gives exactly the values hyparquet gives, or defers to it.
 */
import type { FileMetaData, RowGroup, SchemaElement } from 'hyparquet';
import { EXPORT_COLUMNS } from './columns.ts';
import { SPARE, snappyDecompressInto } from './snappy.ts';
import { loadNativeCore, nativeThreads } from './native.ts';

/** The pages are not of the layout this decoder reads (or are damaged): read them with hyparquet instead. */
export class ParquetLayoutError extends Error {
  override readonly name: string = 'ParquetLayoutError';
}

/**
 * A page header that other readers could read otherwise than this verifier
 * (statistics they may skip a page by, an index page header): not a
 * layout to fall back from, a file to refuse. refuseForeignPageHeaders()
 * throws it before any page is decoded; to the page decoder itself it is one
 * more layout it does not read.
 */
export class ParquetPageRefused extends ParquetLayoutError {
  override readonly name = 'ParquetPageRefused';

  /** damaged: the pages cannot be followed (rather than carrying what the writer never writes). */
  constructor(
    message: string,
    readonly damaged = false,
  ) {
    super(message);
  }
}

/**
 * Walks the page headers of every column chunk of `group` (src: the file's
 * bytes from fileOffset on; the chunk starts where other readers start it,
 * at the dictionary page offset when it is not 0, else the data page offset)
 * and throws ParquetPageRefused for a header that carries what the writer
 * never writes (see readPageHeader), and for a chunk whose pages cannot be
 * followed to its end exactly: outside the bytes read, a header that does not
 * parse, a page that runs past the chunk. A reader more lenient than this one
 * (hyparquet, pyarrow) could read such a chunk, statistics included, where
 * this walk could not look.
 */
export function refuseForeignPageHeaders(group: RowGroup, src: Uint8Array, fileOffset: number): void {
  group.columns.forEach((chunk, c) => {
    const meta = chunk.meta_data;
    if (meta === undefined) throw new ParquetPageRefused(`column chunk ${c + 1} has no metadata`, true);
    const column = meta.path_in_schema.join('.');
    let pos = Number(meta.dictionary_page_offset || meta.data_page_offset) - fileOffset;
    const end = pos + Number(meta.total_compressed_size);
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(end) || pos < 0 || end < pos || end > src.length) {
      throw new ParquetPageRefused(`the column chunk of ${column} lies outside the file`, true);
    }
    while (pos < end) {
      let h: PageHeader;
      try {
        h = readPageHeader(src, pos, end);
      } catch (err) {
        if (err instanceof ParquetPageRefused || !(err instanceof Error)) throw err;
        throw new ParquetPageRefused(`a page header of ${column} cannot be read (${err.message})`, true);
      }
      pos = h.end + h.compressedSize;
      if (pos > end) throw new ParquetPageRefused(`a page of ${column} runs past its column chunk`, true);
    }
  });
}

/**
 * Walks every field of a Parquet footer (FileMetaData, Thrift compact) and
 * throws ParquetPageRefused for a field id that is not a 16-bit one: hyparquet,
 * which parses the footer for refuseWhatOtherReadersWouldReadOtherwise(), keeps
 * such a field apart, where C++ readers take it for a known one (statistics,
 * key-value metadata). A footer the walk cannot follow is refused as damaged.
 */
export function refuseForeignFooterFields(footer: Uint8Array): void {
  const r = new ThriftReader(footer, 0, footer.length);
  try {
    r.struct(() => false);
  } catch (err) {
    if (err instanceof ParquetPageRefused || !(err instanceof Error)) throw err;
    throw new ParquetPageRefused(`the footer cannot be followed field by field (${err.message.replace('a page header', 'it')})`, true);
  }
  if (r.pos !== footer.length) throw new ParquetPageRefused(`the footer has ${footer.length - r.pos} bytes after its end`, true);
}

/** One row group, decoded: for column c (EXPORT_COLUMNS order) and row i, the value is bytes[start[c][i], + length[c][i]). */
export interface DecodedRowGroup {
  /** Row number (0-based) of the group's first row in the file. */
  rowStart: number;
  rows: number;
  /** The decompressed pages of all columns, with SPARE (8) bytes to spare at the end (word copies may read past a value). */
  bytes: Uint8Array;
  view: DataView;
  start: Int32Array[];
  /** -1 for SQL NULL; INT64 values are 8 bytes, INT32 values 4, little-endian as Parquet stores them. */
  length: Int32Array[];
}

// Thrift and Parquet enum values (parquet.thrift).
const PAGE_DICTIONARY = 2;
const PAGE_DATA_V2 = 3;
const ENCODING_PLAIN = 0;
const ENCODING_PLAIN_DICTIONARY = 2;
const ENCODING_RLE_DICTIONARY = 8;

function layout(what: string): ParquetLayoutError {
  return new ParquetLayoutError(what);
}

/** The export's schema, as the writer writes it (the reference the file's schema must equal). */
const EXPECTED_SCHEMA: Array<{ name: string; type: string; converted: string | undefined; timestamp: boolean }> = EXPORT_COLUMNS.map(([name, kind]) => ({
  name,
  type: kind === 'int64' || kind === 'timestamp' ? 'INT64' : kind === 'int32' ? 'INT32' : 'BYTE_ARRAY',
  converted: kind === 'int64' || kind === 'int32' || kind === 'timestamp' ? undefined : 'UTF8',
  timestamp: kind === 'timestamp',
}));

/**
 * Whether the file's schema is the export's, column for column (names,
 * physical types, annotations, REQUIRED/OPTIONAL as `required` says). Other
 * files are read with hyparquet.
 */
export function schemaIsExportLayout(metadata: FileMetaData, required: ReadonlySet<string>): boolean {
  const schema = metadata.schema;
  if (schema.length !== EXPECTED_SCHEMA.length + 1 || schema[0]?.num_children !== EXPECTED_SCHEMA.length) return false;
  for (let c = 0; c < EXPECTED_SCHEMA.length; c++) {
    const want = EXPECTED_SCHEMA[c] as (typeof EXPECTED_SCHEMA)[number];
    const have = schema[c + 1] as SchemaElement;
    if (have.name !== want.name || have.type !== want.type || (have.num_children ?? 0) !== 0) return false;
    if (have.repetition_type !== (required.has(want.name) ? 'REQUIRED' : 'OPTIONAL')) return false;
    if (have.converted_type !== want.converted && !(want.timestamp && have.converted_type === 'TIMESTAMP_MICROS')) return false;
    const logical = have.logical_type;
    if (want.timestamp) {
      if (logical !== undefined && !(logical.type === 'TIMESTAMP' && logical.unit === 'MICROS')) return false;
      if (logical === undefined && have.converted_type !== 'TIMESTAMP_MICROS') return false;
    } else if (logical !== undefined && !(want.converted === 'UTF8' && logical.type === 'STRING')) {
      return false;
    }
  }
  return true;
}

/** A page header (the fields this decoder uses), read with the Thrift compact protocol. */
interface PageHeader {
  type: number;
  uncompressedSize: number;
  compressedSize: number;
  dictionaryValues: number;
  dictionaryEncoding: number;
  values: number;
  nulls: number;
  rows: number;
  encoding: number;
  definitionLength: number;
  repetitionLength: number;
  compressed: boolean;
  hasV2: boolean;
  hasDictionary: boolean;
  /** Position of the page's data. */
  end: number;
}

/** Reads Thrift compact-protocol structs from `b`, within [pos, limit). */
class ThriftReader {
  constructor(
    readonly b: Uint8Array,
    public pos: number,
    readonly limit: number,
  ) {}

  byte(): number {
    if (this.pos >= this.limit) throw layout('a page header runs past its column chunk');
    return this.b[this.pos++] as number;
  }

  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const c = this.byte();
      if (shift < 35) result += (c & 0x7f) * 2 ** shift;
      else if ((c & 0x7f) !== 0) throw layout('a page header holds an integer out of range');
      if (c < 0x80) return result;
      shift += 7;
      if (shift > 70) throw layout('a page header holds an integer that does not end');
    }
  }

  /** A zigzag i32; i64 values beyond 2^53 are refused (no page header field needs them). */
  int(): number {
    const v = this.varint();
    if (v > Number.MAX_SAFE_INTEGER) throw layout('a page header holds an integer out of range');
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  }

  /** Skips a value of `type` (a boolean in a list or map is a byte; a boolean field is in its header). */
  skip(type: number, depth = 0, element = false): void {
    if (depth > 16) throw layout('a page header nests too deeply');
    switch (type) {
      case 1: // true
      case 2: // false
        if (element) this.byte();
        return;
      case 3: // byte
        this.byte();
        return;
      case 4: // i16
      case 5: // i32
      case 6: // i64
        this.varint();
        return;
      case 7: // double
        this.pos += 8;
        if (this.pos > this.limit) throw layout('a page header runs past its column chunk');
        return;
      case 8: {
        // binary
        const n = this.varint();
        this.pos += n;
        if (this.pos > this.limit) throw layout('a page header runs past its column chunk');
        return;
      }
      case 9: // list
      case 10: {
        // set
        const h = this.byte();
        const size = h >>> 4 === 15 ? this.varint() : h >>> 4;
        for (let i = 0; i < size; i++) this.skip(h & 0x0f, depth + 1, true);
        return;
      }
      case 11: {
        // map
        const size = this.varint();
        if (size === 0) return;
        const kv = this.byte();
        for (let i = 0; i < size; i++) {
          this.skip(kv >>> 4, depth + 1, true);
          this.skip(kv & 0x0f, depth + 1, true);
        }
        return;
      }
      case 12: // struct
        this.struct(() => false, depth + 1);
        return;
      default:
        throw layout(`a page header holds an unknown Thrift type ${type}`);
    }
  }

  /** Reads a struct; `field(id, type)` reads the fields it knows (returns true), the others are skipped. */
  struct(field: (id: number, type: number) => boolean, depth = 0): void {
    let id = 0;
    for (;;) {
      const h = this.byte();
      if (h === 0) return;
      const type = h & 0x0f;
      const delta = h >>> 4;
      id = delta === 0 ? this.int() : id + delta;
      // Thrift field ids are 16-bit: C++ readers (Arrow, DuckDB) read 65548 as 12, hyparquet as an unknown field.
      if (id < 1 || id > 32767) throw new ParquetPageRefused(`a Thrift field id ${id} that is not a 16-bit field id: readers disagree on which field it is`);
      if (!field(id, type)) this.skip(type, depth);
    }
  }

  /** An i32 field's value (type 5), refusing other types. */
  i32(type: number): number {
    if (type !== 5) throw layout(`a page header field has Thrift type ${type}, not i32`);
    return this.int();
  }
}

const STATISTICS_REFUSED = 'a data page header carries statistics: readers may skip the page by its min/max, and no hash covers them';

function readPageHeader(b: Uint8Array, pos: number, limit: number): PageHeader {
  const r = new ThriftReader(b, pos, limit);
  const h: PageHeader = {
    type: -1,
    uncompressedSize: -1,
    compressedSize: -1,
    dictionaryValues: -1,
    dictionaryEncoding: -1,
    values: -1,
    nulls: -1,
    rows: -1,
    encoding: -1,
    definitionLength: -1,
    repetitionLength: -1,
    compressed: true,
    hasV2: false,
    hasDictionary: false,
    end: 0,
  };
  r.struct((id, type) => {
    switch (id) {
      case 1:
        h.type = r.i32(type);
        return true;
      case 2:
        h.uncompressedSize = r.i32(type);
        return true;
      case 3:
        h.compressedSize = r.i32(type);
        return true;
      case 5:
        // A version 1 data page header (other writers' pages; this decoder defers them to hyparquet):
        // refused only where it carries statistics, as in a version 2 header below.
        if (type !== 12) return false; // (not such a header: damage, which decoding names)
        r.struct((d, t) => {
          if (d === 5 && t === 12) throw new ParquetPageRefused(STATISTICS_REFUSED);
          return false;
        });
        return true;
      case 6:
        if (type !== 12) return false; // (not such a header: damage, which decoding names)
        // No writer writes index pages: a part that readers may go by and no hash covers.
        throw new ParquetPageRefused('a page header carries an index page header, which the writer never writes');
      case 7:
        if (type !== 12) return false;
        h.hasDictionary = true;
        r.struct((d, t) => {
          if (d === 1) h.dictionaryValues = r.i32(t);
          else if (d === 2) h.dictionaryEncoding = r.i32(t);
          else return false;
          return true;
        });
        return true;
      case 8:
        if (type !== 12) return false;
        h.hasV2 = true;
        r.struct((d, t) => {
          switch (d) {
            case 1:
              h.values = r.i32(t);
              return true;
            case 2:
              h.nulls = r.i32(t);
              return true;
            case 3:
              h.rows = r.i32(t);
              return true;
            case 4:
              h.encoding = r.i32(t);
              return true;
            case 5:
              h.definitionLength = r.i32(t);
              return true;
            case 6:
              h.repetitionLength = r.i32(t);
              return true;
            case 7:
              if (t !== 1 && t !== 2) throw layout('is_compressed is not a boolean');
              h.compressed = t === 1;
              return true;
            case 8:
              if (t !== 12) return false; // (not statistics: damage, which decoding names)
              // The writer writes none: readers may skip the page by its min/max, and no hash covers them.
              throw new ParquetPageRefused(STATISTICS_REFUSED);
            default:
              return false;
          }
        });
        return true;
      default:
        return false;
    }
  });
  h.end = r.pos;
  if (h.uncompressedSize < 0 || h.compressedSize < 0) throw layout('a page header without its sizes');
  return h;
}

/**
 * Reads `count` values of the RLE/bit-packed hybrid encoding of `bitWidth`
 * from b[pos, end) into out[0, count); returns the position after the runs
 * read (the last bit-packed group may hold padding past `count`).
 */
export function readHybrid(b: Uint8Array, pos: number, end: number, bitWidth: number, out: Int32Array, count: number): number {
  if (bitWidth > 32) throw layout(`bit width ${bitWidth}`);
  const byteWidth = (bitWidth + 7) >>> 3;
  const mask = bitWidth === 32 ? 0xffffffff : (1 << bitWidth) - 1;
  let n = 0;
  while (n < count) {
    // The run's header: a ULEB128 varint.
    let header = 0;
    let shift = 0;
    for (;;) {
      if (pos >= end) throw layout('RLE/bit-packed values run past their page');
      const c = b[pos++] as number;
      header += (c & 0x7f) * 2 ** shift;
      if (c < 0x80) break;
      shift += 7;
      if (shift > 28) throw layout('an RLE/bit-packed run header out of range');
    }
    if (header % 2 === 0) {
      // A run of one value repeated.
      const run = header / 2;
      if (pos + byteWidth > end) throw layout('RLE/bit-packed values run past their page');
      let value = 0;
      for (let k = 0; k < byteWidth; k++) value += (b[pos + k] as number) * 2 ** (8 * k);
      pos += byteWidth;
      if (run === 0) throw layout('an empty RLE run');
      const to = Math.min(count, n + run);
      for (; n < to; n++) out[n] = value | 0;
    } else {
      // Groups of 8 values, bitWidth bits each, least significant bit first.
      const values = ((header - 1) / 2) * 8;
      const bytes = (values * bitWidth) / 8;
      if (pos + bytes > end) throw layout('RLE/bit-packed values run past their page');
      const to = Math.min(count, n + values);
      if (bitWidth === 1) {
        for (let k = 0; n < to; k++, n++) out[n] = ((b[pos + (k >>> 3)] as number) >>> (k & 7)) & 1;
      } else if (bitWidth <= 24) {
        // An accumulator of at most 31 bits: whole bytes go in until a value is there.
        let acc = 0;
        let bits = 0;
        let p = pos;
        for (; n < to; n++) {
          while (bits < bitWidth) {
            acc |= (b[p++] as number) << bits;
            bits += 8;
          }
          out[n] = acc & mask;
          acc >>>= bitWidth;
          bits -= bitWidth;
        }
      } else {
        let p = pos;
        let bit = 0;
        for (; n < to; n++) {
          let v = 0;
          let got = 0;
          while (got < bitWidth) {
            const take = Math.min(8 - bit, bitWidth - got);
            v += (((b[p] as number) >>> bit) & ((1 << take) - 1)) * 2 ** got;
            got += take;
            bit += take;
            if (bit === 8) {
              bit = 0;
              p++;
            }
          }
          out[n] = v | 0;
        }
      }
      pos += bytes;
    }
  }
  return pos;
}

/** Scratch arrays reused between pages and row groups (one decoder per thread). */
let levels: Int32Array = new Int32Array(1024);
let indexes: Int32Array = new Int32Array(1024);

function scratch(a: Int32Array, n: number): Int32Array {
  return a.length >= n ? a : new Int32Array(Math.max(n, a.length * 2));
}

/** Buffers a decoder reuses from one row group to the next (see decodeRowGroup()). */
export class DecodeBuffers {
  private target: ColumnTarget | null = null;
  private readonly columns: Int32Array[] = [];
  /** The native core's description of the group's column chunks (see parquetGroup()). */
  readonly description = new Float64Array(7 * EXPORT_COLUMNS.length);

  bytesFor(size: number): ColumnTarget {
    let t = this.target;
    if (t === null || t.bytes.length < size) {
      const bytes = new Uint8Array(Math.max(size, Math.min(2 * (t?.bytes.length ?? 0), 2 ** 31 - 1)));
      t = { bytes, view: new DataView(bytes.buffer), out: 0 };
      this.target = t;
    }
    t.out = 0;
    return t;
  }

  /** Scratch column `k`, `rows` long (a view of a reused array). */
  column(k: number, rows: number): Int32Array {
    let a = this.columns[k];
    if (a === undefined || a.length < rows) {
      a = new Int32Array(rows);
      this.columns[k] = a;
    }
    return a.length === rows ? a : a.subarray(0, rows);
  }
}

export interface ColumnTarget {
  bytes: Uint8Array;
  view: DataView;
  /** Next free byte of `bytes`. */
  out: number;
}

/**
 * Decompresses (or copies) a page's values b[from, from + compressedSize)
 * into the target; returns where they start in target.bytes.
 */
function pageValues(src: Uint8Array, from: number, compressedSize: number, uncompressedSize: number, snappy: boolean, target: ColumnTarget): number {
  const at = target.out;
  if (at + uncompressedSize + SPARE > target.bytes.length) throw layout('the pages hold more bytes than the column chunk metadata says');
  // A page without value bytes (all NULL) may hold a Snappy stream of nothing; hyparquet skips it too.
  if (uncompressedSize === 0) return at;
  if (snappy) {
    // The native core (when loaded) takes a stream only where snappyDecompressInto() would, with the same bytes; else that decides.
    const native = from + compressedSize <= src.length && loadNativeCore()?.snappyDecompress(src, from, from + compressedSize, target.bytes, at, uncompressedSize) === true;
    if (!native && !snappyDecompressInto(src.subarray(from, from + compressedSize), target.bytes, at, uncompressedSize)) throw layout('a Snappy stream is damaged');
  } else {
    if (compressedSize !== uncompressedSize) throw layout('an uncompressed page of two different sizes');
    target.bytes.set(src.subarray(from, from + compressedSize), at);
  }
  target.out = at + uncompressedSize;
  return at;
}

/**
 * Reads `count` PLAIN values of `type` from bytes[pos, end) into
 * start/length[0, count); they must fill the page exactly.
 */
/** readPlain() through the native core when it is loaded (the TypeScript decides wherever the core declines). */
function plain(target: ColumnTarget, pos: number, end: number, type: string, count: number, start: Int32Array, length: Int32Array, firstSlot: number): void {
  const width = type === 'INT64' ? 8 : type === 'INT32' ? 4 : 0;
  if (loadNativeCore()?.readPlain(target.bytes, pos, end, width, count, start, length, firstSlot) !== true) readPlain(target, pos, end, type, count, start, length, firstSlot);
}

/** readHybrid() through the native core when it is loaded (as plain()). */
function hybrid(b: Uint8Array, pos: number, end: number, bitWidth: number, out: Int32Array, count: number): number {
  const at = loadNativeCore()?.readHybrid(b, pos, end, bitWidth, out, count) ?? -1;
  return at >= 0 ? at : readHybrid(b, pos, end, bitWidth, out, count);
}

export function readPlain(target: ColumnTarget, pos: number, end: number, type: string, count: number, start: Int32Array, length: Int32Array, firstSlot: number): void {
  const view = target.view;
  const width = type === 'INT64' ? 8 : type === 'INT32' ? 4 : 0;
  for (let k = 0; k < count; k++) {
    let n = width;
    if (width === 0) {
      if (pos + 4 > end) throw layout('a value runs past its page');
      n = view.getUint32(pos, true);
      pos += 4;
    }
    if (n > end - pos) throw layout('a value runs past its page');
    start[firstSlot + k] = pos;
    length[firstSlot + k] = n;
    pos += n;
  }
  if (pos !== end) throw layout('a page holds more bytes than its values');
}

/** Where a column chunk's pages are in `src` (the file's bytes from `fileOffset` on), after the checks of its metadata. */
interface ChunkPlace {
  chunkStart: number;
  chunkEnd: number;
  snappy: boolean;
}

function chunkPlace(src: Uint8Array, fileOffset: number, meta: NonNullable<RowGroup['columns'][number]['meta_data']>, type: string, rows: number): ChunkPlace {
  if (meta.codec !== 'SNAPPY' && meta.codec !== 'UNCOMPRESSED') throw layout(`codec ${meta.codec}`);
  if (meta.type !== type) throw layout(`column chunk of type ${meta.type}, the schema says ${type}`);
  if (Number(meta.num_values) !== rows) throw layout('a column chunk with another number of values than rows');
  const chunkStart = Number(meta.dictionary_page_offset || meta.data_page_offset) - fileOffset;
  const chunkEnd = chunkStart + Number(meta.total_compressed_size);
  if (!(chunkStart >= 0 && chunkEnd <= src.length && chunkEnd >= chunkStart)) throw layout('a column chunk outside the bytes read');
  return { chunkStart, chunkEnd, snappy: meta.codec === 'SNAPPY' };
}

/**
 * Decodes the column chunk at `place` of a row group whose bytes (from the
 * file's `fileOffset` on) are `src`: fills start/length for rows [0, rows).
 */
function decodeColumn(
  src: Uint8Array,
  { chunkStart, chunkEnd, snappy }: ChunkPlace,
  type: string,
  optional: boolean,
  rows: number,
  target: ColumnTarget,
  start: Int32Array,
  length: Int32Array,
): void {
  const core = loadNativeCore();
  let pos = chunkStart;
  let dictStart: Int32Array | null = null;
  let dictLength: Int32Array | null = null;
  let done = 0;
  let first = true;
  while (done < rows) {
    const h = readPageHeader(src, pos, chunkEnd);
    pos = h.end;
    const dataEnd = pos + h.compressedSize;
    if (dataEnd > chunkEnd) throw layout('a page runs past its column chunk');
    if (h.type === PAGE_DICTIONARY) {
      if (!first || !h.hasDictionary) throw layout('a dictionary page that is not the first page');
      if (h.dictionaryEncoding !== ENCODING_PLAIN && h.dictionaryEncoding !== ENCODING_PLAIN_DICTIONARY) throw layout('a dictionary that is not PLAIN');
      if (h.dictionaryValues < 0) throw layout('a dictionary page without its number of values');
      const at = pageValues(src, pos, h.compressedSize, h.uncompressedSize, snappy, target);
      dictStart = new Int32Array(h.dictionaryValues);
      dictLength = new Int32Array(h.dictionaryValues);
      plain(target, at, at + h.uncompressedSize, type, h.dictionaryValues, dictStart, dictLength, 0);
    } else if (h.type === PAGE_DATA_V2 && h.hasV2) {
      if (h.repetitionLength !== 0) throw layout('repetition levels in a flat column');
      if (h.values < 0 || h.nulls < 0 || h.rows !== h.values || h.values === 0) throw layout('a data page whose counts do not add up');
      if (h.rows > rows - done) throw layout('a data page holds more rows than its row group');
      if (h.definitionLength < 0 || h.definitionLength > h.compressedSize || h.definitionLength > h.uncompressedSize) throw layout('definition levels longer than their page');
      const count = h.values;
      const present = count - h.nulls;
      if (present < 0) throw layout('a data page with more NULLs than values');
      if (optional) {
        levels = scratch(levels, count);
        const end = hybrid(src, pos, pos + h.definitionLength, 1, levels, count);
        if (end !== pos + h.definitionLength) throw layout('definition levels shorter than their stated length');
        let defined = core?.definedCount(levels, count) ?? -1;
        if (defined < 0) {
          defined = 0;
          for (let k = 0; k < count; k++) {
            const l = levels[k] as number;
            if (l > 1) throw layout('a definition level above the maximum');
            defined += l;
          }
        }
        if (defined !== present) throw layout('definition levels and num_nulls disagree');
      } else if (h.definitionLength !== 0 || h.nulls !== 0) {
        throw layout('NULLs in a REQUIRED column');
      }
      const valuesFrom = pos + h.definitionLength;
      const valuesSize = h.uncompressedSize - h.definitionLength;
      const at = pageValues(src, valuesFrom, dataEnd - valuesFrom, valuesSize, snappy && h.compressed, target);
      const end = at + valuesSize;
      if (h.encoding === ENCODING_PLAIN) {
        if (present === count) {
          plain(target, at, end, type, count, start, length, done);
        } else {
          // Values of the defined rows, then spread over the rows (NULL: length -1).
          indexes = scratch(indexes, count * 2);
          const vs = indexes.subarray(0, present);
          const vl = indexes.subarray(count, count + present);
          plain(target, at, end, type, present, vs, vl, 0);
          const spread = core?.spreadValues(levels, count, vs, vl, null, present, start, length, done) === true;
          for (let k = 0, v = 0; !spread && k < count; k++) {
            if (levels[k] === 1) {
              start[done + k] = vs[v] as number;
              length[done + k] = vl[v] as number;
              v++;
            } else {
              start[done + k] = 0;
              length[done + k] = -1;
            }
          }
        }
      } else if (h.encoding === ENCODING_RLE_DICTIONARY || h.encoding === ENCODING_PLAIN_DICTIONARY) {
        if (dictStart === null || dictLength === null) throw layout('dictionary-encoded values without a dictionary');
        if (valuesSize < 1) throw layout('dictionary indexes without their bit width');
        indexes = scratch(indexes, present);
        hybrid(target.bytes, at + 1, end, target.bytes[at] as number, indexes, present);
        const size = dictStart.length;
        const spread = core?.spreadValues(optional ? levels : null, count, dictStart, dictLength, indexes, size, start, length, done) === true;
        for (let k = 0, v = 0; !spread && k < count; k++) {
          if (!optional || levels[k] === 1) {
            const i = indexes[v++] as number;
            if (i < 0 || i >= size) throw layout('a dictionary index out of range');
            start[done + k] = dictStart[i] as number;
            length[done + k] = dictLength[i] as number;
          } else {
            start[done + k] = 0;
            length[done + k] = -1;
          }
        }
      } else {
        throw layout(`encoding ${h.encoding}`);
      }
      done += count;
    } else {
      throw layout(`page type ${h.type}`);
    }
    first = false;
    pos = dataEnd;
  }
}

/**
 * Decodes row group `group` of an export file whose schema passed
 * schemaIsExportLayout(), from `src`: the file's bytes from `fileOffset` on
 * (at least up to the end of the group's last column chunk). Throws
 * ParquetLayoutError for pages it does not read (read those with hyparquet).
 * With `into`, the result lives in its buffers until the next call with
 * them (a reader decodes and delivers one group at a time: no new buffers
 * of a few MB per row group for the collector to clear).
 */
export function decodeRowGroup(metadata: FileMetaData, group: RowGroup, src: Uint8Array, fileOffset: number, rowStart: number, into?: DecodeBuffers): DecodedRowGroup {
  const rows = Number(group.num_rows);
  if (!Number.isSafeInteger(rows) || rows < 0) throw layout('a row group without a row count');
  const columns = group.columns;
  if (columns.length !== EXPORT_COLUMNS.length) throw layout('a row group with another number of columns than the schema');
  // Each column's values get a part of the bytes of their chunk's uncompressed size (its pages and their headers) and SPARE.
  const sizes: number[] = [];
  let total = 0;
  for (const chunk of columns) {
    const size = Number(chunk.meta_data?.total_uncompressed_size ?? Number.NaN);
    if (!Number.isSafeInteger(size) || size < 0) throw layout('a column chunk without its size');
    sizes.push(size + SPARE);
    total += size + SPARE;
  }
  if (total > 2 ** 31 - 1) throw layout('a row group over 2 GiB');
  const reuse = into ?? new DecodeBuffers();
  const target = reuse.bytesFor(total);
  const bytes = target.bytes;
  const start: Int32Array[] = [];
  const length: Int32Array[] = [];
  const places: ChunkPlace[] = [];
  const optional: boolean[] = [];
  const types: string[] = [];
  for (let c = 0; c < columns.length; c++) {
    const meta = columns[c]?.meta_data;
    const element = metadata.schema[c + 1] as SchemaElement;
    if (meta === undefined || meta.path_in_schema.length !== 1 || meta.path_in_schema[0] !== element.name) throw layout('column chunks in another order than the schema');
    types.push(element.type as string);
    optional.push(element.repetition_type === 'OPTIONAL');
    places.push(chunkPlace(src, fileOffset, meta, element.type as string, rows));
    start.push(reuse.column(2 * c, rows));
    length.push(reuse.column(2 * c + 1, rows));
  }
  // The native core decodes the whole group on its threads, or leaves it to the TypeScript below.
  const core = loadNativeCore();
  if (core !== null) {
    const description = reuse.description;
    let part = 0;
    places.forEach(({ chunkStart, chunkEnd, snappy }, c) => {
      const type = types[c];
      description.set([chunkStart, chunkEnd, type === 'INT64' ? 8 : type === 'INT32' ? 4 : 0, optional[c] ? 1 : 0, snappy ? 1 : 0, part, part + (sizes[c] as number)], 7 * c);
      part += sizes[c] as number;
    });
    if (core.parquetGroup(src, description, rows, bytes, start, length, nativeThreads())) return { rowStart, rows, bytes, view: target.view, start, length };
  }
  // (the TypeScript fills the bytes column after column, all of them within the chunks' sizes and one SPARE)
  const sequential: ColumnTarget = { bytes: bytes.subarray(0, total - (columns.length - 1) * SPARE), view: target.view, out: 0 };
  for (let c = 0; c < columns.length; c++) {
    decodeColumn(src, places[c] as ChunkPlace, types[c] as string, optional[c] as boolean, rows, sequential, start[c] as Int32Array, length[c] as Int32Array);
  }
  return { rowStart, rows, bytes: sequential.bytes, view: target.view, start, length };
}
