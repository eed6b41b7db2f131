/**
 * JSON Lines export files: one JSON object per event and line, keys in the
 * order of EXPORT_COLUMNS. jsonb and json columns are JSON strings holding
 * PostgreSQL's text of the value, so a verifier hashes the string as it is.
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { isUtf8 } from 'node:buffer';
import { once } from 'node:events';
import { EvidenceFileError } from '../errors.ts';
import { isCivilDateTime, isoFromMicros, microsFromIso, type ChainEncoder, type TextValue } from '../chain/encoding.ts';
import type { ChainEvent } from '../chain/verifier.ts';
import { deliverEvent, EXPORT_COLUMNS, type ExportEventSink, type ExportRow } from './columns.ts';
import type { DataFileWriter, WrittenFile } from './parquet.ts';

/** One event as a line of a JSON Lines export (without its newline): the columns in order, timestamps in ISO-8601. */
export function jsonlLine(r: ExportRow): string {
  return JSON.stringify({
    sequence_no: Number(r.sequence_no),
    event_id: r.event_id,
    tenant_id: r.tenant_id,
    occurred_at: isoFromMicros(BigInt(r.occurred_at_us)),
    ingested_at: isoFromMicros(BigInt(r.ingested_at_us)),
    actor_type: r.actor_type,
    actor_id: r.actor_id,
    actor_name: r.actor_name,
    auth_method: r.auth_method,
    source_ip: r.source_ip,
    user_agent_hash: r.user_agent_hash,
    action: r.action,
    resource_type: r.resource_type,
    resource_id: r.resource_id,
    parent_type: r.parent_type,
    parent_id: r.parent_id,
    changes: r.changes,
    reason: r.reason,
    context: r.context,
    db_identity: r.db_identity,
    encoding_version: r.encoding_version,
    prev_hash: r.prev_hash,
    record_hash: r.record_hash,
  });
}

export class JsonlFileWriter implements DataFileWriter {
  private readonly stream: WriteStream;
  private readonly digest: Hash = createHash('sha256');
  private bytes = 0;

  constructor(readonly path: string) {
    this.stream = createWriteStream(path, { flags: 'wx' });
  }

  async writeRows(rows: ExportRow[]): Promise<void> {
    let text = '';
    for (const r of rows) {
      text += jsonlLine(r);
      text += '\n';
    }
    const chunk = Buffer.from(text, 'utf8');
    this.digest.update(chunk);
    this.bytes += chunk.length;
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }

