/**
 * The parallel export reader of `verify --export --jobs N`.
 *
 * The main thread reads each data file (and hashes it whole for the
 * manifest), cuts it into batches (JSONL: about BATCH_BYTES at line
 * boundaries; Parquet: one row group) and hands them to N - 1 worker threads
 * (decode_worker.ts); it is the N-th thread itself: it decodes a batch when
 * every worker has two to do, or when the oldest batch is not back yet
 * (decode_batch.ts, the same code). A batch is decoded, every body encoded
 * and its record_hash recomputed (which depends only on the event's own
 * stored fields, prev_hash included); the result is, per event, sequence_no,
 * encoding_version, stored prev_hash and record_hash, the recomputed hash and
 * the tenant when it is not the export's, in transferable ArrayBuffers. The
 * main thread takes the batches back in file order and feeds them to the
 * same StreamingChainVerifier checks as the single-threaded path, so every
 * problem, sequence_no and error is the same. At most `2 x (N - 1) + 5`
 * batches are in flight: memory stays bounded whatever the file size.
 */
import { createHash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AuditTrailError, EvidenceFileError } from '../errors.ts';
import { bad, parseJsonlLine } from './jsonl.ts';
import { fileSha256, openParquetExport, rowGroupRange } from './parquet.ts';
import { decodeBatch, recycleResults } from './decode_batch.ts';
import { loadedNativePath, loadNativeCore, nativeThreads, type NativeCore, type NativeDigest } from './native.ts';
import { HASHES_PER_EVENT, type DecodeResult, type JsonlTask, type ParquetTask, type WorkerFailure } from './decode_protocol.ts';

export { HASHES_PER_EVENT } from './decode_protocol.ts';

/** JSONL bytes per batch (whole lines; a longer line makes its batch longer). */
export const BATCH_BYTES = 4 << 20;

/** A batch of decoded events, in file order, as the verifier consumes them. */
export interface DecodedBatch {
  count: number;
  seq: BigInt64Array;
  version: Float64Array;
  hashes: Buffer;
  /** 1 where the recomputed record_hash equals the stored one. */
  same: Uint8Array;
  others: Array<[number, string]>;
}

/**
 * How a worker thread runs decode_worker.ts. The package has no build step
 * and its TypeScript runs through tsx, whose loader a worker does not
 * inherit: `bundle` bundles decode_worker.ts and its imports once per
 * process with esbuild (which tsx itself uses) into one CommonJS script,
 * which a worker starts in milliseconds; `tsx` starts decode_worker.mjs,
 * which registers tsx's loader in the worker (a loader thread and a module
 * transform per worker: about a quarter of a CPU-second more per worker). The
 * default is `bundle`, and `tsx` when esbuild cannot be loaded.
 */
export type WorkerLoader = 'bundle' | 'tsx';

const WORKER_ENTRY = new URL('./decode_worker.mjs', import.meta.url);
const WORKER_SOURCE = new URL('./decode_worker.ts', import.meta.url);

let bundled: Promise<string | null> | undefined;

/** decode_worker.ts bundled as one CommonJS script, or null when esbuild is not available. */
function bundleWorker(): Promise<string | null> {
  bundled ??= (async () => {
    try {
      const { build } = await import('esbuild');
      const out = await build({
        entryPoints: [fileURLToPath(WORKER_SOURCE)],
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: 'node20',
        write: false,
        logLevel: 'silent',
      });
      return out.outputFiles[0]?.text ?? null;
    } catch {
      return null;
    }
  })();
  return bundled;
}

/** Starts bundling the worker's code (see WorkerLoader), so that it overlaps with reading a manifest and anchors. */
export function prepareWorkers(loader: WorkerLoader = 'bundle'): void {
  if (loader === 'bundle') void bundleWorker();
}

interface Pending {
  resolve: (r: DecodeResult) => void;
  reject: (e: unknown) => void;
}

/** N worker threads; tasks go to the one with the fewest outstanding. */
export class DecodePool {
  private readonly workers: Worker[] = [];
  private readonly outstanding: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failed: unknown = null;
  private closed = false;

  /** Starts `size` worker threads (see WorkerLoader). */
  static async start(size: number, loader: WorkerLoader = 'bundle'): Promise<DecodePool> {
    const code = loader === 'bundle' && size > 0 ? await bundleWorker() : null;
    return new DecodePool(size, code);
  }

