-- Puts pg-audit-trail capture on pgbench's four tables (after `audit-trail
-- migrate` or migrate() installed the schema, and `pgbench -i -s 10`).
-- The tenant comes from the session (audit_trail.tenant_id, set per
-- transaction by bench/pgbench/tpcb_tenant.sql).
select audit_trail.enable('pgbench_accounts');
select audit_trail.enable('pgbench_tellers');
select audit_trail.enable('pgbench_branches');
-- pgbench_history has no primary key: name the columns that identify a row.
select audit_trail.enable('pgbench_history', '{"key_columns": ["tid", "aid", "mtime"]}');
