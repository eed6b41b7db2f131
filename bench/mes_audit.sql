-- Puts pg-audit-trail capture on the MES tables of bench/mes_schema.sql.
-- Tenant: the row's tenant_id (the plant). Soft deletes: deleted_at.
-- A change of a downtime's reason_code needs a reason (reclassification).
select audit_trail.enable('production_orders', '{"tenant_column": "tenant_id", "resource_type": "production_order", "soft_delete": {"column": "deleted_at"}}');
select audit_trail.enable('operations', '{"tenant_column": "tenant_id", "resource_type": "operation", "soft_delete": {"column": "deleted_at"}, "parent": {"column": "order_id", "resource_type": "production_order"}}');
select audit_trail.enable('downtime_records', '{"tenant_column": "tenant_id", "resource_type": "downtime_record", "soft_delete": {"column": "deleted_at"}, "reason_required": ["reason_code"]}');
select audit_trail.enable('quality_results', '{"tenant_column": "tenant_id", "resource_type": "quality_result", "soft_delete": {"column": "deleted_at"}, "parent": {"column": "op_id", "resource_type": "operation"}}');
