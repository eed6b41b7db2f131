/**
 * Anchors and exports in object storage through the real AWS SDK v3, against
 * s3rver on 127.0.0.1. s3rver does not implement Object Lock, so every report
 * must say NOT enforcing, and the test proves it by deleting an object.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { useS3Server } from '../helpers/s3.ts';
import { interruptedCheckpoint, recordEvents, simpleEvents } from '../helpers/trail.ts';
import { main, type Io } from '../../src/cli/main.ts';
import { anchorAll, generateKeys, verifyWithAnchors } from '../../src/index.ts';

const db = useTestDatabase('s3_store');
const s3 = useS3Server(['evidence']);
const TENANT = 'plant_s3';
let keys: { privateKeyFile: string; publicKeyFile: string };

function capture(): Io & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: (t) => void (out += t), stderr: (t) => void (err += t), out: () => out, err: () => err };
}

async function cli(args: string[]): Promise<{ code: number; json: Record<string, unknown>; stderr: string }> {
  const io = capture();
  const code = await main([...args, '--json'], io);
  return { code, json: JSON.parse(io.out() || '{}') as Record<string, unknown>, stderr: io.err() };
}

beforeAll(async () => {
  const c = await db.connect();
  await recordEvents(c, TENANT, simpleEvents(5));
  keys = await generateKeys({ outDir: path.join(await mkdtemp(path.join(tmpdir(), 's3keys-')), 'k') });
});

describe('S3 anchor store and exports', () => {
  it('anchors to S3 and a local directory, reads the checkpoints back, and reports both as NOT enforcing', async () => {
    const local = `file:${path.join(await mkdtemp(path.join(tmpdir(), 'anchors-')), 'store')}`;
    const run = await cli(['anchor', '--database-url', db.url, '--store', 's3://evidence/anchors', '--store', local, '--key', keys.privateKeyFile]);
    expect(run.code).toBe(0);
    const tenants = run.json['tenants'] as Array<Record<string, unknown>>;
    expect(tenants[0]).toMatchObject({ tenant_id: TENANT, status: 'anchored', sequence_no: 5 });
    const stores = run.json['stores'] as Array<{ store: string; enforced: boolean; detail: string }>;
    expect(stores.map((s) => s.enforced)).toEqual([false, false]);
    expect(stores[0]?.detail).toMatch(/^NOT enforcing immutability: .*NotImplemented/);

    const check = await cli(['anchor', '--check', '--store', 's3://evidence/anchors']);
    expect(check.code).toBe(1);
    expect((check.json['stores'] as Array<{ enforced: boolean }>)[0]?.enforced).toBe(false);

    // The checkpoint reads back through the SDK and verifies against the database.
    const verified = await cli(['verify', '--database-url', db.url, '--tenant', TENANT, '--anchors', 's3://evidence/anchors', '--public-key', keys.publicKeyFile]);
    expect(verified.code).toBe(0);
    expect((verified.json['tenants'] as Array<Record<string, unknown>>)[0]).toMatchObject({ ok: true, checkpoints_checked: 1 });

    // What "NOT enforcing" means: this server lets anyone delete the checkpoint.
    const client = new S3Client({ endpoint: s3.endpoint(), forcePathStyle: true, region: 'us-east-1' });
    const object = `anchors/${tenants[0]?.['object'] as string}`;
    await client.send(new GetObjectCommand({ Bucket: 'evidence', Key: object }));
    await client.send(new DeleteObjectCommand({ Bucket: 'evidence', Key: object }));
    const after = await cli(['verify', '--database-url', db.url, '--tenant', TENANT, '--anchors', 's3://evidence/anchors', '--public-key', keys.publicKeyFile]);
    expect((after.json['tenants'] as Array<Record<string, unknown>>)[0]).toMatchObject({ checkpoints_checked: 0 });
  });

  it('writes an export to S3 and verifies it from there, with the checkpoints in S3', async () => {
    // Another tenant: the first test deleted the only checkpoint of plant_s3 from S3.
    const tenant = 'plant_s3_export';
    const store = 's3://evidence/anchors-2';
    await recordEvents(await db.connect(), tenant, simpleEvents(4));
    expect((await cli(['anchor', '--database-url', db.url, '--store', store, '--key', keys.privateKeyFile, '--tenant', tenant])).code).toBe(0);
    const exported = await cli(['export', '--database-url', db.url, '--tenant', tenant, '--format', 'parquet', '--out', 's3://evidence/exports/plant_s3-1']);
    expect(exported.code).toBe(0);
    const verified = await cli(['verify', '--export', 's3://evidence/exports/plant_s3-1', '--anchors', store, '--public-key', keys.publicKeyFile]);
    expect(verified.code).toBe(0);
    expect(verified.json['export']).toMatchObject({ ok: true, tenant_id: tenant, checkpoints_checked: 1, events_checked: 5 });
    expect((verified.json['export'] as { stores: Array<{ enforced: boolean }> }).stores[0]?.enforced).toBe(false);
  });

  it('a checkpoint an interrupted run left in S3 only is completed by the next run, and listed after the last one', async () => {
    const tenant = 'plant_s3_interrupted';
    const local = path.join(await mkdtemp(path.join(tmpdir(), 'anchors-')), 'store');
    const stores = ['s3://evidence/interrupted', `file:${local}`];
    const c = await db.connect();
    await recordEvents(c, tenant, simpleEvents(3));
    expect((await anchorAll({ databaseUrl: db.url, stores, keyFile: keys.privateKeyFile, tenant })).tenants[0]?.status).toBe('anchored');
    await recordEvents(c, tenant, simpleEvents(2));
    const { published, name, text } = await interruptedCheckpoint(c, tenant, keys.privateKeyFile);
    const client = new S3Client({ endpoint: s3.endpoint(), forcePathStyle: true, region: 'us-east-1' });
    await client.send(new PutObjectCommand({ Bucket: 'evidence', Key: `interrupted/${name}`, Body: text }));

    const next = await anchorAll({ databaseUrl: db.url, stores, keyFile: keys.privateKeyFile, tenant });
    expect(next.tenants[0]).toMatchObject({ status: 'anchored', checkpointDigest: published.checkpoint_digest });
    expect(JSON.parse(await readFile(path.join(local, name), 'utf8'))).toEqual(published);
    await recordEvents(c, tenant, simpleEvents(1));
    expect((await anchorAll({ databaseUrl: db.url, stores, keyFile: keys.privateKeyFile, tenant })).tenants[0]?.status).toBe('anchored');
    for (const store of stores) {
      const { tenants } = await verifyWithAnchors({ databaseUrl: db.url, tenant, anchors: [store], publicKeyFile: keys.publicKeyFile });
      expect(tenants[0], store).toMatchObject({ ok: true, checkpointsChecked: 3 });
    }
  });
});
