/** Tools of the bench: pgbench/psql discovery and runs, samplers, statistics. */
import { execFile, spawn } from 'node:child_process';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { fileSha256 } from '../src/export/parquet.ts';

// ---------------------------------------------------------------- statistics

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function summarize(runs: number[]): Summary {
  const sorted = [...runs].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n === 0 ? Number.NaN : n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return { median, min: sorted[0] ?? Number.NaN, max: sorted[n - 1] ?? Number.NaN, runs };
}

// ---------------------------------------------------------------- client tools

const INSTALL_HINT =
  'install the PostgreSQL client tools, e.g. `apt-get install postgresql-client-15` (Debian/Ubuntu), or put pgbench and psql on PATH';

/** pgbench or psql: /usr/lib/postgresql/<newest>/bin first, then PATH, then AUDIT_TRAIL_PG_BIN. */
export function findClientTool(name: 'pgbench' | 'psql'): string {
  const candidates: string[] = [];
  const pgBinEnv = process.env['AUDIT_TRAIL_PG_BIN'];
  if (pgBinEnv) candidates.push(path.join(pgBinEnv, name));
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(path.join(debian, v, 'bin', name));
  }
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, name));
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) throw new Error(`${name} not found; ${INSTALL_HINT}`);
  return found;
}

/** libpq environment for a connection URL (pgbench and psql read it). */
export function libpqEnv(url: string): NodeJS.ProcessEnv {
  const u = new URL(url);
  return {
    ...process.env,
    PGHOST: u.hostname,
    PGPORT: u.port || '5432',
    PGUSER: decodeURIComponent(u.username),
    PGPASSWORD: decodeURIComponent(u.password),
    PGDATABASE: decodeURIComponent(u.pathname.slice(1)),
    PGAPPNAME: 'audit-trail-bench',
    PGSSLMODE: u.searchParams.get('sslmode') ?? process.env['PGSSLMODE'] ?? 'prefer',
  };
}

export interface ProcResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(file: string, args: string[], env: NodeJS.ProcessEnv, stdinFile?: string): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: [stdinFile ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (stdinFile && child.stdin) createReadStream(stdinFile).pipe(child.stdin);
  });
}

export interface PgbenchResult {
  tps: number;
  transactions: number;
  failed: number;
  latencyMs: number;
}

export async function runPgbench(url: string, args: string[]): Promise<PgbenchResult> {
  const pgbench = findClientTool('pgbench');
  const r = await run(pgbench, args, libpqEnv(url));
  const out = r.stdout + r.stderr;
  if (r.code !== 0) throw new Error(`pgbench ${args.join(' ')} failed (exit ${r.code}):\n${out.slice(-3000)}`);
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? Number(m[1]) : Number.NaN;
  };
  const result = {
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/),
    transactions: num(/number of transactions actually processed: (\d+)/),
    failed: num(/number of failed transactions: (\d+)/) || 0,
    latencyMs: num(/latency average = ([\d.]+) ms/),
  };
  if (Number.isNaN(result.tps)) throw new Error(`could not read pgbench's output:\n${out.slice(-3000)}`);
  return result;
}

/** Runs a psql script with `\timing on`; returns the sum of the reported statement times in ms. */
export async function runPsqlTimed(url: string, scriptFile: string, stdinFile?: string): Promise<number> {
  const psql = findClientTool('psql');
  const r = await run(psql, ['-X', '-v', 'ON_ERROR_STOP=1', '-c', '\\timing on', '-f', scriptFile], libpqEnv(url), stdinFile);
  if (r.code !== 0) throw new Error(`psql -f ${scriptFile} failed (exit ${r.code}):\n${(r.stdout + r.stderr).slice(-3000)}`);
  const times = [...r.stdout.matchAll(/Time: ([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (times.length === 0) throw new Error(`psql printed no timing:\n${r.stdout.slice(-2000)}`);
  return times.reduce((a, b) => a + b, 0);
}

export async function toolVersion(file: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(file, ['--version'], (err, stdout) => resolve(err ? '?' : String(stdout).trim()));
  });
}

// ---------------------------------------------------------------- samplers

/** Host CPU time from /proc/stat (Linux); null elsewhere. */
export interface CpuTimes {
  busy: number;
  iowait: number;
  total: number;
}

export async function cpuTimes(): Promise<CpuTimes | null> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    const busy = user + nice + system + irq + softirq + steal;
    return { busy, iowait, total: busy + idle + iowait };
  } catch {
    return null;
  }
}

export function cpuBusyShare(a: CpuTimes | null, b: CpuTimes | null): { busy: number; iowait: number } | null {
  if (a === null || b === null || b.total <= a.total) return null;
  const total = b.total - a.total;
  return { busy: (b.busy - a.busy) / total, iowait: (b.iowait - a.iowait) / total };
}

/**
 * Samples pg_stat_activity of one database every `intervalMs` while a run
 * lasts: what the benchmark's backends are doing (CPU = active without a wait
 * event; otherwise wait_event_type:wait_event; "ClientRead (idle in
 * transaction)" = waiting for the client between statements).
 */
