/**
 * The JSONL reader's fast path (field boundaries found in the bytes, strings
 * copied and unescaped straight into the encoder) accepts a line only when it
 * gives exactly what JSON.parse and parseJsonlEvent() give: the same body
 * bytes, sequence_no, encoding_version and hashes. Every line it declines is
 * decoded, or refused naming the file and line, by parseJsonlEvent().
 */
import { isUtf8 } from 'node:buffer';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainEncoder } from '../../src/chain/encoding.ts';
import type { ChainEvent } from '../../src/chain/verifier.ts';
import type { ExportEventSink, ExportRow } from '../../src/export/columns.ts';
import { JsonlLineDecoder, parseJsonlEvent, readJsonlInto } from '../../src/export/jsonl.ts';
import { seededRandom as random } from '../helpers/random.ts';
import { LINE_EDITS, row, writtenLines } from '../helpers/jsonl_lines.ts';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'jsonl-fast-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});


/** What the slow path makes of a line: the message for sequence_no and prev_hash, or the error. */
function slow(line: string): { message: string; seq: bigint; version: number; prev: string; record: string; tenant: string | null } | { error: string } {
  let e: ChainEvent;
  try {
    e = parseJsonlEvent(line, 'f.jsonl', 7);
  } catch (err) {
    return { error: (err as Error).message };
  }
  const encoder = new ChainEncoder();
  return {
    message: encoder.encodeBody(e).toString('hex'),
    seq: e.sequence_no,
    version: e.encoding_version,
    prev: e.prev_hash.toString('hex'),
    record: e.record_hash.toString('hex'),
    tenant: typeof e.tenant_id === 'string' ? e.tenant_id : null,
  };
}

const decoder = new JsonlLineDecoder();
const fastEncoder = new ChainEncoder();

/** What the fast path makes of a line, or null when it declines. */
function fast(line: string | Buffer): { message: string; seq: bigint; version: number; prev: string; record: string } | null {
  const data = Buffer.concat([typeof line === 'string' ? Buffer.from(line, 'utf8') : line, Buffer.from('\n')]);
  // As readJsonlInto(): only valid UTF-8 goes to the fast path.
  if (!isUtf8(data)) return null;
  if (!decoder.decode(data, 0, data.length - 1, fastEncoder)) return null;
  return {
    message: fastEncoder.buffer.subarray(0, fastEncoder.position).toString('hex'),
    seq: decoder.sequenceNo,
    version: decoder.encodingVersion,
    prev: decoder.prevHash.toString('hex'),
    record: decoder.recordHash.toString('hex'),
  };
}

function expectSame(line: string | Buffer): 'fast' | 'declined' {
  const got = fast(line);
  if (got === null) return 'declined';
  const want = slow(typeof line === 'string' ? line : line.toString('utf8'));
  expect(want, `the fast path accepted a line JSON.parse refuses: ${String(line)}`).not.toHaveProperty('error');
  const { tenant: _tenant, ...rest } = want as Record<string, unknown>;
  expect(got).toEqual(rest);
  return 'fast';
}

const linesOf = (rows: ExportRow[]): Promise<string[]> => writtenLines(work, rows);

