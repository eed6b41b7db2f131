/**
 * The positive side of the immutability report, against MinIO, an S3 server
 * that enforces Object Lock, started in a container with testcontainers:
 *
 *   - a bucket created with Object Lock: `anchor`, `anchor --check`,
 *     `verify --anchors` and `verify --export` report the store as enforcing,
 *     with the COMPLIANCE retention read back from the checkpoint;
 *   - an anchored checkpoint cannot be replaced through the store (its
 *     conditional write is refused) and its locked version cannot be deleted
 *     (the server refuses); whatever else a client does, that version reads
 *     back unchanged;
 *   - a bucket created without Object Lock is reported as NOT enforcing, and
 *     a checkpoint cannot even be written there (the server refuses a
 *     retention on a bucket without Object Lock).
 *
 * Everything goes through the CLI's own entry point (`main`) and the AWS SDK
 * v3 with the endpoint and credentials in the standard AWS environment
 * variables, as in production.
 *
 * Opt-in by circumstance: it runs only where a container engine (Docker or
 * compatible) answers, and is skipped with a note otherwise, as on the
 * project's CI. Run it where Docker runs with
 *   npx vitest run test/integration/s3_object_lock_is_enforced_on_minio.test.ts
 * (pulls MINIO_IMAGE below; AUDIT_TRAIL_MINIO_IMAGE picks another tag).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerRuntimeUnavailable } from '../helpers/container_runtime.ts';
import { useTestDatabase } from '../helpers/database.ts';
import { recordEvents, simpleEvents } from '../helpers/trail.ts';
import { main, type Io } from '../../src/cli/main.ts';
import { openStore } from '../../src/anchor/stores.ts';
import { generateKeys } from '../../src/index.ts';

/** A MinIO release with Object Lock and conditional writes (If-None-Match on PutObject). */
const MINIO_IMAGE = process.env['AUDIT_TRAIL_MINIO_IMAGE'] || 'minio/minio:RELEASE.2025-04-22T22-12-26Z';
const THIS_FILE = 'test/integration/s3_object_lock_is_enforced_on_minio.test.ts';

const unavailable = await containerRuntimeUnavailable();
if (unavailable !== null) {
  console.warn(
    `[minio] SKIPPED: the Object Lock tests against MinIO need a container engine; ${unavailable}. ` +
      `Where Docker (or a compatible engine) runs: npx vitest run ${THIS_FILE} (pulls ${MINIO_IMAGE}).`,
  );
}

function capture(): Io & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: (t) => void (out += t), stderr: (t) => void (err += t), out: () => out, err: () => err };
}

async function cli(args: string[]): Promise<{ code: number; json: Record<string, unknown>; text: string }> {
  const io = capture();
  const code = await main([...args, '--json'], io);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(io.out() || '{}') as Record<string, unknown>;
  } catch {
    // an error report that is not JSON: keep the text
  }
  return { code, json, text: io.out() + io.err() };
}

type StoreReport = { store: string; enforced: boolean; detail: string };

/** The retain-until date the report read back from the checkpoint, or null. */
function retainedUntil(report: StoreReport | undefined): Date | null {
  const m = /retained in COMPLIANCE mode until (\S+)/.exec(report?.detail ?? '');
  return m?.[1] === undefined ? null : new Date(m[1]);
}

