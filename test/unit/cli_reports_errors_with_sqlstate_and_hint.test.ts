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

  it('validates option values with a message naming the option', async () => {
    const io = capturedIo();
    expect(await main(['verify', '--from-seq', '0'], io)).toBe(2);
    expect(io.err.split('\n')[0]).toBe('error: --from-seq: must be a positive integer (SQLSTATE 22023)');
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
