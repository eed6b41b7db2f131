-- Who, why and when, as told by the application through the audit_trail.* settings.
--
-- An application sets them per transaction, with SET LOCAL or set_config(..., true),
-- or all at once with audit_trail.set_context(jsonb). The trail also records what
-- the database itself knows (db_identity), whatever the application claims.

create function audit_trail.set_context(p_context jsonb)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_key text;
  v_value jsonb;
  v_text text;
  c_allowed constant text[] := array['tenant_id', 'actor_id', 'actor_type', 'actor_name', 'auth_method',
    'source_ip', 'user_agent_hash', 'reason', 'request_id', 'session_id', 'correlation_id',
    'capture_method', 'occurred_at', 'context'];
begin
  if p_context is null or jsonb_typeof(p_context) <> 'object' then
    raise exception 'audit_trail.set_context expects a JSON object'
      using errcode = '22023',
            hint = 'Pass an object such as {"actor_id": "usr_42", "reason": "Re-classified after PLC alarm review"}.';
  end if;
  for v_key, v_value in select key, value from jsonb_each(p_context) loop
    if not v_key = any (c_allowed) then
      raise exception 'unknown audit context key "%"', v_key
        using errcode = '22023', hint = 'Allowed keys: ' || array_to_string(c_allowed, ', ') || '.';
    end if;
    if v_key = 'context' then
      if jsonb_typeof(v_value) <> 'object' then
        raise exception 'audit context key "context" must be a JSON object, not %', jsonb_typeof(v_value)
          using errcode = '22023', hint = 'Pass plant, line and other ids as {"context": {"plant_id": "plt_01"}}.';
      end if;
      v_text := v_value::text;
    elsif jsonb_typeof(v_value) = 'null' then
      v_text := '';
    elsif jsonb_typeof(v_value) <> 'string' then
      raise exception 'audit context key "%" must be a string, not %', v_key, jsonb_typeof(v_value)
        using errcode = '22023', hint = 'Quote the value: {"' || v_key || '": "..."}.';
    else
      v_text := v_value #>> '{}';
    end if;
    perform audit_trail.check_context_value(v_key, v_text);
    perform set_config('audit_trail.' || v_key, v_text, true);
  end loop;
end
$$;
comment on function audit_trail.set_context(jsonb) is
  'Validates and sets the audit_trail.* settings for the current transaction (like SET LOCAL).';

-- Validation shared by set_context() and the capture path (which also reads raw SET LOCAL values).
create function audit_trail.check_context_value(p_key text, p_value text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_value is null or p_value = '' then
    return;
  end if;
  if octet_length(p_value) > 65536 then
    raise exception 'audit_trail.% is % bytes long; the limit is 65536', p_key, octet_length(p_value)
      using errcode = '54000', hint = 'Keep identifiers and reasons short; put large evidence in an attached document and record its digest.';
  end if;
  case p_key
    when 'actor_type' then
      if p_value not in ('user', 'service', 'system') then
        raise exception 'audit_trail.actor_type must be user, service or system, not "%"', p_value
          using errcode = '22023', hint = 'SET LOCAL audit_trail.actor_type = ''user'';';
      end if;
    when 'source_ip' then
      begin
        perform p_value::inet;
      exception when invalid_text_representation then
        raise exception 'audit_trail.source_ip "%" is not an IP address', p_value
          using errcode = '22023', hint = 'Give the client''s address, e.g. SET LOCAL audit_trail.source_ip = ''10.45.12.88'';';
      end;
    when 'occurred_at' then
      if p_value !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$' then
        raise exception 'audit_trail.occurred_at "%" is not an ISO 8601 timestamp with a time zone', p_value
          using errcode = '22007', hint = 'Use UTC with an offset, e.g. 2026-04-19T08:42:17.382Z.';
      end if;
    when 'context' then
      begin
        if jsonb_typeof(p_value::jsonb) <> 'object' then
          raise exception 'audit_trail.context must be a JSON object' using errcode = '22023',
            hint = 'SET LOCAL audit_trail.context = ''{"plant_id": "plt_01", "line_id": "line_02"}'';';
        end if;
      exception when invalid_text_representation then
        raise exception 'audit_trail.context is not valid JSON' using errcode = '22023',
          hint = 'SET LOCAL audit_trail.context = ''{"plant_id": "plt_01", "line_id": "line_02"}'';';
      end;
    else
      null;
  end case;
end
$$;
comment on function audit_trail.check_context_value(text, text) is 'Validates one audit_trail.* setting; raises 22023/22007/54000 with a hint.';

-- A reason without the blanks around it: spaces, tabs, line breaks and the
-- Unicode spaces (no-break, en/em and thin spaces, ideographic space, zero
-- width space and BOM), so that a placeholder padded with them is still
-- recognised as one. (An SQL function of one expression: inlined where used.)
create function audit_trail.trim_blanks(p_text text) returns text
language sql immutable parallel safe
return pg_catalog.btrim(p_text, E' \t\n\r\f\u000b\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff');
comment on function audit_trail.trim_blanks(text) is 'A text without the spaces, tabs, line breaks and Unicode blanks around it (reason checks).';

-- What the database itself knows about the session, as the text every event of
-- the transaction stores in db_identity and hashes byte for byte: one compact
-- JSON object with its keys in this order. json, not jsonb: about 80 bytes an
-- event where a jsonb object keyed by PostgreSQL's own names took about 145, and
-- verify() hashes the stored text without converting it (docs/architecture.md).
-- The login and the application name are escaped by to_json(); the client is
-- null over a Unix socket (any value PostgreSQL cannot give is null, never a
-- malformed text). (An SQL function of one expression: inlined where used.)
create function audit_trail.db_identity_text(p_login text, p_app text, p_client inet, p_pid integer, p_xid xid8)
returns json
language sql stable parallel safe
return pg_catalog.format('{"login":%s,"app":%s,"client":%s,"pid":%s,"xid":%s}',
         coalesce(pg_catalog.to_json(p_login)::text, 'null'), coalesce(pg_catalog.to_json(p_app)::text, 'null'),
         coalesce(pg_catalog.to_json(pg_catalog.host(p_client))::text, 'null'),
         coalesce(p_pid::text, 'null'), coalesce(p_xid::text, 'null'))::json;
comment on function audit_trail.db_identity_text(text, text, inet, integer, xid8) is
  'db_identity''s text: {"login","app","client","pid","xid"}, compact, in this order (docs/integrate.md).';
