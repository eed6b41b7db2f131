-- deferred_row_chain.sql, with what it needs to record the settings of the
-- moment of each change and to move each head once per transaction:
-- - a BEFORE ROW trigger whose WHEN clause (evaluated in C, no PL/pgSQL call)
--   compares the session's audit settings with the last ones noted in this
--   transaction; only when they differ does it run note(), which writes a mark
--   (the settings) into a transaction-private table whose deferred trigger
--   fires at commit in its place among the rows' deferred triggers;
-- - at commit, the first mark locks the head and keeps it in a transaction-local
--   setting, and queues a "finish" mark that fires after every row and moves
--   the head once; each row's deferred trigger chains and writes its event
--   with the settings of the mark before it.
-- One tenant per transaction (as in the TPC-B script); no delta, event id or checks.
create function bench_design.note() returns trigger language plpgsql as $$
begin
  perform set_config('bench_design.noted', concat_ws('|', current_setting('audit_trail.tenant_id', true),
                                                     current_setting('audit_trail.actor_id', true)), true);
  if to_regclass('pg_temp.bench_design_marks') is null then
    create temporary table bench_design_marks (kind text not null, tenant_id text, actor_id text);
    create constraint trigger bench_design_mark after insert on pg_temp.bench_design_marks
      deferrable initially deferred for each row execute function bench_design.mark_fired();
  end if;
  insert into pg_temp.bench_design_marks
  values ('settings', current_setting('audit_trail.tenant_id', true), current_setting('audit_trail.actor_id', true));
  if TG_OP = 'DELETE' then return OLD; end if;
  return NEW;
end
$$;

create function bench_design.mark_fired() returns trigger language plpgsql as $$
declare
  v_seq bigint;
  v_hash bytea;
begin
  if NEW.kind = 'finish' then
    update bench_design.heads h
       set sequence_no = split_part(current_setting('bench_design.head'), ':', 2)::bigint,
           record_hash = decode(split_part(current_setting('bench_design.head'), ':', 3), 'hex')
     where h.tenant_id = split_part(current_setting('bench_design.head'), ':', 1);
    delete from pg_temp.bench_design_marks;
    return null;
  end if;
  if coalesce(current_setting('bench_design.head', true), '') = '' then
    select sequence_no, record_hash into v_seq, v_hash
      from bench_design.heads where tenant_id = NEW.tenant_id for no key update;
    perform set_config('bench_design.head', NEW.tenant_id || ':' || v_seq || ':' || encode(v_hash, 'hex'), true);
    insert into pg_temp.bench_design_marks values ('finish', null, null);
  end if;
  perform set_config('bench_design.actor_id', NEW.actor_id, true);
  return null;
end
$$;

create function bench_design.capture() returns trigger language plpgsql as $$
declare
  v_head text := current_setting('bench_design.head');
  v_tenant text := split_part(v_head, ':', 1);
  v_seq bigint := split_part(v_head, ':', 2)::bigint + 1;
  v_prev bytea := decode(split_part(v_head, ':', 3), 'hex');
  v_old jsonb;
  v_new jsonb;
  v_hash bytea;
begin
  if TG_OP <> 'INSERT' then v_old := to_jsonb(OLD); end if;
  if TG_OP <> 'DELETE' then v_new := to_jsonb(NEW); end if;
  v_hash := sha256(convert_to(coalesce(v_old::text, '') || coalesce(v_new::text, ''), 'UTF8') || int8send(v_seq) || v_prev);
  insert into bench_design.events (tenant_id, sequence_no, op, actor_id, old_row, new_row, prev_hash, record_hash)
  values (v_tenant, v_seq, TG_OP, current_setting('bench_design.actor_id'), v_old, v_new, v_prev, v_hash);
  perform set_config('bench_design.head', v_tenant || ':' || v_seq || ':' || encode(v_hash, 'hex'), true);
  return null;
end
$$;

create function bench_design.enable(target regclass) returns void language plpgsql as $$
begin
  execute format('create trigger bench_design_note before insert or update or delete on %s for each row '
                 'when (current_setting(''bench_design.noted'', true) is distinct from concat_ws(''|'', '
                 'current_setting(''audit_trail.tenant_id'', true), current_setting(''audit_trail.actor_id'', true))) '
                 'execute function bench_design.note()', target);
  execute format('create constraint trigger bench_design_capture after insert or update or delete on %s '
                 'deferrable initially deferred for each row execute function bench_design.capture()', target);
end
$$;
