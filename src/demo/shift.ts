/**
 * One early shift at plant_hd: the actor registry and its policy, the changes
 * three named people make through the MES (each in its own transaction, with
 * who and why in the audit_trail.* settings, as the MES application would
 * set them), an application-level batch release through audit_trail.record(),
 * and the changes the policy refuses (a shared terminal login, a suspended
 * account).
 */
import type pg from 'pg';
import { DatabaseError } from '../errors.ts';

export const TENANT = 'plant_hd';
export const ORDER_NO = 'PO-24-0815';
export const DOWNTIME_ID = 'DT-0417';
export const DUPLICATE_DOWNTIME_ID = 'DT-0418';
export const MATERIAL_WAIT = 'M-01-MATERIAL-WAIT';
export const TECHNICAL_FAULT = 'T-03-TECHNICAL-FAULT';

export interface DemoActor {
  actor_id: string;
  display_name: string;
  role: string;
  status: 'active' | 'suspended';
  is_shared_account: boolean;
}

export const ACTORS: DemoActor[] = [
  { actor_id: 'usr_anna.keller', display_name: 'Anna Keller', role: 'shift supervisor', status: 'active', is_shared_account: false },
  { actor_id: 'usr_tomas.novak', display_name: 'Tomas Novak', role: 'line 2 operator', status: 'active', is_shared_account: false },
  { actor_id: 'usr_lea.schmidt', display_name: 'Lea Schmidt', role: 'QA specialist', status: 'active', is_shared_account: false },
  { actor_id: 'usr_jan.berger', display_name: 'Jan Berger', role: 'former operator (left in March)', status: 'suspended', is_shared_account: false },
  { actor_id: 'line2-terminal', display_name: 'Line 2 terminal (shared login)', role: 'shared terminal account', status: 'active', is_shared_account: true },
];

/**
 * Registers the actors and the tenant's policy (unknown, suspended and shared
 * accounts are refused), in one transaction done by the database login that
 * also runs `audit-trail anchor`. That login is registered first, as a system
 * actor: registry and policy changes, and every anchoring, are events of the
 * tenant attributed to it, and the policy refuses unknown actors.
 * Returns the login's name.
 */
export async function registerActors(client: pg.ClientBase): Promise<string> {
  await client.query('begin');
  try {
    const login = (await client.query<{ login: string }>('select session_user as login')).rows[0]?.login ?? 'postgres';
    await client.query(`select set_config('audit_trail.actor_id', $1, true), set_config('audit_trail.actor_type', 'system', true)`, [login]);
    await client.query(
      `insert into audit_trail.actors (tenant_id, actor_id, display_name, actor_type)
       values ($1, $2, 'Platform operator (database login ' || $2 || ')', 'system')`,
      [TENANT, login],
    );
    for (const a of ACTORS) {
      await client.query(
        `insert into audit_trail.actors (tenant_id, actor_id, display_name, actor_type, status, is_shared_account)
         values ($1, $2, $3, 'user', $4, $5)`,
        [TENANT, a.actor_id, a.display_name, a.status, a.is_shared_account],
      );
    }
    await client.query(
      `insert into audit_trail.tenant_policies (tenant_id, reject_unknown_actors, reject_suspended_actors, reject_shared_actors)
       values ($1, true, true, true)`,
      [TENANT],
    );
    await client.query('commit');
    return login;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  }
}

/** One change of the shift, as shown to the reader. */
export interface ShiftChange {
  actor_id: string;
  actor_name: string;
  /** What happened, in a few words. */
  summary: string;
  reason: string;
}

interface Step extends ShiftChange {
  sql: string;
  params: unknown[];
}

function actorName(id: string): string {
  return ACTORS.find((a) => a.actor_id === id)?.display_name ?? id;
}

function step(actor_id: string, summary: string, reason: string, sql: string, params: unknown[]): Step {
  return { actor_id, actor_name: actorName(actor_id), summary, reason, sql, params };
}

const ANNA = 'usr_anna.keller';
const TOMAS = 'usr_tomas.novak';
const LEA = 'usr_lea.schmidt';

