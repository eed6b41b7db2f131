/**
 * audit-trail verify --export DIR: verifies an export with no database.
 * Recomputes every record_hash from the documented encoding, checks links,
 * sequence continuity, the manifest (counts, ranges, SHA-256 of every file),
 * and, when given, the signed checkpoints of an anchor store and other exports
 * of the same tenant (a split view: two histories for the same range).
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { EvidenceFileError, UsageError } from '../errors.ts';
import { ChainEncoder } from '../chain/encoding.ts';
import { StreamingChainVerifier, type ChainProblem } from '../chain/verifier.ts';
import { checkAgainstCheckpoints, firstProblem, readCheckpoints, type ValidCheckpoint } from '../anchor/read_checkpoints.ts';
import { openStore, type ImmutabilityReport } from '../anchor/stores.ts';
import { MANIFEST_FILE, readManifest, type ExportManifest } from './manifest.ts';
import type { ExportEventSink } from './columns.ts';
import { readJsonlInto } from './jsonl.ts';
import { fileSha256, readParquetInto } from './parquet.ts';
import { DecodePool, prepareWorkers, readFileParallel, type DecodedBatch, type WorkerLoader } from './parallel.ts';
import { loadNativeCore, setNativeThreads, verifierCore } from './native.ts';

export interface VerifyExportOptions {
  /** The export directory (manifest.json and data files). */
  dir: string;
  /** Anchor stores whose checkpoints the export must agree with. */
  anchors?: string[] | undefined;
  /** Public key (PEM) of the key that signed the checkpoints; required with anchors. */
  publicKeyFile?: string | undefined;
  /** Other exports of the same tenant: every sequence_no they share must have the same record_hash. */
  compareWith?: string[] | undefined;
  /** Called after each batch with the number of events checked so far. */
  onProgress?: ((checked: number, total: number) => void) | undefined;
  /**
   * Threads that decode and hash (see src/export/parallel.ts), the calling
   * thread included (jobs - 1 worker threads); default
   * os.availableParallelism(). 1: everything on the calling thread.
   */
  jobs?: number | undefined;
  /** How the worker threads load their code (tests); see WorkerLoader. */
  workerLoader?: WorkerLoader | undefined;
  /** JSONL bytes per batch of the worker threads (tests; default BATCH_BYTES). */
  batchBytes?: number | undefined;
}

export interface ExportVerification {
  ok: boolean;
  dir: string;
  tenantId: string;
  eventsChecked: number;
  fromSequenceNo: number | null;
  toSequenceNo: number | null;
  firstBadSequenceNo: number | null;
  problem: ChainProblem['kind'] | null;
  detail: string | null;
  /** The file where the problem is. */
  file: string | null;
  /** Checkpoints of this tenant that were checked. */
  checkpointsChecked: number;
  /**
   * The highest sequence_no a checkpoint vouches for beyond the export's last
   * event, when the manifest says the export was not meant to reach it (a
   * range, or made before it), or null. Nothing signs the manifest: the OK
   * line says the events after the export are not in it.
   */
  checkpointBeyond: number | null;
  /** When the problem reported is a compared export's own (--compare): that export's directory; else null. */
  comparedExport: string | null;
  immutability: ImmutabilityReport[];
  /** Which code decoded and hashed the events: the native core (src/export/native.ts) or TypeScript alone, and why not native. */
  core: { core: 'native' | 'typescript'; why: string };
}

interface RecordHashes {
  from: number;
  /** Events before the other export's first problem: their recomputed hashes are in `hashes`. */
  count: number;
  hashes: Buffer;
  dir: string;
  /** The other export's own first problem (it is verified as this one is), or null. */
  problem: ChainProblem | null;
}

/**
 * Reads the events of every data file into `sink` (see ExportEventSink),
 * yielding the file and the number of events after each chunk or row group.
 * With a pool, worker threads decode and hash, and the events arrive at
 * sink.batch() in file order instead.
 */
