/**
 * SPEC 1 and 2: an event is written in the same transaction as its change,
 * so a crash can lose neither without the other. Writers load one tenant,
 * the server is killed mid-load (`pg_ctl stop -m immediate`: no checkpoint,
 * crash recovery on the next start), and afterwards every acknowledged
 * commit is there, every row has its event, no event lacks its row, the
 * sequence numbers are gapless and the chain verifies and keeps growing.
 *
 * Where this runs: stopping the server would take it away from every other
 * test file running at the same time. So files named crash_*.test.ts form a
 * vitest project of their own (vitest.config.ts), and because each project
 * runs the global setup, that project gets a PostgreSQL server of its own:
 * the crash never touches the server the rest of the suite is using. When
 * the server comes from DATABASE_URL the harness cannot stop it, and this
 * test is skipped with a note saying so.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { pgCtl, serverControlUnavailable, useTestDatabase } from '../helpers/database.ts';
import { verify } from './support/trail.ts';

const TENANT = 'crash_tenant';
const WRITERS = 6;
/** Acknowledged commits to wait for before the crash (the load is running, not just starting). */
const COMMITS_BEFORE_CRASH = 400;
/** Upper bound of transactions per writer, so the loop ends even if the crash never came. */
const MAX_TRANSACTIONS_PER_WRITER = 5_000;

const unavailable = serverControlUnavailable();
if (unavailable !== null) console.warn(`[crash_loses_no_committed_event] skipped: ${unavailable}`);

interface WriterLog {
  /** Rows whose transaction's COMMIT was acknowledged: they must exist after the crash. */
  acknowledged: string[];
  /** Rows whose COMMIT was in flight when the server died: either row and event both exist, or neither. */
  inDoubt: string[];
  /** Errors other than losing the connection to the crash. */
  unexpected: string[];
}

describe('a crash loses no committed event', () => {
  const db = useTestDatabase('crash_loses_no_committed_event');

  it.skipIf(unavailable !== null)('killing the server mid-load keeps rows and events one-to-one and the chain whole', { timeout: 120_000 }, async () => {
    const setup = await db.connect();
    await setup.query(`
      create schema mes;
      create table mes.goods_receipts (id text primary key, tenant_id text not null, quantity numeric(12,3) not null);
      select audit_trail.enable('mes.goods_receipts', '{"tenant_column": "tenant_id", "resource_type": "goods_receipt"}');`);
    await setup.end();

    // Writer connections of our own: the crash kills them, and a pg.Client
    // whose connection dies emits 'error', which must be handled.
    const writers: pg.Client[] = [];
    for (let w = 0; w < WRITERS; w++) {
      const client = new pg.Client({ connectionString: db.url });
      client.on('error', () => undefined);
      await client.connect();
      writers.push(client);
    }

    let acknowledgedCommits = 0;
    let reachedThreshold: () => void = () => undefined;
    const threshold = new Promise<void>((resolve) => {
      reachedThreshold = resolve;
    });
    let crashed = false;

    const runWriter = async (client: pg.Client, w: number): Promise<WriterLog> => {
      const log: WriterLog = { acknowledged: [], inDoubt: [], unexpected: [] };
      for (let i = 0; i < MAX_TRANSACTIONS_PER_WRITER; i++) {
        const ids = [`w${w}-t${i}-a`, ...(i % 3 === 0 ? [`w${w}-t${i}-b`] : [])];
        const sql = [
          'begin',
          `select set_config('audit_trail.actor_id', 'usr_receiving_${w}', true)`,
          ...ids.map((id, k) => `insert into mes.goods_receipts values ('${id}', '${TENANT}', ${i}.${k}25)`),
          'commit',
        ].join(';\n');
        try {
          await client.query(sql);
          log.acknowledged.push(...ids);
          acknowledgedCommits++;
          if (acknowledgedCommits === COMMITS_BEFORE_CRASH) reachedThreshold();
        } catch (err) {
          log.inDoubt.push(...ids);
          if (!crashed) log.unexpected.push(`${(err as { code?: string }).code ?? '?'} ${(err as Error).message}`);
          break; // the connection is gone (or something unexpected happened): stop this writer
        }
      }
      return log;
    };

    const load = Promise.all(writers.map((client, w) => runWriter(client, w)));
    await Promise.race([threshold, load]);
    crashed = true;
    expect(await pgCtl('stop-immediate')).toBe(true);
    const logs = await load;
    expect(await pgCtl('start')).toBe(true);
    await Promise.all(writers.map((client) => client.end().catch(() => undefined)));

    expect(logs.flatMap((l) => l.unexpected)).toEqual([]);
    const acknowledged = logs.flatMap((l) => l.acknowledged);
    const inDoubt = new Set(logs.flatMap((l) => l.inDoubt));
    expect(acknowledged.length).toBeGreaterThanOrEqual(COMMITS_BEFORE_CRASH);
    expect(inDoubt.size).toBeGreaterThan(0); // the crash did hit transactions in flight

    const after = await db.connect();
    const rows = new Set((await after.query<{ id: string }>(`select id from mes.goods_receipts`)).rows.map((r) => r.id));
    const events = await after.query<{ resource_id: string; action: string }>(
      `select resource_id, action from audit_trail.events where tenant_id = $1`,
      [TENANT],
    );
    const created = new Set(events.rows.map((r) => r.resource_id));
    console.log(
      `[crash_loses_no_committed_event] crashed with ${acknowledged.length} rows acknowledged and ${inDoubt.size} in flight; ` +
        `after recovery ${rows.size} rows, ${events.rows.length} events`,
    );

    // Every acknowledged commit survived, with its event.
    expect(acknowledged.filter((id) => !rows.has(id))).toEqual([]);
    expect(acknowledged.filter((id) => !created.has(id))).toEqual([]);
    // Rows and events are one-to-one: no row without its event, no event without its row.
    expect(events.rows.every((r) => r.action === 'create')).toBe(true);
    expect(events.rows.length).toBe(created.size);
    expect([...rows].filter((id) => !created.has(id))).toEqual([]);
    expect([...created].filter((id) => !rows.has(id))).toEqual([]);
    // What exists beyond the acknowledged commits can only be the commits in flight at the crash.
    const acknowledgedSet = new Set(acknowledged);
    expect([...rows].filter((id) => !acknowledgedSet.has(id) && !inDoubt.has(id))).toEqual([]);

    // One gapless chain that verifies, with its head at the last event.
    const seq = await after.query<{ n: string; distinct_seq: string; min_seq: string; max_seq: string }>(
      `select count(*)::text as n, count(distinct sequence_no)::text as distinct_seq, min(sequence_no)::text as min_seq, max(sequence_no)::text as max_seq
         from audit_trail.events where tenant_id = $1`,
      [TENANT],
    );
    const n = String(rows.size);
    expect(seq.rows[0]).toEqual({ n, distinct_seq: n, min_seq: '1', max_seq: n });
    expect(await verify(after, TENANT)).toMatchObject({ ok: true, events_checked: n, problem: null });

    // And the chain goes on after recovery.
    await after.query(`begin; select set_config('audit_trail.actor_id', 'usr_receiving_0', true);
                       insert into mes.goods_receipts values ('after-restart', '${TENANT}', 1); commit`);
    const next = await after.query<{ sequence_no: string }>(
      `select sequence_no::text from audit_trail.events where tenant_id = $1 and resource_id = 'after-restart'`,
      [TENANT],
    );
    expect(next.rows).toEqual([{ sequence_no: String(rows.size + 1) }]);
    expect(await verify(after, TENANT)).toMatchObject({ ok: true, events_checked: String(rows.size + 1) });
  });
});
