/**
 * The exported hashes are decoded from their hex text four digits per read
 * (decodeLowerHex32View(), used by the JSONL fast path and the Parquet page
 * decoder): every valid hash gives Buffer.from(hex, 'hex'), and one bad
 * character at any of the 64 places (upper case, not a hex digit, a byte of a
 * multi-byte character) refuses the whole hash.
 */
import { describe, expect, it } from 'vitest';
import { decodeLowerHex32View } from '../../src/export/jsonl.ts';
import { seededRandom as random } from '../helpers/random.ts';

const view = (b: Buffer): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

describe('hash hex decoding', () => {
  it('gives the bytes of every valid hash, at any offset', () => {
    const rnd = random(7);
    for (let k = 0; k < 200; k++) {
      const bytes = Buffer.from(Array.from({ length: 32 }, () => Math.floor(rnd() * 256)));
      const at = k % 7;
      const text = Buffer.from(`${'x'.repeat(at)}${bytes.toString('hex')}`, 'latin1');
      const into = Buffer.alloc(32);
      expect(decodeLowerHex32View(view(text), at, into)).toBe(true);
      expect(into.equals(bytes)).toBe(true);
    }
    const all = Buffer.from('00ff0123456789abcdefaaf0' + '5a'.repeat(20), 'latin1');
    const into = Buffer.alloc(32);
    expect(decodeLowerHex32View(view(all), 0, into)).toBe(true);
    expect(into.toString('hex')).toBe(all.toString('latin1'));
  });

  it('refuses one bad character at any of the 64 places', () => {
    const good = '0123456789abcdef'.repeat(4);
    for (let place = 0; place < 64; place++) {
      for (const bad of ['A', 'F', 'g', 'G', ' ', '"', '/', ':', '`', '\u0000', '\u00e9']) {
        const text = Buffer.from(good.slice(0, place) + bad + good.slice(place + 1), 'latin1');
        expect(decodeLowerHex32View(view(text), 0, Buffer.alloc(32)), `${JSON.stringify(bad)} at ${place}`).toBe(false);
      }
    }
  });
});
