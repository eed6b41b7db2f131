/**
 * Offline export verification speed: events/s of `verify --export` on a
 * synthetic, valid export (JSONL and Parquet), against its bound: SHA-256
 * alone, at the CPU's speed, over the bytes of the same hashed messages plus
 * reading and hashing the file (each the best of three passes, on one
 * thread). No database needed. On a busy machine read the CPU figure too
 * (process CPU time while verifying, all threads): wall time counts the
 * time other processes held the cores. Each format is verified with the
 * native core (when built) and on the TypeScript path alone, each with
 * --jobs 1 (one thread) and with the default (os.availableParallelism()
 * threads decode and hash; src/export/parallel.ts).
 *
 * Each configuration runs `runs` times, interleaved with the others; the
 * figures are medians with min-max.
 *
 *   npx tsx bench/verify_export.ts [events=200000] [runs=3]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { ChainEncoder, type EventBodyFields } from '../src/chain/encoding.ts';
import { verifyExport } from '../src/export/verify_export.ts';
import { setNativeCoreEnabled, verifierCore } from '../src/export/native.ts';
import { fileBoundSeconds, sha256BoundSeconds, summarize } from './lib.ts';
// (the chain builder and one-file export writer the verifier's tests use)
import { chainedRows, writeOneFileExport } from '../test/helpers/synthetic_export.ts';

const T0 = 1_741_068_900_000_000n;

/**
 * Writes a valid synthetic chain of `n` events as a JSONL and a Parquet
 * export, and measures the SHA-256 half of the bound over its messages.
 * Runs in a child process of its own (see below): the generated rows and
 * messages, a GB at a million events, must not be in the heap of the process
 * that verifies.
 */
async function generate(n: number): Promise<Generated> {
  const fieldsOf = (i: number): EventBodyFields => {
    const t = T0 + BigInt(i) * 1000n;
    return {
      event_id: `01JNK${String(i).padStart(21, '0')}`,
      tenant_id: 'plant_hd',
      occurred_at: t,
      ingested_at: t + 17n,
      actor_type: 'user',
      actor_id: `operator.${i % 40}`,
      actor_name: null,
      auth_method: 'badge',
      source_ip: '10.1.2.3',
      user_agent_hash: null,
      action: 'update',
      resource_type: 'production_order',
      resource_id: `PO-${i}`,
      parent_type: null,
      parent_id: null,
      changes: `[{"after": ${i + 1}, "field": "quantity", "before": ${i}}, {"after": "running", "field": "status", "before": "planned"}]`,
      reason: i % 10 === 0 ? 'Re-classified after review of PLC alarm log 4711' : null,
      context: '{"request_id": "r-12345", "capture_method": "trigger"}',
      db_identity: '{"login":"mes_app","app":"mes","client":"10.0.0.7","pid":4242,"xid":1234567}',
    };
  };
  const rows = chainedRows(n, fieldsOf);
  // The hashed messages, for the bound (the rows carry each event's prev_hash).
  const encoder = new ChainEncoder();
  const messages = rows.map((r, k) => encoder.encodeMessage(fieldsOf(k + 1), BigInt(k + 1), Buffer.from(r.prev_hash, 'hex')));

  const dirs: Array<[string, string, number]> = [];
  for (const format of ['jsonl', 'parquet'] as const) {
    // (row groups of 10,000 events, as the exporter writes them)
    const dir = await writeOneFileExport(path.join(await mkdtemp(path.join(tmpdir(), 'bench-verify-')), 'export'), format, rows, 10_000);
    dirs.push([format, dir, (await stat(path.join(dir, `events-00001.${format}`))).size]);
  }
  // The bound's SHA-256 (sha256BoundSeconds(): a worker of its own, on a fresh heap, best of three passes).
  rows.length = 0;
  const bytes = messages.reduce((s, m) => s + m.length, 0);
  const sha = await sha256BoundSeconds(messages);
  return { sha, bytes, dirs };
}

interface Generated {
  sha: { raw: number; perMessage: number };
  /** The messages' bytes. */
  bytes: number;
  dirs: Array<[string, string, number]>;
}

