-- Monitoring views: run success rate, engagement compliance, policy violation trends, order throughput and lock
-- contention, per tenant, from what the agent already records. Each is security_invoker, so the querying role's
-- privileges and row-level security apply: a member sees their tenants' rows only, the service role sees every
-- tenant, anon sees nothing. On Supabase they are served by PostgREST like tables (/rest/v1/monitoring_run_success).
-- Days are calendar days in the tenant's time zone, as in policy_violation_trends; hours are UTC hours.
-- docs/api.md, "Monitoring views".

-- ---------------------------------------------------------------------------------------------------
-- Cycle runs per tenant and day (when the run started), by status. Dry runs are left out: they are what-ifs,
-- not cycles. The success rate is completed over finished cycles (completed, partial, failed, abandoned);
-- skipped occurrences and runs still running are counted but are not in it. Null when no cycle finished.
-- ---------------------------------------------------------------------------------------------------

create view public.monitoring_run_success with (security_invoker = true) as
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
where (r.cycle_metrics -> 'dry_run') is distinct from 'true'::jsonb
group by r.tenant_id, (r.started_at at time zone t.timezone)::date;

comment on view public.monitoring_run_success is
  'Cycle runs per tenant per day (tenant time zone) by status; success_rate = completed / (completed + partial + failed + abandoned). Dry runs excluded.';

-- ---------------------------------------------------------------------------------------------------
-- Engagement compliance per tenant, now: the clocks by their compliance status (as the last refresh left it).
-- Compliance is the share of clocks not overdue (due soon is still within cadence); null for a tenant with no
-- clocks. Every tenant the caller sees has a row.
-- ---------------------------------------------------------------------------------------------------

create view public.monitoring_engagement_compliance with (security_invoker = true) as
select t.id as tenant_id,
       pg_catalog.count(c.id) as clocks,
       pg_catalog.count(c.id) filter (where c.compliance_status = 'compliant') as compliant,
       pg_catalog.count(c.id) filter (where c.compliance_status = 'due_soon') as due_soon,
       pg_catalog.count(c.id) filter (where c.compliance_status = 'overdue') as overdue,
       pg_catalog.count(c.id) filter (where c.compliance_status = 'overdue' and c.entity_type = 'contact') as overdue_contacts,
       pg_catalog.count(c.id) filter (where c.compliance_status = 'overdue' and c.entity_type = 'account') as overdue_accounts,
       coalesce(pg_catalog.max(c.days_overdue), 0) as max_days_overdue,
       pg_catalog.round(100 * (pg_catalog.count(c.id) filter (where c.compliance_status <> 'overdue'))::numeric
         / nullif(pg_catalog.count(c.id), 0), 2) as compliance_pct
from public.tenants t
left join public.engagement_clocks c on c.tenant_id = t.id
group by t.id;

comment on view public.monitoring_engagement_compliance is
  'Engagement clocks per tenant by compliance status; compliance_pct = 100 * not overdue / clocks.';

-- ---------------------------------------------------------------------------------------------------
-- Policy violations per tenant, day (tenant time zone), rule and severity, with the decisions they led to.
-- ---------------------------------------------------------------------------------------------------

create view public.monitoring_policy_violations with (security_invoker = true) as
select v.tenant_id,
       (v.created_at at time zone t.timezone)::date as day,
       v.policy_key as rule,
       v.rule_kind,
       v.severity,
       pg_catalog.count(*) as violations,
       pg_catalog.count(*) filter (where v.decision = 'deny') as denied,
       pg_catalog.count(*) filter (where v.decision = 'require_approval') as approvals_required,
       pg_catalog.count(*) filter (where v.decision = 'warn') as warned,
       pg_catalog.count(*) filter (where v.blocked) as blocked
from public.agent_policy_violations v
join public.tenants t on t.id = v.tenant_id
group by v.tenant_id, (v.created_at at time zone t.timezone)::date, v.policy_key, v.rule_kind, v.severity;

comment on view public.monitoring_policy_violations is
  'Policy violations per tenant per day (tenant time zone) per rule and severity, by decision.';

-- ---------------------------------------------------------------------------------------------------
-- Orders processed per tenant and UTC hour, by outcome: the order processor writes one outcome event per order
-- it decides (order_validated, order_needs_approval, order_exception). It also writes an order_exception event
-- per problem found, with the problem's type; the outcome event is the one carrying the checks and the fix count,
-- and only it is counted. An order processed twice in an hour (re-validated) counts twice in processed.
-- ---------------------------------------------------------------------------------------------------

