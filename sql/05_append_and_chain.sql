-- The write path shared by the capture triggers and audit_trail.record().
--
-- 1. append_event() checks who/why/tenant, builds the event and puts it in a
--    transaction-private buffer (a temporary table of
--    this session, owned by audit_trail_owner, emptied at commit). No lock on
--    any shared row is taken here, so concurrent writers of one tenant do not
--    wait for each other while their transactions run.
-- 2. At commit a deferred constraint trigger runs flush_pending_events() once
--    per transaction: it locks each tenant's chain head (in tenant order, so
--    two transactions never deadlock on heads), numbers the buffered events,
--    encodes and chains them and inserts them into audit_trail.events, then
--    moves the head. The head is held from there to the end of the commit only.
-- The buffer is never visible to another session, never durable, and gone
-- with the transaction: if the transaction commits its events are in the
-- trail, if it rolls back neither the change nor the event exists.

-- Genesis: the prev_hash of sequence_no 1.
create function audit_trail.genesis_hash() returns bytea
language sql immutable parallel safe
return '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;

-- The chain as a running aggregate: each step hashes a body at its position
-- after the previous step's hash (the first after p_start, the head's hash).
-- (PL/pgSQL on purpose: an SQL-language transition function is planned anew
-- in every statement that runs the aggregate, ~170 us per transaction here.)
create function audit_trail.chain_step(p_state bytea, p_body bytea, p_sequence_no bigint, p_start bytea) returns bytea
language plpgsql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
begin
  return audit_trail.chain_hash(p_body, p_sequence_no, coalesce(p_state, p_start));
end
$$;

create aggregate audit_trail.chain_agg(bytea, bigint, bytea) (
  sfunc = audit_trail.chain_step,
  stype = bytea
);
comment on aggregate audit_trail.chain_agg(bytea, bigint, bytea) is
  'Window aggregate: record_hash of each event given the body, its sequence_no and the chain head before the first.';

-- Creates this session's buffer and its commit trigger (once per session).
-- The event that finds the buffer empty carries requests_flush, and only that
-- row queues the deferred trigger, so the commit step runs once per
-- transaction however many events it has. The flush empties the buffer with
-- DELETE; the next transaction truncates it when dead rows have piled up.
-- (ON COMMIT DELETE ROWS would truncate at every commit, and a truncation
-- invalidates the cached plans that read the buffer: every transaction would
-- plan the capture statements anew.)
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
    event_id text not null,
    occurred_at timestamptz not null,
    ingested_at timestamptz not null,
    actor_type text not null,
    actor_id text,
    actor_name text,
    auth_method text,
    source_ip text,
    user_agent_hash text,
    action text not null,
    resource_type text not null,
    resource_id text,
    parent_type text,
    parent_id text,
    changes jsonb not null,
    reason text,
    context jsonb not null,
    db_identity jsonb not null
  );
  create constraint trigger audit_trail_flush_at_commit
    after insert on pg_temp.audit_trail_pending
    deferrable initially deferred
    for each row when (new.requests_flush)
    execute function audit_trail.flush_pending_events();
end
$$;

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
  p_occurred_at timestamptz default null)
