/**
 * Parquet page headers (Thrift compact protocol) taken apart and written
 * again in other, equally valid or deliberately odd, forms: long-form field
 * ids, fields out of order or repeated, overlong varints, fields the writer
 * never writes. For the tests that check every reader of the verifier reads
 * such a header the same way (or refuses it the same way).
 */
import type { RowGroup } from 'hyparquet';

/** A field: i32 (Thrift type 5) or i64 (6) value, boolean (types 1/2), or a nested struct (12). */
export interface ThriftField {
  id: number;
  type: number;
  value: number | boolean | ThriftField[];
  /** Write the field id in the long form (type byte, then the id as a zigzag varint). */
  longId?: boolean;
  /** Extra varint continuation bytes for an integer value (the same value, overlong). */
  overlong?: number;
}

function varint(b: Uint8Array, pos: { at: number }): number {
  let result = 0;
  let shift = 0;
  for (;;) {
    const c = b[pos.at++] as number;
    result += (c & 0x7f) * 2 ** shift;
    if (c < 0x80) return result;
    shift += 7;
  }
}

const unzigzag = (v: number): number => (v % 2 === 0 ? v / 2 : -(v + 1) / 2);
const zigzag = (v: number): number => (v >= 0 ? v * 2 : -v * 2 - 1);

/** The struct at b[pos.at], as fields; pos.at moves past its stop byte. Types beyond 1, 2, 5, 6, 12 are not needed here. */
export function readStruct(b: Uint8Array, pos: { at: number }): ThriftField[] {
  const fields: ThriftField[] = [];
  let id = 0;
  for (;;) {
    const h = b[pos.at++] as number;
    if (h === 0) return fields;
    const type = h & 0x0f;
    const longId = h >>> 4 === 0;
    id = longId ? unzigzag(varint(b, pos)) : id + (h >>> 4);
    let value: ThriftField['value'];
    if (type === 1 || type === 2) value = type === 1;
    else if (type === 5 || type === 6) value = unzigzag(varint(b, pos));
    else if (type === 12) value = readStruct(b, pos);
    else throw new Error(`Thrift type ${type} not expected in a page header`);
    fields.push({ id, type, value, ...(longId ? { longId } : {}) });
  }
}

function writeVarint(out: number[], v: number, overlong = 0): void {
  for (;;) {
    const low = v % 128;
    v = Math.floor(v / 128);
    if (v === 0 && overlong === 0) {
      out.push(low);
      return;
    }
    out.push(low | 0x80);
    if (v === 0) {
      for (let k = 1; k < overlong; k++) out.push(0x80);
      out.push(0);
      return;
    }
  }
}

export function writeStruct(fields: ThriftField[], out: number[] = []): number[] {
  let last = 0;
  for (const f of fields) {
    const type = f.type === 1 || f.type === 2 ? (f.value === true ? 1 : 2) : f.type;
    const delta = f.id - last;
    if (f.longId === true || delta < 1 || delta > 15) {
      out.push(type);
      writeVarint(out, zigzag(f.id));
    } else {
      out.push((delta << 4) | type);
    }
    last = f.id;
    if (type === 5 || type === 6) writeVarint(out, zigzag(f.value as number), f.overlong ?? 0);
    else if (type === 12) writeStruct(f.value as ThriftField[], out);
  }
  out.push(0);
  return out;
}

/**
 * `bytes` (a row group's bytes, from file offset `offset` on) with the first
 * page header of column chunk `column` replaced by what `rewrite` makes of
 * its fields; the group's metadata moved to match (later offsets shifted,
 * the chunk's sizes grown or shrunk).
 */
export function rewriteFirstPageHeader(
  bytes: Uint8Array,
  offset: number,
  group: RowGroup,
  column: number,
  rewrite: (fields: ThriftField[]) => ThriftField[],
): { bytes: Uint8Array; group: RowGroup } {
  const meta = group.columns[column]?.meta_data;
  if (meta === undefined) throw new Error('no such column chunk');
  const chunkStart = Number(meta.dictionary_page_offset || meta.data_page_offset);
  const pos = { at: chunkStart - offset };
  const fields = readStruct(bytes, pos);
  const header = Uint8Array.from(writeStruct(rewrite(fields)));
  const delta = header.length - (pos.at - (chunkStart - offset));
  const out = new Uint8Array(bytes.length + delta);
  out.set(bytes.subarray(0, chunkStart - offset), 0);
  out.set(header, chunkStart - offset);
  out.set(bytes.subarray(pos.at), chunkStart - offset + header.length);
  const shift = (v: bigint | undefined): bigint | undefined => (v !== undefined && v > BigInt(chunkStart) ? v + BigInt(delta) : v);
  const columns = group.columns.map((chunk, c) => {
    const m = chunk.meta_data;
    if (m === undefined) return chunk;
    const moved = { ...m, data_page_offset: shift(m.data_page_offset) as bigint, dictionary_page_offset: shift(m.dictionary_page_offset) };
    if (c === column) {
      moved.total_compressed_size = m.total_compressed_size + BigInt(delta);
      moved.total_uncompressed_size = m.total_uncompressed_size + BigInt(delta);
    }
    return { ...chunk, meta_data: moved };
  });
  return { bytes: out, group: { ...group, columns, total_byte_size: group.total_byte_size + BigInt(delta) } };
}
