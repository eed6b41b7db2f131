-- Turning capture on and off for a domain table.
--
-- enable() runs with the caller's rights, because only the table's owner may
-- put triggers on it; it must also be a member of audit_trail_admin. Writing
-- the configuration and its audit event is done by register_audited_table(),
-- which runs as audit_trail_owner. Configuration events go to the chain of
-- the reserved tenant '_system'.

create function audit_trail.register_audited_table(p_table regclass, p_requested jsonb, p_options jsonb, p_enabled boolean, p_reason text)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_before audit_trail.audited_tables;
begin
  select * into v_before from audit_trail.audited_tables where table_oid = p_table;
  insert into audit_trail.audited_tables as t (table_oid, table_name, requested_options, options, enabled)
  values (p_table, p_table::text, p_requested, p_options, p_enabled)
  on conflict (table_oid) do update
     set table_name = excluded.table_name, requested_options = excluded.requested_options,
         options = excluded.options, enabled = excluded.enabled,
         changed_at = clock_timestamp(), changed_by = session_user;
  perform audit_trail.record_administrative_event('_system',
    case when p_enabled then 'execute' else 'execute' end, 'audited_table', p_table::text,
    jsonb_build_array(
      jsonb_build_object('field', 'enabled', 'before', v_before.enabled, 'after', p_enabled),
      jsonb_build_object('field', 'options', 'before', v_before.options, 'after', p_options)),
    p_reason, not p_enabled);
end
$$;
comment on function audit_trail.register_audited_table(regclass, jsonb, jsonb, boolean, text) is
  'Internal: records a table''s capture configuration and the configuration event.';

create function audit_trail.normalize_options(target regclass, options jsonb)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_options jsonb := coalesce(options, '{}');
  v_allowed constant text[] := array['tenant_column', 'tenant', 'resource_type', 'parent', 'soft_delete',
    'hard_delete', 'exclude_columns', 'redact_columns', 'reason_required', 'actor_required', 'key_columns',
    'max_inline_bytes'];
  v_columns text[];
  v_key text;
  v_keys text[];
  v_norm jsonb;
  v_relkind char;
  v_schema name;
  v_value jsonb;
  v_bytea_columns jsonb;
