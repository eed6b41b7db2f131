/**
 * SPEC 2: the canonical encoding, and so every record_hash, must not depend
 * on session settings (TimeZone, DateStyle, IntervalStyle, extra_float_digits,
 * locale, search_path). Writes are made under each hostile setting, the
 * chain is verified under each of them, and the values recorded for the same
 * input are the same text whatever the writer's settings were.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { verify } from './support/trail.ts';

const TENANT = 'settings';

/** The same input row every time (only the id differs), given as text so the client adds no formatting of its own. */
const ROW = {
  measured_at: '2026-04-19 10:42:17.382519+02',
  value: '0.1',
  third: '0.3333333333333333',
  huge: '6.02214076e23',
  amount: '1234.5',
  taken_on: '2026-04-19',
  duration: '1 day 02:03:04.5',
  shift_start: '06:30:00',
};

/** What the trail must hold for ROW, as jsonb text, whoever wrote it under whatever settings. */
const EXPECTED_CREATE_CHANGES = [
  '{"after": 1234.500, "field": "amount", "before": null}',
  '{"after": "1 day 02:03:04.5", "field": "duration", "before": null}',
  '{"after": 602214076000000000000000, "field": "huge", "before": null}',
  '{"after": "2026-04-19T08:42:17.382519+00:00", "field": "measured_at", "before": null}',
  '{"after": "06:30:00", "field": "shift_start", "before": null}',
  '{"after": "2026-04-19", "field": "taken_on", "before": null}',
  '{"after": "settings", "field": "tenant", "before": null}',
  '{"after": 0.3333333333333333, "field": "third", "before": null}',
  '{"after": 0.1, "field": "value", "before": null}',
];

/** Session settings under which the same writes are made; null for "the server's defaults". */
const SETTINGS: [string, string[]][] = [
  ['default settings', []],
  ["TimeZone 'Pacific/Chatham'", [`set timezone = 'Pacific/Chatham'`]],
  ["DateStyle 'SQL, DMY'", [`set datestyle = 'SQL, DMY'`]],
  ["IntervalStyle 'iso_8601'", [`set intervalstyle = 'iso_8601'`]],
  ['extra_float_digits -15', [`set extra_float_digits = -15`]],
  ['a search_path whose first schema shadows pg_catalog', [`set search_path = shadow, pg_catalog, public`]],
  [
    'all of them at once',
    [
      `set timezone = 'Pacific/Chatham'`,
      `set datestyle = 'SQL, DMY'`,
      `set intervalstyle = 'iso_8601'`,
      `set extra_float_digits = -15`,
      `set bytea_output = 'escape'`,
      `set search_path = shadow, pg_catalog, public`,
    ],
  ],
];

