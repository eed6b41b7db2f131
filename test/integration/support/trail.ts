/**
 * Small helpers shared by the integration tests of the SQL core: run a
 * transaction with audit settings, catch the server's error, read events,
 * changes and verify() results. Deliberately thin: every assertion stays in
 * the test files.
 */
import type pg from 'pg';
import { expect } from 'vitest';

/** The fields of a server error the tests assert on. */
export interface ServerError {
  code: string;
  message: string;
  hint: string | undefined;
  detail: string | undefined;
}

/** Awaits a statement that must fail and returns the server's error (fails the test if it succeeds). */
export async function serverError(promise: Promise<unknown>): Promise<ServerError> {
  try {
    await promise;
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown; hint?: unknown; detail?: unknown };
    if (typeof e.code !== 'string') throw err;
    return {
      code: e.code,
      message: String(e.message),
      hint: typeof e.hint === 'string' ? e.hint : undefined,
      detail: typeof e.detail === 'string' ? e.detail : undefined,
    };
  }
  expect.fail('expected the statement to be refused, but it succeeded');
}

/** audit_trail.* settings of one transaction, without the prefix: { actor_id: 'usr_1', reason: '...' }. */
export type AuditSettings = Record<string, string>;

/** Applies audit settings for the current transaction (like SET LOCAL). */
export async function setLocal(client: pg.ClientBase, settings: AuditSettings): Promise<void> {
  for (const [key, value] of Object.entries(settings)) {
    await client.query('select pg_catalog.set_config($1, $2, true)', [`audit_trail.${key}`, value]);
  }
}

/**
 * Runs `body` in a transaction with the given audit settings and commits.
 * Rolls back and rethrows when anything fails, so the client stays usable.
 */
export async function inTransaction<T>(
  client: pg.ClientBase,
  settings: AuditSettings,
  body: (c: pg.ClientBase) => Promise<T>,
): Promise<T> {
  await client.query('begin');
  try {
    await setLocal(client, settings);
    const result = await body(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  }
}

/** A transaction that must be refused: returns the error and leaves the client out of the transaction. */
export async function refusedTransaction(
  client: pg.ClientBase,
  settings: AuditSettings,
  body: (c: pg.ClientBase) => Promise<unknown>,
): Promise<ServerError> {
  return serverError(inTransaction(client, settings, body));
}

export interface EventRow {
  sequence_no: string;
  event_id: string;
  tenant_id: string;
  action: string;
  resource_type: string;
  resource_id: string | null;
  parent_type: string | null;
  parent_id: string | null;
  actor_id: string | null;
  reason: string | null;
  /** changes as PostgreSQL prints it: exact numbers, no JSON.parse rounding. */
  changes_text: string;
}

/** A tenant's events in chain order (as the client's role sees them). */
export async function eventsOf(client: pg.ClientBase, tenant: string): Promise<EventRow[]> {
  const { rows } = await client.query<EventRow>(
    `select sequence_no::text, event_id, tenant_id, action, resource_type, resource_id, parent_type, parent_id,
            actor_id, reason, changes::text as changes_text
       from audit_trail.events e where e.tenant_id = $1 order by e.sequence_no`,
    [tenant],
  );
  return rows;
}

/** One element of changes, each value as PostgreSQL's jsonb text ('null' for JSON null). */
export interface ChangeText {
  field: string;
  before: string;
  after: string;
  /** Keys other than field/before/after ("redacted", "stored_as_digest", "json_null"), as jsonb text; absent when none. */
  marks?: string;
}

/** The changes of one event as exact jsonb texts, in stored order. */
export async function changesOf(client: pg.ClientBase, eventId: string): Promise<ChangeText[]> {
  const { rows } = await client.query<{ field: string; before: string; after: string; marks: string | null }>(
    `select c ->> 'field' as field, (c -> 'before')::text as before, (c -> 'after')::text as after,
            nullif(c - 'field' - 'before' - 'after', '{}'::jsonb)::text as marks
       from audit_trail.events e, jsonb_array_elements(e.changes) with ordinality as x(c, ord)
      where e.event_id = $1 order by x.ord`,
    [eventId],
  );
  return rows.map((r) => (r.marks === null ? { field: r.field, before: r.before, after: r.after } : { ...r, marks: r.marks }));
}

export interface VerifyRow {
  tenant_id: string;
  events_checked: string;
  ok: boolean;
  first_bad_sequence_no: string | null;
  problem: string | null;
  detail: string | null;
}

export async function verify(client: pg.ClientBase, tenant: string, fromSeq?: number, toSeq?: number): Promise<VerifyRow> {
  const { rows } = await client.query<VerifyRow>(
    `select tenant_id, events_checked::text, ok, first_bad_sequence_no::text, problem, detail
       from audit_trail.verify($1, coalesce($2::bigint, 1), $3::bigint)`,
    [tenant, fromSeq ?? null, toSeq ?? null],
  );
  const row = rows[0];
  if (row === undefined) throw new Error('audit_trail.verify returned no row');
  return row;
}

/** Number of events of a tenant (as the client's role sees them). */
export async function eventCount(client: pg.ClientBase, tenant: string): Promise<number> {
  const { rows } = await client.query<{ n: string }>('select count(*)::text as n from audit_trail.events where tenant_id = $1', [tenant]);
  return Number(rows[0]?.n);
}

/** The current month's partition of audit_trail.events, e.g. audit_trail.events_2026_11. */
export async function currentPartition(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ name: string }>(
    `select 'audit_trail.' || quote_ident('events_' || to_char(now() at time zone 'UTC', 'YYYY_MM')) as name`,
  );
  return rows[0]!.name;
}
