/**
 * The canonical encoding v1 of an event and the chain step, byte for byte as
 * sql/03_canonical_encoding.sql computes them (docs/hash-chain.md).
 *
 *   body        = "PGAT" 00 01, then the 19 fields below, each as
 *                 uint32 BE length + bytes (SQL NULL: FF FF FF FF, no bytes)
 *   record_hash = SHA-256(body || 00000008 || int64 BE sequence_no || 00000020 || prev_hash)
 *
 * Text values may be given as strings or as their UTF-8 bytes (an export
 * reader that never decodes them saves a decode and an encode per field).
 * The encoder writes into one growing Buffer that it reuses, so verifying a
 * million events allocates one buffer, not a million. Export readers write
 * bodies straight from the file's bytes with beginBody() and the field*()
 * methods, without building an event object per row.
 */
import { hash } from 'node:crypto';

export const ENCODING_VERSION = 1;

/** The magic and version that start every body: "PGAT" then uint16 BE 1. */
export const BODY_PREFIX = Buffer.from([0x50, 0x47, 0x41, 0x54, 0x00, 0x01]);

/** 32 zero bytes: the prev_hash of sequence_no 1. */
export const GENESIS_HASH = Buffer.alloc(32);

/** A text value: a string, its UTF-8 bytes, or SQL NULL. */
export type TextValue = string | Uint8Array | null;

/** The fields of an event that the body encodes, in their order of encoding. */
export interface EventBodyFields {
  event_id: TextValue;
  tenant_id: TextValue;
  /** Microseconds since 1970-01-01T00:00:00Z. */
  occurred_at: bigint | null;
  ingested_at: bigint | null;
  actor_type: TextValue;
  actor_id: TextValue;
  actor_name: TextValue;
  auth_method: TextValue;
  source_ip: TextValue;
  user_agent_hash: TextValue;
  action: TextValue;
  resource_type: TextValue;
  resource_id: TextValue;
  parent_type: TextValue;
  parent_id: TextValue;
  /** PostgreSQL's jsonb text output, exactly (never re-serialised). */
  changes: TextValue;
  reason: TextValue;
  context: TextValue;
  /** A json column: its stored text, exactly. */
  db_identity: TextValue;
}

/** The body fields in encoding order, with their kind. */
export const BODY_FIELDS: ReadonlyArray<readonly [keyof EventBodyFields, 'text' | 'timestamp' | 'jsonb' | 'json']> = [
  ['event_id', 'text'],
  ['tenant_id', 'text'],
  ['occurred_at', 'timestamp'],
  ['ingested_at', 'timestamp'],
  ['actor_type', 'text'],
  ['actor_id', 'text'],
  ['actor_name', 'text'],
  ['auth_method', 'text'],
  ['source_ip', 'text'],
  ['user_agent_hash', 'text'],
  ['action', 'text'],
  ['resource_type', 'text'],
  ['resource_id', 'text'],
  ['parent_type', 'text'],
  ['parent_id', 'text'],
  ['changes', 'jsonb'],
  ['reason', 'text'],
  ['context', 'jsonb'],
  ['db_identity', 'json'],
];

const NULL_LENGTH = 0xffffffff;
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

/** Encodes bodies and chain steps into one reused buffer. Not shared between concurrent users. */
export class ChainEncoder {
  /**
   * The reused buffer. Readers of export files may write a body into it
   * directly (see beginBody()); it is replaced when it grows, so take it again
   * after every reserve().
   */
  buffer: Buffer = Buffer.allocUnsafe(64 * 1024);
  /** Bytes of the current message written so far. */
  position = 0;

  /** Makes room for `extra` more bytes and returns the (possibly new) buffer. */
  reserve(extra: number): Buffer {
    if (this.position + extra > this.buffer.length) {
      let size = this.buffer.length * 2;
      while (size < this.position + extra) size *= 2;
      const next = Buffer.allocUnsafe(size);
      this.buffer.copy(next, 0, 0, this.position);
      this.buffer = next;
    }
    return this.buffer;
  }

  private text(value: TextValue): void {
    if (value === null) {
      this.fieldNull();
      return;
    }
    if (typeof value === 'string') {
      // At most 3 bytes per UTF-16 unit; reserve that and write in place.
      this.reserve(4 + value.length * 3);
      const written = this.buffer.write(value, this.position + 4, 'utf8');
      this.buffer.writeUInt32BE(written, this.position);
      this.position += 4 + written;
      return;
    }
    this.fieldBytes(value);
  }

  private timestamp(micros: bigint | null): void {
    if (micros === null) {
      this.fieldNull();
      return;
    }
    if (micros >= -MAX_SAFE_BIGINT && micros <= MAX_SAFE_BIGINT) {
      // Every real timestamp (years -283,000 to 287,000): Buffer.writeBigInt64BE costs more than the rest.
      this.fieldMicros(Number(micros));
      return;
    }
    this.reserve(12);
    this.buffer.writeUInt32BE(8, this.position);
    this.buffer.writeBigInt64BE(micros, this.position + 4);
    this.position += 12;
  }