returns text
language plpgsql
-- No SET clauses: only the owner may call it, from functions that pin
-- search_path and plan_cache_mode (a SET here would cost every event).
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
  v_db_identity jsonb;
  v_event_id text;
  v_auth_method text;
  v_user_agent_hash text;
  v_first_in_transaction boolean;
  v_buffer_owned boolean;
  v_ms bigint;
  v_random_high bigint;
  v_random_low bigint;
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
  if v_actor_id is null and p_actor_required then
    raise exception 'no actor: who made this change to % %?', p_resource_type, coalesce(p_resource_id, '')
      using errcode = 'AT001',
            detail = 'Tenant ' || p_tenant || ' requires every change to be attributable to an identified actor.',
            hint = 'SET LOCAL audit_trail.actor_id = ''<user id>''; (or select audit_trail.set_context(''{"actor_id": "<user id>"}'')) in the same transaction, before the change.';
  end if;

  if to_regclass('pg_temp.audit_trail_pending') is null then
    perform audit_trail.create_pending_buffer();
  end if;
  -- One look-up for the tenant's rules, the actor's registry row when the rules
  -- need it, and the state of this session's buffer: whether this is the
  -- transaction's first event, and whether the buffer is really ours (a
  -- same-named table that the session's own role created first could be
  -- edited before commit, or lack the commit trigger).
  select p.reject_unknown_actors, p.reject_suspended_actors, p.reject_shared_actors, p.reason_min_length,
         p.weak_reasons, a.actor_id is not null, a.status, a.is_shared_account, a.display_name,
         not exists (select from pg_temp.audit_trail_pending),
         (select c.relowner = 'audit_trail_owner'::regrole from pg_class c
           where c.oid = 'pg_temp.audit_trail_pending'::regclass)
    into v_reject_unknown, v_reject_suspended, v_reject_shared, v_reason_min_length,
         v_weak_reasons, v_actor_known, v_actor_status, v_actor_shared, v_actor_display_name,
         v_first_in_transaction, v_buffer_owned
    from audit_trail.tenant_policies p
    left join audit_trail.actors a
      on v_actor_id is not null and a.tenant_id = p_tenant and a.actor_id = v_actor_id
         and (p.reject_unknown_actors or p.reject_suspended_actors or p.reject_shared_actors)
   where p.tenant_id in (p_tenant, '*') order by (p.tenant_id = '*') limit 1;
  if not v_buffer_owned then
    raise exception 'a temporary table named audit_trail_pending exists that pg-audit-trail did not create'
      using errcode = '42501',
            hint = 'Drop your temporary table of this name; it is reserved for the audit trail''s commit buffer.';
  end if;

  if v_actor_id is not null then
    if not v_actor_known then
      if v_reject_unknown then
        raise exception 'actor "%" is not registered for tenant %', v_actor_id, p_tenant
          using errcode = 'AT002',
                hint = 'Register the actor in audit_trail.actors (an administrator''s task), or use a registered actor id.';
      end if;
    else
      if v_reject_suspended and v_actor_status = 'suspended' then
        raise exception 'actor "%" is suspended for tenant %', v_actor_id, p_tenant
          using errcode = 'AT002', hint = 'A suspended account may not change records; ask an administrator to reactivate it or act as yourself.';
      end if;
      if v_reject_shared and v_actor_shared then
        raise exception 'actor "%" is a shared account, which tenant % does not accept', v_actor_id, p_tenant
          using errcode = 'AT002', hint = 'Log in with a personal account (badge, PIN, SSO): shared logins make changes unattributable.';
      end if;
      v_actor_name := coalesce(v_actor_name, v_actor_display_name);
    end if;
  end if;

  if v_reason is not null or p_reason_required then
    if p_reason_required and (v_reason is null or btrim(v_reason) = '') then
      raise exception 'a reason is required for this change to % %', p_resource_type, coalesce(p_resource_id, '')
        using errcode = 'AT003',
              hint = 'SET LOCAL audit_trail.reason = ''<why, with the evidence: document, alarm, deviation number>'';';
    end if;
    if p_reason_required and (lower(btrim(v_reason)) = any (v_weak_reasons)
                              or char_length(btrim(v_reason)) < v_reason_min_length) then
      raise exception 'the reason "%" carries no evidence', v_reason
        using errcode = 'AT004',
              detail = format('Tenant %s requires at least %s characters and rejects placeholders such as "ok", "see email", "n/a", "fixed".',
                              p_tenant, v_reason_min_length),
              hint = 'Say why, with the evidence: e.g. ''Re-classified after review of PLC alarm log 4711; material was available''.';
    end if;
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
  v_db_identity := jsonb_build_object(
      'session_user', session_user::text,
      'application_name', current_setting('application_name'),
      'client_addr', inet_client_addr()::text,
      'backend_pid', pg_backend_pid(),
      'xid', pg_current_xact_id()::text);
  -- Plain variables as arguments let the planner inline ulid_encode().
  v_ms := (extract(epoch from v_now) * 1000)::bigint;
  v_random_high := (random() * 1099511627776)::bigint & 1099511627775;
  v_random_low := (random() * 1099511627776)::bigint & 1099511627775;
  v_event_id := audit_trail.ulid_encode(v_ms, v_random_high, v_random_low);
  v_occurred_at := coalesce(v_occurred_at, v_now);
  v_auth_method := nullif(current_setting('audit_trail.auth_method', true), '');
  v_user_agent_hash := nullif(current_setting('audit_trail.user_agent_hash', true), '');

  if v_first_in_transaction and pg_relation_size('pg_temp.audit_trail_pending') > 65536 then
    truncate pg_temp.audit_trail_pending;
  end if;
  insert into pg_temp.audit_trail_pending (requests_flush, tenant_id, event_id, occurred_at, ingested_at, actor_type,
      actor_id, actor_name, auth_method, source_ip, user_agent_hash, action, resource_type, resource_id, parent_type,
      parent_id, changes, reason, context, db_identity)
  values (v_first_in_transaction, p_tenant, v_event_id, v_occurred_at, v_now, v_actor_type, v_actor_id, v_actor_name,
      v_auth_method, v_source_ip, v_user_agent_hash, p_action, p_resource_type, p_resource_id, p_parent_type,
      p_parent_id, p_changes, v_reason, v_context, v_db_identity);
  return v_event_id;
