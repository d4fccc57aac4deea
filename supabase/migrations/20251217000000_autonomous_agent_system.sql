-- The autonomous agent system: the ten tables, four helper functions, seven indexes and the row-level
-- security described in the customer's migration report (2025-12-17), with the schema contract's columns.
-- Columns beyond the report's say why next to them.

-- ===================================================================================================
-- P0.1 Autonomous scheduler
-- ===================================================================================================

create table public.agent_autonomous_runs (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  status text not null default 'running'
    check (status in ('running', 'completed', 'partial', 'failed', 'abandoned', 'skipped')),
  trigger text not null default 'schedule' check (trigger in ('schedule', 'manual', 'catch_up')),
  scheduled_for timestamptz,
  started_at timestamptz not null default now(),
  completed_at timestamptz,
  plan_output jsonb,
  act_output jsonb,
  react_output jsonb,
  reflect_output jsonb,
  cycle_metrics jsonb not null default '{}'::jsonb,
  actions_planned integer not null default 0 check (actions_planned >= 0),
  actions_taken integer not null default 0 check (actions_taken >= 0),
  actions_blocked integer not null default 0 check (actions_blocked >= 0),
  error text,
  worker_id text,
  -- The fencing token of the lease the run was made under (agent_tenant_locks.lock_token).
  lock_token bigint,
  created_at timestamptz not null default now(),
  unique (tenant_id, id),
  check (status = 'running' or completed_at is not null)
);

create index idx_autonomous_runs_tenant_status
  on public.agent_autonomous_runs (tenant_id, status, started_at desc);
create index idx_autonomous_runs_running
  on public.agent_autonomous_runs (tenant_id, started_at)
  where status = 'running';

-- Fencing tokens: every grant of a lock takes the next value, so a later holder always has a larger token
-- than any earlier one, across all tenants and lock types.
create sequence public.agent_tenant_lock_token_seq as bigint;

create table public.agent_tenant_locks (
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  lock_type text not null default 'autonomous_cycle' check (pg_catalog.btrim(lock_type) <> ''),
  locked_by text not null check (pg_catalog.btrim(locked_by) <> ''),
  locked_at timestamptz not null default now(),
  expires_at timestamptz not null,
  lock_token bigint not null default pg_catalog.nextval('public.agent_tenant_lock_token_seq'::regclass),
  created_at timestamptz not null default now(),
  primary key (tenant_id, lock_type),
  check (expires_at > locked_at)
);

create index idx_tenant_locks_expires on public.agent_tenant_locks (expires_at);

-- ===================================================================================================
-- P0.4 21-day engagement engine
-- ===================================================================================================

create table public.engagement_clocks (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  entity_type text not null check (entity_type in ('contact', 'account')),
  entity_id uuid not null,
  last_touch_at timestamptz,
  last_touch_type text,
  last_touch_by text,
  last_card_id uuid,
  next_touch_due timestamptz not null,
  touch_frequency_days integer not null default 21 check (touch_frequency_days > 0),
  touch_count integer not null default 0 check (touch_count >= 0),
  compliance_status text not null default 'compliant'
    check (compliance_status in ('compliant', 'due_soon', 'overdue')),
  days_overdue integer not null default 0 check (days_overdue >= 0),
  priority_score numeric not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, entity_type, entity_id),
  -- Days overdue are counted only for overdue clocks; refresh_engagement_compliance relies on this to skip
  -- compliant clocks that are not yet due.
  check (days_overdue = 0 or compliance_status = 'overdue'),
  foreign key (tenant_id, last_card_id) references public.cards (tenant_id, id) on delete set null (last_card_id)
);

create index idx_engagement_clocks_tenant_due on public.engagement_clocks (tenant_id, next_touch_due);
-- Clocks whose status may need to go back to compliant; with the index above, lets a refresh visit only
-- the clocks that can change (see refresh_engagement_compliance).
create index idx_engagement_clocks_tenant_noncompliant on public.engagement_clocks (tenant_id)
  where compliance_status <> 'compliant';
create index idx_engagement_clocks_tenant_card on public.engagement_clocks (tenant_id, last_card_id)
  where last_card_id is not null;

