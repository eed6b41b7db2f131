/**
 * The bulk import of `npm run bench` (INSERT ... SELECT into an audited
 * table, bench/pgbench/bulk_insert_select.sql) with its capture in C: what
 * building the events on the server in C would do for the 50,000
 * events/s, next to the unaudited import and ours in the same run.
 *
 *   AUDIT_TRAIL_PG_BIN=/usr/lib/postgresql/15/bin npx tsx bench/designs_bulk.ts [--rows 100000[,1000000]] [--reps 3] [--only ours,c] [--out FILE]
 *
 * Variants, each in its own database with bench/bulk_schema.sql:
 * baseline (no trigger); ours (audit_trail.enable() with the tenant column);
 * c (designs/deferred_row_event_c.c's statement trigger over the transition
 * table: per row the event pg-audit-trail writes, its canonical encoding and
 * chain step, written with a saved plan; the tenant's head locked and moved
 * once a statement). The C variant needs the server's headers
 * (designs/c_prototype.ts): skipped with a note where there are none.
 * Runs interleaved; afterwards ours is checked with audit_trail.verify() and
 * the C chain with the product's encoding. Writes
 * bench/results/designs-bulk.md (or --out).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from '../src/db/migrate.ts';
import { findClientTool, machineDescription, runPgbench, summarize, toolVersion } from './lib.ts';
import { buildCPrototype } from './designs/c_prototype.ts';
import { freshDatabase, runSqlFile, startBenchServer, withClient } from './server.ts';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const TENANT = 'plant_bulk'; // bench/pgbench/bulk_insert_select.sql's
const cModule = path.join(os.tmpdir(), `pg-audit-trail-designs-bulk-${process.pid}-deferred_row_event_c.so`);

interface Variant {
  name: string;
  what: string;
  install(url: string): Promise<void>;
  /** Events in the trail, and how many do not follow their predecessor. */
  check?(url: string): Promise<{ events: number; bad: number }>;
}

const VARIANTS: Variant[] = [
  { name: 'baseline', what: 'no audit', install: async () => undefined },
  {
    name: 'ours',
    what: 'pg-audit-trail (statement trigger over the transition table, buffer, commit step)',
    async install(url) {
      await migrate({ databaseUrl: url });
      await withClient(url, (c) => c.query(`select audit_trail.enable('bench_bulk_items', '{"tenant_column": "tenant_id"}')`));
    },
    check: (url) => withClient(url, async (c) => {
      const { rows } = await c.query<{ events_checked: string; ok: boolean }>('select * from audit_trail.verify($1)', [TENANT]);
      return { events: Number(rows[0]?.events_checked ?? 0), bad: rows[0]?.ok === true ? 0 : 1 };
    }),
  },
  {
    name: 'c',
    what: 'designs/deferred_row_event_c.c: statement trigger in C, the same event, head moved once a statement',
    async install(url) {
      await migrate({ databaseUrl: url });
      await runSqlFile(url, path.join(benchDir, 'designs', 'common.sql'));
      await runSqlFile(url, path.join(benchDir, 'designs', 'deferred_row_event.sql'));
      await withClient(url, async (c) => {
        await c.query(`insert into bench_design.heads values ($1, 0, null, audit_trail.genesis_hash())`, [TENANT]);
        await c.query(`create function bench_design.capture_inserts() returns trigger
                         language c as '${cModule.replace(/'/g, "''")}', 'design_capture_inserts_c'`);
        const options = { table: 'bench_bulk_items', resource_type: 'bench_bulk_items', key_columns: ['item_id'], tenant_column: 'tenant_id' };
        await c.query(`create trigger bench_design_capture_inserts after insert on bench_bulk_items
                         referencing new table as new_rows for each statement
                         execute function bench_design.capture_inserts('${JSON.stringify(options)}')`);
      });
    },
    check: (url) => withClient(url, async (c) => {
      const { rows } = await c.query<{ events: string; bad: string }>('select * from bench_design.check_trail()');
      return { events: Number(rows[0]?.events ?? 0), bad: Number(rows[0]?.bad ?? 0) };
    }),
  },
];

