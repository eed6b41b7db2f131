-- Tenant isolation: forced row-level security on every trail table.
--
-- Readers (members of audit_trail_reader) see the tenants they are mapped to in
-- audit_trail.tenant_readers, whatever settings they choose. The pooled
-- application role (audit_trail_writer) sees the tenant its transaction names
-- in audit_trail.tenant_id: that is the weaker layer, because the application
-- chooses the setting (docs/architecture.md).

alter table audit_trail.events enable row level security;
alter table audit_trail.events force row level security;
alter table audit_trail.chain_heads enable row level security;
alter table audit_trail.chain_heads force row level security;
alter table audit_trail.tenant_readers enable row level security;
alter table audit_trail.tenant_readers force row level security;
alter table audit_trail.actors enable row level security;
alter table audit_trail.actors force row level security;

-- The tenants the current role may read through the mapping.
create view audit_trail.my_readable_tenants with (security_barrier) as
  select distinct r.tenant_id from audit_trail.tenant_readers r
   where pg_catalog.pg_has_role(r.role_oid, 'member');
comment on view audit_trail.my_readable_tenants is 'The tenants the current role may read.';

create policy events_owner on audit_trail.events to audit_trail_owner using (true) with check (true);
create policy events_reader on audit_trail.events for select to audit_trail_reader, audit_trail_admin
  using (tenant_id in (select r.tenant_id from audit_trail.tenant_readers r
                        where pg_catalog.pg_has_role(r.role_oid, 'member')));
create policy events_pooled_application on audit_trail.events for select to audit_trail_writer
  using (tenant_id = pg_catalog.current_setting('audit_trail.tenant_id', true));

create policy chain_heads_owner on audit_trail.chain_heads to audit_trail_owner using (true) with check (true);
create policy chain_heads_reader on audit_trail.chain_heads for select to audit_trail_reader, audit_trail_admin
  using (tenant_id in (select r.tenant_id from audit_trail.tenant_readers r
                        where pg_catalog.pg_has_role(r.role_oid, 'member')));
create policy chain_heads_pooled_application on audit_trail.chain_heads for select to audit_trail_writer
  using (tenant_id = pg_catalog.current_setting('audit_trail.tenant_id', true));

create policy tenant_readers_owner on audit_trail.tenant_readers to audit_trail_owner using (true) with check (true);
create policy tenant_readers_admin on audit_trail.tenant_readers for select to audit_trail_admin using (true);
create policy tenant_readers_self on audit_trail.tenant_readers for select to public
  using (pg_catalog.pg_has_role(role_oid, 'member'));

create policy actors_owner on audit_trail.actors to audit_trail_owner using (true) with check (true);
create policy actors_admin on audit_trail.actors to audit_trail_admin using (true) with check (true);
create policy actors_reader on audit_trail.actors for select to audit_trail_reader
  using (tenant_id in (select r.tenant_id from audit_trail.tenant_readers r
                        where pg_catalog.pg_has_role(r.role_oid, 'member')));

create function audit_trail.grant_tenant_read(role name, tenant text)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_oid oid;
begin
  select oid into v_oid from pg_roles where rolname = role;
  if v_oid is null then
    raise exception 'role "%" does not exist', role using errcode = '42704', hint = 'CREATE ROLE ' || quote_ident(role) || ' LOGIN; first.';
  end if;
  if tenant is null or tenant = '' or tenant = '*' then
    raise exception 'a tenant id is required' using errcode = '22023', hint = 'select audit_trail.grant_tenant_read(''qa_reader'', ''plant_hd'');';
  end if;
  if pg_has_role(v_oid, 'audit_trail_writer', 'member') or pg_has_role(v_oid, 'audit_trail_owner', 'member') then
    raise exception 'role "%" is an application or owner role; reader roles must be separate', role
      using errcode = '42501',
            hint = 'Application roles choose their tenant by a setting, so a reader that is also one could read any tenant. Create a dedicated reader role.';
  end if;
  if not pg_has_role(v_oid, 'audit_trail_reader', 'member') then
    execute format('grant audit_trail_reader to %I', role);
  end if;
  insert into audit_trail.tenant_readers (role_oid, role_name, tenant_id) values (v_oid, role, tenant)
  on conflict do nothing;
  if found then
    perform audit_trail.record_administrative_event(tenant, 'execute', 'tenant_read_grant', role,
      jsonb_build_array(jsonb_build_object('field', 'may_read', 'before', false, 'after', true)), null, false);
  end if;
end
$$;
comment on function audit_trail.grant_tenant_read(name, text) is
  'Lets a reader role read one tenant''s trail (and makes it a member of audit_trail_reader). Recorded in that tenant''s chain.';

create function audit_trail.revoke_tenant_read(role name, tenant text)
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  delete from audit_trail.tenant_readers r where r.role_name = role and r.tenant_id = tenant;
  if found then
    perform audit_trail.record_administrative_event(tenant, 'execute', 'tenant_read_grant', role,
      jsonb_build_array(jsonb_build_object('field', 'may_read', 'before', true, 'after', false)), null, false);
  end if;
end
$$;
comment on function audit_trail.revoke_tenant_read(name, text) is 'Withdraws a reader role''s access to one tenant. Recorded in that tenant''s chain.';