async function* readEventsInto(
  dir: string,
  manifest: ExportManifest,
  sink: FileEventSink,
  onDigest: (file: string, sha256: string) => void,
  pool: { pool: DecodePool; batchBytes: number | undefined } | null,
): AsyncGenerator<{ file: string; events: number }> {
  for (const f of manifest.files) {
    const full = path.join(dir, f.path);
    if (!existsSync(full)) {
      throw new EvidenceFileError(`${full} is listed in ${path.join(dir, MANIFEST_FILE)} but missing`, full, '58P01', {
        hint: 'The export is incomplete: copy the whole export directory again, or ask for a fresh export.',
      });
    }
    sink.startFile(full);
    if (pool !== null) {
      for await (const batch of readFileParallel(full, manifest.data_format, full, manifest.tenant_id, pool.pool, (sha) => onDigest(f.path, sha), pool.batchBytes)) {
        sink.batch(batch);
        yield { file: full, events: batch.count };
      }
    } else if (manifest.data_format === 'jsonl') {
      for await (const events of readJsonlInto(full, full, sink, (sha) => onDigest(f.path, sha))) yield { file: full, events };
    } else {
      onDigest(f.path, await fileSha256(full));
      for await (const events of readParquetInto(full, full, sink)) yield { file: full, events };
    }
  }
}

interface FileStats {
  count: number;
  first: bigint | null;
  last: bigint | null;
}

/** A sink that knows which file its events come from. */
interface FileEventSink extends ExportEventSink {
  startFile(file: string): void;
  /** Events decoded and hashed by worker threads, in file order. */
  batch(b: DecodedBatch): void;
}

/** Feeds every event to the chain verifier and counts each file's events and sequence range. */
class VerifyingSink implements FileEventSink {
  readonly encoder: ChainEncoder;
  readonly perFile = new Map<string, FileStats>();
  private file: string | undefined;
  private stats: FileStats = { count: 0, first: null, last: null };

  constructor(private readonly verifier: StreamingChainVerifier) {
    this.encoder = verifier.encoder;
  }

  batch(b: DecodedBatch): void {
    const { count, seq } = b;
    const core = loadNativeCore();
    this.verifier.pushBatch(count, seq, b.version, b.hashes, b.same, b.others, this.file, core === null ? undefined : core.chainRun);
    if (count > 0) {
      const stats = this.stats;
      stats.first ??= seq[0] as bigint;
      stats.last = seq[count - 1] as bigint;
      stats.count += count;
    }
  }

  startFile(file: string): void {
    this.file = file;
    const stats = this.perFile.get(file) ?? { count: 0, first: null, last: null };
    this.perFile.set(file, stats);
    this.stats = stats;
  }

  event(sequenceNo: bigint, encodingVersion: number, prevHash: Buffer, recordHash: Buffer, tenantText: string | null): void {
    this.verifier.pushEncoded(sequenceNo, encodingVersion, prevHash, recordHash, this.file, tenantText);
    const stats = this.stats;
    stats.first ??= sequenceNo;
    stats.last = sequenceNo;
    stats.count++;
  }
}

/** Verifies one export. Throws for unusable input (missing files, malformed data, wrong key); returns a report otherwise. */
export async function verifyExport(options: VerifyExportOptions): Promise<ExportVerification> {
  const dir = options.dir;
  const jobs = options.jobs ?? availableParallelism();
  // With the native core, its own threads decode and hash (no worker threads); without it, jobs - 1 worker threads do.
  const native = loadNativeCore() !== null;
  if (native) setNativeThreads(jobs);
  else if (jobs > 1) prepareWorkers(options.workerLoader);
  const manifest = await readManifest(dir);
  const tenantId = manifest.tenant_id;

  const checkpoints: ValidCheckpoint[] = [];
  const storeProblems: ChainProblem[] = [];
  const immutability: ImmutabilityReport[] = [];
  if (options.anchors !== undefined && options.anchors.length > 0) {
    if (options.publicKeyFile === undefined) {
      throw new UsageError('--anchors needs --public-key', { hint: 'Pass the public key file of the key that signed the checkpoints.' });
    }
    for (const store of options.anchors) {
      const read = await readCheckpoints(store, options.publicKeyFile, tenantId);
      for (const c of read.byTenant.get(tenantId) ?? []) if (!checkpoints.some((k) => k.digest === c.digest)) checkpoints.push(c);
      for (const p of read.problems) if (p.tenantId === tenantId) storeProblems.push(p);
      const sample = (read.byTenant.get(tenantId) ?? []).at(-1)?.object;
      immutability.push(await openStore(store).immutability(sample));
    }
    checkpoints.sort((a, b) => a.sequence_no - b.sequence_no);
  }

  // The main thread decodes too (see readFileParallel()): jobs - 1 worker threads. With the native core
  // (src/export/native.ts) the main thread reads in batches, which the core decodes and hashes whole on `jobs` threads.
  const pool = native ? await DecodePool.start(0) : jobs > 1 ? await DecodePool.start(jobs - 1, options.workerLoader) : null;
  try {
    return await verifyWithPool(options, manifest, checkpoints, storeProblems, immutability, pool);
  } finally {
    await pool?.close();
  }
}

