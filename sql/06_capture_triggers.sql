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
create function audit_trail.condition_row_image(p_row jsonb, p_options jsonb,
                                                out image jsonb, out digested text[], out redacted text[])
language plpgsql
as $$
declare
  v_key text;
  v_value jsonb;
  v_limit integer := coalesce((p_options ->> 'max_inline_bytes')::integer, 4096);
begin
  image := p_row;
  digested := '{}'; redacted := '{}';
  if p_row is null then
    return;
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

-- The trigger itself stays small: plpgsql keeps one compiled copy of a trigger
-- function per table, and each copy sets up its expressions again in every
-- transaction. The work is done by capture_row_event(), one copy per session.
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
  v_json_nulls_old text[];
  v_json_nulls_new text[];
  v_event_id text;
begin
  if TG_OP <> 'INSERT' then
    v_old := to_jsonb(OLD);
  end if;
  if TG_OP <> 'DELETE' then
    v_new := to_jsonb(NEW);
  end if;
  if o ? 'json_columns' then
    v_json_nulls_old := audit_trail.json_null_columns(v_old, o, OLD);
    v_json_nulls_new := audit_trail.json_null_columns(v_new, o, NEW);
  end if;
  v_event_id := audit_trail.capture_row_event(o, TG_OP, v_old, v_new, v_json_nulls_old, v_json_nulls_new);
  return null;
end
$$;
comment on function audit_trail.capture_change() is
  'AFTER row trigger of audited tables: converts the row images and hands them to capture_row_event (see audit_trail.enable).';

-- The delta, tenant, key and policy of one captured row change; buffers its event.
create function audit_trail.capture_row_event(o jsonb, p_op text, p_old jsonb, p_new jsonb,
                                              p_json_nulls_old text[], p_json_nulls_new text[])
returns text
language plpgsql
as $$
declare
  v_old jsonb := p_old;
  v_new jsonb := p_new;
  v_row jsonb;
  v_action text;
  v_changes jsonb;
  v_tenant text;
  v_session_tenant text := nullif(current_setting('audit_trail.tenant_id', true), '');
  v_resource_id text;
  v_reason_required boolean := false;
  v_soft jsonb := o -> 'soft_delete';
  v_col text;
  v_was_deleted boolean;
  v_is_deleted boolean;
  v_marked boolean := false;
  v_digested_old text[] := '{}';
  v_digested_new text[] := '{}';
  v_redacted text[] := '{}';
