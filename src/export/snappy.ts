/**
 * Snappy decompression for the Parquet reader (hyparquet's `compressors`
 * option): the algorithm of hyparquet's own snappyUncompress() (after
 * snappyjs, MIT), which copies every byte of a literal or a back reference in
 * a JavaScript loop: the verifier spent about as long there as in SHA-256
 * (an export's hash columns are hex text that hardly compresses: long
 * literals; its jsonb text is mostly short back references). Here a long
 * literal is one TypedArray.set() (a memcpy) and a long back reference that
 * does not overlap its own output one copyWithin(); short ones stay a loop,
 * which costs less than a call. Other copies go four bytes at a time. A
 * stream it finds damaged is handed to hyparquet's snappyUncompress(), so the
 * error (or the bytes) are exactly hyparquet's.
 */
import { snappyUncompress } from 'hyparquet';

/** Copies of at least this many bytes go through set()/copyWithin(); shorter ones are copied four bytes at a time. */
const BULK = 32;

const WORD_MASK = [0, 0xff, 0xffff, 0xffffff, 0xffffffff];

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
  // Four spare bytes: a word copy may write up to three bytes past a copy's
  // end (they are overwritten by the next one); the caller gets the exact length.
  const output = new Uint8Array(outputLength + 4);
  const out = new DataView(output.buffer);
  const inp = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const inputLength = input.byteLength;
  let pos = 0;
  let outPos = 0;

  // The preamble: the uncompressed length as a varint (checked by the caller against the page header).
  while (pos < inputLength) {
    const c = input[pos] as number;
    pos++;
    if (c < 128) break;
  }
  if (outputLength && pos >= inputLength) return null;

  while (pos < inputLength) {
    const c = input[pos] as number;
    pos++;
    if (pos >= inputLength) return null;

    if ((c & 0x3) === 0) {
      // A literal: bytes stored as they are.
      let len = (c >>> 2) + 1;
      if (len > 60) {
        if (pos + 3 >= inputLength) return null;
        const lengthSize = len - 60;
        len = (input[pos] as number) + ((input[pos + 1] as number) << 8) + ((input[pos + 2] as number) << 16) + ((input[pos + 3] as number) << 24);
        len = (len & (WORD_MASK[lengthSize] as number)) + 1;
        pos += lengthSize;
      }
      if (pos + len > inputLength) return null;
      if (outPos + len > outputLength) return null;
      if (len >= BULK) output.set(input.subarray(pos, pos + len), outPos);
      else if (pos + len + 4 <= inputLength) for (let i = 0; i < len; i += 4) out.setInt32(outPos + i, inp.getInt32(pos + i, true), true);
      else for (let i = 0; i < len; i++) output[outPos + i] = input[pos + i] as number;
      pos += len;
      outPos += len;
    } else {
      // A back reference: `len` bytes from `offset` bytes back in the output.
      let len = 0;
      let offset = 0;
      switch (c & 0x3) {
        case 1:
          len = ((c >>> 2) & 0x7) + 4;
          offset = (input[pos] as number) + ((c >>> 5) << 8);
          pos++;
          break;
        case 2:
          if (inputLength <= pos + 1) return null;
          len = (c >>> 2) + 1;
          offset = (input[pos] as number) + ((input[pos + 1] as number) << 8);
          pos += 2;
          break;
        default:
          if (inputLength <= pos + 3) return null;
          len = (c >>> 2) + 1;
          offset = (input[pos] as number) + ((input[pos + 1] as number) << 8) + ((input[pos + 2] as number) << 16) + ((input[pos + 3] as number) << 24);
          pos += 4;
          break;
      }
      if (offset === 0 || Number.isNaN(offset)) return null;
      if (offset > outPos) return null;
      if (outPos + len > outputLength) return null;
      const from = outPos - offset;
      // An overlapping reference repeats its own output (a run): with an
      // offset below 4, only a byte loop does that; from 4 on, words read
      // bytes already written.
      if (len >= BULK && offset >= len) output.copyWithin(outPos, from, from + len);
      else if (offset >= 4) for (let i = 0; i < len; i += 4) out.setInt32(outPos + i, out.getInt32(from + i, true), true);
      else for (let i = 0; i < len; i++) output[outPos + i] = output[from + i] as number;
      outPos += len;
    }
  }

  if (outPos !== outputLength) return null;
  return output.subarray(0, outputLength);
}
