-- Shared by the design prototypes of bench/designs.ts: a gapless per-tenant
-- chain head for each of the 100 tenants of bench/pgbench/tpcb_tenant.sql, and
-- a partitioned, indexed events table. A prototype's record_hash is
-- sha256(old row text || new row text || int8 sequence_no || prev_hash), as in
-- bench/floor_chain.sql; check() recomputes every chain.
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

-- (tenants, events, events that do not follow their predecessor: gap, link or hash)
create function bench_design.check() returns table (tenants bigint, events bigint, bad bigint)
language sql as $$
  select count(distinct tenant_id), count(*), count(*) filter (where not ok) from (
    select tenant_id,
           sequence_no = row_number() over w
           and prev_hash = coalesce(lag(record_hash) over w, '\x0000000000000000000000000000000000000000000000000000000000000000')
           and record_hash = sha256(convert_to(coalesce(old_row::text, '') || coalesce(new_row::text, ''), 'UTF8')
                                    || int8send(sequence_no) || prev_hash) as ok
      from bench_design.events window w as (partition by tenant_id order by sequence_no)) s
$$;
