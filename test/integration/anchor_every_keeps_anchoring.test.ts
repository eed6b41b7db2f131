/**
 * `audit-trail anchor --every` is the cron-less way to run anchoring: it
 * anchors what is new at each pass, says "unchanged" when nothing is, survives
 * a pass that fails (reports it and tries again) and ends with the worst exit
 * code of all passes. --count bounds it (here, as in a test or a one-off run).
 */
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { recordEvents, simpleEvents } from '../helpers/trail.ts';
import { main, type Io } from '../../src/cli/main.ts';
import { generateKeys } from '../../src/index.ts';

const TENANT = 'plant_every';

describe('anchor --every', () => {
  const db = useTestDatabase('anchor_every_keeps_anchoring');
  let c: pg.Client;
  let work: string;
  let keyFile: string;
  const listenersBefore = process.listenerCount('SIGTERM');

  beforeAll(async () => {
    c = await db.connect();
    await recordEvents(c, TENANT, simpleEvents(5));
    work = await mkdtemp(path.join(tmpdir(), 'anchor-every-'));
    keyFile = (await generateKeys({ outDir: path.join(work, 'keys') })).privateKeyFile;
  });

  it('anchors at each pass what is new, and nothing when nothing is', async () => {
    const storeDir = path.join(work, 'store');
    let out = '';
    let err = '';
    let added: Promise<void> | undefined;
    const io: Io = {
      stdout: (t) => {
        out += t;
        // New events arrive between the first and the second pass.
        if (added === undefined && out.includes('anchored')) added = recordEvents(c, TENANT, simpleEvents(3));
      },
      stderr: (t) => void (err += t),
    };
    const code = await main(
      ['anchor', '--database-url', db.url, '--store', `file:${storeDir}`, '--key', keyFile, '--every', '1s', '--count', '3'],
      io,
    );
    await added;
    expect(err).toBe('');
    expect(code).toBe(0);
    const passes = out.split('\n').filter((l) => l.startsWith(TENANT));
    expect(passes).toHaveLength(3);
    expect(passes[0]).toMatch(new RegExp(`^${TENANT} at sequence_no 5: anchored`));
    // 5 events, the record of the first anchoring (6), 3 new events (7-9).
    expect(passes[1]).toMatch(new RegExp(`^${TENANT} at sequence_no 9: anchored`));
    // Only the record of the second anchoring is newer: nothing to vouch for.
    expect(passes[2]).toMatch(new RegExp(`^${TENANT} at sequence_no 10: unchanged`));
    expect((await readdir(path.join(storeDir, TENANT))).filter((f) => f.endsWith('.json'))).toHaveLength(2);
    const { rows } = await c.query<{ n: string }>(`select count(*)::text as n from audit_trail.anchors where tenant_id = $1`, [TENANT]);
    expect(rows[0]!.n).toBe('2');
  });

  it('SIGTERM ends the run after the current pass, with that pass\'s exit code', async () => {
    let out = '';
    let signalled = false;
    const io: Io = {
      stdout: (t) => {
        out += t;
        // Delivered while the first pass prints: the run ends before the next one.
        if (!signalled && out.includes(TENANT)) {
          signalled = true;
          process.emit('SIGTERM');
        }
      },
      stderr: () => undefined,
    };
    const started = Date.now();
    const code = await main(
      ['anchor', '--database-url', db.url, '--store', `file:${path.join(work, 'store-signal')}`, '--key', keyFile, '--every', '1h'],
      io,
    );
    expect(signalled).toBe(true);
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(out.split('\n').filter((l) => l.startsWith(TENANT))).toHaveLength(1);
    expect(process.listenerCount('SIGTERM')).toBe(listenersBefore);
  });

  it('a pass that fails is reported, the next is tried, and the exit code says so', async () => {
    let err = '';
    const io: Io = { stdout: () => undefined, stderr: (t) => void (err += t) };
    // Nothing listens on port 1 of the loopback address: every pass fails to connect.
    const code = await main(
      ['anchor', '--database-url', 'postgres://nobody@127.0.0.1:1/none', '--store', `file:${path.join(work, 'store2')}`,
        '--key', keyFile, '--every', '1s', '--count', '2'],
      io,
    );
    expect(code).toBe(2);
    expect(err.match(/^error: /gm)).toHaveLength(2);
  });

  it('with --json, each pass is one line of JSON (JSON Lines); a key no pass could use is refused at the start', async () => {
    let out = '';
    const code = await main(
      ['anchor', '--database-url', db.url, '--store', `file:${path.join(work, 'store-jsonl')}`, '--key', keyFile, '--every', '1s', '--count', '2', '--json'],
      { stdout: (t) => void (out += t), stderr: () => undefined },
    );
    expect(code).toBe(0);
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ ok: true, tenants: expect.any(Array) });

    let err = '';
    const refused = await main(
      ['anchor', '--database-url', db.url, '--store', `file:${path.join(work, 'store-nokey')}`, '--key', path.join(work, 'no-such-key.pem'), '--every', '1s'],
      { stdout: () => undefined, stderr: (t) => void (err += t) },
    );
    expect(refused).toBe(2);
    expect(err).toMatch(/no-such-key\.pem cannot be read/);
  });

  it('--count without --every is refused', async () => {
    let err = '';
    const io: Io = { stdout: () => undefined, stderr: (t) => void (err += t) };
    const code = await main(['anchor', '--database-url', db.url, '--store', `file:${work}/s3`, '--key', keyFile, '--count', '2'], io);
    expect(code).toBe(2);
    expect(err).toContain('--every');
  });
});
