-- The naive baseline: the audit trigger most hand-written and open-source
-- audit setups use. One generic PL/pgSQL row trigger stores the whole old and
-- new row as jsonb, with the table name, the operation and a timestamp, in one
-- table. No tenant, no actor check, no field delta, no hash chain.
--
-- Install: psql -f bench/naive_trigger.sql DBNAME
-- Attach:  select bench_naive_enable('pgbench_accounts');
create table if not exists bench_naive_audit (
  id bigserial primary key,
  table_name text not null,
  op text not null,
  changed_at timestamptz not null default now(),
  old_row jsonb,
  new_row jsonb
);

create or replace function bench_naive_audit_trigger() returns trigger
language plpgsql as $$
begin
  if TG_OP = 'INSERT' then
    insert into bench_naive_audit (table_name, op, new_row) values (TG_TABLE_NAME, TG_OP, to_jsonb(NEW));
  elsif TG_OP = 'UPDATE' then
    insert into bench_naive_audit (table_name, op, old_row, new_row) values (TG_TABLE_NAME, TG_OP, to_jsonb(OLD), to_jsonb(NEW));
  else
    insert into bench_naive_audit (table_name, op, old_row) values (TG_TABLE_NAME, TG_OP, to_jsonb(OLD));
  end if;
  return null;
end
$$;

create or replace function bench_naive_enable(target regclass) returns void
language plpgsql as $$
begin
  execute format('drop trigger if exists bench_naive_audit on %s', target);
  execute format('create trigger bench_naive_audit after insert or update or delete on %s '
                 'for each row execute function bench_naive_audit_trigger()', target);
end
$$;
