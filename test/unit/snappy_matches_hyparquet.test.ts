/**
 * The Parquet reader's Snappy decompressor (bulk and word copies) gives the
 * same bytes as hyparquet's byte-at-a-time snappyUncompress(), and refuses
 * what it refuses with the same message, on random streams of literals and
 * back references of every length and offset class, overlapping ones included.
 */
import { snappyUncompress } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { loadNativeCore } from '../../src/export/native.ts';
import { SPARE, snappyDecompress, snappyDecompressInto } from '../../src/export/snappy.ts';
import { seededRandom as random } from '../helpers/random.ts';
import { nativeCoreTestable } from '../helpers/native_core.ts';


function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 128) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** A valid Snappy stream of random elements and its uncompressed length. */
function stream(rnd: () => number): { bytes: Uint8Array; length: number } {
  const body: number[] = [];
  let length = 0;
  const elements = 1 + Math.floor(rnd() * 60);
  for (let e = 0; e < elements; e++) {
    if (length === 0 || rnd() < 0.4) {
      const len = 1 + Math.floor(rnd() < 0.7 ? rnd() * 60 : rnd() * 3000);
      if (len <= 60) body.push((len - 1) << 2);
      else if (len <= 256) body.push(60 << 2, len - 1);
      else body.push(61 << 2, (len - 1) & 0xff, (len - 1) >>> 8);
      for (let i = 0; i < len; i++) body.push(Math.floor(rnd() * 256));
      length += len;
    } else {
      const offset = 1 + Math.floor(rnd() * Math.min(length, rnd() < 0.5 ? 8 : 5000));
      const kind = rnd();
      if (kind < 0.4 && offset < 2048) {
        const len = 4 + Math.floor(rnd() * 8);
        body.push(1 | ((len - 4) << 2) | ((offset >>> 8) << 5), offset & 0xff);
        length += len;
      } else if (kind < 0.8) {
        const len = 1 + Math.floor(rnd() * 64);
        body.push(2 | ((len - 1) << 2), offset & 0xff, offset >>> 8);
        length += len;
      } else {
        const len = 1 + Math.floor(rnd() * 64);
        body.push(3 | ((len - 1) << 2), offset & 0xff, (offset >>> 8) & 0xff, 0, 0);
        length += len;
      }
    }
  }
  return { bytes: Uint8Array.from([...varint(length), ...body]), length };
}

function hyparquet(input: Uint8Array, length: number): Uint8Array | string {
  try {
    const out = new Uint8Array(length);
    snappyUncompress(input, out);
    return out;
  } catch (err) {
    return (err as Error).message;
  }
}

function ours(input: Uint8Array, length: number): Uint8Array | string {
  try {
    return snappyDecompress(input, length);
  } catch (err) {
    return (err as Error).message;
  }
}

describe('snappyDecompress', () => {
  it('gives the bytes hyparquet gives on valid streams', () => {
    const rnd = random(7);
    for (let n = 0; n < 3000; n++) {
      const { bytes, length } = stream(rnd);
      // Inside a larger buffer, as a Parquet page is a view of the file's bytes.
      const framed = new Uint8Array(bytes.length + 16);
      framed.set(bytes, 8);
      const input = framed.subarray(8, 8 + bytes.length);
      const expected = hyparquet(input, length);
      expect(expected).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(ours(input, length) as Uint8Array).equals(Buffer.from(expected as Uint8Array))).toBe(true);
    }
  });

  it('refuses damaged streams and wrong lengths as hyparquet does', () => {
    const rnd = random(11);
    for (let n = 0; n < 3000; n++) {
      const { bytes, length } = stream(rnd);
      const damaged = Uint8Array.from(bytes);
      const cut = rnd() < 0.3;
      if (!cut) damaged[Math.floor(rnd() * damaged.length)] = Math.floor(rnd() * 256);
      const input = cut ? damaged.subarray(0, Math.floor(rnd() * damaged.length)) : damaged;
      const claimed = rnd() < 0.2 ? length + Math.floor(rnd() * 9) - 4 : length;
      if (claimed < 0) continue;
      const expected = hyparquet(input, claimed);
      const actual = ours(input, claimed);
      if (typeof expected === 'string') {
        expect(actual).toBe(expected);
      } else {
        expect(actual).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(actual as Uint8Array).equals(Buffer.from(expected))).toBe(true);
      }
    }
  });

  it.runIf(nativeCoreTestable())('the native core (native/verify_native.c) takes a stream only where snappyDecompressInto() does, with the same bytes', () => {
    const core = loadNativeCore();
    const rnd = random(13);
    let taken = 0;
    let declined = 0;
    for (let n = 0; n < 6000; n++) {
      const { bytes, length } = stream(rnd);
      const input = Uint8Array.from(bytes);
      if (n % 2 === 1) input[Math.floor(rnd() * input.length)] = Math.floor(rnd() * 256);
      const claimed = n % 5 === 4 ? Math.max(0, length + Math.floor(rnd() * 9) - 4) : length;
      // Both write at an offset inside a larger output, as the page decoder does.
      const js = new Uint8Array(claimed + SPARE + 16);
      const native = new Uint8Array(claimed + SPARE + 16);
      const jsOk = snappyDecompressInto(input, js, 16, claimed);
      const nativeOk = core?.snappyDecompress(input, 0, input.length, native, 16, claimed) === true;
      if (nativeOk) {
        expect(jsOk).toBe(true);
        expect(Buffer.from(native.subarray(16, 16 + claimed)).equals(Buffer.from(js.subarray(16, 16 + claimed)))).toBe(true);
        taken++;
      } else {
        declined++;
      }
      if (n % 2 === 0 && claimed === length) expect(nativeOk).toBe(true); // every valid stream
    }
    expect(taken).toBeGreaterThan(2000);
    expect(declined).toBeGreaterThan(500);
  });
});
