-- Bulk import by COPY (a psql script: pgbench cannot send COPY data). Reads CSV
-- rows "tenant_id,lot,material,qty,status,received_at" from psql's standard input.
-- Rerun: psql -X -v ON_ERROR_STOP=1 -c '\timing on' -f bench/pgbench/bulk_copy.sql DBNAME < rows.csv
-- The bench writes the CSV itself (bench/run.ts, bulkCsv) with the same values as bulk_insert_select.sql.
\copy bench_bulk_items (tenant_id, lot, material, qty, status, received_at) from pstdin with (format csv)
