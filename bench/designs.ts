/**
 * Capture designs side by side on TPC-B-like (bench/pgbench/tpcb_tenant.sql),
 * as ratios to the unaudited run in the same bench run: the measurements
 * behind the README's statement of which targets of the performance issue
 * PL/pgSQL can reach, and what C on the server would (docs/architecture.md,
 * "What capture costs").
 *
 *   npx tsx bench/designs.ts [--seconds 8] [--reps 3] [--cells 1:100,16:100,16:1] [--only a,b] [--out FILE]
 *
 * Designs (bench/designs/*.sql, each in its own clone of one `pgbench -i -s 10`):
 * baseline (no trigger); naive (bench/naive_trigger.sql, no chain); ours
 * (migrate() and bench/tpcb_audit.sql); floor (bench/floor_chain.sql);
 * head_through_commit (no trigger, the transaction moves its tenant's head as
 * its last statement); deferred_row_chain; deferred_row_chain_with_context_marks;
 * deferred_row_event; deferred_row_event_c (its trigger in C, built against
 * the server's headers; skipped with a note where there are none). A cell is
 * CLIENTS:TENANTS. Runs are interleaved (every design once, then again), each
 * after VACUUM of the small hot tables and a CHECKPOINT; medians with min-max.
 * Afterwards every chain is checked (gapless, linked, hashes recomputed).
 * Writes bench/results/designs.md (or --out). Starts its own PostgreSQL like `npm run
 * bench` (DATABASE_URL for another server).
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from '../src/db/migrate.ts';
import { findClientTool, libpqEnv, machineDescription, run, runPgbench, summarize, toolVersion } from './lib.ts';
import { buildCPrototype } from './designs/c_prototype.ts';
import { freshDatabase, runSqlFile, startBenchServer, withClient } from './server.ts';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const designsDir = path.join(benchDir, 'designs');
const TABLES = ['pgbench_accounts', 'pgbench_tellers', 'pgbench_branches', 'pgbench_history'];

interface Design {
  name: string;
  what: string;
  /** Installs the design into a clone of the pgbench database. */
  install(url: string): Promise<void>;
  script: string;
  /** "tenants events bad" of its chains after the runs. */
  check?(url: string): Promise<{ tenants: number; events: number; bad: number }>;
  /** Why the design cannot run on this server (it is then skipped, with that note), or null. */
  unavailable?(url: string): Promise<string | null>;
}

const tpcbScript = path.join(benchDir, 'pgbench', 'tpcb_tenant.sql');
/**
 * The script of head_through_commit: tpcb_tenant.sql with one more statement
 * before END, written at start-up (so that it never drifts from the TPC-B
 * script the other designs run). By hand: add that line to a copy.
 */
const HEAD_THROUGH_COMMIT_STATEMENT = "UPDATE bench_design.heads SET sequence_no = sequence_no + 1 WHERE tenant_id = 't' || :tenant;";
const headThroughCommitScript = path.join(os.tmpdir(), `pg-audit-trail-designs-${process.pid}-tpcb_head_through_commit.sql`);

async function writeHeadThroughCommitScript(): Promise<void> {
  const tpcb = await readFile(tpcbScript, 'utf8');
  if (!/^END;$/m.test(tpcb)) throw new Error(`${tpcbScript} has no END; line to put the head's UPDATE before`);
  await writeFile(headThroughCommitScript, tpcb.replace(/^END;$/m, `${HEAD_THROUGH_COMMIT_STATEMENT}\nEND;`));
}

async function enableAll(url: string, fn: string): Promise<void> {
  await withClient(url, async (c) => {
    for (const t of TABLES) await c.query(`select ${fn}($1)`, [t]);
  });
}

const countChecks = async (url: string, sql: string): Promise<{ tenants: number; events: number; bad: number }> =>
  withClient(url, async (c) => {
    const { rows } = await c.query<{ tenants: string; events: string; bad: string }>(sql);
    const r = rows[0]!;
    return { tenants: Number(r.tenants), events: Number(r.events), bad: Number(r.bad) };
  });

/**
 * Checks a chain of bare row images (the prototypes' bench_design.events, the
 * floor's bench_floor.events): record_hash = sha256(old row text || new row text
 * || int8 sequence_no || prev_hash), as both write it.
 */
const bareChainCheck = (events: string): string => `
  select count(distinct tenant_id) as tenants, count(*) as events, count(*) filter (where not ok) as bad from (
    select tenant_id,
           sequence_no = row_number() over w
           and prev_hash = coalesce(lag(record_hash) over w, '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
           and record_hash = sha256(convert_to(coalesce(old_row::text, '') || coalesce(new_row::text, ''), 'UTF8')
                                    || int8send(sequence_no) || prev_hash) as ok
      from ${events} window w as (partition by tenant_id order by sequence_no)) s`;

