/**
 * One batch of the parallel export verifier (src/export/parallel.ts):
 * decodes a batch of events (JSONL lines or one Parquet row group), encodes
 * each body and recomputes its record_hash, and returns per event what the
 * main thread's StreamingChainVerifier needs, in transferable ArrayBuffers.
 * The checks themselves (sequence, links, tenant, anchors) stay on the main
 * thread, in file order. Runs in the worker threads (decode_worker.ts) and,
 * for the batches it takes itself, on the main thread. No side effects: the
 * worker is bundled from this module graph.
 */
import { ChainEncoder } from '../chain/encoding.ts';
import { otherTenantOf, tenantBytesOf } from '../chain/verifier.ts';
import { AuditTrailError, EvidenceFileError } from '../errors.ts';
import { REQUIRED_COLUMNS, type BatchResults, type ExportEventSink } from './columns.ts';
import { deliverJsonlLines, JsonlLineDecoder } from './jsonl.ts';
import { loadNativeCore, nativeThreads } from './native.ts';
import { deliverRowGroup } from './parquet.ts';
import { schemaIsExportLayout } from './parquet_decode.ts';
import type { RowGroup } from 'hyparquet';
import { isUtf8 } from 'node:buffer';
import { HASHES_PER_EVENT, type DecodeResult, type DecodeTask, type WorkerFailure } from './decode_protocol.ts';

/** Collects the events of one batch into growable typed arrays (which the native core writes too). */
class BatchCollector implements ExportEventSink, BatchResults {
  readonly encoder: ChainEncoder;
  count = 0;
  seq: BigInt64Array;
  version: Float64Array;
  hashes: Uint8Array;
  same: Uint8Array;
  readonly others: Array<[number, string]> = [];
  private readonly tenantUtf8: Buffer | null;
  readonly tenantBytes: Uint8Array;
  readonly tenantOk: boolean;
  readonly results: BatchResults = this;

  constructor(
    encoder: ChainEncoder,
    private readonly tenantId: string,
    capacity: number,
  ) {
    this.encoder = encoder;
    this.tenantUtf8 = tenantBytesOf(tenantId);
    this.tenantBytes = this.tenantUtf8 ?? new Uint8Array(0);
    this.tenantOk = this.tenantUtf8 !== null;
    // Arrays of a batch already checked (recycleResults()) when they are large enough: every element of an
    // event is written when it is collected, so nothing of the batch before can remain in it.
    let k = -1;
    spareResults.forEach((r, i) => {
      if (r.capacity >= capacity && (k < 0 || r.capacity < (spareResults[k] as SpareResults).capacity)) k = i;
    });
    const spare = k >= 0 ? (spareResults.splice(k, 1)[0] as SpareResults) : null;
    this.seq = spare === null ? new BigInt64Array(capacity) : new BigInt64Array(spare.seq);
    this.version = spare === null ? new Float64Array(capacity) : new Float64Array(spare.version);
    this.hashes = spare === null ? new Uint8Array(capacity * HASHES_PER_EVENT) : new Uint8Array(spare.hashes);
    this.same = spare === null ? new Uint8Array(capacity) : new Uint8Array(spare.same);
  }

  grow(): void {
    const capacity = this.seq.length * 2;
    const seq = new BigInt64Array(capacity);
    seq.set(this.seq);
    this.seq = seq;
    const version = new Float64Array(capacity);
    version.set(this.version);
    this.version = version;
    const hashes = new Uint8Array(capacity * HASHES_PER_EVENT);
    hashes.set(this.hashes);
    this.hashes = hashes;
    const same = new Uint8Array(capacity);
    same.set(this.same);
    this.same = same;
  }

  event(sequenceNo: bigint, encodingVersion: number, prevHash: Buffer, recordHash: Buffer, tenantText: string | null): void {
    if (this.count === this.seq.length) this.grow();
    const i = this.count;
    // Exactly what StreamingChainVerifier.check() computes: the tenant as it tells it, the hash of this body at sequenceNo after prevHash.
    const other = tenantText === null ? otherTenantOf(this.encoder.buffer, this.tenantId, this.tenantUtf8) : tenantText === this.tenantId ? null : tenantText;
    const computed = this.encoder.hashMessage(sequenceNo, prevHash);
    this.seq[i] = sequenceNo;
    this.version[i] = encodingVersion;
    const o = i * HASHES_PER_EVENT;
    // 32-byte copies and the comparison in a loop: set() and equals() are calls into C++ (three per event).
    const hashes = this.hashes;
    let d = 0;
    for (let k = 0; k < 32; k++) {
      const r = recordHash[k] as number;
      const c = computed[k] as number;
      hashes[o + k] = prevHash[k] as number;
      hashes[o + 32 + k] = r;
      hashes[o + 64 + k] = c;
      d |= r ^ c;
    }
    this.same[i] = d === 0 ? 1 : 0; // (written either way: the arrays may be a checked batch's, recycled)
    if (other !== null) this.others.push([i, other]);
    this.count = i + 1;
  }
}