describe('hashes do not depend on session settings', () => {
  const db = useTestDatabase('hashes_do_not_depend_on_session_settings');
  let c: pg.Client;
  let nextId = 1;

  beforeAll(async () => {
    c = await db.connect();
    await c.query(`
      create schema mes;
      create table mes.readings (
        id integer primary key,
        tenant text not null,
        measured_at timestamptz,
        value double precision,
        third double precision,
        huge double precision,
        amount numeric(12,3),
        taken_on date,
        duration interval,
        shift_start time
      );
      select audit_trail.enable('mes.readings', '{"tenant_column": "tenant"}');

      -- Functions that shadow pg_catalog's when "shadow" comes first on the search_path.
      create schema shadow;
      create function shadow.sha256(bytea) returns bytea language sql as $$ select '\\x00'::bytea $$;
      create function shadow.textsend(text) returns bytea language sql as $$ select '\\x01'::bytea $$;
      create function shadow.int8send(bigint) returns bytea language sql as $$ select '\\x02'::bytea $$;
      create function shadow.int4send(integer) returns bytea language sql as $$ select '\\x03'::bytea $$;
      create function shadow.jsonb_build_object(text, text) returns jsonb language sql as $$ select '{"shadow": true}'::jsonb $$;
      create function shadow.jsonb_build_object(text, jsonb) returns jsonb language sql as $$ select '{"shadow": true}'::jsonb $$;
      create function shadow.to_jsonb(anyelement) returns jsonb language sql as $$ select '"shadow"'::jsonb $$;
      create function shadow.encode(bytea, text) returns text language sql as $$ select 'shadow' $$;
      create function shadow.now() returns timestamptz language sql as $$ select '2000-01-01 00:00:00+00'::timestamptz $$;
      create function shadow.clock_timestamp() returns timestamptz language sql as $$ select '2000-01-01 00:00:00+00'::timestamptz $$;`);
    // The shadowing is real: unqualified calls in such a session reach the impostors.
    await c.query('begin');
    await c.query('set local search_path = shadow, pg_catalog, public');
    const { rows } = await c.query<{ digest: string; json: string }>(`select encode(sha256('abc'::bytea), 'hex') as digest, to_jsonb(42)::text as json`);
    await c.query('rollback');
    expect(rows[0]).toEqual({ digest: 'shadow', json: '"shadow"' });
  });

  /** Writes the same changes under the given settings: a captured insert and update, and a record() with an event time. */
  async function writeUnder(settings: string[]): Promise<number> {
    const id = nextId++;
    await c.query('begin');
    try {
      for (const s of settings) await c.query(s.replace(/^set /, 'set local '));
      await c.query(`select pg_catalog.set_config('audit_trail.actor_id', 'usr_anna', true)`);
      await c.query(
        `insert into mes.readings (id, tenant, measured_at, value, third, huge, amount, taken_on, duration, shift_start)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [id, TENANT, ROW.measured_at, ROW.value, ROW.third, ROW.huge, ROW.amount, ROW.taken_on, ROW.duration, ROW.shift_start],
      );
      await c.query(`update mes.readings set value = $2, measured_at = $3 where id = $1`, [id, '-0.000001', '2026-04-19 23:59:59.999999-11']);
      await c.query(`select audit_trail.record('read', 'reading', $1, tenant => $2, occurred_at => $3)`, [String(id), TENANT, '2026-04-19T08:42:17.382519Z']);
      await c.query('commit');
    } catch (err) {
      await c.query('rollback');
      throw err;
    }
    return id;
  }

  async function recorded(id: number): Promise<{ create: string[]; update: string; occurred_at_epoch_us: string }> {
    const { rows } = await c.query<{ action: string; changes: string; occurred_us: string }>(
      `select e.action, e.changes::text as changes,
              (extract(epoch from e.occurred_at) * 1000000)::bigint::text as occurred_us
         from audit_trail.events e where e.tenant_id = $1 and e.resource_id = $2 order by e.sequence_no`,
      [TENANT, String(id)],
    );
    expect(rows.map((r) => r.action)).toEqual(['create', 'update', 'read']);
    const create = (await c.query<{ c: string }>(`select x::text as c from jsonb_array_elements($1::jsonb) x where x ->> 'field' <> 'id'`, [rows[0]!.changes])).rows.map((r) => r.c);
    return { create, update: rows[1]!.changes, occurred_at_epoch_us: rows[2]!.occurred_us };
  }

  for (const [label, settings] of SETTINGS) {
    it(`under ${label}: writes work, the chain verifies, and the recorded values are the canonical text`, async () => {
      const id = await writeUnder(settings);
      // Verify in a session that has these settings too.
      for (const s of settings) await c.query(s);
      try {
        expect(await verify(c, TENANT)).toMatchObject({ ok: true, problem: null });
      } finally {
        await c.query('reset all');
      }
      const values = await recorded(id);
      expect(values.create).toEqual(EXPECTED_CREATE_CHANGES);
      expect(values.update).toBe(
        '[{"after": "2026-04-20T10:59:59.999999+00:00", "field": "measured_at", "before": "2026-04-19T08:42:17.382519+00:00"}, ' +
          '{"after": -0.000001, "field": "value", "before": 0.1}]',
      );
      expect(values.occurred_at_epoch_us).toBe('1776588137382519');
    });
  }

  it('with lc_numeric and lc_monetary set to another locale, if the server has one', async (ctx) => {
    const { rows } = await c.query<{ name: string }>(
      `select collcollate as name from pg_collation where collprovider = 'c' and collcollate not in ('C', 'POSIX', 'C.utf8', 'C.UTF-8') limit 1`,
    );
    const locale = rows[0]?.name;
    if (locale === undefined) {
      console.log('[hashes_do_not_depend_on_session_settings] skipped lc_numeric/lc_monetary: the server has only the C locales');
      ctx.skip();
      return;
    }
    const id = await writeUnder([`set lc_numeric = '${locale}'`, `set lc_monetary = '${locale}'`]);
    for (const s of [`set lc_numeric = '${locale}'`, `set lc_monetary = '${locale}'`]) await c.query(s);
    try {
      expect(await verify(c, TENANT)).toMatchObject({ ok: true, problem: null });
    } finally {
      await c.query('reset all');
    }
    expect((await recorded(id)).create).toEqual(EXPECTED_CREATE_CHANGES);
  });

  it('every event written under every setting verifies under every setting', async () => {
    const { rows } = await c.query<{ n: string }>(`select count(*)::text as n from audit_trail.events where tenant_id = $1`, [TENANT]);
    for (const [label, settings] of SETTINGS) {
      for (const s of settings) await c.query(s);
      try {
        expect(await verify(c, TENANT), label).toMatchObject({ ok: true, events_checked: rows[0]!.n, problem: null });
        // The hash as recomputed in this session equals the stored one for every event.
        const mismatched = await c.query(
          `select e.sequence_no from audit_trail.events e
            where e.tenant_id = $1
              and e.record_hash <> audit_trail.chain_hash(audit_trail.encode_body(e.event_id, e.tenant_id, e.occurred_at, e.ingested_at,
                    e.actor_type, e.actor_id, e.actor_name, e.auth_method, e.source_ip, e.user_agent_hash, e.action, e.resource_type,
                    e.resource_id, e.parent_type, e.parent_id, e.changes, e.reason, e.context, e.db_identity), e.sequence_no, e.prev_hash)`,
          [TENANT],
        );
        expect(mismatched.rows, label).toEqual([]);
      } finally {
        await c.query('reset all');
      }
    }
  });
  it('under a client_encoding other than UTF8, text is encoded as UTF-8 and the chain verifies in any session', async () => {
    // textsend() would convert to the client's encoding: the same name would hash differently per session.
    const id = nextId++;
    await c.query('begin');
    await c.query(`set local client_encoding = 'LATIN1'`);
    await c.query(`select pg_catalog.set_config('audit_trail.actor_id', 'usr_anna', true),
                          pg_catalog.set_config('audit_trail.actor_name', U&'Anna M\\00FCller', true)`);
    await c.query(
      `insert into mes.readings (id, tenant, measured_at, value, third, huge, amount, taken_on, duration, shift_start)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [id, TENANT, ROW.measured_at, ROW.value, ROW.third, ROW.huge, ROW.amount, ROW.taken_on, ROW.duration, ROW.shift_start],
    );
    await c.query('commit');
    const { rows } = await c.query<{ name: string; bytes: string }>(
      `select e.actor_name as name, encode(audit_trail.encode_text(e.actor_name), 'hex') as bytes
         from audit_trail.events e where e.tenant_id = $1 and e.resource_id = $2`,
      [TENANT, String(id)],
    );
    expect(rows).toEqual([{ name: 'Anna Müller', bytes: '0000000c416e6e61204dc3bc6c6c6572' }]);
    expect(await verify(c, TENANT)).toMatchObject({ ok: true, problem: null });
    await c.query(`set client_encoding = 'LATIN1'`);
    try {
      const again = await c.query<{ bytes: string }>(`select encode(audit_trail.encode_text(U&'Anna M\\00FCller'), 'hex') as bytes`);
      expect(again.rows[0]!.bytes).toBe('0000000c416e6e61204dc3bc6c6c6572');
    } finally {
      await c.query('reset client_encoding');
    }
  });

  it("verify()'s UTF8 shortcut (textsend, jsonb_send, json_send) gives encode_body()'s bytes, in parallel workers too, and is not taken for another client_encoding", async () => {
    // Non-ASCII in text, jsonb and json fields, a character outside the Basic Multilingual Plane, a backslash, a NULL field.
    // db_identity's login is session_user: a role with such a name commits the event (SET SESSION AUTHORIZATION).
    await c.query(`do $$ begin create role "hashes_settings Pr\u00fcfer \u{1F680}" nologin; exception when duplicate_object then null; end $$`);
    await c.query('begin');
    await c.query(`select pg_catalog.set_config('audit_trail.actor_id', 'usr_anna', true),
                          pg_catalog.set_config('audit_trail.actor_name', U&'Anna M\\00FCller \\+01F680', true)`);
    await c.query(
      `select audit_trail.record('execute', 'batch_record', U&'B-\\00C5-7', $1::jsonb, U&'Freigabe gepr\\00FCft \\\\ ok',
                                 context => $2::jsonb, tenant => $3)`,
      [
        JSON.stringify([{ field: 'status', before: 'Quarantäne', after: 'freigegeben \\ 🚀' }]),
        JSON.stringify({ note: 'Prüfung', emoji: '🚀' }),
        TENANT,
      ],
    );
    await c.query(`set local session authorization "hashes_settings Pr\u00fcfer \u{1F680}"`);
    await c.query('commit');
    await c.query('reset session authorization');
    const body = (fn: string): string =>
      `${fn}(e.event_id, e.tenant_id, e.occurred_at, e.ingested_at, e.actor_type, e.actor_id, e.actor_name, e.auth_method,
         e.source_ip, e.user_agent_hash, e.action, e.resource_type, e.resource_id, e.parent_type, e.parent_id, e.changes,
         e.reason, e.context, e.db_identity)`;
    const differing = `select count(*) filter (where ${body('audit_trail.encode_body')} is distinct from ${body('audit_trail.encode_body_in_utf8_session')})::int as n,
                              count(*) filter (where e.reason like U&'%\\00FC%'
                                                 and e.db_identity ->> 'login' = U&'hashes_settings Pr\\00FCfer \\+01F680')::int as non_ascii
                         from audit_trail.events e where e.tenant_id = '${TENANT}'`;
    const { rows: utf8 } = await c.query<{ n: number; non_ascii: number }>(differing);
    expect(utf8[0]).toEqual({ n: 0, non_ascii: 1 });
    // The same comparison with every row encoded by a parallel worker.
    await c.query(`select pg_catalog.set_config(case when current_setting('server_version_num')::int >= 160000
                                                     then 'debug_parallel_query' else 'force_parallel_mode' end, 'on', false)`);
    try {
      const { rows: plan } = await c.query<{ 'QUERY PLAN': { Plan: { 'Workers Launched'?: number } }[] }>(
        `explain (analyze, format json) ${differing}`,
      );
      expect(plan[0]!['QUERY PLAN'][0]!.Plan['Workers Launched']).toBeGreaterThanOrEqual(1);
      expect((await c.query<{ n: number }>(differing)).rows[0]).toEqual({ n: 0, non_ascii: 1 });
      expect(await verify(c, TENANT)).toMatchObject({ ok: true, problem: null });
    } finally {
      await c.query('reset all');
    }
    // Under LATIN1 the shortcut would give other bytes (so verify() must not take it), and verify() still passes.
    await c.query(`set client_encoding = 'LATIN1'`);
    try {
      const { rows } = await c.query<{ same: boolean }>(
        `select audit_trail.encode_body_in_utf8_session('e', 't', null, null, 'user', null, U&'Anna M\\00FCller', null, null, null,
                  'read', 'r', null, null, null, '[]', null, '{}', '{}')
                = audit_trail.encode_body('e', 't', null, null, 'user', null, U&'Anna M\\00FCller', null, null, null,
                  'read', 'r', null, null, null, '[]', null, '{}', '{}') as same`,
      );
      expect(rows[0]!.same).toBe(false);
      expect(await verify(c, TENANT)).toMatchObject({ ok: true, problem: null });
    } finally {
      await c.query('reset client_encoding');
    }
  });
});