end
$$;
comment on function audit_trail.append_event is
  'Internal: validates and buffers one event for the commit-time chain step. Not callable by applications.';

-- The commit step: number, chain and write the buffered events, tenant by tenant.
create function audit_trail.flush_pending_events()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_generic_plan
as $$
declare
  v_event_count bigint;
  v_tenants text[];
  v_extend boolean;
  v_head_ingested_at timestamptz;
  v_tenant text;
  v_seq bigint;
  v_prev bytea;
begin
  -- The buffer must be ours: a same-named table created first by the session's
  -- own role could have been edited between capture and commit.
  select count(*), array_agg(distinct p.tenant_id order by p.tenant_id),
         max(p.ingested_at) >= (select h.covered_until from audit_trail.partition_horizon h)
    into v_event_count, v_tenants, v_extend
    from pg_temp.audit_trail_pending p;
  if v_event_count = 0 then
    return null;
  end if;
  if v_extend then
    perform audit_trail.create_partitions(now());
  end if;

  foreach v_tenant in array v_tenants loop
    -- From here to the end of the commit this transaction holds the tenant's head.
    select h.sequence_no, h.record_hash into v_seq, v_prev
      from audit_trail.chain_heads h where h.tenant_id = v_tenant for no key update;
    if not found then
      insert into audit_trail.chain_heads (tenant_id, sequence_no, record_hash, updated_at)
      values (v_tenant, 0, audit_trail.genesis_hash(), now()) on conflict do nothing;
      select h.sequence_no, h.record_hash into v_seq, v_prev
        from audit_trail.chain_heads h where h.tenant_id = v_tenant for no key update;
    end if;
    -- Number, encode, chain and write in one statement. chain_agg runs
    -- as a window aggregate: the running hash over the bodies in capture order.
    with numbered as (
      select p.*, v_seq + row_number() over (order by p.ordinal) as sequence_no
        from pg_temp.audit_trail_pending p
       where p.tenant_id = v_tenant
    ), chained as (
      select n.*, audit_trail.chain_agg(audit_trail.encode_body(n.event_id, n.tenant_id, n.occurred_at,
                 n.ingested_at, n.actor_type, n.actor_id, n.actor_name, n.auth_method, n.source_ip, n.user_agent_hash,
                 n.action, n.resource_type, n.resource_id, n.parent_type, n.parent_id, n.changes, n.reason, n.context,
                 n.db_identity), n.sequence_no, v_prev) over (order by n.ordinal) as record_hash
        from numbered n
    ), linked as (
      select c.*, coalesce(lag(c.record_hash) over (order by c.ordinal), v_prev) as prev_hash
        from chained c
    ), written as (
      insert into audit_trail.events (event_id, tenant_id, sequence_no, occurred_at, ingested_at, actor_type,
          actor_id, actor_name, auth_method, source_ip, user_agent_hash, action, resource_type, resource_id,
          parent_type, parent_id, changes, reason, context, db_identity, encoding_version, prev_hash, record_hash)
      select l.event_id, l.tenant_id, l.sequence_no, l.occurred_at, l.ingested_at, l.actor_type, l.actor_id,
          l.actor_name, l.auth_method, l.source_ip, l.user_agent_hash, l.action, l.resource_type, l.resource_id,
          l.parent_type, l.parent_id, l.changes, l.reason, l.context, l.db_identity, 1, l.prev_hash, l.record_hash
        from linked l order by l.sequence_no
      returning sequence_no, record_hash, ingested_at
    )
    select w.sequence_no, w.record_hash, w.ingested_at into v_seq, v_prev, v_head_ingested_at
      from written w order by w.sequence_no desc limit 1;
    -- A statement of its own: the head guard checks that the head event exists.
    update audit_trail.chain_heads
       set sequence_no = v_seq, record_hash = v_prev, head_ingested_at = v_head_ingested_at, updated_at = now()
     where tenant_id = v_tenant;
  end loop;
  delete from pg_temp.audit_trail_pending;
  return null;
end
$$;
comment on function audit_trail.flush_pending_events() is
  'Commit-time chain step (deferred constraint trigger): numbers, hashes and writes the transaction''s events.';
