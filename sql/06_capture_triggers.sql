-- Capture: the row triggers that audit_trail.enable() puts on a domain table.
-- The options (normalised by enable()) travel as the trigger's argument, so the
-- hot path reads no configuration table.
--
-- Values are converted with to_jsonb() under pinned settings (UTC, postgres
-- interval style, shortest exact floats, hex bytea; JSON dates are always ISO), so the recorded
-- values do not depend on the writing session's settings.

-- HMAC-SHA256 of a value with the installation's redaction key (RFC 2104).
create function audit_trail.keyed_digest(p_value jsonb)
returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_key bytea := (select redaction_key from audit_trail.settings);
  v_ipad bytea := '\x' || repeat('36', 64);
  v_opad bytea := '\x' || repeat('5c', 64);
  i integer;
begin
  if p_value is null or jsonb_typeof(p_value) = 'null' then
    return null;
  end if;
  for i in 0 .. octet_length(v_key) - 1 loop
    v_ipad := set_byte(v_ipad, i, get_byte(v_key, i) # 54);
    v_opad := set_byte(v_opad, i, get_byte(v_key, i) # 92);
  end loop;
  return 'hmac-sha256:' || encode(sha256(v_opad || sha256(v_ipad || convert_to(p_value::text, 'UTF8'))), 'hex');
end
$$;
comment on function audit_trail.keyed_digest(jsonb) is
  'HMAC-SHA256 (installation key) of a value''s JSON text: equal values give equal digests, the value is not revealed.';

-- A value too large to inline: its SHA-256 and length. bytea is digested as its
-- raw bytes and text as its UTF-8 bytes, so a holder of the file can compare.
create function audit_trail.value_digest(p_value jsonb, p_is_bytea boolean)
returns jsonb
language sql immutable parallel safe
begin atomic
  select case
    when p_is_bytea and pg_catalog.jsonb_typeof(p_value) = 'string' then
      pg_catalog.jsonb_build_object('sha256', pg_catalog.encode(pg_catalog.sha256(pg_catalog.decode(pg_catalog.substr(p_value #>> '{}', 3), 'hex')), 'hex'),
                                    'bytes', pg_catalog.octet_length(pg_catalog.decode(pg_catalog.substr(p_value #>> '{}', 3), 'hex')),
                                    'of', 'bytea')
    when pg_catalog.jsonb_typeof(p_value) = 'string' then
      pg_catalog.jsonb_build_object('sha256', pg_catalog.encode(pg_catalog.sha256(pg_catalog.textsend(p_value #>> '{}')), 'hex'),
                                    'bytes', pg_catalog.octet_length(p_value #>> '{}'), 'of', 'text')
    else
      pg_catalog.jsonb_build_object('sha256', pg_catalog.encode(pg_catalog.sha256(pg_catalog.textsend(p_value::text)), 'hex'),
                                    'bytes', pg_catalog.octet_length(p_value::text), 'of', 'json')
  end;
end;

-- Applies redaction and the inline size limit to one side of a change.
-- Returns the new row image and the keys it digested or redacted.
create type audit_trail.conditioned_row_image as (image jsonb, digested text[], redacted text[]);
comment on type audit_trail.conditioned_row_image is 'Internal: a row image after redaction and the inline size limit.';

create function audit_trail.condition_row_image(p_row jsonb, p_options jsonb)
returns audit_trail.conditioned_row_image
language plpgsql
as $$
declare
  image jsonb;
  digested text[];
  redacted text[];
  v_key text;
  v_value jsonb;
  v_limit integer := coalesce((p_options ->> 'max_inline_bytes')::integer, 4096);
begin
  image := p_row;
  digested := '{}'; redacted := '{}';
  if p_row is null then
    return row(image, digested, redacted)::audit_trail.conditioned_row_image;
  end if;
  if p_options ? 'redact_columns' then
    for v_key in select jsonb_array_elements_text(p_options -> 'redact_columns') loop
      if image ? v_key and jsonb_typeof(image -> v_key) <> 'null' then
        image := jsonb_set(image, array[v_key], to_jsonb(audit_trail.keyed_digest(image -> v_key)));
        redacted := redacted || v_key;
      end if;
    end loop;
  end if;
  if pg_column_size(image) > v_limit then
    for v_key, v_value in select key, value from jsonb_each(image) where octet_length(value::text) > v_limit loop
      image := jsonb_set(image, array[v_key],
        audit_trail.value_digest(v_value, coalesce((p_options -> 'bytea_columns') ? v_key, false)));
      digested := digested || v_key;
    end loop;
  end if;
  return row(image, digested, redacted)::audit_trail.conditioned_row_image;
end
$$;

-- The json/jsonb columns of a row that hold the JSON value null (not SQL NULL):
-- to_jsonb() shows both as null, so the event marks them.
create function audit_trail.json_null_columns(p_row jsonb, p_options jsonb, p_row_record anyelement)
returns text[]
language plpgsql
as $$
declare
  v_key text;
  v_is_null boolean;
  v_found text[] := '{}';
begin
  if p_row is null then
    return v_found;
  end if;
  for v_key in select jsonb_array_elements_text(p_options -> 'json_columns') loop
    if jsonb_typeof(p_row -> v_key) = 'null' then
      execute format('select ($1).%I is null', v_key) into v_is_null using p_row_record;
      if not v_is_null then
        v_found := v_found || v_key;
      end if;
    end if;
  end loop;
  return v_found;
end
$$;

-- Raises the refusal of a change whose tenant is missing, reserved or not the
-- session's (the same messages from the row and the statement trigger).
create function audit_trail.refuse_tenant(p_table text, p_session_tenant text, p_row_tenant text)
returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_session_tenant is not null and p_row_tenant is distinct from p_session_tenant then
    raise exception 'cross-tenant write refused: the session acts for tenant % but the row belongs to tenant %',
        p_session_tenant, coalesce(p_row_tenant, '(none)')
      using errcode = '42501',
            hint = 'Set audit_trail.tenant_id to the row''s tenant, or write the row in a transaction of its own tenant.';
  end if;
  if p_row_tenant is null or p_row_tenant = '' then
    raise exception 'no tenant for this change to %', p_table
      using errcode = 'AT005',
            hint = 'SET LOCAL audit_trail.tenant_id = ''<tenant>''; or enable the table with a tenant_column or a fixed tenant.';
  end if;
  if p_row_tenant in ('*', '_system') then
    raise exception 'tenant id "%" is reserved', p_row_tenant using errcode = '22023',
      hint = 'Use another tenant id ("*" names the default policy, "_system" holds pg-audit-trail''s administrative events).';
  end if;
  return true;
end
$$;
comment on function audit_trail.refuse_tenant(text, text, text) is
  'Internal: raises the refusal of a change without a tenant, for the reserved tenant or for another tenant than the session''s.';

-- Refuses a change captured by a trigger that audit_trail.enable() did not put
-- on an enabled audited table with these options: the capture functions can be
-- attached to any table by anyone allowed to create a trigger, and the options
-- (tenant, table name, checks) travel in the trigger's argument. Returns
-- nothing when the capture is a registered one.
create function audit_trail.refuse_foreign_capture(p_table oid, p_options jsonb)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_root oid := coalesce(pg_partition_root(p_table), p_table);
begin
  -- (the table itself, or the root of the partitioned table it is a partition of)
  if exists (select from audit_trail.audited_tables t
              where t.table_oid in (p_table, v_root) and t.enabled and t.options = p_options) then
    return;
  end if;
  raise exception 'change to % refused: its capture trigger is not one that audit_trail.enable() installed with the table''s registered options',
      coalesce(to_regclass(p_table::text)::text, p_table::text)
    using errcode = '42501',
          hint = case when exists (select from audit_trail.audited_tables t where t.table_oid in (p_table, v_root) and t.enabled)
                      then 'Re-run audit_trail.enable() on the table (as a member of audit_trail_admin) to restore its capture triggers; do not make the change and enable() with other options in one transaction.'
                      else 'The audit trail''s trigger functions may only be used by audit_trail.enable(); drop this trigger.' end;
end
$$;
comment on function audit_trail.refuse_foreign_capture(oid, jsonb) is
  'Internal: refuses a capture by a trigger that enable() did not install on an enabled audited table with these options.';

-- The capture trigger does only what needs no look-up, so that a change costs
-- little more than writing one row of raw material: the row images (redacted
-- and digested where configured), the tenant (a contradicting session tenant
-- is refused here), a present actor and, where every change needs one, a
-- present reason. The commit step
-- (flush_pending_events) builds the event from it set-based: the delta, keys,
-- context, the tenant's actor and reason rules, the chain.
create function audit_trail.capture_change()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set intervalstyle = 'postgres'
set extra_float_digits = 3
set bytea_output = 'hex'
set plan_cache_mode = force_generic_plan
as $$
declare
  o constant jsonb := TG_ARGV[0]::jsonb;
  v_old jsonb;
  v_new jsonb;
  v_tenant text;
  v_session_tenant text := nullif(current_setting('audit_trail.tenant_id', true), '');
  -- The settings the checks read, each read once; the buffer takes the raw
  -- text (NULL or '' when unset) and the commit step turns '' into NULL set-based.
  v_actor_id text := current_setting('audit_trail.actor_id', true);
  v_actor_type text := current_setting('audit_trail.actor_type', true);
  v_reason text := current_setting('audit_trail.reason', true);
  v_source_ip text := current_setting('audit_trail.source_ip', true);
  v_occurred_at text := current_setting('audit_trail.occurred_at', true);
  v_context text := current_setting('audit_trail.context', true);
  v_excluded text[];
  v_flagged boolean := false;
  v_json_nulls_old text[];
  v_json_nulls_new text[];
  v_digested_old text[];
  v_digested_new text[];
  v_redacted text[];
begin
  -- Every statement and expression below is set up anew in each transaction
  -- (PL/pgSQL caches plans, not their state): the common path is kept to a
  -- few tests, and each optional treatment sits behind one of them.
  if TG_OP <> 'INSERT' then
    v_old := to_jsonb(OLD);
  end if;
  if TG_OP <> 'DELETE' then
    v_new := to_jsonb(NEW);
  end if;
  if o ?| array['exclude_columns', 'json_columns'] then
    if o ? 'exclude_columns' then
      v_excluded := array(select jsonb_array_elements_text(o -> 'exclude_columns'));
      v_old := v_old - v_excluded;
      v_new := v_new - v_excluded;
    end if;
    if o ? 'json_columns' then
      v_json_nulls_old := audit_trail.json_null_columns(v_old, o, OLD);
      v_json_nulls_new := audit_trail.json_null_columns(v_new, o, NEW);
      v_flagged := true;
    end if;
  end if;

  -- Tenant: the row's tenant column is the truth; a contradicting session tenant is a cross-tenant write.
  if o ? 'tenant_column' then
    v_tenant := coalesce(v_new, v_old) ->> (o ->> 'tenant_column');
  else
    v_tenant := coalesce(o ->> 'tenant', v_session_tenant);
  end if;
  if v_tenant is null or v_tenant in ('', '*', '_system') or v_session_tenant <> v_tenant
     or (TG_OP = 'UPDATE' and o ? 'tenant_column'
         and (v_old -> (o ->> 'tenant_column')) is distinct from (v_new -> (o ->> 'tenant_column'))) then
    if TG_OP = 'UPDATE' and o ? 'tenant_column'
       and (v_old -> (o ->> 'tenant_column')) is distinct from (v_new -> (o ->> 'tenant_column')) then
      raise exception 'a row of % cannot move from tenant % to tenant %', o ->> 'table',
          v_old ->> (o ->> 'tenant_column'), v_new ->> (o ->> 'tenant_column')
        using errcode = '42501', hint = 'Copy the row into the other tenant (an audited create) and delete it here.';
    end if;
    perform audit_trail.refuse_tenant(o ->> 'table', v_session_tenant, v_tenant);
  end if;

  -- Checks that need no look-up are made at the change, so the error comes
  -- with the statement that caused it; the tenant's rules come at commit.
  -- (An update that changes nothing needs no reason: the commit step drops it.)
  if ((o ->> 'actor_required')::boolean and coalesce(v_actor_id, '') = '')
     or (o -> 'reason_required' = 'true'::jsonb and coalesce(v_reason, '') = ''
         and not (TG_OP = 'UPDATE' and v_old::text = v_new::text
                  and v_json_nulls_old is not distinct from v_json_nulls_new)) then
    perform audit_trail.refuse_event(
      case when (o ->> 'actor_required')::boolean and coalesce(v_actor_id, '') = '' then 'no actor' else 'no reason' end,
      v_tenant, o ->> 'resource_type', audit_trail.row_key(coalesce(v_new, v_old), o -> 'key_columns'), null, null, null);
  end if;
  -- Settings set with SET LOCAL rather than set_context() are checked here.
  if concat(v_source_ip, v_occurred_at, v_context) <> ''
     or coalesce(v_actor_type, '') not in ('', 'user', 'service', 'system') then
    perform audit_trail.check_context_value(k, v)
       from (values ('actor_type', v_actor_type), ('source_ip', v_source_ip),
                    ('occurred_at', v_occurred_at), ('context', v_context)) s(k, v)
      where coalesce(v, '') <> '' and not (k = 'actor_type' and v in ('user', 'service', 'system'));
  end if;

  -- Redaction and the inline size limit, only where they apply.
  if o ? 'redact_columns'
     or greatest(pg_column_size(v_old), pg_column_size(v_new)) > (o ->> 'max_inline_bytes')::integer then
    select c.image, c.digested, c.redacted into v_old, v_digested_old, v_redacted
      from audit_trail.condition_row_image(v_old, o) c;
    select c.image, c.digested, v_redacted || c.redacted into v_new, v_digested_new, v_redacted
      from audit_trail.condition_row_image(v_new, o) c;
    v_flagged := true;
  end if;

  -- As in buffer_event(): spelt out here, because a function call would cost every row.
  if to_regclass('pg_temp.audit_trail_pending') is null then
    perform audit_trail.create_pending_buffer();
  elsif pg_relation_size('pg_temp.audit_trail_pending') > 65536 then
    perform audit_trail.truncate_idle_buffer();
  end if;
  -- The buffer must be ours: a same-named table that the session's own role
  -- created first could be edited before commit, or lack the commit trigger.
  insert into pg_temp.audit_trail_pending (requests_flush, tenant_id, ingested_at, table_options, operation, old_row,
      new_row, flagged, json_nulls_old, json_nulls_new, digested_old, digested_new, redacted, actor_id, actor_type,
      actor_name, auth_method, source_ip, user_agent_hash, reason, occurred_at_setting, context_setting, request_id,
      session_id, correlation_id, capture_method)
  select not exists (select from pg_temp.audit_trail_pending), v_tenant, clock_timestamp(), o, TG_OP, v_old, v_new,
      v_flagged, v_json_nulls_old, v_json_nulls_new, v_digested_old, v_digested_new, v_redacted,
      v_actor_id, v_actor_type,
      current_setting('audit_trail.actor_name', true),
      current_setting('audit_trail.auth_method', true),
      v_source_ip,
      current_setting('audit_trail.user_agent_hash', true),
      v_reason, v_occurred_at, v_context,
      current_setting('audit_trail.request_id', true),
      current_setting('audit_trail.session_id', true),
      current_setting('audit_trail.correlation_id', true),
      current_setting('audit_trail.capture_method', true)
   where (select c.relowner from pg_class c where c.oid = 'pg_temp.audit_trail_pending'::regclass)
         = 'audit_trail_owner'::regrole
     -- The trigger must be one that enable() put on an audited table (or a
     -- partition of one), with the options it registered: anyone may attach
     -- this function to a table of their own, with options of their choosing.
     and exists (select from audit_trail.audited_tables t
                  where t.table_oid in (TG_RELID, pg_partition_root(TG_RELID)) and t.enabled and t.options = o);
  if not found then
    perform audit_trail.refuse_foreign_capture(TG_RELID, o);
    perform audit_trail.refuse_foreign_buffer();
  end if;
  return null;
end
$$;
comment on function audit_trail.capture_change() is
  'AFTER row trigger of audited tables: checks tenant, actor and reason presence and buffers the row change (see audit_trail.enable).';

-- The capture of INSERT and COPY on tables whose rows need no per-row
-- treatment (see install_capture_triggers): an AFTER STATEMENT trigger that
-- buffers every inserted row with one INSERT ... SELECT from the statement's
-- transition table. The same checks and the same raw material as
-- capture_change(), once per statement instead of once per row: a bulk import
-- pays the PL/pgSQL set-up once, not for each of its rows (docs/architecture.md).
-- Settings cannot change within a statement, so every row of it has the same.
create function audit_trail.capture_inserted_rows()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set intervalstyle = 'postgres'
set extra_float_digits = 3
set bytea_output = 'hex'
set plan_cache_mode = force_generic_plan
as $$
declare
  o constant jsonb := TG_ARGV[0]::jsonb;
  v_session_tenant text := nullif(current_setting('audit_trail.tenant_id', true), '');
  v_actor_id text := current_setting('audit_trail.actor_id', true);
  v_actor_type text := current_setting('audit_trail.actor_type', true);
  v_reason text := current_setting('audit_trail.reason', true);
  v_source_ip text := current_setting('audit_trail.source_ip', true);
  v_occurred_at text := current_setting('audit_trail.occurred_at', true);
  v_context text := current_setting('audit_trail.context', true);
  v_excluded text[] := '{}';
  v_first jsonb;
begin
  -- (as in capture_change(): a trigger that enable() put on an audited table, with its options)
  perform audit_trail.refuse_foreign_capture(TG_RELID, o);
  if o ? 'exclude_columns' then
    v_excluded := array(select jsonb_array_elements_text(o -> 'exclude_columns'));
  end if;
  if not o ? 'tenant_column' then
    perform audit_trail.refuse_tenant(o ->> 'table', v_session_tenant, coalesce(o ->> 'tenant', v_session_tenant))
     where coalesce(o ->> 'tenant', v_session_tenant) is null or coalesce(o ->> 'tenant', v_session_tenant) in ('', '*', '_system')
        or v_session_tenant <> coalesce(o ->> 'tenant', v_session_tenant);
  end if;
  if ((o ->> 'actor_required')::boolean and coalesce(v_actor_id, '') = '')
     or (o -> 'reason_required' = 'true'::jsonb and coalesce(v_reason, '') = '') then
    -- (refused naming the first row; an insert of no rows is no change)
    select to_jsonb(n) into v_first from audit_trail_inserted n limit 1;
    if v_first is not null then
      perform audit_trail.refuse_event(
        case when (o ->> 'actor_required')::boolean and coalesce(v_actor_id, '') = '' then 'no actor' else 'no reason' end,
        coalesce(v_first ->> (o ->> 'tenant_column'), o ->> 'tenant', v_session_tenant), o ->> 'resource_type',
        audit_trail.row_key(v_first, o -> 'key_columns'), null, null, null);
    end if;
  end if;
  if concat(v_source_ip, v_occurred_at, v_context) <> ''
     or coalesce(v_actor_type, '') not in ('', 'user', 'service', 'system') then
    perform audit_trail.check_context_value(k, v)
       from (values ('actor_type', v_actor_type), ('source_ip', v_source_ip),
                    ('occurred_at', v_occurred_at), ('context', v_context)) s(k, v)
      where coalesce(v, '') <> '' and not (k = 'actor_type' and v in ('user', 'service', 'system'));
  end if;

  if to_regclass('pg_temp.audit_trail_pending') is null then
    perform audit_trail.create_pending_buffer();
  elsif pg_relation_size('pg_temp.audit_trail_pending') > 65536 then
    perform audit_trail.truncate_idle_buffer();
  end if;
  -- One statement for all rows, in the order they were inserted. A row of
  -- another tenant than the session's, or of none, refuses the whole statement.
  -- (No ORDER BY: the rows leave the window in scan order, which is insertion
  -- order, and the nested loop keeps it; a sort would spill for a large import.)
  insert into pg_temp.audit_trail_pending (requests_flush, tenant_id, ingested_at, table_options, operation, old_row,
      new_row, flagged, digested_new, actor_id, actor_type, actor_name, auth_method, source_ip, user_agent_hash,
      reason, occurred_at_setting, context_setting, request_id, session_id, correlation_id, capture_method)
  select r.position = 1 and not exists (select from pg_temp.audit_trail_pending), r.tenant, clock_timestamp(), o, 'INSERT', null,
      coalesce((r.conditioned).image, r.image), (r.conditioned).image is not null, (r.conditioned).digested,
      v_actor_id, v_actor_type,
      current_setting('audit_trail.actor_name', true),
      current_setting('audit_trail.auth_method', true),
      v_source_ip,
      current_setting('audit_trail.user_agent_hash', true),
      v_reason, v_occurred_at, v_context,
      current_setting('audit_trail.request_id', true),
      current_setting('audit_trail.session_id', true),
      current_setting('audit_trail.correlation_id', true),
      current_setting('audit_trail.capture_method', true)
    from (select i.image, i.position,
                 case when o ? 'tenant_column' then i.image ->> (o ->> 'tenant_column')
                      else coalesce(o ->> 'tenant', v_session_tenant) end as tenant,
                 -- the inline size limit, only for rows over it
                 case when pg_column_size(i.image) > (o ->> 'max_inline_bytes')::integer
                      then audit_trail.condition_row_image(i.image, o) end as conditioned
            from (select to_jsonb(n) - v_excluded as image, row_number() over () as position
                    from audit_trail_inserted n) i
          offset 0) r  -- (evaluates condition_row_image() once per row, not once per field used)
   where (not (o ? 'tenant_column')
          or (r.tenant is not null and r.tenant not in ('', '*', '_system') and r.tenant = coalesce(v_session_tenant, r.tenant))
          or audit_trail.refuse_tenant(o ->> 'table', v_session_tenant, r.tenant))
     -- the buffer must be ours (as in capture_change())
     and (select c.relowner from pg_class c where c.oid = 'pg_temp.audit_trail_pending'::regclass)
         = 'audit_trail_owner'::regrole;
  if not found and exists (select from audit_trail_inserted) then
    perform audit_trail.refuse_foreign_buffer();
  end if;
  return null;
end
$$;
comment on function audit_trail.capture_inserted_rows() is
  'AFTER INSERT statement trigger (transition table audit_trail_inserted) of audited tables without per-row treatment: buffers every inserted row.';

-- The resource id of a row: the key column's value, or a JSON array of the values of a composite key.
create function audit_trail.row_key(p_row jsonb, p_key_columns jsonb) returns text
language sql immutable parallel safe
begin atomic
  select case when pg_catalog.jsonb_array_length(p_key_columns) = 1 then p_row ->> (p_key_columns ->> 0)
              else (select pg_catalog.jsonb_agg(p_row -> k.col order by k.ord)
                      from pg_catalog.jsonb_array_elements_text(p_key_columns) with ordinality k(col, ord))::text end;
end;
comment on function audit_trail.row_key(jsonb, jsonb) is 'The resource_id of a row image given its key columns.';

-- BEFORE DELETE, when hard_delete is 'forbid' or 'soft'.
create function audit_trail.apply_hard_delete_policy()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  o constant jsonb := TG_ARGV[0]::jsonb;
  v_soft jsonb := o -> 'soft_delete';
  v_where text;
begin
  if o ->> 'hard_delete' = 'forbid' then
    raise exception 'deleting rows of % is forbidden by its audit policy', o ->> 'table'
      using errcode = 'AT007',
            hint = case when v_soft is not null
                        then format('Mark the row deleted instead: UPDATE ... SET %I = ...', v_soft ->> 'column')
                        else 'Deletion is not allowed for this table; ask the administrator whether a soft delete column exists.' end;
  end if;
  -- 'soft': turn the DELETE into the configured soft delete; the UPDATE is captured as the delete event.
  select string_agg(format('%I is not distinct from ($1).%I', k, k), ' and ')
    into v_where from jsonb_array_elements_text(o -> 'key_columns') k;
  if v_soft ? 'deleted_value' then
    execute format('update %s set %I = %L where %s', TG_RELID::regclass, v_soft ->> 'column',
                   v_soft ->> 'deleted_value', v_where) using OLD;
  else
    execute format('update %s set %I = pg_catalog.now() where %s', TG_RELID::regclass, v_soft ->> 'column', v_where)
      using OLD;
  end if;
  return null;  -- the row stays
end
$$;
comment on function audit_trail.apply_hard_delete_policy() is
  'BEFORE DELETE trigger: refuses the delete (hard_delete = forbid) or turns it into the soft delete (hard_delete = soft).';

create function audit_trail.refuse_truncate_of_audited_table()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'TRUNCATE of audited table %.% is refused: it would delete rows without audit events',
      TG_TABLE_SCHEMA, TG_TABLE_NAME
    using errcode = 'AT008', hint = 'Delete rows with DELETE (each one is audited), or disable auditing with audit_trail.disable(table, reason) first.';
end
$$;
comment on function audit_trail.refuse_truncate_of_audited_table() is 'BEFORE TRUNCATE trigger of audited tables.';