begin
  if p_op = 'INSERT' then
    v_row := v_new; v_action := 'create';
  elsif p_op = 'UPDATE' then
    v_row := v_new; v_action := 'update';
    if v_soft is not null then
      v_col := v_soft ->> 'column';
      if v_soft ? 'deleted_value' then
        v_was_deleted := coalesce(v_old -> v_col = v_soft -> 'deleted_value', false);
        v_is_deleted := coalesce(v_new -> v_col = v_soft -> 'deleted_value', false);
      else
        v_was_deleted := coalesce(jsonb_typeof(v_old -> v_col) <> 'null', false);
        v_is_deleted := coalesce(jsonb_typeof(v_new -> v_col) <> 'null', false);
      end if;
      if v_is_deleted and not v_was_deleted then
        v_action := 'delete';
      end if;
    end if;
  else
    v_row := v_old; v_action := 'delete';
  end if;
  -- Tenant: the row's tenant column is the truth; a contradicting session tenant is a cross-tenant write.
  if o ? 'tenant_column' then
    v_tenant := v_row ->> (o ->> 'tenant_column');
    if p_op = 'UPDATE' and (v_old -> (o ->> 'tenant_column')) is distinct from (v_new -> (o ->> 'tenant_column')) then
      raise exception 'a row of % cannot move from tenant % to tenant %', o ->> 'table',
          v_old ->> (o ->> 'tenant_column'), v_new ->> (o ->> 'tenant_column')
        using errcode = '42501', hint = 'Copy the row into the other tenant (an audited create) and delete it here.';
    end if;
  else
    v_tenant := coalesce(o ->> 'tenant', v_session_tenant);
  end if;
  if v_session_tenant is not null and v_tenant is distinct from v_session_tenant then
    raise exception 'cross-tenant write refused: the session acts for tenant % but the row belongs to tenant %',
        v_session_tenant, coalesce(v_tenant, '(none)')
      using errcode = '42501',
            hint = 'Set audit_trail.tenant_id to the row''s tenant, or write the row in a transaction of its own tenant.';
  end if;

  if o ? 'exclude_columns' then
    v_old := v_old - array(select jsonb_array_elements_text(o -> 'exclude_columns'));
    v_new := v_new - array(select jsonb_array_elements_text(o -> 'exclude_columns'));
  end if;
  if o ? 'redact_columns'
     or pg_column_size(v_old) > coalesce((o ->> 'max_inline_bytes')::integer, 4096)
     or pg_column_size(v_new) > coalesce((o ->> 'max_inline_bytes')::integer, 4096) then
    select c.image, c.digested, c.redacted into v_old, v_digested_old, v_redacted
      from audit_trail.condition_row_image(v_old, o) c;
    select c.image, c.digested, v_redacted || c.redacted into v_new, v_digested_new, v_redacted
      from audit_trail.condition_row_image(v_new, o) c;
    v_marked := true;
  end if;

  if v_action = 'update' then
    select jsonb_agg(jsonb_build_object('field', n.key, 'before', v_old -> n.key, 'after', n.value) order by n.key)
      into v_changes
      from jsonb_each(v_new) n
     where n.value is distinct from v_old -> n.key
        or (jsonb_typeof(n.value) in ('number', 'array', 'object') and n.value::text <> (v_old -> n.key)::text)
        -- JSON null and SQL NULL look alike in to_jsonb(): a move between them is a change
        or (jsonb_typeof(n.value) = 'null'
            and (n.key = any (coalesce(p_json_nulls_old, '{}'))) <> (n.key = any (coalesce(p_json_nulls_new, '{}'))));
    if v_changes is null then
      return null;  -- nothing changed that is captured: no event
    end if;
  elsif p_op = 'INSERT' then
    select jsonb_agg(jsonb_build_object('field', n.key, 'before', null, 'after', n.value) order by n.key)
      into v_changes from jsonb_each(v_new) n;
  elsif p_op = 'UPDATE' then  -- soft delete: the complete before-state, and the after-state
    select jsonb_agg(jsonb_build_object('field', b.key, 'before', b.value, 'after', v_new -> b.key) order by b.key)
      into v_changes from jsonb_each(v_old) b;
  else
    select jsonb_agg(jsonb_build_object('field', b.key, 'before', b.value, 'after', null) order by b.key)
      into v_changes from jsonb_each(v_old) b;
  end if;
  v_changes := coalesce(v_changes, '[]');

  if v_marked or p_json_nulls_old <> '{}' or p_json_nulls_new <> '{}' then
    select coalesce(jsonb_agg(c || jsonb_strip_nulls(jsonb_build_object(
             'redacted', case when c ->> 'field' = any (v_redacted) then true end,
             'stored_as_digest', nullif(array_remove(array[
                 case when c ->> 'field' = any (v_digested_old) then 'before' end,
                 case when c ->> 'field' = any (v_digested_new) then 'after' end], null), '{}'),
             'json_null', nullif(array_remove(array[
                 case when c ->> 'field' = any (p_json_nulls_old) then 'before' end,
                 case when c ->> 'field' = any (p_json_nulls_new) then 'after' end], null), '{}')))
           order by ord), '[]')
      into v_changes
      from jsonb_array_elements(v_changes) with ordinality as x(c, ord);
  end if;

  if jsonb_typeof(o -> 'reason_required') = 'boolean' then
    v_reason_required := (o ->> 'reason_required')::boolean;
  elsif o ? 'reason_required' then
    v_reason_required := exists (select from jsonb_array_elements(v_changes) c
                                  where (o -> 'reason_required') ? (c ->> 'field'));
  end if;

  if jsonb_array_length(o -> 'key_columns') = 1 then
    v_resource_id := v_row ->> (o -> 'key_columns' ->> 0);
  else
    v_resource_id := (select jsonb_agg(v_row -> k.col order by k.ord)
                        from jsonb_array_elements_text(o -> 'key_columns') with ordinality k(col, ord))::text;
  end if;

  return audit_trail.append_event(
    v_tenant, v_action, o ->> 'resource_type', v_resource_id,
    o -> 'parent' ->> 'resource_type', v_row ->> (o -> 'parent' ->> 'column'),
    v_changes, v_reason_required, coalesce((o ->> 'actor_required')::boolean, true), 'trigger',
    jsonb_build_object('table', o ->> 'table'));
end
$$;
comment on function audit_trail.capture_row_event(jsonb, text, jsonb, jsonb, text[], text[]) is
  'Internal: computes the field delta, tenant, key and policy of one row change and buffers its event.';

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