  async close(): Promise<WrittenFile> {
    this.stream.end();
    await once(this.stream, 'finish');
    return { sha256: this.digest.digest('hex'), bytes: this.bytes };
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

export function bad(file: string, line: number, what: string): EvidenceFileError {
  return new EvidenceFileError(`${file}, line ${line}: ${what}`, file, '22P02', {
    hint: 'The export file is damaged or was edited. Ask for a fresh export, or compare with the copy that was handed over.',
  });
}

function text(o: Record<string, unknown>, key: string, required: boolean, file: string, line: number): TextValue {
  const v = o[key];
  if (typeof v === 'string') {
    // A lone surrogate (\ud800 with no partner) is no Unicode text, and no text PostgreSQL stores: it would be hashed as U+FFFD.
    if (!(v as string & { isWellFormed(): boolean }).isWellFormed()) throw bad(file, line, `"${key}" holds a lone UTF-16 surrogate escape, which is not text`);
    return v;
  }
  if (v === null && !required) return null;
  throw bad(file, line, `"${key}" must be ${required ? 'a string' : 'a string or null'}`);
}

function hashValue(o: Record<string, unknown>, key: string, file: string, line: number): Buffer {
  const v = o[key];
  if (typeof v !== 'string' || !HEX64.test(v)) throw bad(file, line, `"${key}" must be 64 lowercase hex characters`);
  return Buffer.from(v, 'hex');
}

function timestamp(o: Record<string, unknown>, key: string, file: string, line: number): bigint {
  const v = o[key];
  const micros = typeof v === 'string' ? microsFromIso(v) : null;
  if (micros === null) {
    throw bad(file, line, `"${key}" must be an ISO-8601 UTC timestamp such as 2025-01-31T08:15:00.123456Z (or +200000-01-01T00:00:00.000000Z)`);
  }
  return micros;
}

const EXPORT_KEYS: ReadonlySet<string> = new Set(EXPORT_COLUMNS.map(([name]) => name));
const INTEGER_SPELLING = /^(0|[1-9][0-9]*)$/;

/**
 * Refuses a line (already valid JSON) whose top-level object a reader could
 * take for something else than what JSON.parse gives: a key given twice
 * (JSON.parse keeps the last value, other parsers and people read the first),
 * a key that is no column of the export (no hash covers it), or
 * sequence_no / encoding_version spelt as anything but an integer
 * (1.0000000000000001 parses as 1).
 */
function checkTopLevelKeys(t: string, file: string, line: number): void {
  let i = 0;
  const ws = (): void => {
    while (t[i] === ' ' || t[i] === '\t' || t[i] === '\n' || t[i] === '\r') i++;
  };
  /** The JSON string at i (its quotes included), decoded; i moves past it. */
  const string = (): string => {
    const from = i++;
    while (t[i] !== '"') i += t[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(t.slice(from, i)) as string;
  };
  ws();
  i++; // {
  ws();
  if (t[i] === '}') return;
  const seen = new Set<string>();
  for (;;) {
    ws();
    const key = string();
    ws();
    i++; // :
    ws();
    if (!EXPORT_KEYS.has(key)) throw bad(file, line, `unknown key ${JSON.stringify(key)}: not a column of the export, and covered by no hash`);
    if (seen.has(key)) throw bad(file, line, `the key "${key}" appears twice: readers disagree on which value counts`);
    seen.add(key);
    if (t[i] === '"') {
      string();
    } else if (t[i] === '{' || t[i] === '[') {
      throw bad(file, line, `"${key}" holds a JSON object or array`);
    } else {
      const from = i;
      while (i < t.length && !',} \t\n\r'.includes(t[i] as string)) i++;
      const raw = t.slice(from, i);
      if ((key === 'sequence_no' || key === 'encoding_version') && !INTEGER_SPELLING.test(raw)) {
        throw bad(file, line, `"${key}" must be written as a whole number, found ${raw}`);
      }
    }
    ws();
    if (t[i] !== ',') return;
    i++;
  }
}

/**
 * Decodes one line. Hand-written checks instead of a zod schema: this runs once
 * per event and verification must be bound by SHA-256, not by validation.
 * (Lines in the writer's exact layout take the fast path below instead.)
 */
export function parseJsonlEvent(lineText: string, file: string, line: number): ChainEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(lineText);
  } catch {
    throw bad(file, line, 'not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad(file, line, 'not a JSON object');
  checkTopLevelKeys(lineText, file, line);
  const o = parsed as Record<string, unknown>;
  const seq = o['sequence_no'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) throw bad(file, line, '"sequence_no" must be a positive integer');
  const version = o['encoding_version'];
  if (typeof version !== 'number' || !Number.isInteger(version)) throw bad(file, line, '"encoding_version" must be an integer');
  return {
    sequence_no: BigInt(seq),
    event_id: text(o, 'event_id', true, file, line),
    tenant_id: text(o, 'tenant_id', true, file, line),
    occurred_at: timestamp(o, 'occurred_at', file, line),
    ingested_at: timestamp(o, 'ingested_at', file, line),
    actor_type: text(o, 'actor_type', true, file, line),
    actor_id: text(o, 'actor_id', false, file, line),
    actor_name: text(o, 'actor_name', false, file, line),
    auth_method: text(o, 'auth_method', false, file, line),
    source_ip: text(o, 'source_ip', false, file, line),
    user_agent_hash: text(o, 'user_agent_hash', false, file, line),
    action: text(o, 'action', true, file, line),
    resource_type: text(o, 'resource_type', true, file, line),
    resource_id: text(o, 'resource_id', false, file, line),
    parent_type: text(o, 'parent_type', false, file, line),
    parent_id: text(o, 'parent_id', false, file, line),
    changes: text(o, 'changes', true, file, line),
    reason: text(o, 'reason', false, file, line),
    context: text(o, 'context', true, file, line),
    db_identity: text(o, 'db_identity', true, file, line),
    encoding_version: version,
    prev_hash: hashValue(o, 'prev_hash', file, line),
    record_hash: hashValue(o, 'record_hash', file, line),
  };
}

// ---------------------------------------------------------------------------
// The fast path: lines exactly as JsonlFileWriter writes them.
//
// JSON.parse per line, a JS string per field and its UTF-8 encoding again
// cost more than SHA-256 itself. A line the writer produced has a fixed
// layout (JSON.stringify of the columns in order, no whitespace), so its field
// boundaries can be found in the bytes: the decoder below copies each string
// value's bytes straight into the encoder's buffer, unescaping JSON escapes on
// the way, and decodes the hex hashes into reused buffers. It only accepts
// what it can prove equal to JSON.parse: anything else (other key order,
// whitespace, an escape it does not know, a control character, a number with
// a fraction, invalid UTF-8 in the chunk, ...) is handed to parseJsonlEvent(),
// which decodes it as before or throws the error naming the file and line.
// ---------------------------------------------------------------------------

/**
 * A fixed piece of a line (a key with its punctuation), kept as the 32-bit
 * little-endian words that compare it four bytes at a time: the words at 0,
 * 4, 8, ... and a last one ending at its end (overlapping; every token is at
 * least 4 bytes long).
 */
interface Token {
  length: number;
  words: Int32Array;
}

function latin1(t: string): Token {
  const bytes = Buffer.from(t, 'latin1');
  const words: number[] = [];
  for (let i = 0; i + 4 < bytes.length; i += 4) words.push(bytes.readInt32LE(i));
  words.push(bytes.readInt32LE(bytes.length - 4));
  return { length: bytes.length, words: Int32Array.from(words) };
}

/** The text between values in a line of JsonlFileWriter, in order. */
const T_SEQUENCE_NO = latin1('{"sequence_no":');
const T_EVENT_ID = latin1(',"event_id":');
const T_TENANT_ID = latin1(',"tenant_id":');
const T_OCCURRED_AT = latin1(',"occurred_at":');
const T_INGESTED_AT = latin1(',"ingested_at":');
const T_ACTOR_TYPE = latin1(',"actor_type":');
const T_ACTOR_ID = latin1(',"actor_id":');
const T_ACTOR_NAME = latin1(',"actor_name":');
const T_AUTH_METHOD = latin1(',"auth_method":');
const T_SOURCE_IP = latin1(',"source_ip":');
const T_USER_AGENT_HASH = latin1(',"user_agent_hash":');
const T_ACTION = latin1(',"action":');
const T_RESOURCE_TYPE = latin1(',"resource_type":');
const T_RESOURCE_ID = latin1(',"resource_id":');
const T_PARENT_TYPE = latin1(',"parent_type":');
const T_PARENT_ID = latin1(',"parent_id":');
const T_CHANGES = latin1(',"changes":');
const T_REASON = latin1(',"reason":');
const T_CONTEXT = latin1(',"context":');
const T_DB_IDENTITY = latin1(',"db_identity":');
const T_ENCODING_VERSION = latin1(',"encoding_version":');
const T_PREV_HASH = latin1(',"prev_hash":');
const T_RECORD_HASH = latin1(',"record_hash":');

/** Value of a hex digit byte, -1 for anything else; LOWER_HEX: lowercase only (as the hashes must be). */
const HEX_DIGIT = new Int8Array(256).fill(-1);
const LOWER_HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) {
  HEX_DIGIT[0x30 + i] = i;
  LOWER_HEX[0x30 + i] = i;
}
for (let i = 0; i < 6; i++) {
  HEX_DIGIT[0x61 + i] = 10 + i;
  HEX_DIGIT[0x41 + i] = 10 + i;
  LOWER_HEX[0x61 + i] = 10 + i;
}

/** The byte two lowercase hex digits stand for, indexed by the digits as a little-endian uint16; -1 for anything else. */
const LOWER_HEX_PAIR = new Int16Array(65536).fill(-1);
for (let hi = 0; hi < 16; hi++) {
  for (let lo = 0; lo < 16; lo++) LOWER_HEX_PAIR[('0123456789abcdef'.charCodeAt(hi)) | ('0123456789abcdef'.charCodeAt(lo) << 8)] = (hi << 4) | lo;
}

/** 10^(6 - digits): scales a fraction of 1 to 6 digits to microseconds. */
const FRACTION_SCALE = [1_000_000, 100_000, 10_000, 1_000, 100, 10, 1];
/** Microseconds below this magnitude are exact as a Number after ms * 1000 + fraction. */
const SAFE_MILLIS = 9_000_000_000_000;

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** The seconds part of one timestamp column, parsed once while it repeats (events come in time order). */
class SecondsCache {
  private readonly key = Buffer.alloc(19);
  private readonly keyView = viewOf(this.key);
  private valid = false;
  private millis = Number.NaN;

  /**
   * Date.parse(`${bytes[at..at+19]}Z`) when those 19 bytes are
   * YYYY-MM-DDTHH:MM:SS (ASCII digits), as microsFromIso() requires:
   * milliseconds, or NaN (not in that form, or not a date).
   */
  millisAt(data: Buffer, view: DataView, at: number): number {
    const key = this.key;
    if (this.valid) {
      // Four bytes at a time (the last word overlaps); the seconds change most often: compare from the end.
      const k = this.keyView;
      if (
        view.getInt32(at + 15, true) === k.getInt32(15, true) &&
        view.getInt32(at + 12, true) === k.getInt32(12, true) &&
        view.getInt32(at + 8, true) === k.getInt32(8, true) &&
        view.getInt32(at + 4, true) === k.getInt32(4, true) &&
        view.getInt32(at, true) === k.getInt32(0, true)
      ) {
        return this.millis;
      }
    }
    for (let i = 0; i < 19; i++) {
      const c = data[at + i] as number;
      const ok = i === 4 || i === 7 ? c === 0x2d : i === 10 ? c === 0x54 : i === 13 || i === 16 ? c === 0x3a : isDigit(c);
      if (!ok) return Number.NaN;
    }
    const n = (i: number, digits: number): number => {
      let v = 0;
      for (let k = 0; k < digits; k++) v = v * 10 + ((data[at + i + k] as number) - 0x30);
      return v;
    };
    // As microsFromIso(): a date that does not exist is refused, not rolled over by Date.parse.
    if (!isCivilDateTime(n(0, 4), n(5, 2), n(8, 2), n(11, 2), n(14, 2), n(17, 2))) return Number.NaN;
    data.copy(key, 0, at, at + 19);
    this.valid = true;
    this.millis = Date.parse(`${key.toString('latin1')}Z`);
    return this.millis;
  }
}

/** Decodes lines of the writer's layout straight into an encoder. One per reader. */
export class JsonlLineDecoder {
  sequenceNo = 0n;
  encodingVersion = 0;
  readonly prevHash = Buffer.alloc(32);
  readonly recordHash = Buffer.alloc(32);
  private out: Buffer = Buffer.alloc(0);
  /** `out` and the line's bytes as DataViews, for the four-bytes-at-a-time loops (made again when they change). */
  private outView: DataView = viewOf(this.out);
  private data: Buffer = Buffer.alloc(0);
  private view: DataView = viewOf(this.data);
  private o = 0;
  private readonly occurred = new SecondsCache();
  private readonly ingested = new SecondsCache();

  /**
   * Decodes the line data[start..end) (without its newline) into the
   * encoder's buffer, sequenceNo, encodingVersion, prevHash and recordHash.
   * Returns false, having decided nothing, when the line is not exactly in the
   * writer's layout: the caller decodes it with parseJsonlEvent() instead.
   * Call only on bytes that are valid UTF-8, with the line's newline at
   * data[end] (the scans stop at it).
   */
  decode(data: Buffer, start: number, end: number, encoder: ChainEncoder): boolean {
    if (data[end] !== 0x0a) return false;
    // A body is never longer than its line: escapes only shrink, a timestamp
    // of 27 characters becomes 12 bytes, the keys give room for the lengths.
    encoder.beginBody(end - start + 64);
    if (this.out !== encoder.buffer) {
      this.out = encoder.buffer;
      this.outView = viewOf(this.out);
    }
    if (this.data !== data) {
      this.data = data;
      this.view = viewOf(data);
    }
    const view = this.view;
    this.o = encoder.position;
    let p = token(view, start, end, T_SEQUENCE_NO);
    if (p < 0) return false;
    const seqEnd = integerEnd(data, p, end, 15);
    if (seqEnd < 0 || data[p] === 0x30) return false; // sequence_no >= 1
    const seq = digitsValue(data, p, seqEnd);
    p = token(view, seqEnd, end, T_EVENT_ID);
    if (p >= 0) p = this.string(data, p, end, false, false);
    if (p >= 0) p = token(view, p, end, T_TENANT_ID);
    // tenant_id is compared as a string: with escapes (a lone surrogate) bytes and string may differ.
    if (p >= 0) p = this.string(data, p, end, false, true);
    if (p >= 0) p = token(view, p, end, T_OCCURRED_AT);
    if (p >= 0) p = this.timestamp(data, p, end, this.occurred);
    if (p >= 0) p = token(view, p, end, T_INGESTED_AT);
    if (p >= 0) p = this.timestamp(data, p, end, this.ingested);
    if (p >= 0) p = token(view, p, end, T_ACTOR_TYPE);
    if (p >= 0) p = this.string(data, p, end, false, false);
    if (p >= 0) p = token(view, p, end, T_ACTOR_ID);
    if (p >= 0) p = this.string(data, p, end, true, false);
    if (p >= 0) p = token(view, p, end, T_ACTOR_NAME);
    if (p >= 0) p = this.string(data, p, end, true, false);
    if (p >= 0) p = token(view, p, end, T_AUTH_METHOD);
    if (p >= 0) p = this.string(data, p, end, true, false);
    if (p >= 0) p = token(view, p, end, T_SOURCE_IP);
    if (p >= 0) p = this.string(data, p, end, true, false);
    if (p >= 0) p = token(view, p, end, T_USER_AGENT_HASH);
    if (p >= 0) p = this.string(data, p, end, true, false);
    if (p >= 0) p = token(view, p, end, T_ACTION);
    if (p >= 0) p = this.string(data, p, end, false, false);
    if (p >= 0) p = token(view, p, end, T_RESOURCE_TYPE);
    if (p >= 0) p = this.string(data, p, end, false, false);
    if (p >= 0) p = token(view, p, end, T_RESOURCE_ID);
    if (p >= 0) p = this.string(data, p, end, true, false);
    if (p >= 0) p = token(view, p, end, T_PARENT_TYPE);
    if (p >= 0) p = this.string(data, p, end, true, false);
    if (p >= 0) p = token(view, p, end, T_PARENT_ID);
    if (p >= 0) p = this.string(data, p, end, true, false);
    if (p >= 0) p = token(view, p, end, T_CHANGES);
    if (p >= 0) p = this.string(data, p, end, false, false);
    if (p >= 0) p = token(view, p, end, T_REASON);
    if (p >= 0) p = this.string(data, p, end, true, false);
    if (p >= 0) p = token(view, p, end, T_CONTEXT);
    if (p >= 0) p = this.string(data, p, end, false, false);
    if (p >= 0) p = token(view, p, end, T_DB_IDENTITY);
    if (p >= 0) p = this.string(data, p, end, false, false);
    if (p >= 0) p = token(view, p, end, T_ENCODING_VERSION);
    if (p < 0) return false;
    const versionEnd = integerEnd(data, p, end, 9);
    if (versionEnd < 0 || (data[p] === 0x30 && versionEnd > p + 1)) return false; // no leading zeros in JSON
    const version = digitsValue(data, p, versionEnd);
    p = token(view, versionEnd, end, T_PREV_HASH);
    if (p >= 0) p = hexHash(data, view, p, end, this.prevHash);
    if (p >= 0) p = token(view, p, end, T_RECORD_HASH);
    if (p >= 0) p = hexHash(data, view, p, end, this.recordHash);
    if (p < 0 || p + 1 !== end || data[p] !== 0x7d) return false;
    encoder.position = this.o;
    this.sequenceNo = BigInt(seq);
    this.encodingVersion = version;
    return true;
  }

  /** A text or jsonb value at p (a JSON string, or null when allowed) as a field; returns the position after it, -1 if not the fast layout. */
  private string(data: Buffer, p: number, end: number, nullable: boolean, noEscapes: boolean): number {
    const out = this.out;
    let o = this.o;
    if (p >= end) return -1;
    if (data[p] !== 0x22) {
      if (!nullable || p + 4 > end || data[p] !== 0x6e || data[p + 1] !== 0x75 || data[p + 2] !== 0x6c || data[p + 3] !== 0x6c) return -1;
      out[o] = 0xff;
      out[o + 1] = 0xff;
      out[o + 2] = 0xff;
      out[o + 3] = 0xff;
      this.o = o + 4;
      return p + 4;
    }
    p++;
    const lengthAt = o;
    o += 4;
    const view = this.view;
    const outView = this.outView;
    for (;;) {
      // Any byte but '"', '\\' and control characters stands for itself: copy
      // four bytes at a time (most of a line goes through this loop) up to
      // the first of the others. A word may take the newline at `end` (a
      // control character, where every scan stops) but no byte after it; its
      // bytes after the plain ones land in `out` where the next bytes go
      // (the body has room: see decode()).
      while (p < end - 2) {
        const w = view.getInt32(p, true);
        outView.setInt32(o, w, true);
        const special = specialBytes(w);
        if (special !== 0) {
          const plain = firstFlagged(special);
          p += plain;
          o += plain;
          break;
        }
        p += 4;
        o += 4;
      }
      // The last bytes of a line byte by byte (no bounds check: the newline stops the loop).
      let c = data[p] as number;
      while (c > 0x5c || (c >= 0x20 && c !== 0x22 && c !== 0x5c)) {
        out[o++] = c;
        c = data[++p] as number;
      }
      if (c === 0x22) break;
      if (c === 0x5c) {
        if (noEscapes || p + 1 >= end) return -1;
        const e = data[p + 1];
        p += 2;
        switch (e) {
          case 0x22: // \"
          case 0x5c: // \\
          case 0x2f: // \/
            out[o++] = e;
            continue;
          case 0x62: // \b
            out[o++] = 0x08;
            continue;
          case 0x66: // \f
            out[o++] = 0x0c;
            continue;
          case 0x6e: // \n
            out[o++] = 0x0a;
            continue;
          case 0x72: // \r
            out[o++] = 0x0d;
            continue;
          case 0x74: // \t
            out[o++] = 0x09;
            continue;
          case 0x75: {
            // \uXXXX: a UTF-16 code unit; a pair of escapes for a surrogate pair.
            const u = hex4(data, p, end);
            if (u < 0) return -1;
            p += 4;
            let cp = u;
            if (u >= 0xd800 && u <= 0xdbff) {
              const low = data[p] === 0x5c && data[p + 1] === 0x75 ? hex4(data, p + 2, end) : -1;
              if (low < 0xdc00 || low > 0xdfff) return -1; // a lone surrogate: not text (parseJsonlEvent refuses it)
              cp = 0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00);
              p += 6;
            } else if (u >= 0xdc00 && u <= 0xdfff) {
              return -1;
            }
            if (cp < 0x80) {
              out[o++] = cp;
            } else if (cp < 0x800) {
              out[o++] = 0xc0 | (cp >> 6);
              out[o++] = 0x80 | (cp & 0x3f);
            } else if (cp < 0x10000) {
              out[o++] = 0xe0 | (cp >> 12);
              out[o++] = 0x80 | ((cp >> 6) & 0x3f);
              out[o++] = 0x80 | (cp & 0x3f);
            } else {
              out[o++] = 0xf0 | (cp >> 18);
              out[o++] = 0x80 | ((cp >> 12) & 0x3f);
              out[o++] = 0x80 | ((cp >> 6) & 0x3f);
              out[o++] = 0x80 | (cp & 0x3f);
            }
            continue;
          }
          default:
            return -1;
        }
      }
      return -1; // a raw control character (JSON.parse refuses them in strings) or the end of the line
    }
    const length = o - lengthAt - 4;
    out[lengthAt] = length >>> 24;
    out[lengthAt + 1] = (length >>> 16) & 0xff;
    out[lengthAt + 2] = (length >>> 8) & 0xff;
    out[lengthAt + 3] = length & 0xff;
    this.o = o;
    return p + 1;
  }

  /**
   * A timestamp "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z" at p as a field, exactly as
   * microsFromIso() reads it. Expanded years (+YYYYYY, -YYYYYY: years outside
   * 0000-9999) are not this layout: their lines go to parseJsonlEvent().
   */
  private timestamp(data: Buffer, p: number, end: number, cache: SecondsCache): number {
    const s = p + 1;
    if (s + 21 > end || data[p] !== 0x22) return -1;
    const millis = cache.millisAt(data, this.view, s);
    if (Number.isNaN(millis)) return -1;
    let q = s + 19;
    let fraction = 0;
    let digits = 0;
    if (data[q] === 0x2e) {
      q++;
      while (digits < 6 && q < end && isDigit(data[q] as number)) {
        fraction = fraction * 10 + ((data[q] as number) - 0x30);
        digits++;
        q++;
      }
      if (digits === 0) return -1;
    }
    if (q + 2 > end || data[q] !== 0x5a || data[q + 1] !== 0x22) return -1; // Z"
    const micros = fraction * (FRACTION_SCALE[digits] as number);
    const out = this.out;
    const o = this.o;
    out.writeUInt32BE(8, o);
    if (millis > -SAFE_MILLIS && millis < SAFE_MILLIS) {
      const value = millis * 1000 + micros;
      const hi = Math.floor(value / 4294967296);
      out.writeInt32BE(hi, o + 4);
      out.writeUInt32BE(value - hi * 4294967296, o + 8);
    } else {
      out.writeBigInt64BE(BigInt(millis) * 1000n + BigInt(micros), o + 4);
    }
    this.o = o + 12;
    return q + 2;
  }
}

/** A DataView of a Buffer's bytes. */
function viewOf(b: Buffer): DataView<ArrayBufferLike> {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Flags (the high bit of a byte) the bytes of the little-endian word `w` that
 * are '"', '\\' or a control character (below 0x20); 0 when none is. The
 * classic SWAR tests ("has a zero byte", "has a byte less than n"): a borrow
 * may flag a byte after a flagged one, never one before it, so the lowest
 * flagged byte is exactly the first such byte, whatever bytes >= 0x80 hold.
 */
function specialBytes(w: number): number {
  const quote = w ^ 0x22222222;
  const backslash = w ^ 0x5c5c5c5c;
  return (((quote - 0x01010101) & ~quote) | ((backslash - 0x01010101) & ~backslash) | ((w - 0x20202020) & ~w)) & 0x80808080;
}

/** The number of bytes before the lowest flagged byte of a specialBytes() result (0 to 3). */
function firstFlagged(flags: number): number {
  return (31 - Math.clz32(flags & -flags)) >> 3;
}

/** The position after `t` if the bytes at p are `t`, else -1 (compared four bytes at a time). */
function token(view: DataView, p: number, end: number, t: Token): number {
  const n = t.length;
  if (p + n > end) return -1;
  const words = t.words;
  const last = words.length - 1;
  for (let i = 0; i < last; i++) if (view.getInt32(p + 4 * i, true) !== words[i]) return -1;
  if (view.getInt32(p + n - 4, true) !== words[last]) return -1;
  return p + n;
}

/** The end of 1 to `max` ASCII digits at p followed by more of the line, or -1. */
function integerEnd(data: Buffer, p: number, end: number, max: number): number {
  let q = p;
  while (q < end && isDigit(data[q] as number)) q++;
  return q === p || q - p > max || q >= end ? -1 : q;
}

function digitsValue(data: Buffer, p: number, end: number): number {
  let v = 0;
  for (let i = p; i < end; i++) v = v * 10 + ((data[i] as number) - 0x30);
  return v;
}

/** Four hex digits (either case, as JSON allows) at p, or -1. */
function hex4(data: Buffer, p: number, end: number): number {
  if (p + 4 > end) return -1;
  const a = HEX_DIGIT[data[p] as number] as number;
  const b = HEX_DIGIT[data[p + 1] as number] as number;
  const c = HEX_DIGIT[data[p + 2] as number] as number;
  const d = HEX_DIGIT[data[p + 3] as number] as number;
  if ((a | b | c | d) < 0) return -1;
  return (a << 12) | (b << 8) | (c << 4) | d;
}

/** A hash "<64 lowercase hex>" at p decoded into `into`; the position after it, or -1. */
function hexHash(data: Buffer, view: DataView, p: number, end: number, into: Buffer): number {
  if (p + 66 > end || data[p] !== 0x22 || data[p + 65] !== 0x22) return -1;
  return decodeLowerHex32View(view, p + 1, into) ? p + 66 : -1;
}

/**
 * 64 lowercase hex characters at `at` of `view` into 32 bytes; false if any
 * is not one. Four digits per read, two per look-up: a little-endian uint16
 * holds the first digit in its low byte.
 */
export function decodeLowerHex32View(view: DataView, at: number, into: Buffer): boolean {
  let bad = 0;
  for (let i = 0; i < 32; i += 2) {
    const w = view.getUint32(at + 2 * i, true);
    const hi = LOWER_HEX_PAIR[w & 0xffff] as number;
    const lo = LOWER_HEX_PAIR[w >>> 16] as number;
    bad |= hi | lo;
    into[i] = hi;
    into[i + 1] = lo;
  }
  return bad >= 0;
}

/** 64 lowercase hex characters at `at` into 32 bytes; false if any is not one. */
export function decodeLowerHex32(src: Uint8Array, at: number, into: Buffer): boolean {
  for (let i = 0; i < 32; i++) {
    const hi = LOWER_HEX[src[at + 2 * i] as number] as number;
    const lo = LOWER_HEX[src[at + 2 * i + 1] as number] as number;
    if ((hi | lo) < 0) return false;
    into[i] = (hi << 4) | lo;
  }
  return true;
}

/** Decodes one line given as its bytes (without the newline): parseJsonlEvent(), for bytes that are UTF-8. */
export function parseJsonlLine(bytes: Uint8Array, file: string, line: number): ChainEvent {
  // Bytes that are not UTF-8 are not JSON text (RFC 8259): decoding them would read U+FFFD.
  if (!isUtf8(bytes)) throw bad(file, line, 'not valid UTF-8: the file is damaged or was written in another encoding');
  return parseJsonlEvent(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'), file, line);
}

/**
 * Delivers the lines of data[start..lastNewline] (each ending with its
 * newline, lastNewline the position of the last one) to `sink`; `firstLine`
 * is the line number of the first, for errors. Returns how many lines there
 * were. Throws the error of parseJsonlEvent() for a line it refuses, after
 * delivering the lines before it.
 */
export function deliverJsonlLines(
  data: Buffer,
  start: number,
  lastNewline: number,
  decoder: JsonlLineDecoder,
  sink: ExportEventSink,
  label: string,
  firstLine: number,
): number {
  const encoder = sink.encoder;
  // Raw copies of bytes equal decode-then-encode only for valid UTF-8;
  // lines that are not go through parseJsonlEvent one by one.
  const fast = isUtf8(data.subarray(start, lastNewline));
  let count = 0;
  while (start <= lastNewline) {
    const nl = data.indexOf(10, start);
    if (fast && decoder.decode(data, start, nl, encoder)) {
      sink.event(decoder.sequenceNo, decoder.encodingVersion, decoder.prevHash, decoder.recordHash, null);
    } else {
      deliverEvent(sink, parseJsonlLine(data.subarray(start, nl), label, firstLine + count));
    }
    count++;
    start = nl + 1;
  }
  return count;
}

/**
 * Reads a JSONL file into `sink`, computing the file's SHA-256 on the same
 * pass; yields the number of events of each chunk read. `onDigest` receives
 * the hex digest after the last line. Lines in the writer's layout take the
 * fast path (JsonlLineDecoder); any other line is decoded, or refused with
 * the file and line, by parseJsonlEvent().
 */
export async function* readJsonlInto(path: string, label: string, sink: ExportEventSink, onDigest: (sha256: string) => void): AsyncGenerator<number> {
  const digest = createHash('sha256');
  const decoder = new JsonlLineDecoder();
  let line = 0;
  /** The lines of data[start..lastNewline], each ending with its newline; returns how many. */
  const lines = (data: Buffer, start: number, lastNewline: number): number => {
    const count = deliverJsonlLines(data, start, lastNewline, decoder, sink, label, line + 1);
    line += count;
    return count;
  };
  const handle = await open(path, 'r');
  // Two buffers: the next chunk is read (on libuv's thread pool) while this one is verified.
  const size = 4 << 20;
  let reading = Buffer.allocUnsafe(size);
  let spare = Buffer.allocUnsafe(size);
  let pending = handle.read(reading, 0, size, null);
  try {
    let carry: Buffer = Buffer.alloc(0); // the unfinished last line of the previous chunk (a copy)
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const chunk = reading.subarray(0, bytesRead);
      [reading, spare] = [spare, reading];
      pending = handle.read(reading, 0, size, null);
      digest.update(chunk);
      let count = 0;
      let start = 0;
      if (carry.length > 0) {
        const nl = chunk.indexOf(10);
        if (nl < 0) {
          carry = Buffer.concat([carry, chunk]);
          continue;
        }
        const joined = Buffer.concat([carry, chunk.subarray(0, nl + 1)]);
        count += lines(joined, 0, joined.length - 1);
        start = nl + 1;
      }
      const lastNewline = chunk.lastIndexOf(10);
      if (lastNewline >= start) {
        count += lines(chunk, start, lastNewline);
        start = lastNewline + 1;
      }
      carry = Buffer.from(chunk.subarray(start));
      if (count > 0) yield count;
    }
    if (carry.length > 0) {
      line++;
      // A last line without its newline: the file was cut short.
      throw bad(label, line, 'the last line has no end (the file was truncated)');
    }
  } finally {
    await pending.catch(() => undefined);
    await handle.close();
  }
  onDigest(digest.digest('hex'));
}
