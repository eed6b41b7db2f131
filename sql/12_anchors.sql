-- Anchors: signed checkpoints of a tenant's chain head, published outside the
-- database (a write-once directory, an S3 bucket with Object Lock) by
-- `audit-trail anchor`. The checkpoint and its signature are computed by the
-- CLI with the customer's Ed25519 key (the private key never reaches the
-- database); this table lists what was published, so that the database can
-- say which checkpoints exist and refuse one that goes backwards. The
-- published copies, not this table, are the evidence (docs/hash-chain.md).

create table audit_trail.anchors (
  tenant_id text not null,
  sequence_no bigint not null check (sequence_no >= 1),
  record_hash bytea not null check (pg_catalog.octet_length(record_hash) = 32),
  anchored_at timestamptz not null,
  key_id text not null check (key_id ~ '^[0-9a-f]{32}$'),
  checkpoint_digest bytea not null check (pg_catalog.octet_length(checkpoint_digest) = 32),
  previous_checkpoint_digest bytea check (pg_catalog.octet_length(previous_checkpoint_digest) = 32),
  stores text[] not null check (pg_catalog.cardinality(stores) >= 1),
  signature bytea not null check (pg_catalog.octet_length(signature) = 64),
  registered_at timestamptz not null default pg_catalog.now(),
  primary key (tenant_id, checkpoint_digest)
);
create index anchors_tenant_sequence on audit_trail.anchors (tenant_id, sequence_no);

comment on table audit_trail.anchors is
  'Signed checkpoints of each tenant''s chain head, as published to the anchor stores (docs/hash-chain.md). Append-only.';
comment on column audit_trail.anchors.sequence_no is 'The anchored chain head: the checkpoint vouches for events 1..sequence_no.';
comment on column audit_trail.anchors.record_hash is 'record_hash of event sequence_no at the time of anchoring.';
comment on column audit_trail.anchors.key_id is 'First 16 bytes (hex) of SHA-256 of the raw Ed25519 public key that signed the checkpoint.';
comment on column audit_trail.anchors.checkpoint_digest is 'SHA-256 of the canonical checkpoint JSON (the signed bytes).';
comment on column audit_trail.anchors.previous_checkpoint_digest is 'checkpoint_digest of the tenant''s previous checkpoint; NULL for the first.';
comment on column audit_trail.anchors.stores is 'Where the checkpoint was published (file:DIR, s3://bucket/prefix).';
comment on column audit_trail.anchors.signature is 'Ed25519 signature of the canonical checkpoint JSON.';

create trigger anchors_refuse_update_delete before update or delete on audit_trail.anchors
  for each row execute function audit_trail.refuse_trail_change();
create trigger anchors_refuse_truncate before truncate on audit_trail.anchors
  for each statement execute function audit_trail.refuse_trail_change();

alter table audit_trail.anchors enable row level security;
alter table audit_trail.anchors force row level security;
create policy anchors_owner on audit_trail.anchors to audit_trail_owner using (true) with check (true);
create policy anchors_reader on audit_trail.anchors for select to audit_trail_reader, audit_trail_admin
  using (tenant_id in (select r.tenant_id from audit_trail.tenant_readers r
                        where pg_catalog.pg_has_role(r.role_oid, 'member')));

-- Registers a published checkpoint and records the anchoring in the tenant's
-- own chain (an 'execute' on resource 'anchor'). Refuses a checkpoint below the
-- last one, one that does not name the last one as its predecessor, and one
-- whose record_hash is not the event's at that position.
create function audit_trail.register_anchor(
  p_tenant text, p_sequence_no bigint, p_record_hash bytea, p_anchored_at timestamptz, p_key_id text,
  p_checkpoint_digest bytea, p_previous_checkpoint_digest bytea, p_stores text[], p_signature bytea)
returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_last audit_trail.anchors;
begin
  if p_tenant is null or p_tenant = '' or p_sequence_no is null or p_record_hash is null then
    raise exception 'a checkpoint needs a tenant, a sequence_no and a record_hash' using errcode = '22023',
      hint = 'Register checkpoints with audit-trail anchor, which computes and signs them.';
  end if;
  -- One anchoring per tenant at a time, so "the last checkpoint" is well defined.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('audit_trail.anchors:' || p_tenant, 0));
  select a.* into v_last from audit_trail.anchors a
   where a.tenant_id = p_tenant order by a.sequence_no desc, a.anchored_at desc limit 1;
  if found and p_sequence_no < v_last.sequence_no then
    raise exception 'checkpoint of tenant % at sequence_no % is behind the last anchored one (%)',
        p_tenant, p_sequence_no, v_last.sequence_no
      using errcode = 'AT020',
            detail = pg_catalog.format('last checkpoint %s at sequence_no %s, record_hash %s',
                       pg_catalog.encode(v_last.checkpoint_digest, 'hex'), v_last.sequence_no,
                       pg_catalog.encode(v_last.record_hash, 'hex')),
            hint = 'A chain head below an anchored checkpoint means events were removed: run audit-trail verify --anchors.';
  end if;
  if p_previous_checkpoint_digest is distinct from v_last.checkpoint_digest then
    raise exception 'checkpoint of tenant % does not continue the last checkpoint', p_tenant
      using errcode = 'AT021',
            detail = pg_catalog.format('previous_checkpoint_digest is %s, the last registered checkpoint is %s',
                       coalesce(pg_catalog.encode(p_previous_checkpoint_digest, 'hex'), 'none'),
                       coalesce(pg_catalog.encode(v_last.checkpoint_digest, 'hex'), 'none')),
            hint = 'Another anchoring ran at the same time; run audit-trail anchor again.';
  end if;
  if not exists (select from audit_trail.events e
                  where e.tenant_id = p_tenant and e.sequence_no = p_sequence_no and e.record_hash = p_record_hash) then
    raise exception 'tenant % has no event % with record_hash %', p_tenant, p_sequence_no,
        pg_catalog.encode(p_record_hash, 'hex')
      using errcode = '22023', hint = 'Anchor the chain head as read from audit_trail.chain_heads.';
  end if;
  insert into audit_trail.anchors (tenant_id, sequence_no, record_hash, anchored_at, key_id, checkpoint_digest,
      previous_checkpoint_digest, stores, signature)
  values (p_tenant, p_sequence_no, p_record_hash, p_anchored_at, p_key_id, p_checkpoint_digest,
      p_previous_checkpoint_digest, p_stores, p_signature);
  return audit_trail.record_administrative_event(p_tenant, 'execute', 'anchor',
    pg_catalog.encode(p_checkpoint_digest, 'hex'),
    pg_catalog.jsonb_build_array(
      pg_catalog.jsonb_build_object('field', 'anchored_sequence_no', 'before', v_last.sequence_no, 'after', p_sequence_no),
      pg_catalog.jsonb_build_object('field', 'anchored_record_hash', 'before', pg_catalog.encode(v_last.record_hash, 'hex'),
                                    'after', pg_catalog.encode(p_record_hash, 'hex')),
      pg_catalog.jsonb_build_object('field', 'key_id', 'before', v_last.key_id, 'after', p_key_id),
      pg_catalog.jsonb_build_object('field', 'stores', 'before', null, 'after', pg_catalog.to_jsonb(p_stores))),
    null, false);
end
$$;
comment on function audit_trail.register_anchor(text, bigint, bytea, timestamptz, text, bytea, bytea, text[], bytea) is
  'Lists a published checkpoint in audit_trail.anchors and records the anchoring in the tenant''s chain; never backwards.';

grant select on audit_trail.anchors to audit_trail_reader, audit_trail_admin;
grant execute on function audit_trail.register_anchor(text, bigint, bytea, timestamptz, text, bytea, bytea, text[], bytea)
  to audit_trail_admin;
