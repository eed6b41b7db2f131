/**
 * The offline chain verifier: the same checks as audit_trail.verify() in
 * sql/11_verify.sql, over events that arrive one at a time in sequence order
 * (from an export file), with constant memory.
 */
import { ChainEncoder, ENCODING_VERSION, GENESIS_HASH, type EventBodyFields } from './encoding.ts';

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
  | 'split view';

export interface ChainProblem {
  /** The first bad sequence_no, or null when the problem has no position (a file digest). */
  sequenceNo: number | null;
  kind: ProblemKind;
  detail: string;
  /** The file where it was found, when it comes from an export or a store. */
  file?: string | undefined;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/**
 * Checks a stream of events of one tenant. Feed events with push() in file
 * order, then call finish(). The first problem is kept; later events are only
 * looked at to tell a reordering from a gap.
 */
export class StreamingChainVerifier {
  private readonly encoder = new ChainEncoder();
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
  }

  private fail(sequenceNo: bigint | null, kind: ProblemKind, detail: string, file: string | undefined): void {
    if (this.problem === null) this.problem = { sequenceNo: sequenceNo === null ? null : Number(sequenceNo), kind, detail, file };
  }

  /** Checks one event; returns false once a problem was found (the caller may stop reading). */
  push(e: ChainEvent, file?: string): boolean {
    const seq = e.sequence_no;
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
    if (e.encoding_version !== ENCODING_VERSION) {
      this.fail(seq, 'unsupported encoding', `event ${seq} has encoding_version ${e.encoding_version}; this verifier knows version ${ENCODING_VERSION}`, file);
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
    const tenant = typeof e.tenant_id === 'string' ? e.tenant_id : Buffer.from(e.tenant_id ?? []).toString('utf8');
    const computed = this.encoder.recordHash(e, seq, e.prev_hash);
    if (!computed.equals(e.record_hash)) {
      this.fail(seq, 'hash mismatch', `event ${seq}: stored record_hash ${hex(e.record_hash)}, recomputed from its fields ${hex(computed)}; its content or position was changed`, file);
      return false;
    }
    if (tenant !== this.tenantId) {
      this.fail(seq, 'wrong tenant', `event ${seq} belongs to tenant ${tenant}, not ${this.tenantId}`, file);
      return false;
    }
    if (this.previousHash !== null && !e.prev_hash.equals(this.previousHash)) {
      if (seq === 1n) {
        this.fail(1n, 'broken link', `event 1 has prev_hash ${hex(e.prev_hash)}, expected the genesis value (32 zero bytes)`, file);
      } else {
        const before = seq - 1n;
        this.fail(before, 'broken link', `event ${before} has record_hash ${hex(this.previousHash)} but event ${seq} recorded prev_hash ${hex(e.prev_hash)}: event ${before} was rewritten with a recomputed hash`, file);
      }
      return false;
    }
    if (this.firstRecordHash === null) {
      this.firstRecordHash = e.record_hash;
      this.firstPrevHash = e.prev_hash;
    }
    const extra = this.onEvent?.(seq, e.record_hash, file) ?? null;
    if (extra !== null) {
      if (this.problem === null) this.problem = extra;
      return false;
    }
    this.previousHash = e.record_hash;
    this.previousSeq = seq;
    this.lastSequenceNo = seq;
    this.lastRecordHash = e.record_hash;
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
