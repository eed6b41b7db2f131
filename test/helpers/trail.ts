/**
 * Helpers for tests that need events in a tenant's chain, and that tamper
 * with them as a superuser would (triggers bypassed with
 * session_replication_role = replica).
 */
import { createPublicKey } from 'node:crypto';
import type pg from 'pg';
import { keyIdOf, loadPrivateKey } from '../../src/anchor/keys.ts';
import { checkpointObjectName, signCheckpoint, type PublishedCheckpoint } from '../../src/anchor/checkpoint.ts';

export interface RecordedEvent {
  action?: string;
  resourceType?: string;
  resourceId?: string;
  changes?: unknown;
  reason?: string | null;
  context?: unknown;
  actorId?: string;
  actorName?: string;
  occurredAt?: string;
}

/** Appends `events` to `tenant`'s chain in one transaction, through audit_trail.record(). */
export async function recordEvents(client: pg.ClientBase, tenant: string, events: RecordedEvent[]): Promise<void> {
  await client.query('begin');
  try {
    for (const e of events) {
      await client.query(`select set_config('audit_trail.actor_id', $1, true), set_config('audit_trail.actor_name', $2, true)`, [
        e.actorId ?? 'operator.meier',
        e.actorName ?? '',
      ]);
      await client.query(
        `select audit_trail.record($1, $2, $3, $4::jsonb, $5, null, null, $6::jsonb, $7, $8::timestamptz)`,
        [
          e.action ?? 'update',
          e.resourceType ?? 'production_order',
          e.resourceId ?? 'PO-1',
          JSON.stringify(e.changes ?? [{ field: 'status', before: 'planned', after: 'running' }]),
          e.reason ?? null,
          JSON.stringify(e.context ?? {}),
          tenant,
          e.occurredAt ?? null,
        ],
      );
    }
    await client.query('commit');
  } catch (err) {
    await client.query('rollback');
    throw err;
  }
}

/** `n` simple distinct events. */
export function simpleEvents(n: number): RecordedEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    resourceId: `PO-${i + 1}`,
    changes: [{ field: 'quantity', before: i, after: i + 1 }],
  }));
}

/** Runs `sql` with the trail's guard triggers bypassed, as a tampering superuser would. */
export async function tamper(client: pg.ClientBase, sql: string, params: unknown[] = []): Promise<void> {
  await client.query('begin');
  try {
    await client.query('set local session_replication_role = replica');
    await client.query(sql, params);
    await client.query('commit');
  } catch (err) {
    await client.query('rollback');
    throw err;
  }
}

/** The SQL that recomputes a tenant's whole chain from `fromSeq` on (prev_hash, record_hash, and the head). */
export async function recomputeChain(client: pg.ClientBase, tenant: string, fromSeq = 1): Promise<void> {
  await tamper(
    client,
    `do $$
     declare r record; v_prev bytea; v_hash bytea; v_seq bigint;
     begin
       select coalesce((select record_hash from audit_trail.events where tenant_id = ${quote(tenant)} and sequence_no = ${fromSeq} - 1),
                       audit_trail.genesis_hash()) into v_prev;
       for r in select ctid, * from audit_trail.events where tenant_id = ${quote(tenant)} and sequence_no >= ${fromSeq} order by sequence_no loop
         v_hash := audit_trail.chain_hash(audit_trail.encode_body(r.event_id, r.tenant_id, r.occurred_at, r.ingested_at,
             r.actor_type, r.actor_id, r.actor_name, r.auth_method, r.source_ip, r.user_agent_hash, r.action,
             r.resource_type, r.resource_id, r.parent_type, r.parent_id, r.changes, r.reason, r.context, r.db_identity),
             r.sequence_no, v_prev);
         update audit_trail.events set prev_hash = v_prev, record_hash = v_hash
          where tenant_id = r.tenant_id and sequence_no = r.sequence_no and event_id = r.event_id;
         v_prev := v_hash; v_seq := r.sequence_no;
       end loop;
       update audit_trail.chain_heads set record_hash = v_prev, sequence_no = coalesce(v_seq, sequence_no) where tenant_id = ${quote(tenant)};
     end $$`,
  );
}

function quote(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/**
 * What an anchoring run that was interrupted after signing would have
 * published: a checkpoint of the tenant's chain head, signed with the key in
 * `keyFile`, continuing the last checkpoint listed in audit_trail.anchors,
 * with the object name a store would hold it under. The
 * caller writes it where the interrupted run got to.
 */
export async function interruptedCheckpoint(client: pg.ClientBase, tenant: string, keyFile: string): Promise<{ published: PublishedCheckpoint; name: string; text: string }> {
  const head = (await client.query<{ sequence_no: number; record_hash: string }>(
    `select sequence_no::int, encode(record_hash, 'hex') as record_hash from audit_trail.chain_heads where tenant_id = $1`, [tenant])).rows[0]!;
  const last = (await client.query<{ digest: string }>(
    `select encode(checkpoint_digest, 'hex') as digest from audit_trail.anchors where tenant_id = $1 order by sequence_no desc limit 1`, [tenant])).rows[0];
  const privateKey = await loadPrivateKey(keyFile);
  const published = signCheckpoint({ tenant_id: tenant, sequence_no: head.sequence_no, record_hash: head.record_hash, anchored_at: new Date().toISOString(),
    key_id: keyIdOf(createPublicKey(privateKey)), previous_checkpoint_digest: last?.digest ?? null }, privateKey);
  const name = checkpointObjectName(published);
  return { published, name, text: `${JSON.stringify(published, null, 2)}\n` };
}
