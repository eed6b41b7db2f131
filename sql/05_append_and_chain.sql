-- The write path shared by the capture triggers and audit_trail.record().
--
-- 1. At the change, the capture trigger (06_capture_triggers.sql) makes the
--    checks that need no look-up (tenant, actor present, reason present) and
--    puts the raw material in a transaction-private buffer: a temporary table
--    of this session, owned by audit_trail_owner. audit_trail.record() checks
--    its event completely and buffers it built (append_event below). No lock
--    on any shared row is taken, so writers of one tenant do not wait for each
--    other while their transactions run.
-- 2. At commit a deferred constraint trigger runs flush_pending_events() once
--    per transaction. Set-based, per tenant, one statement builds the events
--    from the raw material (field deltas, keys, context) and applies the
--    tenant's rules (actor registry, reason quality); then, with the tenant's
--    chain head locked, a second statement numbers, encodes and chains them
--    and inserts them into audit_trail.events, and the head moves. Heads are
--    locked in tenant order, so two transactions never deadlock on them, and
--    each is held from that second statement to the end of the commit only.
--    Doing the work set-based at commit, rather than in PL/pgSQL per row, is
--    what keeps capture cheap (docs/architecture.md).
-- The buffer is never visible to another session, never durable, and gone
-- with the transaction: if the transaction commits its events are in the
-- trail, if it rolls back neither the change nor the event exists.

-- Genesis: the prev_hash of sequence_no 1.
create function audit_trail.genesis_hash() returns bytea
language sql immutable parallel safe
return '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;

-- The chain as a running aggregate: each step hashes a body at its position
-- after the previous event's hash (the first after p_start, the head's hash).
-- The state is prev_hash || record_hash of the last event, so one window pass
-- gives both columns of an event. (PL/pgSQL on purpose: an SQL-language
-- transition function is planned anew in every statement that runs the
-- aggregate, ~170 us per transaction here.)
create function audit_trail.chain_step(p_state bytea, p_body bytea, p_sequence_no bigint, p_start bytea) returns bytea
language plpgsql immutable parallel safe
-- No SET clause: it would cost every row; the body calls only schema-qualified,
-- creation-bound functions.
as $$
begin
  if p_state is null then
    return p_start || audit_trail.chain_hash(p_body, p_sequence_no, p_start);
  end if;
  return substr(p_state, 33) || audit_trail.chain_hash(p_body, p_sequence_no, substr(p_state, 33));
end
$$;

create aggregate audit_trail.chain_agg(bytea, bigint, bytea) (
  sfunc = audit_trail.chain_step,
  stype = bytea
);
comment on aggregate audit_trail.chain_agg(bytea, bigint, bytea) is
  'Window aggregate over (body, sequence_no, head hash before the first): prev_hash || record_hash of each event.';

