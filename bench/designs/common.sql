-- Shared by the design prototypes of bench/designs.ts: a gapless per-tenant
-- chain head for each of the 100 tenants of bench/pgbench/tpcb_tenant.sql, and
-- a partitioned, indexed events table. A prototype's record_hash is
-- sha256(old row text || new row text || int8 sequence_no || prev_hash), as in
-- bench/floor_chain.sql; bench/designs.ts recomputes every chain after the runs.
create schema bench_design;
create table bench_design.heads (
  tenant_id text primary key,
  sequence_no bigint not null,
  prev_hash bytea,
  record_hash bytea not null
) with (fillfactor = 20);
insert into bench_design.heads
select 't' || i, 0, null, '\x0000000000000000000000000000000000000000000000000000000000000000' from generate_series(1, 100) i;
create table bench_design.events (
  tenant_id text not null,
  sequence_no bigint not null,
  ingested_at timestamptz not null default now(),
  op text not null,
  actor_id text,
  old_row jsonb,
  new_row jsonb,
  prev_hash bytea not null,
  record_hash bytea not null
) partition by range (ingested_at);
create table bench_design.events_all partition of bench_design.events for values from ('2000-01-01') to ('2100-01-01');
create index on bench_design.events (tenant_id, sequence_no) with (fillfactor = 100);
