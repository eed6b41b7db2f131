/**
 * A session caches the plans of the commit step and of the head guard the
 * first time it commits an audited change (generic plans, sql/05 and sql/09),
 * and keeps them until something invalidates them. If the trail was empty
 * then, the planner saw empty tables and chose sequential scans: every later
 * commit of that session (a pooled connection lives for days) read the whole
 * month's events partition to check the head's event, and the whole actor
 * registry, so capture got slower as the trail grew, until autovacuum's
 * ANALYZE happened to invalidate the plans. (A table that was never vacuumed
 * is assumed to have 10 pages, which hid this; a VACUUM ANALYZE of the new
 * installation, as a DBA runs one, made the statistics say "empty".) The look-ups must use their
 * indexes whatever the tables held when they were planned.
 *
 * Measured with the server's own counters (pg_stat_user_tables.seq_tup_read),
 * not with timings. The fix (enable_seqscan = off on the functions) needs
 * jit = off beside it, which the second test pins.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { eventCount, inTransaction, verify } from './support/trail.ts';

const TENANT = 'plant_growing';
const ACTOR = 'usr_operator_7';
const COMMITS = 12;

describe('commit look-ups use indexes however small the trail was when a session planned them', () => {
  const db = useTestDatabase('commit_look_ups_use_indexes');
  let pooled: pg.Client;
  let other: pg.Client;

  /** Rows read by sequential scans of the trail's tables, as the statistics system has them now. */
  async function sequentialReads(c: pg.Client): Promise<Record<string, number>> {
    await c.query('select pg_stat_clear_snapshot()');
    const { rows } = await c.query<{ t: string; n: string }>(
      `select case when relname like 'events%' then 'events' else relname end as t, sum(seq_tup_read) as n
         from pg_stat_user_tables
        where schemaname = 'audit_trail' and (relname like 'events%' or relname in ('actors', 'chain_heads'))
        group by 1`,
    );
    return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
  }

  /** Makes the session's counters visible to the others (PostgreSQL 15+ reports them in batches). */
  async function flushStatistics(c: pg.Client): Promise<void> {
    await c.query('select pg_stat_force_next_flush()');
    await c.query('select 1');
  }

  beforeAll(async () => {
    const setup = await db.connect();
    await setup.query(`
      create table machines (machine_id integer primary key, state text not null);
      insert into machines select g, 'idle' from generate_series(1, 20000) g;
      select audit_trail.enable('machines', '{"tenant": "${TENANT}"}');`);
    // What a DBA does after an installation, and autovacuum after a quiet spell: the statistics
    // now say the trail is (almost) empty, and the planner believes them.
    await setup.query('vacuum analyze');
    await setup.query(`
      -- the registry is consulted at every commit once the tenant rejects unknown actors
      insert into audit_trail.tenant_policies (tenant_id, reject_unknown_actors) values ('${TENANT}', true);
      insert into audit_trail.actors (tenant_id, actor_id, display_name) values ('${TENANT}', '${ACTOR}', 'Operator Seven');`);
    await setup.end();
    pooled = await db.connect();
    other = await db.connect();
  });

  afterAll(async () => {
    await pooled?.end();
    await other?.end();
  });

  it('a session that first committed on a tiny trail does not scan it at later commits', async () => {
    // The pooled session commits its first change while the trail holds a handful of events.
    await inTransaction(pooled, { actor_id: ACTOR }, (t) => t.query(`update machines set state = 'running' where machine_id = 1`));

    // Meanwhile the trail and the registry grow (another session: an import, and 2,000 more operators).
    await inTransaction(other, { actor_id: ACTOR, tenant_id: TENANT }, (t) =>
      t.query(`update machines set state = 'setup' where machine_id between 2 and 15001`),
    );
    await other.query(`
      insert into audit_trail.actors (tenant_id, actor_id, display_name)
      select '${TENANT}', 'usr_' || g, 'Operator ' || g from generate_series(1000, 2999) g`);
    expect(await eventCount(other, TENANT)).toBeGreaterThan(15000);

    await flushStatistics(pooled);
    const before = await sequentialReads(other);
    for (let i = 0; i < COMMITS; i += 1) {
      await inTransaction(pooled, { actor_id: ACTOR }, (t) =>
        t.query(`update machines set state = $1 where machine_id = $2`, [`state ${i}`, 16000 + i]),
      );
    }
    await flushStatistics(pooled);
    const after = await sequentialReads(other);

    // A sequential scan per commit would have read about 15,000 events and 2,000 actors each time.
    expect(after['events']! - before['events']!).toBe(0);
    expect(after['actors']! - before['actors']!).toBe(0);
    // The head rows: a look-up by tenant, not a scan of every tenant's head.
    expect(after['chain_heads']! - before['chain_heads']!).toBe(0);
    expect(await verify(other, TENANT)).toMatchObject({ ok: true });
  });

  it('the functions that hold these look-ups keep them on their indexes and out of JIT, whatever the session sets', async () => {
    // With sequential scans off the planner prices the buffer's scan so high that every
    // statement of the commit step passes the JIT thresholds; where the server has JIT
    // (Debian's PostgreSQL 15 of the suite) each was compiled, about 0.6 s a statement.
    // The session's own settings do not reach them: the functions pin both.
    await other.query('set enable_seqscan = on');
    await other.query('set jit = on');
    const { rows } = await other.query<{ name: string; config: string[] | null }>(
      `select p.oid::regprocedure::text as name, p.proconfig as config
         from pg_proc p
        where p.oid in ('audit_trail.flush_pending_events()'::regprocedure, 'audit_trail.refuse_chain_head_rewind()'::regprocedure,
                        (select oid from pg_proc where proname = 'record' and pronamespace = 'audit_trail'::regnamespace))
        order by 1`,
    );
    expect(rows.map((r) => r.name)).toEqual([
      'audit_trail.flush_pending_events()',
      expect.stringMatching(/^audit_trail\.record\(/),
      'audit_trail.refuse_chain_head_rewind()',
    ]);
    for (const r of rows) expect(r.config, r.name).toEqual(expect.arrayContaining(['enable_seqscan=off', 'jit=off']));
    // And a commit from such a session still writes a verifiable chain.
    await inTransaction(other, { actor_id: ACTOR, tenant_id: TENANT }, (t) => t.query(`update machines set state = 'jit' where machine_id = 19999`));
    expect(await verify(other, TENANT)).toMatchObject({ ok: true });
  });
});
