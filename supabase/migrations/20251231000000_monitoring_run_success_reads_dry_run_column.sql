-- monitoring_run_success leaves dry runs out by the agent_autonomous_runs.dry_run column (a generated stored column
-- since 20251230100000_agent_autonomous_runs_dry_run) instead of reading the key inside cycle_metrics. The same rows:
-- dry_run is true exactly when cycle_metrics.dry_run holds JSON true, which is what the view left out before.
-- CREATE OR REPLACE VIEW keeps the view's name, columns (same names, types and order), grants and comment; its
-- options are given again so security_invoker stays on (PostgreSQL docs, CREATE VIEW).

create or replace view public.monitoring_run_success with (security_invoker = true) as
select r.tenant_id,
       (r.started_at at time zone t.timezone)::date as day,
       pg_catalog.count(*) as runs,
       pg_catalog.count(*) filter (where r.status = 'completed') as completed,
       pg_catalog.count(*) filter (where r.status = 'partial') as partial,
       pg_catalog.count(*) filter (where r.status = 'failed') as failed,
       pg_catalog.count(*) filter (where r.status = 'abandoned') as abandoned,
       pg_catalog.count(*) filter (where r.status = 'skipped') as skipped,
       pg_catalog.count(*) filter (where r.status = 'running') as running,
       pg_catalog.round(
         (pg_catalog.count(*) filter (where r.status = 'completed'))::numeric
         / nullif(pg_catalog.count(*) filter (where r.status in ('completed', 'partial', 'failed', 'abandoned')), 0), 4) as success_rate,
       coalesce(pg_catalog.sum(r.actions_taken), 0) as actions_taken,
       coalesce(pg_catalog.sum(r.actions_blocked), 0) as actions_blocked,
       pg_catalog.round(pg_catalog.avg(extract(epoch from r.completed_at - r.started_at))
         filter (where r.status in ('completed', 'partial', 'failed')), 3) as avg_duration_seconds
from public.agent_autonomous_runs r
join public.tenants t on t.id = r.tenant_id
where not r.dry_run
group by r.tenant_id, (r.started_at at time zone t.timezone)::date;
