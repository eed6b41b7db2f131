/**
 * The commit step builds the events of captured changes before it takes the
 * tenant's chain head and puts them back in the buffer (sql/05); events that
 * audit_trail.record() built wait there from the start. The chain must still
 * hold a transaction's events in the order of the statements that made them,
 * captured changes and record() interleaved, for every tenant of the
 * transaction and when the commit step runs more than once; a refused change
 * must leave no event; and the actor registry and the tenant's rules, read
 * before the head is taken, are read again under its lock: a suspension or a
 * tightened rule chained while the transaction waited for the head refuses the
 * change (a suspension did before the split), or the record() call, a changed
 * rule that the change meets lets it through.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { eventsOf, inTransaction, refusedTransaction, verify } from './support/trail.ts';

describe('the commit step keeps statement order and checks the rules under the head', () => {
  const db = useTestDatabase('commit_step_order_and_rules');
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

  it('a change refused at commit (unknown actor) leaves no event for any tenant', async () => {
    const before = { a: (await eventsOf(c, 'plant_a')).length, b: (await eventsOf(c, 'plant_b')).length };
    const err = await refusedTransaction(c, { actor_id: 'usr_stranger' }, async (t) => {
      await t.query(`select audit_trail.record('read', 'batch_record', 'BR-4', tenant => 'plant_a')`);
      await t.query(`update lots set qty = 6 where lot_id = 'B-1'`);
    });
    expect(err.code).toBe('AT002');
    expect((await eventsOf(c, 'plant_a')).length).toBe(before.a);
    expect((await eventsOf(c, 'plant_b')).length).toBe(before.b);
    for (const tenant of ['plant_a', 'plant_b']) expect((await verify(c, tenant)).ok).toBe(true);
  });

  it('the commit step run early (SET CONSTRAINTS ALL IMMEDIATE), then more changes: one chain in statement order', async () => {
    const before = (await eventsOf(c, 'plant_a')).length;
    await inTransaction(c, { actor_id: 'usr_a1', reason: 'Lot A-10 opened for rework order RW-7' }, async (t) => {
      await t.query(`insert into lots values ('A-10', 'plant_a', 'open', 1)`);
      await t.query(`select audit_trail.record('read', 'batch_record', 'BR-10', tenant => 'plant_a')`);
      await t.query('set constraints all immediate');
      await t.query('set constraints all deferred');
      await t.query(`update lots set qty = 2 where lot_id = 'A-10'`);
      await t.query(`select audit_trail.record('read', 'batch_record', 'BR-11', tenant => 'plant_a')`);
      await t.query(`update lots set qty = 3 where lot_id = 'A-10'`);
    });
    const events = (await eventsOf(c, 'plant_a')).slice(before);
    expect(events.map((e) => `${Number(e.sequence_no) - before} ${e.action} ${e.resource_id}`)).toEqual([
      '1 create A-10', '2 read BR-10', '3 update A-10', '4 read BR-11', '5 update A-10',
    ]);
    expect((await verify(c, 'plant_a')).ok).toBe(true);
  });

  /**
   * T2 makes `change` (a configuration event of plant_b) and runs its commit step early, so it holds
   * plant_b's head; T1 (actor `actor`) makes `write` (by default it updates lot B-1) and commits, which
   * waits for that head; then T2
   * commits. Returns T1's outcome and the events of plant_b written since.
   */
  async function whileWaitingForTheHead(
    change: string,
    actor: string,
    write = `update lots set qty = qty + 1 where lot_id = 'B-1'`,
  ): Promise<{ outcome: string; events: string[] }> {
    const t1 = await db.connect();
    const t2 = await db.connect();
    const before = (await eventsOf(c, 'plant_b')).length;
    await t2.query('begin');
    await t2.query(change);
    await t2.query('set constraints all immediate');
    await t1.query('begin');
    await t1.query(`select set_config('audit_trail.actor_id', $1, true)`, [actor]);
    await t1.query(write);
    const pid = (await t1.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid;
    const commit = t1.query('commit').then(() => 'committed', (e: { code?: string }) => `refused ${e.code}`);
    let waiting = false;
    for (let i = 0; i < 200 && !waiting; i++) {
      const r = await c.query<{ w: string | null }>('select wait_event_type as w from pg_stat_activity where pid = $1', [pid]);
      waiting = r.rows[0]?.w === 'Lock';
      if (!waiting) await new Promise((done) => setTimeout(done, 25));
    }
    expect(waiting).toBe(true);
    await t2.query('commit');
    const outcome = await commit;
    const events = (await eventsOf(c, 'plant_b')).slice(before).map((e) => `${e.action} ${e.resource_type} ${e.resource_id} ${e.actor_id ?? ''}`.trim());
    expect((await verify(c, 'plant_b')).ok).toBe(true);
    return { outcome, events };
  }

  it('an actor suspended while the transaction waits for the head is refused at its commit (AT002)', async () => {
    // T1's change, built before T1 gets the head, must not be written after the suspension: the registry
    // is read again under the head's lock.
    await c.query(`insert into audit_trail.actors (tenant_id, actor_id, display_name) values ('plant_b', 'usr_b2', 'B. Two')`);
    const { outcome, events } = await whileWaitingForTheHead(
      `update audit_trail.actors set status = 'suspended' where tenant_id = 'plant_b' and actor_id = 'usr_b2'`, 'usr_b2');
    expect(outcome).toBe('refused AT002');
    expect(events).toEqual(['update actor usr_b2 postgres']);
  });

  it('an actor suspended after its record() call, while the transaction waits for the head, is refused too (AT002)', async () => {
    // record() checks the actor when it is called; the registry is read again under the lock for its events too.
    await c.query(`insert into audit_trail.actors (tenant_id, actor_id, display_name) values ('plant_b', 'usr_b3', 'B. Three')`);
    const { outcome, events } = await whileWaitingForTheHead(
      `update audit_trail.actors set status = 'suspended' where tenant_id = 'plant_b' and actor_id = 'usr_b3'`, 'usr_b3',
      `select audit_trail.record('read', 'batch_record', 'BR-30', tenant => 'plant_b')`);
    expect(outcome).toBe('refused AT002');
    expect(events).toEqual(['update actor usr_b3 postgres']);
  });

  it('a rule tightened while the transaction waits for the head applies to it (shared accounts refused: AT002)', async () => {
    // The tenant's rules are read again under the lock, and the events built again when they changed.
    await c.query(`insert into audit_trail.actors (tenant_id, actor_id, display_name, is_shared_account) values ('plant_b', 'line_b_terminal', 'Line B terminal', true)`);
    const { outcome, events } = await whileWaitingForTheHead(
      `update audit_trail.tenant_policies set reject_shared_actors = true where tenant_id = 'plant_b'`, 'line_b_terminal');
    expect(outcome).toBe('refused AT002');
    expect(events).toEqual(['update tenant_policy plant_b postgres']);
  });

  it('a rule changed while the transaction waits for the head, which its change meets: committed after the change of rule (the events are built a second time, under the lock; rules only refuse, so the result is the same)', async () => {
    const { outcome, events } = await whileWaitingForTheHead(
      `update audit_trail.tenant_policies set reason_min_length = 12 where tenant_id = 'plant_b'`, 'usr_b1');
    expect(outcome).toBe('committed');
    expect(events).toEqual(['update tenant_policy plant_b postgres', 'update lots B-1 usr_b1']);
  });
});
