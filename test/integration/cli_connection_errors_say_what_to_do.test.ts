/**
 * A connection that cannot be made is one line with an SQLSTATE and a hint
 * that says what to do, and exit 2: a server that asks for a password the
 * connection string does not carry (node-postgres refuses it on the client
 * side, with no SQLSTATE of its own), and a port where nothing listens.
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { main, type Io } from '../../src/cli/main.ts';

const db = useTestDatabase('cli_connection_errors');

async function cli(args: string[]): Promise<{ code: number; stderr: string; error: Record<string, unknown> }> {
  let err = '';
  let out = '';
  const code = await main(args, { stdout: () => undefined, stderr: (t) => void (err += t) });
  const jsonIo: Io = { stdout: (t) => void (out = t), stderr: () => undefined };
  await main([...args, '--json'], jsonIo);
  return { code, stderr: err, error: (JSON.parse(out) as { error?: Record<string, unknown> }).error ?? {} };
}

/** Runs `fn` with PGPASSWORD unset, so that only the connection string carries (or lacks) a password. */
async function withoutPgpassword<T>(fn: () => Promise<T>): Promise<T> {
  const saved = process.env['PGPASSWORD'];
  delete process.env['PGPASSWORD'];
  try {
    return await fn();
  } finally {
    if (saved !== undefined) process.env['PGPASSWORD'] = saved;
  }
}

describe('connection errors', () => {
  it('a server that asks for a password the connection string lacks', async (ctx) => {
    const c = await db.connect();
    const { rows } = await c.query<{ trusted: boolean }>(
      `select exists (select from pg_hba_file_rules where type = 'host' and auth_method = 'trust') as trusted`,
    );
    if (rows[0]?.trusted) {
      // (A server given by DATABASE_URL that trusts TCP logins never asks.)
      console.warn('[connection errors] SKIPPED: this server trusts host connections, so it never asks for a password');
      ctx.skip();
    }
    await c.query(`create role at_nopassword login`);
    const url = new URL(db.url);
    url.username = 'at_nopassword';
    url.password = '';
    const r = await withoutPgpassword(() => cli(['verify', '--database-url', url.toString()]));
    expect(r.code).toBe(2);
    expect(r.error).toMatchObject({ code: '28P01' });
    expect(r.stderr).toMatch(/^error: could not connect to the database: the server asks for a password and none was given .*\(SQLSTATE 28P01\)\nhint: .*PGPASSWORD/);
  });

  it('a port where nothing listens', async () => {
    // A port that was free a moment ago (bound, then closed).
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const r = await cli(['verify', '--database-url', `postgres://nobody@127.0.0.1:${port}/nothing`]);
    expect(r.code).toBe(2);
    expect(r.error).toMatchObject({ code: '08006' });
    expect(r.stderr).toMatch(/^error: could not connect to the database: .*\(SQLSTATE 08006\)\nhint: Check that the server is running/);
  });
});
