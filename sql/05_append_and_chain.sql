-- The write path shared by the capture triggers and audit_trail.record().
--
-- 1. append_event() checks who/why/tenant, builds the event and its canonical
--    body, and puts it in a transaction-private buffer (a temporary table of
--    this session, owned by audit_trail_owner, emptied at commit). No lock on
--    any shared row is taken here, so concurrent writers of one tenant do not
--    wait for each other while their transactions run.
-- 2. At commit a deferred constraint trigger runs flush_pending_events() once
--    per transaction: it locks each tenant's chain head (in tenant order, so
--    two transactions never deadlock on heads), numbers the buffered events,
--    chains their hashes and inserts them into audit_trail.events, then moves
--    the head. The head is held from there to the end of the commit only.
-- The buffer is never visible to another session, never durable, and gone
-- with the transaction: if the transaction commits its events are in the
-- trail, if it rolls back neither the change nor the event exists.

-- Genesis: the prev_hash of sequence_no 1.
create function audit_trail.genesis_hash() returns bytea
language sql immutable parallel safe
return '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;

-- Creates this session's buffer and its commit trigger (once per session).
-- The flush empties both tables itself. ON COMMIT DELETE ROWS would do it too,
-- but its truncation invalidates every cached plan that reads the buffer, so
-- each transaction would plan the capture statements anew (~300 us here).
create function audit_trail.create_pending_buffer()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  create temporary table if not exists audit_trail_pending (
    ordinal bigint generated always as identity,
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
    db_identity jsonb not null,
    body bytea not null
  );
  -- One row asks for a flush at commit (its deferred trigger).
  create temporary table if not exists audit_trail_flush_request (
    requested boolean
  );
  if not exists (select from pg_trigger where tgrelid = 'pg_temp.audit_trail_flush_request'::regclass
                   and tgname = 'audit_trail_flush_at_commit') then
    create constraint trigger audit_trail_flush_at_commit
      after insert on pg_temp.audit_trail_flush_request
      deferrable initially deferred
      for each row execute function audit_trail.flush_pending_events();
  end if;
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
  v_body bytea;
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

  -- One look-up for the tenant's rules and, when they need it, the actor's registry row.
  select p.reject_unknown_actors, p.reject_suspended_actors, p.reject_shared_actors, p.reason_min_length,
         p.weak_reasons, a.actor_id is not null, a.status, a.is_shared_account, a.display_name
    into v_reject_unknown, v_reject_suspended, v_reject_shared, v_reason_min_length,
         v_weak_reasons, v_actor_known, v_actor_status, v_actor_shared, v_actor_display_name
    from audit_trail.tenant_policies p
    left join audit_trail.actors a
      on v_actor_id is not null and a.tenant_id = p_tenant and a.actor_id = v_actor_id
         and (p.reject_unknown_actors or p.reject_suspended_actors or p.reject_shared_actors)
   where p.tenant_id in (p_tenant, '*') order by (p.tenant_id = '*') limit 1;

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

  if to_regclass('pg_temp.audit_trail_pending') is null then
    perform audit_trail.create_pending_buffer();
  end if;
  v_occurred_at := coalesce(v_occurred_at, v_now);
  v_auth_method := nullif(current_setting('audit_trail.auth_method', true), '');
  v_user_agent_hash := nullif(current_setting('audit_trail.user_agent_hash', true), '');
  v_body := audit_trail.encode_body(v_event_id, p_tenant, v_occurred_at, v_now, v_actor_type, v_actor_id,
      v_actor_name, v_auth_method, v_source_ip, v_user_agent_hash, p_action, p_resource_type, p_resource_id,
      p_parent_type, p_parent_id, p_changes, v_reason, v_context, v_db_identity);
  insert into pg_temp.audit_trail_pending (tenant_id, event_id, occurred_at, ingested_at, actor_type, actor_id,
      actor_name, auth_method, source_ip, user_agent_hash, action, resource_type, resource_id, parent_type,
      parent_id, changes, reason, context, db_identity, body)
  values (p_tenant, v_event_id, v_occurred_at, v_now, v_actor_type, v_actor_id, v_actor_name, v_auth_method,
      v_source_ip, v_user_agent_hash, p_action, p_resource_type, p_resource_id, p_parent_type, p_parent_id,
      p_changes, v_reason, v_context, v_db_identity, v_body);
  -- The request is inserted after the event: with SET CONSTRAINTS ALL IMMEDIATE
  -- the flush runs at the end of this insert and must find the event there.
  if not exists (select from pg_temp.audit_trail_flush_request) then
    insert into pg_temp.audit_trail_flush_request default values;
  end if;
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
  v_owned boolean;
  v_tenant text;
  v_seq bigint;
  v_prev bytea;
  v_hash bytea;
  v_ordinals bigint[];
  v_sequence_nos bigint[];
  v_prev_hashes bytea[];
  v_record_hashes bytea[];
  r record;