async function verifyWithPool(
  options: VerifyExportOptions,
  manifest: ExportManifest,
  checkpoints: ValidCheckpoint[],
  storeProblems: ChainProblem[],
  immutability: ImmutabilityReport[],
  pool: DecodePool | null,
): Promise<ExportVerification> {
  const dir = options.dir;
  const tenantId = manifest.tenant_id;
  const others: RecordHashes[] = [];
  for (const other of options.compareWith ?? []) others.push(await collectRecordHashes(other, tenantId, pool === null ? null : { pool, batchBytes: options.batchBytes }));

  const anchoredAt = new Map<bigint, ValidCheckpoint[]>();
  for (const c of checkpoints) {
    const key = BigInt(c.sequence_no);
    anchoredAt.set(key, [...(anchoredAt.get(key) ?? []), c]);
  }
  let lastGoodCheckpoint: ValidCheckpoint | null = null;
  const onEvent = (seq: bigint, recordHash: Buffer, file: string | undefined): ChainProblem | null => {
    const anchored = anchoredAt.get(seq);
    if (anchored !== undefined) {
      const hashHex = recordHash.toString('hex');
      for (const c of anchored) {
        if (c.record_hash !== hashHex) {
          return {
            sequenceNo: Number(seq),
            kind: 'anchor mismatch',
            detail: `checkpoint ${c.object} (anchored ${c.anchored_at}) holds record_hash ${c.record_hash} for event ${seq}, the export has ${hashHex}: the history was rewritten ${lastGoodCheckpoint === null ? `at or before event ${seq}` : `between events ${lastGoodCheckpoint.sequence_no + 1} and ${seq}`} and its hashes recomputed`,
            file,
          };
        }
        lastGoodCheckpoint = c;
      }
    }
    for (const o of others) {
      const i = Number(seq) - o.from;
      if (i >= 0 && i < o.count && !o.hashes.subarray(i * 32, i * 32 + 32).equals(recordHash)) {
        return {
          sequenceNo: Number(seq),
          kind: 'split view',
          detail: `event ${seq} has record_hash ${recordHash.toString('hex')} here but ${o.hashes.subarray(i * 32, i * 32 + 32).toString('hex')} in the export ${o.dir}: two different histories of the same range`,
          file,
        };
      }
    }
    return null;
  };

  const fromSeq = BigInt(manifest.from_sequence_no ?? manifest.requested_range.from_sequence_no);
  // Without checkpoints or other exports there is nothing to look up per event: no callback.
  const verifier = new StreamingChainVerifier(tenantId, fromSeq, anchoredAt.size > 0 || others.length > 0 ? onEvent : undefined);
  const digests = new Map<string, string>();
  const sink = new VerifyingSink(verifier);
  let seen = 0;
  for await (const { events } of readEventsInto(dir, manifest, sink, (f, sha) => digests.set(f, sha), pool === null ? null : { pool, batchBytes: options.batchBytes })) {
    seen += events;
    options.onProgress?.(seen, manifest.event_count);
  }
  const chainProblem = verifier.finish();

  const manifestProblem = checkManifest(dir, manifest, digests, sink.perFile, seen, verifier);
  let anchorProblem: ChainProblem | null = null;
  if (chainProblem === null && checkpoints.length > 0 && manifest.to_sequence_no !== null) {
    const to = manifest.to_sequence_no;
    const exportedAt = manifest.exported_at;
    const fullExport = manifest.requested_range.to_sequence_no === null;
    // Checkpoints beyond the export's end: a full export made after them must reach them.
    const beyond = checkpoints.filter((c) => c.sequence_no > to && (fullExport ? c.anchored_at <= exportedAt : c.sequence_no <= (manifest.requested_range.to_sequence_no ?? 0)));
    if (beyond.length > 0) {
      anchorProblem = checkAgainstCheckpoints(beyond, to, () => undefined);
    }
  }
  const extra = await unlistedFiles(dir, manifest);
  // A compared export that is not intact itself is no witness of agreement: its
  // own first problem is reported, after this export's.
  const compared = others.find((o) => o.problem !== null);
  const comparedProblem: ChainProblem | null = compared?.problem
    ? { ...compared.problem, file: compared.problem.file ?? path.join(compared.dir, MANIFEST_FILE) }
    : null;
  const covered = checkpoints.filter((c) => manifest.from_sequence_no !== null && c.sequence_no >= manifest.from_sequence_no && c.sequence_no <= (manifest.to_sequence_no ?? 0));
  // Anchors asked for, and none vouches for these events (a wrong store, a
  // tenant never anchored, or a history made up under a look-alike tenant id):
  // nothing outside the export says it is the recorded history.
  const notAnchored: ChainProblem | null =
    options.anchors !== undefined && options.anchors.length > 0 && covered.length === 0 && storeProblems.length === 0
      ? {
          sequenceNo: manifest.from_sequence_no,
          kind: 'not anchored',
          detail: `no signed checkpoint of tenant ${JSON.stringify(tenantId)} in ${options.anchors.join(', ')} falls within sequence_no ${manifest.from_sequence_no ?? '-'} to ${manifest.to_sequence_no ?? '-'}: nothing outside the export vouches for it`,
          file: path.join(dir, MANIFEST_FILE),
        }
      : null;
  const ownProblem = chainProblem ?? firstProblem([manifestProblem, anchorProblem, ...storeProblems, extra]) ?? notAnchored;
  const problem = ownProblem ?? comparedProblem;
  return {
    ok: problem === null,
    dir,
    tenantId,
    eventsChecked: verifier.eventsChecked,
    fromSequenceNo: manifest.from_sequence_no,
    toSequenceNo: manifest.to_sequence_no,
    firstBadSequenceNo: problem?.sequenceNo ?? null,
    problem: problem?.kind ?? null,
    detail: problem?.detail ?? null,
    file: problem?.file ?? null,
    checkpointsChecked: covered.length,
    checkpointBeyond: manifest.to_sequence_no === null ? null : checkpoints.filter((c) => c.sequence_no > (manifest.to_sequence_no ?? 0)).at(-1)?.sequence_no ?? null,
    comparedExport: ownProblem === null && comparedProblem !== null ? (compared?.dir ?? null) : null,
    immutability,
    core: verifierCore(),
  };
}