-- ===================================================================================================
-- P0.3 Policy enforcement
-- ===================================================================================================

create table public.agent_policy_violations (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  run_id uuid,
  policy_key text not null check (pg_catalog.btrim(policy_key) <> ''),
  action_type text not null,
  action jsonb not null default '{}'::jsonb,
  decision text not null check (decision in ('deny', 'require_approval', 'warn')),
  severity text not null default 'warning' check (severity in ('info', 'warning', 'error', 'critical')),
  blocked boolean not null default true,
  message text,
  created_at timestamptz not null default now(),
  foreign key (tenant_id, run_id) references public.agent_autonomous_runs (tenant_id, id) on delete set null (run_id)
);

create index idx_policy_violations_tenant on public.agent_policy_violations (tenant_id, created_at desc);
create index idx_policy_violations_tenant_run on public.agent_policy_violations (tenant_id, run_id)
  where run_id is not null;

-- ===================================================================================================
-- P0.5 Order processing
-- ===================================================================================================

create table public.order_processing_queue (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  order_id uuid not null,
  status text not null default 'pending'
    check (status in ('pending', 'processing', 'validated', 'needs_approval', 'exception', 'cancelled')),
  pricing_status text not null default 'pending'
    check (pricing_status in ('pending', 'passed', 'failed', 'fixed', 'skipped')),
  credit_status text not null default 'pending'
    check (credit_status in ('pending', 'passed', 'failed', 'fixed', 'skipped')),
  requirements_status text not null default 'pending'
    check (requirements_status in ('pending', 'passed', 'failed', 'fixed', 'skipped')),
  auto_fix_attempts integer not null default 0 check (auto_fix_attempts >= 0),
  max_auto_fix_attempts integer not null default 3 check (max_auto_fix_attempts >= 0),
  validation_results jsonb not null default '{}'::jsonb,
  priority integer not null default 0,
  claimed_by text,
  claimed_until timestamptz,
  processed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, id),
  -- One queue entry per order: a changed order goes back to pending in the same row.
  unique (tenant_id, order_id),
  foreign key (tenant_id, order_id) references public.orders (tenant_id, id) on delete cascade
);

create index idx_order_processing_pending on public.order_processing_queue (tenant_id, priority desc, created_at)
  where status = 'pending';

create table public.order_processing_exceptions (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  queue_id uuid not null,
  order_id uuid not null,
  exception_type text not null check (pg_catalog.btrim(exception_type) <> ''),
  severity text not null default 'error' check (severity in ('info', 'warning', 'error', 'critical')),
  details jsonb not null default '{}'::jsonb,
  resolution_status text not null default 'open'
    check (resolution_status in ('open', 'in_review', 'resolved', 'dismissed')),
  resolved_by text,
  resolved_at timestamptz,
  resolution_notes text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (tenant_id, queue_id) references public.order_processing_queue (tenant_id, id) on delete cascade,
  foreign key (tenant_id, order_id) references public.orders (tenant_id, id) on delete cascade,
  check ((resolution_status in ('resolved', 'dismissed')) = (resolved_at is not null))
);

create index idx_order_exceptions_tenant_status on public.order_processing_exceptions (tenant_id, resolution_status, created_at);
create index idx_order_exceptions_tenant_queue on public.order_processing_exceptions (tenant_id, queue_id);
create index idx_order_exceptions_tenant_order on public.order_processing_exceptions (tenant_id, order_id);

-- ===================================================================================================
-- P2.1 Data warehouse
-- ===================================================================================================

create table public.warehouse_events (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  event_type text not null check (pg_catalog.btrim(event_type) <> ''),
  entity_type text,
  entity_id uuid,
  payload jsonb not null default '{}'::jsonb,
  source text not null default 'hourglass',
  idempotency_key text,
  occurred_at timestamptz not null default now(),
  created_at timestamptz not null default now()
);

create index idx_warehouse_events_tenant_type on public.warehouse_events (tenant_id, event_type, occurred_at desc);
create unique index uq_warehouse_events_tenant_idempotency on public.warehouse_events (tenant_id, idempotency_key)
  where idempotency_key is not null;
