/**
 * Tenant isolation (SPEC 4): a reader mapped to tenant A sees nothing of
 * tenant B, whatever SQL it writes -- the events table, the chain heads,
 * every other relation of the schema, the partitions directly, verify() --
 * and whatever GUC it sets. The pooled application role sees exactly the
 * tenant its audit_trail.tenant_id names (the documented weaker layer), and
 * may not be made a reader.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAs, useTestDatabase } from '../helpers/database.ts';
import { inTransaction, serverError, verify } from './support/trail.ts';

const A = 'tenant_alpha';
const B = 'tenant_bravo';
// Roles are cluster-wide: names say which file owns them.
const READER_A = 'isolation_reader_a';
const APP = 'isolation_app';

/** What a role gets from one relation: 'denied' (42501) or the tenants its rows mention. */
type Outcome = 'denied' | { rows: number; mentionsB: boolean };

async function everyRelation(client: pg.ClientBase): Promise<Record<string, Outcome>> {
  const { rows } = await client.query<{ name: string }>(
    `select format('%I.%I', n.nspname, c.relname) as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'audit_trail' and c.relkind in ('r', 'p', 'v', 'm', 'f')
      order by 1`,
  );
  const outcome: Record<string, Outcome> = {};
  for (const { name } of rows) {
    await client.query('savepoint probe');
    try {
      const result = await client.query<{ row: string }>(`select to_jsonb(x)::text as row from ${name} x`);
      outcome[name] = { rows: result.rows.length, mentionsB: result.rows.some((r) => r.row.includes(B) || r.row.includes('bravo')) };
      await client.query('release savepoint probe');
    } catch (err) {
      await client.query('rollback to savepoint probe');
      if ((err as { code?: string }).code !== '42501') throw err;
      outcome[name] = 'denied';
    }
  }
  return outcome;
}

