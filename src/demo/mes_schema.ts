/**
 * The demo's small MES schema: production orders and downtime records of a
 * plant, as an existing MES application would have them, and the capture
 * options that put them under audit (the tenant is the row's plant_id).
 */
import type pg from 'pg';

export const MES_TABLES = ['mes.production_orders', 'mes.downtime_records'] as const;

const SCHEMA_SQL = `
create schema mes;

create table mes.production_orders (
  plant_id   text not null,
  order_no   text not null,
  material   text not null,
  quantity   numeric(12, 3) not null check (quantity > 0),
  status     text not null default 'created'
             check (status in ('created', 'released', 'running', 'completed', 'cancelled')),
  due_date   date,
  primary key (plant_id, order_no)
);
comment on table mes.production_orders is 'Production orders of a plant (audit-trail demo).';

create table mes.downtime_records (
  plant_id    text not null,
  downtime_id text not null,
  order_no    text not null,
  line_id     text not null,
  started_at  timestamptz not null,
  ended_at    timestamptz,
  reason_code text not null,
  comment     text,
  deleted_at  timestamptz,
  primary key (plant_id, downtime_id),
  foreign key (plant_id, order_no) references mes.production_orders (plant_id, order_no)
);
comment on table mes.downtime_records is
  'Machine downtime per line, classified by reason code; rows are never deleted, only marked deleted (audit-trail demo).';
`;

/** Options of audit_trail.enable() per table (SPEC "Public contract"). */
export const CAPTURE_OPTIONS: Record<(typeof MES_TABLES)[number], Record<string, unknown>> = {
  'mes.production_orders': {
    tenant_column: 'plant_id',
    resource_type: 'production_order',
    // Status and quantity changes are GMP-relevant: they need a reason.
    reason_required: ['status', 'quantity'],
    hard_delete: 'forbid',
  },
  'mes.downtime_records': {
    tenant_column: 'plant_id',
    resource_type: 'downtime_record',
    parent: { column: 'order_no', resource_type: 'production_order' },
    // A (re)classification of downtime changes OEE figures: always with a reason.
    reason_required: ['reason_code'],
    soft_delete: { column: 'deleted_at' },
    hard_delete: 'soft',
  },
};

/** Creates the schema (as the MES vendor would) and enables capture on both tables (as the DBA would). */
export async function createMesSchema(client: pg.ClientBase): Promise<void> {
  await client.query(SCHEMA_SQL);
  for (const table of MES_TABLES) {
    await client.query('select audit_trail.enable($1::regclass, $2::jsonb)', [table, JSON.stringify(CAPTURE_OPTIONS[table])]);
  }
}