-- Creates this session's buffer and its commit trigger (once per session).
-- The event that finds the buffer empty carries requests_flush, and only that
-- row queues the deferred trigger, so the commit step runs once per
-- transaction however many events it has. The flush empties the buffer with
-- DELETE; the capture trigger truncates it when dead rows have piled up.
-- (ON COMMIT DELETE ROWS would truncate at every commit, and a truncation
-- invalidates the cached plans that read the buffer: every transaction would
-- plan the capture statements anew.) A pooled session keeps this table across
-- an upgrade: a release that changes its columns must also rename it
-- (docs/migrations.md, "Upgrades").
create function audit_trail.create_pending_buffer()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  create temporary table audit_trail_pending (
    ordinal bigint generated always as identity,
    requests_flush boolean not null,
    tenant_id text not null,
    ingested_at timestamptz not null,
    -- a captured row change (event built at commit) ...
    table_options jsonb,
    operation text,
    old_row jsonb,
    new_row jsonb,
    flagged boolean,  -- JSON columns configured, or values redacted or digested: the delta may mark fields
    json_nulls_old text[],
    json_nulls_new text[],
    digested_old text[],
    digested_new text[],
    redacted text[],
    -- ... or an event built and checked by append_event() (registry_applies: its
    -- actor is one of the tenant's registry, checked again at commit), or built at
    -- commit from the captured change whose ordinal built_from holds
    registry_applies boolean,
    built_from bigint,
    event_id text,
    action text,
    resource_type text,
    resource_id text,
    parent_type text,
    parent_id text,
    changes jsonb,
    occurred_at timestamptz,
    context jsonb,
    -- the audit_trail.* settings at the moment of the change
    actor_id text,
    actor_type text,
    actor_name text,
    auth_method text,
    source_ip text,
    user_agent_hash text,
    reason text,
    occurred_at_setting text,
    context_setting text,
    request_id text,
    session_id text,
    correlation_id text,
    capture_method text
  );
  create constraint trigger audit_trail_flush_at_commit
    after insert on pg_temp.audit_trail_pending
    deferrable initially deferred
    for each row when (new.requests_flush)
    execute function audit_trail.flush_pending_events();
end
$$;
comment on function audit_trail.create_pending_buffer() is
  'Internal: creates the session''s transaction-private event buffer and its commit trigger.';

-- Empties a buffer bloated by dead rows, when the transaction has nothing in it.
-- (Measured at every change: a flag raised by the commit step would be lost to
-- RESET ALL in a pool, and no commit step runs for a transaction that rolls back.)
create function audit_trail.truncate_idle_buffer()
returns void
language plpgsql
as $$
begin
  if not exists (select from pg_temp.audit_trail_pending) then
    truncate pg_temp.audit_trail_pending;
  end if;
end
$$;
comment on function audit_trail.truncate_idle_buffer() is 'Internal: truncates the session''s event buffer when it is empty but bloated.';

create function audit_trail.refuse_foreign_buffer()
returns void
language plpgsql
as $$
begin
  raise exception 'a temporary table named audit_trail_pending exists that pg-audit-trail did not create'
    using errcode = '42501',
          hint = 'Drop your temporary table of this name; it is reserved for the audit trail''s commit buffer.';
end
$$;
comment on function audit_trail.refuse_foreign_buffer() is 'Internal: refuses a same-named buffer table that another role created.';

-- Buffers an event built and checked by append_event().
create function audit_trail.buffer_event(
  p_tenant text, p_ingested_at timestamptz, p_event_id text, p_action text, p_resource_type text,
  p_resource_id text, p_parent_type text, p_parent_id text, p_changes jsonb, p_occurred_at timestamptz,
  p_actor_type text, p_actor_id text, p_actor_name text, p_auth_method text, p_source_ip text,
  p_user_agent_hash text, p_reason text, p_context jsonb, p_registry_applies boolean)
returns void
language plpgsql
as $$
begin
  if to_regclass('pg_temp.audit_trail_pending') is null then
    perform audit_trail.create_pending_buffer();
  elsif pg_relation_size('pg_temp.audit_trail_pending') > 65536 then
    perform audit_trail.truncate_idle_buffer();
  end if;
  insert into pg_temp.audit_trail_pending (requests_flush, tenant_id, ingested_at, event_id, action, resource_type,
      resource_id, parent_type, parent_id, changes, occurred_at, context, actor_type, actor_id, actor_name,
      auth_method, source_ip, user_agent_hash, reason, registry_applies)
  select not exists (select from pg_temp.audit_trail_pending), p_tenant, p_ingested_at, p_event_id, p_action,
      p_resource_type, p_resource_id, p_parent_type, p_parent_id, p_changes, p_occurred_at, p_context, p_actor_type,
      p_actor_id, p_actor_name, p_auth_method, p_source_ip, p_user_agent_hash, p_reason, p_registry_applies
   where (select c.relowner from pg_class c where c.oid = 'pg_temp.audit_trail_pending'::regclass)
         = 'audit_trail_owner'::regrole;
  if not found then
    perform audit_trail.refuse_foreign_buffer();
  end if;
end
$$;
comment on function audit_trail.buffer_event is 'Internal: puts a built, checked event in the session''s buffer.';

create function audit_trail.append_event(
  p_tenant text,
  p_action text,
  p_resource_type text,
  p_resource_id text,
  p_parent_type text,
  p_parent_id text,
  p_changes jsonb,
  p_reason_required boolean,
  p_actor_required boolean,
  p_capture_method text,
  p_source jsonb,
  p_reason text default null,
  p_occurred_at timestamptz default null,
  -- false for administrative events: their actor is a database login, not an
  -- application actor of the tenant's registry
  p_registry_applies boolean default true)
returns text
language plpgsql
-- No SET clauses: only the owner may call it, from functions that pin search_path.
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_actor_id text := nullif(current_setting('audit_trail.actor_id', true), '');
  v_actor_type text := coalesce(nullif(current_setting('audit_trail.actor_type', true), ''), 'user');
  v_actor_name text := nullif(current_setting('audit_trail.actor_name', true), '');
  v_source_ip text := nullif(current_setting('audit_trail.source_ip', true), '');
  v_occurred_text text := nullif(current_setting('audit_trail.occurred_at', true), '');
  v_context_text text := nullif(current_setting('audit_trail.context', true), '');
  v_reason text := coalesce(p_reason, nullif(current_setting('audit_trail.reason', true), ''));
  v_reject_unknown boolean;
  v_reject_suspended boolean;
  v_reject_shared boolean;
  v_reason_min_length integer;
  v_weak_reasons text[];
  v_actor_known boolean;
  v_actor_status text;
  v_actor_shared boolean;
  v_actor_display_name text;
  v_occurred_at timestamptz := p_occurred_at;
  v_context jsonb;
  v_event_id text;
  v_auth_method text;
  v_user_agent_hash text;
  v_ms bigint;
  v_random bytea;
begin
  if p_tenant is null or p_tenant = '' then
    raise exception 'no tenant for this audit event (%.%)', p_resource_type, coalesce(p_resource_id, '')
      using errcode = 'AT005',
            hint = 'SET LOCAL audit_trail.tenant_id = ''<tenant>''; or enable the table with a tenant_column or a fixed tenant.';
  end if;
  if p_tenant = '*' then
    raise exception 'tenant id "*" is reserved' using errcode = '22023', hint = 'Use another tenant id.';
  end if;
  if v_actor_type not in ('user', 'service', 'system') then
    perform audit_trail.check_context_value('actor_type', v_actor_type);
  end if;
  -- The 65536-byte limit of settings set with SET LOCAL (set_context() checks its own).
  if octet_length(concat(v_actor_id, v_actor_name, v_reason, current_setting('audit_trail.auth_method', true),
                         current_setting('audit_trail.user_agent_hash', true), current_setting('audit_trail.request_id', true),
                         current_setting('audit_trail.session_id', true), current_setting('audit_trail.correlation_id', true),
                         current_setting('audit_trail.capture_method', true))) > 65536 then
    perform audit_trail.check_context_value(k, v)
       from (values ('actor_id', v_actor_id), ('actor_name', v_actor_name), ('reason', v_reason),
                    ('auth_method', current_setting('audit_trail.auth_method', true)),
                    ('user_agent_hash', current_setting('audit_trail.user_agent_hash', true)),
                    ('request_id', current_setting('audit_trail.request_id', true)),
                    ('session_id', current_setting('audit_trail.session_id', true)),
                    ('correlation_id', current_setting('audit_trail.correlation_id', true)),
                    ('capture_method', current_setting('audit_trail.capture_method', true))) s(k, v);
  end if;
  if v_actor_id is null and p_actor_required then
    perform audit_trail.refuse_event('no actor', p_tenant, p_resource_type, p_resource_id, null, null, null);
  end if;

  -- One look-up for the tenant's rules and the actor's registry row.
  select p.reject_unknown_actors, p.reject_suspended_actors, p.reject_shared_actors, p.reason_min_length,
         p.weak_reasons, a.actor_id is not null, a.status, a.is_shared_account, a.display_name
    into v_reject_unknown, v_reject_suspended, v_reject_shared, v_reason_min_length,
         v_weak_reasons, v_actor_known, v_actor_status, v_actor_shared, v_actor_display_name
    from audit_trail.tenant_policies p
    left join audit_trail.actors a
      on v_actor_id is not null and a.tenant_id = p_tenant and a.actor_id = v_actor_id
   where p.tenant_id in (p_tenant, '*') order by (p.tenant_id = '*') limit 1;
  if v_actor_id is not null and p_registry_applies then
    if not v_actor_known and v_reject_unknown then
      perform audit_trail.refuse_event('unknown actor', p_tenant, p_resource_type, p_resource_id, v_actor_id, null, null);
    elsif v_reject_suspended and v_actor_status = 'suspended' then
      perform audit_trail.refuse_event('suspended actor', p_tenant, p_resource_type, p_resource_id, v_actor_id, null, null);
    elsif v_reject_shared and v_actor_shared then
      perform audit_trail.refuse_event('shared actor', p_tenant, p_resource_type, p_resource_id, v_actor_id, null, null);
    end if;
  end if;
  v_actor_name := coalesce(v_actor_name, v_actor_display_name);

  if p_reason_required and (v_reason is null or audit_trail.trim_blanks(v_reason) = '') then
    perform audit_trail.refuse_event('no reason', p_tenant, p_resource_type, p_resource_id, null, null, null);
  end if;
  if p_reason_required and (lower(audit_trail.trim_blanks(v_reason)) = any (v_weak_reasons)
                            or char_length(audit_trail.trim_blanks(v_reason)) < v_reason_min_length) then
    perform audit_trail.refuse_event('weak reason', p_tenant, p_resource_type, p_resource_id, null, v_reason,
                                               v_reason_min_length);
  end if;

  if v_source_ip is not null then
    perform audit_trail.check_context_value('source_ip', v_source_ip);
  end if;
  if v_occurred_at is null and v_occurred_text is not null then
    perform audit_trail.check_context_value('occurred_at', v_occurred_text);
    v_occurred_at := v_occurred_text::timestamptz;
  end if;
  if v_context_text is not null then
    perform audit_trail.check_context_value('context', v_context_text);
    v_context := v_context_text::jsonb;
  else
    v_context := '{}';
  end if;
  v_context := v_context || p_source || jsonb_strip_nulls(jsonb_build_object(
      'request_id', nullif(current_setting('audit_trail.request_id', true), ''),
      'session_id', nullif(current_setting('audit_trail.session_id', true), ''),
      'correlation_id', nullif(current_setting('audit_trail.correlation_id', true), ''),
      'capture_method', coalesce(nullif(current_setting('audit_trail.capture_method', true), ''), p_capture_method)));
  -- Plain variables as arguments let the planner inline ulid_encode().
  v_ms := floor(extract(epoch from v_now) * 1000)::bigint;
  v_random := uuid_send(gen_random_uuid());
  v_event_id := audit_trail.ulid_encode(v_ms, v_random);
  v_occurred_at := coalesce(v_occurred_at, v_now);
  v_auth_method := nullif(current_setting('audit_trail.auth_method', true), '');
  v_user_agent_hash := nullif(current_setting('audit_trail.user_agent_hash', true), '');

  perform audit_trail.buffer_event(p_tenant, v_now, v_event_id, p_action, p_resource_type, p_resource_id,
    p_parent_type, p_parent_id, p_changes, v_occurred_at, v_actor_type, v_actor_id, v_actor_name, v_auth_method,
    v_source_ip, v_user_agent_hash, v_reason, v_context, p_registry_applies);
  return v_event_id;
end
$$;
comment on function audit_trail.append_event is
  'Internal: checks and builds one application or administrative event and buffers it. Not callable by applications.';

-- Raises a refusal of an event: who, why, the tenant's rules. The same messages,
-- SQLSTATEs and hints whether the capture trigger, the commit step or
-- audit_trail.record() finds it.
create function audit_trail.refuse_event(
  p_problem text, p_tenant text, p_resource_type text, p_resource_id text, p_actor_id text, p_reason text,
  p_reason_min_length integer)
returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  case p_problem
    when 'no actor' then
      raise exception 'no actor: who made this change to % %?', p_resource_type, coalesce(p_resource_id, '')
        using errcode = 'AT001',
              detail = 'Tenant ' || p_tenant || ' requires every change to be attributable to an identified actor.',
              hint = 'SET LOCAL audit_trail.actor_id = ''<user id>''; (or select audit_trail.set_context(''{"actor_id": "<user id>"}'')) in the same transaction, before the change.';
    when 'unknown actor' then
      raise exception 'actor "%" is not registered for tenant %', p_actor_id, p_tenant
        using errcode = 'AT002',
              hint = 'Register the actor in audit_trail.actors (an administrator''s task), or use a registered actor id.';
    when 'suspended actor' then
      raise exception 'actor "%" is suspended for tenant %', p_actor_id, p_tenant
        using errcode = 'AT002', hint = 'A suspended account may not change records; ask an administrator to reactivate it or act as yourself.';
    when 'shared actor' then
      raise exception 'actor "%" is a shared account, which tenant % does not accept', p_actor_id, p_tenant
        using errcode = 'AT002', hint = 'Log in with a personal account (badge, PIN, SSO): shared logins make changes unattributable.';
    when 'no reason' then
      raise exception 'a reason is required for this change to % %', p_resource_type, coalesce(p_resource_id, '')
        using errcode = 'AT003',
              hint = 'SET LOCAL audit_trail.reason = ''<why, with the evidence: document, alarm, deviation number>'';';
    when 'weak reason' then
      raise exception 'the reason "%" carries no evidence', p_reason
        using errcode = 'AT004',
              detail = format('Tenant %s requires at least %s characters and rejects placeholders such as "ok", "see email", "n/a", "fixed".',
                              p_tenant, p_reason_min_length),
              hint = 'Say why, with the evidence: e.g. ''Re-classified after review of PLC alarm log 4711; material was available''.';
    when 'setting too long' then
      raise exception 'an audit_trail.* setting of this change to % is longer than 65536 bytes', p_resource_type
        using errcode = '54000',
              hint = 'Keep identifiers and reasons short; put large evidence in an attached document and record its digest.';
    else
      raise exception 'captured change refused: %', p_problem using errcode = 'AT000', hint = 'Report this as a bug of pg-audit-trail.';
  end case;
end
$$;
comment on function audit_trail.refuse_event is 'Internal: raises the refusal of an event (AT001-AT004) with its hint.';

-- One element of an event's changes, as the commit step builds it (to_jsonb()
-- of an array of these gives [{"field": ..., "before": ..., "after": ...}]).
create type audit_trail.field_change as (field text, before jsonb, after jsonb);
comment on type audit_trail.field_change is 'Internal: one {field, before, after} element of an event''s changes.';

