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
  | 'overwritten object';

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

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

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