function prototype(name: string, what: string, options: { needsAuditTrail?: boolean; script?: string; check?: string | null } = {}): Design {
  const check = options.check === undefined ? bareChainCheck('bench_design.events') : options.check;
  return {
    name,
    what,
    script: options.script ?? tpcbScript,
    async install(url) {
      if (options.needsAuditTrail) await migrate({ databaseUrl: url });
      await runSqlFile(url, path.join(designsDir, 'common.sql'));
      await runSqlFile(url, path.join(designsDir, `${name}.sql`));
      if (options.script === undefined) await enableAll(url, 'bench_design.enable');
    },
    ...(check === null ? {} : { check: (url: string) => countChecks(url, check) }),
  };
}

/** A trigger of `npm run bench` (a file in bench/ and its function that attaches it to a table). */
function benchTrigger(name: string, what: string, file: string, enable: string, check?: string): Design {
  return {
    name,
    what: `bench/${file}: ${what}`,
    script: tpcbScript,
    async install(url) {
      await runSqlFile(url, path.join(benchDir, file));
      await enableAll(url, enable);
    },
    ...(check === undefined ? {} : { check: (url: string) => countChecks(url, check) }),
  };
}

/** Where designs/c_prototype.ts builds the C prototype for this run. */
const cModule = path.join(os.tmpdir(), `pg-audit-trail-designs-${process.pid}-deferred_row_event_c.so`);

const DESIGNS: Design[] = [
  { name: 'baseline', what: 'no audit', script: tpcbScript, install: async () => undefined },
  // (the bar of the issue's "faster than the naive trigger in every cell", here next to the chains' bounds)
  benchTrigger('naive', 'to_jsonb(OLD) and to_jsonb(NEW) into one table, no delta, no chain', 'naive_trigger.sql', 'bench_naive_enable'),
  {
    name: 'ours',
    what: 'pg-audit-trail (capture trigger, buffer, commit step)',
    script: tpcbScript,
    async install(url) {
      await migrate({ databaseUrl: url });
      await runSqlFile(url, path.join(benchDir, 'tpcb_audit.sql'));
    },
    check: (url) =>
      countChecks(url, `select count(*) as tenants, coalesce(sum(v.events_checked), 0) as events, count(*) filter (where not v.ok) as bad
                          from audit_trail.chain_heads h cross join lateral audit_trail.verify(h.tenant_id) v`),
  },
  benchTrigger('floor', 'row trigger into a buffer, chain at commit, nothing else', 'floor_chain.sql', 'bench_floor.enable',
    bareChainCheck('bench_floor.events')),
  prototype('head_through_commit', 'no trigger; the head moved by the last statement and held through the commit',
    // (no events: the check counts the heads' moves, and fails if the script did not move them)
    { script: headThroughCommitScript,
      check: `select count(*) filter (where sequence_no > 0) as tenants, coalesce(sum(sequence_no), 0) as events,
                     (coalesce(sum(sequence_no), 0) = 0)::int as bad from bench_design.heads` }),
  prototype('deferred_row_chain', 'deferred row trigger: head moved and a bare event written, one statement a row'),
  prototype('deferred_row_chain_with_context_marks', 'the same, with the settings of each change and one head move a transaction'),
  prototype('deferred_row_event', 'deferred row trigger writing the full event (delta, ULID, context, encoding)',
    { needsAuditTrail: true, check: 'select * from bench_design.check_trail()' }),
  {
    name: 'deferred_row_event_c',
    what: 'deferred_row_event with its trigger in C (designs/deferred_row_event_c.c), the same event',
    script: tpcbScript,
    unavailable: (url) => buildCPrototype(url, cModule),
    async install(url) {
      await migrate({ databaseUrl: url });
      await runSqlFile(url, path.join(designsDir, 'common.sql'));
      await runSqlFile(url, path.join(designsDir, 'deferred_row_event.sql'));
      await withClient(url, (c) => c.query(`create or replace function bench_design.capture() returns trigger
        language c as '${cModule.replace(/'/g, "''")}', 'design_capture_c'`));
      await enableAll(url, 'bench_design.enable');
    },
    check: (url) => countChecks(url, 'select * from bench_design.check_trail()'),
  },
];