create index idx_warehouse_events_tenant_entity on public.warehouse_events (tenant_id, entity_type, entity_id, occurred_at desc);

create table public.client_patterns (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  entity_type text not null check (entity_type in ('contact', 'account', 'tenant')),
  entity_id uuid not null,
  pattern_type text not null check (pg_catalog.btrim(pattern_type) <> ''),
  pattern_data jsonb not null default '{}'::jsonb,
  confidence numeric not null default 0 check (confidence >= 0 and confidence <= 1),
  evidence_count integer not null default 0 check (evidence_count >= 0),
  is_active boolean not null default true,
  first_detected_at timestamptz not null default now(),
  last_confirmed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, entity_type, entity_id, pattern_type)
);

create table public.success_strategies (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  strategy_key text not null check (pg_catalog.btrim(strategy_key) <> ''),
  name text not null,
  description text,
  applies_to jsonb not null default '{}'::jsonb,
  action_template jsonb not null default '{}'::jsonb,
  effectiveness_score numeric not null default 0 check (effectiveness_score >= 0 and effectiveness_score <= 1),
  usage_count integer not null default 0 check (usage_count >= 0),
  success_count integer not null default 0 check (success_count >= 0),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, strategy_key),
  check (success_count <= usage_count)
);

-- ===================================================================================================
-- Hourly reflection records
-- ===================================================================================================

create table public.agent_hourly_reflections (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  run_id uuid,
  hour_bucket timestamptz not null check (hour_bucket = pg_catalog.date_trunc('hour', hour_bucket, 'UTC')),
  what_we_did jsonb not null default '[]'::jsonb,
  what_moved jsonb not null default '{}'::jsonb,
  what_got_blocked jsonb not null default '[]'::jsonb,
  what_we_will_try_next jsonb not null default '[]'::jsonb,
  hypotheses jsonb not null default '[]'::jsonb,
  insights jsonb not null default '[]'::jsonb,
  summary text,
  created_at timestamptz not null default now(),
  unique (tenant_id, hour_bucket),
  foreign key (tenant_id, run_id) references public.agent_autonomous_runs (tenant_id, id) on delete set null (run_id)
);

create index idx_hourly_reflections_tenant_run on public.agent_hourly_reflections (tenant_id, run_id)
  where run_id is not null;

-- Cards created by a run point back at it.
alter table public.cards
  add constraint cards_run_fkey foreign key (tenant_id, run_id)
  references public.agent_autonomous_runs (tenant_id, id) on delete set null (run_id);

-- ===================================================================================================
-- Helper functions. SECURITY INVOKER throughout: the caller's own privileges and RLS apply. Functions users
-- may call first check that the caller may act for the tenant (hourglass.assert_tenant_access); the lock
-- functions, executable by the service role alone, check only that the tenant exists, since they run on
-- every lease grant and release (docs/benchmarks.md).
-- ===================================================================================================

-- Takes a tenant-level lock; true only if this call took it. Not re-entrant: a holder asking again gets
-- false (renew_tenant_lock extends a held lease). The work is done by acquire_tenant_lease, which also
-- returns the fencing token.
create function public.acquire_tenant_lease(
  p_tenant_id uuid,
  p_locked_by text,
  p_lock_type text default 'autonomous_cycle',
  p_lock_duration_minutes integer default 30
) returns bigint
language plpgsql volatile set search_path = ''
as $$
declare
  v_now timestamptz;
  v_token bigint;