describe('a reader of tenant A sees nothing of tenant B', () => {
  const db = useTestDatabase('reader_of_tenant_a_sees_nothing_of_b');
  let su: pg.Client;
  let reader: pg.Client;
  let eventsOfA: number;
  let eventsOfB: number;
  let partitions: string[];

  beforeAll(async () => {
    su = await db.connect();
    for (const role of [READER_A, APP]) await (await connectAs(db, role)).end();
    await su.query(`grant audit_trail_writer to ${APP}`);
    await su.query(`select audit_trail.grant_tenant_read($1, $2)`, [READER_A, A]);
    await su.query(`
      insert into audit_trail.actors (tenant_id, actor_id, display_name) values
        ('${A}', 'usr_alpha', 'Alpha User'), ('${B}', 'usr_bravo', 'Bravo User');
      insert into audit_trail.tenant_policies (tenant_id, reason_min_length) values ('${A}', 12), ('${B}', 13);`);
    for (const [tenant, actor, docs] of [
      [A, 'usr_alpha', ['alpha-doc-1', 'alpha-doc-2']],
      [B, 'usr_bravo', ['bravo-secret-1', 'bravo-secret-2', 'bravo-secret-3']],
    ] as const) {
      await inTransaction(su, { actor_id: actor, tenant_id: tenant }, async (t) => {
        for (const doc of docs) await t.query(`select audit_trail.record('read', 'batch_record', $1)`, [doc]);
      });
    }
    const counts = await su.query<{ tenant_id: string; n: number }>(`select tenant_id, count(*)::int as n from audit_trail.events group by 1`);
    eventsOfA = counts.rows.find((r) => r.tenant_id === A)!.n;
    eventsOfB = counts.rows.find((r) => r.tenant_id === B)!.n;
    // A: the read grant, the actor and policy registrations, 2 reads; B: registrations + 3 reads
    expect([eventsOfA, eventsOfB]).toEqual([5, 5]);
    partitions = (
      await su.query<{ name: string }>(
        `select format('%I.%I', n.nspname, c.relname) as name from pg_inherits i
           join pg_class c on c.oid = i.inhrelid join pg_namespace n on n.oid = c.relnamespace
          where i.inhparent = 'audit_trail.events'::regclass order by 1`,
      )
    ).rows.map((r) => r.name);
    expect(partitions.length).toBeGreaterThan(0);
    reader = await connectAs(db, READER_A);
  });

  afterAll(async () => {
    await reader?.end();
  });

  const whatTheReaderSees = async (): Promise<void> => {
    const events = await reader.query<{ tenant_id: string; n: number }>(`select tenant_id, count(*)::int as n from audit_trail.events group by 1 order by 1`);
    expect(events.rows).toEqual([{ tenant_id: A, n: eventsOfA }]);
    expect((await reader.query(`select * from audit_trail.events where tenant_id = $1`, [B])).rows).toEqual([]);
    expect((await reader.query(`select * from audit_trail.events where resource_id like 'bravo%'`)).rows).toEqual([]);
    const heads = await reader.query<{ tenant_id: string; sequence_no: string }>(`select tenant_id, sequence_no::text from audit_trail.chain_heads order by 1`);
    expect(heads.rows).toEqual([{ tenant_id: A, sequence_no: String(eventsOfA) }]);

    const relations = await inReaderTransaction(() => everyRelation(reader));
    const leaks = Object.entries(relations).filter(([, o]) => o !== 'denied' && o.mentionsB);
    expect(leaks).toEqual([]);
    // The relations that hold tenant data show exactly tenant A's rows.
    expect(relations['audit_trail.events']).toEqual({ rows: eventsOfA, mentionsB: false });
    expect(relations['audit_trail.chain_heads']).toEqual({ rows: 1, mentionsB: false });
    expect(relations['audit_trail.actors']).toEqual({ rows: 1, mentionsB: false });
    // Partitions read directly: no privilege at all.
    for (const p of partitions) expect(relations[p], p).toBe('denied');

    expect(await verify(reader, B)).toMatchObject({ tenant_id: B, events_checked: '0', ok: false, problem: 'not found' });
    expect(await verify(reader, A)).toMatchObject({ tenant_id: A, events_checked: String(eventsOfA), ok: true });
  };

  async function inReaderTransaction<T>(fn: () => Promise<T>): Promise<T> {
    await reader.query('begin');
    try {
      return await fn();
    } finally {
      await reader.query('rollback');
    }
  }

  it('with no settings', async () => {
    await whatTheReaderSees();
  });

  it(`after set audit_trail.tenant_id = '${B}' (and the other audit GUCs)`, async () => {
    await reader.query(`set audit_trail.tenant_id = '${B}'`);
    await reader.query(`set audit_trail.actor_id = 'usr_bravo'`);
    try {
      await whatTheReaderSees();
    } finally {
      await reader.query('reset all');
    }
  });

  it('the reader can neither become the application role nor grant itself tenant B', async () => {
    expect((await serverError(reader.query('set role audit_trail_writer'))).code).toBe('42501');
    expect((await serverError(reader.query('set role audit_trail_owner'))).code).toBe('42501');
    expect((await serverError(reader.query(`select audit_trail.grant_tenant_read($1, $2)`, [READER_A, B]))).code).toBe('42501');
    expect((await serverError(reader.query(`insert into audit_trail.tenant_readers (role_oid, role_name, tenant_id) select oid, rolname, $1 from pg_roles where rolname = current_user`, [B]))).code).toBe('42501');
    expect((await reader.query(`select tenant_id from audit_trail.my_readable_tenants`)).rows).toEqual([{ tenant_id: A }]);
  });

  it('the application role sees exactly the tenant its audit_trail.tenant_id names (the weaker, pooled layer)', async () => {
    const app = await connectAs(db, APP);
    try {
      const seen = async (tenant: string | null): Promise<{ events: unknown[]; heads: unknown[] }> => {
        await app.query('begin');
        try {
          if (tenant !== null) await app.query(`select set_config('audit_trail.tenant_id', $1, true)`, [tenant]);
          const events = await app.query(`select tenant_id, count(*)::int as n from audit_trail.events group by 1 order by 1`);
          const heads = await app.query(`select tenant_id from audit_trail.chain_heads order by 1`);
          return { events: events.rows, heads: heads.rows };
        } finally {
          await app.query('rollback');
        }
      };
      expect(await seen(null)).toEqual({ events: [], heads: [] });
      expect(await seen(A)).toEqual({ events: [{ tenant_id: A, n: eventsOfA }], heads: [{ tenant_id: A }] });
      expect(await seen(B)).toEqual({ events: [{ tenant_id: B, n: eventsOfB }], heads: [{ tenant_id: B }] });
      // Partitions directly: no privilege.
      for (const p of partitions) expect((await serverError(app.query(`select * from ${p}`))).code, p).toBe('42501');
      // verify() runs with the caller's rights: tenant B is not found while the setting names A.
      await app.query('begin');
      try {
        await app.query(`select set_config('audit_trail.tenant_id', $1, true)`, [A]);
        expect(await verify(app, B)).toMatchObject({ events_checked: '0', ok: false, problem: 'not found' });
      } finally {
        await app.query('rollback');
      }
    } finally {
      await app.end();
    }
  });

  it('grant_tenant_read refuses a role that is a member of audit_trail_writer (42501), and maps nothing', async () => {
    const err = await serverError(su.query(`select audit_trail.grant_tenant_read($1, $2)`, [APP, A]));
    expect(err.code).toBe('42501');
    expect(err.hint ?? '').not.toBe('');
    expect((await su.query(`select count(*)::int as n from audit_trail.tenant_readers where role_name = $1`, [APP])).rows[0].n).toBe(0);
    expect((await su.query(`select pg_has_role($1, 'audit_trail_reader', 'member') as m`, [APP])).rows[0].m).toBe(false);
  });
});
