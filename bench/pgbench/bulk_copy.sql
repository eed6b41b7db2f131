-- Bulk import by COPY (a psql script: pgbench cannot send COPY data). Reads CSV
-- rows "tenant_id,lot,material,qty,status,received_at" from psql's standard input,
-- in one transaction, by one actor. One audit event per row.
-- Rerun: psql -X -v ON_ERROR_STOP=1 -c '\timing on' -f bench/pgbench/bulk_copy.sql DBNAME < rows.csv
--        (events/s = rows / the sum of the printed times; the commit, where the events are chained, included)
-- The bench writes the CSV itself (bench/run.ts, writeBulkCsv) with the same values as bulk_insert_select.sql.
BEGIN;
SELECT set_config('audit_trail.actor_id', 'svc_erp_import', true);
\copy bench_bulk_items (tenant_id, lot, material, qty, status, received_at) from pstdin with (format csv)
COMMIT;