  /**
   * Starts a body: resets the buffer, writes "PGAT" 00 01 and reserves
   * `capacity` more bytes. Then write the 19 fields in the order of
   * BODY_FIELDS with the field*() methods (or straight into `buffer` at
   * `position`), and hand the body to StreamingChainVerifier.pushEncoded() or
   * hashMessage().
   */
  beginBody(capacity = 0): void {
    this.position = 0;
    const b = this.reserve(BODY_PREFIX.length + capacity);
    // Six bytes: set one by one (a Buffer.copy() is a call into C++ per body).
    for (let i = 0; i < BODY_PREFIX.length; i++) b[i] = BODY_PREFIX[i] as number;
    this.position = BODY_PREFIX.length;
  }

  /** A field of SQL NULL. */
  fieldNull(): void {
    this.reserve(4);
    const b = this.buffer;
    const p = this.position;
    b[p] = 0xff;
    b[p + 1] = 0xff;
    b[p + 2] = 0xff;
    b[p + 3] = 0xff;
    this.position = p + 4;
  }

  /** A text or jsonb field given as its UTF-8 bytes. */
  fieldBytes(value: Uint8Array): void {
    const n = value.length;
    const b = this.reserve(4 + n);
    const p = this.position;
    b[p] = n >>> 24;
    b[p + 1] = (n >>> 16) & 0xff;
    b[p + 2] = (n >>> 8) & 0xff;
    b[p + 3] = n & 0xff;
    // Most values are short: a loop costs less than set(), a call into C++ (per field of every event).
    if (n > 32) b.set(value, p + 4);
    else for (let i = 0; i < n; i++) b[p + 4 + i] = value[i] as number;
    this.position = p + 4 + n;
  }

  /** A timestamp field from microseconds since the epoch given as a safe integer (a Number). */
  fieldMicros(micros: number): void {
    this.reserve(12);
    const b = this.buffer;
    const p = this.position;
    b.writeUInt32BE(8, p);
    const hi = Math.floor(micros / 4294967296);
    b.writeInt32BE(hi, p + 4);
    b.writeUInt32BE(micros - hi * 4294967296, p + 8);
    this.position = p + 12;
  }

  /** A timestamp field from microseconds since the epoch as a bigint (or SQL NULL). */
  fieldTimestamp(micros: bigint | null): void {
    this.timestamp(micros);
  }

  /** Writes the whole body of `e` (as beginBody() and the field*() methods would). */
  writeBody(e: EventBodyFields): void {
    this.beginBody();
    this.text(e.event_id);
    this.text(e.tenant_id);
    this.timestamp(e.occurred_at);
    this.timestamp(e.ingested_at);
    this.text(e.actor_type);
    this.text(e.actor_id);
    this.text(e.actor_name);
    this.text(e.auth_method);
    this.text(e.source_ip);
    this.text(e.user_agent_hash);
    this.text(e.action);
    this.text(e.resource_type);
    this.text(e.resource_id);
    this.text(e.parent_type);
    this.text(e.parent_id);
    this.text(e.changes);
    this.text(e.reason);
    this.text(e.context);
    this.text(e.db_identity);
  }

  private writeChainPosition(sequenceNo: bigint, prevHash: Uint8Array): void {
    this.reserve(16 + prevHash.length);
    const b = this.buffer;
    const p = this.position;
    // Byte by byte: this runs once per event, and Buffer's checked writes
    // (writeBigInt64BE most) cost more than the rest of the function.
    b[p] = 0;
    b[p + 1] = 0;
    b[p + 2] = 0;
    b[p + 3] = 8;
    if (sequenceNo >= 0n && sequenceNo <= MAX_SAFE_BIGINT) {
      // Every real sequence_no: a safe integer, written as two uint32 halves.
      const n = Number(sequenceNo);
      const hi = Math.floor(n / 4294967296);
      const lo = n - hi * 4294967296;
      b[p + 4] = hi >>> 24;
      b[p + 5] = (hi >>> 16) & 0xff;
      b[p + 6] = (hi >>> 8) & 0xff;
      b[p + 7] = hi & 0xff;
      b[p + 8] = lo >>> 24;
      b[p + 9] = (lo >>> 16) & 0xff;
      b[p + 10] = (lo >>> 8) & 0xff;
      b[p + 11] = lo & 0xff;
    } else {
      b.writeBigInt64BE(sequenceNo, p + 4);
    }
    const n = prevHash.length;
    b[p + 12] = n >>> 24;
    b[p + 13] = (n >>> 16) & 0xff;
    b[p + 14] = (n >>> 8) & 0xff;
    b[p + 15] = n & 0xff;
    for (let i = 0; i < n; i++) b[p + 16 + i] = prevHash[i] as number;
    this.position = p + 16 + n;
  }

  /** The body bytes (a copy). */
  encodeBody(e: EventBodyFields): Buffer {
    this.writeBody(e);
    return Buffer.from(this.buffer.subarray(0, this.position));
  }

