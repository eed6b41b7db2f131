/**
 * Append-only, database layer (SPEC 3): no role may UPDATE, DELETE or
 * TRUNCATE the trail. Roles without the privilege get 42501; the owner, who
 * holds every privilege on its tables, and a superuser are stopped by the
 * guard triggers with AT010. Partitions are attacked directly too: a parent's
 * grants and triggers are not a given for its partitions.
 *
 * Each attempt runs in a transaction that is rolled back, so a statement that
 * wrongly succeeds fails its own assertion and changes nothing for the next.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectAs, useTestDatabase } from '../helpers/database.ts';
import { currentPartition, eventCount, inTransaction, verify } from './support/trail.ts';

const TENANT = 'plant_a';
// Roles are cluster-wide: names say which file owns them.
const APP = 'append_only_app';
const READER = 'append_only_reader';
const ADMIN = 'append_only_admin';
const NOBODY = 'append_only_nobody';

/** What a role attempts: a label and the statement. */
function attacks(partition: string): [string, string][] {
  return [
    ['update events', `update audit_trail.events set reason = 'rewritten' where tenant_id = '${TENANT}'`],
    ['delete events', `delete from audit_trail.events where tenant_id = '${TENANT}'`],
    ['truncate events', `truncate audit_trail.events`],
    ['update partition', `update ${partition} set reason = 'rewritten' where tenant_id = '${TENANT}'`],
    ['delete partition', `delete from ${partition} where tenant_id = '${TENANT}'`],
    ['truncate partition', `truncate ${partition}`],
    ['rewind chain head', `update audit_trail.chain_heads set sequence_no = sequence_no - 1 where tenant_id = '${TENANT}'`],
    ['rewrite chain head hash', `update audit_trail.chain_heads set record_hash = sha256('forged') where tenant_id = '${TENANT}'`],
    ['delete chain head', `delete from audit_trail.chain_heads where tenant_id = '${TENANT}'`],
    ['truncate chain heads', `truncate audit_trail.chain_heads`],
  ];
}

/** Runs a statement in a transaction that is always rolled back; returns the SQLSTATE, or 'succeeded, N rows'. */
async function attempt(client: pg.ClientBase, sql: string, setup: string[] = []): Promise<string> {
  await client.query('begin');
  try {
    for (const s of setup) await client.query(s);
    const result = await client.query(sql);
    return `succeeded, ${result.rowCount ?? 0} rows`;
  } catch (err) {
    return String((err as { code?: string }).code);
  } finally {
    await client.query('rollback');
  }
}

