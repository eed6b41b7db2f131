-- Privileges, last: what each role may do. Nothing is granted to PUBLIC.

-- The revocations from PUBLIC of everything in the schema come after
-- "reset role" below, because the schema may also hold the migration ledger,
-- which belongs to the installing role.
revoke all on audit_trail.events, audit_trail.chain_heads, audit_trail.settings, audit_trail.tenant_policies,
  audit_trail.actors, audit_trail.tenant_readers, audit_trail.audited_tables, audit_trail.partition_horizon,
  audit_trail.my_readable_tenants from public;

-- Readers and auditors: read, verify.
grant select on audit_trail.events, audit_trail.chain_heads, audit_trail.my_readable_tenants,
  audit_trail.tenant_readers, audit_trail.actors to audit_trail_reader;
grant execute on function audit_trail.verify(text, bigint, bigint), audit_trail.scan_chain(text, bigint, bigint),
  audit_trail.encode_text(text), audit_trail.encode_jsonb(jsonb), audit_trail.encode_timestamp(timestamptz),
  audit_trail.encode_body(text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, text, text, text, jsonb, text, jsonb, json),
  audit_trail.encode_body_in_utf8_session(text, text, timestamptz, timestamptz, text, text, text, text, text, text, text, text, text, text, text, jsonb, text, jsonb, json),
  audit_trail.chain_hash(bytea, bigint, bytea), audit_trail.genesis_hash()
  to audit_trail_reader, audit_trail_admin, audit_trail_writer;

-- The application: context, application-level events, its own tenant's trail.
grant select on audit_trail.events, audit_trail.chain_heads to audit_trail_writer;
grant execute on function audit_trail.set_context(jsonb), audit_trail.check_context_value(text, text),
  audit_trail.record(text, text, text, jsonb, text, text, text, jsonb, text, timestamptz)
  to audit_trail_writer;

-- Administrators: configuration and access.
grant select on audit_trail.events, audit_trail.chain_heads, audit_trail.audited_tables,
  audit_trail.tenant_readers, audit_trail.my_readable_tenants to audit_trail_admin;
grant select, insert, update on audit_trail.actors, audit_trail.tenant_policies to audit_trail_admin;
grant execute on function audit_trail.enable(regclass, jsonb), audit_trail.disable(regclass, text),
  audit_trail.check_option_column(regclass, text[], text, jsonb), audit_trail.drop_capture_triggers(regclass),
  audit_trail.register_audited_table(regclass, jsonb, jsonb, boolean, text),
  audit_trail.grant_tenant_read(name, text), audit_trail.revoke_tenant_read(name, text),
  audit_trail.set_context(jsonb), audit_trail.check_context_value(text, text),
  audit_trail.record(text, text, text, jsonb, text, text, text, jsonb, text, timestamptz),
  audit_trail.create_partitions(timestamptz), audit_trail.policy_for(text)
  to audit_trail_admin;

-- Capture runs as the owner through SECURITY DEFINER trigger functions; the
-- trigger functions may be referenced by the owners of audited tables.

-- The partitions for the coming months.
select audit_trail.create_partitions(pg_catalog.now());

reset role;
revoke all on all functions in schema audit_trail from public;
grant execute on function audit_trail.capture_change(), audit_trail.capture_inserted_rows(), audit_trail.apply_hard_delete_policy(),
  audit_trail.refuse_truncate_of_audited_table() to public;
-- The DDL guard runs as whoever alters an audited table (its owner).
grant execute on function audit_trail.normalize_options(regclass, jsonb),
  audit_trail.install_capture_triggers(regclass, jsonb), audit_trail.drop_capture_triggers(regclass),
  audit_trail.check_option_column(regclass, text[], text, jsonb), audit_trail.requested_options_of(oid),
  audit_trail.capture_triggers_intact(oid), audit_trail.enabled_table_oids(), audit_trail.guard_audited_table_ddl(),
  audit_trail.store_derived_options(oid), audit_trail.refuse_drop_of_audited_table(),
  audit_trail.refuse_rewrite_of_audited_table(), audit_trail.guard_partitions(regclass, boolean),
  audit_trail.record_dropped_columns() to public;
-- grant_tenant_read() makes reader roles members of audit_trail_reader.
grant audit_trail_reader to audit_trail_owner with admin option;
-- The installer gives up its membership in the owner (granted in 00): no
-- login role keeps the owner's right to alter or disable the trail's triggers.
-- It keeps USAGE on the schema, where the migration ledger it owns lives.
do $$
begin
  if pg_catalog.pg_has_role(current_user, 'audit_trail_owner', 'member')
     and not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    execute pg_catalog.format('grant usage on schema audit_trail to %I', current_user);
    execute pg_catalog.format('revoke audit_trail_owner from %I', current_user);
  end if;
end
$$;
