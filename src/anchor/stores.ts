/**
 * Anchor stores: where checkpoints (and, for S3, exports) are published.
 *
 *   file:DIR             files created with O_EXCL ('wx') and made read-only
 *                        (0444); never rewritten. NOT immutable against the
 *                        directory's owner or root, and reported as such.
 *   s3://bucket/prefix   PutObject with Object Lock COMPLIANCE and a
 *                        retain-until date; endpoint, region and credentials
 *                        from the standard AWS environment variables
 *                        (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ...).
 *                        Immutability is read back (bucket Object Lock
 *                        configuration, object retention), never assumed.
 *                        Object Lock keeps a version, not a name: on a
 *                        versioned bucket anyone allowed to write may still
 *                        put a newer version over a checkpoint or hide it
 *                        behind a delete marker. So the store lists every
 *                        version, reads the first one written under each
 *                        name, and reports any later version or delete
 *                        marker as tampering (listingAnomalies()).
 */
import { constants } from 'node:fs';
import { access, chmod, mkdir, open, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { EvidenceFileError, UsageError } from '../errors.ts';

/** What a store really enforces, as read back from it. */
export interface ImmutabilityReport {
  store: string;
  /** True only when the store itself refuses changes and deletions (read back, not assumed). */
  enforced: boolean;
  /** One line for people: what protects the objects and what does not. */
  detail: string;
}

export interface AnchorStore {
  /** The store as given: file:DIR or s3://bucket/prefix. */
  readonly url: string;
  /** Writes a new object; refuses to overwrite one. */
  put(name: string, data: Buffer): Promise<void>;
  get(name: string): Promise<Buffer>;
  /** Object names under `prefix` (relative to the store), sorted; with `startAfter`, only the names after it. */
  list(prefix: string, startAfter?: string): Promise<string[]>;
  /** Throws a clear error when the store does not exist or cannot be read. */
  checkReachable(): Promise<void>;
  /** Throws a clear error when objects cannot be written into the store (checked before anything is published). */
  checkWritable(): Promise<void>;
  /** Reads back whether the store enforces immutability; `sample` is an object to check retention of. */
  immutability(sample?: string): Promise<ImmutabilityReport>;
  /**
   * What the last list() saw written over its objects since they were first
   * written (a newer version, a delete marker), by object name. Such an object
   * is still listed and get() reads its first version.
   */
  listingAnomalies(): ReadonlyMap<string, string>;
}

export interface StoreOptions {
  /** S3 Object Lock retention in days from the write; default 3653 (ten years). */
  retentionDays?: number | undefined;
}

class FileStore implements AnchorStore {
  constructor(
    readonly url: string,
    private readonly dir: string,
  ) {}

  private resolve(name: string): string {
    const full = path.resolve(this.dir, name);
    if (!full.startsWith(path.resolve(this.dir) + path.sep)) throw new UsageError(`object name ${name} leaves the store ${this.url}`);
    return full;
  }

  async put(name: string, data: Buffer): Promise<void> {
    const file = this.resolve(name);
    await mkdir(path.dirname(file), { recursive: true });
    let handle;
    try {
      handle = await open(file, 'wx', 0o444);
    } catch (err) {
      throw new EvidenceFileError(`cannot create ${file} in anchor store ${this.url}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, file, '58030', {
        hint: 'Objects in an anchor store are written once and never replaced; check the directory and its permissions.',
        cause: err,
      });
    }
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(file, 0o444);
  }

  async get(name: string): Promise<Buffer> {
    const file = this.resolve(name);
    try {
      return await readFile(file);
    } catch (err) {
      throw new EvidenceFileError(`${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, file, '58P01', { cause: err });
    }
  }

  async list(prefix: string, startAfter = ''): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const name = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) await walk(path.join(dir, e.name), name);
        else if (name.startsWith(prefix) && name > startAfter) out.push(name);
      }
    };
    await walk(this.dir, '');
    return out.sort();
  }

  listingAnomalies(): ReadonlyMap<string, string> {
    // Files have no versions: a rewritten file is found by its signature and digest.
    return new Map();
  }

  async checkReachable(): Promise<void> {
    try {
      const s = await stat(this.dir);
      if (!s.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    } catch (err) {
      throw new EvidenceFileError(`anchor store ${this.url} does not exist or is not a directory (${(err as NodeJS.ErrnoException).code ?? String(err)})`, this.dir, '58P01', {
        hint: 'Pass the directory audit-trail anchor --store wrote to, as file:DIR (or an s3://bucket/prefix store).',
        cause: err,
      });
    }
  }

  async checkWritable(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
      await access(this.dir, constants.W_OK | constants.X_OK);
    } catch (err) {
      throw new EvidenceFileError(`anchor store ${this.url} cannot be written (${(err as NodeJS.ErrnoException).code ?? String(err)})`, this.dir, '58030', {
        hint: 'Pass a directory this user may create and write, as file:DIR.',
        cause: err,
      });
    }
  }

  async immutability(): Promise<ImmutabilityReport> {
    return {
      store: this.url,
      enforced: false,
      detail:
        'NOT enforcing immutability: files are written once (O_EXCL) and made read-only (0444), which stops accidents, ' +
        'but the directory owner or root can still change or delete them. Keep a copy where database administrators cannot write, or use an s3:// store with Object Lock.',
    };
  }
}

