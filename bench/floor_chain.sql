-- The floor: the least a design can do and still have the structure the
-- product must have (SPEC: one synchronous write in the same transaction as
-- the change, a gapless per-tenant hash chain, partitioned storage), written
-- in PL/pgSQL as pg-audit-trail is. It shows how close any such design can get
-- to the unaudited throughput on this machine, whatever it records.
--
-- A row trigger appends to_jsonb(OLD) and to_jsonb(NEW) to a transaction-
-- private buffer (a temporary table); at commit a deferred constraint trigger
-- runs once per transaction and, under each tenant's head lock, numbers,
-- hashes (sha256 over the row images, the sequence number and the previous
-- hash) and inserts the rows, then moves the head.
-- Nothing else: no field delta, no tenant, actor or reason checks, no context,
-- no event id, no redaction, no guard triggers, no row-level security, one
-- partition. The tenant comes from audit_trail.tenant_id, as in the TPC-B script.
--
-- Install: psql -f bench/floor_chain.sql DBNAME
-- Attach:  select bench_floor.enable('pgbench_accounts');
create schema bench_floor;

create table bench_floor.heads (
  tenant_id text primary key,
  sequence_no bigint not null,
  record_hash bytea not null
);

create table bench_floor.events (
  tenant_id text not null,
  sequence_no bigint not null,
  ingested_at timestamptz not null default now(),
  op text not null,
  old_row jsonb,
  new_row jsonb,
  prev_hash bytea not null,
  record_hash bytea not null
) partition by range (ingested_at);
create table bench_floor.events_all partition of bench_floor.events
  for values from ('2000-01-01') to ('2100-01-01');
create index on bench_floor.events (tenant_id, sequence_no);

-- Window aggregate: prev_hash || record_hash of each row in order.
create function bench_floor.chain_step(p_state bytea, p_body bytea, p_sequence_no bigint, p_start bytea)
returns bytea language plpgsql immutable as $$
begin
  if p_state is null then
    return p_start || sha256(p_body || int8send(p_sequence_no) || p_start);
  end if;
  return substr(p_state, 33) || sha256(p_body || int8send(p_sequence_no) || substr(p_state, 33));
end
$$;
create aggregate bench_floor.chain_agg(bytea, bigint, bytea) (sfunc = bench_floor.chain_step, stype = bytea);

create function bench_floor.flush() returns trigger language plpgsql as $$
declare
  v_tenant text;
  v_seq bigint;
  v_prev bytea;
begin
  for v_tenant in select distinct p.tenant_id from pg_temp.bench_floor_pending p order by 1 loop
    select h.sequence_no, h.record_hash into v_seq, v_prev
      from bench_floor.heads h where h.tenant_id = v_tenant for no key update;
    if not found then
      insert into bench_floor.heads values (v_tenant, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
        on conflict do nothing;
      select h.sequence_no, h.record_hash into v_seq, v_prev
        from bench_floor.heads h where h.tenant_id = v_tenant for no key update;
    end if;
    with numbered as (
      select p.ordinal, p.op, p.old_row, p.new_row, v_seq + row_number() over (order by p.ordinal) as sequence_no
        from pg_temp.bench_floor_pending p where p.tenant_id = v_tenant
    ), chained as (
      select n.*, bench_floor.chain_agg(convert_to(coalesce(n.old_row::text, '') || coalesce(n.new_row::text, ''), 'UTF8'),
                                        n.sequence_no, v_prev) over (order by n.ordinal) as link
        from numbered n
    ), written as (
      insert into bench_floor.events (tenant_id, sequence_no, op, old_row, new_row, prev_hash, record_hash)
      select v_tenant, c.sequence_no, c.op, c.old_row, c.new_row, substr(c.link, 1, 32), substr(c.link, 33) from chained c
      returning sequence_no, record_hash
    )
    select w.sequence_no, w.record_hash into v_seq, v_prev from written w order by w.sequence_no desc limit 1;
    update bench_floor.heads set sequence_no = v_seq, record_hash = v_prev where tenant_id = v_tenant;
  end loop;
  delete from pg_temp.bench_floor_pending;
  return null;
end
$$;

create function bench_floor.create_buffer() returns void language plpgsql as $$
begin
  create temporary table bench_floor_pending (
    ordinal bigint generated always as identity,
    first boolean not null,
    tenant_id text not null,
    op text not null,
    old_row jsonb,
    new_row jsonb
  );
  create constraint trigger bench_floor_flush after insert on pg_temp.bench_floor_pending
    deferrable initially deferred for each row when (new.first) execute function bench_floor.flush();
end
$$;

create function bench_floor.capture() returns trigger language plpgsql as $$
begin
  if to_regclass('pg_temp.bench_floor_pending') is null then
    perform bench_floor.create_buffer();
  end if;
  insert into pg_temp.bench_floor_pending (first, tenant_id, op, old_row, new_row)
  select not exists (select from pg_temp.bench_floor_pending), current_setting('audit_trail.tenant_id'), TG_OP,
         case when TG_OP <> 'INSERT' then to_jsonb(OLD) end, case when TG_OP <> 'DELETE' then to_jsonb(NEW) end;
  return null;
end
$$;

create function bench_floor.enable(target regclass) returns void language plpgsql as $$
begin
  execute format('create trigger bench_floor_capture after insert or update or delete on %s '
                 'for each row execute function bench_floor.capture()', target);
end
$$;
