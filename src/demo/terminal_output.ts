/** The demo's terminal text: one line per step as it happens, then the summary. */
import type { DemoReport, DemoStep } from './run_demo.ts';

/** " 7. ..." plus indented detail lines; a step with an unexpected outcome is marked. */
export function formatStep(step: DemoStep): string {
  const head = `${String(step.n).padStart(2)}. ${step.ok ? '' : 'UNEXPECTED: '}${step.text}\n`;
  return head + (step.lines ?? []).map((l) => `      ${l}\n`).join('');
}

export function formatHeader(): string {
  return 'pg-audit-trail demo: one shift of MES changes, audited, anchored, tampered with by a superuser, and checked\n\n';
}

/** The closing lines: what was found, and what was left running (--keep) or removed. */
export function formatSummary(report: DemoReport): string {
  const out: string[] = [''];
  if (report.ok) {
    out.push(`The untouched trail and the export made before tampering verified clean; the tampering was found:`);
    for (const f of report.findings) out.push(`  tampering found at sequence_no ${f.sequence_no} (${f.problem}: ${f.tampering})`);
  } else {
    // The error itself goes to stderr (audit-trail demo prints it there).
    out.push(`The demo did not work as intended: ${report.error === null ? 'see the steps above' : 'the error is on stderr'}.`);
  }
  out.push('');
  if (report.database.kept) {
    if (report.database.url !== null) out.push(`Kept database ${report.database.name}: psql '${report.database.url}'`);
    if (report.server !== null) {
      out.push(`The embedded server keeps running (data ${report.server.data_dir}, log ${report.server.log_file}).`);
      out.push(`Stop it and remove its files with: ${report.server.stop_command}`);
    } else if (report.database.name !== '') {
      out.push(`Drop it when done: drop database ${report.database.name};`);
    }
    if (report.work_dir !== null) out.push(`Keys, anchor store and exports: ${report.work_dir}`);
  } else if (report.database.source === 'embedded') {
    out.push('Stopped the embedded server and removed the temporary files (run with --keep to explore the database with psql).');
  } else if (report.database.name === '') {
    out.push('No database was created; the temporary files are removed.');
  } else {
    out.push(`Dropped database ${report.database.name} and removed the temporary files (run with --keep to explore it with psql).`);
  }
  return `${out.join('\n')}\n`;
}
