/**
 * What a superuser can do to the trail, and how verification names it.
 *
 * tamper() gets past the guard triggers the way only a superuser can
 * (ALTER TABLE ... DISABLE TRIGGER USER), rewrites one event's reason,
 * deletes another event and switches the triggers back on: no error, nothing
 * in the server's view says anything happened.
 *
 * findBreaks() runs audit_trail.verify() until the end of the chain: the
 * function names the first break; verifying again from just after it names
 * the next, so every tampered event is listed.
 */
import type pg from 'pg';
import { DatabaseError } from '../errors.ts';
import { verifyTenant, type ChainVerification } from '../db/verify.ts';

export interface TamperedEvent {
  sequence_no: number;
  event_id: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  actor_id: string | null;
}

export interface Tampering {
  edited: TamperedEvent & { field: 'reason'; before: string | null; after: string };
  deleted: TamperedEvent;
}

interface EventRow {
  sequence_no: string;
  event_id: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  actor_id: string | null;
  reason: string | null;
}

async function oneEvent(client: pg.ClientBase, tenant: string, where: string, params: unknown[], what: string): Promise<EventRow> {
  const { rows } = await client.query<EventRow>(
    `select sequence_no::text, event_id, action, resource_type, resource_id, actor_id, reason
       from audit_trail.events e where e.tenant_id = $1 and ${where} order by e.sequence_no`,
    [tenant, ...params],
  );
  if (rows.length !== 1 || rows[0] === undefined) {
    throw new DatabaseError(`expected one event of tenant ${tenant} that is ${what}, found ${rows.length}`, { code: 'XX000' });
  }
  return rows[0];
}

function tamperedEvent(r: EventRow): TamperedEvent {
  return { sequence_no: Number(r.sequence_no), event_id: r.event_id, action: r.action, resource_type: r.resource_type, resource_id: r.resource_id, actor_id: r.actor_id };
}

/** Finds the event of a reclassification (reason_code from `from`) and the event of a soft delete of `deletedResource`. */
export async function chooseTargets(
  client: pg.ClientBase,
  tenant: string,
  reclassifiedFrom: string,
  deletedResourceLike: string,
): Promise<{ edit: EventRow; remove: EventRow }> {
  const edit = await oneEvent(client, tenant, `e.action = 'update' and e.changes @> $2::jsonb`,
    [JSON.stringify([{ field: 'reason_code', before: reclassifiedFrom }])], `the reclassification from ${reclassifiedFrom}`);
  const remove = await oneEvent(client, tenant, `e.action = 'delete' and e.resource_id like $2`, [deletedResourceLike], `the deletion of ${deletedResourceLike}`);
  return { edit, remove };
}

/**
 * As a superuser: triggers off, one event's reason rewritten, another event
 * deleted, triggers on; one transaction.
 */
export async function tamper(client: pg.ClientBase, tenant: string, edit: EventRow, remove: EventRow, newReason: string): Promise<Tampering> {
  await client.query('begin');
  try {
    await client.query('alter table audit_trail.events disable trigger user');
    const edited = await client.query('update audit_trail.events set reason = $3 where tenant_id = $1 and event_id = $2', [tenant, edit.event_id, newReason]);
    const deleted = await client.query('delete from audit_trail.events where tenant_id = $1 and event_id = $2', [tenant, remove.event_id]);
    await client.query('alter table audit_trail.events enable trigger user');
    if (edited.rowCount !== 1 || deleted.rowCount !== 1) {
      throw new DatabaseError(`tampering changed ${edited.rowCount ?? 0} and deleted ${deleted.rowCount ?? 0} events; expected 1 and 1`, { code: 'XX000' });
    }
    await client.query('commit');
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw DatabaseError.fromPg(err);
  }
  return {
    edited: { ...tamperedEvent(edit), field: 'reason', before: edit.reason, after: newReason },
    deleted: tamperedEvent(remove),
  };
}

/** Problems after which the rest of the chain can still be checked. */
const RESUMABLE = new Set(['hash mismatch', 'broken link', 'duplicate', 'gap']);

/** The first sequence_no in [from, to] that no event of the tenant holds, or null. */
async function firstMissing(client: pg.ClientBase, tenant: string, from: number, to: number): Promise<number | null> {
  const { rows } = await client.query<{ missing: string | null }>(
    `select min(s)::text as missing from generate_series($2::bigint, $3::bigint) s
      where not exists (select from audit_trail.events e where e.tenant_id = $1 and e.sequence_no = s)`,
    [tenant, from, to],
  );
  return rows[0]?.missing == null ? null : Number(rows[0].missing);
}

/**
 * Every break of the tenant's chain, in order: audit_trail.verify() from
 * sequence_no 1, then again from just after each break it names. Empty when
 * the chain is intact.
 */
export async function findBreaks(client: pg.ClientBase, tenant: string): Promise<ChainVerification[]> {
  const found: ChainVerification[] = [];
  const seen = new Set<number>();
  let from = 1;
  for (let pass = 0; pass < 1000; pass += 1) {
    const result = await verifyTenant(client, tenant, from);
    if (result.ok) break;
    let bad = result.firstBadSequenceNo;
    if (bad === null) {
      found.push(result);
      break;
    }
    if (result.problem === 'gap') {
      // Verifying from n > 1 starts at event n - 1, the link's predecessor.
      // When that event is the missing one, verify() reports the gap at n
      // (its detail says "events n-1 to ... are missing"): name the first
      // event that is really missing.
      bad = (await firstMissing(client, tenant, Math.max(1, from - 1), bad)) ?? bad;
    }
    // From n on, verify() also rechecks event n - 1: a break already named
    // there is not a new one.
    if (!seen.has(bad)) {
      seen.add(bad);
      found.push({ ...result, firstBadSequenceNo: bad });
    }
    if (result.problem === null || !RESUMABLE.has(result.problem)) break;
    if (result.problem === 'gap') {
      // Resume after the first event that is still there past the gap, so
      // that the link check starts from an event that exists.
      const { rows } = await client.query<{ next: string | null }>(
        'select min(sequence_no)::text as next from audit_trail.events where tenant_id = $1 and sequence_no >= $2',
        [tenant, bad],
      );
      if (rows[0]?.next == null) break;
      from = Math.max(from, Number(rows[0].next)) + 1;
    } else {
      from = Math.max(from, bad) + 1;
    }
  }
  return found;
}
