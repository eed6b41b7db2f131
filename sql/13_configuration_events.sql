-- Changes to a tenant's rules and to its actor registry are themselves audit
-- events, in that tenant's chain (a retention change included): who changed
-- which rule, from what to what. Changes to the defaults row '*' go to the
-- '_system' chain.
create function audit_trail.record_configuration_change()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_old jsonb := case when TG_OP <> 'INSERT' then to_jsonb(old) end;
  v_new jsonb := case when TG_OP <> 'DELETE' then to_jsonb(new) end;
  v_row jsonb := coalesce(v_new, v_old);
  v_tenant text := v_row ->> 'tenant_id';
  v_changes jsonb;
begin
  select coalesce(jsonb_agg(jsonb_build_object('field', k, 'before', v_old -> k, 'after', v_new -> k) order by k), '[]')
    into v_changes
    from jsonb_object_keys(v_row) k
   where k not in ('tenant_id', 'updated_at', 'created_at')
     and (v_old -> k)::text is distinct from (v_new -> k)::text;
  if v_changes = '[]' then
    return null;
  end if;
  perform audit_trail.record_administrative_event(
    case when v_tenant = '*' then '_system' else v_tenant end,
    case TG_OP when 'INSERT' then 'create' when 'UPDATE' then 'update' else 'delete' end,
    case TG_TABLE_NAME when 'tenant_policies' then 'tenant_policy' else 'actor' end,
    case TG_TABLE_NAME when 'tenant_policies' then v_tenant else v_row ->> 'actor_id' end,
    v_changes, null, false);
  return null;
end
$$;
comment on function audit_trail.record_configuration_change() is
  'Trigger: records changes to tenant policies and the actor registry as audit events of the tenant.';

create trigger tenant_policies_are_audited after insert or update or delete on audit_trail.tenant_policies
  for each row execute function audit_trail.record_configuration_change();
create trigger actors_are_audited after insert or update or delete on audit_trail.actors
  for each row execute function audit_trail.record_configuration_change();
