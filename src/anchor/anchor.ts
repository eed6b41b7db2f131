/**
 * audit-trail anchor: for every tenant, sign a checkpoint of its chain head,
 * publish it to every store, and list it in audit_trail.anchors (which also
 * records the anchoring as an event of the tenant's chain).
 *
 * Never backwards: a head below the last anchored checkpoint, or a chain that
 * no longer holds the last anchored record_hash, is an alarm and no
 * checkpoint is made.
 */
import type pg from 'pg';
import { DatabaseError, toAuditTrailError, type SerializedError } from '../errors.ts';
import { withClient, type ConnectionOptions } from '../db/connect.ts';
import { checkCheckpoint, checkpointObjectName, objectNameOf, signCheckpoint, tenantFolder, type Checkpoint } from './checkpoint.ts';
import { keyIdOf, loadPrivateKey } from './keys.ts';
import { openStore, type AnchorStore, type ImmutabilityReport, type StoreOptions } from './stores.ts';
import { createPublicKey, type KeyObject } from 'node:crypto';

export interface AnchorOptions extends ConnectionOptions, StoreOptions {
  /** Store URLs (file:DIR, s3://bucket/prefix); at least one. */
  stores: string[];
  /** The Ed25519 private key file (PEM). */
  keyFile: string;
  /** Anchor this tenant only; default every tenant with a chain. */
  tenant?: string | undefined;
}

export interface TenantAnchorResult {
  tenantId: string;
  /**
   * anchored: a new checkpoint; unchanged: nothing new since the last one;
   * alarm: the chain went backwards or was rewritten; failed: this tenant
   * could not be anchored (a store or the database failed for it; the other
   * tenants are still anchored).
   */
  status: 'anchored' | 'unchanged' | 'alarm' | 'failed';
  sequenceNo: number;
  recordHash: string;
  checkpointDigest: string | null;
  /** Object name in every store, when anchored. */
  object: string | null;
  /** SQLSTATE-like code of an alarm (AT020 behind the last checkpoint, AT021 rewritten). */
  alarmCode: string | null;
  detail: string;
  /** The error of a failed tenant (code, message, hint). */
  error?: SerializedError | undefined;
}

export interface AnchorRun {
  keyId: string;
  tenants: TenantAnchorResult[];
  /** Read back from each store after writing. */
  immutability: ImmutabilityReport[];
}

interface HeadRow {
  tenant_id: string;
  sequence_no: string;
  record_hash: string;
}

interface LastAnchorRow {
  sequence_no: string;
  record_hash: string;
  checkpoint_digest: string;
}

async function lastAnchor(client: pg.ClientBase, tenant: string): Promise<LastAnchorRow | undefined> {
  const { rows } = await client.query<LastAnchorRow>(
    `select sequence_no::text, encode(record_hash, 'hex') as record_hash, encode(checkpoint_digest, 'hex') as checkpoint_digest
       from audit_trail.anchors a where a.tenant_id = $1 order by a.sequence_no desc, a.anchored_at desc limit 1`,
    [tenant],
  );
  return rows[0];
}

async function hashAt(client: pg.ClientBase, tenant: string, seq: string): Promise<{ record_hash: string; resource_type: string; resource_id: string | null } | undefined> {
  const { rows } = await client.query<{ record_hash: string; resource_type: string; resource_id: string | null }>(
    `select encode(e.record_hash, 'hex') as record_hash, e.resource_type, e.resource_id from audit_trail.events e
      where e.tenant_id = $1 and e.sequence_no = $2::bigint order by e.record_hash limit 1`,
    [tenant, seq],
  );
  return rows[0];
}