describe('the trail is append-only for every role', () => {
  const db = useTestDatabase('trail_is_append_only_for_every_role');
  let su: pg.Client;
  let partition: string;
  let eventsBefore: number;

  beforeAll(async () => {
    su = await db.connect();
    await su.query(`
      create schema mes;
      create table mes.batches (batch_no text primary key, tenant_id text not null, status text not null);
      select audit_trail.enable('mes.batches', '{"tenant_column": "tenant_id"}');`);
    // Create the LOGIN roles (connectAs creates them), then give each its place.
    for (const role of [APP, READER, ADMIN, NOBODY]) await (await connectAs(db, role)).end();
    await su.query(`grant audit_trail_writer to ${APP}`);
    await su.query(`grant usage on schema mes to ${APP}; grant select, insert, update, delete on mes.batches to ${APP}`);
    await su.query(`grant audit_trail_admin to ${ADMIN}`);
    await su.query(`select audit_trail.grant_tenant_read($1, $2)`, [READER, TENANT]);

    // The application writes through the capture triggers, as it would in production.
    const app = await connectAs(db, APP);
    try {
      for (const [batch, status] of [['B-1', 'created'], ['B-2', 'created']]) {
        await inTransaction(app, { actor_id: 'usr_anna' }, (t) => t.query(`insert into mes.batches values ($1, $2, $3)`, [batch, TENANT, status]));
      }
      await inTransaction(app, { actor_id: 'usr_anna' }, (t) => t.query(`update mes.batches set status = 'released' where batch_no = 'B-1'`));
    } finally {
      await app.end();
    }
    partition = await currentPartition(su);
    eventsBefore = await eventCount(su, TENANT);
    // grant_tenant_read's event, 2 creates, 1 update.
    expect(eventsBefore).toBe(4);
    expect((await su.query(`select count(*)::int as n from ${partition} where tenant_id = $1`, [TENANT])).rows[0].n).toBe(4);
  });

  it.each([
    ['the application role (audit_trail_writer)', APP],
    ['a reader of the tenant', READER],
    ['an audit_trail_admin member', ADMIN],
    ['a role with no audit_trail grant', NOBODY],
  ])('%s gets 42501 for every UPDATE, DELETE, TRUNCATE and forged INSERT', async (_label, role) => {
    const client = await connectAs(db, role);
    try {
      const setup = [`select set_config('audit_trail.tenant_id', '${TENANT}', true)`];
      const all: [string, string][] = [
        ...attacks(partition),
        ['insert a forged event', `insert into audit_trail.events select * from audit_trail.events where tenant_id = '${TENANT}' and sequence_no = 1`],
        ['insert a forged chain head', `insert into audit_trail.chain_heads values ('forged', 1, sha256('x'), now())`],
      ];
      const results: Record<string, string> = {};
      for (const [label, sql] of all) results[label] = await attempt(client, sql, setup);
      expect(results).toEqual(Object.fromEntries(Object.keys(results).map((k) => [k, '42501'])));
    } finally {
      await client.end();
    }
  });

  it('the owner (SET ROLE audit_trail_owner) is stopped by the guard triggers: AT010', async () => {
    const results: Record<string, string> = {};
    for (const [label, sql] of attacks(partition)) results[label] = await attempt(su, sql, ['set local role audit_trail_owner']);
    // A partition has forced row-level security and no policy of its own: to
    // the owner going around the parent it holds no rows, so its UPDATE and
    // DELETE change nothing (and, were rows visible, the guard would refuse).
    const invisible = /^(AT010|succeeded, 0 rows)$/;
    expect(results).toEqual({
      ...Object.fromEntries(attacks(partition).map(([k]) => [k, 'AT010'])),
      'update partition': expect.stringMatching(invisible),
      'delete partition': expect.stringMatching(invisible),
    });
    expect((await su.query(`select count(*)::int as n from ${partition} where tenant_id = $1`, [TENANT])).rows[0].n).toBe(eventsBefore);
  });

  it('a superuser who does not switch the triggers off is stopped by them too: AT010', async () => {
    const results: Record<string, string> = {};
    for (const [label, sql] of attacks(partition)) results[label] = await attempt(su, sql);
    expect(results).toEqual(Object.fromEntries(attacks(partition).map(([k]) => [k, 'AT010'])));
  });

  it('the owner cannot move a chain head ahead of its events (AT010)', async () => {
    const code = await attempt(su, `update audit_trail.chain_heads set sequence_no = sequence_no + 5 where tenant_id = '${TENANT}'`, [
      'set local role audit_trail_owner',
    ]);
    expect(code).toBe('AT010');
  });

  it('the guard triggers refuse with a hint', async () => {
    await su.query('begin');
    try {
      await su.query('set local role audit_trail_owner');
      await su.query(`delete from audit_trail.events where tenant_id = '${TENANT}'`);
      expect.fail('the delete succeeded');
    } catch (err) {
      const e = err as { code?: string; hint?: string };
      expect(e.code).toBe('AT010');
      expect(e.hint ?? '').not.toBe('');
    } finally {
      await su.query('rollback');
    }
  });

  it('after every attempt the trail is whole: same events, chain verifies', async () => {
    expect(await eventCount(su, TENANT)).toBe(eventsBefore);
    expect(await verify(su, TENANT)).toMatchObject({ ok: true, events_checked: String(eventsBefore), problem: null });
  });
});
