/**
 * The offline chain verifier: the same checks as audit_trail.verify() in
 * sql/11_verify.sql, over events that arrive one at a time in sequence order
 * (from an export file), with constant memory.
 */
import { BODY_PREFIX, ChainEncoder, ENCODING_VERSION, GENESIS_HASH, type EventBodyFields } from './encoding.ts';

/** An event as an export carries it, decoded for verification. */
export interface ChainEvent extends EventBodyFields {
  sequence_no: bigint;
  encoding_version: number;
  prev_hash: Buffer;
  record_hash: Buffer;
}

/**
 * The kinds of problem verification names. The first seven are the chain's
 * own (as in audit_trail.verify()); the others concern exports and anchors.
 */
export type ProblemKind =
  | 'hash mismatch'
  | 'broken link'
  | 'gap'
  | 'duplicate'
  | 'out of order'
  | 'truncated'
  | 'head mismatch'
  | 'wrong tenant'
  | 'unsupported encoding'
  | 'file digest mismatch'
  | 'manifest mismatch'
  | 'anchor mismatch'
  | 'bad checkpoint'
  | 'split view'
  | 'overwritten object'
  | 'not anchored';

export interface ChainProblem {
  /** The first bad sequence_no, or null when the problem has no position (a file digest). */
  sequenceNo: number | null;
  kind: ProblemKind;
  detail: string;
  /** The file where it was found, when it comes from an export or a store. */
  file?: string | undefined;
}

/**
 * a.equals(b) for hashes, in JavaScript: for 32 bytes a loop costs less than
 * Buffer.equals(), a call into C++ (twice per event).
 */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length;
  if (b.length !== n) return false;
  // The differences OR-ed together, one branch at the end: hashes are equal almost always.
  let d = 0;
  for (let i = 0; i < n; i++) d |= (a[i] as number) ^ (b[i] as number);
  return d === 0;
}

