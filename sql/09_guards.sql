-- Append-only, layer 2 (the database). No role holds UPDATE, DELETE or
-- TRUNCATE on the trail (99_grants.sql), and these triggers refuse them even
-- for the owner. Only a superuser can get past them (by disabling triggers or
-- with session_replication_role = replica); audit_trail.verify() and the
-- anchors find what such a superuser changed (docs/architecture.md).

create function audit_trail.refuse_trail_change()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception '% on %.% is refused: the audit trail is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    using errcode = 'AT010',
          hint = 'Audit events are never changed or removed. Record a correcting event instead (audit_trail.record).';
end
$$;
comment on function audit_trail.refuse_trail_change() is 'Guard trigger: refuses UPDATE, DELETE and TRUNCATE on trail tables.';

create trigger events_refuse_update_delete before update or delete on audit_trail.events
  for each row execute function audit_trail.refuse_trail_change();
create trigger events_refuse_truncate before truncate on audit_trail.events
  for each statement execute function audit_trail.refuse_trail_change();

-- A chain head only moves forward, and only onto an event that exists with
-- that sequence_no and record_hash (the commit step writes the events first).
create function audit_trail.refuse_chain_head_rewind()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
-- The head's event is looked up by its index, never by reading the partition:
-- the plan is made once per session, maybe when the trail was nearly empty
-- (see flush_pending_events()), and without JIT.
set enable_seqscan = off
set jit = off
as $$
begin
  if TG_OP <> 'UPDATE' or new.tenant_id <> old.tenant_id or new.sequence_no <= old.sequence_no
     or not exists (select from audit_trail.events e
                     where e.tenant_id = new.tenant_id and e.sequence_no = new.sequence_no
                       and e.record_hash = new.record_hash and e.ingested_at = new.head_ingested_at) then
    raise exception '% of the chain head of tenant % is refused: chain heads only move forward, onto written events',
        TG_OP, old.tenant_id
      using errcode = 'AT010', hint = 'Chain heads are maintained by the commit step of pg-audit-trail only.';
  end if;
  return new;
end
$$;
comment on function audit_trail.refuse_chain_head_rewind() is
  'Guard trigger: chain heads move forward only, onto an existing event, and are never deleted.';

create trigger chain_heads_only_forward before update or delete on audit_trail.chain_heads
  for each row execute function audit_trail.refuse_chain_head_rewind();
create trigger chain_heads_refuse_truncate before truncate on audit_trail.chain_heads
  for each statement execute function audit_trail.refuse_trail_change();
