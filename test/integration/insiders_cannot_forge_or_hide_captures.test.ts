/**
 * Attacks by insiders without superuser rights (found by a red-team review):
 * an application role that owns the audited tables, and a reader of one
 * tenant. None of them may make a change that leaves no event, or write a
 * captured event of their own making:
 * - attaching the capture trigger functions to a table of their own, with
 *   options of their choosing (another tenant, no actor check), is refused
 *   at the write (42501);
 * - the owner replacing a capture trigger with CREATE OR REPLACE TRIGGER (a
 *   WHEN condition that never holds) is refused (AT009); replacing its
 *   options makes every write to the table refused (42501) until enable()
 *   runs again;
 * - the owner dropping the table, disabling the capture trigger of one of
 *   its partitions, rewriting a column with ALTER COLUMN ... TYPE ... USING,
 *   attaching a partition that holds rows, or making a table INHERIT from it,
 *   is refused (AT009); TRUNCATE of a partition too (AT008);
 * - nobody but pg-audit-trail writes into the _system chain (22023), where a
 *   DROP COLUMN of an audited table is recorded.
 * Every refusal leaves the trail as it was. Needs the DDL event triggers,
 * which a superuser install creates (the harness installs as superuser).
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAs, useTestDatabase } from '../helpers/database.ts';
import { eventCount, inTransaction, refusedTransaction, serverError, verify } from './support/trail.ts';

// Roles are cluster-wide: names say which file owns them.
const APP = 'insider_app';
const READER = 'insider_reader';
const A = 'insider_plant_a';
const B = 'insider_plant_b';

describe('insiders cannot forge or hide captures', () => {
  const db = useTestDatabase('insiders_cannot_forge_or_hide_captures');
  let su: pg.Client;
  let app: pg.Client;
  let reader: pg.Client;
  let options: string;

  async function heads(): Promise<Record<string, number>> {
    const { rows } = await su.query<{ tenant_id: string; sequence_no: string }>(`select tenant_id, sequence_no from audit_trail.chain_heads`);
    return Object.fromEntries(rows.map((r) => [r.tenant_id, Number(r.sequence_no)]));
  }

  beforeAll(async () => {
    su = await db.connect();
    app = await connectAs(db, APP);
    reader = await connectAs(db, READER);
    await su.query(`grant audit_trail_writer to ${APP}`);
    await su.query(`create schema plant authorization ${APP}`);
    await app.query(`create table plant.orders (plant_id text not null, order_no text not null, status text, primary key (plant_id, order_no))`);
    await app.query(`create table plant.readings (plant_id text not null, id int not null, value numeric, primary key (plant_id, id)) partition by list (plant_id)`);
    await app.query(`create table plant.readings_a partition of plant.readings for values in ('${A}')`);
    await su.query(`select audit_trail.enable('plant.orders', '{"tenant_column": "plant_id"}')`);
    await su.query(`select audit_trail.enable('plant.readings', '{"tenant_column": "plant_id"}')`);
    await su.query(`select audit_trail.grant_tenant_read($1, $2)`, [READER, A]);
    options = (await su.query<{ o: string }>(`select options::text as o from audit_trail.audited_tables where table_oid = 'plant.orders'::regclass`)).rows[0]!.o;
    for (const tenant of [A, B]) {
      await inTransaction(app, { tenant_id: tenant, actor_id: 'usr_1' }, (t) =>
        t.query(`insert into plant.orders values ($1, 'PO-1', 'planned')`, [tenant]));
    }
    await inTransaction(app, { tenant_id: A, actor_id: 'usr_1' }, (t) => t.query(`insert into plant.readings values ($1, 1, 7.5)`, [A]));
  });

  afterAll(async () => {
    await app?.end();
    await reader?.end();
  });

  const forged = (tenant: string): string =>
    JSON.stringify({ table: 'plant.orders', key_columns: ['plant_id', 'order_no'], resource_type: 'orders', tenant, actor_required: false, max_inline_bytes: 4096 });

  it.each([
    ['a reader of one tenant', 'capture_change', 'for each row'],
    ['the application role', 'capture_change', 'for each row'],
    ['the application role', 'capture_inserted_rows', 'referencing new table as audit_trail_inserted for each statement'],
  ])('%s attaching %s to a table of its own, with options of its choosing: refused, nothing written', async (who, fn, level) => {
    const c = who === 'a reader of one tenant' ? reader : app;
    const before = await heads();
    await c.query(`create temporary table if not exists fake (plant_id text, order_no text, status text)`);
    await c.query(`drop trigger if exists forge on fake`);
    await c.query(`create trigger forge after insert on fake ${level} execute function audit_trail.${fn}('${forged(B)}')`);
    const err = await refusedTransaction(c, { actor_id: 'usr_b1' }, (t) => t.query(`insert into fake values ('${B}', 'PO-SECRET', 'cancelled')`));
    expect(err.code).toBe('42501');
    expect(err.message).toContain('capture trigger is not one that audit_trail.enable() installed');
    expect(await heads()).toEqual(before);
  });

  it('the same, with the options of a real audited table copied verbatim: refused', async () => {
    const before = await heads();
    await app.query(`create temporary table copy_of_orders (like plant.orders)`);
    await app.query(`create trigger forge after update on copy_of_orders for each row execute function audit_trail.capture_change('${options}')`);
    await app.query(`insert into copy_of_orders values ('${A}', 'PO-1', 'planned')`);
    const err = await refusedTransaction(app, { tenant_id: A, actor_id: 'usr_1' }, (t) => t.query(`update copy_of_orders set status = 'cancelled'`));
    expect(err.code).toBe('42501');
    expect(await heads()).toEqual(before);
  });

  it.each([
    ['the capture trigger', `create or replace trigger audit_trail_capture after update or delete on plant.orders for each row when (false) execute function audit_trail.capture_change('OPTIONS')`],
    ['the capture trigger of inserts', `create or replace trigger audit_trail_capture_inserts after insert on plant.orders referencing new table as audit_trail_inserted for each statement when (false) execute function audit_trail.capture_inserted_rows('OPTIONS')`],
    ['the capture trigger, UPDATE OF one column only', `create or replace trigger audit_trail_capture after update of order_no or delete on plant.orders for each row execute function audit_trail.capture_change('OPTIONS')`],
    ['the capture trigger, for DELETE only', `create or replace trigger audit_trail_capture after delete on plant.orders for each row execute function audit_trail.capture_change('OPTIONS')`],
  ])('the owner replacing %s so that it never fires: refused with AT009', async (_what, sql) => {
    const err = await serverError(app.query(sql.replace('OPTIONS', options)));
    expect(err.code).toBe('AT009');
    const { rows } = await su.query<{ intact: boolean }>(`select audit_trail.capture_triggers_intact('plant.orders'::regclass) as intact`);
    expect(rows[0]!.intact).toBe(true);
  });

  it('the owner replacing the capture trigger\'s options: every write is refused until enable() runs again', async () => {
    const before = await heads();
    // (a fixed tenant and no actor check: the tenant checks pass, the registered options do not match)
    await app.query(`create or replace trigger audit_trail_capture after update or delete on plant.orders for each row execute function audit_trail.capture_change('${forged(A)}')`);
    const err = await refusedTransaction(app, { tenant_id: A, actor_id: 'usr_1' }, (t) => t.query(`update plant.orders set status = 'cancelled' where plant_id = $1`, [A]));
    expect(err.code).toBe('42501');
    expect(err.hint).toContain('audit_trail.enable()');
    expect(await heads()).toEqual(before);
    await su.query(`select audit_trail.enable('plant.orders', '{"tenant_column": "plant_id"}')`);
    await inTransaction(app, { tenant_id: A, actor_id: 'usr_1' }, (t) => t.query(`update plant.orders set status = 'running' where plant_id = $1`, [A]));
    expect((await heads())[A]).toBe(before[A]! + 1);
  });

  it('a partition enabled itself (its partitioned table is not audited) is captured and guarded as a table', async () => {
    await app.query(`create table plant.logs (plant_id text not null, id int not null, line text, primary key (plant_id, id)) partition by list (plant_id)`);
    await app.query(`create table plant.logs_a partition of plant.logs for values in ('${A}')`);
    await su.query(`select audit_trail.enable('plant.logs_a', '{"tenant_column": "plant_id"}')`);
    const before = (await heads())[A]!;
    await inTransaction(app, { tenant_id: A, actor_id: 'usr_1' }, (t) => t.query(`insert into plant.logs values ($1, 1, 'start')`, [A]));
    expect((await heads())[A]).toBe(before + 1);
    expect((await serverError(app.query(`alter table plant.logs_a disable trigger audit_trail_capture`))).code).toBe('AT009');
    // other DDL goes on: the partition is not taken for a detached one
    await app.query(`alter table plant.logs add column note text`);
    await inTransaction(app, { tenant_id: A, actor_id: 'usr_1' }, (t) => t.query(`update plant.logs set note = 'n' where plant_id = $1`, [A]));
    expect((await heads())[A]).toBe(before + 2);
    await su.query(`select audit_trail.disable('plant.logs_a', 'Log table retired after migration to the historian, change request CR-3110')`);
  });

  it('the owner disabling the capture trigger of a partition: refused with AT009', async () => {
    const err = await serverError(app.query(`alter table plant.readings_a disable trigger audit_trail_capture`));
    expect(err.code).toBe('AT009');
  });

  it('an ALTER TABLE that changes the derived options keeps capture working (the registered options follow)', async () => {
    await app.query(`alter table plant.orders add column spec jsonb`);
    await inTransaction(app, { tenant_id: A, actor_id: 'usr_1' }, (t) => t.query(`update plant.orders set spec = '{"a": 1}' where plant_id = $1`, [A]));
    const { rows } = await su.query<{ json_columns: unknown }>(`select options -> 'json_columns' as json_columns from audit_trail.audited_tables where table_oid = 'plant.orders'::regclass`);
    expect(rows[0]!.json_columns).toEqual(['spec']);
  });

  it('the owner changing a column type with USING (a rewrite of stored values): refused with AT009', async () => {
    const err = await serverError(app.query(`alter table plant.orders alter column status type varchar(40) using upper(status)`));
    expect(err.code).toBe('AT009');
    expect(err.hint).toContain('audit_trail.disable');
    const { rows } = await su.query<{ status: string }>(`select status from plant.orders where plant_id = $1`, [A]);
    expect(rows[0]!.status).toBe('running');
  });

  it('TRUNCATE of a partition directly, old or new: refused with AT008', async () => {
    expect((await serverError(app.query(`truncate plant.readings_a`))).code).toBe('AT008');
    await app.query(`create table plant.readings_c partition of plant.readings for values in ('insider_plant_c')`);
    expect((await serverError(app.query(`truncate plant.readings_c`))).code).toBe('AT008');
    expect((await serverError(app.query(`alter table plant.readings_c disable trigger audit_trail_refuse_truncate`))).code).toBe('AT009');
  });

  it('ATTACH PARTITION of a table that holds rows: refused with AT009; of an empty one: allowed and guarded', async () => {
    await app.query(`create table plant.readings_b (like plant.readings including all)`);
    await app.query(`insert into plant.readings_b values ($1, 1, 99)`, [B]);
    const err = await serverError(app.query(`alter table plant.readings attach partition plant.readings_b for values in ('${B}')`));
    expect(err.code).toBe('AT009');
    expect(err.hint).toContain('INSERT ... SELECT');
    await app.query(`create table plant.readings_d (like plant.readings including all)`);
    await app.query(`alter table plant.readings attach partition plant.readings_d for values in ('insider_plant_d')`);
    expect((await serverError(app.query(`truncate plant.readings_d`))).code).toBe('AT008');
  });

  it('the owner dropping or detaching a partition of an audited table: refused with AT009', async () => {
    expect((await serverError(app.query(`drop table plant.readings_a`))).code).toBe('AT009');
    expect((await serverError(app.query(`alter table plant.readings detach partition plant.readings_a`))).code).toBe('AT009');
    const { rows } = await su.query<{ n: number }>(`select count(*)::int as n from plant.readings`);
    expect(rows[0]!.n).toBe(1);
  });

  it('a table that INHERITS from an audited table (its rows would show there uncaptured): refused with AT009', async () => {
    const err = await serverError(app.query(`create table plant.orders_child () inherits (plant.orders)`));
    expect(err.code).toBe('AT009');
    await app.query(`create table plant.loose (like plant.orders)`);
    expect((await serverError(app.query(`alter table plant.loose inherit plant.orders`))).code).toBe('AT009');
  });

  it('the application writing into the _system chain, which holds administrative events: refused', async () => {
    const before = await heads();
    const viaRecord = await refusedTransaction(app, { actor_id: 'postgres', capture_method: 'administration' }, (t) =>
      t.query(`select audit_trail.record('execute', 'audited_table', 'plant.orders', '[{"field": "enabled", "before": true, "after": false}]', 'Maintenance window MW-7, change request CR-2291', tenant => '_system')`));
    expect(viaRecord.code).toBe('22023');
    const viaCapture = await refusedTransaction(app, { tenant_id: '_system', actor_id: 'usr_1' }, (t) =>
      t.query(`insert into plant.orders values ('_system', 'PO-9', 'planned')`));
    expect(viaCapture.code).toBe('22023');
    expect(await heads()).toEqual(before);
  });

  it('the owner dropping a column of an audited table: recorded in the _system chain, with who and why', async () => {
    const before = await eventCount(su, '_system');
    await inTransaction(app, { reason: 'Spec moved to the PLM system, change request CR-3107' }, (t) =>
      t.query(`alter table plant.orders drop column spec`));
    expect(await eventCount(su, '_system')).toBe(before + 1);
    const { rows } = await su.query<{ resource_id: string; changes: unknown; reason: string; session_user: string }>(
      `select resource_id, changes, reason, db_identity ->> 'login' as session_user from audit_trail.events
        where tenant_id = '_system' order by sequence_no desc limit 1`);
    expect(rows[0]).toEqual({
      resource_id: 'plant.orders',
      changes: [{ field: 'dropped_columns', before: ['spec'], after: null }],
      reason: 'Spec moved to the PLM system, change request CR-3107',
      session_user: APP,
    });
    expect(await verify(su, '_system')).toMatchObject({ ok: true });
  });

  it.each([
    ['the table', 'drop table plant.orders'],
    ['its schema, with CASCADE', 'drop schema plant cascade'],
    ['everything it owns (DROP OWNED)', `drop owned by ${APP}`],
  ])('the owner dropping %s while it is audited: refused with AT009', async (_what, sql) => {
    const err = await serverError(app.query(sql));
    expect(err.code).toBe('AT009');
    expect(err.hint).toContain('audit_trail.disable');
    const { rows } = await su.query<{ n: number }>(`select count(*)::int as n from plant.orders`);
    expect(rows[0]!.n).toBe(2);
  });

  it('after all of it, every chain verifies and holds only the honest events', async () => {
    for (const tenant of [A, B]) expect(await verify(su, tenant)).toMatchObject({ ok: true });
    // A: the reader's grant, two creates, the update after enable() and the one after ALTER TABLE,
    // and the directly enabled partition's create and update; B: one create.
    expect(await eventCount(su, A)).toBe(7);
    expect(await eventCount(su, B)).toBe(1);
    const { rows } = await su.query<{ n: number }>(
      `select count(*)::int as n from audit_trail.events where tenant_id in ($1, $2) and (changes::text like '%cancelled%' or resource_id like '%SECRET%')`, [A, B]);
    expect(rows[0]!.n).toBe(0);
  });
});
