-- TPC-B-like transaction (pgbench's built-in "tpcb-like") with the tenant and
-- actor set first, as an application using pg-audit-trail does.
--
-- Variables (pgbench -D): scale (pgbench -i -s), tenants (1 = one hot tenant,
-- 100 = 100 tenants chosen at random per transaction).
-- Audited rows per transaction: 4 (3 updates, 1 insert).
--
-- Rerun by hand (audited database: bench/tpcb_audit.sql applied; baseline: the
-- same pgbench tables without it):
--   pgbench -n -s 10 -D tenants=100 -c 16 -j 2 -T 10 -f bench/pgbench/tpcb_tenant.sql DBNAME
\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
\set tenant random(1, :tenants)
BEGIN;
SELECT set_config('audit_trail.tenant_id', 't' || :tenant, true), set_config('audit_trail.actor_id', 'usr_' || :tenant, true);
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