const GENERATE = '--generate';
if (process.argv[2] === GENERATE) {
  process.stdout.write(JSON.stringify(await generate(Number(process.argv[3]))));
  process.exit(0);
}

const n = Number(process.argv[2] ?? 200_000);
const reps = Number(process.argv[3] ?? 3);
// The exports and the bound's SHA-256 from a child process (this script again, with the same loader): the process
// that verifies holds only what a user's `audit-trail verify --export` would.
const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), GENERATE, String(n)], { encoding: 'utf8', maxBuffer: 1 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
if (child.status !== 0) throw new Error(`generating the exports failed (exit ${String(child.status)})`);
const { sha, bytes, dirs } = JSON.parse(child.stdout) as Generated;
const core = verifierCore();
console.log(`SHA-256 alone over ${n} messages (${(bytes / n).toFixed(0)} bytes each), one thread: at the CPU's speed ${(n / sha.raw).toFixed(0)} events/s; one crypto.hash() call per message ${(n / sha.perMessage).toFixed(0)} events/s`);
console.log(`native core: ${core.core === 'native' ? 'built' : `not used (${core.why})`}`);
for (const [format, dir, fileBytes] of dirs) {
  // The verifier also reads the file and hashes it whole (the manifest's digest): part of the bound.
  const fileSeconds = await fileBoundSeconds([path.join(dir, `events-00001.${format}`)]);
  const boundRate = n / (sha.raw + fileSeconds);
  console.log(
    `${format}, ${(fileBytes / 1e6).toFixed(1)} MB: bound ${boundRate.toFixed(0)} events/s (SHA-256 of the messages at the CPU's speed ${sha.raw.toFixed(3)} s + reading and hashing the file ${fileSeconds.toFixed(3)} s); ` +
      `with one crypto.hash() call per message (the TypeScript path's floor) ${(n / (sha.perMessage + fileSeconds)).toFixed(0)} events/s`,
  );
  // The native core (when built), then the TypeScript path alone; --jobs 1 (one thread), then the default
  // (os.availableParallelism() threads); `reps` rounds of the four, interleaved.
  const configs = (core.core === 'native' ? [true, false] : [false]).flatMap((useNative) => [1, availableParallelism()].map((jobs) => ({ useNative, jobs })));
  const runs = configs.map(() => ({ seconds: [] as number[], cpu: [] as number[] }));
  for (let rep = 0; rep < reps; rep++) {
    for (const [k, { useNative, jobs }] of configs.entries()) {
      setNativeCoreEnabled(useNative);
      const start = process.hrtime.bigint();
      const cpuBefore = process.cpuUsage();
      const result = await verifyExport({ dir, jobs });
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const cpu = process.cpuUsage(cpuBefore);
      setNativeCoreEnabled(true);
      if (!result.ok) throw new Error(`bench export did not verify: ${result.detail}`);
      runs[k]?.seconds.push(seconds);
      runs[k]?.cpu.push((cpu.user + cpu.system) / 1e6);
    }
  }
  for (const [k, { useNative, jobs }] of configs.entries()) {
    const { seconds, cpu } = runs[k] as { seconds: number[]; cpu: number[] };
    const rate = summarize(seconds.map((s) => n / s));
    const cpuSeconds = summarize(cpu).median;
    console.log(
      `  verify --export ${format.padEnd(7)} ${(useNative ? 'native core' : 'TypeScript').padEnd(11)} --jobs ${jobs}: ${(n / rate.median).toFixed(3)} s, ${rate.median.toFixed(0)} events/s ` +
        `(${rate.min.toFixed(0)}-${rate.max.toFixed(0)}), ${(rate.median / boundRate).toFixed(2)} x the bound (${(rate.min / boundRate).toFixed(2)}-${(rate.max / boundRate).toFixed(2)}); ` +
        `CPU ${cpuSeconds.toFixed(2)} s (${(cpuSeconds / (sha.raw + fileSeconds)).toFixed(2)} x the bound's)`,
    );
  }
  await rm(path.dirname(dir), { recursive: true, force: true });
}