-- The changes of a flagged event (JSON columns, redacted or digested values):
-- each changed field with the marks that say what its values are. Called by
-- the commit step for those events only.
create function audit_trail.marked_changes(
  p_old jsonb, p_new jsonb, p_fields text[], p_json_nulls_old text[], p_json_nulls_new text[],
  p_digested_old text[], p_digested_new text[], p_redacted text[])
returns jsonb
language plpgsql stable
-- No SET clause (it would cost every call): the caller pins search_path, and
-- every name below is qualified.
as $$
begin
  return (
    select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('field', f.key, 'before', p_old -> f.key, 'after', p_new -> f.key)
             operator(pg_catalog.||) pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'redacted', case when f.key = any (p_redacted) then true end,
               'stored_as_digest', nullif(pg_catalog.array_remove(array[
                   case when f.key = any (p_digested_old) then 'before' end,
                   case when f.key = any (p_digested_new) then 'after' end], null), '{}'),
               'json_null', nullif(pg_catalog.array_remove(array[
                   case when f.key = any (p_json_nulls_old) then 'before' end,
                   case when f.key = any (p_json_nulls_new) then 'after' end], null), '{}')))
           order by f.key)
      from pg_catalog.unnest(p_fields) f(key));
end
$$;
comment on function audit_trail.marked_changes is
  'Internal: the changes of an event whose values carry marks (redacted, stored_as_digest, json_null).';

