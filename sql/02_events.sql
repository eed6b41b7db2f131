-- The trail: one row per event, partitioned by capture time (ingested_at) so
-- that old months can be offloaded whole. Late edge events carry an old
-- occurred_at but a current ingested_at, so they never land in an old partition.
-- No CHECK constraints: each would be parsed, planned and set up again in
-- every commit (ten cost about 100 us here; docs/architecture.md). The commit
-- step (05_append_and_chain.sql) is the only writer and builds every value in
-- the domains noted below (the tests check them); verify() proves that stored
-- values were not changed since, not that they were well formed.
create table audit_trail.events (
  event_id text not null,                  -- a ULID: 26 characters of Crockford base32
  tenant_id text not null,
  sequence_no bigint not null,             -- 1, 2, 3, ... per tenant, no gaps
  occurred_at timestamptz not null,
  ingested_at timestamptz not null,
  actor_type text not null,                -- user | service | system
  actor_id text,
  actor_name text,
  auth_method text,
  source_ip text,
  user_agent_hash text,
  action text not null,                    -- create | read | update | delete | execute
  resource_type text not null,
  resource_id text,
  parent_type text,
  parent_id text,
  changes jsonb not null,                  -- an array of {field, before, after}
  reason text,
  context jsonb not null,                  -- an object
  db_identity json not null,               -- an object, stored and hashed as written (db_identity_text())
  encoding_version smallint not null,      -- 1 (docs/hash-chain.md)
  prev_hash bytea not null,                -- 32 bytes
  record_hash bytea not null               -- 32 bytes
) partition by range (ingested_at);

-- No unique index: on a partitioned table a unique index must contain the
-- partition key, so (tenant_id, sequence_no) uniqueness is proven by
-- audit_trail.verify() (duplicates are one of the breaks it names) and
-- guaranteed on the write path by the lock on the tenant's chain head.
-- Fillfactor 100: entries are only ever appended, each tenant's in ascending
-- sequence_no, and never updated, so a leaf page split while a tenant's entries
-- arrive is left full (PostgreSQL splits such pages after the new entry)
-- instead of 90 % full: about 2 bytes less an event.
create index events_tenant_sequence on audit_trail.events (tenant_id, sequence_no) with (fillfactor = 100);

comment on table audit_trail.events is
  'The audit trail: append-only, hash-chained per tenant (docs/hash-chain.md), one row per event.';
comment on column audit_trail.events.sequence_no is 'Position in the tenant''s chain: 1, 2, 3, ... without gaps. The authoritative order.';
comment on column audit_trail.events.occurred_at is 'When it happened: audit_trail.occurred_at when supplied, else the capture moment. UTC.';
comment on column audit_trail.events.ingested_at is 'The capture moment (the trigger or audit_trail.record() call). UTC. Partition key.';
comment on column audit_trail.events.changes is 'Array of {field, before, after}; see docs/integrate.md for digests, redaction and JSON null.';
comment on column audit_trail.events.db_identity is
  'What the database itself knew, one compact JSON object: login (session_user), app (application_name), client (client address; null over a Unix socket), pid (backend process id), xid (transaction id).';
comment on column audit_trail.events.prev_hash is 'record_hash of the previous event of the tenant; 32 zero bytes for sequence_no 1.';
comment on column audit_trail.events.record_hash is 'SHA-256 of the canonical encoding (docs/hash-chain.md), prev_hash included.';

-- The head of each tenant's chain: the only row a writer locks, for as short
-- as possible (at commit, once per transaction and tenant).
create table audit_trail.chain_heads (
  tenant_id text primary key,
  sequence_no bigint not null check (sequence_no >= 0),
  record_hash bytea not null check (pg_catalog.octet_length(record_hash) = 32),
  -- ingested_at of the head event: lets the head guard find it in one partition
  head_ingested_at timestamptz,
  updated_at timestamptz not null
) with (fillfactor = 20);
comment on table audit_trail.chain_heads is
  'Last sequence_no and record_hash of every tenant''s chain; moves forward only.';

-- Months of partitions that exist, so the commit path knows cheaply when to add more.
create table audit_trail.partition_horizon (
  singleton boolean primary key default true check (singleton),
  covered_until timestamptz not null
);
comment on table audit_trail.partition_horizon is 'Events captured before covered_until have a partition.';

-- Creates the monthly partitions from the month of p_from up to months_ahead months later.
create function audit_trail.create_partitions(p_from timestamptz default pg_catalog.now())
returns integer
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_month timestamptz;
  v_last timestamptz;
  v_name text;
  v_created integer := 0;
begin
  v_month := pg_catalog.date_trunc('month', p_from at time zone 'UTC') at time zone 'UTC';
  v_last := v_month + pg_catalog.make_interval(months => (select months_ahead from audit_trail.settings));
  while v_month < v_last loop
    v_name := 'events_' || pg_catalog.to_char(v_month at time zone 'UTC', 'YYYY_MM');
    if pg_catalog.to_regclass('audit_trail.' || v_name) is null then
      execute pg_catalog.format(
        'create table audit_trail.%I partition of audit_trail.events for values from (%L) to (%L)',
        v_name, v_month, v_month + interval '1 month');
      -- Statement-level TRUNCATE triggers are not inherited by partitions.
      execute pg_catalog.format(
        'create trigger events_refuse_truncate before truncate on audit_trail.%I '
        'for each statement execute function audit_trail.refuse_trail_change()', v_name);
      execute pg_catalog.format('alter table audit_trail.%I enable row level security', v_name);
      execute pg_catalog.format('alter table audit_trail.%I force row level security', v_name);
      execute pg_catalog.format('revoke all on audit_trail.%I from public', v_name);
      v_created := v_created + 1;
    end if;
    v_month := v_month + interval '1 month';
  end loop;
  insert into audit_trail.partition_horizon as h (covered_until) values (v_last)
  on conflict (singleton) do update set covered_until = greatest(h.covered_until, excluded.covered_until);
  return v_created;
end
$$;
comment on function audit_trail.create_partitions(timestamptz) is
  'Creates the monthly partitions of audit_trail.events from the month of p_from, settings.months_ahead ahead. Safe to repeat.';
