-- The autonomous scheduler's state: when each tenant is due (a cron expression in a time zone), who has
-- claimed it, whether it is paused, and the ledger of actions that makes every side effect happen once.

-- ---------------------------------------------------------------------------------------------------
-- Per-tenant schedule. Workers claim due rows with FOR UPDATE SKIP LOCKED, so any number of workers on any
-- number of machines share the tenants through this table alone. A claim lasts as long as the cycle's
-- lease (claimed_until is extended with it); a crashed worker's claim lapses and another worker takes over.
-- ---------------------------------------------------------------------------------------------------

create table public.agent_tenant_schedules (
  tenant_id uuid primary key references public.tenants (id) on delete cascade,
  -- Five-field cron (minute hour day-of-month month day-of-week); validated by the application on save.
  cron text not null default '0 * * * *' check (pg_catalog.btrim(cron) <> ''),
  -- IANA zone the cron is read in; null means the tenant's own time zone.
  timezone text check (timezone is null or hourglass.is_iana_timezone(timezone)),
  next_due_at timestamptz not null,
  last_scheduled_for timestamptz,
  claimed_by text,
  claimed_until timestamptz,
  paused boolean not null default false,
  paused_reason text,
  paused_at timestamptz,
  paused_by text,
  consecutive_failures integer not null default 0 check (consecutive_failures >= 0),
  auto_pause_after_failures integer not null default 3 check (auto_pause_after_failures > 0),
  max_actions_per_cycle integer not null default 50 check (max_actions_per_cycle >= 0),
  max_actions_per_day integer not null default 500 check (max_actions_per_day >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (paused = (paused_at is not null))
);

-- The claim query: due, unpaused tenants in due order. A range scan whose cost follows the number of due
-- tenants, not the number of tenants.
create index idx_tenant_schedules_due on public.agent_tenant_schedules (next_due_at) where not paused;

-- Every tenant gets a schedule when it is created: hourly, first due at the next full hour.
create function hourglass.create_tenant_schedule() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.agent_tenant_schedules (tenant_id, next_due_at)
  values (new.id, pg_catalog.date_trunc('hour', hourglass.now()) + interval '1 hour')
  on conflict (tenant_id) do nothing;
  return new;
end
$$;
revoke execute on function hourglass.create_tenant_schedule() from public, anon, authenticated;

create trigger tenants_create_schedule after insert on public.tenants
  for each row execute function hourglass.create_tenant_schedule();

insert into public.agent_tenant_schedules (tenant_id, next_due_at)
select t.id, pg_catalog.date_trunc('hour', hourglass.now()) + interval '1 hour' from public.tenants t
on conflict (tenant_id) do nothing;

-- ---------------------------------------------------------------------------------------------------
-- The global kill switch: one row; when paused no worker claims a tenant or takes any action.
-- ---------------------------------------------------------------------------------------------------

create table hourglass.agent_control (
  singleton boolean primary key default true check (singleton),
  paused boolean not null default false,
  reason text,
  set_at timestamptz not null default now(),
  set_by text
);
insert into hourglass.agent_control (singleton, paused) values (true, false);
revoke all on table hourglass.agent_control from public, anon, authenticated;
grant select, update on table hourglass.agent_control to service_role;

-- ---------------------------------------------------------------------------------------------------
-- The action ledger. Every action a cycle takes has an idempotency key (tenant, hour, kind, target); its row
-- is written in the same transaction as the action's effect, so a retried, resumed or replayed cycle finds
-- the key done and never repeats the effect.
-- ---------------------------------------------------------------------------------------------------

create table public.agent_actions (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  run_id uuid,
  idempotency_key text not null check (pg_catalog.btrim(idempotency_key) <> ''),
  hour_bucket timestamptz not null,
  kind text not null check (pg_catalog.btrim(kind) <> ''),
  target_type text,
  target_id uuid,
  priority numeric not null default 0,
  reason text not null,
  payload jsonb not null default '{}'::jsonb,
  decision text check (decision in ('allow', 'warn', 'require_approval', 'deny')),
  status text not null check (status in ('succeeded', 'failed', 'blocked')),
  attempts integer not null default 1 check (attempts > 0),
  result jsonb,
  error text,
  created_at timestamptz not null default now(),
  completed_at timestamptz not null default now(),
  unique (tenant_id, idempotency_key),
  foreign key (tenant_id, run_id) references public.agent_autonomous_runs (tenant_id, id) on delete set null (run_id)
);

create index idx_agent_actions_tenant_run on public.agent_actions (tenant_id, run_id) where run_id is not null;
-- The daily budget counts a tenant's actions since its local midnight.
create index idx_agent_actions_tenant_completed on public.agent_actions (tenant_id, completed_at) where status = 'succeeded';

-- ---------------------------------------------------------------------------------------------------
-- Grants and RLS: members read their schedule and actions; pausing and everything else goes through the
-- service role (the API checks the member's role before it acts).
-- ---------------------------------------------------------------------------------------------------

revoke all on table public.agent_tenant_schedules, public.agent_actions from anon, authenticated;
grant select on table public.agent_tenant_schedules, public.agent_actions to authenticated;
grant select, insert, update, delete on table public.agent_tenant_schedules, public.agent_actions to service_role;

select hourglass.enable_tenant_isolation(t)
from pg_catalog.unnest(array['public.agent_tenant_schedules', 'public.agent_actions']::regclass[]) t;
