/**
 * `audit-trail demo` (issue 3, item 6), run through the CLI entry as a user
 * would, against the run's server: it creates a database of its own there,
 * the untouched trail and the export made before tampering verify clean, and
 * audit_trail.verify and the offline check of a later export name the events
 * the demo tampered with. It drops its database afterwards.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { superuserUrl } from '../helpers/database.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env['DATABASE_URL'];
    const child = spawn(process.execPath, [path.join(root, 'bin', 'audit-trail.mjs'), ...args], { cwd: root, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function demoDatabases(): Promise<string[]> {
  const client = new pg.Client({ connectionString: superuserUrl() });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>("select datname from pg_database where datname like 'audit\\_trail\\_demo\\_%'");
    return rows.map((r) => r.datname);
  } finally {
    await client.end();
  }
}

describe('audit-trail demo finds the tampering', () => {
  it('verifies the clean trail and names every tampered sequence_no, in the database and in an export', async () => {
    const before = await demoDatabases();
    const { code, stdout, stderr } = await runCli(['demo', '--database-url', superuserUrl(), '--json']);
    const report = JSON.parse(stdout || `{"stderr": ${JSON.stringify(stderr)}}`) as {
      ok: boolean;
      tenant: string;
      database: { source: string; name: string; kept: boolean };
      steps: Array<{ n: number; text: string; ok: boolean }>;
      shift: Array<{ sequence_no: number; actor_name: string }>;
      refusals: Array<{ actor_id: string; sqlstate: string; events_before: number; events_after: number }>;
      anchor: { sequence_no: number } | null;
      clean: { database: { ok: boolean; checkpoints_checked: number }; export: { ok: boolean; events_checked: number; checkpoints_checked: number } };
      tampering: { edited: { sequence_no: number; field: string }; deleted: { sequence_no: number } };
      detected: {
        database: Array<{ first_bad_sequence_no: number; problem: string }>;
        export: { ok: boolean; first_bad_sequence_no: number; problem: string };
      };
      findings: Array<{ sequence_no: number; problem: string }>;
      error: unknown;
    };
    expect(report.error, stderr).toBeNull();
    expect(report.ok).toBe(true);
    expect(code).toBe(0);
    expect(report.database).toMatchObject({ source: 'database-url', kept: false });
    expect(report.database.name).toMatch(/^audit_trail_demo_[0-9a-f]+$/);
    expect(report.steps.every((s) => s.ok)).toBe(true);

    // The shift: several named people; refusals of the shared and the suspended account wrote nothing.
    expect(new Set(report.shift.map((e) => e.actor_name)).size).toBeGreaterThanOrEqual(3);
    expect(report.refusals.map((r) => r.actor_id).sort()).toEqual(['line2-terminal', 'usr_jan.berger']);
    for (const r of report.refusals) {
      expect(r.sqlstate).toBe('AT002');
      expect(r.events_after).toBe(r.events_before);
    }

    // Clean: the database against the checkpoint, and the export made before tampering, offline.
    expect(report.anchor).not.toBeNull();
    expect(report.clean.database).toMatchObject({ ok: true, checkpoints_checked: 1 });
    expect(report.clean.export).toMatchObject({ ok: true, checkpoints_checked: 1 });
    expect(report.clean.export.events_checked).toBe((report.anchor?.sequence_no ?? 0) + 1);

    // Tampered: every tampered event named, with the kind of break.
    const edited = report.tampering.edited.sequence_no;
    const deleted = report.tampering.deleted.sequence_no;
    expect(edited).not.toBe(deleted);
    expect(report.detected.database.map((b) => [b.first_bad_sequence_no, b.problem])).toEqual(
      [
        [edited, 'hash mismatch'],
        [deleted, 'gap'],
      ].sort((a, b) => Number(a[0]) - Number(b[0])),
    );
    expect(report.findings.map((f) => f.sequence_no)).toEqual([edited, deleted].sort((a, b) => a - b));
    expect(report.detected.export.ok).toBe(false);
    expect(report.detected.export.first_bad_sequence_no).toBe(Math.min(edited, deleted));

    // Its database is gone; no other database was touched.
    expect(await demoDatabases()).toEqual(before);
  });

  it('prints numbered steps and the summary as text', async () => {
    const { code, stdout } = await runCli(['demo', '--database-url', superuserUrl()]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^ 1\. Connected to PostgreSQL/m);
    expect(stdout).toMatch(/Refused: the shared login line2-terminal/);
    expect(stdout).toMatch(/^ *tampering found at sequence_no \d+ \(hash mismatch/m);
    expect(stdout).toMatch(/^ *tampering found at sequence_no \d+ \(gap/m);
    expect(stdout).not.toMatch(/UNEXPECTED/);
  });

  it('when it cannot run, says so on stdout and prints the error with its SQLSTATE and hint on stderr', async () => {
    // Port 1 on the loopback: nothing listens there.
    const { code, stdout, stderr } = await runCli(['demo', '--database-url', 'postgres://postgres@127.0.0.1:1/postgres']);
    expect(code).toBe(2);
    expect(stdout).toMatch(/The demo did not work as intended: the error is on stderr\./);
    expect(stdout).not.toMatch(/ECONNREFUSED|SQLSTATE/);
    expect(stdout).toMatch(/^No database was created; the temporary files are removed\.$/m);
    expect(stderr).toMatch(/^error: .*\(SQLSTATE 08\w{3}\)$/m);
    expect(stderr).toMatch(/^hint: /m);
  });
});
