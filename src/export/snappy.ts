/**
 * Snappy decompression for the Parquet reader (hyparquet's `compressors`
 * option): the algorithm of hyparquet's own snappyUncompress() (after
 * snappyjs, MIT), which copies every byte of a literal or a back reference in
 * a JavaScript loop: the verifier spent about as long there as in SHA-256
 * (an export's hash columns are hex text: literals and back references of
 * 4 to 5 bytes on average; its jsonb text is mostly back references). Here
 * a long literal is one TypedArray.set() (a memcpy) and a long back
 * reference that does not overlap its own output one copyWithin(); one of
 * up to 8 bytes is two word copies, others go four bytes at a time. A
 * stream it finds damaged is handed to hyparquet's snappyUncompress(), so the
 * error (or the bytes) are exactly hyparquet's.
 */
import { snappyUncompress } from 'hyparquet';

/** Copies of at least this many bytes go through set()/copyWithin(); shorter ones are copied four bytes at a time. */
const BULK = 32;

const WORD_MASK = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

/** Bytes snappyDecompressInto() may write past the end of its output (a copy of up to 8 bytes is two words). */
export const SPARE = 8;

/** Decompresses the Snappy block `input`, which must hold exactly `outputLength` bytes. */
export function snappyDecompress(input: Uint8Array, outputLength: number): Uint8Array {
  const output = decompress(input, outputLength);
  if (output !== null) return output;
  const exact = new Uint8Array(outputLength);
  snappyUncompress(input, exact); // throws hyparquet's error
  return exact;
}

/** The decompressed bytes, or null when the stream is damaged or of another length. */
function decompress(input: Uint8Array, outputLength: number): Uint8Array | null {
  // Spare bytes: a word copy may write past a copy's end (they are
  // overwritten by the next one); the caller gets the exact length.
  const output = new Uint8Array(outputLength + SPARE);
  if (!snappyDecompressInto(input, output, 0, outputLength)) return null;
  return output.subarray(0, outputLength);
}

/**
 * Decompresses the Snappy block `input` into output[outStart, outStart +
 * outputLength); false when the stream is damaged or does not hold exactly
 * outputLength bytes. A back reference may only reach bytes of this block.
 * `output` must have SPARE bytes to spare after outStart + outputLength (a
 * short copy writes a whole word or two past its end, overwritten by the
 * next one); bytes after outStart + outputLength may be changed.
 */
export function snappyDecompressInto(input: Uint8Array, output: Uint8Array, outStart: number, outputLength: number): boolean {
  if (outStart < 0 || outStart + outputLength + SPARE > output.length) return false;
  const out = new DataView(output.buffer, output.byteOffset, output.byteLength);
  const inp = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const inputLength = input.byteLength;
  const outEnd = outStart + outputLength;
  let pos = 0;
  let outPos = outStart;

  // The preamble: the uncompressed length as a varint (checked by the caller against the page header).
  while (pos < inputLength) {
    const c = input[pos] as number;
    pos++;
    if (c < 128) break;
  }
  if (outputLength && pos >= inputLength) return false;

  while (pos < inputLength) {
    const c = input[pos] as number;
    pos++;
    if (pos >= inputLength) return false;
    const kind = c & 0x3;

    if (kind === 0) {
      // A literal: bytes stored as they are.
      let len = (c >>> 2) + 1;
      if (len > 60) {
        if (pos + 3 >= inputLength) return false;
        const lengthSize = len - 60;
        len = (input[pos] as number) + ((input[pos + 1] as number) << 8) + ((input[pos + 2] as number) << 16) + ((input[pos + 3] as number) << 24);
        len = (len & (WORD_MASK[lengthSize] as number)) + 1;
        pos += lengthSize;
        if (len < 1) return false; // a length of 2^31 or more (negative as an int32)
      }
      if (pos + len > inputLength) return false;
      if (outPos + len > outEnd) return false;
      if (len <= 8 && pos + 8 <= inputLength) {
        // Most literals of an export are short (hex digits between matches): two words.
        out.setInt32(outPos, inp.getInt32(pos));
        out.setInt32(outPos + 4, inp.getInt32(pos + 4));
      } else if (len >= BULK) output.set(input.subarray(pos, pos + len), outPos);
      else if (pos + len + 4 <= inputLength) for (let i = 0; i < len; i += 4) out.setInt32(outPos + i, inp.getInt32(pos + i));
      else for (let i = 0; i < len; i++) output[outPos + i] = input[pos + i] as number;
      pos += len;
      outPos += len;
    } else {
      // A back reference: `len` bytes from `offset` bytes back in the output.
      let len;
      let offset;
      if (kind === 1) {
        len = ((c >>> 2) & 0x7) + 4;
        offset = (input[pos] as number) + ((c >>> 5) << 8);
        pos++;
      } else if (kind === 2) {
        if (inputLength <= pos + 1) return false;
        len = (c >>> 2) + 1;
        offset = (input[pos] as number) + ((input[pos + 1] as number) << 8);
        pos += 2;
      } else {
        if (inputLength <= pos + 3) return false;
        len = (c >>> 2) + 1;
        offset = (input[pos] as number) + ((input[pos + 1] as number) << 8) + ((input[pos + 2] as number) << 16) + ((input[pos + 3] as number) << 24);
        pos += 4;
      }
      if (offset <= 0 || offset > outPos - outStart) return false;
      if (outPos + len > outEnd) return false;
      const from = outPos - offset;
      // An overlapping reference repeats its own output (a run): with an
      // offset below 4, only a byte loop does that; from 4 on, words read
      // bytes already written (from 8 on, two words at once do).
      if (len <= 8 && offset >= 8) {
        out.setInt32(outPos, out.getInt32(from));
        out.setInt32(outPos + 4, out.getInt32(from + 4));
      } else if (len >= BULK && offset >= len) output.copyWithin(outPos, from, from + len);
      else if (offset >= 4) for (let i = 0; i < len; i += 4) out.setInt32(outPos + i, out.getInt32(from + i));
      else for (let i = 0; i < len; i++) output[outPos + i] = output[from + i] as number;
      outPos += len;
    }
  }

  return outPos === outEnd;
}
