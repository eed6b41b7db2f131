/**
 * A worker thread of the parallel export verifier (src/export/parallel.ts):
 * runs decodeBatch() (decode_batch.ts) on the batches the main thread sends
 * and returns the results in transferable ArrayBuffers. Started through
 * decode_worker.mjs (tsx's loader) or bundled (see WorkerLoader).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeBatch, failure } from './decode_batch.ts';
import type { DecodeResult, DecodeTask } from './decode_protocol.ts';
import { loadNativeCore } from './native.ts';

// The native core from the main thread's path (null: this thread runs the TypeScript path alone).
loadNativeCore((workerData as { nativePath?: string | null } | null)?.nativePath ?? null);
const port = parentPort;
if (port === null) throw new Error('decode_worker.ts runs as a worker thread (see src/export/parallel.ts)');
// One task at a time, in the order they arrive.
let queue: Promise<void> = Promise.resolve();
port.on('message', (task: DecodeTask) => {
  queue = queue
    .then(async () => {
      const result = await decodeBatch(task);
      // The batch's bytes go back too: the main thread reads the next batch into them.
      result.data = task.data;
      port.postMessage(result, [result.seq, result.version, result.hashes, result.same, task.data]);
    })
    .catch((err: unknown) => {
      const empty = new ArrayBuffer(0);
      port.postMessage({ id: task.id, count: 0, seq: empty, version: empty, hashes: empty, same: empty, others: [], error: failure(err) } satisfies DecodeResult);
    });
});