/** One anchoring pass over every tenant (or one). */
export async function anchorAll(options: AnchorOptions): Promise<AnchorRun> {
  const privateKey = await loadPrivateKey(options.keyFile);
  const keyId = keyIdOf(createPublicKey(privateKey));
  const stores = options.stores.map((url) => openStore(url, options));
  const results: TenantAnchorResult[] = [];
  let sample: string | undefined;

  await withClient(options, async (client) => {
    // Before anything is signed or published: a checkpoint written to a store
    // and then refused by the database would be left in the store unlisted.
    const { rows: privilege } = await client.query<{ may: boolean }>(
      `select has_function_privilege('audit_trail.register_anchor(text, bigint, bytea, timestamptz, text, bytea, bytea, text[], bytea)', 'execute') as may`,
    );
    if (privilege[0]?.may !== true) {
      throw new DatabaseError(`role ${await currentUser(client)} may not list checkpoints in audit_trail.anchors`, {
        code: '42501',
        hint: 'Anchor as a member of audit_trail_admin that reads every tenant (the owner\'s login, or a role granted audit_trail_admin and every tenant\'s read).',
      });
    }
    for (const store of stores) await store.checkWritable();
    const heads = (
      await client.query<HeadRow>(
        `select tenant_id, sequence_no::text, encode(record_hash, 'hex') as record_hash from audit_trail.chain_heads
          where ($1::text is null or tenant_id = $1) order by tenant_id`,
        [options.tenant ?? null],
      )
    ).rows;
    if (options.tenant !== undefined && heads.length === 0) {
      throw new DatabaseError(`tenant ${options.tenant} has no chain (or this role may not read it)`, {
        code: '42704',
        hint: 'Check the tenant id (audit-trail verify lists every tenant); anchor as a role that reads every tenant.',
      });
    }
    for (const head of heads) {
      try {
        const done = await anchorTenant(client, head, options.stores, stores, privateKey, keyId);
        if (done === null) continue;
        results.push(done);
        if (done.status === 'anchored') sample = done.object ?? sample;
      } catch (err) {
        // One tenant that cannot be anchored (a name too long for a store, a store failing) does not stop the others.
        const e = toAuditTrailError(err);
        results.push({
          tenantId: head.tenant_id, sequenceNo: Number(head.sequence_no), recordHash: head.record_hash, status: 'failed',
          checkpointDigest: null, object: null, alarmCode: null, detail: `${e.message}${e.hint === undefined ? '' : ` (${e.hint})`}`, error: e.toJSON(),
        });
      }
    }
  });

  const immutability: ImmutabilityReport[] = [];
  for (const store of stores) immutability.push(await store.immutability(sample ?? (await latestObject(store))));
  return { keyId, tenants: results, immutability };
}

async function currentUser(client: pg.ClientBase): Promise<string> {
  return (await client.query<{ u: string }>('select current_user::text as u')).rows[0]?.u ?? '?';
}