  /** The full hashed message, body || sequence_no || prev_hash (a copy). */
  encodeMessage(e: EventBodyFields, sequenceNo: bigint, prevHash: Uint8Array): Buffer {
    this.writeBody(e);
    this.writeChainPosition(sequenceNo, prevHash);
    return Buffer.from(this.buffer.subarray(0, this.position));
  }

  /** record_hash of the event at `sequenceNo` after `prevHash`. */
  recordHash(e: EventBodyFields, sequenceNo: bigint, prevHash: Uint8Array): Buffer {
    this.writeBody(e);
    return this.hashMessage(sequenceNo, prevHash);
  }

  /**
   * record_hash of the body written since beginBody() (or writeBody()) at
   * `sequenceNo` after `prevHash`: appends the chain position and hashes.
   * The body stays at the start of `buffer` (hashMessage may be called again).
   */
  hashMessage(sequenceNo: bigint, prevHash: Uint8Array): Buffer {
    const bodyEnd = this.position;
    this.writeChainPosition(sequenceNo, prevHash);
    const digest = hash('sha256', this.buffer.subarray(0, this.position), 'buffer');
    this.position = bodyEnd;
    return digest;
  }
}

/**
 * Microseconds since the epoch from an ISO-8601 UTC timestamp with up to 6
 * fractional digits: YYYY-MM-DDTHH:MM:SS[.ffffff]Z for years 0000 to 9999, or
 * with an expanded year of a sign and 6 digits (+010000, -004713; never
 * -000000) for any year, as isoFromMicros() writes years outside 0000-9999.
 * Years are astronomical (0000 is 1 BC) in the proleptic Gregorian calendar.
 * null when the text is not such a timestamp or its value is not an int64.
 */
export function microsFromIso(text: string): bigint | null {
  const m = /^(\d{4}|[+-]\d{6})(-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z$/.exec(text);
  if (m === null) return null;
  const year = m[1] as string;
  const rest = m[2] as string; // -MM-DDTHH:MM:SS
  const y = Number(year);
  const month = Number(rest.slice(1, 3));
  const day = Number(rest.slice(4, 6));
  const hour = Number(rest.slice(7, 9));
  const minute = Number(rest.slice(10, 12));
  const second = Number(rest.slice(13, 15));
  // A date that does not exist (2025-02-29, 24:00:00) names no instant: Date.parse would roll it over.
  if (year === '-000000' || !isCivilDateTime(y, month, day, hour, minute, second)) return null;
  let seconds: number;
  if (year.length === 4) {
    // Date.parse, as the JSONL reader's fast path (SecondsCache) reads these.
    const millis = Date.parse(`${year}${rest}Z`);
    if (Number.isNaN(millis)) return null;
    seconds = millis / 1000;
  } else {
    // Expanded years reach beyond Date's range (PostgreSQL goes to 294276 AD): exact arithmetic.
    seconds = daysFromCivil(y, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  }
  const fraction = (m[3] ?? '').padEnd(6, '0');
  const micros = BigInt(seconds) * 1_000_000n + BigInt(fraction);
  return micros >= -(1n << 63n) && micros < 1n << 63n ? micros : null;
}

/**
 * ISO-8601 UTC with exactly 6 fractional digits, from microseconds since the
 * epoch: YYYY-MM-DDTHH:MM:SS.ffffffZ for years 0000 to 9999 (astronomical:
 * 0000 is 1 BC), and for years outside them the ISO-8601 expanded year of a
 * sign and 6 digits, as Date.prototype.toISOString() writes it:
 * -004713-11-24T00:00:00.000000Z (4714 BC), +294276-12-31T23:59:59.999999Z.
 * Exact for every int64 (years -290308 to +294247 and beyond Date's range).
 */
export function isoFromMicros(micros: bigint): string {
  let seconds = micros / 1_000_000n;
  let fraction = micros % 1_000_000n;
  if (fraction < 0n) {
    fraction += 1_000_000n;
    seconds -= 1n;
  }
  const s = Number(seconds); // |s| < 2^53 for every int64 of microseconds
  const days = Math.floor(s / 86400);
  const inDay = s - days * 86400;
  const [y, month, day] = civilFromDays(days);
  const year = y >= 0 && y <= 9999 ? String(y).padStart(4, '0') : `${y < 0 ? '-' : '+'}${String(Math.abs(y)).padStart(6, '0')}`;
  return (
    `${year}-${two(month)}-${two(day)}T${two(Math.floor(inDay / 3600))}:${two(Math.floor(inDay / 60) % 60)}:${two(inDay % 60)}` +
    `.${fraction.toString().padStart(6, '0')}Z`
  );
}

const two = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** Whether these fields name a real moment of the proleptic Gregorian calendar (no 2025-02-29, no 24:00, no leap second). */
export function isCivilDateTime(year: number, month: number, day: number, hour: number, minute: number, second: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month) && hour <= 23 && minute <= 59 && second <= 59;
}

/** Days in a month of an astronomical year of the proleptic Gregorian calendar. */
function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

/** [year, month, day] of the proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's civil_from_days). */
function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day];
}
