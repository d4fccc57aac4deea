-- The API's lists page newest first by (created_at, id) within a tenant (docs/api.md). Without an index in that
-- order every page sorted the tenant's rows: the cards list of a 100,000-card tenant served about 7 requests a second,
-- about 1,000 with the index (docs/benchmarks.md, "api").
create index idx_cards_tenant_created on public.cards (tenant_id, created_at desc, id desc);
create index idx_autonomous_runs_tenant_created on public.agent_autonomous_runs (tenant_id, created_at desc, id desc);
create index idx_hourly_reflections_tenant_created on public.agent_hourly_reflections (tenant_id, created_at desc, id desc);
create index idx_order_queue_tenant_created on public.order_processing_queue (tenant_id, created_at desc, id desc);
create index idx_order_exceptions_tenant_created on public.order_processing_exceptions (tenant_id, created_at desc, id desc);
create index idx_client_patterns_tenant_created on public.client_patterns (tenant_id, created_at desc, id desc);
create index idx_policy_violations_tenant_created on public.agent_policy_violations (tenant_id, created_at desc, id desc);

-- The tenants of the current user, behind every row-level security policy: plpgsql, whose plan is cached for the
-- session, instead of a sql function with SET, which PostgreSQL before 18 plans again on every call.
create or replace function hourglass.current_tenant_ids() returns uuid[]
language plpgsql stable security definer set search_path = ''
as $$
begin
  return coalesce((select pg_catalog.array_agg(m.tenant_id) from public.tenant_members m where m.user_id = (select auth.uid())), '{}'::uuid[]);
end
$$;