/** The shift, in order. Times are today's, in UTC, so the trail reads like a real early shift. */
function shiftSteps(day: string): Step[] {
  const at = (hhmm: string): string => `${day}T${hhmm}:00Z`;
  return [
    step(ANNA, `order ${ORDER_NO} created (1,200 brake calipers BC-220)`, 'Created from SAP planning run 2024-W17, planned order PR-5531',
      `insert into mes.production_orders (plant_id, order_no, material, quantity, status, due_date)
       values ($1, $2, 'BC-220 brake caliper', 1200, 'created', $3::date + 2)`, [TENANT, ORDER_NO, day]),
    step(ANNA, `order ${ORDER_NO} released to line 2`, 'Material availability confirmed by warehouse, pick list PL-7781; line 2 set up',
      `update mes.production_orders set status = 'released' where plant_id = $1 and order_no = $2`, [TENANT, ORDER_NO]),
    step(TOMAS, `order ${ORDER_NO} started on line 2`, 'Shift start; first-article check FA-0815-01 passed',
      `update mes.production_orders set status = 'running' where plant_id = $1 and order_no = $2`, [TENANT, ORDER_NO]),
    step(TOMAS, `downtime ${DOWNTIME_ID} recorded: line 2 stopped 08:12-08:47, ${MATERIAL_WAIT}`,
      'Station 3 starved, housings not delivered; logistics ticket LOG-2291',
      `insert into mes.downtime_records (plant_id, downtime_id, order_no, line_id, started_at, ended_at, reason_code, comment)
       values ($1, $2, $3, 'line_02', $4, $5, $6, 'Station 3 waiting for housings')`,
      [TENANT, DOWNTIME_ID, ORDER_NO, at('08:12'), at('08:47'), MATERIAL_WAIT]),
    step(TOMAS, `downtime ${DUPLICATE_DOWNTIME_ID} recorded (the same stop, entered twice)`,
      'Station 3 starved, housings not delivered; logistics ticket LOG-2291',
      `insert into mes.downtime_records (plant_id, downtime_id, order_no, line_id, started_at, ended_at, reason_code, comment)
       values ($1, $2, $3, 'line_02', $4, $5, $6, 'Station 3 waiting for housings')`,
      [TENANT, DUPLICATE_DOWNTIME_ID, ORDER_NO, at('08:12'), at('08:47'), MATERIAL_WAIT]),
    step(ANNA, `downtime ${DOWNTIME_ID} reclassified ${MATERIAL_WAIT} -> ${TECHNICAL_FAULT}`,
      'PLC alarm log 4711 shows servo fault E-217 on station 3 at 08:11; housings were in stock (LOG-2291 closed as no shortage)',
      `update mes.downtime_records set reason_code = $3, comment = 'Servo fault E-217 on station 3'
        where plant_id = $1 and downtime_id = $2`, [TENANT, DOWNTIME_ID, TECHNICAL_FAULT]),
    step(ANNA, `downtime ${DUPLICATE_DOWNTIME_ID} deleted (soft delete)`,
      `Duplicate of ${DOWNTIME_ID}: same stop entered twice at the line 2 terminal, same start and end time`,
      `delete from mes.downtime_records where plant_id = $1 and downtime_id = $2`, [TENANT, DUPLICATE_DOWNTIME_ID]),
    step(TOMAS, `order ${ORDER_NO} completed`, 'Quantity 1,200 reached, counted by end-of-line scanner EOL-2',
      `update mes.production_orders set status = 'completed' where plant_id = $1 and order_no = $2`, [TENANT, ORDER_NO]),
    step(LEA, `batch B-24-0815-01 released (audit_trail.record 'execute')`,
      'QA release: batch record reviewed, in-process checks IPC-0815 within limits, deviation DV-112 closed',
      `select audit_trail.record('execute', 'batch', 'B-24-0815-01',
         '[{"field": "status", "before": "quarantine", "after": "released"}]'::jsonb,
         $2, 'production_order', $3, '{"signature_meaning": "approved for release"}'::jsonb, $1)`,
      [TENANT, 'QA release: batch record reviewed, in-process checks IPC-0815 within limits, deviation DV-112 closed', ORDER_NO]),
  ];
}

/** Runs `sql` in a transaction of its own, with who and why set as the MES application sets them. */
async function asActor(client: pg.ClientBase, actorId: string, reason: string, sql: string, params: unknown[]): Promise<void> {
  await client.query('begin');
  try {
    await client.query(`select audit_trail.set_context($1::jsonb)`, [
      JSON.stringify({
        actor_id: actorId,
        actor_type: 'user',
        auth_method: 'badge+pin',
        source_ip: '10.45.12.88',
        reason,
        capture_method: 'mes-terminal',
        context: { plant_id: TENANT, line_id: 'line_02', terminal: 'T-L2-01' },
      }),
    ]);
    await client.query(sql, params);
    await client.query('commit');
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  }
}

/** Runs the shift; returns the changes in the order made. */
export async function runShift(client: pg.ClientBase, day = new Date().toISOString().slice(0, 10)): Promise<ShiftChange[]> {
  const done: ShiftChange[] = [];
  for (const s of shiftSteps(day)) {
    try {
      await asActor(client, s.actor_id, s.reason, s.sql, s.params);
    } catch (err) {
      const e = DatabaseError.fromPg(err);
      throw new DatabaseError(`the shift's change "${s.summary}" by ${s.actor_name} failed: ${e.message}`, { code: e.code, detail: e.detail, hint: e.hint }, err);
    }
    done.push({ actor_id: s.actor_id, actor_name: s.actor_name, summary: s.summary, reason: s.reason });
  }
  return done;
}

/** A change the tenant's policy refused. */
export interface Refusal {
  actor_id: string;
  attempted: string;
  /** The SQLSTATE (AT002: actor refused). */
  sqlstate: string;
  message: string;
  /** Events of the tenant before and after the attempt: a refusal writes nothing. */
  events_before: number;
  events_after: number;
}

export async function eventCount(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ n: string }>('select count(*) as n from audit_trail.events where tenant_id = $1', [TENANT]);
  return Number(rows[0]?.n ?? 0);
}

/**
 * The shared terminal login and the suspended account try to change the
 * downtime record; both are refused. Returns the refusals, or throws if a
 * change got through (the policy did not hold).
 */
export async function attemptRefusedChanges(client: pg.ClientBase): Promise<Refusal[]> {
  const attempts = [
    { actor_id: 'line2-terminal', attempted: `change the comment of downtime ${DOWNTIME_ID}` },
    { actor_id: 'usr_jan.berger', attempted: `change the comment of downtime ${DOWNTIME_ID}` },
  ];
  const out: Refusal[] = [];
  for (const a of attempts) {
    const before = await eventCount(client);
    try {
      await asActor(client, a.actor_id, 'Comment completed after the shift handover meeting',
        `update mes.downtime_records set comment = comment || ' (see handover)' where plant_id = $1 and downtime_id = $2`, [TENANT, DOWNTIME_ID]);
    } catch (err) {
      const e = DatabaseError.fromPg(err);
      out.push({ ...a, sqlstate: e.code, message: e.message, events_before: before, events_after: await eventCount(client) });
      continue;
    }
    throw new DatabaseError(`the change by ${a.actor_id} was accepted, but tenant ${TENANT}'s policy should refuse it`, { code: 'XX000' });
  }
  return out;
}
