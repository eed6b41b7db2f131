/**
 * Reads the checkpoints of a store back and checks them: shape, digest,
 * signature with the customer's public key, and the chain of
 * previous_checkpoint_digest per tenant (a checkpoint removed from or added to
 * the store breaks it).
 */
import type { KeyObject } from 'node:crypto';
import { EvidenceFileError } from '../errors.ts';
import type { ChainProblem } from '../chain/verifier.ts';
import { checkCheckpoint, tenantFolder, tenantOfFolder, type Checkpoint } from './checkpoint.ts';
import { keyIdOf, loadPublicKey } from './keys.ts';
import { openStore, type AnchorStore } from './stores.ts';

export interface ValidCheckpoint extends Checkpoint {
  digest: string;
  /** Object name in the store. */
  object: string;
}

export interface StoreCheckpoints {
  store: string;
  keyId: string;
  /** Valid checkpoints per tenant, in sequence order. */
  byTenant: Map<string, ValidCheckpoint[]>;
  /** Checkpoints that failed a check, per tenant ('' when the tenant cannot be read). */
  problems: Array<ChainProblem & { tenantId: string | null }>;
  count: number;
}

/**
 * Loads and checks every checkpoint of `storeUrl` (of one tenant when given).
 * Throws when the store is missing, or when no checkpoint at all was signed by
 * the given key (the wrong public key file, most likely).
 */
export async function readCheckpoints(
  storeUrl: string,
  publicKeyFile: string,
  tenant?: string,
): Promise<StoreCheckpoints> {
  const publicKey: KeyObject = await loadPublicKey(publicKeyFile);
  const keyId = keyIdOf(publicKey);
  const store: AnchorStore = openStore(storeUrl);
  await store.checkReachable();
  const names = (await store.list(tenant === undefined ? '' : `${tenantFolder(tenant)}/`)).filter((n) => n.endsWith('.json'));
  const byTenant = new Map<string, ValidCheckpoint[]>();
  const problems: StoreCheckpoints['problems'] = [];
  let otherKey = 0;
  const otherKeyIds = new Set<string>();
  const anomalies = store.listingAnomalies();
  for (const [name, detail] of anomalies) {
    // A name with nothing left to read: the checkpoint was deleted (Object Lock kept no version of it).
    if (!names.includes(name) && name.endsWith('.json')) {
      problems.push({ tenantId: tenantOfFolder(name.split('/')[0] ?? '') ?? tenant ?? '', sequenceNo: null, kind: 'overwritten object', detail: `${name}: ${detail}`, file: `${storeUrl}/${name}` });
    }
  }
  for (const name of names) {
    const check = checkCheckpoint(await store.get(name), publicKey, keyId);
    const overwritten = anomalies.get(name);
    if (check.ok && overwritten !== undefined) {
      problems.push({
        tenantId: check.checkpoint.tenant_id,
        sequenceNo: check.checkpoint.sequence_no,
        kind: 'overwritten object',
        detail: `${name}: ${overwritten}: someone tried to replace or hide this checkpoint`,
        file: `${storeUrl}/${name}`,
      });
    }
    if (!check.ok) {
      if (check.reason === 'other key') {
        otherKey++;
        otherKeyIds.add(/signed by key ([0-9a-f]{32})/.exec(check.detail)?.[1] ?? '?');
      }
      problems.push({
        tenantId: check.tenantId ?? tenantOfFolder(name.split('/')[0] ?? '') ?? tenant ?? '',
        sequenceNo: check.sequenceNo,
        kind: 'bad checkpoint',
        detail: `${name}: ${check.detail}`,
        file: `${storeUrl}/${name}`,
      });
      continue;
    }
    const list = byTenant.get(check.checkpoint.tenant_id) ?? [];
    list.push({ ...check.checkpoint, digest: check.digest, object: name });
    byTenant.set(check.checkpoint.tenant_id, list);
  }
  if (names.length > 0 && otherKey === names.length) {
    throw new EvidenceFileError(
      `none of the ${names.length} checkpoints in ${storeUrl} was signed by the key in ${publicKeyFile} (key id ${keyId}; the checkpoints name ${[...otherKeyIds].join(', ')})`,
      publicKeyFile,
      '22P02',
      { hint: 'Pass the public key of the key pair that signed the checkpoints (audit-trail keys generate wrote it next to the private key).' },
    );
  }
  for (const [tenantId, list] of byTenant) {
    list.sort((a, b) => a.sequence_no - b.sequence_no || a.anchored_at.localeCompare(b.anchored_at));
    let previous: ValidCheckpoint | null = null;
    for (const c of list) {
      if (c.previous_checkpoint_digest !== (previous?.digest ?? null)) {
        problems.push({
          tenantId,
          sequenceNo: c.sequence_no,
          kind: 'bad checkpoint',
          detail: `${c.object}: names ${c.previous_checkpoint_digest ?? 'no checkpoint'} as its predecessor but the store's previous checkpoint is ${previous?.digest ?? 'none'}: a checkpoint was removed from or added to the store`,
          file: `${storeUrl}/${c.object}`,
        });
      }
      previous = c;
    }
  }
  return { store: storeUrl, keyId, byTenant, problems, count: names.length };
}

/** The problem of lowest sequence_no among several (null sequence numbers last). */
export function firstProblem<T extends ChainProblem>(problems: Array<T | null>): T | null {
  let best: T | null = null;
  for (const p of problems) {
    if (p === null) continue;
    if (best === null || (p.sequenceNo ?? Infinity) < (best.sequenceNo ?? Infinity)) best = p;
  }
  return best;
}

/**
 * Checks a chain, given as sequence_no -> record_hash lookups, against a
 * tenant's checkpoints: an anchored event must still exist (else the tail was
 * truncated) and still have the anchored hash (else the chain was rewritten).
 */
export function checkAgainstCheckpoints(
  checkpoints: ValidCheckpoint[],
  lastSequenceNo: number,
  recordHashAt: (sequenceNo: number) => string | undefined,
): ChainProblem | null {
  let lastGood: ValidCheckpoint | null = null;
  for (const c of checkpoints) {
    if (c.sequence_no > lastSequenceNo) {
      return {
        sequenceNo: lastSequenceNo + 1,
        kind: 'truncated',
        detail: `checkpoint ${c.object} (anchored ${c.anchored_at}) vouches for events up to ${c.sequence_no}, but the chain ends at ${lastSequenceNo}: events ${lastSequenceNo + 1} to ${c.sequence_no} were removed`,
      };
    }
    const found = recordHashAt(c.sequence_no);
    if (found !== c.record_hash) {
      return {
        sequenceNo: c.sequence_no,
        kind: 'anchor mismatch',
        detail: `checkpoint ${c.object} (anchored ${c.anchored_at}) holds record_hash ${c.record_hash} for event ${c.sequence_no}, the chain has ${found ?? 'no such event'}: the chain was rewritten ${lastGood === null ? `at or before event ${c.sequence_no}` : `between events ${lastGood.sequence_no + 1} and ${c.sequence_no}`} and its hashes recomputed`,
      };
    }
    lastGood = c;
  }
  return null;
}
