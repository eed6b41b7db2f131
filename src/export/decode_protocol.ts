/**
 * The messages between the parallel export verifier (parallel.ts, main
 * thread) and its worker threads (decode_worker.ts). No side effects: the
 * worker is bundled from this module graph.
 */
import type { FileMetaData } from 'hyparquet';

/** Bytes per event in DecodeResult.hashes: stored prev_hash, stored record_hash, recomputed record_hash. */
export const HASHES_PER_EVENT = 96;

interface TaskBase {
  id: number;
  /** The file's name in errors. */
  label: string;
  /** The export's tenant (a worker reports the events of any other). */
  tenantId: string;
  /** The batch's bytes: data[0, length). */
  data: ArrayBuffer;
  length: number;
}

/** Whole lines of a JSONL file, each ending with its newline. */
export interface JsonlTask extends TaskBase {
  kind: 'jsonl';
  /** Threads of the native core for this batch (default: nativeThreads()): one fewer while another hashes the file. */
  nativeThreads?: number | undefined;
}

/** One row group of a Parquet file: the bytes file[offset, rangeEnd) (fewer when the file ends first). */
export interface ParquetTask extends TaskBase {
  kind: 'parquet';
  path: string;
  fileSize: number;
  offset: number;
  rangeEnd: number;
  /** The file's metadata with this row group only. */
  metadata: FileMetaData;
  /** Row number (0-based) in the file of the group's first row. */
  rowStart: number;
  rows: number;
}

export type DecodeTask = JsonlTask | ParquetTask;

/** An error a worker caught, to be thrown again on the main thread. */
export interface WorkerFailure {
  name: string;
  message: string;
  code?: string | undefined;
  hint?: string | undefined;
  detail?: string | undefined;
  file?: string | undefined;
  /** JSONL: the refused line's bytes (decoded again on the main thread, with its line number in the file). */
  lineBytes?: Uint8Array | undefined;
}

/** What a worker returns for a batch: `count` events, then `error` if a row or line was refused. */
export interface DecodeResult {
  id: number;
  count: number;
  /** BigInt64Array: sequence_no. */
  seq: ArrayBuffer;
  /** Float64Array: encoding_version (as the reader read it: NaN stays NaN). */
  version: ArrayBuffer;
  /** HASHES_PER_EVENT bytes per event. */
  hashes: ArrayBuffer;
  /** Uint8Array: 1 where the recomputed record_hash equals the stored one. */
  same: ArrayBuffer;
  /** [index, tenant] of the events whose tenant is not the export's. */
  others: Array<[number, string]>;
  error: WorkerFailure | null;
  /** The task's `data`, handed back for the next batch (a worker transfers it back). */
  data?: ArrayBuffer | undefined;
}