  private constructor(
    readonly size: number,
    code: string | null,
  ) {
    for (let w = 0; w < size; w++) {
      // The workers load the native core from where this thread found it (none: the TypeScript path there too).
      const workerData = { nativePath: loadedNativePath() };
      const worker = code === null ? new Worker(WORKER_ENTRY, { workerData }) : new Worker(code, { eval: true, workerData });
      worker.on('message', (r: DecodeResult) => {
        const p = this.pending.get(r.id);
        this.pending.delete(r.id);
        this.outstanding[w] = (this.outstanding[w] ?? 1) - 1;
        p?.resolve(r);
      });
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`an export verifier worker thread stopped (exit code ${code})`));
      });
      this.workers.push(worker);
      this.outstanding.push(0);
    }
  }

  private fail(err: unknown): void {
    this.failed ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Whether every worker has two batches or more to do (then the main thread takes the next one itself). */
  busy(): boolean {
    for (const n of this.outstanding) if (n < 2) return false;
    return true;
  }

  /** Decodes a batch on a worker; `task.data` is transferred (detached here). */
  run(task: Omit<JsonlTask, 'id'> | Omit<ParquetTask, 'id'>): Promise<DecodeResult> {
    if (this.failed !== null) return Promise.reject(this.failed);
    const id = this.nextId++;
    let w = 0;
    for (let k = 1; k < this.workers.length; k++) if ((this.outstanding[k] as number) < (this.outstanding[w] as number)) w = k;
    this.outstanding[w] = (this.outstanding[w] as number) + 1;
    return new Promise<DecodeResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      (this.workers[w] as Worker).postMessage({ ...task, id }, [task.data]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.fail(new Error('the export verifier worker threads were stopped'));
  }
}

/** The error a worker caught, as the single-threaded reader would have thrown it. */
function rethrow(f: WorkerFailure, label: string, lineNumber: number): never {
  if (f.lineBytes !== undefined) parseJsonlLine(f.lineBytes, label, lineNumber); // throws the same error, with the line number in the file
  if (f.name === 'EvidenceFileError' && f.file !== undefined) {
    throw new EvidenceFileError(f.message, f.file, f.code as '58P01' | '22P02' | '58030', { hint: f.hint, detail: f.detail });
  }
  if (f.code !== undefined) {
    const err = new AuditTrailError(f.message, f.code, { hint: f.hint, detail: f.detail });
    Object.defineProperty(err, 'name', { value: f.name });
    throw err;
  }
  const err = new Error(f.message);
  err.name = f.name;
  throw err;
}

type TaskInput = Omit<JsonlTask, 'id'> | Omit<ParquetTask, 'id'>;

/** A buffer with an ArrayBuffer of its own (transferable), not zeroed: only the bytes read into it are used. */
const ownBuffer = (size: number): Buffer => Buffer.allocUnsafeSlow(size);

/**
 * The batches of a JSONL file; hashes the file on the way into `digest`
 * (null: the caller hashes the batches, which hold every byte of the file
 * in order but a last line without its end). `state.truncated`: the file
 * ends in a line without its newline.
 */
async function* jsonlTasks(
  path: string,
  label: string,
  tenantId: string,
  digest: ReturnType<typeof createHash> | null,
  state: { truncated: boolean },
  batchBytes: number,
  spare: ArrayBuffer[],
): AsyncGenerator<TaskInput> {
  // A batch buffer back from a decoded batch, or a new one (fresh memory costs a page fault per 4 KiB).
  const batchBuffer = (): Buffer => {
    const reused = spare.pop();
    return reused === undefined ? ownBuffer(batchBytes) : Buffer.from(reused);
  };
  const handle = await open(path, 'r');
  try {
    let buf = batchBuffer();
    let filled = 0;
    for (;;) {
      if (filled === buf.length) {
        const bigger = ownBuffer(buf.length * 2);
        buf.copy(bigger, 0, 0, filled);
        buf = bigger;
      }
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, null);
      if (bytesRead === 0) break;
      digest?.update(buf.subarray(filled, filled + bytesRead));
      filled += bytesRead;
      if (filled < buf.length) continue; // fill the batch
      const lastNewline = buf.lastIndexOf(10, filled - 1);
      if (lastNewline < 0) continue; // one line longer than the batch: the buffer grows
      const carry = filled - lastNewline - 1;
      // (the unfinished line after it may be longer than a batch when the buffer grew for a long line)
      const next = carry < batchBytes ? batchBuffer() : ownBuffer(2 * carry);
      buf.copy(next, 0, lastNewline + 1, filled);
      yield { kind: 'jsonl', label, tenantId, data: buf.buffer as ArrayBuffer, length: lastNewline + 1 };
      buf = next;
      filled = carry;
    }
    const lastNewline = filled === 0 ? -1 : buf.lastIndexOf(10, filled - 1);
    if (lastNewline >= 0) yield { kind: 'jsonl', label, tenantId, data: buf.buffer as ArrayBuffer, length: lastNewline + 1 };
    state.truncated = lastNewline + 1 < filled;
  } finally {
    await handle.close();
  }
}