export class WaitSampler {
  private readonly counts = new Map<string, number>();
  private samples = 0;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private client: pg.Client | null = null;

  constructor(
    private readonly serverUrl: string,
    private readonly database: string,
    private readonly intervalMs = 100,
  ) {}

  async start(): Promise<void> {
    this.client = new pg.Client({ connectionString: this.serverUrl, application_name: 'audit-trail-bench-sampler' });
    await this.client.connect();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
  }

  private async sample(): Promise<void> {
    if (this.busy || this.client === null) return;
    this.busy = true;
    try {
      const { rows } = await this.client.query<{ w: string; n: string }>(
        `select case when state = 'active' then coalesce(wait_event_type || ':' || wait_event, 'CPU')
                     else coalesce(wait_event, 'no wait event') || ' (idle in transaction)' end as w, count(*) as n
           from pg_stat_activity
          where datname = $1 and backend_type = 'client backend' and pid <> pg_backend_pid()
            and application_name = 'audit-trail-bench' and state in ('active', 'idle in transaction')
          group by 1`,
        [this.database],
      );
      this.samples += 1;
      for (const r of rows) this.counts.set(r.w, (this.counts.get(r.w) ?? 0) + Number(r.n));
    } catch {
      // a sample lost is no error
    } finally {
      this.busy = false;
    }
  }

  /** Stops; returns the share of backend-samples per state, largest first. */
  async stop(): Promise<Record<string, number>> {
    if (this.timer !== null) clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 10));
    await this.client?.end().catch(() => undefined);
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    const out: Record<string, number> = {};
    for (const [k, v] of [...this.counts.entries()].sort((a, b) => b[1] - a[1])) out[k] = total === 0 ? 0 : v / total;
    return out;
  }
}

export function mergeShares(list: Record<string, number>[]): Record<string, number> {
  const sum = new Map<string, number>();
  for (const s of list) for (const [k, v] of Object.entries(s)) sum.set(k, (sum.get(k) ?? 0) + v / list.length);
  return Object.fromEntries([...sum.entries()].sort((a, b) => b[1] - a[1]));
}

export function machineDescription(): string {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- the offline verifier's bound

/**
 * The hashing half of the offline verifier's bound, in seconds (best of
 * three passes each), on one thread:
 *   raw         SHA-256 of all the messages' bytes in one call: the CPU's own
 *               SHA-256 speed over the bytes every event's hash must cover
 *               (slightly less than hashing them one by one, which pads each;
 *               so a strict bound). The verifier's native core hashes in C.
 *   perMessage  one Node crypto.hash() call per message: about 1.3 us a
 *               call of which 0.4 is hashing. The floor of a verifier that
 *               hashes from JavaScript (the TypeScript path).
 * It runs in a worker thread of its own, on a fresh heap, over the messages
 * copied into one shared buffer: in a process whose heap holds the generated
 * or fetched data, hashing ran at 0.53 to 0.67 of this speed (a million
 * events), which made the bound too easy. The caller may drop `messages`
 * once this resolves.
 */
export async function sha256BoundSeconds(messages: Buffer[]): Promise<{ raw: number; perMessage: number }> {
  const bytes = messages.reduce((s, m) => s + m.length, 0);
  const shared = new Uint8Array(new SharedArrayBuffer(bytes));
  const ends = new Float64Array(new SharedArrayBuffer(8 * messages.length));
  for (let i = 0, end = 0; i < messages.length; i++) {
    const m = messages[i] as Buffer;
    shared.set(m, end);
    ends[i] = end += m.length;
  }
  return new Promise<{ raw: number; perMessage: number }>((resolve, reject) => {
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const { hash } = require('node:crypto');
       const { messages, ends } = workerData;
       const bytes = Buffer.from(messages.buffer, messages.byteOffset, messages.byteLength);
       let perMessage = Infinity;
       let raw = Infinity;
       for (let pass = 0; pass < 3; pass++) {
         let start = process.hrtime.bigint();
         for (let i = 0, from = 0; i < ends.length; i++) {
           const end = ends[i];
           hash('sha256', bytes.subarray(from, end), 'buffer');
           from = end;
         }
         perMessage = Math.min(perMessage, Number(process.hrtime.bigint() - start) / 1e9);
         start = process.hrtime.bigint();
         hash('sha256', bytes, 'buffer');
         raw = Math.min(raw, Number(process.hrtime.bigint() - start) / 1e9);
       }
       parentPort.postMessage({ raw, perMessage });`,
      { eval: true, workerData: { messages: shared, ends } },
    );
    worker.once('message', (seconds: { raw: number; perMessage: number }) => resolve(seconds));
    worker.once('error', reject);
  });
}

/** Seconds to read and SHA-256 the files once (best of three passes): the file half of the bound (the verifier checks every file's digest). */
export async function fileBoundSeconds(files: string[]): Promise<number> {
  let best = Infinity;
  for (let pass = 0; pass < 3; pass++) {
    const start = process.hrtime.bigint();
    for (const f of files) await fileSha256(f);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return best;
}
