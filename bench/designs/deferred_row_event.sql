-- deferred_row_chain.sql with the event pg-audit-trail writes, built in the
-- same one statement at commit: the field delta (jsonb_each of the row
-- images), a ULID, the actor and context from the session's settings,
-- db_identity, and the canonical encoding and hash of docs/hash-chain.md
-- (audit_trail.encode_body() and chain_hash(): install pg-audit-trail first),
-- written into a copy of audit_trail.events. Still missing against the
-- product: the tenant's rules and actor registry, the checks at the change,
-- the settings of the moment of the change, guards, record(), bulk imports.
-- Needs: audit_trail
create table bench_design.trail (like audit_trail.events) partition by range (ingested_at);
create table bench_design.trail_all partition of bench_design.trail for values from ('2000-01-01') to ('2100-01-01');
create index on bench_design.trail (tenant_id, sequence_no) with (fillfactor = 100);

-- (tenants, events, events that do not follow their predecessor), with the product's own encoding
create function bench_design.check_trail() returns table (tenants bigint, events bigint, bad bigint)
language sql as $$
  select count(distinct tenant_id), count(*), count(*) filter (where not ok) from (
    select tenant_id,
           sequence_no = row_number() over w
           and prev_hash = coalesce(lag(record_hash) over w, audit_trail.genesis_hash())
           and record_hash = audit_trail.chain_hash(audit_trail.encode_body(event_id, tenant_id, occurred_at, ingested_at,
                 actor_type, actor_id, actor_name, auth_method, source_ip, user_agent_hash, action, resource_type,
                 resource_id, parent_type, parent_id, changes, reason, context, db_identity), sequence_no, prev_hash) as ok
      from bench_design.trail window w as (partition by tenant_id order by sequence_no)) s
$$;

create function bench_design.capture() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set intervalstyle = 'postgres'
set extra_float_digits = 3
set bytea_output = 'hex'
set plan_cache_mode = force_generic_plan
as $$
declare
  o constant jsonb := TG_ARGV[0]::jsonb;
  v_tenant text := current_setting('audit_trail.tenant_id');
  v_old jsonb;
  v_new jsonb;
  v_now timestamptz := clock_timestamp();
  v_ms bigint := floor(extract(epoch from v_now) * 1000)::bigint;
  v_random bytea := uuid_send(gen_random_uuid());
begin
  if TG_OP <> 'INSERT' then v_old := to_jsonb(OLD); end if;
  if TG_OP <> 'DELETE' then v_new := to_jsonb(NEW); end if;
  with d as (
    select to_jsonb(array_agg(row(f.key, f.before_value, f.after_value)::audit_trail.field_change order by f.key)) as changes
      from (select e.key,
                   case when v_new is null then e.value else v_old -> e.key end as before_value,
                   case when v_new is not null then e.value end as after_value
              from jsonb_each(coalesce(v_new, v_old)) e) f
     where TG_OP <> 'UPDATE' or f.after_value is distinct from f.before_value
  ), b as (
    select audit_trail.ulid_encode(v_ms, v_random) as event_id,
           coalesce(nullif(current_setting('audit_trail.occurred_at', true), '')::timestamptz, v_now) as occurred_at,
           coalesce(nullif(current_setting('audit_trail.actor_type', true), ''), 'user') as actor_type,
           nullif(current_setting('audit_trail.actor_id', true), '') as actor_id,
           nullif(current_setting('audit_trail.actor_name', true), '') as actor_name,
           nullif(current_setting('audit_trail.auth_method', true), '') as auth_method,
           nullif(current_setting('audit_trail.source_ip', true), '') as source_ip,
           nullif(current_setting('audit_trail.user_agent_hash', true), '') as user_agent_hash,
           case TG_OP when 'INSERT' then 'create' when 'DELETE' then 'delete' else 'update' end as action,
           o ->> 'resource_type' as resource_type,
           coalesce(v_new, v_old) ->> (o -> 'key_columns' ->> 0) as resource_id,
           d.changes,
           nullif(current_setting('audit_trail.reason', true), '') as reason,
           jsonb_build_object('table', o ->> 'table') || jsonb_strip_nulls(jsonb_build_object(
             'request_id', nullif(current_setting('audit_trail.request_id', true), ''),
             'capture_method', 'trigger')) as context,
           audit_trail.db_identity_text(session_user::text, current_setting('application_name'),
              inet_client_addr(), pg_backend_pid(), pg_current_xact_id()) as db_identity
      from d where d.changes is not null
  ), h as (
    update bench_design.heads h set sequence_no = h.sequence_no + 1, prev_hash = h.record_hash,
           record_hash = audit_trail.chain_hash(audit_trail.encode_body(b.event_id, v_tenant, b.occurred_at, v_now,
              b.actor_type, b.actor_id, b.actor_name, b.auth_method, b.source_ip, b.user_agent_hash, b.action,
              b.resource_type, b.resource_id, null, null, b.changes, b.reason, b.context, b.db_identity), h.sequence_no + 1, h.record_hash)
      from b where h.tenant_id = v_tenant
    returning h.sequence_no, h.prev_hash, h.record_hash
  )
  insert into bench_design.trail (event_id, tenant_id, sequence_no, occurred_at, ingested_at, actor_type,
          actor_id, actor_name, auth_method, source_ip, user_agent_hash, action, resource_type, resource_id,
          parent_type, parent_id, changes, reason, context, db_identity, encoding_version, prev_hash, record_hash)
  select b.event_id, v_tenant, h.sequence_no, b.occurred_at, v_now, b.actor_type, b.actor_id, b.actor_name, b.auth_method,
         b.source_ip, b.user_agent_hash, b.action, b.resource_type, b.resource_id, null, null, b.changes, b.reason, b.context,
         b.db_identity, 1, h.prev_hash, h.record_hash
    from b, h;
  return null;
end $$;

create function bench_design.enable(t regclass) returns void language plpgsql as $$
declare
  o jsonb := jsonb_build_object('table', t::text, 'resource_type', t::text, 'key_columns',
     case t::text when 'pgbench_accounts' then '["aid"]' when 'pgbench_tellers' then '["tid"]' when 'pgbench_branches' then '["bid"]' else '["tid","aid","mtime"]' end::jsonb);
begin
  execute format('create constraint trigger bench_design_capture after insert or update or delete on %s deferrable initially deferred '
                 'for each row execute function bench_design.capture(%L)', t, o::text);
end $$;