function parseArgs(argv: string[]): { seconds: number; reps: number; cells: [number, number][]; only: string[] | null; out: string } {
  const o = { seconds: 8, reps: 3, cells: [[1, 100], [16, 100], [16, 1]] as [number, number][], only: null as string[] | null,
    out: path.join(benchDir, 'results', 'designs.md') };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--help' || a === '-h') {
      console.log('usage: npx tsx bench/designs.ts [--seconds 8] [--reps 3] [--cells 1:100,16:100,16:1] [--only ours,floor,...] [--out FILE]\n' +
        `designs: ${DESIGNS.map((d) => d.name).join(', ')} (baseline always runs)`);
      process.exit(0);
    }
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--seconds') o.seconds = Number(v);
    else if (a === '--reps') o.reps = Number(v);
    else if (a === '--cells') {
      o.cells = v.split(',').map((c) => {
        const m = /^(\d+):(\d+)$/.exec(c);
        if (!m) throw new Error(`--cells: "${c}" is not CLIENTS:TENANTS`);
        return [Number(m[1]), Number(m[2])] as [number, number];
      });
    } else if (a === '--only') o.only = v.split(',');
    else if (a === '--out') o.out = path.resolve(v);
    else throw new Error(`unknown option ${a}`);
    i += 1;
  }
  if (!(o.seconds >= 1) || !(o.reps >= 1)) throw new Error('--seconds and --reps must be at least 1');
  for (const n of o.only ?? []) if (!DESIGNS.some((d) => d.name === n)) throw new Error(`--only: unknown design "${n}"`);
  return o;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const designs = DESIGNS.filter((d) => d.name === 'baseline' || args.only === null || args.only.includes(d.name));
  const started = new Date();
  await writeHeadThroughCommitScript();
  const server = await startBenchServer(process.env['DATABASE_URL']);
  const lines: string[] = [];
  try {
    const template = await freshDatabase(server.superuserUrl, 'bench_designs_template');
    const init = await run(findClientTool('pgbench'), ['-i', '-s', '10', '-q', '-I', 'dtGvp'], libpqEnv(template));
    if (init.code !== 0) throw new Error(`pgbench -i failed:\n${init.stderr}`);
    const urls = new Map<string, string>();
    const skipped: string[] = [];
    for (const d of [...designs]) {
      const why = d.unavailable ? await d.unavailable(template) : null;
      if (why === null) continue;
      console.log(`NOTE: ${d.name} skipped: ${why}`);
      skipped.push(`- ${d.name}: skipped: ${why}`);
      designs.splice(designs.indexOf(d), 1);
    }
    for (const d of designs) {
      const url = await freshDatabase(server.superuserUrl, `bench_design_${d.name}`, 'bench_designs_template');
      await d.install(url);
      await withClient(url, (c) => c.query('vacuum analyze'));
      urls.set(d.name, url);
    }
    const table: string[] = [];
    for (const [clients, tenants] of args.cells) {
      const tps = new Map<string, number[]>();
      for (let rep = 1; rep <= args.reps; rep += 1) {
        for (const d of designs) {
          const url = urls.get(d.name)!;
          await withClient(url, async (c) => {
            await c.query('vacuum pgbench_branches');
            await c.query('vacuum pgbench_tellers');
            await c.query('checkpoint');
          });
          const r = await runPgbench(url, ['-n', '-c', String(clients), '-j', String(Math.min(clients, os.cpus().length)),
            '-T', String(args.seconds), '-D', 'scale=10', '-D', `tenants=${tenants}`, '-f', d.script]);
          if (r.failed > 0) throw new Error(`${d.name}: pgbench reported ${r.failed} failed transactions`);
          tps.set(d.name, [...(tps.get(d.name) ?? []), r.tps]);
          console.log(`${clients} clients, ${tenants} tenant(s), run ${rep}/${args.reps}, ${d.name}: ${r.tps.toFixed(0)} tps`);
        }
      }
      const base = summarize(tps.get('baseline')!).median;
      for (const d of designs) {
        const s = summarize(tps.get(d.name)!);
        table.push(`| ${clients} | ${tenants} | ${d.name} | ${s.median.toFixed(0)} [${s.min.toFixed(0)}-${s.max.toFixed(0)}] | ${(s.median / base).toFixed(2)} |`);
      }
    }
    const checks: string[] = [];
    for (const d of designs) {
      if (!d.check) continue;
      const r = await d.check(urls.get(d.name)!);
      if (d.name === 'head_through_commit') {
        checks.push(`- ${d.name}: ${r.events} head moves in ${r.tenants} tenants (no events)`);
        if (r.bad > 0) throw new Error(`${d.name}: no head moved: the generated script did not run its UPDATE`);
      } else {
        checks.push(`- ${d.name}: ${r.events} events in ${r.tenants} chains, ${r.bad} that do not follow their predecessor`);
        if (r.bad > 0) throw new Error(`${d.name}: ${r.bad} events break their chain`);
      }
    }
    lines.push('# Capture designs on TPC-B-like (bench/designs.ts)', '',
      `Run ${started.toISOString()} to ${new Date().toISOString()}. Command: \`npx tsx bench/designs.ts ${process.argv.slice(2).join(' ')}\`.`.replace(' `.', '`.'),
      `Machine: ${machineDescription()}; server: ${server.source}; pgbench: ${await toolVersion(findClientTool('pgbench'))}; ` +
        `${args.reps} interleaved runs of ${args.seconds} s per design and cell, median [min-max]; ratio = median / baseline median.`, '',
      '| clients | tenants | design | tps | ratio |', '|---|---|---|---|---|', ...table, '',
      'Designs:', ...designs.map((d) => `- ${d.name}: ${d.what}`), ...skipped, '', 'Chains checked after the runs:', ...checks, '');
    await mkdir(path.dirname(args.out), { recursive: true });
    await writeFile(args.out, lines.join('\n'));
    console.log(`\n${lines.join('\n')}\nwritten to ${path.relative(process.cwd(), args.out)}`);
  } finally {
    await server.stop();
    await rm(headThroughCommitScript, { force: true });
    await rm(cModule, { force: true });
  }
}

await main();