function checkManifest(
  dir: string,
  manifest: ExportManifest,
  digests: Map<string, string>,
  perFile: Map<string, { count: number; first: bigint | null; last: bigint | null }>,
  seen: number,
  verifier: StreamingChainVerifier,
): ChainProblem | null {
  const manifestFile = path.join(dir, MANIFEST_FILE);
  for (const f of manifest.files) {
    const full = path.join(dir, f.path);
    const sha = digests.get(f.path);
    const stats = perFile.get(full) ?? { count: 0, first: null, last: null };
    if (sha !== f.sha256) {
      return { sequenceNo: f.first_sequence_no, kind: 'file digest mismatch', detail: `${full} has SHA-256 ${sha}, the manifest says ${f.sha256}: the file was changed after the export`, file: full };
    }
    if (stats.count !== f.event_count || Number(stats.first ?? 0) !== (f.first_sequence_no ?? 0) || Number(stats.last ?? 0) !== (f.last_sequence_no ?? 0)) {
      return {
        sequenceNo: f.first_sequence_no,
        kind: 'manifest mismatch',
        detail: `${full} holds ${stats.count} events (${stats.first ?? '-'} to ${stats.last ?? '-'}), the manifest says ${f.event_count} (${f.first_sequence_no ?? '-'} to ${f.last_sequence_no ?? '-'})`,
        file: full,
      };
    }
  }
  const last = verifier.lastSequenceNo === null ? null : Number(verifier.lastSequenceNo);
  if (seen !== manifest.event_count || last !== manifest.to_sequence_no) {
    return {
      sequenceNo: last === null ? manifest.from_sequence_no : Math.min(last, manifest.to_sequence_no ?? last) + 1,
      kind: last !== null && manifest.to_sequence_no !== null && last < manifest.to_sequence_no ? 'truncated' : 'manifest mismatch',
      detail: `the files hold ${seen} events ending at ${last ?? '-'}; the manifest says ${manifest.event_count} ending at ${manifest.to_sequence_no ?? '-'}`,
      file: manifestFile,
    };
  }
  const hexOf = (b: Buffer | null): string | null => (b === null ? null : b.toString('hex'));
  if (hexOf(verifier.lastRecordHash) !== manifest.last_record_hash || hexOf(verifier.firstRecordHash) !== manifest.first_record_hash || hexOf(verifier.firstPrevHash) !== manifest.first_prev_hash) {
    return { sequenceNo: manifest.from_sequence_no, kind: 'manifest mismatch', detail: 'the first or last record_hash in the manifest is not the files\'', file: manifestFile };
  }
  if (manifest.requested_range.to_sequence_no === null && manifest.chain_head !== null && last !== null) {
    if (manifest.chain_head.sequence_no !== last || manifest.chain_head.record_hash !== manifest.last_record_hash) {
      return {
        sequenceNo: Math.min(last, manifest.chain_head.sequence_no) + 1,
        kind: 'head mismatch',
        detail: `a full export must end at the chain head ${manifest.chain_head.sequence_no} (${manifest.chain_head.record_hash}); it ends at ${last}`,
        file: manifestFile,
      };
    }
  }
  return null;
}