begin
  -- Executable by the service role only (see the grants below), so the tenant check is existence alone.
  if p_tenant_id is null then
    raise exception using errcode = '22004', message = 'acquire_tenant_lock: p_tenant_id must not be null';
  end if;
  if not exists (select 1 from public.tenants t where t.id = p_tenant_id) then
    raise exception using errcode = '23503', message = pg_catalog.format('acquire_tenant_lock: unknown tenant %s', p_tenant_id);
  end if;
  if p_locked_by is null or pg_catalog.btrim(p_locked_by) = '' then
    raise exception using errcode = '22023', message = 'acquire_tenant_lock: p_locked_by must name the holder (empty given)';
  end if;
  if p_lock_type is null or pg_catalog.btrim(p_lock_type) = '' then
    raise exception using errcode = '22023', message = 'acquire_tenant_lock: p_lock_type must not be empty';
  end if;
  if p_lock_duration_minutes is null or p_lock_duration_minutes <= 0 then
    raise exception using errcode = '22023',
      message = pg_catalog.format('acquire_tenant_lock: p_lock_duration_minutes must be > 0 (got %s)', coalesce(p_lock_duration_minutes::text, 'null'));
  end if;

  v_now := hourglass.now();

  -- Clean up the tenant's expired locks. SKIP LOCKED: an expired lock whose holder still has a write in
  -- flight (assert_lock_token holds it FOR KEY SHARE) is left alone, and the insert below then finds it and
  -- returns no grant; the caller retries once that write has committed or rolled back. This keeps the
  -- fencing guarantee without ever blocking.
  delete from public.agent_tenant_locks l
  where (l.tenant_id, l.lock_type) in (
    select e.tenant_id, e.lock_type from public.agent_tenant_locks e
    where e.tenant_id = p_tenant_id and e.expires_at <= v_now
    for update skip locked);

  -- ON CONFLICT DO NOTHING makes concurrent callers safe: the unique key (tenant_id, lock_type) admits one
  -- row, and a racing insert waits for the first to commit, then takes no action.
  insert into public.agent_tenant_locks as l (tenant_id, lock_type, locked_by, locked_at, expires_at, lock_token)
  values (p_tenant_id, p_lock_type, p_locked_by, v_now, v_now + pg_catalog.make_interval(mins => p_lock_duration_minutes), 0)
  on conflict (tenant_id, lock_type) do nothing;
  if not found then
    return null;
  end if;

  -- The token is drawn only once the row is ours. Drawn in the INSERT, a caller that waited on a racing
  -- insert could take its value early and be granted later than a caller that drew a larger one, and the
  -- tokens would not increase in grant order (seen under 40 racing connections).
  update public.agent_tenant_locks l
  set lock_token = pg_catalog.nextval('public.agent_tenant_lock_token_seq'::regclass)
  where l.tenant_id = p_tenant_id and l.lock_type = p_lock_type
  returning l.lock_token into v_token;

  return v_token;
end
$$;

create function public.acquire_tenant_lock(
  p_tenant_id uuid,
  p_locked_by text,
  p_lock_type text default 'autonomous_cycle',
  p_lock_duration_minutes integer default 30
) returns boolean
language plpgsql volatile set search_path = ''
as $$
begin
  return public.acquire_tenant_lease(p_tenant_id, p_locked_by, p_lock_type, p_lock_duration_minutes) is not null;
end
$$;

-- Releases the tenant's locks held by p_locked_by; true if one was removed. Another holder's lock stays.
create function public.release_tenant_lock(p_tenant_id uuid, p_locked_by text) returns boolean
language plpgsql volatile set search_path = ''
as $$
declare
  v_row_count integer;
  v_released boolean := false;
begin
  if p_tenant_id is null then
    raise exception using errcode = '22004', message = 'release_tenant_lock: p_tenant_id must not be null';
  end if;
  if p_locked_by is null or pg_catalog.btrim(p_locked_by) = '' then
    raise exception using errcode = '22023', message = 'release_tenant_lock: p_locked_by must name the holder (empty given)';
  end if;

  delete from public.agent_tenant_locks l
  where l.tenant_id = p_tenant_id and l.locked_by = p_locked_by;

  -- The report's fix: GET DIAGNOSTICS takes a plain target, the comparison comes after.
  get diagnostics v_row_count = row_count;
  v_released := v_row_count > 0;
  return v_released;
end
$$;