/** A native file digest fed with the bytes as they are read (see parquetTasks()). */
interface ReadDigest {
  core: NativeCore;
  digest: NativeDigest;
}

/**
 * Hashes file[from, to) into `d`, read in parts of 1 MiB (each hashed on the
 * digest's thread while the next is read; the buffers are not reused).
 */
async function digestRange(handle: FileHandle, from: number, to: number, d: ReadDigest): Promise<void> {
  for (let at = from; at < to; ) {
    const part = ownBuffer(Math.min(1 << 20, to - at));
    const { bytesRead } = await handle.read(part, 0, part.length, at);
    if (bytesRead === 0) return;
    d.core.digestStart(d.digest, part, 0, bytesRead);
    at += bytesRead;
  }
}

/**
 * The row groups of a Parquet file, each with the byte range its column
 * chunks occupy. With `digest`, the file's bytes are hashed as they are
 * read, in file order, on the digest's thread: each row group's bytes as
 * they are handed out to be decoded (so the digest covers the very bytes
 * verified), the bytes between and around them read for it alone. A task's
 * buffer must then not be changed or transferred (digestStart()); nothing
 * does (no worker threads with the native core).
 */
async function* parquetTasks(path: string, label: string, tenantId: string, digest: ReadDigest | null, spare: ArrayBuffer[]): AsyncGenerator<TaskInput> {
  const { metadata } = await openParquetExport(path, label);
  const fileSize = (await stat(path)).size;
  const handle = await open(path, 'r');
  try {
    let rowStart = 0;
    // The file is hashed up to here.
    let hashedTo = 0;
    for (const group of metadata.row_groups) {
      const rows = Number(group.num_rows);
      const { offset, rangeEnd } = rowGroupRange(group, fileSize);
      const size = Math.min(rangeEnd, fileSize) - offset;
      // A buffer of a row group already decoded and checked (readFileParallel() recycles them with the digest only),
      // once the digest's thread is done with it; else a new one.
      const k = digest === null ? -1 : spare.findIndex((b) => b.byteLength >= size);
      if (k >= 0) digest?.core.digestJoin(digest.digest);
      // (new ones with room to spare, so that the next row groups, a little larger or smaller, fit in them)
      const data = Buffer.from(k >= 0 ? (spare.splice(k, 1)[0] as ArrayBuffer) : ownBuffer(digest === null ? size : size + (size >>> 3) + 65536).buffer, 0, size);
      let read = 0;
      while (read < data.length) {
        const { bytesRead } = await handle.read(data, read, data.length - read, offset + read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
      if (digest !== null) {
        await digestRange(handle, hashedTo, offset, digest);
        // (a group's bytes before hashedTo, another group's too, were hashed already)
        const from = Math.max(hashedTo, offset);
        if (offset + read > from) {
          digest.core.digestStart(digest.digest, data, from - offset, read);
          hashedTo = offset + read;
        }
      }
      yield {
        kind: 'parquet',
        label,
        tenantId,
        data: data.buffer as ArrayBuffer,
        length: read,
        path,
        fileSize,
        offset,
        rangeEnd,
        metadata: { ...metadata, row_groups: [group], num_rows: BigInt(rows) },
        rowStart,
        rows,
      };
      rowStart += rows;
    }
    if (digest !== null) await digestRange(handle, hashedTo, Number.MAX_SAFE_INTEGER, digest);
  } finally {
    await handle.close();
  }
}

/**
 * Reads one data file through the pool: yields its decoded batches in file
 * order. An error in a batch (a refused line or row) is thrown after that
 * batch's events before it were yielded, as the single-threaded reader
 * throws it after delivering them. `onDigest` gets the file's SHA-256.
 */
export async function* readFileParallel(
  path: string,
  format: 'jsonl' | 'parquet',
  label: string,
  tenantId: string,
  pool: DecodePool,
  onDigest: (sha256: string) => void,
  batchBytes = BATCH_BYTES,
): AsyncGenerator<DecodedBatch> {
  const state = { truncated: false };
  // With the native core, no workers and --jobs 2 or more, a JSONL file's digest is computed on one of
  // those threads, batch by batch while the others decode each (the batches are the file's bytes in order).
  const core = pool.size === 0 && format === 'jsonl' && nativeThreads() > 1 ? loadNativeCore() : null;
  const nativeDigest = core?.digestCreate() ?? null;
  const digest = createHash('sha256');
  // Parquet: the file's digest is computed while the batches are decoded: with the native core and no
  // workers, of the bytes read for them, on a thread of its own; else read again on this thread.
  const readCore = format === 'parquet' && pool.size === 0 ? loadNativeCore() : null;
  const readDigest = readCore === null ? null : { core: readCore, digest: readCore.digestCreate() };
  const parquetDigest = format === 'parquet' && readDigest === null ? fileSha256(path) : null;
  parquetDigest?.catch(() => undefined); // awaited below; a failed read must not be unhandled meanwhile
  // Buffers of batches decoded and checked, for the next batches: JSONL ones of batchBytes; Parquet row groups'
  // when this thread decodes them all (hashed for the digest as read: parquetTasks() waits for that).
  const spare: ArrayBuffer[] = [];
  const recycle = (r: DecodeResult): void => {
    if (r.data === undefined || spare.length >= 4) return;
    if (format === 'jsonl' ? r.data.byteLength === batchBytes : readDigest !== null) spare.push(r.data);
  };
  const tasks = format === 'jsonl' ? jsonlTasks(path, label, tenantId, nativeDigest === null ? digest : null, state, batchBytes, spare) : parquetTasks(path, label, tenantId, readDigest, spare);
  /** Decodes a batch on this thread (its bytes hashed into the native digest meanwhile, when there is one). */
  const decodeHere = async (task: TaskInput): Promise<DecodeResult> => {
    if (core === null || nativeDigest === null) return decodeBatch({ ...task, id: 0 });
    core.digestStart(nativeDigest, new Uint8Array(task.data, 0, task.length), 0, task.length);
    try {
      return await decodeBatch(task.kind === 'jsonl' ? { ...task, id: 0, nativeThreads: nativeThreads() - 1 } : { ...task, id: 0 });
    } finally {
      core.digestJoin(nativeDigest); // before the buffer is read into again
    }
  };
  // Two batches per worker, and the one the main thread decodes itself.
  const limit = 2 * pool.size + 1;
  // Batches in file order; `settled` once decoded (by a worker or by this thread).
  const inflight: Array<{ result: Promise<DecodeResult>; settled: boolean }> = [];
  // While the oldest batch is not back yet, this thread decodes a few more itself rather than wait.
  const hardLimit = limit + 4;
  let lines = 0;
  const take = (r: DecodeResult): DecodedBatch => ({
    count: r.count,
    seq: new BigInt64Array(r.seq, 0, r.count),
    version: new Float64Array(r.version, 0, r.count),
    hashes: Buffer.from(r.hashes, 0, r.count * HASHES_PER_EVENT),
    same: new Uint8Array(r.same, 0, r.count),
    others: r.others,
  });
  let next = tasks.next();
  try {
    for (;;) {
      const t = await next;
      if (t.done === true) break;
      // The main thread is one of the --jobs threads: it decodes a batch itself
      // when every worker has two to do (its share shrinks as its own work,
      // reading, the file's digest and the chain checks, grows).
      const local = pool.size === 0 || pool.busy();
      const result = local ? null : pool.run(t.value);
      next = tasks.next(); // read the next batch while this one is decoded
      const data = t.value.data;
      const entry = { result: result ?? decodeHere(t.value).then((r) => ({ ...r, data })), settled: false };
      entry.result.then(
        () => (entry.settled = true),
        () => (entry.settled = true), // awaited below, in order; a batch given up when another failed must not be unhandled
      );
      inflight.push(entry);
      // Wait for the oldest batch once `limit` are out, unless it is not back and this thread can take another.
      while (inflight.length >= limit && ((inflight[0] as (typeof inflight)[number]).settled || inflight.length >= hardLimit)) {
        const r = await (inflight.shift() as (typeof inflight)[number]).result;
        recycle(r);
        yield take(r);
        recycleResults(r); // (the batch is checked: the consumer asked for the next)
        if (r.error !== null) rethrow(r.error, label, lines + r.count + 1);
        lines += r.count;
      }
    }
    while (inflight.length > 0) {
      const r = await (inflight.shift() as (typeof inflight)[number]).result;
      recycle(r);
      yield take(r);
      recycleResults(r);
      if (r.error !== null) rethrow(r.error, label, lines + r.count + 1);
      lines += r.count;
    }
  } finally {
    await next.catch(() => undefined);
    await tasks.return(undefined);
  }
  if (state.truncated) throw bad(label, lines + 1, 'the last line has no end (the file was truncated)');
  if (format === 'jsonl') onDigest(core !== null && nativeDigest !== null ? core.digestHex(nativeDigest) : digest.digest('hex'));
  else onDigest(readDigest !== null ? readDigest.core.digestHex(readDigest.digest) : await (parquetDigest as Promise<string>));
}
