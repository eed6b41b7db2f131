/**
 * The owner of an audited table cannot switch capture off behind the trail's
 * back: dropping or disabling the capture or TRUNCATE guard triggers is
 * refused (AT009) while auditing is enabled. Turning capture off goes through
 * audit_trail.disable(table, reason), which needs a reason with evidence and
 * records who and why in the _system chain. Needs the DDL event trigger, which
 * a superuser install creates (the test harness installs as superuser).
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { eventCount, inTransaction, serverError, verify } from './support/trail.ts';

describe('capture cannot be removed silently', () => {
  const db = useTestDatabase('capture_cannot_be_removed_silently');
  let c: pg.Client;

  beforeAll(async () => {
    c = await db.connect();
    await c.query(`create table public.batches (id int primary key, plant text not null, status text)`);
    await c.query(`select audit_trail.enable('public.batches', '{"tenant_column": "plant"}')`);
  });

  it.each([
    ['drop the capture trigger', 'drop trigger audit_trail_capture on public.batches'],
    ['drop the TRUNCATE guard', 'drop trigger audit_trail_refuse_truncate on public.batches'],
    ['drop the capture trigger of inserts', 'drop trigger audit_trail_capture_inserts on public.batches'],
    ['disable the capture trigger', 'alter table public.batches disable trigger audit_trail_capture'],
    ['disable the capture trigger of inserts', 'alter table public.batches disable trigger audit_trail_capture_inserts'],
    ['disable all triggers', 'alter table public.batches disable trigger all'],
    ['disable user triggers', 'alter table public.batches disable trigger user'],
  ])('%s: refused with AT009 and a hint naming audit_trail.disable', async (_label, sql) => {
    const err = await serverError(c.query(sql));
    expect(err.code).toBe('AT009');
    expect(err.hint).toContain('audit_trail.disable');
    const { rows } = await c.query<{ n: number }>(
      `select count(*)::int as n from pg_trigger where tgrelid = 'public.batches'::regclass and tgenabled = 'O'
          and tgname in ('audit_trail_capture', 'audit_trail_capture_inserts', 'audit_trail_refuse_truncate')`,
    );
    expect(rows[0]!.n).toBe(3);
  });

  it('capture still works after the refused attempts', async () => {
    await inTransaction(c, { actor_id: 'usr_1' }, (t) => t.query(`insert into public.batches values (1, 'hd', 'open')`));
    expect(await eventCount(c, 'hd')).toBe(1);
  });

  it('an ALTER TABLE that renames a configured column is refused until the options name the new column', async () => {
    const err = await serverError(c.query('alter table public.batches rename column plant to site'));
    expect(err.code).toBe('42703');
    expect(err.hint).toContain('audit_trail.enable');
  });

  it('audit_trail.disable with a weak reason is refused and capture stays on', async () => {
    const err = await serverError(c.query(`select audit_trail.disable('public.batches', 'ok')`));
    expect(err.code).toBe('AT004');
    const { rows } = await c.query<{ intact: boolean }>(`select audit_trail.capture_triggers_intact('public.batches'::regclass) as intact`);
    expect(rows[0]!.intact).toBe(true);
  });

  it('audit_trail.disable with a reason removes the triggers and records who and why', async () => {
    const systemBefore = await eventCount(c, '_system');
    await c.query(`select audit_trail.disable('public.batches', 'Table retired: batches moved to the new MES (change request CR-2291)')`);
    const { rows } = await c.query<{ n: number }>(
      `select count(*)::int as n from pg_trigger where tgrelid = 'public.batches'::regclass and tgname like 'audit_trail%'`,
    );
    expect(rows[0]!.n).toBe(0);
    expect(await eventCount(c, '_system')).toBe(systemBefore + 1);
    const last = await c.query<{ reason: string; resource_id: string; actor_id: string }>(
      `select reason, resource_id, actor_id from audit_trail.events where tenant_id = '_system' order by sequence_no desc limit 1`,
    );
    expect(last.rows[0]).toEqual({
      reason: 'Table retired: batches moved to the new MES (change request CR-2291)',
      resource_id: 'public.batches',
      actor_id: 'postgres',
    });
    expect(await verify(c, '_system')).toMatchObject({ ok: true });
    // Once disabled, the owner may drop whatever it likes.
    await c.query('alter table public.batches rename column plant to site');
  });
});