-- Records a touch on a contact or account, creating its clock on the first touch. Returns the clock's id.
create function public.update_engagement_clock(
  p_tenant_id uuid,
  p_entity_type text,
  p_entity_id uuid,
  p_touch_type text,
  p_touch_by text default 'agent',
  p_card_id uuid default null
) returns uuid
language plpgsql volatile set search_path = ''
as $$
declare
  v_now timestamptz;
  v_frequency integer;
  v_clock_id uuid;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'update_engagement_clock');
  if p_entity_type is null or p_entity_type not in ('contact', 'account') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('update_engagement_clock: p_entity_type must be ''contact'' or ''account'' (got %L)', p_entity_type);
  end if;
  if p_entity_id is null then
    raise exception using errcode = '22004', message = 'update_engagement_clock: p_entity_id must not be null';
  end if;
  if p_touch_type is null or pg_catalog.btrim(p_touch_type) = '' then
    raise exception using errcode = '22023', message = 'update_engagement_clock: p_touch_type must not be empty';
  end if;
  if p_touch_by is null or pg_catalog.btrim(p_touch_by) = '' then
    raise exception using errcode = '22023', message = 'update_engagement_clock: p_touch_by must not be empty';
  end if;
  if p_entity_type = 'contact'
     and not exists (select 1 from public.contacts c where c.tenant_id = p_tenant_id and c.id = p_entity_id) then
    raise exception using errcode = '23503',
      message = pg_catalog.format('update_engagement_clock: contact %s does not exist in tenant %s', p_entity_id, p_tenant_id);
  end if;
  if p_entity_type = 'account'
     and not exists (select 1 from public.accounts a where a.tenant_id = p_tenant_id and a.id = p_entity_id) then
    raise exception using errcode = '23503',
      message = pg_catalog.format('update_engagement_clock: account %s does not exist in tenant %s', p_entity_id, p_tenant_id);
  end if;
  if p_card_id is not null
     and not exists (select 1 from public.cards k where k.tenant_id = p_tenant_id and k.id = p_card_id) then
    raise exception using errcode = '23503',
      message = pg_catalog.format('update_engagement_clock: card %s does not exist in tenant %s', p_card_id, p_tenant_id);
  end if;

  v_now := hourglass.now();
  v_frequency := hourglass.tenant_setting_int(p_tenant_id, 'touch_frequency_days', 21);
  if v_frequency <= 0 then
    v_frequency := 21;
  end if;

  insert into public.engagement_clocks as c (
    tenant_id, entity_type, entity_id, last_touch_at, last_touch_type, last_touch_by, last_card_id,
    next_touch_due, touch_frequency_days, touch_count, compliance_status, days_overdue, created_at, updated_at)
  values (
    p_tenant_id, p_entity_type, p_entity_id, v_now, p_touch_type, p_touch_by, p_card_id,
    v_now + pg_catalog.make_interval(days => v_frequency), v_frequency, 1, 'compliant', 0, v_now, v_now)
  on conflict (tenant_id, entity_type, entity_id) do update set
    last_touch_at = excluded.last_touch_at,
    last_touch_type = excluded.last_touch_type,
    last_touch_by = excluded.last_touch_by,
    last_card_id = excluded.last_card_id,
    -- The clock keeps its own frequency (a per-clock override survives touches).
    next_touch_due = excluded.last_touch_at + pg_catalog.make_interval(days => c.touch_frequency_days),
    touch_count = c.touch_count + 1,
    compliance_status = 'compliant',
    days_overdue = 0,
    updated_at = excluded.updated_at
  returning c.id into v_clock_id;

  return v_clock_id;
end
$$;