-- The commit step.
create function audit_trail.flush_pending_events()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
-- A session plans these statements once, at its first commit, and keeps the
-- plans; the trail and the registry may have been empty then (a new
-- installation, a new month, VACUUM ANALYZE after a quiet spell), and a plan
-- that scans them would read more at every commit as they grow. The look-ups
-- of chain heads, actors, the rules and (in the head guard) the head's event
-- are by key, so they must use their indexes whatever the statistics said.
-- (The buffer has no index and is still read in full, as it must be.) With
-- sequential scans off, the planner counts each one it keeps at a huge cost,
-- which would make every statement here look worth compiling with JIT
-- (where the server has it: about 0.6 s a statement); they never are.
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
set jit = off
as $$
declare
  v_tenants text[];
  v_extend boolean;
  v_tenant text;
  v_policy audit_trail.tenant_policies;
  v_policy_now audit_trail.tenant_policies;
  v_locked boolean;
  v_seq bigint;
  v_prev bytea;
  v_head_ingested_at timestamptz;
  v_db_identity json;
begin
  select array_agg(distinct p.tenant_id order by p.tenant_id),
         max(p.ingested_at) >= (select h.covered_until from audit_trail.partition_horizon h)
    into v_tenants, v_extend
    from pg_temp.audit_trail_pending p;
  if v_tenants is null then
    return null;
  end if;
  if v_extend then
    perform audit_trail.create_partitions(now());
  end if;
  -- What the database itself knows, whatever the application claims.
  v_db_identity := audit_trail.db_identity_text(session_user::text, pg_catalog.current_setting('application_name'),
      pg_catalog.inet_client_addr(), pg_catalog.pg_backend_pid(), pg_catalog.pg_current_xact_id());

  foreach v_tenant in array v_tenants loop
    v_locked := false;
    <<build_then_lock>> loop
      -- The tenant's rules: its own row, else the '*' defaults. Read before the
      -- build, and again once the head is held, when no change to them can be
      -- chained before this transaction's events any more (a change to a
      -- tenant's own rules takes its head too). If they changed while the
      -- transaction waited, its events are built and checked again, under the
      -- lock, with the rules now in force (rare: it costs the build twice).
      select p.* into v_policy_now from audit_trail.tenant_policies p
       where p.tenant_id in (v_tenant, '*') order by (p.tenant_id = '*') limit 1;
      exit build_then_lock when v_locked and v_policy_now is not distinct from v_policy;
      if v_locked then
        delete from pg_temp.audit_trail_pending where tenant_id = v_tenant and built_from is not null;
      end if;
      v_policy := v_policy_now;

      -- First, before the tenant's head is taken, one statement builds and checks
      -- the events of the captured row changes and puts them back in the buffer,
      -- built (built_from: the change they came from, which keeps their place in
      -- the transaction's order). Under the head's lock only the tenant's rules
      -- (above) and the actor registry (below) are read again, then the events are
      -- numbered, encoded, chained and written: the shorter the lock is held, the
      -- more transactions a busy tenant commits per second (every writer of a
      -- tenant waits for it). (Kept lean on purpose: every node and expression of
      -- these plans is set up anew in every transaction; docs/architecture.md,
      -- "What capture costs".)
      with captured as (
        -- Captured row changes: the action and the field delta (every column
        -- for a create or a delete, the changed columns for an update).
        select b.ordinal, b.ingested_at, floor(extract(epoch from b.ingested_at) * 1000)::bigint as ingested_ms,
               -- random bytes of the event id, drawn per row (in a subquery of its own they would be drawn once)
               uuid_send(gen_random_uuid()) as random,
               b.table_options as o,
               -- the raw settings: NULL or '' when unset
               nullif(b.actor_id, '') as actor_id, coalesce(nullif(b.actor_type, ''), 'user') as actor_type,
               nullif(b.actor_name, '') as actor_name, nullif(b.auth_method, '') as auth_method,
               nullif(b.source_ip, '') as source_ip, nullif(b.user_agent_hash, '') as user_agent_hash,
               nullif(b.reason, '') as reason, nullif(b.occurred_at_setting, '') as occurred_at_setting,
               nullif(b.context_setting, '') as context_setting, nullif(b.request_id, '') as request_id,
               nullif(b.session_id, '') as session_id, nullif(b.correlation_id, '') as correlation_id,
               nullif(b.capture_method, '') as capture_method,
               coalesce(b.new_row, b.old_row) as key_row,
               x.action,
               b.flagged, b.old_row, b.new_row, b.json_nulls_old, b.json_nulls_new, b.digested_old, b.digested_new,
               b.redacted, d.changes, d.fields
          from pg_temp.audit_trail_pending b
          cross join lateral (
            select case b.operation
                     when 'INSERT' then 'create'
                     when 'DELETE' then 'delete'
                     when 'UPDATE' then
                       case when b.table_options ? 'soft_delete'
                              and audit_trail.is_soft_deleted(b.new_row, b.table_options -> 'soft_delete')
                              and not audit_trail.is_soft_deleted(b.old_row, b.table_options -> 'soft_delete')
                            then 'delete' else 'update' end
                   end as action
          ) x
          cross join lateral (
            -- Unflagged (the common case): an array of field_change rows turned
            -- into JSON at once, which costs half of building an object per field.
            -- A flagged event's changes are built by marked_changes() in "built":
            -- its expressions here would be set up in every commit for nothing.
            select to_jsonb(array_agg(row(f.key, f.before_value, f.after_value)::audit_trail.field_change
                                      order by f.key) filter (where not b.flagged)) as changes,
                   array_agg(f.key) as fields
              -- (jsonb_each, not a look-up per key: a third cheaper for a create)
              from (select e.key,
                           case when b.new_row is null then e.value else b.old_row -> e.key end as before_value,
                           case when b.new_row is not null then e.value end as after_value
                      from jsonb_each(coalesce(b.new_row, b.old_row)) e) f
             where x.action <> 'update'
                or f.after_value is distinct from f.before_value
                or (jsonb_typeof(f.after_value) in ('number', 'array', 'object') and f.after_value::text <> f.before_value::text)
                -- JSON null and SQL NULL look alike in to_jsonb(): a move between them is a change
                or (b.flagged and jsonb_typeof(f.after_value) = 'null'
                    and (f.key = any (coalesce(b.json_nulls_old, '{}'))) <> (f.key = any (coalesce(b.json_nulls_new, '{}'))))
          ) d
         where b.tenant_id = v_tenant and b.operation is not null
           and d.fields is not null  -- an update of nothing captured writes nothing
      ), built as (
        select c.ordinal, c.ingested_at,
               -- (plain columns as arguments: the planner inlines ulid_encode())
               audit_trail.ulid_encode(c.ingested_ms, c.random) as event_id,
               coalesce(c.occurred_at_setting::timestamptz, c.ingested_at) as occurred_at,
               c.actor_type, c.actor_id, c.actor_name, c.auth_method,
               c.source_ip, c.user_agent_hash, c.action, c.o ->> 'resource_type' as resource_type,
               -- (audit_trail.row_key() spelt out: a function with a subquery is not inlined)
               case when jsonb_array_length(c.o -> 'key_columns') = 1 then c.key_row ->> (c.o -> 'key_columns' ->> 0)
                    else (select jsonb_agg(c.key_row -> k.col order by k.ord)
                            from jsonb_array_elements_text(c.o -> 'key_columns') with ordinality k(col, ord))::text
               end as resource_id,
               c.o -> 'parent' ->> 'resource_type' as parent_type,
               c.key_row ->> (c.o -> 'parent' ->> 'column') as parent_id,
               case when c.flagged
                    then audit_trail.marked_changes(c.old_row, c.new_row, c.fields, c.json_nulls_old, c.json_nulls_new,
                                                    c.digested_old, c.digested_new, c.redacted)
                    else c.changes end as changes,
               c.reason,
               coalesce(c.context_setting::jsonb, '{}') || jsonb_build_object('table', c.o ->> 'table')
                 || jsonb_strip_nulls(jsonb_build_object('request_id', c.request_id, 'session_id', c.session_id,
                      'correlation_id', c.correlation_id, 'capture_method', coalesce(c.capture_method, 'trigger'))) as context,
               -- The tenant's rules, checked here because they need look-ups.
               case
                 -- (settings set with SET LOCAL: set_context() checks its own; actor_type, source_ip,
                 -- occurred_at and context are checked at the change)
                 when greatest(octet_length(c.actor_id), octet_length(c.actor_name), octet_length(c.auth_method),
                               octet_length(c.user_agent_hash), octet_length(c.reason), octet_length(c.request_id),
                               octet_length(c.session_id), octet_length(c.correlation_id), octet_length(c.capture_method)) > 65536
                   then 'setting too long'
                 when c.actor_id is null and (c.o ->> 'actor_required')::boolean then 'no actor'
                 when c.actor_id is not null and a.actor_id is null and v_policy.reject_unknown_actors then 'unknown actor'
                 when a.status = 'suspended' and v_policy.reject_suspended_actors then 'suspended actor'
                 when a.is_shared_account and v_policy.reject_shared_actors then 'shared actor'
                 when (c.o -> 'reason_required' = 'true'::jsonb or (c.o -> 'reason_required') ?| c.fields)
                      and (c.reason is null or audit_trail.trim_blanks(c.reason) = '') then 'no reason'
                 when (c.o -> 'reason_required' = 'true'::jsonb or (c.o -> 'reason_required') ?| c.fields)
                      and (lower(audit_trail.trim_blanks(c.reason)) = any (v_policy.weak_reasons)
                           or char_length(audit_trail.trim_blanks(c.reason)) < v_policy.reason_min_length) then 'weak reason'
               end as problem
          from captured c
          left join audit_trail.actors a on a.tenant_id = v_tenant and a.actor_id = c.actor_id
      )
      insert into pg_temp.audit_trail_pending (requests_flush, tenant_id, ingested_at, built_from, event_id, action,
          resource_type, resource_id, parent_type, parent_id, changes, occurred_at, context, actor_type, actor_id,
          actor_name, auth_method, source_ip, user_agent_hash, reason)
      select false, v_tenant, b.ingested_at, b.ordinal, b.event_id, b.action, b.resource_type, b.resource_id,
          b.parent_type, b.parent_id, b.changes, b.occurred_at, b.context, b.actor_type, b.actor_id, b.actor_name,
          b.auth_method, b.source_ip, b.user_agent_hash, b.reason
        from built b
       where b.problem is null
          or audit_trail.refuse_event(b.problem, v_tenant, b.resource_type, b.resource_id, b.actor_id,
                                      b.reason, v_policy.reason_min_length);

      -- From here to the end of the commit this transaction holds the tenant's head.
      select h.sequence_no, h.record_hash into v_seq, v_prev
        from audit_trail.chain_heads h where h.tenant_id = v_tenant for no key update;
      if not found then
        insert into audit_trail.chain_heads (tenant_id, sequence_no, record_hash, updated_at)
        values (v_tenant, 0, audit_trail.genesis_hash(), now()) on conflict do nothing;
        select h.sequence_no, h.record_hash into v_seq, v_prev
          from audit_trail.chain_heads h where h.tenant_id = v_tenant for no key update;
      end if;
      v_locked := true;
    end loop;

    -- Then, under the head's lock, one statement numbers, encodes, chains and
    -- writes the tenant's built events: those of captured changes and those
    -- that append_event() built and checked. Their actor is looked up again
    -- here, after any change to the registry that was chained before this
    -- transaction's events (a suspension takes the head too): an actor
    -- suspended, made shared or removed since the change or the record() call
    -- is refused; a captured change's display name is the one of this moment.
    -- (Not for administrative events: their actor is a database login.)
    with events as (
      select coalesce(p.built_from, p.ordinal) as ordinal, p.event_id, p.occurred_at, p.ingested_at, p.actor_type,
             p.actor_id, case when p.built_from is null then p.actor_name else coalesce(p.actor_name, a.display_name) end
               as actor_name,
             p.auth_method, p.source_ip, p.user_agent_hash, p.action, p.resource_type,
             p.resource_id, p.parent_type, p.parent_id, p.changes, p.reason, p.context
        from pg_temp.audit_trail_pending p
        left join audit_trail.actors a on (p.built_from is not null or p.registry_applies)
                                      and a.tenant_id = v_tenant and a.actor_id = p.actor_id
       where p.tenant_id = v_tenant and p.operation is null
         and ((p.built_from is null and not p.registry_applies)
              or not coalesce((p.actor_id is not null and a.actor_id is null and v_policy.reject_unknown_actors)
                              or (a.status = 'suspended' and v_policy.reject_suspended_actors)
                              or (a.is_shared_account and v_policy.reject_shared_actors), false)
              or audit_trail.refuse_event(case when a.actor_id is null then 'unknown actor'
                                               when a.status = 'suspended' and v_policy.reject_suspended_actors then 'suspended actor'
                                               else 'shared actor' end,
                                          v_tenant, p.resource_type, p.resource_id, p.actor_id, p.reason,
                                          v_policy.reason_min_length))
    ), numbered as (
      select e.*, v_seq + row_number() over (order by e.ordinal) as sequence_no from events e
    ), chained as (
      -- chain_agg as a window aggregate: prev_hash || record_hash in capture order.
      select n.*, audit_trail.chain_agg(audit_trail.encode_body(n.event_id, v_tenant, n.occurred_at,
                 n.ingested_at, n.actor_type, n.actor_id, n.actor_name, n.auth_method, n.source_ip, n.user_agent_hash,
                 n.action, n.resource_type, n.resource_id, n.parent_type, n.parent_id, n.changes, n.reason, n.context,
                 v_db_identity), n.sequence_no, v_prev) over (order by n.ordinal) as link
        from numbered n
    ), written as (
      insert into audit_trail.events (event_id, tenant_id, sequence_no, occurred_at, ingested_at, actor_type,
          actor_id, actor_name, auth_method, source_ip, user_agent_hash, action, resource_type, resource_id,
          parent_type, parent_id, changes, reason, context, db_identity, encoding_version, prev_hash, record_hash)
      select c.event_id, v_tenant, c.sequence_no, c.occurred_at, c.ingested_at, c.actor_type, c.actor_id,
          c.actor_name, c.auth_method, c.source_ip, c.user_agent_hash, c.action, c.resource_type, c.resource_id,
          c.parent_type, c.parent_id, c.changes, c.reason, c.context, v_db_identity, 1,
          substr(c.link, 1, 32), substr(c.link, 33)
        from chained c
      returning sequence_no, record_hash, ingested_at
    )
    select w.sequence_no, w.record_hash, w.ingested_at into v_seq, v_prev, v_head_ingested_at
      from written w order by w.sequence_no desc limit 1;
    if found then
      -- A statement of its own: the head guard checks that the head event exists.
      update audit_trail.chain_heads
         set sequence_no = v_seq, record_hash = v_prev, head_ingested_at = v_head_ingested_at, updated_at = now()
       where tenant_id = v_tenant;
    end if;
  end loop;
  delete from pg_temp.audit_trail_pending;
  return null;
end
$$;
comment on function audit_trail.flush_pending_events() is
  'Commit-time step (deferred constraint trigger): builds, checks, numbers, chains and writes the transaction''s events.';

-- Is a row image in its soft-deleted state? (soft_delete option: {column[, deleted_value]})
create function audit_trail.is_soft_deleted(p_row jsonb, p_soft_delete jsonb) returns boolean
language sql immutable parallel safe
return case when p_soft_delete ? 'deleted_value'
            then coalesce(p_row -> (p_soft_delete ->> 'column') = p_soft_delete -> 'deleted_value', false)
            else coalesce(pg_catalog.jsonb_typeof(p_row -> (p_soft_delete ->> 'column')) <> 'null', false) end;