function s3Client(): S3Client {
  const endpoint = process.env['AWS_ENDPOINT_URL_S3'] ?? process.env['AWS_ENDPOINT_URL'];
  return new S3Client({
    region: process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? 'us-east-1',
    // An endpoint that accepts connections and never answers must not hang anchoring (--every) or verification.
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 60_000 },
    // S3-compatible servers on a custom endpoint (MinIO, Ceph, a local test server) need path-style URLs.
    forcePathStyle: endpoint !== undefined,
    ...(endpoint !== undefined ? { endpoint } : {}),
  });
}

function s3ErrorText(err: unknown): string {
  const e = err as { name?: string; Code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  return `${e.Code ?? e.name ?? 'error'}${status !== undefined ? ` (HTTP ${status})` : ''}: ${e.message ?? String(err)}`;
}

class S3Store implements AnchorStore {
  private readonly client = s3Client();

  constructor(
    readonly url: string,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly retentionDays: number,
  ) {}

  private key(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}/${name}`;
  }

  /**
   * The error of a failed S3 call on `name` (relative to the store, or a full
   * key with isKey): 58P01 when the server says the bucket or object does not
   * exist, 58030 for anything else (refused, timed out, denied).
   */
  private fail(action: string, name: string, err: unknown, isKey = false): EvidenceFileError {
    const key = isKey ? name : this.key(name);
    const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
    const missing = /^(NoSuchBucket|NoSuchKey|NotFound)$/.test(e.Code ?? e.name ?? '') || e.$metadata?.httpStatusCode === 404;
    return new EvidenceFileError(`${action} s3://${this.bucket}/${key} failed: ${s3ErrorText(err)}`, `s3://${this.bucket}/${key}`, missing ? '58P01' : '58030', {
      hint: 'Check the bucket name, AWS_ENDPOINT_URL, AWS_REGION and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).',
      cause: err,
    });
  }

  async put(name: string, data: Buffer): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key(name),
          Body: data,
          ContentType: name.endsWith('.json') ? 'application/json' : 'application/octet-stream',
          ObjectLockMode: 'COMPLIANCE',
          ObjectLockRetainUntilDate: new Date(Date.now() + this.retentionDays * 86_400_000),
          // Never replace an existing object (servers that support conditional writes refuse with 412).
          IfNoneMatch: '*',
        }),
      );
    } catch (err) {
      throw this.fail('writing', name, err);
    }
  }

  /** Per name, the version first written under it (versioned buckets; filled by list()). */
  private readonly firstVersions = new Map<string, string>();
  private readonly anomalies = new Map<string, string>();

  async get(name: string): Promise<Buffer> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name), VersionId: this.firstVersions.get(name) }),
      );
      if (out.Body === undefined) return Buffer.alloc(0);
      return Buffer.from(await out.Body.transformToByteArray());
    } catch (err) {
      throw this.fail('reading', name, err);
    }
  }

  listingAnomalies(): ReadonlyMap<string, string> {
    return this.anomalies;
  }

  /**
   * Names under `prefix`. On a bucket that keeps versions (Object Lock needs
   * versioning) every version and delete marker is listed: a name stays listed
   * while any version of it exists, get() reads its oldest version, and a
   * later version or a delete marker is recorded as an anomaly. Servers
   * without versions are listed plainly.
   */
  async list(prefix: string, startAfter?: string): Promise<string[]> {
    this.firstVersions.clear();
    this.anomalies.clear();
    const base = this.prefix === '' ? '' : `${this.prefix}/`;
    const after = startAfter === undefined ? undefined : base + startAfter;
    const versions = await this.listVersions(base + prefix, after);
    if (versions === null) return this.listLatest(base + prefix, base, after);
    // S3 lists the versions of a key newest first: `listed` breaks ties of LastModified (whole seconds).
    const byName = new Map<string, { versions: Array<{ id: string; at: number; listed: number }>; deleteMarkers: number }>();
    const entry = (key: string) => {
      const name = key.slice(base.length);
      let e = byName.get(name);
      if (e === undefined) byName.set(name, (e = { versions: [], deleteMarkers: 0 }));
      return e;
    };
    versions.versions.forEach((v, listed) => entry(v.key).versions.push({ id: v.id, at: v.at, listed }));
    for (const key of versions.deleteMarkers) entry(key).deleteMarkers++;
    const out: string[] = [];
    for (const [name, e] of byName) {
      if (e.versions.length === 0) {
        this.anomalies.set(name, `only delete markers remain under ${name}: every version was deleted`);
        continue;
      }
      e.versions.sort((a, b) => a.at - b.at || b.listed - a.listed);
      this.firstVersions.set(name, e.versions[0]!.id);
      out.push(name);
      const later: string[] = [];
      if (e.versions.length > 1) later.push(`${e.versions.length - 1} newer version(s)`);
      if (e.deleteMarkers > 0) later.push(`${e.deleteMarkers} delete marker(s)`);
      if (later.length > 0) {
        this.anomalies.set(name, `${later.join(' and ')} written over it after it was anchored (the first version, ${e.versions[0]!.id}, is the one read and checked)`);
      }
    }
    return out.sort();
  }

  /** Every version and delete marker under a key prefix; null when the server does not list versions. */
  private async listVersions(
    keyPrefix: string,
    startAfter?: string,
  ): Promise<{ versions: Array<{ key: string; id: string; at: number }>; deleteMarkers: string[] } | null> {
    const versions: Array<{ key: string; id: string; at: number }> = [];
    const deleteMarkers: string[] = [];
    let keyMarker: string | undefined = startAfter;
    let versionMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: keyPrefix, KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
        );
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        const name = (err as { name?: string }).name;
        if (status === 501 || status === 405 || name === 'NotImplemented' || name === 'MethodNotAllowed') return null;
        throw this.fail('listing the versions of', keyPrefix, err, true);
      }
      for (const v of page.Versions ?? []) {
        if (v.Key === undefined) continue;
        // An object written while the bucket kept no versions has the version id "null".
        versions.push({ key: v.Key, id: v.VersionId ?? 'null', at: v.LastModified?.getTime() ?? 0 });
      }
      for (const m of page.DeleteMarkers ?? []) if (m.Key !== undefined) deleteMarkers.push(m.Key);
      const truncated = page.IsTruncated === true;
      keyMarker = truncated ? page.NextKeyMarker : undefined;
      versionMarker = truncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker !== undefined);
    // A bucket that never kept versions: nothing can hide behind a newer one.
    if (deleteMarkers.length === 0 && versions.every((v) => v.id === 'null')) return null;
    return { versions, deleteMarkers };
  }

  private async listLatest(keyPrefix: string, base: string, startAfter?: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: keyPrefix, ContinuationToken: token, StartAfter: startAfter }));
      } catch (err) {
        throw this.fail('listing', keyPrefix, err, true);
      }
      for (const o of page.Contents ?? []) if (o.Key !== undefined) out.push(o.Key.slice(base.length));
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort();
  }

  async checkReachable(): Promise<void> {
    await this.list('');
  }

  async checkWritable(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      throw this.fail('reaching the bucket of', '', err);
    }
  }

  async immutability(sample?: string): Promise<ImmutabilityReport> {
    const problems: string[] = [];
    const facts: string[] = [];
    try {
      const config = await this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket }));
      if (config.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled') facts.push('bucket Object Lock is enabled');
      else problems.push('the bucket has no Object Lock configuration');
    } catch (err) {
      problems.push(`the bucket's Object Lock configuration cannot be read (${s3ErrorText(err)})`);
    }
    if (sample !== undefined) {
      try {
        const retention = await this.client.send(new GetObjectRetentionCommand({ Bucket: this.bucket, Key: this.key(sample) }));
        const mode = retention.Retention?.Mode;
        const until = retention.Retention?.RetainUntilDate;
        if (mode === 'COMPLIANCE' && until !== undefined && until.getTime() > Date.now()) {
          facts.push(`${sample} is retained in COMPLIANCE mode until ${until.toISOString()}`);
        } else {
          problems.push(`${sample} has no COMPLIANCE retention (mode ${mode ?? 'none'})`);
        }
      } catch (err) {
        problems.push(`the retention of ${sample} cannot be read (${s3ErrorText(err)})`);
      }
    }
    if (problems.length > 0) {
      return { store: this.url, enforced: false, detail: `NOT enforcing immutability: ${problems.join('; ')}${facts.length ? `; ${facts.join('; ')}` : ''}` };
    }
    return { store: this.url, enforced: true, detail: `enforcing immutability: ${facts.join('; ')}` };
  }
}

/** Opens a store from its URL: file:DIR or s3://bucket/prefix. */
export function openStore(url: string, options: StoreOptions = {}): AnchorStore {
  if (url.startsWith('file:')) {
    const dir = url.slice('file:'.length).replace(/^\/\/(?=\/)/, '');
    if (dir === '') throw new UsageError(`store ${url} names no directory`, { hint: 'Write file:/path/to/dir or file:relative/dir.' });
    return new FileStore(url, path.resolve(dir));
  }
  const s3 = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (s3 !== null) {
    const prefix = (s3[2] ?? '').replace(/\/+$/, '');
    return new S3Store(url, s3[1] as string, prefix, options.retentionDays ?? 3653);
  }
  throw new UsageError(`unknown anchor store ${url}`, { hint: 'Use file:DIR (a local directory) or s3://bucket/prefix.' });
}
