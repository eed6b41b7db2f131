-- MES-like workload: one transaction per shop-floor event, chosen at random in
-- the proportions a discrete-manufacturing plant produces (per 100 transactions):
--   35  operation progress: good/scrap count booked on a running operation (UPDATE operations)
--   20  quality result recorded (INSERT quality_results)
--   10  operation started: new operation of an order (INSERT operations)
--   10  machine stop detected, downtime opened with an automatic reason code (INSERT downtime_records; reason given)
--    8  downtime closed: end time and duration (UPDATE downtime_records)
--    5  downtime reclassified by a supervisor: reason_code changed, with a reason (UPDATE downtime_records)
--    5  production order progress / status change (UPDATE production_orders)
--    4  production order released (INSERT production_orders)
--    3  soft delete of a wrongly entered quality result (UPDATE quality_results SET deleted_at)
-- One audited row per transaction. Each transaction sets the actor (an operator of the plant).
-- Variables (pgbench -D): plants (as in bench/mes_schema.sql, default run: 5).
-- Rerun: pgbench -n -D plants=5 -c 4 -j 2 -T 10 -f bench/pgbench/mes.sql DBNAME
\set r random(1, 100)
\set plant random(1, :plants)
\set op random(1, 10000 / :plants - 1) * :plants + :plant - 1
\set dt random(1, 5000 / :plants - 1) * :plants + :plant - 1
\set po random(1, 2000 / :plants - 1) * :plants + :plant - 1
\set qr random(1, 20000 / :plants - 1) * :plants + :plant - 1
\set actor random(1, 40)
\set alarm random(1000, 9999)
\set n random(1, 20)
BEGIN;
SELECT set_config('audit_trail.actor_id', 'op_' || :plant || '_' || :actor, true);
\if :r <= 35
UPDATE operations SET qty_good = qty_good + :n, qty_scrap = qty_scrap + (:n / 15), status = 'running', updated_at = now() WHERE op_id = :op;
\elif :r <= 55
INSERT INTO quality_results (tenant_id, op_id, characteristic, measured_value, lower_limit, upper_limit, passed)
VALUES ('plt_' || :plant, :op, 'DIM-' || :n, 10 + :alarm / 100000.0, 9.5, 10.5, true);
\elif :r <= 65
INSERT INTO operations (tenant_id, order_id, op_seq, work_center, status, started_at)
VALUES ('plt_' || :plant, :po, 10 * :n, 'WC-' || :actor, 'running', now());
\elif :r <= 75
SELECT set_config('audit_trail.reason', 'Stop detected by the line PLC, alarm ' || :alarm, true);
INSERT INTO downtime_records (tenant_id, line_id, started_at, reason_code)
VALUES ('plt_' || :plant, 'line_' || :n, now(), 'UNK');
\elif :r <= 83
UPDATE downtime_records SET ended_at = now(), duration_seconds = 60 * :n WHERE downtime_id = :dt;
\elif :r <= 88
SELECT set_config('audit_trail.reason', 'Re-classified after review of PLC alarm log ' || :alarm || '; see shift report', true);
UPDATE downtime_records SET reason_code = (ARRAY['MAT', 'MNT', 'CHG', 'QLT', 'ORG'])[:n % 5 + 1], reclassified_at = now() WHERE downtime_id = :dt;
\elif :r <= 93
UPDATE production_orders SET qty_done = qty_done + :n, status = 'in_progress', updated_at = now() WHERE order_id = :po;
\elif :r <= 97
INSERT INTO production_orders (tenant_id, order_no, material, qty_planned, due_at)
VALUES ('plt_' || :plant, 'PO-N' || :alarm || '-' || :actor, 'MAT-' || :n, 100 * :n, now() + interval '7 days');
\else
UPDATE quality_results SET deleted_at = now() WHERE result_id = :qr AND deleted_at IS NULL;
\endif
END;