/** The result arrays of a checked batch, all of `capacity` events. */
interface SpareResults {
  capacity: number;
  seq: ArrayBuffer;
  version: ArrayBuffer;
  hashes: ArrayBuffer;
  same: ArrayBuffer;
}

/** Result arrays for the next batches this thread decodes (a few MB per batch the garbage collector need not clear). */
const spareResults: SpareResults[] = [];

/**
 * Hands the result arrays of a batch decoded on this thread back for the
 * next ones, once its events were checked and nothing keeps a view into them
 * (StreamingChainVerifier.pushBatch() copies what it keeps).
 */
export function recycleResults(r: DecodeResult): void {
  const capacity = r.seq.byteLength / 8;
  if (r.version.byteLength !== capacity * 8 || r.hashes.byteLength !== capacity * HASHES_PER_EVENT || r.same.byteLength !== capacity) return;
  if (spareResults.some((s) => s.seq === r.seq)) return;
  // Two sets at most; a larger one takes the place of the smallest (batches of another file may be larger).
  if (spareResults.length >= 2) {
    const smallest = spareResults.reduce((a, b) => (b.capacity < a.capacity ? b : a));
    if (smallest.capacity >= capacity) return;
    spareResults.splice(spareResults.indexOf(smallest), 1);
  }
  spareResults.push({ capacity, seq: r.seq, version: r.version, hashes: r.hashes, same: r.same });
}

export function failure(err: unknown): WorkerFailure {
  if (err instanceof AuditTrailError) {
    return {
      name: err.name,
      message: err.message,
      code: err.code,
      hint: err.hint,
      detail: err.detail,
      file: err instanceof EvidenceFileError ? err.file : undefined,
    };
  }
  return { name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) };
}

/** One encoder and line decoder per thread: a thread decodes one batch at a time. */
const encoder = new ChainEncoder();
const decoder = new JsonlLineDecoder();

/** Scratch for the native core's state (next position or row, events done). */
const nativeState = new Float64Array(2);

/**
 * Delivers the whole lines of data[0..length) to `collector`: runs of lines
 * through the native core when it is loaded (and the batch is UTF-8), each
 * line it does not take through deliverJsonlLines(), which decodes it or
 * throws the error of that line.
 */
function deliverJsonl(data: Buffer, length: number, collector: BatchCollector, label: string, threads: number): void {
  const core = loadNativeCore();
  if (core === null || !isUtf8(data.subarray(0, length))) {
    deliverJsonlLines(data, 0, length - 1, decoder, collector, label, 1);
    return;
  }
  let pos = 0;
  while (pos < length) {
    if (collector.count === collector.seq.length) collector.grow();
    const c = collector;
    core.jsonlDecode(data, pos, length, c.tenantBytes, c.tenantOk, c.seq, c.version, c.hashes, c.same, c.count, nativeState, threads);
    collector.count += nativeState[1] as number;
    pos = nativeState[0] as number;
    if (pos >= length || collector.count === collector.seq.length) continue;
    // A line the native core does not take: the TypeScript path decodes it (or throws its error, naming
    // its line in the batch: one event per line before it).
    const nl = data.indexOf(10, pos);
    deliverJsonlLines(data, pos, nl, decoder, collector, label, collector.count + 1);
    pos = nl + 1;
  }
}

/** Decodes and hashes one batch; an error in it is returned (after the events before it), not thrown. */
export async function decodeBatch(task: DecodeTask): Promise<DecodeResult> {
  const data = Buffer.from(task.data, 0, task.length);
  const collector = new BatchCollector(encoder, task.tenantId, task.kind === 'parquet' ? Math.max(1, task.rows) : Math.max(64, task.length >>> 9));
  let error: WorkerFailure | null = null;
  let lineBytes: Uint8Array | undefined;
  try {
    if (task.kind === 'jsonl') {
      deliverJsonl(data, task.length, collector, task.label, task.nativeThreads ?? nativeThreads());
    } else {
      const { metadata } = task;
      const group = { metadata, group: metadata.row_groups[0] as RowGroup, rowStart: task.rowStart, rows: task.rows, bytes: data, offset: task.offset, rangeEnd: task.rangeEnd };
      await deliverRowGroup(group, 0, task.path, task.fileSize, schemaIsExportLayout(metadata, REQUIRED_COLUMNS), collector, task.label);
    }
  } catch (err) {
    error = failure(err);
    if (task.kind === 'jsonl') {
      // The refused line (the one after the events delivered): the main thread decodes it again with its line number in the file.
      let start = 0;
      for (let k = 0; k < collector.count; k++) start = data.indexOf(10, start) + 1;
      const nl = data.indexOf(10, start);
      lineBytes = Uint8Array.from(data.subarray(start, nl < 0 ? task.length : nl));
    }
  }
  return {
    id: task.id,
    count: collector.count,
    seq: collector.seq.buffer as ArrayBuffer,
    version: collector.version.buffer as ArrayBuffer,
    hashes: collector.hashes.buffer as ArrayBuffer,
    same: collector.same.buffer as ArrayBuffer,
    others: collector.others,
    error: error === null ? null : { ...error, lineBytes },
  };
}
