/**
 * Signed checkpoints (docs/hash-chain.md, "Checkpoints").
 *
 * The signed bytes are the UTF-8 of this canonical JSON: no whitespace, the
 * keys in exactly this order, strings escaped as ECMAScript JSON.stringify
 * does, integers in decimal, null for the first checkpoint's predecessor:
 *
 *   {"type":"pg-audit-trail checkpoint","version":1,"tenant_id":"...","sequence_no":N,
 *    "record_hash":"<64 hex>","anchored_at":"<ISO-8601 UTC, milliseconds>","key_id":"<32 hex>",
 *    "previous_checkpoint_digest":"<64 hex>"|null}
 *
 * checkpoint_digest = SHA-256(those bytes); signature = Ed25519(private key, those bytes).
 * The published object is {"checkpoint": {...}, "checkpoint_digest": hex, "signature": hex}.
 */
import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

export interface Checkpoint {
  tenant_id: string;
  sequence_no: number;
  record_hash: string;
  anchored_at: string;
  key_id: string;
  previous_checkpoint_digest: string | null;
}

export interface PublishedCheckpoint {
  checkpoint: Checkpoint & { type: 'pg-audit-trail checkpoint'; version: 1 };
  checkpoint_digest: string;
  signature: string;
}

const hex = (n: number) => z.string().regex(new RegExp(`^[0-9a-f]{${n}}$`), `must be ${n} lowercase hex characters`);

export const publishedCheckpointSchema = z.object({
  checkpoint: z.object({
    type: z.literal('pg-audit-trail checkpoint'),
    version: z.literal(1),
    tenant_id: z.string().min(1),
    sequence_no: z.number().int().positive(),
    record_hash: hex(64),
    anchored_at: z.iso.datetime(),
    key_id: hex(32),
    previous_checkpoint_digest: hex(64).nullable(),
  }),
  checkpoint_digest: hex(64),
  signature: hex(128),
});

/** The canonical bytes that are hashed and signed. */
export function canonicalCheckpoint(c: Checkpoint): Buffer {
  const text =
    `{"type":"pg-audit-trail checkpoint","version":1,"tenant_id":${JSON.stringify(c.tenant_id)},` +
    `"sequence_no":${c.sequence_no},"record_hash":${JSON.stringify(c.record_hash)},` +
    `"anchored_at":${JSON.stringify(c.anchored_at)},"key_id":${JSON.stringify(c.key_id)},` +
    `"previous_checkpoint_digest":${c.previous_checkpoint_digest === null ? 'null' : JSON.stringify(c.previous_checkpoint_digest)}}`;
  return Buffer.from(text, 'utf8');
}

export function checkpointDigest(c: Checkpoint): string {
  return createHash('sha256').update(canonicalCheckpoint(c)).digest('hex');
}

/** Signs a checkpoint with the private key. */
export function signCheckpoint(c: Checkpoint, privateKey: KeyObject): PublishedCheckpoint {
  const bytes = canonicalCheckpoint(c);
  return {
    checkpoint: {
      type: 'pg-audit-trail checkpoint',
      version: 1,
      tenant_id: c.tenant_id,
      sequence_no: c.sequence_no,
      record_hash: c.record_hash,
      anchored_at: c.anchored_at,
      key_id: c.key_id,
      previous_checkpoint_digest: c.previous_checkpoint_digest,
    },
    checkpoint_digest: createHash('sha256').update(bytes).digest('hex'),
    signature: sign(null, bytes, privateKey).toString('hex'),
  };
}

/** Longest URI-encoded tenant id used as a folder name as it is (file names end at 255 bytes, S3 keys at 1024). */
const LONGEST_FOLDER = 200;

/**
 * The folder of a tenant's checkpoints in a store: the tenant id
 * URI-encoded (encodeURIComponent), or, when that is longer than 200
 * characters, "%sha256-" and the hex SHA-256 of the id's UTF-8 ("%s" is no
 * percent-escape, so no encoded id looks like it).
 */
export function tenantFolder(tenant: string): string {
  const encoded = encodeURIComponent(tenant);
  return encoded.length <= LONGEST_FOLDER ? encoded : `%sha256-${createHash('sha256').update(tenant, 'utf8').digest('hex')}`;
}

/** The tenant a folder name stands for, or null for a digest folder (its checkpoints name it) or a name that does not decode. */
export function tenantOfFolder(folder: string): string | null {
  if (folder.startsWith('%sha256-')) return null;
  try {
    return decodeURIComponent(folder);
  } catch {
    return null;
  }
}

/** Object name of a checkpoint in a store: tenant folder, zero-padded sequence_no, digest prefix. */
export function checkpointObjectName(c: PublishedCheckpoint): string {
  return objectNameOf(c.checkpoint.tenant_id, c.checkpoint.sequence_no, c.checkpoint_digest);
}

/** The object name of a tenant's checkpoint at `sequenceNo` with this digest (hex). */
export function objectNameOf(tenant: string, sequenceNo: number | string, digest: string): string {
  return `${tenantFolder(tenant)}/${String(sequenceNo).padStart(19, '0')}-${digest.slice(0, 16)}.json`;
}

export type CheckpointCheck =
  | { ok: true; checkpoint: Checkpoint; digest: string }
  | { ok: false; sequenceNo: number | null; tenantId: string | null; reason: 'malformed' | 'edited' | 'other key' | 'bad signature'; detail: string };

/** Validates a published checkpoint: shape, digest, key id and signature. */
export function checkCheckpoint(bytes: Buffer, publicKey: KeyObject, keyId: string): CheckpointCheck {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { ok: false, sequenceNo: null, tenantId: null, reason: 'malformed', detail: 'not valid JSON' };
  }
  const parsed = publishedCheckpointSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, sequenceNo: null, tenantId: null, reason: 'malformed', detail: `${issue?.path.join('.') ?? ''} ${issue?.message ?? 'invalid'}` };
  }
  const p = parsed.data;
  const c: Checkpoint = {
    tenant_id: p.checkpoint.tenant_id,
    sequence_no: p.checkpoint.sequence_no,
    record_hash: p.checkpoint.record_hash,
    anchored_at: p.checkpoint.anchored_at,
    key_id: p.checkpoint.key_id,
    previous_checkpoint_digest: p.checkpoint.previous_checkpoint_digest,
  };
  const at = { sequenceNo: c.sequence_no, tenantId: c.tenant_id };
  const canonical = canonicalCheckpoint(c);
  const digest = createHash('sha256').update(canonical).digest('hex');
  if (digest !== p.checkpoint_digest) {
    return { ok: false, ...at, reason: 'edited', detail: `checkpoint_digest ${p.checkpoint_digest} does not match its content (${digest}): the checkpoint was edited` };
  }
  if (c.key_id !== keyId) {
    return { ok: false, ...at, reason: 'other key', detail: `signed by key ${c.key_id}, not by the given public key ${keyId}` };
  }
  if (!verify(null, canonical, publicKey, Buffer.from(p.signature, 'hex'))) {
    return { ok: false, ...at, reason: 'bad signature', detail: `the Ed25519 signature does not verify with key ${keyId}: the checkpoint was edited or forged` };
  }
  return { ok: true, checkpoint: c, digest };
}
