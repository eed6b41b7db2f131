-- bench/pgbench/tpcb_tenant.sql plus one UPDATE of the tenant's chain head
-- (bench/designs/head_through_commit.sql) as the last statement before END:
-- the least any gapless chain taken in the writing transaction costs.
-- Run by bench/designs.ts; by hand, after psql -f bench/designs/common.sql DBNAME:
--   pgbench -n -c 16 -j 2 -T 10 -D scale=10 -D tenants=1 -f bench/designs/tpcb_head_through_commit.sql DBNAME
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
-- The tenant's chain head, moved and held through the commit: nothing else.
UPDATE bench_design.heads SET sequence_no = sequence_no + 1 WHERE tenant_id = 't' || :tenant;
END;
