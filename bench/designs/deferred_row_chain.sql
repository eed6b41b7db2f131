-- A commit-time chain with no buffer: the capture trigger is a deferred
-- constraint row trigger, so it runs at COMMIT, once per changed row, with
-- the row's OLD and NEW. One statement moves the tenant's head (which locks
-- it until the commit ends) and writes the event from the returned position.
-- Nothing else: no delta, event id, context, checks or guards, and the
-- session's settings are read at commit, not at the change (see
-- deferred_row_chain_with_context_marks.sql for what keeping them costs).
create function bench_design.capture() returns trigger language plpgsql as $$
declare
  v_tenant text := current_setting('audit_trail.tenant_id');
  v_old jsonb;
  v_new jsonb;
  v_body bytea;
begin
  if TG_OP <> 'INSERT' then v_old := to_jsonb(OLD); end if;
  if TG_OP <> 'DELETE' then v_new := to_jsonb(NEW); end if;
  v_body := convert_to(coalesce(v_old::text, '') || coalesce(v_new::text, ''), 'UTF8');
  with h as (
    update bench_design.heads set sequence_no = sequence_no + 1, prev_hash = record_hash,
           record_hash = sha256(v_body || int8send(sequence_no + 1) || record_hash)
     where tenant_id = v_tenant
    returning sequence_no, prev_hash, record_hash)
  insert into bench_design.events (tenant_id, sequence_no, op, old_row, new_row, prev_hash, record_hash)
  select v_tenant, h.sequence_no, TG_OP, v_old, v_new, h.prev_hash, h.record_hash from h;
  return null;
end
$$;

create function bench_design.enable(target regclass) returns void language plpgsql as $$
begin
  execute format('create constraint trigger bench_design_capture after insert or update or delete on %s '
                 'deferrable initially deferred for each row execute function bench_design.capture()', target);
end
$$;
