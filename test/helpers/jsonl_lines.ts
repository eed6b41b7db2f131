/**
 * JSONL export lines for the readers' differential tests: rows of random
 * awkward text (escapes, control characters, text outside the BMP, combining
 * marks, right-to-left text, JSON-looking text), and edits of a written line
 * (escapes, numbers, whitespace, garbage) that a reader must decode exactly
 * as JSON.parse does, or decline.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ExportRow } from '../../src/export/columns.ts';
import { JsonlFileWriter } from '../../src/export/jsonl.ts';

/** The lines JsonlFileWriter writes for `rows` (into a file of `dir`), without their newlines. */
export async function writtenLines(dir: string, rows: ExportRow[]): Promise<string[]> {
  const file = path.join(dir, `rows-${Math.random().toString(36).slice(2)}.jsonl`);
  const writer = new JsonlFileWriter(file);
  await writer.writeRows(rows);
  await writer.close();
  return (await readFile(file, 'utf8')).split('\n').slice(0, -1);
}

const PIECES = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\r', '\b', '\f', '\u0000', '\u001f', '\u007f', 'é', 'e\u0301', '\u05d0\u05d1', '\u{1d11e}', '😀', '\ufeff', '\uffff', '{"k": [1, 2.50]}', '\u2028'];

function text(rnd: () => number, max = 12): string {
  let s = '';
  const n = Math.floor(rnd() * max);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(rnd() * PIECES.length)];
  return s;
}

const hex64 = (rnd: () => number): string => Array.from({ length: 64 }, () => '0123456789abcdef'[Math.floor(rnd() * 16)]).join('');

export function row(rnd: () => number, i: number): ExportRow {
  const maybe = (): string | null => (rnd() < 0.3 ? null : text(rnd));
  const micros = BigInt(Math.floor((rnd() - 0.3) * 4e15)) * (rnd() < 0.1 ? 50n : 1n);
  return {
    sequence_no: String(i),
    event_id: text(rnd),
    tenant_id: rnd() < 0.8 ? 'plant_hd' : text(rnd),
    occurred_at_us: String(micros),
    ingested_at_us: String(micros + BigInt(Math.floor(rnd() * 2e6))),
    actor_type: text(rnd),
    actor_id: maybe(),
    actor_name: maybe(),
    auth_method: maybe(),
    source_ip: maybe(),
    user_agent_hash: maybe(),
    action: text(rnd),
    resource_type: text(rnd),
    resource_id: maybe(),
    parent_type: maybe(),
    parent_id: maybe(),
    changes: text(rnd, 40),
    reason: maybe(),
    context: text(rnd),
    db_identity: text(rnd),
    encoding_version: rnd() < 0.9 ? 1 : Math.floor(rnd() * 1000),
    prev_hash: hex64(rnd),
    record_hash: hex64(rnd),
  };
}

/** Edits of a line JsonlFileWriter wrote. */
export const LINE_EDITS: ReadonlyArray<(l: string) => string> = [
  (l) => l.replace('"event_id":"', '"event_id":"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\ud800x\\udc00\\uDBFF\\uDFFF\\/'),
  (l) => l.replace('"changes":"', '"changes":"\\ud83d\\ud83d\\ude00\\u12'),
  (l) => l.replace('"changes":"', '"changes":"\\x'),
  (l) => l.replace('"changes":"', '"changes":"\t'),
  (l) => l.replace('"tenant_id":"', '"tenant_id":"\\u0070'),
  (l) => l.replace('"sequence_no":', '"sequence_no":0'),
  (l) => l.replace(/"sequence_no":\d+/, '"sequence_no":1.0'),
  (l) => l.replace(/"sequence_no":\d+/, '"sequence_no":1e2'),
  (l) => l.replace(/"sequence_no":\d+/, '"sequence_no":-3'),
  (l) => l.replace(/"sequence_no":\d+/, '"sequence_no":9007199254740993'),
  (l) => l.replace(/"sequence_no":\d+/, '"sequence_no":123456789012345'),
  (l) => l.replace(/"encoding_version":\d+/, '"encoding_version":01'),
  (l) => l.replace(/"encoding_version":\d+/, '"encoding_version":0'),
  (l) => l.replace(/"encoding_version":\d+/, '"encoding_version":-1'),
  (l) => l.replace(/"prev_hash":"[0-9a-f]{64}"/, `"prev_hash":"${'A'.repeat(64)}"`),
  (l) => l.replace(/"prev_hash":"[0-9a-f]{64}"/, `"prev_hash":"${'a'.repeat(63)}"`),
  (l) => l.replace(/("occurred_at":"[^"]*)\.\d+Z"/, '$1Z"'),
  (l) => l.replace(/("occurred_at":"[^"]*)\.\d+Z"/, '$1.1Z"'),
  (l) => l.replace(/("occurred_at":"[^"]*)\.\d+Z"/, '$1.1234567Z"'),
  (l) => l.replace(/("occurred_at":"[^"]*)\.\d+Z"/, '$1.Z"'),
  (l) => l.replace(/"occurred_at":"\d{4}-\d\d-\d\d/, '"occurred_at":"2025-02-30'),
  (l) => l.replace(/"occurred_at":"\d{4}-\d\d-\d\d/, '"occurred_at":"2025-13-01'),
  (l) => l.replace(/"occurred_at":"\d{4}/, '"occurred_at":"\\u0032025'),
  (l) => l.replace(/"ingested_at":"\d{4}/, '"ingested_at":"9999'),
  (l) => l.replace(/"ingested_at":"\d{4}/, '"ingested_at":"0000'),
  (l) => l.replace('"actor_id":', '"actor_id": '),
  (l) => l.replace('"actor_type":"', '"actor_type":null,"x":"'),
  (l) => l.replace(/"actor_type":"[^"]*"/, '"actor_type":null'),
  (l) => l.replace(/"reason":("[^"\\]*"|null)/, '"reason":nul'),
  (l) => l.replace(/"reason":("[^"\\]*"|null)/, '"reason":1'),
  (l) => `${l} `,
  (l) => `${l}\r`,
  (l) => ` ${l}`,
  (l) => `\ufeff${l}`,
  (l) => l.slice(0, -1),
  (l) => `${l.slice(0, -1)},"extra":1}`,
  (l) => l.replace('{"sequence_no"', '{"event_id":"dup","sequence_no"'),
  (l) => '',
  (l) => '[]',
  (l) => 'null',
];
