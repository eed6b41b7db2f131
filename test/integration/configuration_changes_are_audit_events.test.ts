/**
 * A change to a tenant's rules (retention included: the Retention Cliff) or to
 * its actor registry is itself an audit event in that tenant's chain, with the
 * before and after of every changed rule and who made it. Changes to the
 * installation defaults (tenant '*') go to the '_system' chain.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.ts';
import { inTransaction, verify } from './support/trail.ts';

interface EventRow {
  action: string;
  resource_type: string;
  resource_id: string;
  actor_id: string;
  changes: Array<{ field: string; before: unknown; after: unknown }>;
}

describe('configuration changes are audit events', () => {
  const db = useTestDatabase('configuration_changes_are_audit_events');
  let c: pg.Client;

  async function lastEvent(tenant: string): Promise<EventRow> {
    const { rows } = await c.query<EventRow>(
      `select action, resource_type, resource_id, actor_id, changes from audit_trail.events
        where tenant_id = $1 order by sequence_no desc limit 1`,
      [tenant],
    );
    return rows[0]!;
  }

  beforeAll(async () => {
    c = await db.connect();
  });

  it('a retention change is an update event of the tenant with before and after', async () => {
    await c.query(`insert into audit_trail.tenant_policies (tenant_id) values ('auto_tier1')`);
    await inTransaction(c, { actor_id: 'usr_qa_lead' }, (t) =>
      t.query(`update audit_trail.tenant_policies set retention = interval '15 years' where tenant_id = 'auto_tier1'`),
    );
    expect(await lastEvent('auto_tier1')).toEqual({
      action: 'update',
      resource_type: 'tenant_policy',
      resource_id: 'auto_tier1',
      actor_id: 'usr_qa_lead',
      changes: [{ field: 'retention', before: '10 years', after: '15 years' }],
    });
  });

  it('suspending an actor is an update event; without a session actor the database login is named', async () => {
    await c.query(`insert into audit_trail.actors (tenant_id, actor_id, display_name) values ('auto_tier1', 'usr_ops', 'O. Operator')`);
    await c.query(`update audit_trail.actors set status = 'suspended' where tenant_id = 'auto_tier1' and actor_id = 'usr_ops'`);
    expect(await lastEvent('auto_tier1')).toEqual({
      action: 'update',
      resource_type: 'actor',
      resource_id: 'usr_ops',
      actor_id: 'postgres',
      changes: [{ field: 'status', before: 'active', after: 'suspended' }],
    });
  });

  it('an update that changes nothing writes nothing', async () => {
    const before = await c.query(`select count(*)::int as n from audit_trail.events where tenant_id = 'auto_tier1'`);
    await c.query(`update audit_trail.actors set status = status where tenant_id = 'auto_tier1'`);
    const after = await c.query(`select count(*)::int as n from audit_trail.events where tenant_id = 'auto_tier1'`);
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it('changes to the defaults row go to the _system chain, and both chains verify', async () => {
    await c.query(`update audit_trail.tenant_policies set reason_min_length = 15 where tenant_id = '*'`);
    expect(await lastEvent('_system')).toMatchObject({
      action: 'update',
      resource_type: 'tenant_policy',
      resource_id: '*',
      changes: [{ field: 'reason_min_length', before: 10, after: 15 }],
    });
    expect(await verify(c, '_system')).toMatchObject({ ok: true });
    expect(await verify(c, 'auto_tier1')).toMatchObject({ ok: true });
  });
});
