-- In-database verification of tenant t1's chain (built by the bench with
-- bench/pgbench/bulk_insert_select.sql-style inserts, see bench/run.ts).
-- Rerun: pgbench -n -t 3 -c 1 -f bench/pgbench/verify.sql DBNAME
--        (events/s = events in the chain / latency; the bench runs the same query via node-postgres
--         to read events_checked and ok)
SELECT * FROM audit_trail.verify('t1');
