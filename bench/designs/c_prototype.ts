/**
 * Builds the C prototype (deferred_row_event_c.c) for bench/designs.ts and
 * bench/designs_bulk.ts: compiled with the machine's C compiler against the
 * running server's own headers, found through a pg_config of the server's
 * major version (AUDIT_TRAIL_PG_BIN's, Debian's /usr/lib/postgresql/MAJOR/bin,
 * or on the PATH) whose --includedir-server holds postgres.h (Debian:
 * postgresql-server-dev-MAJOR). The embedded PostgreSQL 17 ships none, so
 * there the callers skip the prototype with a note.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withClient } from '../server.ts';

const source = path.join(path.dirname(fileURLToPath(import.meta.url)), 'deferred_row_event_c.c');
const built = new Map<string, string | null>();

/** Builds the module into `out` (once per process); null when built, else why it could not be. */
export async function buildCPrototype(url: string, out: string): Promise<string | null> {
  const known = built.get(out);
  if (known !== undefined) return known;
  const major = await withClient(url, async (c) =>
    Math.floor(Number((await c.query<{ v: string }>("select current_setting('server_version_num') as v")).rows[0]!.v) / 10000));
  const candidates = [process.env['AUDIT_TRAIL_PG_BIN'], `/usr/lib/postgresql/${major}/bin`, '']
    .filter((d): d is string => d !== undefined)
    .map((d) => (d === '' ? 'pg_config' : path.join(d, 'pg_config')));
  const include = candidates.map((pgConfig) => {
    try {
      const version = execFileSync(pgConfig, ['--version'], { encoding: 'utf8' });
      const dir = execFileSync(pgConfig, ['--includedir-server'], { encoding: 'utf8' }).trim();
      return new RegExp(`^PostgreSQL ${major}\\b`).test(version) && existsSync(path.join(dir, 'postgres.h')) ? dir : null;
    } catch {
      return null;
    }
  }).find((d) => d !== null);
  let problem: string | null = null;
  if (include === undefined || include === null) {
    problem = `no server headers of PostgreSQL ${major} (a pg_config of that version whose --includedir-server holds postgres.h); ` +
      'run it on a server whose headers are installed, e.g. Debian\'s PostgreSQL 15 with postgresql-server-dev-15: AUDIT_TRAIL_PG_BIN=/usr/lib/postgresql/15/bin';
  } else {
    try {
      execFileSync('cc', ['-O2', '-fPIC', '-shared', `-I${include}`, '-o', out, source], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      await chmod(out, 0o755); // the server runs as another OS user
    } catch (err) {
      problem = `cc could not build ${source}: ${String((err as { stderr?: string }).stderr ?? err).split('\n')[0]}`;
    }
  }
  built.set(out, problem);
  return problem;
}
