/**
 * audit_trail.events is partitioned by month of ingested_at, with partitions
 * created at install for settings.months_ahead months. When the horizon comes
 * near (nobody ran audit_trail.create_partitions() for a year), the commit
 * step creates the missing months itself, so a write never fails for want of
 * a partition. Every partition refuses TRUNCATE and has forced row-level
 * security (a parent's policy does not guard direct partition access).
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { inTransaction, serverError, verify } from './support/trail.ts';

describe('partitions are created ahead and extended', () => {
  const db = useTestDatabase('partitions_are_created_ahead_and_extended');
  let c: pg.Client;

  async function partitions(): Promise<string[]> {
    const { rows } = await c.query<{ name: string }>(
      `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'audit_trail.events'::regclass order by 1`,
    );
    return rows.map((r) => r.name);
  }

  beforeAll(async () => {
    c = await db.connect();
    await c.query(`create table public.lots (id int primary key, plant text not null, status text)`);
    await c.query(`select audit_trail.enable('public.lots', '{"tenant_column": "plant"}')`);
  });

  it('the install created this month and the next 11, each guarded like the parent', async () => {
    const names = await partitions();
    expect(names).toHaveLength(12);
    const { rows } = await c.query<{ first: string }>(
      `select 'events_' || to_char(now() at time zone 'UTC', 'YYYY_MM') as first`,
    );
    expect(names[0]).toBe(rows[0]!.first);
    const guards = await c.query<{ name: string; rls: boolean; forced: boolean; truncate_guard: boolean }>(
      `select c.relname as name, c.relrowsecurity as rls, c.relforcerowsecurity as forced,
              exists (select from pg_trigger t where t.tgrelid = c.oid and t.tgname = 'events_refuse_truncate') as truncate_guard
         from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'audit_trail.events'::regclass`,
    );
    for (const g of guards.rows) expect(g).toMatchObject({ rls: true, forced: true, truncate_guard: true });
  });

  it('a partition refuses TRUNCATE even for a superuser (AT010)', async () => {
    const [first] = await partitions();
    expect((await serverError(c.query(`truncate audit_trail.${first}`))).code).toBe('AT010');
  });

  it('when the horizon is reached the commit step creates the missing months, and the write succeeds', async () => {
    const names = await partitions();
    // Pretend a year went by without maintenance: the future months are gone
    // and the horizon says nothing is covered beyond this moment.
    for (const name of names.slice(1)) await c.query(`drop table audit_trail.${name}`);
    await c.query(`update audit_trail.partition_horizon set covered_until = now() - interval '1 second'`);
    expect(await partitions()).toHaveLength(1);

    await inTransaction(c, { actor_id: 'usr_1' }, (t) => t.query(`insert into public.lots values (1, 'hd', 'open')`));

    expect(await partitions()).toEqual(names);
    const { rows } = await c.query<{ later: boolean }>(
      `select covered_until > now() + interval '300 days' as later from audit_trail.partition_horizon`,
    );
    expect(rows[0]!.later).toBe(true);
    expect(await verify(c, 'hd')).toMatchObject({ ok: true, events_checked: '1' });
  });
});
