-- pg-audit-trail: schema and roles.
--
-- Roles are cluster-wide; they are created once and reused by every database
-- of the cluster that installs pg-audit-trail.
--   audit_trail_owner  NOLOGIN. Owns every trail object. Nobody logs in as it.
--   audit_trail_admin  turns capture on and off, maps readers to tenants,
--                      maintains the actor registry and tenant policies.
--   audit_trail_writer the application role(s): may set context and call
--                      audit_trail.record(); capture by triggers needs no grant.
--                      Pooled: may read the tenant named in audit_trail.tenant_id.
--   audit_trail_reader auditors and QA: read only the tenants they are mapped to.
do $roles$
declare
  v_role text;
begin
  if pg_catalog.current_setting('server_version_num')::int < 150000 then
    raise exception 'pg-audit-trail needs PostgreSQL 15 or later; this server is %',
      pg_catalog.current_setting('server_version')
      using errcode = '0A000', hint = 'Upgrade the server to PostgreSQL 15, 16, 17 or 18.';
  end if;
  if pg_catalog.getdatabaseencoding() <> 'UTF8' then
    raise exception 'pg-audit-trail needs a UTF8 database; this one is %', pg_catalog.getdatabaseencoding()
      using errcode = '0A000',
            hint = 'Create the database with ENCODING ''UTF8'': the hash chain encodes text as UTF-8 bytes.';
  end if;
  foreach v_role in array array['audit_trail_owner', 'audit_trail_admin', 'audit_trail_writer', 'audit_trail_reader'] loop
    if not exists (select from pg_catalog.pg_roles where rolname = v_role) then
      execute pg_catalog.format('create role %I nologin', v_role);
    end if;
  end loop;
end
$roles$;

-- The installing role needs membership in the owner to hand objects to it.
-- It gives it up again at the end of the install (99_grants.sql), so that no
-- login role keeps the owner's right to alter or disable the trail's triggers.
grant audit_trail_owner to current_user;
create schema if not exists audit_trail;
alter schema audit_trail owner to audit_trail_owner;
revoke all on schema audit_trail from public;
grant usage on schema audit_trail to audit_trail_admin, audit_trail_writer, audit_trail_reader;
-- Every object below is created as audit_trail_owner.
set local role audit_trail_owner;

comment on schema audit_trail is
  'pg-audit-trail: tamper-evident, append-only audit trail (see docs/architecture.md).';