create view public.monitoring_order_throughput with (security_invoker = true) as
select e.tenant_id,
       pg_catalog.date_trunc('hour', e.occurred_at, 'UTC') as hour,
       pg_catalog.count(*) as processed,
       pg_catalog.count(*) filter (where e.event_type = 'order_validated') as validated,
       pg_catalog.count(*) filter (where e.event_type = 'order_needs_approval') as needs_approval,
       pg_catalog.count(*) filter (where e.event_type = 'order_exception') as exceptions,
       pg_catalog.count(distinct e.entity_id) as orders,
       coalesce(pg_catalog.sum(case when pg_catalog.jsonb_typeof(e.payload -> 'fixes') = 'number'
                                               then (e.payload ->> 'fixes')::numeric end), 0) as fixes_applied,
       coalesce(pg_catalog.sum(case when e.event_type = 'order_validated' and pg_catalog.jsonb_typeof(e.payload -> 'total') = 'number'
                                               then (e.payload ->> 'total')::numeric end), 0) as validated_value
from public.warehouse_events e
where e.event_type in ('order_validated', 'order_needs_approval', 'order_exception')
  and (e.event_type <> 'order_exception' or (e.payload -> 'fixes') is not null)
group by e.tenant_id, pg_catalog.date_trunc('hour', e.occurred_at, 'UTC');

comment on view public.monitoring_order_throughput is
  'Orders processed per tenant per UTC hour by outcome (order processor outcome events in warehouse_events).';

-- ---------------------------------------------------------------------------------------------------
-- Lock contention per tenant and day (tenant time zone), from the runs: every non-dry cycle runs under a lease
-- whose fencing token it records, so distinct tokens are lease grants; a run skipped because another cycle still
-- held the lease is recorded as a 'skipped' run whose reason starts 'overlap:'; a run whose worker stopped
-- renewing is 'abandoned'. A handover is a lease granted to a different worker than the tenant's previous lease.
-- (Schedule claims are not kept historically: agent_tenant_schedules holds the current claim only.)
-- contention_rate = overlap skips / (lease grants + overlap skips).
-- ---------------------------------------------------------------------------------------------------

create view public.monitoring_lock_contention with (security_invoker = true) as
select x.tenant_id,
       (x.started_at at time zone t.timezone)::date as day,
       pg_catalog.count(distinct x.lock_token) as leases_granted,
       pg_catalog.count(distinct x.worker_id) filter (where x.lock_token is not null) as workers,
       pg_catalog.count(*) filter (where x.lock_token is not null and x.previous_worker is not null
                                    and x.previous_worker is distinct from x.worker_id) as handovers,
       pg_catalog.count(*) filter (where x.status = 'skipped' and x.error like 'overlap:%') as overlap_skips,
       pg_catalog.count(*) filter (where x.status = 'abandoned') as abandoned_runs,
       pg_catalog.round(
         (pg_catalog.count(*) filter (where x.status = 'skipped' and x.error like 'overlap:%'))::numeric
         / nullif(pg_catalog.count(distinct x.lock_token) + pg_catalog.count(*) filter (where x.status = 'skipped' and x.error like 'overlap:%'), 0),
         4) as contention_rate
from (
  select r.tenant_id, r.started_at, r.status, r.error, r.worker_id, r.lock_token,
         pg_catalog.lag(r.worker_id) over (partition by r.tenant_id, (r.lock_token is not null) order by r.lock_token) as previous_worker
  from public.agent_autonomous_runs r
  where r.lock_token is not null or r.status in ('skipped', 'abandoned')
) x
join public.tenants t on t.id = x.tenant_id
group by x.tenant_id, (x.started_at at time zone t.timezone)::date;

comment on view public.monitoring_lock_contention is
  'Leases granted (distinct fencing tokens), worker handovers, overlap skips and abandoned runs per tenant per day (tenant time zone).';

-- ---------------------------------------------------------------------------------------------------
-- Privileges: revoke first (Supabase's default privileges give the API roles everything on new relations in
-- public), then reading only, for members and the service role.
-- ---------------------------------------------------------------------------------------------------

revoke all on table public.monitoring_run_success, public.monitoring_engagement_compliance, public.monitoring_policy_violations,
  public.monitoring_order_throughput, public.monitoring_lock_contention from public, anon, authenticated, service_role;
grant select on table public.monitoring_run_success, public.monitoring_engagement_compliance, public.monitoring_policy_violations,
  public.monitoring_order_throughput, public.monitoring_lock_contention to authenticated, service_role;
