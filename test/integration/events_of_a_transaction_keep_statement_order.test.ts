/**
 * The commit step builds the events of captured changes before it takes the
 * tenant's chain head and puts them back in the buffer (sql/05); events that
 * audit_trail.record() built wait there from the start. The chain must still
 * hold a transaction's events in the order of the statements that made them,
 * captured changes and record() interleaved, for every tenant of the
 * transaction, and a refused change must leave no event and hold no head.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { eventsOf, inTransaction, refusedTransaction, verify } from './support/trail.ts';

describe('events of a transaction keep statement order', () => {
  const db = useTestDatabase('events_of_a_transaction_keep_statement_order');
  let c: pg.Client;

  beforeAll(async () => {
    c = await db.connect();
    await c.query(`
      create table lots (lot_id text primary key, plant text not null, status text not null, qty integer not null);
      select audit_trail.enable('lots', '{"tenant_column": "plant", "reason_required": ["status"]}');
      insert into audit_trail.tenant_policies (tenant_id, reject_unknown_actors) values ('plant_b', true);
      insert into audit_trail.actors (tenant_id, actor_id, display_name) values ('plant_b', 'usr_b1', 'B. One');`);
  });

  it('interleaved captures and record() calls of two tenants are chained in statement order, per tenant', async () => {
    // (the policy and the actor above are configuration events of plant_b already)
    const earlier = (await eventsOf(c, 'plant_b')).length;
    expect((await eventsOf(c, 'plant_a')).length).toBe(0);
    await inTransaction(c, { actor_id: 'usr_b1', reason: 'Lot released after QC sample 118 passed' }, async (t) => {
      await t.query(`select audit_trail.record('read', 'batch_record', 'BR-1', tenant => 'plant_a')`);
      await t.query(`insert into lots values ('A-1', 'plant_a', 'open', 10)`);
      await t.query(`insert into lots values ('B-1', 'plant_b', 'open', 5)`);
      await t.query(`select audit_trail.record('execute', 'batch_record', 'BR-2', tenant => 'plant_b')`);
      await t.query(`update lots set qty = 11 where lot_id = 'A-1'`);
      await t.query(`select audit_trail.record('execute', 'batch_record', 'BR-3', tenant => 'plant_a')`);
      // An update that changes nothing writes no event and takes no place in the order.
      await t.query(`update lots set qty = qty where lot_id = 'B-1'`);
      await t.query(`update lots set status = 'released' where lot_id = 'B-1'`);
      await t.query(`insert into lots select 'A-' || g, 'plant_a', 'open', g from generate_series(2, 4) g`);
    });
    const order = (rows: Awaited<ReturnType<typeof eventsOf>>, after = 0): string[] =>
      rows.map((e) => `${Number(e.sequence_no) - after} ${e.action} ${e.resource_type} ${e.resource_id}`).slice(after);
    expect(order(await eventsOf(c, 'plant_a'))).toEqual([
      '1 read batch_record BR-1',
      '2 create lots A-1',
      '3 update lots A-1',
      '4 execute batch_record BR-3',
      '5 create lots A-2',
      '6 create lots A-3',
      '7 create lots A-4',
    ]);
    expect(order(await eventsOf(c, 'plant_b'), earlier)).toEqual([
      '1 create lots B-1',
      '2 execute batch_record BR-2',
      '3 update lots B-1',
    ]);
    for (const tenant of ['plant_a', 'plant_b']) expect((await verify(c, tenant)).ok).toBe(true);
  });

  it('a change refused at commit (unknown actor) leaves no event for any tenant and no head held', async () => {
    const before = { a: (await eventsOf(c, 'plant_a')).length, b: (await eventsOf(c, 'plant_b')).length };
    const err = await refusedTransaction(c, { actor_id: 'usr_stranger' }, async (t) => {
      await t.query(`select audit_trail.record('read', 'batch_record', 'BR-4', tenant => 'plant_a')`);
      await t.query(`update lots set qty = 6 where lot_id = 'B-1'`);
    });
    expect(err.code).toBe('AT002');
    expect((await eventsOf(c, 'plant_a')).length).toBe(before.a);
    expect((await eventsOf(c, 'plant_b')).length).toBe(before.b);
    // The heads are free: another transaction of both tenants commits at once.
    await c.query(`set lock_timeout = '2s'`);
    await inTransaction(c, { actor_id: 'usr_b1' }, async (t) => {
      await t.query(`update lots set qty = 7 where lot_id = 'B-1'`);
      await t.query(`update lots set qty = 12 where lot_id = 'A-1'`);
    });
    await c.query('reset lock_timeout');
    expect((await eventsOf(c, 'plant_b')).map((e) => e.sequence_no).slice(-1)).toEqual([String(before.b + 1)]);
    for (const tenant of ['plant_a', 'plant_b']) expect((await verify(c, tenant)).ok).toBe(true);
  });
});