begin
  -- The buffer must be ours: a same-named table created first by the session's
  -- own role could have been edited between capture and commit.
  select p.event_count, p.tenants, p.max_ingested_at >= h.covered_until,
         (select bool_and(c.relowner = 'audit_trail_owner'::regrole) from pg_class c
           where c.oid in ('pg_temp.audit_trail_pending'::regclass, 'pg_temp.audit_trail_flush_request'::regclass))
    into v_event_count, v_tenants, v_extend, v_owned
    from (select count(*) as event_count, max(ingested_at) as max_ingested_at,
                 array_agg(distinct tenant_id order by tenant_id) as tenants
            from pg_temp.audit_trail_pending) p
    cross join audit_trail.partition_horizon h;
  if not v_owned then
    raise exception 'a temporary table named audit_trail_pending or audit_trail_flush_request exists that pg-audit-trail did not create'
      using errcode = '42501',
            hint = 'Drop your temporary tables of these names; they are reserved for the audit trail''s commit buffer.';
  end if;
  delete from pg_temp.audit_trail_flush_request;
  if v_event_count = 0 then
    return null;
  end if;
  if v_extend then
    perform audit_trail.create_partitions(now());
  end if;

  foreach v_tenant in array v_tenants loop
    select h.sequence_no, h.record_hash into v_seq, v_prev
      from audit_trail.chain_heads h where h.tenant_id = v_tenant for no key update;
    if not found then
      insert into audit_trail.chain_heads (tenant_id, sequence_no, record_hash, updated_at)
      values (v_tenant, 0, audit_trail.genesis_hash(), now()) on conflict do nothing;
      select h.sequence_no, h.record_hash into v_seq, v_prev
        from audit_trail.chain_heads h where h.tenant_id = v_tenant for no key update;
    end if;
    v_ordinals := '{}'; v_sequence_nos := '{}'; v_prev_hashes := '{}'; v_record_hashes := '{}';
    for r in select p.ordinal, p.body from pg_temp.audit_trail_pending p
              where p.tenant_id = v_tenant order by p.ordinal loop
      v_seq := v_seq + 1;
      v_hash := audit_trail.chain_hash(r.body, v_seq, v_prev);
      v_ordinals := array_append(v_ordinals, r.ordinal);
      v_sequence_nos := array_append(v_sequence_nos, v_seq);
      v_prev_hashes := array_append(v_prev_hashes, v_prev);
      v_record_hashes := array_append(v_record_hashes, v_hash);
      v_prev := v_hash;
    end loop;
    insert into audit_trail.events (event_id, tenant_id, sequence_no, occurred_at, ingested_at, actor_type,
        actor_id, actor_name, auth_method, source_ip, user_agent_hash, action, resource_type, resource_id,
        parent_type, parent_id, changes, reason, context, db_identity, encoding_version, prev_hash, record_hash)
    select p.event_id, p.tenant_id, c.sequence_no, p.occurred_at, p.ingested_at, p.actor_type, p.actor_id,
        p.actor_name, p.auth_method, p.source_ip, p.user_agent_hash, p.action, p.resource_type, p.resource_id,
        p.parent_type, p.parent_id, p.changes, p.reason, p.context, p.db_identity, 1, c.prev_hash, c.record_hash
      from unnest(v_ordinals, v_sequence_nos, v_prev_hashes, v_record_hashes)
             as c(ordinal, sequence_no, prev_hash, record_hash)
      join pg_temp.audit_trail_pending p on p.ordinal = c.ordinal
     order by c.sequence_no;
    update audit_trail.chain_heads
       set sequence_no = v_seq, record_hash = v_prev, updated_at = now()
     where tenant_id = v_tenant;
  end loop;
  -- Empty the buffer. Deleted rows leave dead tuples that are pruned as pages
  -- are reused; after a large transaction the table is truncated instead.
  if v_event_count > 10000 or pg_relation_size('pg_temp.audit_trail_pending') > 8388608 then
    truncate pg_temp.audit_trail_pending;
  else
    delete from pg_temp.audit_trail_pending;
  end if;
  return null;
end
$$;
comment on function audit_trail.flush_pending_events() is
  'Commit-time chain step (deferred constraint trigger): numbers, hashes and writes the transaction''s events.';
