-- Configuration lives in tables guarded by CHECK constraints, not in GUC defaults.

-- Installation-wide settings: one row.
create table audit_trail.settings (
  singleton boolean primary key default true check (singleton),
  -- Key for redact_columns digests (HMAC-SHA256). Never leaves the database;
  -- readable by audit_trail_owner only.
  redaction_key bytea not null default pg_catalog.sha256(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                                   || pg_catalog.uuid_send(pg_catalog.gen_random_uuid())),
  months_ahead integer not null default 12 check (months_ahead between 1 and 120)
);
insert into audit_trail.settings default values;
comment on table audit_trail.settings is 'Installation-wide settings of pg-audit-trail (one row).';

-- Per-tenant policies. A tenant without a row gets the defaults of audit_trail.policy_for().
create table audit_trail.tenant_policies (
  tenant_id text primary key check (tenant_id <> '' and pg_catalog.length(tenant_id) <= 200),
  reject_unknown_actors boolean not null default false,
  reject_suspended_actors boolean not null default true,
  reject_shared_actors boolean not null default false,
  reason_min_length integer not null default 10 check (reason_min_length between 0 and 1000),
  weak_reasons text[] not null default array['ok', 'okay', 'see email', 'see mail', 'n/a', 'na', 'none',
    'fixed', 'fix', 'done', 'test', 'update', 'updated', 'change', 'changed', 'correction', 'corrected',
    'as discussed', 'per request', 'typo', '-', '.', '?', 'x', 'xxx', 'asdf'],
  -- Actions for which audit_trail.record() requires a reason.
  reason_required_actions text[] not null default array['execute', 'delete']
    check (reason_required_actions <@ array['create', 'read', 'update', 'delete', 'execute']),
  hot_retention interval not null default interval '90 days' check (hot_retention >= interval '1 day'),
  retention interval not null default interval '10 years' check (retention >= interval '1 year')
);
comment on table audit_trail.tenant_policies is
  'Per-tenant rules: actor registry enforcement, reason quality, retention. Every change is an audit event of the tenant.';

-- The actor registry (attributable: no shared logins, no unknown principals).
create table audit_trail.actors (
  tenant_id text not null check (tenant_id <> ''),
  actor_id text not null check (actor_id <> ''),
  display_name text not null check (display_name <> ''),
  actor_type text not null default 'user' check (actor_type in ('user', 'service', 'system')),
  status text not null default 'active' check (status in ('active', 'suspended')),
  is_shared_account boolean not null default false,
  -- A service principal must be attributable to a named owner (a user actor).
  owner_actor_id text,
  created_at timestamptz not null default pg_catalog.clock_timestamp(),
  primary key (tenant_id, actor_id),
  check (actor_type <> 'service' or owner_actor_id is not null)
);
comment on table audit_trail.actors is
  'Actor registry per tenant: id, display name, type, status, shared-account flag, owner of a service principal.';

-- Which reader roles may read which tenants.
create table audit_trail.tenant_readers (
  role_oid oid not null,
  role_name name not null,
  tenant_id text not null check (tenant_id <> ''),
  granted_at timestamptz not null default pg_catalog.clock_timestamp(),
  granted_by name not null default session_user,
  primary key (role_oid, tenant_id)
);
comment on table audit_trail.tenant_readers is
  'Mapping of reader roles to the tenants they may read (see audit_trail.grant_tenant_read).';

-- Tables under capture, with the options they were enabled with.
create table audit_trail.audited_tables (
  table_oid oid primary key,
  table_name text not null,
  requested_options jsonb not null check (pg_catalog.jsonb_typeof(requested_options) = 'object'),
  options jsonb not null check (pg_catalog.jsonb_typeof(options) = 'object'),
  enabled boolean not null,
  changed_at timestamptz not null default pg_catalog.clock_timestamp(),
  changed_by name not null default session_user
);
comment on table audit_trail.audited_tables is
  'Domain tables under capture and their normalised options (written by audit_trail.enable/disable only).';

-- The row of tenant '*' holds the defaults for every tenant without a row of its own.
insert into audit_trail.tenant_policies (tenant_id) values ('*');

-- The rules of a tenant: its own row, else the defaults row '*'.
create function audit_trail.policy_for(p_tenant text)
returns audit_trail.tenant_policies
language sql stable security definer
set search_path = pg_catalog, pg_temp
begin atomic
  select p from audit_trail.tenant_policies p
   where p.tenant_id = p_tenant or p.tenant_id = '*'
   order by (p.tenant_id = '*') limit 1;
end;
comment on function audit_trail.policy_for(text) is
  'The policy row of a tenant, or the installation defaults (tenant ''*'') when it has none.';
