/**
 * INSERT ... SELECT and COPY into an audited table are captured by one
 * statement trigger over the statement's transition table (sql/06, install in
 * sql/08): still one event per row, in the order the rows were inserted, with
 * the same checks and the same event as the row trigger gives a single-row
 * INSERT. Tables whose rows need a treatment of their own (JSON columns,
 * redaction) and partitioned tables keep row triggers for inserts.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { changesOf, eventCount, eventsOf, inTransaction, refusedTransaction, verify } from './support/trail.ts';

const TENANT = 'plant_bulk';
const ACTOR = { actor_id: 'svc_erp_import' };

describe('bulk inserts are captured row by row', () => {
  const db = useTestDatabase('bulk_inserts_are_captured_row_by_row');
  let c: pg.Client;

  async function triggersOf(table: string): Promise<string[]> {
    const { rows } = await c.query<{ t: string }>(
      `select tgname || ':' || case when tgtype & 1 = 1 then 'row' else 'statement' end
              || ':' || concat_ws('/', case when tgtype & 4 <> 0 then 'insert' end, case when tgtype & 16 <> 0 then 'update' end,
                                  case when tgtype & 8 <> 0 then 'delete' end) as t
         from pg_trigger where tgrelid = $1::regclass and tgname like 'audit_trail_capture%' order by tgname`,
      [table],
    );
    return rows.map((r) => r.t);
  }

  beforeAll(async () => {
    c = await db.connect();
    await c.query(`
      create schema erp;
      create table erp.items (
        item_id integer primary key,
        tenant_id text not null,
        lot text not null,
        qty numeric(12, 3) not null,
        scratch text
      );
      select audit_trail.enable('erp.items', '{"tenant_column": "tenant_id", "exclude_columns": ["scratch"], "max_inline_bytes": 256}');
      create table erp.documents (id integer primary key, tenant_id text not null, body jsonb);
      select audit_trail.enable('erp.documents', '{"tenant_column": "tenant_id"}');
      create table erp.readings (id integer, tenant_id text not null, at date not null) partition by range (at);
      create table erp.readings_2026 partition of erp.readings for values from ('2026-01-01') to ('2027-01-01');
      select audit_trail.enable('erp.readings', '{"tenant_column": "tenant_id", "key_columns": ["id"]}');`);
  });

  it('plain tables capture inserts by a statement trigger; JSON columns and partitioned tables by row triggers', async () => {
    expect(await triggersOf('erp.items')).toEqual(['audit_trail_capture:row:update/delete', 'audit_trail_capture_inserts:statement:insert']);
    expect(await triggersOf('erp.documents')).toEqual(['audit_trail_capture:row:insert/update/delete']);
    expect(await triggersOf('erp.readings')).toEqual(['audit_trail_capture:row:insert/update/delete']);
  });

  it('INSERT ... SELECT writes one event per row, in insertion order, each with its own key and values', async () => {
    const before = await eventCount(c, TENANT);
    await inTransaction(c, ACTOR, (t) =>
      t.query(`insert into erp.items (item_id, tenant_id, lot, qty, scratch)
               select g, '${TENANT}', 'LOT-' || g, g / 4.0, 'not audited' from generate_series(500, 1, -1) g`),
    );
    const events = (await eventsOf(c, TENANT)).slice(before);
    expect(events).toHaveLength(500);
    // generate_series ran from 500 down to 1: the chain has the rows in that order.
    expect(events.map((e) => e.resource_id)).toEqual(Array.from({ length: 500 }, (_, i) => String(500 - i)));
    expect(new Set(events.map((e) => e.event_id)).size).toBe(500);
    expect(events.every((e) => e.action === 'create' && e.actor_id === ACTOR.actor_id && e.resource_type === 'items')).toBe(true);
    expect(await changesOf(c, events[0]!.event_id)).toEqual([
      { field: 'item_id', before: 'null', after: '500' },
      { field: 'lot', before: 'null', after: '"LOT-500"' },
      { field: 'qty', before: 'null', after: '125.000' },
      { field: 'tenant_id', before: 'null', after: `"${TENANT}"` },
    ]);
    expect(await verify(c, TENANT)).toMatchObject({ ok: true, events_checked: String(before + 500) });
  });

  it('a row over the inline size limit is stored as its digest, the others inline, in one statement', async () => {
    const before = await eventCount(c, TENANT);
    const long = 'x'.repeat(400);
    await inTransaction(c, ACTOR, (t) =>
      t.query(`insert into erp.items (item_id, tenant_id, lot, qty) values (1001, $1, 'short', 1), (1002, $1, $2, 2), (1003, $1, 'short', 3)`, [
        TENANT,
        long,
      ]),
    );
    const events = (await eventsOf(c, TENANT)).slice(before);
    expect(events.map((e) => e.resource_id)).toEqual(['1001', '1002', '1003']);
    const lotOf = async (eventId: string) => (await changesOf(c, eventId)).find((f) => f.field === 'lot');
    expect(await lotOf(events[0]!.event_id)).toEqual({ field: 'lot', before: 'null', after: '"short"' });
    const digested = await lotOf(events[1]!.event_id);
    expect(JSON.parse(digested!.after)).toMatchObject({ bytes: 400, of: 'text' });
    expect(digested!.marks).toBe('{"stored_as_digest": ["after"]}');
    expect(await lotOf(events[2]!.event_id)).toEqual({ field: 'lot', before: 'null', after: '"short"' });
  });

  it('COPY writes one event per row', async () => {
    const before = await eventCount(c, TENANT);
    await inTransaction(c, ACTOR, async (t) => {
      await t.query(`create temp table copy_source as select g as item_id, '${TENANT}' as tenant_id, 'C-' || g as lot, g as qty from generate_series(2001, 2040) g`);
      await t.query(`copy (select * from copy_source order by item_id) to '/tmp/pg_audit_trail_copy_test.csv' with (format csv)`);
      await t.query(`copy erp.items (item_id, tenant_id, lot, qty) from '/tmp/pg_audit_trail_copy_test.csv' with (format csv)`);
    });
    const events = (await eventsOf(c, TENANT)).slice(before);
    expect(events.map((e) => e.resource_id)).toEqual(Array.from({ length: 40 }, (_, i) => String(2001 + i)));
    expect(await verify(c, TENANT)).toMatchObject({ ok: true });
  });

  it('one row of another tenant refuses the whole statement, naming that tenant; nothing is written', async () => {
    const before = await eventCount(c, TENANT);
    const err = await refusedTransaction(c, { ...ACTOR, tenant_id: TENANT }, (t) =>
      t.query(`insert into erp.items (item_id, tenant_id, lot, qty)
               select g, case when g = 3003 then 'plant_other' else '${TENANT}' end, 'L', 1 from generate_series(3001, 3005) g`),
    );
    expect(err.code).toBe('42501');
    expect(err.message).toContain('plant_other');
    expect(err.hint).toBeTruthy();
    const { rows } = await c.query<{ n: number }>(`select count(*)::int as n from erp.items where item_id between 3001 and 3005`);
    expect(rows[0]!.n).toBe(0);
    expect(await eventCount(c, TENANT)).toBe(before);
    expect(await eventCount(c, 'plant_other')).toBe(0);
  });

  it('a bulk insert without an actor is refused with AT001 naming its first row', async () => {
    const err = await refusedTransaction(c, {}, (t) =>
      t.query(`insert into erp.items (item_id, tenant_id, lot, qty) select g, '${TENANT}', 'L', 1 from generate_series(4001, 4003) g`),
    );
    expect(err.code).toBe('AT001');
    expect(err.message).toContain('items 4001');
    expect(err.hint).toContain('audit_trail.actor_id');
  });

  it('an insert of no rows writes no event and needs no actor', async () => {
    const before = await eventCount(c, TENANT);
    await inTransaction(c, {}, (t) => t.query(`insert into erp.items select * from erp.items where false`));
    expect(await eventCount(c, TENANT)).toBe(before);
  });

  it('a bulk insert and row changes in one transaction are chained in the order they happened', async () => {
    const before = await eventCount(c, TENANT);
    await inTransaction(c, ACTOR, async (t) => {
      await t.query(`update erp.items set qty = 7 where item_id = 1001`);
      await t.query(`insert into erp.items (item_id, tenant_id, lot, qty) select g, '${TENANT}', 'L', 1 from generate_series(5001, 5003) g`);
      await t.query(`delete from erp.items where item_id = 5002`);
    });
    const events = (await eventsOf(c, TENANT)).slice(before);
    expect(events.map((e) => `${e.action} ${e.resource_id}`)).toEqual(['update 1001', 'create 5001', 'create 5002', 'create 5003', 'delete 5002']);
  });

  it('INSERT ... ON CONFLICT DO UPDATE: new rows are creates, conflicting rows updates of what changed', async () => {
    const before = await eventCount(c, TENANT);
    await inTransaction(c, ACTOR, (t) =>
      t.query(`insert into erp.items (item_id, tenant_id, lot, qty) values (1003, '${TENANT}', 'short', 33), (6001, '${TENANT}', 'new', 1)
               on conflict (item_id) do update set qty = excluded.qty`),
    );
    const events = (await eventsOf(c, TENANT)).slice(before);
    expect(events.map((e) => `${e.action} ${e.resource_id}`)).toEqual(['update 1003', 'create 6001']);
    expect(await changesOf(c, events[0]!.event_id)).toEqual([{ field: 'qty', before: '3.000', after: '33.000' }]);
  });

  it('a jsonb column added later moves inserts to the row trigger, which tells JSON null from SQL NULL', async () => {
    await c.query(`create table erp.labels (id integer primary key, tenant_id text not null, text text)`);
    await c.query(`select audit_trail.enable('erp.labels', '{"tenant_column": "tenant_id"}')`);
    expect(await triggersOf('erp.labels')).toEqual(['audit_trail_capture:row:update/delete', 'audit_trail_capture_inserts:statement:insert']);
    await c.query(`alter table erp.labels add column attrs jsonb`);
    expect(await triggersOf('erp.labels')).toEqual(['audit_trail_capture:row:insert/update/delete']);
    const before = await eventCount(c, TENANT);
    await inTransaction(c, ACTOR, (t) => t.query(`insert into erp.labels values (1, '${TENANT}', 'a', 'null'::jsonb), (2, '${TENANT}', 'b', null)`));
    const events = (await eventsOf(c, TENANT)).slice(before);
    expect(events.map((e) => e.resource_id)).toEqual(['1', '2']);
    expect((await changesOf(c, events[0]!.event_id)).find((f) => f.field === 'attrs')).toEqual({
      field: 'attrs',
      before: 'null',
      after: 'null',
      marks: '{"json_null": ["after"]}',
    });
    expect((await changesOf(c, events[1]!.event_id)).find((f) => f.field === 'attrs')).toEqual({ field: 'attrs', before: 'null', after: 'null' });
  });

  it('rows inserted into a partition directly and through the parent are both captured', async () => {
    const before = await eventCount(c, TENANT);
    await inTransaction(c, ACTOR, async (t) => {
      await t.query(`insert into erp.readings values (1, '${TENANT}', '2026-03-01'), (2, '${TENANT}', '2026-03-02')`);
      await t.query(`insert into erp.readings_2026 values (3, '${TENANT}', '2026-03-03')`);
    });
    const events = (await eventsOf(c, TENANT)).slice(before);
    expect(events.map((e) => e.resource_id)).toEqual(['1', '2', '3']);
  });
});