async function unlistedFiles(dir: string, manifest: ExportManifest): Promise<ChainProblem | null> {
  const listed = new Set([MANIFEST_FILE, ...manifest.files.map((f) => f.path)]);
  const extra = (await readdir(dir)).filter((n) => !listed.has(n) && /\.(jsonl|parquet)$/.test(n));
  if (extra.length === 0) return null;
  return { sequenceNo: null, kind: 'manifest mismatch', detail: `data files not listed in the manifest: ${extra.join(', ')}`, file: path.join(dir, extra[0] as string) };
}

/**
 * Verifies another export of the same tenant as the export itself is verified
 * (chain, file digests, manifest) and keeps the recomputed record hash of
 * every event before its first problem (32 bytes per event), for the
 * split-view comparison.
 */
async function collectRecordHashes(dir: string, tenantId: string, pool: { pool: DecodePool; batchBytes: number | undefined } | null): Promise<RecordHashes> {
  const manifest = await readManifest(dir);
  if (manifest.tenant_id !== tenantId) {
    throw new UsageError(`${dir} is an export of tenant ${manifest.tenant_id}, not ${tenantId}`, { hint: 'Compare exports of the same tenant.' });
  }
  const from = manifest.from_sequence_no ?? manifest.requested_range.from_sequence_no;
  const hashes = Buffer.alloc(manifest.event_count * 32);
  let count = 0;
  // Called for every event whose recomputed hash equals its stored one, in order, until the first problem.
  const verifier = new StreamingChainVerifier(tenantId, BigInt(from), (sequenceNo, recordHash) => {
    const i = Number(sequenceNo) - from;
    if (i === count && i < manifest.event_count) {
      recordHash.copy(hashes, i * 32);
      count++;
    }
    return null;
  });
  const sink = new VerifyingSink(verifier);
  const digests = new Map<string, string>();
  let seen = 0;
  for await (const { events } of readEventsInto(dir, manifest, sink, (f, sha) => digests.set(f, sha), pool)) seen += events;
  const problem = verifier.finish() ?? firstProblem([checkManifest(dir, manifest, digests, sink.perFile, seen, verifier), await unlistedFiles(dir, manifest)]);
  return { from, count, hashes, dir, problem };
}
