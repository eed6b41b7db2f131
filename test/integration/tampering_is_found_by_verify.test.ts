/**
 * Integrity (SPEC 2, 3): what only a superuser can do to the trail -- switch
 * the guard triggers off, or write with session_replication_role = replica --
 * is found by one pass of audit_trail.verify(), which names the first bad
 * sequence_no and the kind of break. Every case tampers with a fresh chain of
 * its own tenant (8 events), in both ways of getting past the guards.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { inTransaction, verify } from './support/trail.ts';

const EVENTS_PER_CHAIN = 8;

interface TamperCase {
  name: string;
  /** SQL run by the superuser with the guards off; $1 is the tenant. */
  sql: string[];
  first_bad_sequence_no: string | null;
  problem: string;
  detail: RegExp;
}

const CASES: TamperCase[] = [
  {
    name: 'one field of event 5 edited',
    sql: [`update audit_trail.events set actor_id = 'usr_mallory' where tenant_id = $1 and sequence_no = 5`],
    first_bad_sequence_no: '5',
    problem: 'hash mismatch',
    detail: /event 5 /,
  },
  {
    name: 'event 5 deleted',
    sql: [`delete from audit_trail.events where tenant_id = $1 and sequence_no = 5`],
    first_bad_sequence_no: '5',
    problem: 'gap',
    detail: /5 to 5 are missing/,
  },
  {
    name: 'sequence numbers of events 4 and 5 swapped',
    sql: [`update audit_trail.events set sequence_no = case sequence_no when 4 then 5 else 4 end where tenant_id = $1 and sequence_no in (4, 5)`],
    first_bad_sequence_no: '4',
    problem: 'hash mismatch',
    detail: /event 4 /,
  },
  {
    name: 'a forged event inserted with sequence_no 5 (its own hash computed correctly)',
    sql: [
      `insert into audit_trail.events
       select forged.event_id, e.tenant_id, e.sequence_no, e.occurred_at, e.ingested_at, e.actor_type, 'usr_mallory', e.actor_name,
              e.auth_method, e.source_ip, e.user_agent_hash, e.action, e.resource_type, e.resource_id, e.parent_type, e.parent_id,
              e.changes, e.reason, e.context, e.db_identity, e.encoding_version, e.prev_hash,
              audit_trail.chain_hash(audit_trail.encode_body(forged.event_id, e.tenant_id, e.occurred_at, e.ingested_at, e.actor_type,
                'usr_mallory', e.actor_name, e.auth_method, e.source_ip, e.user_agent_hash, e.action, e.resource_type, e.resource_id,
                e.parent_type, e.parent_id, e.changes, e.reason, e.context, e.db_identity), e.sequence_no, e.prev_hash)
         from audit_trail.events e
        cross join lateral (select left(e.event_id, 25) || case when right(e.event_id, 1) = 'Z' then 'Y' else 'Z' end as event_id) forged
        where e.tenant_id = $1 and e.sequence_no = 5`,
    ],
    first_bad_sequence_no: '5',
    problem: 'duplicate',
    detail: /sequence_no 5/,
  },
  {
    name: 'event 5 edited and its own record_hash recomputed',
    sql: [
      `update audit_trail.events e set reason = 'Backdated approval',
              record_hash = audit_trail.chain_hash(audit_trail.encode_body(e.event_id, e.tenant_id, e.occurred_at, e.ingested_at,
                e.actor_type, e.actor_id, e.actor_name, e.auth_method, e.source_ip, e.user_agent_hash, e.action, e.resource_type,
                e.resource_id, e.parent_type, e.parent_id, e.changes, 'Backdated approval', e.context, e.db_identity), e.sequence_no, e.prev_hash)
        where e.tenant_id = $1 and e.sequence_no = 5`,
    ],
    first_bad_sequence_no: '5',
    problem: 'broken link',
    detail: /event 5 was rewritten/,
  },
  {
    // Found by a red team: NULL compared with = is not false, and bool_and skips it.
    name: 'event 5 edited and its prev_hash set to NULL (NOT NULL dropped)',
    sql: [
      'alter table audit_trail.events alter column prev_hash drop not null',
      `update audit_trail.events set reason = 'forged', prev_hash = null where tenant_id = $1 and sequence_no = 5`,
    ],
    first_bad_sequence_no: '5',
    problem: 'hash mismatch',
    detail: /event 5 .*NULL/,
  },
  {
    name: 'event 5 edited and its record_hash set to NULL (NOT NULL dropped)',
    sql: [
      'alter table audit_trail.events alter column record_hash drop not null',
      `update audit_trail.events set reason = 'forged', record_hash = null where tenant_id = $1 and sequence_no = 5`,
    ],
    first_bad_sequence_no: '5',
    problem: 'hash mismatch',
    detail: /event 5 .*stored record_hash NULL/,
  },
  {
    // The chain itself stays intact: only the event outside it tells.
    name: 'a forged event added with no sequence_no (NOT NULL dropped)',
    sql: [
      'alter table audit_trail.events alter column sequence_no drop not null',
      `insert into audit_trail.events
       select left(e.event_id, 25) || case when right(e.event_id, 1) = 'Z' then 'Y' else 'Z' end, e.tenant_id, null, e.occurred_at,
              e.ingested_at, e.actor_type, 'usr_mallory', e.actor_name, e.auth_method, e.source_ip, e.user_agent_hash, e.action,
              e.resource_type, e.resource_id, e.parent_type, e.parent_id, e.changes, 'forged', e.context, e.db_identity,
              e.encoding_version, e.prev_hash, e.record_hash
         from audit_trail.events e where e.tenant_id = $1 and e.sequence_no = 5`,
    ],
    first_bad_sequence_no: null,
    problem: 'gap',
    detail: /holds no sequence_no/,
  },
  {
    name: 'the last event deleted',
    sql: [`delete from audit_trail.events where tenant_id = $1 and sequence_no = ${EVENTS_PER_CHAIN}`],
    first_bad_sequence_no: String(EVENTS_PER_CHAIN),
    problem: 'truncated',
    detail: new RegExp(`head is at sequence_no ${EVENTS_PER_CHAIN} but the last event is ${EVENTS_PER_CHAIN - 1}`),
  },
  {
    name: 'the last event edited and its own record_hash recomputed',
    sql: [
      `update audit_trail.events e set actor_id = 'usr_mallory',
              record_hash = audit_trail.chain_hash(audit_trail.encode_body(e.event_id, e.tenant_id, e.occurred_at, e.ingested_at,
                e.actor_type, 'usr_mallory', e.actor_name, e.auth_method, e.source_ip, e.user_agent_hash, e.action, e.resource_type,
                e.resource_id, e.parent_type, e.parent_id, e.changes, e.reason, e.context, e.db_identity), e.sequence_no, e.prev_hash)
        where e.tenant_id = $1 and e.sequence_no = ${EVENTS_PER_CHAIN}`,
    ],
    first_bad_sequence_no: String(EVENTS_PER_CHAIN),
    problem: 'head mismatch',
    detail: new RegExp(`event ${EVENTS_PER_CHAIN} has record_hash`),
  },
];

