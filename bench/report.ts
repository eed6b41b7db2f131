/** Renders a bench result as markdown (bench/results/latest.md). */
import type { Summary } from './lib.ts';
import type { BenchResult } from './run.ts';

function num(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(1);
}

function cell(s: Summary | null): string {
  if (s === null || s.runs.length === 0) return '-';
  if (s.runs.length <= 1) return num(s.median);
  return `${num(s.median)} [${num(s.min)}-${num(s.max)}]`;
}

export function renderMarkdown(r: BenchResult): string {
  const out: string[] = [];
  out.push(`# pg-audit-trail benchmarks (${r.mode})`, '');
  out.push(`Run ${r.startedAt} to ${r.finishedAt} (${r.elapsedSeconds} s). Command: \`npm run bench${r.mode === 'quick' ? ' -- --quick' : ''}\`.`, '');
  out.push('Each figure: median [min-max] of the runs; baseline and audited runs interleaved (A B A B ...) in the same bench run;',
    'ratio = audited median / baseline median. "ours vs naive" rows put the naive trigger in the baseline column.', '');
  out.push('| workload | cell | baseline | audited | ratio | target | met? |', '|---|---|---|---|---|---|---|');
  for (const row of r.rows) {
    const unit = row.unit === 'tps' ? ' tps' : row.unit === 'bytes/event' ? ' B' : '/s';
    const base = row.baseline ? `${cell(row.baseline)}${unit} (${row.baselineLabel})` : '-';
    const ratio = row.ratio === null || !Number.isFinite(row.ratio) ? '-' : row.ratio.toFixed(2);
    const met = row.met === null ? '' : row.met ? 'yes' : '**no**';
    const note = row.note ? ` (${row.note})` : '';
    out.push(`| ${row.workload} | ${row.cell}${note} | ${base} | ${cell(row.audited)}${unit} | ${ratio} | ${row.target} | ${met} |`);
  }
  out.push('', '## Settings', '');
  for (const [k, v] of Object.entries(r.settings)) out.push(`- ${k}: ${v}`);
  if (r.notes.length) {
    out.push('', '## Notes', '');
    for (const n of r.notes) out.push(`- ${n}`);
  }
  if (r.waits.length) {
    out.push('', '## Where the benchmark backends were', '',
      'pg_stat_activity sampled every 100 ms during each run (share of backend samples; CPU = active without a wait event;',
      '"(idle in transaction)" = waiting for pgbench between statements). Host CPU busy = /proc/stat over the run, pgbench included;',
      'CPU per transaction = busy share x cores x run time / transactions (where the host is saturated, the ratio of two',
      'variants\' throughputs is about the inverse ratio of their CPU per transaction).', '',
      '| cell | variant | host CPU busy | host CPU per transaction | top states |', '|---|---|---|---|---|');
    for (const w of r.waits) {
      const top = Object.entries(w.shares).slice(0, 5).map(([k, v]) => `${k} ${(100 * v).toFixed(0)}%`).join(', ');
      const perTx = w.cpuMsPerTx == null ? '-' : `${w.cpuMsPerTx.toFixed(2)} ms`;
      out.push(`| ${w.cell} | ${w.variant} | ${w.cpuBusy === null ? '-' : `${(100 * w.cpuBusy).toFixed(0)}%`} | ${perTx} | ${top} |`);
    }
  }
  if (r.profile.length) {
    out.push('', '## Where the capture time goes (1 client, extra unmeasured run with track_functions = pl)', '',
      '| variant | function | calls | total us/call | self us/call |', '|---|---|---|---|---|');
    for (const p of r.profile) {
      out.push(`| ${p.variant} | ${p.function} | ${p.calls.toLocaleString('en-US')} | ${p.totalUsPerCall.toFixed(1)} | ${p.selfUsPerCall.toFixed(1)} |`);
    }
  }
  out.push('');
  return out.join('\n');
}
