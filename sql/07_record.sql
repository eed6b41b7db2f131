-- Application-level events that no table trigger sees: a read of a batch
-- record, an execute such as a batch release, an electronic signature.
-- Same buffer, same chain, same rules as captured changes.

create function audit_trail.record(
  action text,
  resource_type text,
  resource_id text,
  changes jsonb default '[]',
  reason text default null,
  parent_type text default null,
  parent_id text default null,
  context jsonb default '{}',
  tenant text default null,
  occurred_at timestamptz default null)
returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_generic_plan
-- (look-ups by key use their indexes whatever the tables held when planned, no JIT: see flush_pending_events())
set enable_seqscan = off
set jit = off
as $$
declare
  v_session_tenant text := nullif(current_setting('audit_trail.tenant_id', true), '');
  v_tenant text := coalesce(tenant, v_session_tenant);
  v_policy audit_trail.tenant_policies;
  v_change jsonb;
begin
  if action is null or action not in ('create', 'read', 'update', 'delete', 'execute') then
    raise exception 'audit action must be create, read, update, delete or execute, not "%"', coalesce(action, 'NULL')
      using errcode = '22023', hint = 'A batch release or an electronic signature is an "execute"; viewing a record is a "read".';
  end if;
  if resource_type is null or btrim(resource_type) = '' then
    raise exception 'audit_trail.record needs a resource_type' using errcode = '22023',
      hint = 'Name the kind of record acted on, e.g. ''batch_record''.';
  end if;
  if changes is null or jsonb_typeof(changes) <> 'array' then
    raise exception 'changes must be a JSON array of {field, before, after}' using errcode = '22023',
      hint = 'Pass ''[]'' when nothing changed, e.g. for a read.';
  end if;
  for v_change in select value from jsonb_array_elements(changes) loop
    if jsonb_typeof(v_change) <> 'object' or jsonb_typeof(v_change -> 'field') is distinct from 'string' then
      raise exception 'every element of changes must be an object with a "field" string; found %', left(v_change::text, 200)
        using errcode = '22023', hint = 'Use {"field": "status", "before": "quarantine", "after": "released"}.';
    end if;
  end loop;
  -- When it happened in the real world: a date of years 1 to 9999, as the
  -- audit_trail.occurred_at setting takes it (infinity, BC dates and years
  -- beyond 9999 are input errors, not moments).
  if occurred_at is not null and not (occurred_at >= '0001-01-01 00:00:00+00' and occurred_at < '10000-01-01 00:00:00+00') then
    raise exception 'occurred_at % is outside years 1 to 9999', occurred_at
      using errcode = '22008', hint = 'Give the moment of the action, e.g. occurred_at => ''2026-04-19T08:42:17.382Z''.';
  end if;
  if context is null or jsonb_typeof(context) <> 'object' then
    raise exception 'context must be a JSON object' using errcode = '22023', hint = 'Pass ''{}'' when there is none.';
  end if;
  if pg_column_size(changes) + pg_column_size(context) > 1048576 then
    raise exception 'this audit event is % bytes; the limit is 1 MiB', pg_column_size(changes) + pg_column_size(context)
      using errcode = '54000', hint = 'Record large documents by their SHA-256 and length, and keep the document in a controlled store.';
  end if;
  -- The _system chain holds pg-audit-trail's own administrative events only
  -- (record_administrative_event): an application may not write there.
  if v_tenant = '_system' then
    raise exception 'tenant id "_system" is reserved for pg-audit-trail''s administrative events' using errcode = '22023',
      hint = 'Record the event under the tenant it concerns.';
  end if;
  if tenant is not null and v_session_tenant is not null and tenant <> v_session_tenant then
    raise exception 'cross-tenant write refused: the session acts for tenant % but the event names tenant %',
        v_session_tenant, tenant
      using errcode = '42501', hint = 'Record the event in a transaction of its own tenant.';
  end if;
  select p.* into v_policy from audit_trail.tenant_policies p
   where p.tenant_id in (v_tenant, '*') order by (p.tenant_id = '*') limit 1;
  return audit_trail.append_event(
    v_tenant, action, resource_type, resource_id, parent_type, parent_id, changes,
    action = any (v_policy.reason_required_actions) or reason is not null,
    true, 'api', jsonb_build_object('recorded', context), reason, occurred_at);
end
$$;
comment on function audit_trail.record(text, text, text, jsonb, text, text, text, jsonb, text, timestamptz) is
  'Appends an application-level event (read, execute, signature) to the tenant''s chain; returns its event_id.';

-- Administrative events (configuration, access grants): attributed to the
-- audit_trail.actor_id of the session when set, else to the database login.
-- The tenant's actor registry does not apply to them (a DBA's login is not an
-- application actor); the reason rules do.
create function audit_trail.record_administrative_event(
  p_tenant text, p_action text, p_resource_type text, p_resource_id text, p_changes jsonb, p_reason text,
  p_reason_required boolean)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_actor text := current_setting('audit_trail.actor_id', true);
  v_event_id text;
begin
  if coalesce(v_actor, '') = '' then
    perform set_config('audit_trail.actor_id', session_user::text, true);
  end if;
  v_event_id := audit_trail.append_event(p_tenant, p_action, p_resource_type, p_resource_id, null, null,
    p_changes, p_reason_required, true, 'administration', '{}', p_reason, null, false);
  if coalesce(v_actor, '') = '' then
    perform set_config('audit_trail.actor_id', '', true);
  end if;
  return v_event_id;
end
$$;
comment on function audit_trail.record_administrative_event is
  'Internal: appends a configuration or access event, attributed to the session''s actor or database login.';