begin
  if target is null then
    raise exception 'audit_trail.enable needs a table' using errcode = '22023', hint = 'select audit_trail.enable(''public.orders'');';
  end if;
  select c.relkind, n.nspname into v_relkind, v_schema
    from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = target;
  if v_relkind not in ('r', 'p') then
    raise exception '% is not a table', target using errcode = '22023', hint = 'Audit the table that holds the data, not a view or sequence.';
  end if;
  if v_schema = 'audit_trail' then
    raise exception 'the audit trail''s own tables cannot be audited' using errcode = '22023', hint = 'They are append-only and hash-chained already.';
  end if;
  if jsonb_typeof(v_options) <> 'object' then
    raise exception 'audit options must be a JSON object' using errcode = '22023',
      hint = 'e.g. ''{"tenant_column": "tenant_id", "soft_delete": {"column": "deleted_at"}}''';
  end if;
  for v_key in select jsonb_object_keys(v_options) loop
    if not v_key = any (v_allowed) then
      raise exception 'unknown audit option "%"', v_key using errcode = '22023',
        hint = 'Allowed options: ' || array_to_string(v_allowed, ', ') || '.';
    end if;
  end loop;
  select array_agg(a.attname::text order by a.attnum) into v_columns
    from pg_attribute a where a.attrelid = target and a.attnum > 0 and not a.attisdropped;

  v_norm := jsonb_build_object('table', target::text,
    'resource_type', coalesce(v_options ->> 'resource_type', (select relname::text from pg_class where oid = target)));
  if jsonb_typeof(v_norm -> 'resource_type') <> 'string' or v_norm ->> 'resource_type' = '' then
    raise exception 'resource_type must be a non-empty string' using errcode = '22023', hint = 'e.g. "downtime_record".';
  end if;

  if v_options ? 'tenant_column' and v_options ? 'tenant' then
    raise exception 'give tenant_column or tenant, not both' using errcode = '22023',
      hint = 'tenant_column when every row names its tenant; tenant when the whole table belongs to one.';
  end if;
  if v_options ? 'tenant_column' then
    perform audit_trail.check_option_column(target, v_columns, 'tenant_column', v_options -> 'tenant_column');
    v_norm := v_norm || jsonb_build_object('tenant_column', v_options -> 'tenant_column');
  elsif v_options ? 'tenant' then
    if jsonb_typeof(v_options -> 'tenant') <> 'string' or v_options ->> 'tenant' in ('', '*', '_system') then
      raise exception 'tenant must be a non-empty string other than the reserved "*" and "_system"' using errcode = '22023', hint = 'e.g. {"tenant": "plant_hd"}.';
    end if;
    v_norm := v_norm || jsonb_build_object('tenant', v_options -> 'tenant');
  end if;

  if v_options ? 'key_columns' then
    if jsonb_typeof(v_options -> 'key_columns') <> 'array' or jsonb_array_length(v_options -> 'key_columns') = 0 then
      raise exception 'key_columns must be a non-empty array of column names' using errcode = '22023',
        hint = 'e.g. {"key_columns": ["plant", "order_no"]}.';
    end if;
    for v_value in select value from jsonb_array_elements(v_options -> 'key_columns') loop
      perform audit_trail.check_option_column(target, v_columns, 'key_columns', v_value);
    end loop;
    v_norm := v_norm || jsonb_build_object('key_columns', v_options -> 'key_columns');
  else
    select jsonb_agg(a.attname::text order by k.ord) into v_value
      from pg_index i
      cross join unnest(i.indkey) with ordinality k(attnum, ord)
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
     where i.indrelid = target and i.indisprimary;
    if v_value is null then
      raise exception 'table % has no primary key, so its rows cannot be identified in the trail', target
        using errcode = '22023', hint = 'Add a primary key, or name the identifying columns: {"key_columns": ["..."]}.';
    end if;
    v_norm := v_norm || jsonb_build_object('key_columns', v_value);
  end if;

  if v_options ? 'parent' then
    if jsonb_typeof(v_options -> 'parent') <> 'object' or jsonb_typeof(v_options -> 'parent' -> 'resource_type') <> 'string' then
      raise exception 'parent must be {"column": "...", "resource_type": "..."}' using errcode = '22023',
        hint = 'e.g. {"parent": {"column": "order_no", "resource_type": "production_order"}}.';
    end if;
    perform audit_trail.check_option_column(target, v_columns, 'parent.column', v_options -> 'parent' -> 'column');
    v_norm := v_norm || jsonb_build_object('parent', jsonb_build_object('column', v_options -> 'parent' -> 'column',
                                                      'resource_type', v_options -> 'parent' -> 'resource_type'));
  end if;

  if v_options ? 'soft_delete' then
    if jsonb_typeof(v_options -> 'soft_delete') <> 'object'
       or exists (select from jsonb_object_keys(v_options -> 'soft_delete') k where k not in ('column', 'deleted_value'))
       or jsonb_typeof(v_options -> 'soft_delete' -> 'deleted_value') in ('object', 'array', 'null') then
      raise exception 'soft_delete must be {"column": "..."} or {"column": "...", "deleted_value": <scalar>}' using errcode = '22023',
        hint = '{"column": "deleted_at"} (deleted when it becomes non-null) or {"column": "status", "deleted_value": "deleted"}.';
    end if;
    perform audit_trail.check_option_column(target, v_columns, 'soft_delete.column', v_options -> 'soft_delete' -> 'column');
    v_norm := v_norm || jsonb_build_object('soft_delete', v_options -> 'soft_delete');
  end if;

  v_norm := v_norm || jsonb_build_object('hard_delete', coalesce(v_options -> 'hard_delete', '"audit"'));
  if v_norm ->> 'hard_delete' is null or v_norm ->> 'hard_delete' not in ('audit', 'forbid', 'soft') then
    raise exception 'hard_delete must be "audit", "forbid" or "soft", not %', v_norm -> 'hard_delete' using errcode = '22023',
      hint = '"soft" turns DELETE into the soft delete and needs soft_delete.';
  end if;
  if v_norm ->> 'hard_delete' = 'soft' and not v_norm ? 'soft_delete' then
    raise exception 'hard_delete "soft" needs the soft_delete option' using errcode = '22023',
      hint = 'e.g. {"hard_delete": "soft", "soft_delete": {"column": "deleted_at"}}.';
  end if;

  foreach v_key in array array['exclude_columns', 'redact_columns'] loop
    if v_options ? v_key then
      if jsonb_typeof(v_options -> v_key) <> 'array' then
        raise exception '% must be an array of column names', v_key using errcode = '22023', hint = 'e.g. ["photo"].';
      end if;
      for v_value in select value from jsonb_array_elements(v_options -> v_key) loop
        perform audit_trail.check_option_column(target, v_columns, v_key, v_value);
        if v_norm -> 'key_columns' ? (v_value #>> '{}') or v_norm ->> 'tenant_column' = v_value #>> '{}'
           or v_norm -> 'parent' ->> 'column' = v_value #>> '{}' or v_norm -> 'soft_delete' ->> 'column' = v_value #>> '{}' then
          raise exception '% may not name the key, tenant, parent or soft delete column %', v_key, v_value using errcode = '22023',
            hint = 'Those columns identify the row and its state in the trail.';
        end if;
      end loop;
      if jsonb_array_length(v_options -> v_key) > 0 then
        v_norm := v_norm || jsonb_build_object(v_key, v_options -> v_key);
      end if;
    end if;
  end loop;

  if v_options ? 'reason_required' then
    if jsonb_typeof(v_options -> 'reason_required') = 'array' then
      for v_value in select value from jsonb_array_elements(v_options -> 'reason_required') loop
        perform audit_trail.check_option_column(target, v_columns, 'reason_required', v_value);
      end loop;
    elsif jsonb_typeof(v_options -> 'reason_required') <> 'boolean' then
      raise exception 'reason_required must be true, false or an array of column names' using errcode = '22023',
        hint = 'e.g. {"reason_required": ["reason_code", "duration_seconds"]}.';
    end if;
    v_norm := v_norm || jsonb_build_object('reason_required', v_options -> 'reason_required');
  end if;
  if v_options ? 'actor_required' then
    if jsonb_typeof(v_options -> 'actor_required') <> 'boolean' then
      raise exception 'actor_required must be true or false' using errcode = '22023', hint = 'The default, true, is what ALCOA+ expects.';
    end if;
  end if;
  v_norm := v_norm || jsonb_build_object('actor_required', coalesce(v_options -> 'actor_required', 'true'));
  if v_options ? 'max_inline_bytes' then
    if jsonb_typeof(v_options -> 'max_inline_bytes') <> 'number'
       or (v_options ->> 'max_inline_bytes')::numeric not between 64 and 104857600
       or (v_options ->> 'max_inline_bytes')::numeric <> trunc((v_options ->> 'max_inline_bytes')::numeric) then
      raise exception 'max_inline_bytes must be an integer from 64 to 104857600' using errcode = '22023',
        hint = 'Values larger than this are stored as their SHA-256 and length.';
    end if;
  end if;
  v_norm := v_norm || jsonb_build_object('max_inline_bytes', coalesce(v_options -> 'max_inline_bytes', '4096'));

  -- Derived from the catalog: which columns need the JSON-null and bytea treatment.
  select jsonb_agg(a.attname::text order by a.attnum) filter (where t.typname in ('json', 'jsonb')),
         jsonb_agg(a.attname::text order by a.attnum) filter (where t.typname = 'bytea')
    into v_value, v_bytea_columns
    from pg_attribute a
    join pg_type t on t.oid = case when (select typtype from pg_type where oid = a.atttypid) = 'd'
                                   then (select typbasetype from pg_type where oid = a.atttypid) else a.atttypid end
   where a.attrelid = target and a.attnum > 0 and not a.attisdropped;
  if v_value is not null then
    v_norm := v_norm || jsonb_build_object('json_columns', v_value);
  end if;
  if v_bytea_columns is not null then
    v_norm := v_norm || jsonb_build_object('bytea_columns', v_bytea_columns);
  end if;

  return v_norm;
end
$$;
comment on function audit_trail.normalize_options(regclass, jsonb) is
  'Validates capture options against a table and returns them normalised (key columns, json/bytea columns resolved).';

-- PostgreSQL clones row triggers to the partitions of a partitioned table,
-- not statement triggers: each partition (at every level) gets the TRUNCATE
-- guard of its own. Called by install_capture_triggers() and, with
-- p_refuse_rows, by the DDL guard after CREATE TABLE ... PARTITION OF and
-- ALTER TABLE ... ATTACH PARTITION: a table attached with rows in it would
-- bring rows into the audited table that no event created.
create function audit_trail.guard_partitions(p_root regclass, p_refuse_rows boolean)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_part regclass;
  v_has_rows boolean;
begin
  for v_part in select p.relid from pg_partition_tree(p_root) p
                 where p.relid <> p_root
                   and not exists (select from pg_trigger t where t.tgrelid = p.relid
                                      and t.tgfoid = 'audit_trail.refuse_truncate_of_audited_table()'::regprocedure) loop
    if p_refuse_rows then
      execute format('select exists (select from only %s)', v_part) into v_has_rows;
      if v_has_rows then
        raise exception 'attaching % to audited table % is refused: its rows would be in the audited table without a create event', v_part, p_root
          using errcode = 'AT009',
                hint = format('Attach an empty table and copy the rows in with INSERT ... SELECT (each is captured), or turn auditing off first with select audit_trail.disable(%L, %L).', p_root::text, '<reason>');
      end if;
    end if;
    execute format('create trigger audit_trail_refuse_truncate before truncate on %s '
                   'for each statement execute function audit_trail.refuse_truncate_of_audited_table()', v_part);
  end loop;
end
$$;
comment on function audit_trail.guard_partitions(regclass, boolean) is
  'Internal: gives every partition of an audited table the TRUNCATE guard; refuses a newly attached partition that holds rows.';

-- (Re)creates the capture triggers of a table with its normalised options.
-- The new triggers exist before the old ones are dropped, so that at no point
-- (and for no event trigger looking) is an enabled table without capture.
create function audit_trail.install_capture_triggers(target regclass, p_norm jsonb)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_name text;
  v_statement_inserts boolean;
begin
  -- INSERT and COPY through one statement trigger where no row needs a treatment
  -- of its own; a partitioned table (or a partition) keeps row triggers, which
  -- PostgreSQL runs for a row written through the parent and into a partition alike.
  select c.relkind = 'r' and not c.relispartition and not p_norm ?| array['json_columns', 'redact_columns']
    into v_statement_inserts from pg_class c where c.oid = target;
  if v_statement_inserts then
    execute format('create trigger audit_trail_capture_next after update or delete on %s '
                   'for each row execute function audit_trail.capture_change(%L)', target, p_norm::text);
    execute format('create trigger audit_trail_capture_inserts_next after insert on %s '
                   'referencing new table as audit_trail_inserted '
                   'for each statement execute function audit_trail.capture_inserted_rows(%L)', target, p_norm::text);
  else
    execute format('create trigger audit_trail_capture_next after insert or update or delete on %s '
                   'for each row execute function audit_trail.capture_change(%L)', target, p_norm::text);
  end if;
  execute format('create trigger audit_trail_refuse_truncate_next before truncate on %s '
                 'for each statement execute function audit_trail.refuse_truncate_of_audited_table()', target);
  if p_norm ->> 'hard_delete' <> 'audit' then
    execute format('create trigger audit_trail_hard_delete_policy_next before delete on %s '
                   'for each row execute function audit_trail.apply_hard_delete_policy(%L)', target, p_norm::text);
  end if;
  perform audit_trail.drop_capture_triggers(target);
  foreach v_name in array array['audit_trail_capture', 'audit_trail_capture_inserts', 'audit_trail_refuse_truncate',
                                'audit_trail_hard_delete_policy'] loop
    if exists (select from pg_trigger where tgrelid = target and tgname = v_name || '_next') then
      execute format('alter trigger %I on %s rename to %I', v_name || '_next', target, v_name);
    end if;
  end loop;
  if (select c.relkind from pg_class c where c.oid = target) = 'p' then
    perform audit_trail.guard_partitions(target, false);
  end if;
end
$$;

create function audit_trail.enable(target regclass, options jsonb default '{}')
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_norm jsonb;
begin
  if target is null then
    raise exception 'audit_trail.enable needs a table' using errcode = '22023', hint = 'select audit_trail.enable(''public.orders'');';
  end if;
  if not pg_has_role(current_user, 'audit_trail_admin', 'member') then
    raise exception 'only members of audit_trail_admin may turn auditing on or off' using errcode = '42501',
      hint = 'GRANT audit_trail_admin TO ' || quote_ident(current_user::text) || '; (as a DBA)';
  end if;
  v_norm := audit_trail.normalize_options(target, coalesce(options, '{}'));
  perform audit_trail.install_capture_triggers(target, v_norm);
  perform audit_trail.register_audited_table(target, coalesce(options, '{}'), v_norm, true, null);
  return v_norm;
end
$$;
comment on function audit_trail.enable(regclass, jsonb) is
  'Turns capture on for a table (again: updates its options). Options: docs/install.md. Returns the normalised options.';

create function audit_trail.check_option_column(p_table regclass, p_columns text[], p_option text, p_value jsonb)
returns void
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_value is null or jsonb_typeof(p_value) <> 'string' then
    raise exception '% must name a column of % (a string), not %', p_option, p_table, coalesce(p_value::text, 'nothing')
      using errcode = '22023', hint = 'Columns of ' || p_table::text || ': ' || array_to_string(p_columns, ', ') || '.';
  end if;
  if not (p_value #>> '{}') = any (p_columns) then
    raise exception '% names column "%", which % does not have', p_option, p_value #>> '{}', p_table
      using errcode = '42703', hint = 'Columns of ' || p_table::text || ': ' || array_to_string(p_columns, ', ') || '.';
  end if;
end
$$;

create function audit_trail.drop_capture_triggers(p_table regclass)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_name name;
begin
  for v_name in select tgname from pg_trigger
                 where tgrelid = p_table and not tgisinternal
                   and tgname in ('audit_trail_capture', 'audit_trail_capture_inserts', 'audit_trail_hard_delete_policy',
                                  'audit_trail_refuse_truncate') loop
    execute format('drop trigger %I on %s', v_name, p_table);
  end loop;
end
$$;

create function audit_trail.disable(target regclass, reason text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_requested jsonb;
  v_options jsonb;
  v_part regclass;
begin
  if not pg_has_role(current_user, 'audit_trail_admin', 'member') then
    raise exception 'only members of audit_trail_admin may turn auditing on or off' using errcode = '42501',
      hint = 'GRANT audit_trail_admin TO ' || quote_ident(current_user::text) || '; (as a DBA)';
  end if;
  select t.requested_options, t.options into v_requested, v_options
    from audit_trail.audited_tables t where t.table_oid = target and t.enabled;
  if not found then
    raise exception 'auditing is not enabled for %', target using errcode = '22023',
      hint = 'See select table_name from audit_trail.audited_tables where enabled;';
  end if;
  -- The event first: a weak or missing reason refuses the whole change.
  perform audit_trail.register_audited_table(target, v_requested, v_options, false, reason);
  perform audit_trail.drop_capture_triggers(target);
  -- and the TRUNCATE guards of its partitions (guard_partitions)
  for v_part in select t.tgrelid::regclass from pg_partition_tree(target) p
                  join pg_trigger t on t.tgrelid = p.relid
                 where p.relid <> target and t.tgname = 'audit_trail_refuse_truncate' loop
    execute format('drop trigger audit_trail_refuse_truncate on %s', v_part);
  end loop;
end
$$;
comment on function audit_trail.disable(regclass, text) is
  'Turns capture off for a table; the reason is mandatory and recorded in the _system chain.';

-- DDL on audited tables (an event trigger, when a superuser installed pg-audit-trail):
-- * after ALTER TABLE the derived options (key, json and bytea columns) are
--   resolved again from the options the table was enabled with, and the
--   triggers carry the new shape; a change that breaks the configuration (a
--   configured column dropped or renamed) is refused;
-- * dropping or disabling the capture or TRUNCATE guard triggers of a table
--   that is still enabled is refused: turning capture off goes through
--   audit_trail.disable(table, reason), which records why.
-- Runs as the user issuing the DDL, who owns the table.
create function audit_trail.guard_audited_table_ddl()
returns event_trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_table oid;
  v_root oid;
  v_requested jsonb;
  v_norm jsonb;
  v_detached regclass;
begin
  -- DETACH PARTITION drops the capture trigger cloned onto the partition, but
  -- not the TRUNCATE guard guard_partitions() gave it: a table that keeps
  -- that guard without being an audited table or one of its partitions was
  -- just detached, and its rows could change without events from now on.
  if tg_tag = 'ALTER TABLE' then
    select t.tgrelid::regclass into v_detached from pg_trigger t
     where t.tgfoid = 'audit_trail.refuse_truncate_of_audited_table()'::regprocedure
       and not exists (select from audit_trail.enabled_table_oids() a
                        where a.table_oid in (t.tgrelid, pg_partition_root(t.tgrelid)))
     limit 1;
    if v_detached is not null then
      raise exception 'detaching % from an audited table is refused: its rows could then change or go without audit events', v_detached
        using errcode = 'AT009',
              hint = 'Turn auditing of the partitioned table off first with select audit_trail.disable(...); it records who and why.';
    end if;
  end if;
  for v_table in select distinct c.objid from pg_event_trigger_ddl_commands() c
                  where c.object_type in ('table', 'table column')
                 union
                 select t.tgrelid from pg_event_trigger_ddl_commands() c
                   join pg_trigger t on t.oid = c.objid
                  where c.object_type = 'trigger'
                 union
                 -- DROP TRIGGER reports nothing here; look at every enabled table then.
                 select a.table_oid from audit_trail.enabled_table_oids() a
                   join pg_class r on r.oid = a.table_oid  -- (not a table dropped while no event trigger looked)
                  where tg_tag = 'DROP TRIGGER'
                 union
                 -- the partitions of those, whose cloned triggers capture their rows
                 select p.relid from audit_trail.enabled_table_oids() a
                   join pg_class r on r.oid = a.table_oid and r.relkind = 'p'
                  cross join lateral pg_partition_tree(a.table_oid) p
                  where tg_tag = 'DROP TRIGGER' and p.relid <> a.table_oid loop
    continue when not exists (select from pg_class r where r.oid = v_table);
    -- A table that INHERITS from an audited table (plain inheritance, not a
    -- partition) has no capture, and its rows show in queries of the audited table.
    if exists (select from pg_inherits i join pg_class c on c.oid = i.inhrelid
                where i.inhrelid = v_table and not c.relispartition
                  and audit_trail.requested_options_of(i.inhparent) is not null) then
      raise exception '% may not inherit from an audited table: its rows would show in that table without audit events', v_table::regclass
        using errcode = 'AT009',
              hint = 'Use a table of its own, or a partition of the audited table (CREATE TABLE ... PARTITION OF), whose rows are captured.';
    end if;
    -- A partition of an audited table is guarded as the table is (unless it
    -- was enabled itself: then it is its own root here).
    v_requested := audit_trail.requested_options_of(v_table);
    v_root := v_table;
    if v_requested is null and pg_partition_root(v_table) is not null then
      v_root := pg_partition_root(v_table);
      v_requested := audit_trail.requested_options_of(v_root);
    end if;
    continue when v_requested is null;
    -- A new partition (CREATE TABLE ... PARTITION OF, ATTACH PARTITION): its TRUNCATE guard.
    if tg_tag in ('CREATE TABLE', 'ALTER TABLE') and (select c.relkind from pg_class c where c.oid = v_root) = 'p' then
      perform audit_trail.guard_partitions(v_root::regclass, true);
    end if;
    if tg_tag = 'ALTER TABLE' and v_root = v_table then
      begin
        v_norm := audit_trail.normalize_options(v_table::regclass, v_requested);
      exception when undefined_column or invalid_parameter_value then
        raise exception 'this ALTER TABLE breaks the audit configuration of %: %', v_table::regclass, sqlerrm
          using errcode = sqlstate,
                hint = 'Re-enable auditing with options that name the new columns first: select audit_trail.enable(...).';
      end;
      if not exists (select from pg_trigger t where t.tgrelid = v_table and t.tgname = 'audit_trail_capture'
                        and t.tgargs = convert_to(v_norm::text, 'UTF8') || '\x00'::bytea) then
        perform audit_trail.install_capture_triggers(v_table::regclass, v_norm);
        perform audit_trail.store_derived_options(v_table);
      end if;
    end if;
    if not audit_trail.capture_triggers_intact(v_table) then
      raise exception 'the audit triggers of % may not be dropped or disabled while auditing is enabled', v_table::regclass
        using errcode = 'AT009',
              hint = format('Turn auditing off with select audit_trail.disable(%L, %L); it records who and why.',
                            v_table::regclass::text, '<reason>');
    end if;
  end loop;
end
$$;
-- DROP TABLE (or DROP SCHEMA ... CASCADE, DROP OWNED) of a table whose
-- capture is enabled deletes its rows without an event: refused. Turning
-- capture off first records who and why.
create function audit_trail.refuse_drop_of_audited_table()
returns event_trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_name text;
begin
  select d.object_identity into v_name
    from pg_event_trigger_dropped_objects() d
    join audit_trail.enabled_table_oids() a on a.table_oid = d.objid
   where d.object_type = 'table' limit 1;
  -- A partition of an audited table takes the capture trigger cloned onto it
  -- along: dropping the partition, or detaching it (which drops the clone),
  -- would let its rows go or change without events.
  if v_name is null then
    select substring(d.object_identity from ' on (.*)$') into v_name
      from pg_event_trigger_dropped_objects() d
     where d.object_type = 'trigger' and d.object_identity ~ '^audit_trail_capture(_inserts)? on ' limit 1;
  end if;
  if v_name is not null then
    raise exception 'dropping % is refused: its auditing is enabled, and dropping it would delete its rows without audit events', v_name
      using errcode = 'AT009',
            hint = format('Turn auditing off first with select audit_trail.disable(%L, %L); it records who and why.', v_name, '<reason>');
  end if;
end
$$;
-- ALTER TABLE ... DROP COLUMN on an audited table removes the column's
-- values without a row event (their history stays in the trail): it is
-- recorded as an administrative event of the _system chain, with who and when
-- (and the session's audit_trail.reason, when set). Runs as the trail's owner:
-- an event trigger function cannot be called directly, so no one else can
-- write such an event.
create function audit_trail.record_dropped_columns()
returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_table oid;
  v_columns jsonb;
begin
  for v_table, v_columns in
      select d.objid, jsonb_agg(d.address_names[3] order by d.objsubid)
        from pg_event_trigger_dropped_objects() d
       where d.object_type = 'table column'
         and exists (select from audit_trail.audited_tables t where t.table_oid = d.objid and t.enabled)
       group by d.objid loop
    perform audit_trail.record_administrative_event('_system', 'execute', 'audited_table', v_table::regclass::text,
      jsonb_build_array(jsonb_build_object('field', 'dropped_columns', 'before', v_columns, 'after', null)),
      nullif(current_setting('audit_trail.reason', true), ''), false);
  end loop;
end
$$;
comment on function audit_trail.record_dropped_columns() is
  'Event trigger (sql_drop, ALTER TABLE): records a DROP COLUMN on an audited table in the _system chain.';

-- ALTER TABLE ... ALTER COLUMN ... TYPE that rewrites the table (a USING
-- expression, or a conversion that is not binary) changes stored values with
-- no event: refused on an audited table and its partitions. (Rewrites for
-- other reasons, such as a volatile default of a new column, are left to the
-- ALTER TABLE guard.)
create function audit_trail.refuse_rewrite_of_audited_table()
returns event_trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_table oid := pg_event_trigger_table_rewrite_oid();
  v_root oid := coalesce(pg_partition_root(v_table), v_table);
begin
  if pg_event_trigger_table_rewrite_reason() & 4 <> 0
     and exists (select from audit_trail.enabled_table_oids() a where a.table_oid in (v_table, v_root)) then
    raise exception 'changing the type of a column of audited table % is refused: it rewrites stored values without audit events', v_root::regclass
      using errcode = 'AT009',
            hint = format('Turn auditing off first with select audit_trail.disable(%L, %L), alter the column, then enable auditing again: the trail records both.', v_root::regclass::text, '<reason>');
  end if;
end
$$;
comment on function audit_trail.refuse_rewrite_of_audited_table() is
  'Event trigger (table_rewrite): refuses a column type change that rewrites an audited table.';

comment on function audit_trail.refuse_drop_of_audited_table() is
  'Event trigger (sql_drop): refuses dropping a table whose auditing is enabled.';

comment on function audit_trail.guard_audited_table_ddl() is
  'Event trigger: keeps capture triggers in step with ALTER TABLE, refuses breaking changes and silent removal of capture.';

-- Are the capture and TRUNCATE guard triggers of a table present and enabled?
-- pg_trigger.tgtype bits: 1 row, 2 before, 4 insert, 8 delete, 16 update,
-- 32 truncate, 64 instead of. A capture trigger counts only as enable()
-- creates it: enabled, without a WHEN condition or UPDATE OF columns, AFTER,
-- for every row of UPDATE and DELETE (and INSERT, or the statement trigger
-- with its transition table). (Its argument, the options, is checked at every
-- capture against the registered ones: see capture_change().)
create function audit_trail.capture_triggers_intact(p_table oid)
returns boolean
language sql stable
begin atomic
  select count(*) filter (where t.tgfoid = 'audit_trail.capture_change()'::regprocedure and t.tgenabled in ('O', 'A')
                            and t.tgqual is null and t.tgattr::text = '' and t.tgtype & (1 | 8 | 16 | 2 | 64) = (1 | 8 | 16)) >= 1
     -- inserts: by the row trigger (tgtype bit 4: INSERT) or by the statement trigger
     and count(*) filter (where t.tgenabled in ('O', 'A') and t.tgqual is null
                            and ((t.tgfoid = 'audit_trail.capture_change()'::regprocedure and t.tgattr::text = ''
                                  and t.tgtype & (1 | 4 | 2 | 64) = (1 | 4))
                                 or (t.tgfoid = 'audit_trail.capture_inserted_rows()'::regprocedure
                                     and t.tgtype & (1 | 4 | 2 | 64) = 4 and t.tgnewtable = 'audit_trail_inserted'))) >= 1
     -- (a partition's own: PostgreSQL does not clone statement triggers; see guard_partitions())
     and count(*) filter (where t.tgfoid = 'audit_trail.refuse_truncate_of_audited_table()'::regprocedure and t.tgenabled in ('O', 'A')
                            and t.tgtype & (2 | 32) = (2 | 32)) >= 1
    from pg_catalog.pg_trigger t where t.tgrelid = p_table;
end;
comment on function audit_trail.capture_triggers_intact(oid) is
  'Are the capture and TRUNCATE guard triggers of a table present, enabled and as enable() creates them (no WHEN, every row)?';

-- After an ALTER TABLE, the DDL guard stores the options the table's triggers
-- now carry, which the capture triggers compare with their own. Only what
-- normalize_options() derives from the options the table was enabled with is
-- stored, whoever calls.
create function audit_trail.store_derived_options(p_table oid)
returns jsonb
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_norm jsonb;
begin
  select audit_trail.normalize_options(p_table::regclass, t.requested_options) into v_norm
    from audit_trail.audited_tables t where t.table_oid = p_table and t.enabled;
  if v_norm is not null then
    update audit_trail.audited_tables set options = v_norm where table_oid = p_table and options is distinct from v_norm;
  end if;
  return v_norm;
end
$$;
comment on function audit_trail.store_derived_options(oid) is
  'Internal (DDL guard): stores the options derived again from an enabled table''s requested options after ALTER TABLE.';

-- The tables with capture enabled (for the DDL guard, which runs as a table owner).
create function audit_trail.enabled_table_oids()
returns table (table_oid oid)
language sql stable security definer
set search_path = pg_catalog, pg_temp
begin atomic
  select t.table_oid from audit_trail.audited_tables t where t.enabled;
end;

-- The options an enabled table was enabled with (none when not audited).
create function audit_trail.requested_options_of(p_table oid)
returns jsonb
language sql stable security definer
set search_path = pg_catalog, pg_temp
begin atomic
  select t.requested_options from audit_trail.audited_tables t where t.table_oid = p_table and t.enabled;
end;
comment on function audit_trail.requested_options_of(oid) is 'Internal: the requested capture options of an enabled table.';

-- Event triggers need a superuser. An install by another role skips this one;
-- then re-run audit_trail.enable() after ALTER TABLE of an audited table.
do $$
begin
  if (select rolsuper from pg_catalog.pg_roles where rolname = session_user) then
    reset role;
    create event trigger audit_trail_guard_audited_table_ddl on ddl_command_end
      when tag in ('ALTER TABLE', 'CREATE TABLE', 'CREATE TRIGGER', 'DROP TRIGGER', 'ALTER TRIGGER')
      execute function audit_trail.guard_audited_table_ddl();
    create event trigger audit_trail_record_dropped_columns on sql_drop
      when tag in ('ALTER TABLE')
      execute function audit_trail.record_dropped_columns();
    create event trigger audit_trail_guard_audited_table_rewrite on table_rewrite
      execute function audit_trail.refuse_rewrite_of_audited_table();
    create event trigger audit_trail_guard_audited_table_drop on sql_drop
      when tag in ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED', 'ALTER TABLE')
      execute function audit_trail.refuse_drop_of_audited_table();
    set local role audit_trail_owner;
  else
    raise notice 'pg-audit-trail: no event trigger for ALTER TABLE (needs a superuser); re-run audit_trail.enable() after altering an audited table, and watch its triggers';
  end if;
end
$$;