function parseArgs(argv: string[]): { rows: number[]; reps: number; out: string; only: string[] | null } {
  const o = { rows: [100_000], reps: 3, out: path.join(benchDir, 'results', 'designs-bulk.md'), only: null as string[] | null };
  for (let i = 0; i < argv.length; i += 2) {
    const [a, v] = [argv[i], argv[i + 1]];
    if (a === '--help' || a === '-h') {
      console.log('usage: npx tsx bench/designs_bulk.ts [--rows 100000[,1000000]] [--reps 3] [--only ours,c] [--out FILE] (baseline always runs)');
      process.exit(0);
    }
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--rows') o.rows = v.split(',').map(Number);
    else if (a === '--reps') o.reps = Number(v);
    else if (a === '--out') o.out = path.resolve(v);
    else if (a === '--only') o.only = v.split(',');
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.rows.every((n) => Number.isInteger(n) && n >= 1) || !(o.reps >= 1)) throw new Error('--rows and --reps must be at least 1');
  for (const n of o.only ?? []) if (!VARIANTS.some((v) => v.name === n)) throw new Error(`--only: unknown variant "${n}"`);
  return o;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date();
  const server = await startBenchServer(process.env['DATABASE_URL']);
  try {
    const variants = VARIANTS.filter((v) => v.name === 'baseline' || args.only === null || args.only.includes(v.name));
    const notes: string[] = [];
    const urls = new Map<string, string>();
    for (const v of [...variants]) {
      const url = await freshDatabase(server.superuserUrl, `bench_designs_bulk_${v.name}`);
      if (v.name === 'c') {
        const why = await buildCPrototype(url, cModule);
        if (why !== null) {
          console.log(`NOTE: c skipped: ${why}`);
          notes.push(`- c: skipped: ${why}`);
          variants.splice(variants.indexOf(v), 1);
          continue;
        }
      }
      await runSqlFile(url, path.join(benchDir, 'bulk_schema.sql'));
      await v.install(url);
      urls.set(v.name, url);
    }
    const rates = new Map<string, number[]>();
    for (const rows of args.rows) {
      for (let rep = 1; rep <= args.reps; rep += 1) {
        for (const v of variants) {
          const url = urls.get(v.name)!;
          await withClient(url, (c) => c.query('checkpoint'));
          const r = await runPgbench(url, ['-n', '-t', '1', '-c', '1', '-D', `rows=${rows}`,
            '-f', path.join(benchDir, 'pgbench', 'bulk_insert_select.sql')]);
          const rate = rows / (r.latencyMs / 1000);
          rates.set(`${rows}|${v.name}`, [...(rates.get(`${rows}|${v.name}`) ?? []), rate]);
          console.log(`${rows} rows, run ${rep}/${args.reps}, ${v.name}: ${(r.latencyMs / 1000).toFixed(2)} s, ${rate.toFixed(0)} rows/s`);
        }
      }
    }
    const inserted = args.rows.reduce((a, n) => a + n, 0) * args.reps;
    const checks: string[] = [];
    for (const v of variants) {
      if (!v.check) continue;
      const r = await v.check(urls.get(v.name)!);
      checks.push(`- ${v.name}: ${r.events} events, ${r.bad} that do not follow their predecessor`);
      if (r.events !== inserted || r.bad > 0) throw new Error(`${v.name}: ${r.events} events (${inserted} rows), ${r.bad} bad`);
    }
    const table = args.rows.flatMap((rows) => variants.map((v) => {
      const s = summarize(rates.get(`${rows}|${v.name}`)!);
      return `| ${rows} | ${v.name} | ${s.median.toFixed(0)} [${s.min.toFixed(0)}-${s.max.toFixed(0)}] |`;
    }));
    const lines = ['# Bulk INSERT ... SELECT with the capture in C (bench/designs_bulk.ts)', '',
      `Run ${started.toISOString()} to ${new Date().toISOString()}. Command: \`npx tsx bench/designs_bulk.ts ${process.argv.slice(2).join(' ')}\`.`.replace(' `.', '`.'),
      `Machine: ${machineDescription()}; server: ${server.source}; pgbench: ${await toolVersion(findClientTool('pgbench'))}; ` +
        `${args.reps} interleaved runs of each import, one statement and transaction (bench/pgbench/bulk_insert_select.sql), median [min-max]; ` +
        'rows/s = rows / the transaction\'s latency (the commit, where ours chains, included); one event a row where audited.', '',
      '| rows | variant | rows/s (= events/s where audited) |', '|---|---|---|', ...table, '',
      'Variants:', ...variants.map((v) => `- ${v.name}: ${v.what}`), ...notes, '', 'Chains checked after the runs:', ...checks, ''];
    await mkdir(path.dirname(args.out), { recursive: true });
    await writeFile(args.out, lines.join('\n'));
    console.log(`\n${lines.join('\n')}\nwritten to ${path.relative(process.cwd(), args.out)}`);
  } finally {
    await server.stop();
    await rm(cModule, { force: true });
  }
}

await main();