/** Anchors one tenant's head: a new checkpoint, nothing (unchanged), or an alarm. */
async function anchorTenant(
  client: pg.ClientBase,
  head: HeadRow,
  storeUrls: string[],
  stores: AnchorStore[],
  privateKey: KeyObject,
  keyId: string,
): Promise<TenantAnchorResult | null> {
  const base = { tenantId: head.tenant_id, sequenceNo: Number(head.sequence_no), recordHash: head.record_hash };
  const last = await lastAnchor(client, head.tenant_id);
  if (last === undefined && base.sequenceNo === 0) return null; // no events and never anchored: nothing to vouch for
  if (last !== undefined) {
    const lastSeq = Number(last.sequence_no);
    if (base.sequenceNo < lastSeq) {
      return {
        ...base, status: 'alarm', checkpointDigest: null, object: null, alarmCode: 'AT020',
        detail: `the chain head is at sequence_no ${base.sequenceNo}, below the last anchored checkpoint at ${lastSeq}: events were removed. No checkpoint made.`,
      };
    }
    const anchoredEvent = await hashAt(client, head.tenant_id, last.sequence_no);
    if (anchoredEvent?.record_hash !== last.record_hash) {
      return {
        ...base, status: 'alarm', checkpointDigest: null, object: null, alarmCode: 'AT021',
        detail: `event ${lastSeq} has record_hash ${anchoredEvent?.record_hash ?? '(missing)'} but was anchored with ${last.record_hash}: the chain was rewritten. No checkpoint made.`,
      };
    }
    const unchanged: TenantAnchorResult = { ...base, status: 'unchanged', checkpointDigest: last.checkpoint_digest, object: null, alarmCode: null, detail: 'no new events since the last checkpoint' };
    if (base.sequenceNo === lastSeq) return unchanged;
    if (base.sequenceNo === lastSeq + 1) {
      // The only newer event is the record of the last anchoring itself.
      const headEvent = await hashAt(client, head.tenant_id, head.sequence_no);
      if (headEvent?.resource_type === 'anchor' && headEvent.resource_id === last.checkpoint_digest) return unchanged;
    }
  }
  // The last checkpoint as audit_trail.anchors lists it must be one the key
  // signed and a store holds: a superuser who edited that table (its
  // record_hash set to a rewritten chain's) would otherwise have this key sign
  // a checkpoint that continues the real ones over a rewritten history.
  if (last !== undefined) {
    const refused = await lastCheckpointNotPublished(head.tenant_id, last, stores, privateKey, keyId);
    if (refused !== null) return { ...base, status: 'alarm', checkpointDigest: null, object: null, alarmCode: 'AT021', detail: `${refused} No checkpoint made.` };
  }
  // A checkpoint that an interrupted run published to a store but did not list
  // in the database (the run ended between the two): completed and listed
  // now, so that the tenant's next checkpoint follows it in every store.
  const orphan = await unlistedCheckpoint(client, head, stores, last, privateKey, keyId);
  if (orphan !== null) {
    for (const [store, names] of orphan.listings) if (!names.includes(orphan.object)) await store.put(orphan.object, orphan.bytes);
    await registerAnchor(client, orphan.checkpoint, orphan.digest, orphan.signature, storeUrls);
    return {
      ...base, status: 'anchored', checkpointDigest: orphan.digest, object: orphan.object, alarmCode: null,
      detail: `completed the checkpoint at sequence_no ${orphan.checkpoint.sequence_no} that an interrupted run had published but not listed; now in every store and in audit_trail.anchors (the next pass anchors what came after it)`,
    };
  }
  const checkpoint: Checkpoint = {
    tenant_id: head.tenant_id,
    sequence_no: base.sequenceNo,
    record_hash: head.record_hash,
    anchored_at: new Date().toISOString(),
    key_id: keyId,
    previous_checkpoint_digest: last?.checkpoint_digest ?? null,
  };
  const published = signCheckpoint(checkpoint, privateKey);
  const object = checkpointObjectName(published);
  const bytes = Buffer.from(`${JSON.stringify(published, null, 2)}\n`, 'utf8');
  // Publish everywhere first: a checkpoint listed in the database but missing from a store would be a lie.
  for (const store of stores) await store.put(object, bytes);
  await registerAnchor(client, checkpoint, published.checkpoint_digest, published.signature, storeUrls);
  return { ...base, status: 'anchored', checkpointDigest: published.checkpoint_digest, object, alarmCode: null, detail: `checkpoint at sequence_no ${base.sequenceNo} published to ${storeUrls.join(', ')}` };
}

/**
 * Why the last checkpoint listed in audit_trail.anchors is not to be trusted
 * (no store holds it signed with this key, or a store's copy says otherwise),
 * or null when a store holds exactly it.
 */
async function lastCheckpointNotPublished(tenant: string, last: LastAnchorRow, stores: AnchorStore[], privateKey: KeyObject, keyId: string): Promise<string | null> {
  const name = objectNameOf(tenant, last.sequence_no, last.checkpoint_digest);
  const publicKey = createPublicKey(privateKey);
  let found = false;
  for (const store of stores) {
    const names = await store.list(`${tenantFolder(tenant)}/`, name.slice(0, -1)); // (this name, and what sorts after it)
    if (!names.includes(name)) continue; // a store added after that checkpoint was made
    const bytes = await store.get(name);
    const check = checkCheckpoint(bytes, publicKey, keyId);
    // (signed by an earlier key, after a key rotation: its digest matched its content; the content must match the table)
    const content = check.ok ? { ...check.checkpoint, digest: check.digest } : check.reason === 'other key' ? publishedContent(bytes) : null;
    if (content === null || content.digest !== last.checkpoint_digest || content.record_hash !== last.record_hash || String(content.sequence_no) !== last.sequence_no) {
      return `the last checkpoint listed in audit_trail.anchors (sequence_no ${last.sequence_no}, record_hash ${last.record_hash}) is not what ${store.url} holds under ${name}: audit_trail.anchors was edited.`;
    }
    found = true;
  }
  return found ? null : `no store holds the last checkpoint listed in audit_trail.anchors (sequence_no ${last.sequence_no}, ${name}) signed with key ${keyId}: audit_trail.anchors was edited, or the checkpoints were published to other stores (pass them with --store).`;
}