/** a[at, at + 32) equals b[bAt, bAt + 32) (b holds at least that much: a hash). */
function sameBytesAt(a: Uint8Array, at: number, b: Uint8Array, bAt: number): boolean {
  let d = 0;
  for (let i = 0; i < 32; i++) d |= (a[at + i] as number) ^ (b[bAt + i] as number);
  return d === 0 && b.length >= bAt + 32;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/**
 * From event `from` of a batch (pushBatch()'s arrays), up to `to`: the first
 * event that does not pass as the usual next one (sequence_no `expected`,
 * then one more each; `encodingVersion`; recomputed hash equal to the stored
 * one; stored prev_hash equal to the previous event's hash, the first's
 * being prev[prevAt, +32)). The native core's chainRun()
 * (src/export/native.ts) is one.
 */
export type ChainRun = (
  seq: BigInt64Array,
  version: Float64Array,
  hashes: Uint8Array,
  same: Uint8Array,
  from: number,
  to: number,
  expected: bigint,
  encodingVersion: number,
  prev: Uint8Array,
  prevAt: number,
) => number;

/**
 * Checks a stream of events of one tenant. Feed events with push() in file
 * order, then call finish(). The first problem is kept; later events are only
 * looked at to tell a reordering from a gap.
 */
export class StreamingChainVerifier {
  /** The encoder the events' bodies are written into (by push(), or by a reader before pushEncoded()). */
  readonly encoder = new ChainEncoder();
  /** The tenant's UTF-8 bytes, when they decode back to the tenant (to compare bytes, not strings). */
  private readonly tenantBytes: Buffer | null;
  private expected: bigint;
  private previousHash: Buffer | null;
  private previousSeq: bigint | null = null;
  private pendingGap: { expected: bigint; found: bigint; file: string | undefined } | null = null;
  problem: ChainProblem | null = null;
  eventsChecked = 0;
  lastSequenceNo: bigint | null = null;
  lastRecordHash: Buffer | null = null;
  firstRecordHash: Buffer | null = null;
  firstPrevHash: Buffer | null = null;

  /**
   * @param tenantId every event must belong to this tenant
   * @param fromSeq the sequence_no the stream must start at (1 for a whole chain)
   * @param onEvent called with every event whose hash was recomputed equal (for anchors and split-view checks)
   */
  constructor(
    private readonly tenantId: string,
    fromSeq: bigint,
    private readonly onEvent?: (sequenceNo: bigint, recordHash: Buffer, file: string | undefined) => ChainProblem | null,
  ) {
    this.expected = fromSeq;
    this.previousHash = fromSeq === 1n ? GENESIS_HASH : null;
    this.tenantBytes = tenantBytesOf(tenantId);
  }

  private fail(sequenceNo: bigint | null, kind: ProblemKind, detail: string, file: string | undefined): void {
    if (this.problem === null) this.problem = { sequenceNo: sequenceNo === null ? null : Number(sequenceNo), kind, detail, file };
  }

  /** Checks one event; returns false once a problem was found (the caller may stop reading). */
  push(e: ChainEvent, file?: string): boolean {
    this.encoder.writeBody(e);
    return this.check(e.sequence_no, e.encoding_version, e.prev_hash, e.record_hash, file, typeof e.tenant_id === 'string' ? e.tenant_id : null);
  }

  /**
   * Checks one event whose body a reader wrote into `encoder` (beginBody()
   * and the field*() methods): the same checks as push() without an event
   * object. `prevHash` and `recordHash` may be scratch buffers the reader
   * reuses: the verifier copies what it keeps. The tenant is `tenantText`
   * when given (a reader that decoded it as a string), otherwise it is read
   * from the body's tenant_id bytes.
   */
  pushEncoded(sequenceNo: bigint, encodingVersion: number, prevHash: Buffer, recordHash: Buffer, file?: string, tenantText: string | null = null): boolean {
    return this.check(sequenceNo, encodingVersion, prevHash, recordHash, file, tenantText);
  }

  /**
   * Checks one event whose record_hash was recomputed elsewhere (a worker
   * thread: see src/export/parallel.ts): `computedHash` must be what
   * hashMessage() gives for its body at `sequenceNo` after `prevHash`, and
   * `tenantText` the event's tenant as otherTenantOf() tells it (this
   * verifier's tenant when they are the same). The same checks and problems
   * as pushEncoded(). The verifier keeps `computedHash` (do not reuse it).
   */
  pushComputed(sequenceNo: bigint, encodingVersion: number, prevHash: Buffer, recordHash: Buffer, computedHash: Buffer, file: string | undefined, tenantText: string): boolean {
    return this.check(sequenceNo, encodingVersion, prevHash, recordHash, file, tenantText, computedHash);
  }

  /**
   * Checks the events of a batch decoded and hashed by a worker thread (see
   * src/export/parallel.ts), in order: for each event i, exactly what
   * pushComputed() checks, with `hashes` holding HASHES_PER_EVENT (96) bytes
   * per event (stored prev_hash, stored record_hash, recomputed record_hash),
   * `same[i]` 1 where the recomputed hash equals the stored one, and
   * `others` the [index, tenant] of events of another tenant. An event that
   * passes every check in the usual way (the right sequence_no and encoding,
   * its hash recomputed equal, the link to its predecessor, this tenant, no
   * per-event callback) is only counted; any other goes through
   * pushComputed() itself. Without a subarray per hash: this runs on the
   * main thread for every event. With `run`, the runs of such events are
   * found by it (the native core) rather than by the loop here. It keeps no
   * view into the arrays (it copies the hashes it keeps): the caller may use
   * them again for the next batch.
   */
  pushBatch(
    count: number,
    seq: BigInt64Array,
    version: Float64Array,
    hashes: Buffer,
    same: Uint8Array,
    others: ReadonlyArray<readonly [number, string]>,
    file: string | undefined,
    run?: ChainRun,
  ): void {
    let nextOther = 0;
    // The previous event's hash, as a buffer and offset: this.previousHash, or one in `hashes`.
    let prevBytes: Uint8Array | null = this.previousHash;
    let prevAt = 0;
    let expected = this.expected;
    let lastFast = -1;
    let fast = 0;
    for (let i = 0; i < count; i++) {
      const other = others[nextOther];
      const isOther = other !== undefined && other[0] === i;
      if (isOther) nextOther++;
      // A run of events passing as the usual next one, found by `run` (the same conditions as below).
      if (run !== undefined && !isOther && this.onEvent === undefined && this.pendingGap === null && this.problem === null && this.firstRecordHash !== null && prevBytes !== null) {
        const to = run(seq, version, hashes, same, i, other === undefined ? count : other[0], expected, ENCODING_VERSION, prevBytes, prevAt);
        if (to > i) {
          fast += to - i;
          lastFast = to - 1;
          expected = (seq[lastFast] as bigint) + 1n;
          prevBytes = hashes;
          prevAt = lastFast * 96 + 64;
          i = lastFast;
          continue;
        }
      }
      const s = seq[i] as bigint;
      const o = i * 96;
      if (
        !isOther &&
        same[i] === 1 &&
        version[i] === ENCODING_VERSION &&
        s === expected &&
        this.onEvent === undefined &&
        this.pendingGap === null &&
        this.problem === null &&
        this.firstRecordHash !== null &&
        prevBytes !== null &&
        sameBytesAt(hashes, o, prevBytes, prevAt)
      ) {
        expected = s + 1n;
        prevBytes = hashes;
        prevAt = o + 64;
        lastFast = i;
        fast++;
        continue;
      }
      // Anything else: the state of the events counted so far, then the usual checks.
      if (lastFast >= 0) this.counted(fast, seq[lastFast] as bigint, hashes, lastFast * 96 + 64);
      lastFast = -1;
      fast = 0;
      // (copies: the verifier keeps hashes, and the batch's arrays may be used again for the next batch)
      const computed = Buffer.from(hashes.subarray(o + 64, o + 96));
      const stored = same[i] === 1 ? computed : Buffer.from(hashes.subarray(o + 32, o + 64));
      this.pushComputed(s, version[i] as number, Buffer.from(hashes.subarray(o, o + 32)), stored, computed, file, isOther ? (other[1] as string) : this.tenantId);
      prevBytes = this.previousHash;
      prevAt = 0;
      expected = this.expected;
    }
    if (lastFast >= 0) this.counted(fast, seq[lastFast] as bigint, hashes, lastFast * 96 + 64);
  }

  /** `n` events up to `last` passed every check; the recomputed hash of `last` is hashes[at, at + 32). */
  private counted(n: number, last: bigint, hashes: Buffer, at: number): void {
    const computed = Buffer.from(hashes.subarray(at, at + 32)); // (a copy: the batch's arrays may be used again)
    this.eventsChecked += n;
    this.previousHash = computed;
    this.previousSeq = last;
    this.lastSequenceNo = last;
    this.lastRecordHash = computed;
    this.expected = last + 1n;
  }

  /** The tenant_id of the body in the encoder, when it is not this.tenantId (null when it is). */
  private otherTenantInBody(): string | null {
    return otherTenantOf(this.encoder.buffer, this.tenantId, this.tenantBytes);
  }

  private check(
    seq: bigint,
    encodingVersion: number,
    prevHash: Buffer,
    recordHash: Buffer,
    file: string | undefined,
    tenantText: string | null,
    computedHash: Buffer | null = null,
  ): boolean {
    if (this.pendingGap !== null) {
      const gap = this.pendingGap;
      this.pendingGap = null;
      if (seq >= gap.expected && seq < gap.found) {
        this.fail(gap.expected, 'out of order', `expected sequence_no ${gap.expected} next, found ${gap.found} and then ${seq}: events are out of order`, gap.file);
      } else {
        this.fail(gap.expected, 'gap', `after sequence_no ${gap.expected - 1n} the next event is ${gap.found}: events ${gap.expected} to ${gap.found - 1n} are missing`, gap.file);
      }
      return false;
    }
    if (this.problem !== null) return false;
    this.eventsChecked++;
    if (encodingVersion !== ENCODING_VERSION) {
      this.fail(seq, 'unsupported encoding', `event ${seq} has encoding_version ${encodingVersion}; this verifier knows version ${ENCODING_VERSION}`, file);
      return false;
    }
    if (seq !== this.expected) {
      if (this.previousSeq !== null && seq === this.previousSeq) {
        this.fail(seq, 'duplicate', `two events hold sequence_no ${seq} (one of them was inserted)`, file);
      } else if (seq < this.expected) {
        this.fail(this.expected, 'out of order', `expected sequence_no ${this.expected} next, found ${seq}: events are out of order`, file);
      } else {
        // A gap, unless the missing event follows right after (two events swapped).
        this.pendingGap = { expected: this.expected, found: seq, file };
      }
      return false;
    }
    const otherTenant = tenantText === null ? this.otherTenantInBody() : tenantText === this.tenantId ? null : tenantText;
    // The computed hash is a fresh buffer: once it equals the stored one, it is what the verifier keeps.
    const computed = computedHash ?? this.encoder.hashMessage(seq, prevHash);
    if (!sameBytes(computed, recordHash)) {
      this.fail(seq, 'hash mismatch', `event ${seq}: stored record_hash ${hex(recordHash)}, recomputed from its fields ${hex(computed)}; its content or position was changed`, file);
      return false;
    }
    if (otherTenant !== null) {
      this.fail(seq, 'wrong tenant', `event ${seq} belongs to tenant ${otherTenant}, not ${this.tenantId}`, file);
      return false;
    }
    if (this.previousHash !== null && !sameBytes(prevHash, this.previousHash)) {
      if (seq === 1n) {
        this.fail(1n, 'broken link', `event 1 has prev_hash ${hex(prevHash)}, expected the genesis value (32 zero bytes)`, file);
      } else {
        const before = seq - 1n;
        this.fail(before, 'broken link', `event ${before} has record_hash ${hex(this.previousHash)} but event ${seq} recorded prev_hash ${hex(prevHash)}: event ${before} was rewritten with a recomputed hash`, file);
      }
      return false;
    }
    if (this.firstRecordHash === null) {
      this.firstRecordHash = computed;
      this.firstPrevHash = Buffer.from(prevHash);
    }
    const extra = this.onEvent?.(seq, computed, file) ?? null;
    if (extra !== null) {
      if (this.problem === null) this.problem = extra;
      return false;
    }
    this.previousHash = computed;
    this.previousSeq = seq;
    this.lastSequenceNo = seq;
    this.lastRecordHash = computed;
    this.expected = seq + 1n;
    return true;
  }

  /** Ends the stream: a gap seen on the last event becomes final. */
  finish(): ChainProblem | null {
    if (this.pendingGap !== null) {
      const gap = this.pendingGap;
      this.pendingGap = null;
      this.fail(gap.expected, 'gap', `after sequence_no ${gap.expected - 1n} the next event is ${gap.found}: events ${gap.expected} to ${gap.found - 1n} are missing`, gap.file);
    }
    return this.problem;
  }
}

/** The UTF-8 bytes of a tenant, when they decode back to it (then bytes can be compared instead of strings). */
export function tenantBytesOf(tenantId: string): Buffer | null {
  const bytes = Buffer.from(tenantId, 'utf8');
  return bytes.toString('utf8') === tenantId ? bytes : null;
}

/**
 * The tenant_id of the body at the start of `body`, when it is not
 * `tenantId` (null when it is); `tenantBytes` is tenantBytesOf(tenantId).
 */
export function otherTenantOf(body: Buffer, tenantId: string, tenantBytes: Buffer | null): string | null {
  const b = body;
  const idLength = b.readUInt32BE(BODY_PREFIX.length);
  const at = BODY_PREFIX.length + 4 + (idLength === 0xffffffff ? 0 : idLength);
  const length = b.readUInt32BE(at);
  const start = at + 4;
  const end = length === 0xffffffff ? start : start + length;
  const expected = tenantBytes;
  if (expected !== null && end - start === expected.length) {
    let same = true;
    for (let i = 0; i < expected.length; i++) {
      if (b[start + i] !== expected[i]) {
        same = false;
        break;
      }
    }
    if (same) return null;
  }
  const tenant = b.toString('utf8', start, end);
  return tenant === tenantId ? null : tenant;
}