describe.skipIf(unavailable !== null)(`S3 Object Lock on MinIO (${MINIO_IMAGE})`, () => {
  const db = useTestDatabase('s3_object_lock_minio');
  const TENANT = 'plant_minio';
  let container: StartedTestContainer | undefined;
  let client: S3Client;
  let keys: { privateKeyFile: string; publicKeyFile: string };
  let anchoredObject = '';

  beforeAll(async () => {
    const { GenericContainer, Wait } = await import('testcontainers');
    const password = randomBytes(16).toString('hex');
    container = await new GenericContainer(MINIO_IMAGE)
      .withEnvironment({ MINIO_ROOT_USER: 'audit-trail-test', MINIO_ROOT_PASSWORD: password })
      .withCommand(['server', '/data'])
      .withExposedPorts(9000)
      .withWaitStrategy(Wait.forHttp('/minio/health/live', 9000))
      .withStartupTimeout(120_000)
      .start();
    const endpoint = `http://${container.getHost()}:${container.getMappedPort(9000)}`;
    // Read by the product's S3 client exactly as in a deployment.
    process.env['AWS_ENDPOINT_URL'] = endpoint;
    process.env['AWS_ACCESS_KEY_ID'] = 'audit-trail-test';
    process.env['AWS_SECRET_ACCESS_KEY'] = password;
    process.env['AWS_REGION'] = 'us-east-1';
    client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1' });
    await client.send(new CreateBucketCommand({ Bucket: 'locked', ObjectLockEnabledForBucket: true }));
    await client.send(new CreateBucketCommand({ Bucket: 'unlocked' }));

    await recordEvents(await db.connect(), TENANT, simpleEvents(5));
    keys = await generateKeys({ outDir: path.join(await mkdtemp(path.join(tmpdir(), 'minio-keys-')), 'k') });
  }, 300_000);

  afterAll(async () => {
    client?.destroy();
    await container?.stop();
  });

  it('reports a bucket with Object Lock as enforcing, with the COMPLIANCE retention read back, in anchor, anchor --check and verify', async () => {
    const before = Date.now();
    const run = await cli(['anchor', '--database-url', db.url, '--store', 's3://locked/anchors', '--key', keys.privateKeyFile, '--tenant', TENANT, '--retention-days', '1']);
    expect(run.code, run.text).toBe(0);
    const tenant = (run.json['tenants'] as Array<Record<string, unknown>>)[0];
    expect(tenant).toMatchObject({ tenant_id: TENANT, status: 'anchored', sequence_no: 5 });
    anchoredObject = tenant?.['object'] as string;

    const report = (run.json['stores'] as StoreReport[])[0];
    expect(report?.enforced, report?.detail).toBe(true);
    expect(report?.detail).toMatch(/^enforcing immutability: bucket Object Lock is enabled; .* is retained in COMPLIANCE mode until /);
    // --retention-days 1: the date read back is a day after the write, not the default ten years.
    const until = retainedUntil(report);
    expect(until?.getTime()).toBeGreaterThan(before + 86_400_000 - 60_000);
    expect(until?.getTime()).toBeLessThan(Date.now() + 86_400_000 + 60_000);

    // The same retention, read straight from the server.
    const retention = await client.send(new GetObjectRetentionCommand({ Bucket: 'locked', Key: `anchors/${anchoredObject}` }));
    expect(retention.Retention?.Mode).toBe('COMPLIANCE');
    expect(retention.Retention?.RetainUntilDate?.toISOString()).toBe(until?.toISOString());

    const check = await cli(['anchor', '--check', '--store', 's3://locked/anchors']);
    expect(check.code, check.text).toBe(0);
    expect(check.json['ok']).toBe(true);
    expect((check.json['stores'] as StoreReport[])[0]?.detail).toContain(`${anchoredObject} is retained in COMPLIANCE mode`);

    const verified = await cli(['verify', '--database-url', db.url, '--tenant', TENANT, '--anchors', 's3://locked/anchors', '--public-key', keys.publicKeyFile]);
    expect(verified.code, verified.text).toBe(0);
    expect((verified.json['tenants'] as Array<Record<string, unknown>>)[0]).toMatchObject({ ok: true, checkpoints_checked: 1 });
    expect((verified.json['stores'] as StoreReport[])[0]?.enforced).toBe(true);
  });

  it('verifies an export kept in the locked bucket and reports its anchor store as enforcing', async () => {
    const exported = await cli(['export', '--database-url', db.url, '--tenant', TENANT, '--format', 'parquet', '--out', 's3://locked/exports/plant_minio-1']);
    expect(exported.code, exported.text).toBe(0);
    const verified = await cli(['verify', '--export', 's3://locked/exports/plant_minio-1', '--anchors', 's3://locked/anchors', '--public-key', keys.publicKeyFile]);
    expect(verified.code, verified.text).toBe(0);
    // 6 events: the 5 recorded and the anchoring, itself an event of the chain.
    expect(verified.json['export']).toMatchObject({ ok: true, tenant_id: TENANT, checkpoints_checked: 1, events_checked: 6 });
    expect((verified.json['export'] as { stores: StoreReport[] }).stores[0]?.enforced).toBe(true);
  });

  it('refuses to replace or delete an anchored checkpoint, and its locked version reads back unchanged', async () => {
    expect(anchoredObject).not.toBe('');
    const key = `anchors/${anchoredObject}`;
    const head = await client.send(new HeadObjectCommand({ Bucket: 'locked', Key: key }));
    const versionId = head.VersionId;
    expect(versionId).toBeDefined();
    const readVersion = async (): Promise<Buffer> => {
      const out = await client.send(new GetObjectCommand({ Bucket: 'locked', Key: key, VersionId: versionId }));
      return Buffer.from(await out.Body!.transformToByteArray());
    };
    const original = await readVersion();

    // The store writes once: its conditional write (If-None-Match: *) is refused.
    await expect(openStore('s3://locked/anchors').put(anchoredObject, Buffer.from('{"forged":true}'))).rejects.toThrow(/PreconditionFailed|HTTP 412/);
    // The server refuses to delete the locked version, whoever asks.
    await expect(client.send(new DeleteObjectCommand({ Bucket: 'locked', Key: key, VersionId: versionId }))).rejects.toThrow();

    // S3 semantics leave two operations on the key open under Object Lock: an
    // unconditional PUT adds a newer version and a DELETE without a version id
    // adds a delete marker. Neither touches the locked version; their outcome
    // is logged for whoever runs this, and the locked version is checked after.
    const outcome = (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => 'accepted',
        (err: unknown) => `refused (${(err as { name?: string }).name ?? String(err)})`,
      );
    const put = await outcome(client.send(new PutObjectCommand({ Bucket: 'locked', Key: key, Body: '{"forged":true}' })));
    const del = await outcome(client.send(new DeleteObjectCommand({ Bucket: 'locked', Key: key })));
    console.log(`[minio] on the locked key ${key}: unconditional PUT ${put}; DELETE without version id ${del}`);

    expect((await readVersion()).equals(original)).toBe(true);
    const retention = await client.send(new GetObjectRetentionCommand({ Bucket: 'locked', Key: key, VersionId: versionId }));
    expect(retention.Retention?.Mode).toBe('COMPLIANCE');

    // verify reads the first version of the checkpoint and names what was written over it.
    if (put === 'accepted' || del === 'accepted') {
      const verified = await cli(['verify', '--database-url', db.url, '--tenant', TENANT, '--anchors', 's3://locked/anchors', '--public-key', keys.publicKeyFile]);
      expect(verified.code, verified.text).toBe(1);
      const tenant = (verified.json['tenants'] as Array<Record<string, unknown>>)[0];
      expect(tenant).toMatchObject({ ok: false, problem: 'overwritten object' });
      expect(String(tenant?.['detail'])).toContain(anchoredObject);
    }
  });

  it('reports a bucket created without Object Lock as NOT enforcing, and cannot anchor there', async () => {
    const check = await cli(['anchor', '--check', '--store', 's3://unlocked/anchors']);
    expect(check.code, check.text).toBe(1);
    const report = (check.json['stores'] as StoreReport[])[0];
    expect(report?.enforced).toBe(false);
    expect(report?.detail).toMatch(/^NOT enforcing immutability: .*Object Lock configuration/);

    // A COMPLIANCE retention on a bucket without Object Lock is refused by the server, so no checkpoint is published there.
    const tenant = 'plant_minio_unlocked';
    await recordEvents(await db.connect(), tenant, simpleEvents(2));
    const run = await cli(['anchor', '--database-url', db.url, '--store', 's3://unlocked/anchors', '--key', keys.privateKeyFile, '--tenant', tenant]);
    expect(run.code, run.text).toBe(2);
    expect(run.text).toContain('s3://unlocked/anchors/');
  });
});
