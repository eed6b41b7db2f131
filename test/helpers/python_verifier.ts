/**
 * Runs docs/examples/verify_jsonl_export.py, the independent verifier an
 * auditor could write from the documentation (Python's standard library,
 * no pg-audit-trail code), so that tests can check it reaches the
 * same verdict as audit-trail's own verifier.
 */
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PYTHON_VERIFIER = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../docs/examples/verify_jsonl_export.py');

let checked: string | null | undefined;

/** Why the Python verifier cannot run here (no python3 3.8+ on PATH), or null when it can. Said once, visibly. */
export function pythonUnavailable(): string | null {
  if (checked !== undefined) return checked;
  try {
    const version = execFileSync('python3', ['-c', 'import sys; print(sys.version_info >= (3, 8))'], { encoding: 'utf8', timeout: 20_000 }).trim();
    checked = version === 'True' ? null : 'python3 is older than 3.8';
  } catch (e) {
    checked = `python3 cannot run here (${(e as Error).message.split('\n')[0]})`;
  }
  if (checked !== null) {
    console.warn(`NOTE: the independent Python verifier (docs/examples/verify_jsonl_export.py) is not run: ${checked}. Install python3 to run it.`);
  }
  return checked;
}

export interface PythonVerdict {
  exitCode: number;
  ok: boolean;
  seq: number | null;
  problem: string | null;
  detail: string | null;
  eventsChecked: number | null;
  checkpointsMatched: number | null;
}

/** The Python verifier's verdict on an export (with an anchor store directory and public key when given). */
export function pythonVerdict(dir: string, anchors?: { storeDir: string; publicKeyFile: string }): Promise<PythonVerdict> {
  const args = [PYTHON_VERIFIER, dir, '--json'];
  if (anchors !== undefined) args.push('--anchors', anchors.storeDir, '--public-key', anchors.publicKeyFile);
  return new Promise((resolve, reject) => {
    execFile('python3', args, { encoding: 'utf8', timeout: 120_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      try {
        const v = JSON.parse(stdout) as {
          ok: boolean;
          first_bad_sequence_no: number | null;
          problem: string | null;
          detail: string | null;
          events_checked: number | null;
          checkpoints_matched: number | null;
        };
        resolve({
          exitCode,
          ok: v.ok,
          seq: v.first_bad_sequence_no,
          problem: v.problem,
          detail: v.detail,
          eventsChecked: v.events_checked,
          checkpointsMatched: v.checkpoints_matched,
        });
      } catch {
        reject(new Error(`the Python verifier printed no verdict (exit ${exitCode}): ${stdout}${stderr}`));
      }
    });
  });
}