describe('the JSONL fast path', () => {
  it('takes the lines the writer writes and gives what JSON.parse gives', async () => {
    const rnd = random(1);
    const rows = Array.from({ length: 3000 }, (_, i) => row(rnd, i + 1));
    for (const line of await linesOf(rows)) {
      // A tenant_id with escapes is left to the slow path on purpose (it is compared as a string).
      const tenantEscaped = JSON.stringify((JSON.parse(line) as { tenant_id: string }).tenant_id).includes('\\');
      expect(expectSame(line)).toBe(tenantEscaped ? 'declined' : 'fast');
    }
  });

  it('gives what JSON.parse gives, or declines, for edited lines (escapes, numbers, whitespace, garbage)', async () => {
    const rnd = random(2);
    const lines = await linesOf(Array.from({ length: 400 }, (_, i) => row(rnd, i + 1)));
    const edits = LINE_EDITS;
    let accepted = 0;
    let declined = 0;
    for (const [i, line] of lines.entries()) {
      for (const edit of edits) {
        const edited = edit(line);
        if (expectSame(edited) === 'fast') accepted++;
        else declined++;
        // Random single-byte damage anywhere in the line.
        const bytes = Buffer.from(edited, 'utf8');
        if (bytes.length > 0) {
          const at = Math.floor(rnd() * bytes.length);
          bytes[at] = Math.floor(rnd() * 128);
          expectSame(bytes);
        }
      }
      void i;
    }
    expect(accepted).toBeGreaterThan(0);
    expect(declined).toBeGreaterThan(0);
  });

  it('refuses lines a reader could take for other values than those hashed (found by differential fuzzing)', async () => {
    const [line] = await linesOf([{ ...row(random(4), 1), occurred_at_us: '1740830400000000', reason: 'ok', tenant_id: 'plant_hd' }]);
    const l = line as string;
    const refused = (edited: string, message: string): void => {
      expect(fast(edited), edited).toBeNull();
      expect(slow(edited)).toEqual({ error: `f.jsonl, line 7: ${message}` });
    };
    // Dates that do not exist, which Date.parse would roll over to the next day.
    for (const date of ['2025-02-29T12:00:00', '2025-04-31T00:00:00', '1900-02-29T00:00:00', '2025-01-01T24:00:00', '2025-01-01T23:60:00', '2025-01-01T23:59:60']) {
      refused(l.replace(/"occurred_at":"[^"]*"/, `"occurred_at":"${date}.000000Z"`), '"occurred_at" must be an ISO-8601 UTC timestamp such as 2025-01-31T08:15:00.123456Z (or +200000-01-01T00:00:00.000000Z)');
    }
    expect(slow(l.replace(/"occurred_at":"[^"]*"/, '"occurred_at":"2024-02-29T12:00:00.000000Z"'))).not.toHaveProperty('error');
    // Lone surrogates: not text; hashing them as U+FFFD would verify a line that reads otherwise.
    for (const escape of ['\\ud800', '\\udc00', 'a\\ud83dx']) {
      refused(l.replace('"reason":"ok"', `"reason":"${escape}"`), '"reason" holds a lone UTF-16 surrogate escape, which is not text');
    }
    // A key given twice, also under an escaped spelling; a key that is no column.
    refused(l.replace('"reason":"ok"', '"reason":"tampered","reason":"ok"'), 'the key "reason" appears twice: readers disagree on which value counts');
    refused(l.replace('"reason":"ok"', '"\\u0072eason":"tampered","reason":"ok"'), 'the key "reason" appears twice: readers disagree on which value counts');
    refused(l.replace('"reason":"ok"', '"reason":"ok","reason_override":"approved"'), 'unknown key "reason_override": not a column of the export, and covered by no hash');
    // Whole numbers only: 1.0000000000000001 parses as 1.
    for (const spelling of ['1.0000000000000001', '1.0', '1e0', '10e-1']) {
      refused(l.replace('"sequence_no":1,', `"sequence_no":${spelling},`), `"sequence_no" must be written as a whole number, found ${spelling}`);
      refused(l.replace('"encoding_version":', `"encoding_version":${spelling},"x":`).replace(/,"x":\d+/, ''), `"encoding_version" must be written as a whole number, found ${spelling}`);
    }
    // What reads as the same values still verifies: keys in another order, whitespace, escapes.
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(l) as Record<string, unknown>).reverse()), null, 1).replace(/\n/g, ' ');
    expect(slow(reordered)).toEqual(slow(l));
  });

  it('reads files whose lines cross read boundaries, refuses what is not UTF-8, and names the line of garbage', async () => {
    const rnd = random(3);
    const rows = Array.from({ length: 60 }, (_, i) => row(rnd, i + 1));
    for (const [i, r] of rows.entries()) if (i % 7 === 3) r.changes = `"${'x€'.repeat(150_000 + i * 10_000)}"`;
    const lines = await linesOf(rows);
    const file = path.join(work, 'big.jsonl');
    await writeFile(file, lines.map((l) => `${l}\n`).join(''));

    const got: Array<{ seq: bigint; message: string; record: string }> = [];
    const sink: ExportEventSink = {
      encoder: new ChainEncoder(),
      event(seq, _version, _prev, record) {
        got.push({ seq, message: this.encoder.buffer.subarray(0, this.encoder.position).toString('hex'), record: record.toString('hex') });
      },
    };
    let digest = '';
    for await (const _ of readJsonlInto(file, file, sink, (d) => (digest = d)));
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    const text = (await readFile(file)).toString('utf8').split('\n').slice(0, -1);
    expect(got.length).toBe(text.length);
    for (const [i, line] of text.entries()) {
      const want = slow(line) as { message: string; seq: bigint; record: string };
      expect(got[i]).toEqual({ seq: want.seq, message: want.message, record: want.record });
    }

    // An invalid UTF-8 byte inside a string is not JSON text: refused, naming the line (not read as U+FFFD).
    const withBadByte = Buffer.from(`${lines[10]}\n`, 'utf8');
    withBadByte[withBadByte.indexOf('"action":"') + 10] = 0xff;
    const notUtf8 = path.join(work, 'not-utf8.jsonl');
    await writeFile(notUtf8, Buffer.concat([Buffer.from(lines.slice(0, 10).map((l) => `${l}\n`).join(''), 'utf8'), withBadByte, Buffer.from(`${lines[11]}\n`, 'utf8')]));
    await expect(async () => {
      for await (const _ of readJsonlInto(notUtf8, notUtf8, sink, () => undefined));
    }).rejects.toThrow(`${notUtf8}, line 11: not valid UTF-8`);

    const garbage = path.join(work, 'garbage.jsonl');
    await writeFile(garbage, `${lines[0]}\n${lines[1]}\n{"sequence_no":3,garbage\n${lines[3]}\n`);
    await expect(async () => {
      for await (const _ of readJsonlInto(garbage, garbage, sink, () => undefined));
    }).rejects.toThrow(`${garbage}, line 3: not valid JSON`);

    const cut = path.join(work, 'cut.jsonl');
    await writeFile(cut, `${lines[0]}\n${lines[1]}\n${(lines[2] as string).slice(0, 50)}`);
    await expect(async () => {
      for await (const _ of readJsonlInto(cut, cut, sink, () => undefined));
    }).rejects.toThrow(`${cut}, line 3: the last line has no end (the file was truncated)`);
  });
});