/** The checkpoint fields and digest of a published object whose digest matched its content. */
function publishedContent(bytes: Buffer): { sequence_no: number; record_hash: string; digest: string } | null {
  try {
    const p = JSON.parse(bytes.toString('utf8')) as { checkpoint: { sequence_no: number; record_hash: string }; checkpoint_digest: string };
    return { sequence_no: p.checkpoint.sequence_no, record_hash: p.checkpoint.record_hash, digest: p.checkpoint_digest };
  } catch {
    return null;
  }
}

/** Lists a published checkpoint in audit_trail.anchors (and records the anchoring in the tenant's chain). */
async function registerAnchor(client: pg.ClientBase, c: Checkpoint, digest: string, signature: string, storeUrls: string[]): Promise<void> {
  try {
    await client.query('begin');
    await client.query(
      `select audit_trail.register_anchor($1, $2::bigint, decode($3, 'hex'), $4::timestamptz, $5, decode($6, 'hex'),
              decode($7, 'hex'), $8::text[], decode($9, 'hex'))`,
      [c.tenant_id, c.sequence_no, c.record_hash, c.anchored_at, c.key_id, digest, c.previous_checkpoint_digest, storeUrls, signature],
    );
    await client.query('commit');
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw DatabaseError.fromPg(err);
  }
}

interface UnlistedCheckpoint {
  checkpoint: Checkpoint;
  digest: string;
  signature: string;
  object: string;
  bytes: Buffer;
  /** What each store holds of the tenant after the last listed checkpoint. */
  listings: Array<[AnchorStore, string[]]>;
}

/**
 * The checkpoint of this tenant that a store holds after the last one listed
 * in the database and that follows it: signed with this key, naming the last
 * listed checkpoint (or none) as its predecessor, and vouching for a record
 * hash the chain still has. Such a checkpoint was published by a run that
 * ended before listing it. Null when there is none (the usual case: one
 * listing per store, of the names after the last listed checkpoint).
 */
async function unlistedCheckpoint(
  client: pg.ClientBase,
  head: HeadRow,
  stores: AnchorStore[],
  last: LastAnchorRow | undefined,
  privateKey: KeyObject,
  keyId: string,
): Promise<UnlistedCheckpoint | null> {
  const folder = `${tenantFolder(head.tenant_id)}/`;
  const lastDigest = last?.checkpoint_digest ?? null;
  // Names sort by sequence_no (19 digits): only those after the last listed checkpoint's are read.
  const startAfter = last === undefined ? folder : `${folder}${last.sequence_no.padStart(19, '0')}-~`;
  const listings: Array<[AnchorStore, string[]]> = [];
  for (const store of stores) listings.push([store, (await store.list(folder, startAfter)).filter((n) => n.endsWith('.json'))]);
  const publicKey = createPublicKey(privateKey);
  for (const [store, names] of listings) {
    for (const name of names) {
      const bytes = await store.get(name);
      const check = checkCheckpoint(bytes, publicKey, keyId);
      if (!check.ok || check.checkpoint.tenant_id !== head.tenant_id || check.checkpoint.previous_checkpoint_digest !== lastDigest) continue;
      if (check.checkpoint.sequence_no > Number(head.sequence_no)) continue;
      const held = await hashAt(client, head.tenant_id, String(check.checkpoint.sequence_no));
      if (held?.record_hash !== check.checkpoint.record_hash) continue;
      const signature = (JSON.parse(bytes.toString('utf8')) as { signature: string }).signature;
      return { checkpoint: check.checkpoint, digest: check.digest, signature, object: name, bytes, listings };
    }
  }
  return null;
}

async function latestObject(store: ReturnType<typeof openStore>): Promise<string | undefined> {
  const names = await store.list('').catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.json')).at(-1);
}

/** anchor --check: what each store enforces, read back (no checkpoint is written). */
export async function checkStores(storeUrls: string[], options: StoreOptions = {}): Promise<ImmutabilityReport[]> {
  const out: ImmutabilityReport[] = [];
  for (const url of storeUrls) {
    const store = openStore(url, options);
    await store.checkReachable();
    out.push(await store.immutability(await latestObject(store)));
  }
  return out;
}
