/**
 * What an operator stumbles into (found by a bad-input sweep of the CLI) gets
 * a clear error with its code and a hint, and leaves no half-made evidence:
 * no half export, no checkpoint in a store that the database does not list,
 * no private key beside a public key it does not match, no false alarm.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { connectAs, testRolePassword, useTestDatabase } from '../helpers/database.ts';
import { interruptedCheckpoint, recordEvents, simpleEvents, tamper } from '../helpers/trail.ts';
import { pythonUnavailable, pythonVerdict } from '../helpers/python_verifier.ts';
import { main, type Io } from '../../src/cli/main.ts';
import { anchorAll, exportTenant, generateKeys, verifyExport, verifyWithAnchors } from '../../src/index.ts';

const db = useTestDatabase('cli_failures');
const bare = useTestDatabase('cli_failures_bare', { empty: true });
const TENANT = 'plant_cli';
const READER = 'cli_failures_reader';
let work: string;
let client: pg.Client;
let keys: { privateKeyFile: string; publicKeyFile: string };

/** Runs the CLI twice (text, then --json); the exit code, the text output and the JSON document. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string; json: Record<string, unknown> }> {
  let out = '';
  let err = '';
  const code = await main(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) } satisfies Io);
  let jsonText = '';
  await main([...args, '--json'], { stdout: (t) => void (jsonText += t), stderr: () => undefined });
  return { code, out, err, json: JSON.parse(jsonText) as Record<string, unknown> };
}

const errorOf = (r: { json: Record<string, unknown> }): Record<string, unknown> => (r.json['error'] ?? {}) as Record<string, unknown>;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'cli-failures-'));
  client = await db.connect();
  await recordEvents(client, TENANT, simpleEvents(40));
  keys = await generateKeys({ outDir: path.join(work, 'keys') });
  await (await connectAs(db, READER)).end();
  await client.query(`grant audit_trail_reader to ${READER}`);
  await client.query('select audit_trail.grant_tenant_read($1, $2)', [READER, TENANT]);
});

describe('export', () => {
  it('a connection lost in the middle: an error (57P01), not a crash, and no half export left behind', async () => {
    const out = path.join(work, 'killed');
    let killed = false;
    const attempt = exportTenant({
      databaseUrl: db.url,
      tenant: TENANT,
      outDir: out,
      format: 'jsonl',
      batchSize: 5,
      eventsPerFile: 10,
      onProgress: () => {
        if (killed) return;
        killed = true;
        void client.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'audit-trail' and datname = current_database()`);
      },
    });
    await expect(attempt).rejects.toMatchObject({ code: expect.stringMatching(/^(57P01|08006|08003)$/) });
    expect(killed).toBe(true);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(work)).filter((n) => n.startsWith('killed'))).toEqual([]);
    // The same directory takes a complete export afterwards.
    const manifest = await exportTenant({ databaseUrl: db.url, tenant: TENANT, outDir: out, format: 'jsonl', eventsPerFile: 10 });
    expect((await readdir(out)).sort()).toEqual([...manifest.files.map((f) => f.path), 'manifest.json'].sort());
    expect(manifest.files.length).toBeGreaterThan(1);
    expect((await verifyExport({ dir: out })).ok).toBe(true);
  });

  it('an --out that cannot be a directory, and an unknown tenant: a file error (58030) or 42704, nothing left behind', async () => {
    const file = path.join(work, 'a-file');
    await writeFile(file, 'x');
    const under = await cli(['export', '--database-url', db.url, '--tenant', TENANT, '--format', 'jsonl', '--out', path.join(file, 'export')]);
    expect(under.code).toBe(2);
    expect(errorOf(under)).toMatchObject({ code: '58030', file: path.join(file, 'export') });
    expect(under.err).toMatch(/ENOTDIR[\s\S]*hint: A part of the path is a file/);
    expect(under.err).not.toMatch(/connect to the database/);

    const unknown = await cli(['export', '--database-url', db.url, '--tenant', 'no_such_plant', '--out', path.join(work, 'unknown')]);
    expect(unknown.code).toBe(2);
    expect(errorOf(unknown)).toMatchObject({ code: '42704' });
    expect((await readdir(work)).filter((n) => n.startsWith('unknown'))).toEqual([]);
  });
});

describe('export of a trail a superuser damaged', () => {
  it('an event with NULL where the trail never has one is refused (XX001) with what to do, not a crash of the Parquet writer', async () => {
    const tenant = 'plant_nulled';
    await recordEvents(client, tenant, simpleEvents(3));
    await tamper(client, 'alter table audit_trail.events alter column prev_hash drop not null');
    await tamper(client, 'update audit_trail.events set prev_hash = null where tenant_id = $1 and sequence_no = 2', [tenant]);
    for (const format of ['parquet', 'jsonl'] as const) {
      const out = path.join(work, `nulled-${format}`);
      await expect(exportTenant({ databaseUrl: db.url, tenant, outDir: out, format })).rejects.toMatchObject({
        code: 'XX001',
        message: `event 2 of tenant ${tenant} has no prev_hash, which audit_trail.events never leaves NULL`,
      });
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe('keys generate', () => {
  it('never leaves a private key beside a public key it does not match; a file as --out is a file error', async () => {
    // A directory that already holds only a public key.
    const lonely = path.join(work, 'lonely');
    await generateKeys({ outDir: lonely });
    await rm(path.join(lonely, 'checkpoint-signing-key.pem'), { force: true });
    const publicBefore = await readFile(path.join(lonely, 'checkpoint-public-key.pem'), 'utf8');
    const r = await cli(['keys', 'generate', '--out', lonely]);
    expect(r.code).toBe(2);
    expect(errorOf(r)).toMatchObject({ code: '58030' });
    expect(await readdir(lonely)).toEqual(['checkpoint-public-key.pem']);
    expect(await readFile(path.join(lonely, 'checkpoint-public-key.pem'), 'utf8')).toBe(publicBefore);

    const file = path.join(work, 'keys-file');
    await writeFile(file, 'x');
    const f = await cli(['keys', 'generate', '--out', file]);
    expect(f.code).toBe(2);
    expect(errorOf(f)).toMatchObject({ code: '58030' });
    expect(f.err).not.toMatch(/connect to the database/);
  });
});

describe('anchor', () => {
  const readerUrl = (): string => {
    const u = new URL(db.url);
    u.username = READER;
    u.password = testRolePassword(READER);
    return u.toString();
  };

  it('a role that may not list checkpoints is refused (42501) before anything is published', async () => {
    const store = path.join(work, 'store-reader');
    const r = await cli(['anchor', '--database-url', readerUrl(), '--store', `file:${store}`, '--key', keys.privateKeyFile]);
    expect(r.code).toBe(2);
    expect(errorOf(r)).toMatchObject({ code: '42501' });
    expect(r.err).toMatch(/hint: Anchor as a member of audit_trail_admin/);
    expect(existsSync(store) ? await readdir(store) : []).toEqual([]);
  });

  it('an unreachable second store: refused before the first store gets a checkpoint', async () => {
    const store = path.join(work, 'store-first');
    const saved = { ...process.env };
    process.env['AWS_ENDPOINT_URL'] = 'http://127.0.0.1:1';
    process.env['AWS_ACCESS_KEY_ID'] = 'test';
    process.env['AWS_SECRET_ACCESS_KEY'] = 'test';
    try {
      const r = await cli(['anchor', '--database-url', db.url, '--store', `file:${store}`, '--store', 's3://evidence/anchors', '--key', keys.privateKeyFile]);
      expect(r.code).toBe(2);
      expect(errorOf(r)).toMatchObject({ code: '58030' });
    } finally {
      for (const k of ['AWS_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
    expect(existsSync(store) ? await readdir(store) : []).toEqual([]);
    expect((await client.query('select count(*)::int as n from audit_trail.anchors')).rows[0]).toEqual({ n: 0 });
  });

  it('a checkpoint an interrupted run published but did not list is completed by the next run: the checkpoints stay one chain in every store', async () => {
    const tenant = 'plant_interrupted';
    const storeA = path.join(work, 'store-a');
    const storeB = path.join(work, 'store-b');
    const stores = [`file:${storeA}`, `file:${storeB}`];
    await recordEvents(client, tenant, simpleEvents(3));
    expect((await anchorAll({ databaseUrl: db.url, stores, keyFile: keys.privateKeyFile, tenant })).tenants[0]?.status).toBe('anchored');
    // The interrupted run: events recorded, a checkpoint signed and written to store A, then the run died
    // (store B and the database never got it).
    await recordEvents(client, tenant, simpleEvents(2));
    const { published, name, text } = await interruptedCheckpoint(client, tenant, keys.privateKeyFile);
    await mkdir(path.dirname(path.join(storeA, name)), { recursive: true });
    await writeFile(path.join(storeA, name), text);

    // The next run completes it (store B gets the same bytes, the database lists it) ...
    const next = await anchorAll({ databaseUrl: db.url, stores, keyFile: keys.privateKeyFile, tenant });
    expect(next.tenants[0]).toMatchObject({ status: 'anchored', checkpointDigest: published.checkpoint_digest });
    expect(next.tenants[0]?.detail).toMatch(/completed the checkpoint at sequence_no \d+ that an interrupted run had published/);
    expect(await readFile(path.join(storeB, name), 'utf8')).toBe(await readFile(path.join(storeA, name), 'utf8'));
    // ... and the checkpoint after it follows it, so both stores hold one unbroken chain of checkpoints.
    await recordEvents(client, tenant, simpleEvents(1));
    const after = await anchorAll({ databaseUrl: db.url, stores, keyFile: keys.privateKeyFile, tenant });
    expect(after.tenants[0]?.status).toBe('anchored');
    const anchors = (await client.query<{ previous: string | null; digest: string }>(
      `select encode(previous_checkpoint_digest, 'hex') as previous, encode(checkpoint_digest, 'hex') as digest
         from audit_trail.anchors where tenant_id = $1 order by sequence_no`, [tenant])).rows;
    expect(anchors.map((a) => a.previous)).toEqual([null, anchors[0]!.digest, anchors[1]!.digest]);
    expect(anchors[1]!.digest).toBe(published.checkpoint_digest);
    for (const store of stores) {
      const { tenants } = await verifyWithAnchors({ databaseUrl: db.url, tenant, anchors: [store], publicKeyFile: keys.publicKeyFile });
      expect(tenants[0], store).toMatchObject({ ok: true, checkpointsChecked: 3 });
    }
  });

  it('a tenant whose folder a store cannot create fails alone: the other tenants are anchored, exit 2', async () => {
    const blocked = 'plant_blocked';
    await recordEvents(client, blocked, simpleEvents(2));
    const store = path.join(work, 'store-blocked');
    await mkdir(store);
    await writeFile(path.join(store, blocked), 'a file where the tenant\'s folder would go');
    const r = await cli(['anchor', '--database-url', db.url, '--store', `file:${store}`, '--key', keys.privateKeyFile]);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(new RegExp(`FAILED ${blocked} at sequence_no 2: .*(EEXIST|ENOTDIR)`));
    expect(r.out).toMatch(new RegExp(`${TENANT} at sequence_no \\d+: anchored`));
    const json = r.json as { ok: boolean; tenants: Array<{ tenant_id: string; status: string; error?: { code: string } }> };
    expect(json.ok).toBe(false);
    expect(json.tenants.find((t) => t.tenant_id === blocked)).toMatchObject({ status: 'failed', error: { code: '58030' } });
    expect(json.tenants.find((t) => t.tenant_id === TENANT)?.status).toMatch(/anchored|unchanged/);
  });

  it('a tenant id too long for a file name is anchored under the digest of its id, and verifies (also with the Python verifier)', async () => {
    const long = 'Ä'.repeat(70); // 420 characters URI-encoded: more than a file name may have
    await recordEvents(client, long, simpleEvents(2));
    const store = path.join(work, 'store-long');
    const run = await anchorAll({ databaseUrl: db.url, stores: [`file:${store}`], keyFile: keys.privateKeyFile, tenant: long });
    expect(run.tenants[0]).toMatchObject({ status: 'anchored' });
    expect(run.tenants[0]?.object).toMatch(/^%sha256-[0-9a-f]{64}\/0000000000000000002-[0-9a-f]{16}\.json$/);
    const { tenants } = await verifyWithAnchors({ databaseUrl: db.url, tenant: long, anchors: [`file:${store}`], publicKeyFile: keys.publicKeyFile });
    expect(tenants[0]).toMatchObject({ ok: true, checkpointsChecked: 1 });
    const dir = path.join(work, 'export-long');
    await exportTenant({ databaseUrl: db.url, tenant: long, outDir: dir, format: 'jsonl' });
    expect(await verifyExport({ dir, anchors: [`file:${store}`], publicKeyFile: keys.publicKeyFile })).toMatchObject({ ok: true, checkpointsChecked: 1 });
    if (pythonUnavailable() === null) {
      expect(await pythonVerdict(dir, { storeDir: store, publicKeyFile: keys.publicKeyFile })).toMatchObject({ exitCode: 0, ok: true, checkpointsMatched: 1 });
    }
  });

  it('an unknown --tenant is an error (42704), not "nothing to anchor"; --every longer than 24h is refused', async () => {
    const r = await cli(['anchor', '--database-url', db.url, '--store', `file:${path.join(work, 'store-x')}`, '--key', keys.privateKeyFile, '--tenant', 'no_such_plant']);
    expect(r.code).toBe(2);
    expect(errorOf(r)).toMatchObject({ code: '42704' });
    const every = await cli(['anchor', '--database-url', db.url, '--store', `file:${path.join(work, 'store-x')}`, '--key', keys.privateKeyFile, '--every', '600h']);
    expect(every.code).toBe(2);
    expect(errorOf(every)).toMatchObject({ code: '22023' });
    expect(every.err).toMatch(/at most 24h/);
  });
});

describe('verify', () => {
  it('an unknown --tenant is an error (42704); a range after the head is OK; --public-key alone is refused; an export nothing anchors is not OK; --tenant names the tenant an export must be of', async () => {
    const unknown = await cli(['verify', '--database-url', db.url, '--tenant', 'no_such_plant']);
    expect(unknown.code).toBe(2);
    expect(errorOf(unknown)).toMatchObject({ code: '42704' });

    const beyond = await cli(['verify', '--database-url', db.url, '--tenant', TENANT, '--from-seq', '1000']);
    expect(beyond.code).toBe(0);
    expect(beyond.out).toMatch(new RegExp(`${TENANT}: OK \\(0 events checked\\)`));
    const beyondRange = await cli(['verify', '--database-url', db.url, '--tenant', TENANT, '--from-seq', '1000', '--to-seq', '2000']);
    expect(beyondRange.code).toBe(0);

    const rounded = await cli(['verify', '--database-url', db.url, '--tenant', TENANT, '--from-seq', '9007199254740993']);
    expect(rounded.code).toBe(2);
    expect(rounded.err).toMatch(/--from-seq: must be at most 9007199254740991/);

    const keyAlone = await cli(['verify', '--database-url', db.url, '--public-key', keys.publicKeyFile]);
    expect(keyAlone.code).toBe(2);
    expect(errorOf(keyAlone)).toMatchObject({ code: '22023' });

    const dir = path.join(work, 'export-for-anchors');
    await exportTenant({ databaseUrl: db.url, tenant: TENANT, outDir: dir, format: 'jsonl' });
    const empty = path.join(work, 'empty-store');
    await mkdir(empty);
    // Anchors asked for and none vouches for the export: not OK (a wrong store, or a history made up under a look-alike tenant id).
    const none = await cli(['verify', '--export', dir, '--anchors', `file:${empty}`, '--public-key', keys.publicKeyFile]);
    expect(none.code).toBe(1);
    expect(none.out).toMatch(/BROKEN at sequence_no 1: not anchored, no signed checkpoint of tenant "plant_cli" in file:.* falls within sequence_no 1 to \d+/);
    if (pythonUnavailable() === null) {
      expect(await pythonVerdict(dir, { storeDir: empty, publicKeyFile: keys.publicKeyFile })).toMatchObject({ exitCode: 1, seq: 1, problem: 'not anchored' });
    }
    // The tenant the auditor expects, not only the one the manifest names.
    const other = await cli(['verify', '--export', dir, '--tenant', 'рlant_cli']);
    expect(other.code).toBe(1);
    expect(other.out).toMatch(/wrong tenant, this is an export of tenant "plant_cli", not "рlant_cli"/);
    expect((await cli(['verify', '--export', dir, '--tenant', TENANT])).code).toBe(0);
  });
});

describe('connecting', () => {
  it('a key=value connection string, and a database without the schema, say what to fix', async () => {
    const u = new URL(db.url);
    const keyValue = await cli(['verify', '--database-url', `host=${u.hostname} port=${u.port} dbname=${u.pathname.slice(1)} user=${u.username}`]);
    expect(keyValue.code).toBe(2);
    expect(errorOf(keyValue)).toMatchObject({ code: '08001' });
    expect(keyValue.err).toMatch(/not a postgres:\/\/ URL[\s\S]*hint: Write it as postgres:\/\/user:password@host:5432\/dbname/);

    const noSchema = await cli(['verify', '--database-url', bare.url]);
    expect(noSchema.code).toBe(2);
    expect(errorOf(noSchema)).toMatchObject({ code: expect.stringMatching(/^(42P01|3F000|42883)$/) });
    expect(noSchema.err).toMatch(/hint: .*run audit-trail migrate/);
  });
});

describe('enable', () => {
  it('options nested thousands deep, or not JSON: a usage error (22023) that says where, not a crash', async () => {
    await client.query('create table cli_failures_orders (id int primary key, plant text)');
    const deep = await cli(['enable', 'cli_failures_orders', '--database-url', db.url, '--options', `${'['.repeat(5000)}${']'.repeat(5000)}`]);
    expect(deep.code).toBe(2);
    expect(errorOf(deep)).toMatchObject({ code: '22023' });
    expect(deep.err).toMatch(/nested more than 32 levels deep/);
    const broken = await cli(['enable', 'cli_failures_orders', '--database-url', db.url, '--options', '{"tenant": "plant_a",}']);
    expect(broken.code).toBe(2);
    expect(broken.err).toMatch(/is not valid JSON \(.*position/);
    expect((await client.query(`select count(*)::int as n from audit_trail.audited_tables where table_oid = 'cli_failures_orders'::regclass`)).rows[0]).toEqual({ n: 0 });
  });
});
