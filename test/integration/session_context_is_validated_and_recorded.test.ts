/**
 * What the application says about a change (docs/integrate.md) is validated
 * and lands in the event: audit_trail.set_context() checks every key and
 * value, the capture trigger checks values set with raw SET LOCAL, and each
 * setting feeds its field. audit_trail.record() returns the event_id it
 * stores. Events are written at COMMIT, or earlier after SET CONSTRAINTS ALL
 * IMMEDIATE. An update that changes nothing needs no reason and writes nothing.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { eventCount, inTransaction, refusedTransaction, serverError, verify } from './support/trail.ts';

const TENANT = 'plant_hd';
const REASON = 'Re-classified after review of PLC alarm log 4711; material was available';

interface EventRow {
  event_id: string;
  action: string;
  actor_id: string;
  actor_name: string;
  auth_method: string;
  source_ip: string;
  user_agent_hash: string;
  reason: string;
  occurred_at: string;
  occurred_before_ingested: boolean;
  context: Record<string, unknown>;
  db_identity: Record<string, unknown>;
  db_identity_text: string;
  parent_type: string | null;
  parent_id: string | null;
  changes: unknown;
}

describe('session context is validated and recorded', () => {
  const db = useTestDatabase('session_context_is_validated_and_recorded');
  let c: pg.Client;

  async function lastEvent(): Promise<EventRow> {
    const { rows } = await c.query<EventRow>(
      `select event_id, action, actor_id, actor_name, auth_method, source_ip, user_agent_hash, reason,
              to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as occurred_at,
              occurred_at < ingested_at as occurred_before_ingested, context, db_identity, db_identity::text as db_identity_text, parent_type, parent_id, changes
         from audit_trail.events where tenant_id = $1 order by sequence_no desc limit 1`,
      [TENANT],
    );
    return rows[0]!;
  }

  beforeAll(async () => {
    c = await db.connect();
    await c.query(`create table public.downtime (id int primary key, plant text not null, reason_code text not null)`);
    await c.query(`select audit_trail.enable('public.downtime', '{"tenant_column": "plant", "reason_required": true}')`);
    await inTransaction(c, { actor_id: 'usr_setup', reason: REASON }, (t) =>
      t.query(`insert into public.downtime values (1, '${TENANT}', 'M-01-MATERIAL-WAIT')`),
    );
  });

  it('set_context() feeds every field: who, when (occurred_at from the edge), why, and the context ids', async () => {
    const xid = await inTransaction(c, {}, async (t) => {
      await t.query(`select audit_trail.set_context($1::jsonb)`, [
        JSON.stringify({
          actor_id: 'usr_f29a1c',
          actor_name: 'M. Weber',
          auth_method: 'oidc',
          source_ip: '10.45.12.88',
          user_agent_hash: 'sha256:8e2a',
          reason: REASON,
          request_id: 'req_3b2c7e',
          session_id: 'ses_d91a4f',
          correlation_id: 'cor_9e14b2',
          occurred_at: '2026-04-19T08:42:17.382Z',
          context: { plant_id: 'plt_de_hd_01', line_id: 'line_02' },
        }),
      ]);
      await t.query(`update public.downtime set reason_code = 'T-03-TECHNICAL-FAULT' where id = 1`);
      await t.query(`set local application_name = 'mes-web "line 2"'`);
      return (await t.query<{ xid: string }>('select pg_current_xact_id()::text as xid')).rows[0]!.xid;
    });
    const { rows: [session] } = await c.query<{ pid: number; client: string | null }>(
      'select pg_backend_pid() as pid, host(inet_client_addr()) as client');
    const e = await lastEvent();
    expect(e).toMatchObject({
      action: 'update',
      actor_id: 'usr_f29a1c',
      actor_name: 'M. Weber',
      auth_method: 'oidc',
      source_ip: '10.45.12.88',
      user_agent_hash: 'sha256:8e2a',
      reason: REASON,
      occurred_at: '2026-04-19T08:42:17.382000',
      occurred_before_ingested: true,
      context: {
        plant_id: 'plt_de_hd_01',
        line_id: 'line_02',
        request_id: 'req_3b2c7e',
        session_id: 'ses_d91a4f',
        correlation_id: 'cor_9e14b2',
        capture_method: 'trigger',
        table: 'public.downtime',
      },
      changes: [{ field: 'reason_code', before: 'M-01-MATERIAL-WAIT', after: 'T-03-TECHNICAL-FAULT' }],
    });
    // What the database itself knew, whatever the application claimed: one
    // compact JSON text, stored and hashed as written, with the application
    // name (the client's to set) escaped as JSON.
    expect(e.db_identity_text).toBe(
      `{"login":"postgres","app":"mes-web \\"line 2\\"","client":${JSON.stringify(session!.client)},"pid":${session!.pid},"xid":${xid}}`);
    expect(e.db_identity).toEqual({ login: 'postgres', app: 'mes-web "line 2"', client: session!.client, pid: session!.pid, xid: Number(xid) });
    expect(e.event_id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  it('db_identity is one compact JSON text: login and application escaped, client null over a Unix socket', async () => {
    // The text builder the commit step uses, with what the suite's TCP connections cannot give: no client address.
    const login = 'we\\ird "q"\nx \u00fc \u{1F680}';
    const app = 'app\t"1"\\';
    const { rows: [built] } = await c.query<{ text: string }>(
      `select audit_trail.db_identity_text($1, $2, null, 4242, '123'::xid8)::text as text`, [login, app]);
    expect(built!.text).toBe(`{"login":${JSON.stringify(login)},"app":${JSON.stringify(app)},"client":null,"pid":4242,"xid":123}`);
    expect(JSON.parse(built!.text)).toEqual({ login, app, client: null, pid: 4242, xid: 123 });
    const { rows: [empty] } = await c.query<{ text: string }>(`select audit_trail.db_identity_text(null, null, null, null, null)::text as text`);
    expect(empty!.text).toBe('{"login":null,"app":null,"client":null,"pid":null,"xid":null}');

    // A real commit by a login whose name needs escaping (SET SESSION AUTHORIZATION changes session_user).
    const role = 'session_context "q" \\ x';
    await c.query(`do $$ begin create role ${'"' + role.replace(/"/g, '""') + '"'} nologin; exception when duplicate_object then null; end $$`);
    await inTransaction(c, { actor_id: 'usr_1', reason: REASON }, async (t) => {
      await t.query(`insert into public.downtime values (99, '${TENANT}', 'E-07-ESCAPED-LOGIN')`);
      await t.query(`set local session authorization ${'"' + role.replace(/"/g, '""') + '"'}`);
    });
    const { rows: [stored] } = await c.query<{ text: string }>(
      `select db_identity::text as text from audit_trail.events where tenant_id = $1 order by sequence_no desc limit 1`, [TENANT]);
    expect(JSON.parse(stored!.text)).toMatchObject({ login: role });
    expect(stored!.text.startsWith(`{"login":${JSON.stringify(role)},"app":`)).toBe(true);

    // SET ROLE changes current_user, not the login: the recorded login stays the session's.
    await inTransaction(c, { actor_id: 'usr_1', reason: REASON }, async (t) => {
      await t.query(`insert into public.downtime values (98, '${TENANT}', 'E-08-SET-ROLE')`);
      await t.query(`set local role ${'"' + role.replace(/"/g, '""') + '"'}`);
    });
    const { rows: [afterSetRole] } = await c.query<{ login: string }>(
      `select db_identity ->> 'login' as login from audit_trail.events where tenant_id = $1 order by sequence_no desc limit 1`, [TENANT]);
    expect(afterSetRole!.login).toBe('postgres');
    expect(await verify(c, TENANT)).toMatchObject({ ok: true });
  });

  it.each([
    ['an unknown key', { actor: 'usr_1' }, '22023', /Allowed keys/],
    ['a value that is not a string', { actor_id: 42 }, '22023', /Quote the value/],
    ['an occurred_at without a time zone', { occurred_at: '2026-04-19 08:42:17' }, '22007', /UTC/],
    ['a source_ip that is not an address', { source_ip: 'terminal-7' }, '22023', /address/],
    ['a context that is not an object', { context: ['plant'] }, '22023', /plant_id/],
  ])('set_context() refuses %s with SQLSTATE and hint', async (_label, context, code, hint) => {
    const err = await serverError(c.query(`select audit_trail.set_context($1::jsonb)`, [JSON.stringify(context)]));
    expect(err.code).toBe(code);
    expect(err.hint).toMatch(hint);
  });

  it('a malformed value set with raw SET LOCAL is refused by the capture trigger, and nothing is written', async () => {
    const before = await eventCount(c, TENANT);
    const err = await refusedTransaction(c, { actor_id: 'usr_1', reason: REASON, source_ip: 'terminal-7' }, (t) =>
      t.query(`update public.downtime set reason_code = 'X-99' where id = 1`),
    );
    expect(err.code).toBe('22023');
    expect(await eventCount(c, TENANT)).toBe(before);
    const { rows } = await c.query<{ reason_code: string }>('select reason_code from public.downtime where id = 1');
    expect(rows[0]!.reason_code).toBe('T-03-TECHNICAL-FAULT');
  });

  it('an update that changes nothing needs no reason and writes nothing', async () => {
    const before = await eventCount(c, TENANT);
    await inTransaction(c, { actor_id: 'usr_1' }, (t) => t.query(`update public.downtime set reason_code = reason_code where id = 1`));
    expect(await eventCount(c, TENANT)).toBe(before);
    // A real change without a reason is still refused at the statement.
    const err = await refusedTransaction(c, { actor_id: 'usr_1' }, (t) => t.query(`update public.downtime set reason_code = 'Y' where id = 1`));
    expect(err.code).toBe('AT003');
  });

  it('record(): an execute needs a reason (AT003); with one it returns the event_id it stores', async () => {
    const err = await refusedTransaction(c, { actor_id: 'usr_qa', tenant_id: TENANT }, (t) =>
      t.query(`select audit_trail.record('execute', 'batch', 'B-24-0815-01')`),
    );
    expect(err.code).toBe('AT003');
    const eventId = await inTransaction(c, { actor_id: 'usr_qa', tenant_id: TENANT }, async (t) => {
      const { rows } = await t.query<{ id: string }>(
        `select audit_trail.record('execute', 'batch', 'B-24-0815-01',
                 '[{"field": "status", "before": "quarantine", "after": "released"}]'::jsonb,
                 'Batch released after QC report QC-2291 and deviation DV-17 closure',
                 'production_order', 'PO-24-0815', '{"signature_meaning": "approval"}'::jsonb) as id`,
      );
      return rows[0]!.id;
    });
    const e = await lastEvent();
    expect(e).toMatchObject({
      event_id: eventId,
      action: 'execute',
      actor_id: 'usr_qa',
      parent_type: 'production_order',
      parent_id: 'PO-24-0815',
      changes: [{ field: 'status', before: 'quarantine', after: 'released' }],
      context: { recorded: { signature_meaning: 'approval' }, capture_method: 'api' },
    });
  });

  it('events appear at COMMIT; SET CONSTRAINTS ALL IMMEDIATE writes them before', async () => {
    const before = await eventCount(c, TENANT);
    await inTransaction(c, { actor_id: 'usr_1', reason: REASON }, async (t) => {
      await t.query(`update public.downtime set reason_code = 'A-01' where id = 1`);
      expect(await eventCount(t, TENANT)).toBe(before);
      await t.query('set constraints all immediate');
      await t.query(`update public.downtime set reason_code = 'A-02' where id = 1`);
      expect(await eventCount(t, TENANT)).toBe(before + 2);
      await t.query('set constraints all deferred');
      await t.query(`update public.downtime set reason_code = 'A-03' where id = 1`);
      expect(await eventCount(t, TENANT)).toBe(before + 2);
    });
    expect(await eventCount(c, TENANT)).toBe(before + 3);
    expect(await verify(c, TENANT)).toMatchObject({ ok: true });
  });
});
