/**
 * Unusable evidence is refused with a clear error that names the file and
 * says what to do, and a non-zero exit: a truncated Parquet file, a manifest
 * listing a missing file, garbage in a JSONL line, the wrong public key, a
 * missing anchor store.
 */
import { appendFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { recordEvents, simpleEvents } from '../helpers/trail.ts';
import { main, type Io } from '../../src/cli/main.ts';
import { anchorAll, exportTenant, generateKeys } from '../../src/index.ts';

const db = useTestDatabase('bad_evidence_input');
const TENANT = 'plant_bad';
let work: string;
let keys: { privateKeyFile: string; publicKeyFile: string };
let store: string;

async function cli(args: string[]): Promise<{ code: number; stderr: string; error: Record<string, unknown> }> {
  let out = '';
  let err = '';
  const io: Io = { stdout: (t) => void (out += t), stderr: (t) => void (err += t) };
  const code = await main(args, io);
  const jsonIo: Io = { stdout: (t) => void (out = t), stderr: () => undefined };
  await main([...args, '--json'], jsonIo);
  const parsed = JSON.parse(out) as { error?: Record<string, unknown> };
  return { code, stderr: err, error: parsed.error ?? {} };
}

async function freshExport(format: 'jsonl' | 'parquet'): Promise<string> {
  const dir = path.join(work, `export-${format}-${Math.random().toString(16).slice(2)}`);
  await exportTenant({ databaseUrl: db.url, tenant: TENANT, outDir: dir, format });
  return dir;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'bad-input-'));
  await recordEvents(await db.connect(), TENANT, simpleEvents(20));
  keys = await generateKeys({ outDir: path.join(work, 'keys') });
  store = `file:${path.join(work, 'store')}`;
  await anchorAll({ databaseUrl: db.url, stores: [store], keyFile: keys.privateKeyFile });
});

describe('bad evidence input', () => {
  it('a truncated Parquet file', async () => {
    const dir = await freshExport('parquet');
    const file = path.join(dir, 'events-00001.parquet');
    await truncate(file, Math.floor((await stat(file)).size / 2));
    const r = await cli(['verify', '--export', dir]);
    expect(r.code).toBe(2);
    expect(r.error).toMatchObject({ code: '22P02', file });
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(/hint: .*fresh export/);
  });

  it('a manifest that lists a missing file', async () => {
    const dir = await freshExport('jsonl');
    const file = path.join(dir, 'events-00001.jsonl');
    await rm(file);
    const r = await cli(['verify', '--export', dir]);
    expect(r.code).toBe(2);
    expect(r.error).toMatchObject({ code: '58P01', file });
    expect(r.stderr).toContain(`${file} is listed in`);
  });

  it('garbage in a JSONL line', async () => {
    const dir = await freshExport('jsonl');
    const file = path.join(dir, 'events-00001.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines[6] = '{"sequence_no": 7, garbage';
    await writeFile(file, lines.join('\n'));
    const r = await cli(['verify', '--export', dir]);
    expect(r.code).toBe(2);
    expect(r.error).toMatchObject({ code: '22P02', file });
    expect(r.stderr).toContain(`${file}, line 7: not valid JSON`);
  });

  it('a JSONL file cut in the middle of a line', async () => {
    const dir = await freshExport('jsonl');
    const file = path.join(dir, 'events-00001.jsonl');
    await appendFile(file, '{"sequence_no": 22');
    const r = await cli(['verify', '--export', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('line 22: the last line has no end');
  });

  it('the wrong public key', async () => {
    const other = await generateKeys({ outDir: path.join(work, 'other-keys') });
    const dir = await freshExport('jsonl');
    for (const args of [
      ['verify', '--export', dir, '--anchors', store, '--public-key', other.publicKeyFile],
      ['verify', '--database-url', db.url, '--anchors', store, '--public-key', other.publicKeyFile],
    ]) {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.error).toMatchObject({ code: '22P02', file: other.publicKeyFile });
      expect(r.stderr).toMatch(/none of the 1 checkpoints .* was signed by the key in/);
    }
  });

  it('a missing anchor store', async () => {
    const dir = await freshExport('jsonl');
    const missing = path.join(work, 'no-such-store');
    const r = await cli(['verify', '--export', dir, '--anchors', `file:${missing}`, '--public-key', keys.publicKeyFile]);
    expect(r.code).toBe(2);
    expect(r.error).toMatchObject({ code: '58P01', file: missing });
    expect(r.stderr).toContain(`anchor store file:${missing} does not exist`);
  });

  it('a missing export directory and a missing key file', async () => {
    const r = await cli(['verify', '--export', path.join(work, 'nothing-here')]);
    expect(r.code).toBe(2);
    expect(r.error).toMatchObject({ code: '58P01', file: path.join(work, 'nothing-here', 'manifest.json') });
    const k = await cli(['anchor', '--database-url', db.url, '--store', store, '--key', path.join(work, 'no-key.pem')]);
    expect(k.code).toBe(2);
    expect(k.error).toMatchObject({ code: '58P01', file: path.join(work, 'no-key.pem') });
  });
});
