import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { capturedIo } from '../helpers/cli_io.ts';

const noDatabase = { ...process.env };
delete noDatabase['DATABASE_URL'];

describe('the CLI turns errors into one line, a hint and a non-zero exit', () => {
  it('rejects an unknown option with SQLSTATE 22023', async () => {
    const io = capturedIo();
    expect(await main(['verify', '--frobnicate'], io)).toBe(2);
    expect(io.err).toMatch(/^error: .*frobnicate.* \(SQLSTATE 22023\)\nhint: /);
  });

  it("keeps Node's advice for an option whose value looks like another option, in the hint", async () => {
    const io = capturedIo();
    expect(await main(['export', '--tenant', '--json'], io)).toBe(2);
    const { error } = JSON.parse(io.out) as { error: { code: string; message: string; hint: string } };
    expect(error).toMatchObject({ code: '22023', message: "Option '--tenant' argument is ambiguous." });
    expect(error.hint).toMatch(/--tenant=-XYZ.*Run audit-trail export --help to see its options\.$/);
  });

  it('validates option values with a message naming the option', async () => {
    const io = capturedIo();
    expect(await main(['verify', '--from-seq', '0'], io)).toBe(2);
    expect(io.err.split('\n')[0]).toBe('error: --from-seq: must be a positive integer (SQLSTATE 22023)');
  });

  it('refuses an argument that was not UTF-8 (Node.js reads such bytes as U+FFFD) with SQLSTATE 22021, before any connection', async () => {
    // What process.argv holds after a shell passed the bytes 70 6c ff 61 6e 74.
    const notUtf8 = Buffer.from([0x70, 0x6c, 0xff, 0x61, 0x6e, 0x74]).toString('utf8');
    for (const args of [['verify', '--tenant', notUtf8], ['export', '--tenant', 'plant_hd', '--out', `/tmp/${notUtf8}`], ['enable', notUtf8]]) {
      const io = capturedIo();
      expect(await main([...args, '--database-url', 'postgres://nobody@127.0.0.1:1/none'], io)).toBe(2);
      expect(io.err).toMatch(/^error: (--tenant|--out|argument 1) is not valid UTF-8 text: .* \(SQLSTATE 22021\)\nhint: Give the value in UTF-8/);
    }
  });

  it('refuses a DATABASE_URL that was not UTF-8 the same way, and only where a connection is made', async () => {
    const saved = process.env['DATABASE_URL'];
    process.env['DATABASE_URL'] = `postgres://nobody:${Buffer.from([0xff]).toString('utf8')}@127.0.0.1:1/none`;
    try {
      const io = capturedIo();
      expect(await main(['verify', '--tenant', 'plant_hd'], io)).toBe(2);
      expect(io.err).toMatch(/^error: DATABASE_URL is not valid UTF-8 text: .* \(SQLSTATE 22021\)\nhint: .*percent-encode/);
      // A command that makes no connection does not read it.
      const dir = await mkdtemp(path.join(os.tmpdir(), 'cli-errors-'));
      try {
        const keys = capturedIo();
        expect(await main(['keys', 'generate', '--out', dir], keys)).toBe(0);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    } finally {
      if (saved === undefined) delete process.env['DATABASE_URL'];
      else process.env['DATABASE_URL'] = saved;
    }
  });

  it('prints {"ok":false,"error":{...}} with --json', async () => {
    const io = capturedIo();
    expect(await main(['enable', 'orders', '--options', 'not json', '--json'], io)).toBe(2);
    const parsed = JSON.parse(io.out) as { ok: boolean; error: { code: string; message: string } };
    expect(parsed.ok).toBe(false);
    expect(parsed.error.code).toBe('22023');
    expect(parsed.error.message).toContain('--options');
  });

  it('says how to give a database when there is none', async () => {
    const saved = process.env['DATABASE_URL'];
    delete process.env['DATABASE_URL'];
    try {
      const io = capturedIo();
      expect(await main(['verify'], io)).toBe(2);
      expect(io.err).toContain('(SQLSTATE 08001)');
      expect(io.err).toContain('hint: Pass --database-url');
    } finally {
      if (saved !== undefined) process.env['DATABASE_URL'] = saved;
    }
  });

  it('has --help for every command', async () => {
    for (const command of ['migrate', 'enable', 'disable', 'verify']) {
      const io = capturedIo();
      expect(await main([command, '--help'], io)).toBe(0);
      expect(io.out).toContain(`Usage: audit-trail ${command}`);
    }
  });
});
