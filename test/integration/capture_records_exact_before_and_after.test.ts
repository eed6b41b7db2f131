/**
 * Capture (SPEC 1): every write to an audited table becomes one event whose
 * `changes` hold the exact before and after values, whatever the column's
 * type, the identifiers' case, the session's TimeZone or later ALTER TABLEs.
 * Values are compared as PostgreSQL's jsonb text, never through JSON.parse,
 * so numeric scale and float specials are checked byte for byte.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { changesOf, eventCount, eventsOf, inTransaction, refusedTransaction, verify, type ChangeText } from './support/trail.ts';

const TENANT = 'plant_hd';
const ACTOR = { actor_id: 'usr_qa_7' };
const LINES = '"Plant HD"."OrderLines"';
const DOWNTIME = '"Plant HD"."Downtime Records"';

/** Every captured column of "OrderLines" (cache_blob is excluded), in the byte order changes are sorted by. */
const LINE_FIELDS = ['LineNo', 'Plant', 'StartedAt', 'attrs', 'deleted_at', 'note', 'operator_pin', 'photo', 'qty', 'ratio', 'status', 'tags', 'tenant', 'weight'];

describe('capture records the exact before and after of every change', () => {
  const db = useTestDatabase('capture_records_exact_before_and_after');
  let c: pg.Client;
  let redactionKey: Buffer;

  /** HMAC-SHA256 that redact_columns must give for a value, keyed like the database. */
  const hmacOf = (jsonText: string): string => `hmac-sha256:${createHmac('sha256', redactionKey).update(jsonText, 'utf8').digest('hex')}`;

  async function newEvents(since: number): Promise<Awaited<ReturnType<typeof eventsOf>>> {
    return (await eventsOf(c, TENANT)).filter((e) => Number(e.sequence_no) > since);
  }

  async function lastSeq(): Promise<number> {
    return eventCount(c, TENANT);
  }

  beforeAll(async () => {
    c = await db.connect();
    // A session far from UTC: the trail must record +00:00 anyway.
    await c.query(`set timezone = 'America/St_Johns'`);
    await c.query(`
      create schema "Plant HD";
      create type "Plant HD"."Line Status" as enum ('planned', 'running', 'deleted');
      create domain "Plant HD".weight_kg as numeric(12,3) check (value >= 0);
      create table ${LINES} (
        "Plant" text not null,
        "LineNo" integer not null,
        tenant text not null,
        qty numeric(12,3),
        "StartedAt" timestamptz,
        tags text[],
        attrs jsonb,
        photo bytea,
        status "Plant HD"."Line Status",
        weight "Plant HD".weight_kg,
        ratio double precision,
        note text,
        operator_pin text,
        cache_blob text,
        deleted_at timestamptz,
        primary key ("Plant", "LineNo")
      );
      create table ${DOWNTIME} (
        id integer primary key,
        tenant text not null,
        status "Plant HD"."Line Status" not null default 'planned',
        minutes integer not null
      );`);
    const { rows } = await c.query<{ options: Record<string, unknown> }>(
      `select audit_trail.enable($1::regclass, $2) as options`,
      [
        LINES,
        {
          tenant_column: 'tenant',
          resource_type: 'order_line',
          parent: { column: 'Plant', resource_type: 'plant' },
          soft_delete: { column: 'deleted_at' },
          redact_columns: ['operator_pin'],
          exclude_columns: ['cache_blob'],
        },
      ],
    );
    expect(rows[0]?.options).toMatchObject({ key_columns: ['Plant', 'LineNo'], hard_delete: 'audit' });
    await c.query(`select audit_trail.enable($1::regclass, $2)`, [
      DOWNTIME,
      { tenant_column: 'tenant', resource_type: 'downtime', soft_delete: { column: 'status', deleted_value: 'deleted' }, hard_delete: 'soft' },
    ]);
    redactionKey = (await c.query<{ k: Buffer }>('select redaction_key as k from audit_trail.settings')).rows[0]!.k;
  });

  it('INSERT is a create with every captured column, exact values, before null', async () => {
    await inTransaction(c, ACTOR, async (t) => {
      await t.query(`
        insert into ${LINES} ("Plant", "LineNo", tenant, qty, "StartedAt", tags, attrs, photo, status, weight, ratio, note, operator_pin, cache_blob)
        values ('HD', 1, '${TENANT}', 1234.5, '2026-04-19 10:42:17.382519+02', array['a,b', 'say "hi"', null],
                '{"b": 1, "a": [1.10, null]}', '\\x00ff10', 'running', 12.5, 'NaN', null, '4711', 'cached'),
               ('HD', 2, '${TENANT}', 0.001, 'infinity', '{}', 'null'::jsonb, null, 'planned', null, 'Infinity', 'ü € 😀', '4711', null),
               ('HD', 3, '${TENANT}', -99999999.999, '1999-12-31 23:59:59.999999-12', null, null, '\\x', null, 0, '-Infinity', '', '0815', null)`);
    });
    const events = await eventsOf(c, TENANT);
    expect(events.map((e) => [e.sequence_no, e.action, e.resource_type, e.resource_id, e.parent_type, e.parent_id, e.actor_id])).toEqual([
      ['1', 'create', 'order_line', '["HD", 1]', 'plant', 'HD', 'usr_qa_7'],
      ['2', 'create', 'order_line', '["HD", 2]', 'plant', 'HD', 'usr_qa_7'],
      ['3', 'create', 'order_line', '["HD", 3]', 'plant', 'HD', 'usr_qa_7'],
    ]);
    const created = (after: Record<string, string>, marks: Record<string, string> = {}): ChangeText[] =>
      LINE_FIELDS.map((field) => ({ field, before: 'null', after: after[field]!, ...(marks[field] ? { marks: marks[field] } : {}) }));

    expect(await changesOf(c, events[0]!.event_id)).toEqual(
      created(
        {
          LineNo: '1',
          Plant: '"HD"',
          StartedAt: '"2026-04-19T08:42:17.382519+00:00"',
          attrs: '{"a": [1.10, null], "b": 1}',
          deleted_at: 'null',
          note: 'null',
          operator_pin: JSON.stringify(hmacOf('"4711"')),
          photo: '"\\\\x00ff10"',
          qty: '1234.500',
          ratio: '"NaN"',
          status: '"running"',
          tags: '["a,b", "say \\"hi\\"", null]',
          tenant: '"plant_hd"',
          weight: '12.500',
        },
        { operator_pin: '{"redacted": true}' },
      ),
    );
    expect(await changesOf(c, events[1]!.event_id)).toEqual(
      created(
        {
          LineNo: '2',
          Plant: '"HD"',
          StartedAt: '"infinity"',
          attrs: 'null',
          deleted_at: 'null',
          note: '"ü € 😀"',
          operator_pin: JSON.stringify(hmacOf('"4711"')),
          photo: 'null',
          qty: '0.001',
          ratio: '"Infinity"',
          status: '"planned"',
          tags: '[]',
          tenant: '"plant_hd"',
          weight: 'null',
        },
        // attrs holds the JSON value null, not SQL NULL: the change says so.
        { attrs: '{"json_null": ["after"]}', operator_pin: '{"redacted": true}' },
      ),
    );
    expect(await changesOf(c, events[2]!.event_id)).toEqual(
      created(
        {
          LineNo: '3',
          Plant: '"HD"',
          StartedAt: '"2000-01-01T11:59:59.999999+00:00"',
          attrs: 'null',
          deleted_at: 'null',
          note: '""',
          operator_pin: JSON.stringify(hmacOf('"0815"')),
          photo: '"\\\\x"',
          qty: '-99999999.999',
          ratio: '"-Infinity"',
          status: 'null',
          tags: 'null',
          tenant: '"plant_hd"',
          weight: '0.000',
        },
        { operator_pin: '{"redacted": true}' },
      ),
    );
    // Equal secrets give equal digests, different ones differ, and the secret itself is nowhere in the trail.
    const { rows } = await c.query<{ n: string }>(`select count(*)::text as n from audit_trail.events where changes::text like '%4711%' or changes::text like '%0815%'`);
    expect(rows[0]?.n).toBe('0');
    expect((await verify(c, TENANT)).ok).toBe(true);
  });

  it('UPDATE records only the changed fields with exact before and after; excluded columns never appear', async () => {
    const since = await lastSeq();
    await inTransaction(c, ACTOR, async (t) => {
      await t.query(`
        update ${LINES}
           set qty = 1234.501, tags = array_append(tags, 'c'), attrs = 'null'::jsonb, note = 'first note',
               cache_blob = 'changed', ratio = 0.1, "StartedAt" = '2026-04-19 08:42:17.382519+00'
         where "Plant" = 'HD' and "LineNo" = 1`);
    });
    const events = await newEvents(since);
    expect(events.map((e) => [e.action, e.resource_id])).toEqual([['update', '["HD", 1]']]);
    // StartedAt was set to the same instant written another way: not a change.
    expect(await changesOf(c, events[0]!.event_id)).toEqual([
      { field: 'attrs', before: '{"a": [1.10, null], "b": 1}', after: 'null', marks: '{"json_null": ["after"]}' },
      { field: 'note', before: 'null', after: '"first note"' },
      { field: 'qty', before: '1234.500', after: '1234.501' },
      { field: 'ratio', before: '"NaN"', after: '0.1' },
      { field: 'tags', before: '["a,b", "say \\"hi\\"", null]', after: '["a,b", "say \\"hi\\"", null, "c"]' },
    ]);
  });

  it('an UPDATE that changes nothing captured writes no event', async () => {
    const since = await lastSeq();
    await inTransaction(c, ACTOR, async (t) => {
      const same = await t.query(`update ${LINES} set qty = qty, note = note, attrs = attrs, tags = tags where "Plant" = 'HD'`);
      expect(same.rowCount).toBe(3);
      // Only the excluded column changes.
      const excluded = await t.query(`update ${LINES} set cache_blob = 'changed again' where "LineNo" = 1`);
      expect(excluded.rowCount).toBe(1);
      // numeric(12,3) stores 1234.5010 as 1234.501: no change.
      await t.query(`update ${LINES} set qty = 1234.5010 where "LineNo" = 1`);
    });
    expect(await lastSeq()).toBe(since);
  });

  it('JSON null and SQL NULL are different values: moving between them is a change', async () => {
    // Row 2's attrs holds JSON null; setting it to SQL NULL changes the row.
    const since = await lastSeq();
    await inTransaction(c, ACTOR, (t) => t.query(`update ${LINES} set attrs = null where "LineNo" = 2`));
    const events = await newEvents(since);
    expect(events.map((e) => [e.action, e.resource_id])).toEqual([['update', '["HD", 2]']]);
    expect(await changesOf(c, events[0]!.event_id)).toEqual([{ field: 'attrs', before: 'null', after: 'null', marks: '{"json_null": ["before"]}' }]);
  });

  it('a soft delete (deleted_at becomes non-null) is a delete event with the complete before and after state', async () => {
    const since = await lastSeq();
    await inTransaction(c, ACTOR, (t) => t.query(`update ${LINES} set deleted_at = '2026-05-01 02:30:00+02:30' where "LineNo" = 3`));
    const events = await newEvents(since);
    expect(events.map((e) => [e.action, e.resource_id])).toEqual([['delete', '["HD", 3]']]);
    const changes = await changesOf(c, events[0]!.event_id);
    expect(changes.map((x) => x.field)).toEqual(LINE_FIELDS);
    for (const change of changes) {
      if (change.field === 'deleted_at') expect(change).toEqual({ field: 'deleted_at', before: 'null', after: '"2026-05-01T00:00:00+00:00"' });
      else expect(change.after, change.field).toBe(change.before);
    }
    expect(changes.find((x) => x.field === 'qty')).toEqual({ field: 'qty', before: '-99999999.999', after: '-99999999.999' });
    expect(changes.find((x) => x.field === 'ratio')).toEqual({ field: 'ratio', before: '"-Infinity"', after: '"-Infinity"' });
  });

  it('a hard DELETE under hard_delete "audit" is a delete event with every before value and after null', async () => {
    const since = await lastSeq();
    await inTransaction(c, ACTOR, (t) => t.query(`delete from ${LINES} where "LineNo" = 2`));
    const events = await newEvents(since);
    expect(events.map((e) => [e.action, e.resource_id])).toEqual([['delete', '["HD", 2]']]);
    expect(await changesOf(c, events[0]!.event_id)).toEqual([
      { field: 'LineNo', before: '2', after: 'null' },
      { field: 'Plant', before: '"HD"', after: 'null' },
      { field: 'StartedAt', before: '"infinity"', after: 'null' },
      { field: 'attrs', before: 'null', after: 'null' },
      { field: 'deleted_at', before: 'null', after: 'null' },
      { field: 'note', before: '"ü € 😀"', after: 'null' },
      { field: 'operator_pin', before: JSON.stringify(hmacOf('"4711"')), after: 'null', marks: '{"redacted": true}' },
      { field: 'photo', before: 'null', after: 'null' },
      { field: 'qty', before: '0.001', after: 'null' },
      { field: 'ratio', before: '"Infinity"', after: 'null' },
      { field: 'status', before: '"planned"', after: 'null' },
      { field: 'tags', before: '[]', after: 'null' },
      { field: 'tenant', before: '"plant_hd"', after: 'null' },
      { field: 'weight', before: 'null', after: 'null' },
    ]);
  });

  it('a soft delete by status = deleted_value, and a DELETE under hard_delete "soft", are delete events and keep the row', async () => {
    await inTransaction(c, ACTOR, (t) => t.query(`insert into ${DOWNTIME} (id, tenant, minutes) values (1, '${TENANT}', 15), (2, '${TENANT}', 30), (3, '${TENANT}', 45)`));
    const since = await lastSeq();
    await inTransaction(c, ACTOR, async (t) => {
      await t.query(`update ${DOWNTIME} set status = 'running' where id = 1`);
      await t.query(`update ${DOWNTIME} set status = 'deleted' where id = 1`);
      const deleted = await t.query(`delete from ${DOWNTIME} where id = 2`);
      expect(deleted.rowCount).toBe(0); // turned into the soft delete
    });
    const events = await newEvents(since);
    expect(events.map((e) => [e.action, e.resource_type, e.resource_id])).toEqual([
      ['update', 'downtime', '1'],
      ['delete', 'downtime', '1'],
      ['delete', 'downtime', '2'],
    ]);
    expect(await changesOf(c, events[0]!.event_id)).toEqual([{ field: 'status', before: '"planned"', after: '"running"' }]);
    expect(await changesOf(c, events[1]!.event_id)).toEqual([
      { field: 'id', before: '1', after: '1' },
      { field: 'minutes', before: '15', after: '15' },
      { field: 'status', before: '"running"', after: '"deleted"' },
      { field: 'tenant', before: '"plant_hd"', after: '"plant_hd"' },
    ]);
    expect(await changesOf(c, events[2]!.event_id)).toEqual([
      { field: 'id', before: '2', after: '2' },
      { field: 'minutes', before: '30', after: '30' },
      { field: 'status', before: '"planned"', after: '"deleted"' },
      { field: 'tenant', before: '"plant_hd"', after: '"plant_hd"' },
    ]);
    const rows = await c.query(`select id, status::text from ${DOWNTIME} order by id`);
    expect(rows.rows).toEqual([
      { id: 1, status: 'deleted' },
      { id: 2, status: 'deleted' },
      { id: 3, status: 'planned' },
    ]);
  });

  it('a DELETE under hard_delete "forbid" is refused (AT007) and leaves the row and the trail as they were', async () => {
    await c.query(`select audit_trail.enable($1::regclass, $2)`, [
      DOWNTIME,
      { tenant_column: 'tenant', resource_type: 'downtime', soft_delete: { column: 'status', deleted_value: 'deleted' }, hard_delete: 'forbid' },
    ]);
    const since = await lastSeq();
    const err = await refusedTransaction(c, ACTOR, (t) => t.query(`delete from ${DOWNTIME} where id = 3`));
    expect(err.code).toBe('AT007');
    expect(err.hint).toMatch(/status/);
    expect((await c.query(`select count(*)::int as n from ${DOWNTIME} where id = 3`)).rows[0].n).toBe(1);
    expect(await lastSeq()).toBe(since);
  });

  it('TRUNCATE of an audited table is refused (AT008) with a hint', async () => {
    const before = (await c.query(`select count(*)::int as n from ${LINES}`)).rows[0].n as number;
    const since = await lastSeq();
    const err = await refusedTransaction(c, ACTOR, (t) => t.query(`truncate ${LINES}`));
    expect(err.code).toBe('AT008');
    expect(err.hint ?? '').not.toBe('');
    expect((await c.query(`select count(*)::int as n from ${LINES}`)).rows[0].n).toBe(before);
    expect(await lastSeq()).toBe(since);
  });

  it('a value larger than max_inline_bytes is stored as its SHA-256 and length (bytea: of the raw bytes)', async () => {
    const photo = randomBytes(10_000);
    const since = await lastSeq();
    await inTransaction(c, ACTOR, (t) =>
      t.query(`insert into ${LINES} ("Plant", "LineNo", tenant, photo, note) values ('HD', 5, $1, $2, 'with photo')`, [TENANT, photo]),
    );
    const events = await newEvents(since);
    expect(events).toHaveLength(1);
    const photoChange = (await changesOf(c, events[0]!.event_id)).find((x) => x.field === 'photo');
    expect(photoChange?.before).toBe('null');
    expect(JSON.parse(photoChange!.after)).toEqual({ sha256: createHash('sha256').update(photo).digest('hex'), bytes: 10_000, of: 'bytea' });
    expect(photoChange?.marks).toBe('{"stored_as_digest": ["after"]}');
    // The other values of that row stay inline.
    expect((await changesOf(c, events[0]!.event_id)).find((x) => x.field === 'note')).toEqual({ field: 'note', before: 'null', after: '"with photo"' });
  });

  it('after ALTER TABLE add, drop and rename column, capture goes on and records the new shape', async () => {
    await c.query(`
      alter table ${LINES} add column "Batch Size" integer;
      alter table ${LINES} drop column note;
      alter table ${LINES} rename column ratio to "Ratio"`);
    const since = await lastSeq();
    await inTransaction(c, ACTOR, async (t) => {
      await t.query(`insert into ${LINES} ("Plant", "LineNo", tenant, qty, "Batch Size", "Ratio") values ('HD', 6, $1, 7, 250, 2.5)`, [TENANT]);
      await t.query(`update ${LINES} set "Batch Size" = 100, "Ratio" = 1e-7 where "LineNo" = 1`);
    });
    const events = await newEvents(since);
    expect(events.map((e) => [e.action, e.resource_id])).toEqual([
      ['create', '["HD", 6]'],
      ['update', '["HD", 1]'],
    ]);
    const created = await changesOf(c, events[0]!.event_id);
    expect(created.map((x) => x.field)).toEqual(['Batch Size', 'LineNo', 'Plant', 'Ratio', 'StartedAt', 'attrs', 'deleted_at', 'operator_pin', 'photo', 'qty', 'status', 'tags', 'tenant', 'weight']);
    expect(created.filter((x) => ['Batch Size', 'Ratio', 'qty'].includes(x.field))).toEqual([
      { field: 'Batch Size', before: 'null', after: '250' },
      { field: 'Ratio', before: 'null', after: '2.5' },
      { field: 'qty', before: 'null', after: '7.000' },
    ]);
    expect(await changesOf(c, events[1]!.event_id)).toEqual([
      { field: 'Batch Size', before: 'null', after: '100' },
      { field: 'Ratio', before: '0.1', after: '0.0000001' },
    ]);
    expect((await verify(c, TENANT)).ok).toBe(true);
  });

  it('a bytea column added after enable is digested as bytea when large', async () => {
    await c.query(`alter table ${LINES} add column scan bytea`);
    const scan = randomBytes(8_000);
    const since = await lastSeq();
    await inTransaction(c, ACTOR, (t) => t.query(`update ${LINES} set scan = $1 where "LineNo" = 6`, [scan]));
    const events = await newEvents(since);
    expect(events).toHaveLength(1);
    const changes = await changesOf(c, events[0]!.event_id);
    expect(changes.map((x) => x.field)).toEqual(['scan']);
    expect(JSON.parse(changes[0]!.after)).toEqual({ sha256: createHash('sha256').update(scan).digest('hex'), bytes: 8_000, of: 'bytea' });
    expect(changes[0]!.marks).toBe('{"stored_as_digest": ["after"]}');
  });

  it('a jsonb column renamed after enable still tells JSON null from SQL NULL', async () => {
    await inTransaction(c, ACTOR, (t) => t.query(`update ${LINES} set attrs = '[1]' where "LineNo" = 6`));
    await c.query(`alter table ${LINES} rename column attrs to "Attributes"`);
    const since = await lastSeq();
    await inTransaction(c, ACTOR, (t) => t.query(`update ${LINES} set "Attributes" = 'null'::jsonb where "LineNo" = 6`));
    const events = await newEvents(since);
    expect(events).toHaveLength(1);
    expect(await changesOf(c, events[0]!.event_id)).toEqual([{ field: 'Attributes', before: '[1]', after: 'null', marks: '{"json_null": ["after"]}' }]);
  });

  it('every event of the file is on one gapless chain that verifies', async () => {
    const events = await eventsOf(c, TENANT);
    expect(events.map((e) => Number(e.sequence_no))).toEqual(events.map((_, i) => i + 1));
    expect(await verify(c, TENANT)).toMatchObject({ ok: true, events_checked: String(events.length), problem: null });
  });
});
