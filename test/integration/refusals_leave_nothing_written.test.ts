/**
 * Every refusal (SPEC 1: who, why, tenant; audit_trail.record() input; bad
 * bytes) rolls back the whole change: the domain row is exactly as before,
 * the tenant's trail has not one more event, and its chain still verifies.
 * Each refusal is asserted by its exact SQLSTATE and a non-empty hint.
 */
import type pg from 'pg';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { eventCount, inTransaction, refusedTransaction, serverError, verify, type AuditSettings, type ServerError } from './support/trail.ts';

const STRICT = 'tenant_strict'; // rejects unknown, suspended and shared actors
const OTHER = 'tenant_other';
const GOOD_REASON = 'Re-classified after review of PLC alarm log 4711';

describe('refusals leave nothing written', () => {
  const db = useTestDatabase('refusals_leave_nothing_written');
  let c: pg.Client;
  let rowBefore: string;
  let eventsBefore: number;

  async function rowText(): Promise<string> {
    const { rows } = await c.query<{ t: string }>(`select to_jsonb(d)::text as t from mes.downtime d where id = 1`);
    return rows[0]!.t;
  }

  /** Runs a refused change to row 1 of mes.downtime and asserts the refusal left no trace. */
  async function expectRefused(settings: AuditSettings, sql: string, params: unknown[] = []): Promise<ServerError> {
    const err = await refusedTransaction(c, settings, (t) => t.query(sql, params));
    expect(err.hint ?? '', `hint of ${err.code}: ${err.message}`).not.toBe('');
    await expectNothingWritten();
    return err;
  }

  async function expectNothingWritten(): Promise<void> {
    expect(await rowText()).toBe(rowBefore);
    expect(await eventCount(c, STRICT)).toBe(eventsBefore);
    expect(await verify(c, STRICT)).toMatchObject({ ok: true, events_checked: String(eventsBefore), problem: null });
  }

  beforeAll(async () => {
    c = await db.connect();
    await c.query(`
      create schema mes;
      create table mes.downtime (
        id integer primary key,
        tenant_id text not null,
        reason_code text not null,
        minutes integer not null,
        note text
      );
      select audit_trail.enable('mes.downtime', '{"tenant_column": "tenant_id", "reason_required": ["reason_code"]}');
      insert into audit_trail.tenant_policies (tenant_id, reject_unknown_actors, reject_suspended_actors, reject_shared_actors)
      values ('${STRICT}', true, true, true);
      insert into audit_trail.actors (tenant_id, actor_id, display_name, status, is_shared_account) values
        ('${STRICT}', 'usr_anna', 'Anna Schmidt', 'active', false),
        ('${STRICT}', 'usr_bert', 'Bert Maier', 'suspended', false),
        ('${STRICT}', 'line2_terminal', 'Line 2 terminal', 'active', true);`);
    // Creating a row sets its reason-required column, so it needs a reason too.
    await inTransaction(c, { actor_id: 'usr_anna', reason: GOOD_REASON }, (t) =>
      t.query(`insert into mes.downtime values (1, '${STRICT}', 'MAT_SHORTAGE', 42, null), (2, '${OTHER}', 'SETUP', 5, null)`),
    );
    // A first valid reasoned change, so that the chain has some length.
    await inTransaction(c, { actor_id: 'usr_anna', reason: GOOD_REASON }, (t) =>
      t.query(`update mes.downtime set reason_code = 'PLANNED_MAINT' where id = 1`),
    );
  });

  beforeEach(async () => {
    rowBefore = await rowText();
    eventsBefore = await eventCount(c, STRICT);
    // The policy and the 3 actor registrations are configuration events of the tenant, then 2 changes.
    expect(eventsBefore).toBe(6);
  });

  it('no actor: AT001, with a hint showing the SET LOCAL to use', async () => {
    const err = await expectRefused({}, `update mes.downtime set minutes = 43 where id = 1`);
    expect(err.code).toBe('AT001');
    expect(err.hint).toMatch(/SET LOCAL audit_trail\.actor_id/);
    // An empty setting is no actor either.
    expect((await expectRefused({ actor_id: '' }, `update mes.downtime set minutes = 43 where id = 1`)).code).toBe('AT001');
  });

  it('a suspended, a shared and an unknown actor are rejected by a tenant that says so: AT002', async () => {
    for (const actor of ['usr_bert', 'line2_terminal', 'usr_nobody']) {
      const err = await expectRefused({ actor_id: actor }, `update mes.downtime set minutes = 44 where id = 1`);
      expect(err.code, actor).toBe('AT002');
      expect(err.message, actor).toContain(actor);
    }
  });

  it('a change to a reason-required column without a reason: AT003', async () => {
    for (const reason of [undefined, '', '   ']) {
      const settings: AuditSettings = reason === undefined ? { actor_id: 'usr_anna' } : { actor_id: 'usr_anna', reason };
      const err = await expectRefused(settings, `update mes.downtime set reason_code = 'MAT_SHORTAGE' where id = 1`);
      expect(err.code, JSON.stringify(reason)).toBe('AT003');
    }
  });

  it('a weak reason ("ok", "see email", "n/a", too short): AT004', async () => {
    // (padded with tabs, line breaks or Unicode blanks too: no-break, em and ideographic spaces)
    for (const reason of ['ok', 'OK', ' see email ', 'See Email', 'n/a', 'N/A', 'fixed', 'typo', 'short one',
      '\tok\t', '\nn/a\r\n', '\u00a0see email\u00a0', '\u2003fixed\u3000', '\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0ok']) {
      const err = await expectRefused({ actor_id: 'usr_anna', reason }, `update mes.downtime set reason_code = 'MAT_SHORTAGE' where id = 1`);
      expect(err.code, reason).toBe('AT004');
    }
  });

  it('a setting over 65536 bytes set with SET LOCAL (actor_name, reason, request_id): 54000', async () => {
    const big = 'x'.repeat(65537);
    const tooLong: AuditSettings[] = [
      { actor_id: 'usr_anna', actor_name: big },
      { actor_id: 'usr_anna', reason: `${GOOD_REASON} ${big}` },
      { actor_id: 'usr_anna', request_id: big },
    ];
    for (const settings of tooLong) {
      const err = await expectRefused(settings, `update mes.downtime set minutes = 46 where id = 1`);
      expect(err.code, Object.keys(settings).join()).toBe('54000');
    }
    const viaRecord = await refusedTransaction(c, { actor_id: 'usr_anna', tenant_id: STRICT, actor_name: big }, (t) =>
      t.query(`select audit_trail.record('read', 'batch_record', 'B-1')`));
    expect(viaRecord.code).toBe('54000');
    await expectNothingWritten();
  });

  it('a session tenant that contradicts the row\'s tenant: 42501 (cross-tenant write)', async () => {
    const err = await expectRefused({ actor_id: 'usr_anna', tenant_id: OTHER }, `update mes.downtime set minutes = 45 where id = 1`);
    expect(err.code).toBe('42501');
    // Moving a row into another tenant is refused the same way.
    const move = await expectRefused({ actor_id: 'usr_anna' }, `update mes.downtime set tenant_id = '${OTHER}' where id = 1`);
    expect(move.code).toBe('42501');
  });

  it('a refusal late in a transaction also takes back the valid changes made before it', async () => {
    const err = await refusedTransaction(c, { actor_id: 'usr_anna' }, async (t) => {
      await t.query(`update mes.downtime set minutes = 46 where id = 1`);
      await t.query(`select audit_trail.record('read', 'batch_record', 'B-1', tenant => '${STRICT}')`);
      await t.query(`update mes.downtime set reason_code = 'X' where id = 1`); // no reason: AT003
    });
    expect(err.code).toBe('AT003');
    expect(err.hint ?? '').not.toBe('');
    await expectNothingWritten();
  });

  it('audit_trail.record() with an action that is not one of the five: 22023', async () => {
    for (const action of ['approve', 'DELETE', '']) {
      const err = await expectRefused(
        { actor_id: 'usr_anna', tenant_id: STRICT },
        `select audit_trail.record($1, 'batch_record', 'B-1', '[]', $2)`,
        [action, GOOD_REASON],
      );
      expect(err.code, action).toBe('22023');
    }
  });

  it('audit_trail.record() with a jsonb above the 1 MiB limit: 54000', async () => {
    // Random hex does not compress, so the value really is ~1.2 MB.
    const { rows } = await c.query<{ big: string }>(
      `select jsonb_build_array(jsonb_build_object('field', 'scan', 'before', null,
                'after', (select string_agg(md5(i::text || random()::text), '') from generate_series(1, 40000) i)))::text as big`,
    );
    const err = await expectRefused(
      { actor_id: 'usr_anna', tenant_id: STRICT },
      `select audit_trail.record('execute', 'batch_record', 'B-1', $1::jsonb, $2)`,
      [rows[0]!.big, GOOD_REASON],
    );
    expect(err.code).toBe('54000');
  });

  it('bytes that are not UTF-8 are rejected by the server (22021), in a column and in a setting', async () => {
    const invalid = Buffer.from([0x4f, 0x4b, 0xc3, 0x28, 0xff]);
    // A Buffer parameter travels in binary; the server checks the encoding when it becomes text.
    const inColumn = await serverError(
      inTransaction(c, { actor_id: 'usr_anna' }, (t) => t.query(`update mes.downtime set note = $1::text where id = 1`, [invalid])),
    );
    expect(inColumn.code).toBe('22021');
    const inReason = await serverError(
      inTransaction(c, { actor_id: 'usr_anna' }, async (t) => {
        await t.query(`select set_config('audit_trail.reason', $1::text, true)`, [invalid]);
        await t.query(`update mes.downtime set reason_code = 'MAT_SHORTAGE' where id = 1`);
      }),
    );
    expect(inReason.code).toBe('22021');
    await expectNothingWritten();
  });

  it('after all those refusals a valid change is still captured as the next event', async () => {
    await inTransaction(c, { actor_id: 'usr_anna', reason: GOOD_REASON }, (t) => t.query(`update mes.downtime set reason_code = 'MAT_SHORTAGE' where id = 1`));
    expect(await eventCount(c, STRICT)).toBe(eventsBefore + 1);
    expect(await verify(c, STRICT)).toMatchObject({ ok: true, events_checked: String(eventsBefore + 1) });
  });
});
