/**
 * The database chain against the signed checkpoints: what audit_trail.verify()
 * alone cannot show. A superuser who truncates the tail and rewinds the chain
 * head, or who recomputes the whole chain from genesis, leaves a chain that is
 * consistent in itself; it no longer matches a checkpoint published before.
 */
import type pg from 'pg';
import { DatabaseError } from '../errors.ts';
import { connectClient, type ConnectionOptions } from '../db/connect.ts';
import { verifyTenant, type ChainVerification } from '../db/verify.ts';
import { checkAgainstCheckpoints, firstProblem, readCheckpoints, type ValidCheckpoint } from './read_checkpoints.ts';
import { openStore, type ImmutabilityReport } from './stores.ts';
import type { ChainProblem } from '../chain/verifier.ts';

/** Checks one tenant's events in the database against its checkpoints. */
export async function checkTenantAgainstCheckpoints(client: pg.ClientBase, tenant: string, checkpoints: ValidCheckpoint[]): Promise<ChainProblem | null> {
  if (checkpoints.length === 0) return null;
  const { rows } = await client.query<{ sequence_no: string; record_hash: string }>(
    `select e.sequence_no::text as sequence_no, encode(e.record_hash, 'hex') as record_hash from audit_trail.events e
      where e.tenant_id = $1 and e.sequence_no = any($2::bigint[]) order by e.sequence_no, e.record_hash`,
    [tenant, checkpoints.map((c) => c.sequence_no)],
  );
  const last = (await client.query<{ last: string | null }>('select max(sequence_no)::text as last from audit_trail.events where tenant_id = $1', [tenant])).rows[0]?.last;
  const byseq = new Map<number, string>();
  for (const r of rows) if (!byseq.has(Number(r.sequence_no))) byseq.set(Number(r.sequence_no), r.record_hash);
  return checkAgainstCheckpoints(checkpoints, last === null || last === undefined ? 0 : Number(last), (s) => byseq.get(s));
}

export interface AnchoredVerifyOptions extends ConnectionOptions {
  tenant?: string | undefined;
  anchors: string[];
  publicKeyFile: string;
}

export interface AnchoredVerification extends ChainVerification {
  checkpointsChecked: number;
}

/**
 * audit_trail.verify() for each tenant, then the checkpoints of every store:
 * the first problem (lowest sequence_no) of either is reported.
 */
export async function verifyWithAnchors(options: AnchoredVerifyOptions): Promise<{ tenants: AnchoredVerification[]; immutability: ImmutabilityReport[] }> {
  const stores = [];
  for (const url of options.anchors) stores.push(await readCheckpoints(url, options.publicKeyFile, options.tenant));
  const immutability: ImmutabilityReport[] = [];
  for (const s of stores) {
    const all = [...s.byTenant.values()].flat();
    immutability.push(await openStore(s.store).immutability(all.at(-1)?.object));
  }
  const client = await connectClient(options);
  try {
    const tenants =
      options.tenant !== undefined
        ? [options.tenant]
        : (await client.query<{ tenant_id: string }>('select tenant_id from audit_trail.chain_heads order by 1')).rows.map((r) => r.tenant_id);
    for (const s of stores) for (const t of s.byTenant.keys()) if (!tenants.includes(t)) tenants.push(t);
    const out: AnchoredVerification[] = [];
    for (const tenant of tenants) {
      const chain = await verifyTenant(client, tenant);
      const checkpoints: ValidCheckpoint[] = [];
      const problems: Array<ChainProblem | null> = [];
      // The chain's own break first: on the same sequence_no it is the more precise report.
      if (!chain.ok && chain.problem !== 'not found') {
        problems.push({ sequenceNo: chain.firstBadSequenceNo, kind: (chain.problem ?? 'hash mismatch') as ChainProblem['kind'], detail: chain.detail ?? '' });
      }
      for (const s of stores) {
        for (const c of s.byTenant.get(tenant) ?? []) if (!checkpoints.some((k) => k.digest === c.digest)) checkpoints.push(c);
        for (const p of s.problems) if (p.tenantId === tenant) problems.push(p);
      }
      checkpoints.sort((a, b) => a.sequence_no - b.sequence_no);
      problems.push(await checkTenantAgainstCheckpoints(client, tenant, checkpoints));
      const first = firstProblem(problems);
      if (first === null) {
        out.push({ ...chain, checkpointsChecked: checkpoints.length });
      } else {
        out.push({
          tenantId: tenant,
          eventsChecked: chain.eventsChecked,
          ok: false,
          firstBadSequenceNo: first.sequenceNo,
          problem: first.kind,
          detail: first.detail,
          checkpointsChecked: checkpoints.length,
        });
      }
    }
    return { tenants: out, immutability };
  } catch (err) {
    throw DatabaseError.fromPg(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}