/** How a superuser gets past the guard triggers, as SQL around the tampering (one transaction). */
const BYPASSES = {
  'alter table ... disable trigger user': {
    before: ['alter table audit_trail.events disable trigger user'],
    after: ['alter table audit_trail.events enable trigger user'],
  },
  'session_replication_role = replica': {
    before: ['set local session_replication_role = replica'],
    after: [],
  },
} as const;

describe('tampering is found by verify', () => {
  const db = useTestDatabase('tampering_is_found_by_verify');
  let c: pg.Client;

  async function newChain(tenant: string): Promise<void> {
    await inTransaction(c, { actor_id: 'usr_anna', tenant_id: tenant }, async (t) => {
      for (let i = 1; i <= EVENTS_PER_CHAIN; i++) {
        await t.query(`select audit_trail.record('read', 'batch_record', $1, $2::jsonb)`, [
          `B-${i}`,
          JSON.stringify([{ field: 'viewed_section', before: null, after: `page ${i}` }]),
        ]);
      }
    });
    expect(await verify(c, tenant)).toMatchObject({ ok: true, events_checked: String(EVENTS_PER_CHAIN) });
  }

  beforeAll(async () => {
    c = await db.connect();
  });

  it('a chain nobody touched verifies', async () => {
    await newChain('clean');
    expect(await verify(c, 'clean')).toEqual({
      tenant_id: 'clean',
      events_checked: String(EVENTS_PER_CHAIN),
      ok: true,
      first_bad_sequence_no: null,
      problem: null,
      detail: null,
    });
  });

  it('a range after the chain head holds nothing to check: OK, not a truncation or a gap; a removed tail in range is named', async () => {
    await newChain('ranges');
    const range = async (from: number, to: number | null) =>
      (await c.query('select events_checked::int, ok, first_bad_sequence_no::int, problem from audit_trail.verify($1, $2, $3)', ['ranges', from, to])).rows[0];
    for (const [from, to] of [[EVENTS_PER_CHAIN + 1, null], [100, null], [EVENTS_PER_CHAIN + 2, 30], [100, 200]] as const) {
      expect(await range(from, to), `from ${from} to ${to}`).toEqual({ events_checked: 0, ok: true, first_bad_sequence_no: null, problem: null });
    }
    expect(await range(3, 5)).toEqual({ events_checked: 3, ok: true, first_bad_sequence_no: null, problem: null });
    expect(await range(6, 100)).toEqual({ events_checked: 3, ok: true, first_bad_sequence_no: null, problem: null });
    // Events 6 to the head removed (the head left where it was): a range from 7 finds them missing from 7 on.
    await c.query('begin');
    await c.query('set local session_replication_role = replica');
    await c.query('delete from audit_trail.events where tenant_id = $1 and sequence_no >= 6', ['ranges']);
    await c.query('commit');
    expect(await range(7, null)).toMatchObject({ events_checked: 0, ok: false, first_bad_sequence_no: 7, problem: 'truncated' });
    expect(await range(7, 8)).toMatchObject({ events_checked: 0, ok: false, first_bad_sequence_no: 7, problem: 'gap' });
    expect(await range(1, null)).toMatchObject({ ok: false, first_bad_sequence_no: 6, problem: 'truncated' });
  });

  for (const [bypassName, bypass] of Object.entries(BYPASSES)) {
    describe(`with ${bypassName}`, () => {
      CASES.forEach((tamper, index) => {
        it(`${tamper.name}: verify reports ${tamper.problem} at ${tamper.first_bad_sequence_no}`, async () => {
          const tenant = `${bypassName.startsWith('alter') ? 'disabled' : 'replica'}_${index}`;
          await newChain(tenant);
          await c.query('begin');
          try {
            for (const s of bypass.before) await c.query(s);
            for (const s of tamper.sql) await c.query(s, s.includes('$1') ? [tenant] : []);
            for (const s of bypass.after) await c.query(s);
            await c.query('commit');
          } catch (err) {
            await c.query('rollback');
            throw err;
          }
          const result = await verify(c, tenant);
          expect(result).toMatchObject({ tenant_id: tenant, ok: false, first_bad_sequence_no: tamper.first_bad_sequence_no, problem: tamper.problem });
          expect(result.detail).toMatch(tamper.detail);
          // The other chains are untouched.
          expect((await verify(c, 'clean')).ok).toBe(true);
        });
      });
    });
  }

  it('the guard triggers are back on after the tampering', async () => {
    const { rows } = await c.query<{ tgname: string; tgenabled: string }>(
      `select tgname, tgenabled from pg_trigger where tgrelid = 'audit_trail.events'::regclass and not tgisinternal order by tgname`,
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.tgenabled === 'O')).toBe(true);
  });
});