-- Recomputes compliance_status and days_overdue for the tenant's clocks and returns how many changed.
-- Only clocks that can change are visited (due within the window, or not compliant now), and only those
-- whose values differ are written, so a refresh after a quiet hour rewrites nothing.
create function public.refresh_engagement_compliance(p_tenant_id uuid) returns integer
language plpgsql volatile set search_path = ''
as $$
declare
  v_now timestamptz;
  v_due_soon timestamptz;
  v_row_count integer;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'refresh_engagement_compliance');

  v_now := hourglass.now();
  v_due_soon := v_now + pg_catalog.make_interval(days => greatest(hourglass.tenant_setting_int(p_tenant_id, 'due_soon_days', 3), 0));

  -- One UPDATE, no self-join: the candidate predicate (due within the window, or not compliant) is served by
  -- idx_engagement_clocks_tenant_due and idx_engagement_clocks_tenant_noncompliant, and IS DISTINCT FROM
  -- leaves unchanged rows unwritten. (A CTE joined back on id made the planner hash the tenant's every row.)
  update public.engagement_clocks c
  set compliance_status = case
        when c.next_touch_due < v_now then 'overdue'
        when c.next_touch_due <= v_due_soon then 'due_soon'
        else 'compliant'
      end,
      days_overdue = case
        when c.next_touch_due < v_now then pg_catalog.floor(extract(epoch from (v_now - c.next_touch_due)) / 86400)::integer
        else 0
      end,
      updated_at = v_now
  where c.tenant_id = p_tenant_id
    and (c.next_touch_due <= v_due_soon or c.compliance_status <> 'compliant')
    and (c.compliance_status, c.days_overdue) is distinct from (
      case
        when c.next_touch_due < v_now then 'overdue'
        when c.next_touch_due <= v_due_soon then 'due_soon'
        else 'compliant'
      end,
      case
        when c.next_touch_due < v_now then pg_catalog.floor(extract(epoch from (v_now - c.next_touch_due)) / 86400)::integer
        else 0
      end);

  get diagnostics v_row_count = row_count;
  return v_row_count;
end
$$;

-- ===================================================================================================
-- Privileges. Functions are executable only by the roles named here (PostgreSQL grants EXECUTE to PUBLIC
-- by default). Locks are the worker's business: the service role only.
-- ===================================================================================================

revoke execute on function public.acquire_tenant_lease(uuid, text, text, integer),
  public.acquire_tenant_lock(uuid, text, text, integer),
  public.release_tenant_lock(uuid, text),
  public.update_engagement_clock(uuid, text, uuid, text, text, uuid),
  public.refresh_engagement_compliance(uuid) from public, anon, authenticated;
grant execute on function public.acquire_tenant_lease(uuid, text, text, integer),
  public.acquire_tenant_lock(uuid, text, text, integer),
  public.release_tenant_lock(uuid, text),
  public.update_engagement_clock(uuid, text, uuid, text, text, uuid),
  public.refresh_engagement_compliance(uuid) to service_role;
-- Members record touches and refresh their own tenant's compliance (e.g. from the app).
grant execute on function public.update_engagement_clock(uuid, text, uuid, text, text, uuid),
  public.refresh_engagement_compliance(uuid) to authenticated;

revoke all on sequence public.agent_tenant_lock_token_seq from public, anon, authenticated;
grant usage, select on sequence public.agent_tenant_lock_token_seq to service_role;

-- Table privileges: users read what the agent records and change only what is theirs to change; the
-- worker (service role) does everything. RLS then confines users to their tenants' rows. Revoke first:
-- Supabase's default privileges give the API roles everything on new tables, TRUNCATE included.
revoke all on table public.agent_autonomous_runs, public.agent_tenant_locks, public.engagement_clocks,
  public.agent_policy_violations, public.order_processing_queue, public.order_processing_exceptions,
  public.warehouse_events, public.client_patterns, public.success_strategies,
  public.agent_hourly_reflections from anon, authenticated;
grant select on table public.agent_autonomous_runs, public.agent_tenant_locks, public.agent_policy_violations,
  public.client_patterns, public.agent_hourly_reflections to authenticated;
grant select, insert, update on table public.engagement_clocks, public.order_processing_queue,
  public.warehouse_events, public.success_strategies to authenticated;
grant select, update on table public.order_processing_exceptions to authenticated;
grant select, insert, update, delete on table public.agent_autonomous_runs, public.agent_tenant_locks,
  public.engagement_clocks, public.agent_policy_violations, public.order_processing_queue,
  public.order_processing_exceptions, public.warehouse_events, public.client_patterns,
  public.success_strategies, public.agent_hourly_reflections to service_role;

-- ===================================================================================================
-- Row-level security: tenant isolation for members, bypass for the service role, on all ten tables.
-- ===================================================================================================

select hourglass.enable_tenant_isolation(t)
from pg_catalog.unnest(array['public.agent_autonomous_runs', 'public.agent_tenant_locks', 'public.engagement_clocks',
  'public.agent_policy_violations', 'public.order_processing_queue', 'public.order_processing_exceptions',
  'public.warehouse_events', 'public.client_patterns', 'public.success_strategies',
  'public.agent_hourly_reflections']::regclass[]) t;
