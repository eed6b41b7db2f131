-- Bulk import, one statement: :rows rows into bench_bulk_items (bench/bulk_schema.sql)
-- for one tenant (plant_bulk), in one transaction, by one actor. One audit event per row.
-- Rerun: pgbench -n -t 1 -c 1 -D rows=100000 -f bench/pgbench/bulk_insert_select.sql DBNAME
--        (events/s = rows / latency; the latency includes the commit, where the events are chained)
BEGIN;
SELECT set_config('audit_trail.actor_id', 'svc_erp_import', true);
INSERT INTO bench_bulk_items (tenant_id, lot, material, qty, status, received_at)
SELECT 'plant_bulk', 'LOT-' || g, 'MAT-' || (g % 500), (g % 97) + 0.5, 'received', now()
  FROM generate_series(1, :rows) g;
END;
