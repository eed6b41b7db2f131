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
  ) on commit delete rows;
  -- A row with flushed_through null asks for a flush at commit.
  create temporary table if not exists audit_trail_flush_request (
    flushed_through bigint
  ) on commit delete rows;
  if not exists (select from pg_trigger where tgrelid = 'pg_temp.audit_trail_flush_request'::regclass
                   and tgname = 'audit_trail_flush_at_commit') then
    create constraint trigger audit_trail_flush_at_commit
      after insert on pg_temp.audit_trail_flush_request
      deferrable initially deferred
      for each row execute function audit_trail.flush_pending_events();
  end if;
end
$$;

-- Refuses a buffer that somebody else created first under the same name.
create function audit_trail.check_pending_buffer_owner()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if exists (select from pg_class c
              where c.oid in ('pg_temp.audit_trail_pending'::regclass, 'pg_temp.audit_trail_flush_request'::regclass)
                and c.relowner <> (select oid from pg_roles where rolname = 'audit_trail_owner')) then
    raise exception 'a temporary table named audit_trail_pending or audit_trail_flush_request exists that pg-audit-trail did not create'
      using errcode = '42501',
            hint = 'Drop your temporary tables of these names; they are reserved for the audit trail''s commit buffer.';
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
set search_path = pg_catalog, pg_temp
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
  v_policy audit_trail.tenant_policies;
  v_actor audit_trail.actors;
  v_occurred_at timestamptz := p_occurred_at;
  v_context jsonb;
  v_db_identity jsonb;
  v_event_id text;
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

  select p.* into v_policy from audit_trail.tenant_policies p
   where p.tenant_id in (p_tenant, '*') order by (p.tenant_id = '*') limit 1;

  if v_actor_id is not null
     and (v_policy.reject_unknown_actors or v_policy.reject_suspended_actors or v_policy.reject_shared_actors) then
    select a.* into v_actor from audit_trail.actors a where a.tenant_id = p_tenant and a.actor_id = v_actor_id;
    if not found then
      if v_policy.reject_unknown_actors then
        raise exception 'actor "%" is not registered for tenant %', v_actor_id, p_tenant
          using errcode = 'AT002',
                hint = 'Register the actor in audit_trail.actors (an administrator''s task), or use a registered actor id.';
      end if;
    else
      if v_policy.reject_suspended_actors and v_actor.status = 'suspended' then
        raise exception 'actor "%" is suspended for tenant %', v_actor_id, p_tenant
          using errcode = 'AT002', hint = 'A suspended account may not change records; ask an administrator to reactivate it or act as yourself.';
      end if;
      if v_policy.reject_shared_actors and v_actor.is_shared_account then
        raise exception 'actor "%" is a shared account, which tenant % does not accept', v_actor_id, p_tenant
          using errcode = 'AT002', hint = 'Log in with a personal account (badge, PIN, SSO): shared logins make changes unattributable.';
      end if;
      v_actor_name := coalesce(v_actor_name, v_actor.display_name);
    end if;
  end if;

  if v_reason is not null or p_reason_required then
    if p_reason_required and (v_reason is null or btrim(v_reason) = '') then
      raise exception 'a reason is required for this change to % %', p_resource_type, coalesce(p_resource_id, '')
        using errcode = 'AT003',
              hint = 'SET LOCAL audit_trail.reason = ''<why, with the evidence: document, alarm, deviation number>'';';
    end if;
    if p_reason_required and (lower(btrim(v_reason)) = any (v_policy.weak_reasons)
                              or char_length(btrim(v_reason)) < v_policy.reason_min_length) then
      raise exception 'the reason "%" carries no evidence', v_reason
        using errcode = 'AT004',
              detail = format('Tenant %s requires at least %s characters and rejects placeholders such as "ok", "see email", "n/a", "fixed".',
                              p_tenant, v_policy.reason_min_length),
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
  v_event_id := audit_trail.new_ulid(v_now);

  if to_regclass('pg_temp.audit_trail_pending') is null then
    perform audit_trail.create_pending_buffer();
  end if;
  insert into pg_temp.audit_trail_pending (tenant_id, event_id, occurred_at, ingested_at, actor_type, actor_id,
      actor_name, auth_method, source_ip, user_agent_hash, action, resource_type, resource_id, parent_type,
      parent_id, changes, reason, context, db_identity, body)
  values (p_tenant, v_event_id, coalesce(v_occurred_at, v_now), v_now, v_actor_type, v_actor_id, v_actor_name,
      nullif(current_setting('audit_trail.auth_method', true), ''), v_source_ip,
      nullif(current_setting('audit_trail.user_agent_hash', true), ''), p_action, p_resource_type, p_resource_id,
      p_parent_type, p_parent_id, p_changes, v_reason, v_context, v_db_identity,
      audit_trail.encode_body(v_event_id, p_tenant, coalesce(v_occurred_at, v_now), v_now, v_actor_type, v_actor_id,
        v_actor_name, nullif(current_setting('audit_trail.auth_method', true), ''), v_source_ip,
        nullif(current_setting('audit_trail.user_agent_hash', true), ''), p_action, p_resource_type, p_resource_id,
        p_parent_type, p_parent_id, p_changes, v_reason, v_context, v_db_identity));
  -- The request is inserted after the event: with SET CONSTRAINTS ALL IMMEDIATE
  -- the flush runs at the end of this insert and must find the event there.
  if not exists (select from pg_temp.audit_trail_flush_request where flushed_through is null) then
    perform audit_trail.check_pending_buffer_owner();
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
as $$
declare
  v_from bigint;
  v_to bigint;
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
  select coalesce(max(flushed_through), 0) into v_from from pg_temp.audit_trail_flush_request;
  select max(ordinal) into v_to from pg_temp.audit_trail_pending where ordinal > v_from;
  if v_to is null then
    update pg_temp.audit_trail_flush_request set flushed_through = v_from where flushed_through is null;
    return null;
  end if;
  if (select max(ingested_at) from pg_temp.audit_trail_pending where ordinal > v_from)
     >= (select covered_until from audit_trail.partition_horizon) then
    perform audit_trail.create_partitions(now());
  end if;

  for v_tenant in select distinct tenant_id from pg_temp.audit_trail_pending
                   where ordinal > v_from order by tenant_id loop
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
              where p.tenant_id = v_tenant and p.ordinal > v_from order by p.ordinal loop
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
  update pg_temp.audit_trail_flush_request set flushed_through = v_to where flushed_through is null;
  return null;
end
$$;
comment on function audit_trail.flush_pending_events() is
  'Commit-time chain step (deferred constraint trigger): numbers, hashes and writes the transaction''s events.';
