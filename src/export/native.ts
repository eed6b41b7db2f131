/**
 * The export verifier's optional native core (native/verify_native.c, built
 * by scripts/build-native.mjs on `npm install`): decodes a batch of events,
 * builds their hashed messages and computes their SHA-256 in one call,
 * where the TypeScript path spends most of its time in per-event JavaScript;
 * it also decodes a Parquet row group's pages whole, and finds the runs of
 * events that pass the chain checks as the usual next one. It takes only
 * events, pages and runs exactly as the writer writes them and hands
 * everything else back (see the C file); the checks of everything else stay
 * in TypeScript.
 *
 * Its functions take typed arrays that must not be backed by a
 * SharedArrayBuffer another thread writes, nor overlap one another (inputs
 * and results); the callers here never do either.
 *
 * Loaded once per thread. Not there (no compiler when installing, another
 * platform) or switched off with AUDIT_TRAIL_NATIVE=0: the verifier runs
 * the TypeScript path alone, same results.
 */
import { existsSync } from 'node:fs';
import type { ChainRun } from '../chain/verifier.ts';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface NativeCore {
  readonly version: number;
  /** See jsonl_decode() in native/verify_native.c. */
  jsonlDecode(
    data: Uint8Array,
    start: number,
    end: number,
    tenant: Uint8Array,
    tenantOk: boolean,
    seq: BigInt64Array,
    version: Float64Array,
    hashes: Uint8Array,
    same: Uint8Array,
    at: number,
    state: Float64Array,
    threads: number,
  ): void;
  /** See parquet_rows(). */
  parquetRows(
    bytes: Uint8Array,
    starts: Int32Array[],
    lengths: Int32Array[],
    from: number,
    to: number,
    tenant: Uint8Array,
    tenantOk: boolean,
    seq: BigInt64Array,
    version: Float64Array,
    hashes: Uint8Array,
    same: Uint8Array,
    at: number,
    state: Float64Array,
    threads: number,
  ): void;
  /**
   * See parquet_group(): a whole row group's column chunks decoded on
   * `threads` threads, page headers included (decodeRowGroup()); false to
   * leave the group to the TypeScript, which decides what its pages are.
   */
  parquetGroup(src: Uint8Array, columns: Float64Array, rows: number, bytes: Uint8Array, starts: Int32Array[], lengths: Int32Array[], threads: number): boolean;
  /** See chain_run(): StreamingChainVerifier.pushBatch()'s fast path. */
  chainRun: ChainRun;
  /** See snappy_decompress(): true when it decompressed the block, false to let snappyDecompressInto() decide. */
  snappyDecompress(input: Uint8Array, inputStart: number, inputEnd: number, output: Uint8Array, outputStart: number, outputLength: number): boolean;
  /** See read_plain(): parquet_decode.ts's readPlain(), false where that throws. */
  readPlain(bytes: Uint8Array, pos: number, end: number, width: number, count: number, start: Int32Array, length: Int32Array, firstSlot: number): boolean;
  /** See read_hybrid(): readHybrid(), -1 where that throws. */
  readHybrid(bytes: Uint8Array, pos: number, end: number, bitWidth: number, out: Int32Array, count: number): number;
  /** See defined_count(): the definition levels that are 1, -1 when one is above 1. */
  definedCount(levels: Int32Array, count: number): number;
  /**
   * See digest_create(): a file's SHA-256, hashed part by part on a thread
   * of its own (digestStart, digestJoin, digestHex). Until digestJoin() (or
   * the next digestStart()) returns, the part's buffer must not be changed,
   * detached, transferred or resized: the thread reads it meanwhile.
   */
  digestCreate(): NativeDigest;
  digestStart(digest: NativeDigest, data: Uint8Array, from: number, to: number): void;
  digestJoin(digest: NativeDigest): void;
  digestHex(digest: NativeDigest): string;
  /** See spread_values(): a page's values over its rows, false where decodeColumn() would throw. */
  spreadValues(
    levels: Int32Array | null,
    count: number,
    valueStart: Int32Array,
    valueLength: Int32Array,
    indexes: Int32Array | null,
    dictionarySize: number,
    start: Int32Array,
    length: Int32Array,
    done: number,
  ): boolean;
}

/** An opaque SHA-256 state of the native core. */
export type NativeDigest = { readonly __brand: 'NativeDigest' };

/** The version of the C file this TypeScript calls (the module's `version`). */
const CORE_VERSION = 5;

let threads = 1;

/** Threads the native core decodes and hashes a batch on (verify --export --jobs); 1 by default. */
export function setNativeThreads(n: number): void {
  threads = Math.max(1, Math.min(64, Math.floor(n)));
}

/** See setNativeThreads(). */
export function nativeThreads(): number {
  return threads;
}

/** Where scripts/build-native.mjs puts the module. */
export function defaultNativePath(): string | null {
  // (import.meta.url is undefined in the bundled worker script: its path comes from the main thread)
  if (typeof import.meta.url !== 'string') return null;
  return fileURLToPath(new URL('../../native/build/verify_native.node', import.meta.url));
}

let core: NativeCore | null | undefined;
let nativePath: string | null = null;
let why = '';
let enabled = true;

/** Switches the native core off (false) or back on for this thread (tests compare the two paths; workers started meanwhile follow). */
export function setNativeCoreEnabled(on: boolean): void {
  enabled = on;
}

/**
 * Loads the native core from `path` (the default place when not given) once
 * for this thread; null when it is not built, fails to load, is of another
 * version, or AUDIT_TRAIL_NATIVE=0.
 */
export function loadNativeCore(from?: string | null): NativeCore | null {
  if (!enabled) return null;
  if (core !== undefined) return core;
  core = null;
  // (the default place worked out only here: this is called for every row group and page)
  const path = from === undefined ? defaultNativePath() : from;
  if (process.env.AUDIT_TRAIL_NATIVE === '0') {
    why = 'switched off (AUDIT_TRAIL_NATIVE=0)';
  } else if (path === null || !existsSync(path)) {
    why = 'not built (npm run build:native needs a C compiler and Node\'s headers)';
  } else {
    try {
      const loaded = createRequire(path)(path) as NativeCore;
      if (loaded.version === CORE_VERSION) {
        core = loaded;
        nativePath = path;
      } else {
        why = `${path} is of version ${String(loaded.version)}, this code needs ${CORE_VERSION}: run npm run build:native`;
      }
    } catch (err) {
      why = `${path} did not load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
    }
  }
  return core;
}

/** The loaded module's path (for worker threads), null when none is loaded. */
export function loadedNativePath(): string | null {
  return loadNativeCore() === null ? null : nativePath;
}

/** 'native' or 'typescript': which code decodes and hashes the events of an export here, and why not native. */
export function verifierCore(): { core: 'native' | 'typescript'; why: string } {
  if (loadNativeCore() !== null) return { core: 'native', why: '' };
  return { core: 'typescript', why: enabled ? why : 'switched off' };
}
