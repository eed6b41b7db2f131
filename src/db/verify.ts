/** Runs the in-database chain verification, audit_trail.verify(), per tenant. */
import type pg from 'pg';
import { DatabaseError } from '../errors.ts';
import { connectClient, type ConnectionOptions } from './connect.ts';

export interface VerifyOptions extends ConnectionOptions {
  /** Verify this tenant only; default: every tenant in audit_trail.chain_heads. */
  tenant?: string | undefined;
  /** First sequence_no to check; default 1. */
  fromSeq?: number | undefined;
  /** Last sequence_no to check; default: the chain head. */
  toSeq?: number | undefined;
}

/** One row of audit_trail.verify(). */
export interface ChainVerification {
  tenantId: string;
  eventsChecked: number;
  ok: boolean;
  firstBadSequenceNo: number | null;
  /** The kind of break: hash mismatch, gap, duplicate, broken link, anchor mismatch. */
  problem: string | null;
  /** What was expected and what was found. */
  detail: string | null;
}

interface VerifyRow {
  tenant_id: string;
  events_checked: string | number;
  ok: boolean;
  first_bad_sequence_no: string | number | null;
  problem: string | null;
  detail: string | null;
}

const toNumber = (v: string | number): number => (typeof v === 'number' ? v : Number(v));

/** Verifies one tenant's chain on an open client. */
export async function verifyTenant(
  client: pg.ClientBase,
  tenant: string,
  fromSeq = 1,
  toSeq: number | null = null,
): Promise<ChainVerification> {
  const { rows } = await client.query<VerifyRow>('select * from audit_trail.verify($1, $2::bigint, $3::bigint)', [
    tenant,
    fromSeq,
    toSeq,
  ]);
  const row = rows[0];
  if (row === undefined) {
    throw new DatabaseError(`audit_trail.verify returned no row for tenant ${tenant}`, { code: 'XX000' });
  }
  return {
    tenantId: row.tenant_id,
    eventsChecked: toNumber(row.events_checked),
    ok: row.ok,
    firstBadSequenceNo: row.first_bad_sequence_no === null ? null : toNumber(row.first_bad_sequence_no),
    problem: row.problem,
    detail: row.detail,
  };
}

/** Verifies the requested tenant, or every tenant that has a chain, one result per tenant. */
export async function verify(options: VerifyOptions = {}): Promise<ChainVerification[]> {
  const client = await connectClient(options);
  try {
    const tenants =
      options.tenant !== undefined
        ? [options.tenant]
        : (await client.query<{ tenant_id: string }>('select tenant_id from audit_trail.chain_heads order by 1')).rows.map(
            (r) => r.tenant_id,
          );
    const results: ChainVerification[] = [];
    for (const tenant of tenants) {
      results.push(await verifyTenant(client, tenant, options.fromSeq ?? 1, options.toSeq ?? null));
    }
    return results;
  } catch (err) {
    throw DatabaseError.fromPg(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}
