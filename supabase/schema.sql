-- The database schema as the migrations (supabase/migrations) leave it. GENERATED: do not edit.
-- Regenerate after adding a migration, from the repository's root:
--   dotnet run --project src/Hourglass.Server -- db schema --out supabase/schema.sql
-- and check it is current with '... db schema --check' (a test fails when it is stale).
-- Written from the catalogs of a freshly migrated database, normalised to read the same on PostgreSQL 15, 17
-- and 18: schemas hourglass and public; objects sorted by name; no owners, OIDs or versions; grants are the
-- privileges held besides the owner's (defaults included: a privilege not listed is not held). See docs/schema.md.

-- schema hourglass
create schema hourglass;
grant usage on schema hourglass to anon;
grant usage on schema hourglass to authenticated;
grant usage on schema hourglass to service_role;

-- schema public
create schema public;
grant usage on schema public to public;
comment on schema public is 'standard public schema';

-- type hourglass.event_line
create type hourglass.event_line as (
  line integer,
  id uuid,
  event_type text,
  entity_type text,
  entity_id uuid,
  payload jsonb,
  source text,
  occurred_at timestamp with time zone,
  explicit_time boolean,
  idempotency_key text,
  status text,
  error text
);
grant usage on type hourglass.event_line to authenticated;
grant usage on type hourglass.event_line to public;
grant usage on type hourglass.event_line to service_role;

-- type hourglass.touch_line
create type hourglass.touch_line as (
  line integer,
  entity_type text,
  entity_id uuid,
  account_id uuid,
  touch_type text,
  touch_by text,
  source text,
  occurred_at timestamp with time zone,
  idempotency_key text,
  status text,
  error text
);
grant usage on type hourglass.touch_line to authenticated;
grant usage on type hourglass.touch_line to public;
grant usage on type hourglass.touch_line to service_role;

-- sequence hourglass.order_claim_tokens
create sequence hourglass.order_claim_tokens as bigint increment by 1 minvalue 1 maxvalue 9223372036854775807 start with 1 cache 1;
grant usage on sequence hourglass.order_claim_tokens to service_role;

-- sequence public.agent_tenant_lock_token_seq
create sequence public.agent_tenant_lock_token_seq as bigint increment by 1 minvalue 1 maxvalue 9223372036854775807 start with 1 cache 1;
grant select, usage on sequence public.agent_tenant_lock_token_seq to service_role;

-- table hourglass.agent_control
create table hourglass.agent_control (
  singleton boolean default true not null,
  paused boolean default false not null,
  reason text,
  set_at timestamp with time zone default now() not null,
  set_by text
);
alter table hourglass.agent_control add constraint agent_control_pkey PRIMARY KEY (singleton);
alter table hourglass.agent_control add constraint agent_control_singleton_check CHECK (singleton);
grant select, update on table hourglass.agent_control to service_role;

-- table hourglass.clock_override
create table hourglass.clock_override (
  singleton boolean default true not null,
  frozen_at timestamp with time zone not null,
  set_at timestamp with time zone default now() not null,
  set_by text default CURRENT_USER not null
);
alter table hourglass.clock_override add constraint clock_override_pkey PRIMARY KEY (singleton);
alter table hourglass.clock_override add constraint clock_override_singleton_check CHECK (singleton);
grant select on table hourglass.clock_override to service_role;

-- table hourglass.event_frontier
create table hourglass.event_frontier (
  singleton boolean default true not null,
  safe_seq bigint default 0 not null,
  updated_at timestamp with time zone default now() not null,
  gap_horizon bigint,
  gap_writers text[]
);
alter table hourglass.event_frontier add constraint event_frontier_pkey PRIMARY KEY (singleton);
alter table hourglass.event_frontier add constraint event_frontier_singleton_check CHECK (singleton);
grant select, update on table hourglass.event_frontier to service_role;

-- table hourglass.function_capabilities
create table hourglass.function_capabilities (
  function_name text not null,
  capability text not null
);
alter table hourglass.function_capabilities add constraint function_capabilities_capability_check CHECK (hourglass.is_capability_list(ARRAY[capability]));
alter table hourglass.function_capabilities add constraint function_capabilities_pkey PRIMARY KEY (function_name);
grant select on table hourglass.function_capabilities to service_role;

-- table hourglass.timezones
create table hourglass.timezones (
  name text not null
);
alter table hourglass.timezones add constraint timezones_pkey PRIMARY KEY (name);
grant select on table hourglass.timezones to authenticated;
grant select on table hourglass.timezones to service_role;

-- table public.accounts
create table public.accounts (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  name text not null,
  tier text,
  segment text,
  owner_user_id uuid,
  credit_limit numeric,
  payment_terms_days integer,
  timezone text,
  do_not_contact boolean default false not null,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  credit_hold boolean default false not null,
  requires_po boolean default false not null,
  default_ship_to jsonb,
  open_balance numeric default 0 not null
);
alter table public.accounts add constraint accounts_credit_limit_check CHECK (((credit_limit IS NULL) OR (credit_limit >= (0)::numeric)));
alter table public.accounts add constraint accounts_default_ship_to_check CHECK (((default_ship_to IS NULL) OR (jsonb_typeof(default_ship_to) = 'object'::text)));
alter table public.accounts add constraint accounts_name_check CHECK ((btrim(name) <> ''::text));
alter table public.accounts add constraint accounts_open_balance_check CHECK ((open_balance >= (0)::numeric));
alter table public.accounts add constraint accounts_payment_terms_days_check CHECK (((payment_terms_days IS NULL) OR (payment_terms_days >= 0)));
alter table public.accounts add constraint accounts_pkey PRIMARY KEY (id);
alter table public.accounts add constraint accounts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.accounts add constraint accounts_tenant_id_id_key UNIQUE (tenant_id, id);
alter table public.accounts add constraint accounts_timezone_check CHECK (((timezone IS NULL) OR hourglass.is_iana_timezone(timezone)));
CREATE TRIGGER accounts_engagement_class AFTER UPDATE OF tier, segment ON public.accounts FOR EACH ROW WHEN (((old.tier IS DISTINCT FROM new.tier) OR (old.segment IS DISTINCT FROM new.segment))) EXECUTE FUNCTION hourglass.on_account_class_change();
CREATE TRIGGER accounts_engagement_clock AFTER INSERT ON public.accounts FOR EACH ROW EXECUTE FUNCTION hourglass.create_engagement_clock();
CREATE TRIGGER accounts_engagement_clock_delete AFTER DELETE ON public.accounts FOR EACH ROW EXECUTE FUNCTION hourglass.delete_engagement_clock();
alter table public.accounts enable row level security;
create policy capability_delete on public.accounts as restrictive for delete to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_insert on public.accounts as restrictive for insert to authenticated
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_update on public.accounts as restrictive for update to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy service_role_bypass on public.accounts as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.accounts as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.accounts to authenticated;
grant delete, insert, select, update on table public.accounts to service_role;

-- table public.agent_actions
create table public.agent_actions (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  run_id uuid,
  idempotency_key text not null,
  hour_bucket timestamp with time zone not null,
  kind text not null,
  target_type text,
  target_id uuid,
  priority numeric default 0 not null,
  reason text not null,
  payload jsonb default '{}'::jsonb not null,
  decision text,
  status text not null,
  attempts integer default 1 not null,
  result jsonb,
  error text,
  created_at timestamp with time zone default now() not null,
  completed_at timestamp with time zone default now() not null,
  strategy_judged_at timestamp with time zone,
  previous_attempts jsonb default '[]'::jsonb not null
);
alter table public.agent_actions add constraint agent_actions_attempts_check CHECK ((attempts > 0));
alter table public.agent_actions add constraint agent_actions_decision_check CHECK ((decision = ANY (ARRAY['allow'::text, 'warn'::text, 'require_approval'::text, 'deny'::text])));
alter table public.agent_actions add constraint agent_actions_idempotency_key_check CHECK ((btrim(idempotency_key) <> ''::text));
alter table public.agent_actions add constraint agent_actions_kind_check CHECK ((btrim(kind) <> ''::text));
alter table public.agent_actions add constraint agent_actions_pkey PRIMARY KEY (id);
alter table public.agent_actions add constraint agent_actions_previous_attempts_check CHECK ((jsonb_typeof(previous_attempts) = 'array'::text));
alter table public.agent_actions add constraint agent_actions_status_check CHECK ((status = ANY (ARRAY['succeeded'::text, 'failed'::text, 'blocked'::text])));
alter table public.agent_actions add constraint agent_actions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.agent_actions add constraint agent_actions_tenant_id_idempotency_key_key UNIQUE (tenant_id, idempotency_key);
alter table public.agent_actions add constraint agent_actions_tenant_id_run_id_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES public.agent_autonomous_runs(tenant_id, id) ON DELETE SET NULL (run_id);
CREATE INDEX idx_agent_actions_strategy_unjudged ON public.agent_actions USING btree (tenant_id, completed_at) WHERE ((status = 'succeeded'::text) AND (payload ? 'strategy_key'::text) AND (strategy_judged_at IS NULL));
CREATE INDEX idx_agent_actions_strategy_unjudged_target ON public.agent_actions USING btree (tenant_id, target_id) WHERE ((status = 'succeeded'::text) AND (payload ? 'strategy_key'::text) AND (strategy_judged_at IS NULL));
CREATE INDEX idx_agent_actions_tenant_completed ON public.agent_actions USING btree (tenant_id, completed_at) WHERE (status = 'succeeded'::text);
CREATE INDEX idx_agent_actions_tenant_run ON public.agent_actions USING btree (tenant_id, run_id) WHERE (run_id IS NOT NULL);
alter table public.agent_actions enable row level security;
create policy service_role_bypass on public.agent_actions as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.agent_actions as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.agent_actions to service_role;
grant select on table public.agent_actions to authenticated;

-- table public.agent_autonomous_runs
create table public.agent_autonomous_runs (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  status text default 'running'::text not null,
  trigger text default 'schedule'::text not null,
  scheduled_for timestamp with time zone,
  started_at timestamp with time zone default now() not null,
  completed_at timestamp with time zone,
  plan_output jsonb,
  act_output jsonb,
  react_output jsonb,
  reflect_output jsonb,
  cycle_metrics jsonb default '{}'::jsonb not null,
  actions_planned integer default 0 not null,
  actions_taken integer default 0 not null,
  actions_blocked integer default 0 not null,
  error text,
  worker_id text,
  lock_token bigint,
  created_at timestamp with time zone default now() not null,
  dry_run boolean generated always as (COALESCE(((cycle_metrics -> 'dry_run'::text) = 'true'::jsonb), false)) stored not null
);
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_act_output_status_check CHECK (((act_output IS NULL) OR (NOT jsonb_path_exists(act_output, '$."actions"[*]?((!(exists (@."status")) || @."status".type() != "string") || !((((@."status" == "succeeded" || @."status" == "failed") || @."status" == "blocked") || @."status" == "already_done") || @."status" == "would_run"))'::jsonpath))));
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_actions_blocked_check CHECK ((actions_blocked >= 0));
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_actions_planned_check CHECK ((actions_planned >= 0));
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_actions_taken_check CHECK ((actions_taken >= 0));
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_check CHECK (((status = 'running'::text) OR (completed_at IS NOT NULL)));
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_pkey PRIMARY KEY (id);
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'completed'::text, 'partial'::text, 'failed'::text, 'abandoned'::text, 'skipped'::text])));
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_tenant_id_id_key UNIQUE (tenant_id, id);
alter table public.agent_autonomous_runs add constraint agent_autonomous_runs_trigger_check CHECK ((trigger = ANY (ARRAY['schedule'::text, 'manual'::text, 'catch_up'::text])));
CREATE INDEX idx_autonomous_runs_running ON public.agent_autonomous_runs USING btree (tenant_id, started_at) WHERE (status = 'running'::text);
CREATE INDEX idx_autonomous_runs_tenant_created ON public.agent_autonomous_runs USING btree (tenant_id, created_at DESC, id DESC);
CREATE INDEX idx_autonomous_runs_tenant_status ON public.agent_autonomous_runs USING btree (tenant_id, status, started_at DESC);
alter table public.agent_autonomous_runs enable row level security;
create policy service_role_bypass on public.agent_autonomous_runs as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.agent_autonomous_runs as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.agent_autonomous_runs to service_role;
grant select on table public.agent_autonomous_runs to authenticated;
comment on column public.agent_autonomous_runs.dry_run is 'True for a dry run (plan and policy decisions only, no side effects). Generated from cycle_metrics.dry_run.';

-- table public.agent_hourly_reflections
create table public.agent_hourly_reflections (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  run_id uuid,
  hour_bucket timestamp with time zone not null,
  what_we_did jsonb default '[]'::jsonb not null,
  what_moved jsonb default '{}'::jsonb not null,
  what_got_blocked jsonb default '[]'::jsonb not null,
  what_we_will_try_next jsonb default '[]'::jsonb not null,
  hypotheses jsonb default '[]'::jsonb not null,
  insights jsonb default '[]'::jsonb not null,
  summary text,
  created_at timestamp with time zone default now() not null,
  runs jsonb default '{}'::jsonb not null,
  run_ids uuid[] default '{}'::uuid[] not null
);
alter table public.agent_hourly_reflections add constraint agent_hourly_reflections_hour_bucket_check CHECK ((hour_bucket = date_trunc('hour'::text, hour_bucket, 'UTC'::text)));
alter table public.agent_hourly_reflections add constraint agent_hourly_reflections_pkey PRIMARY KEY (id);
alter table public.agent_hourly_reflections add constraint agent_hourly_reflections_runs_check CHECK ((jsonb_typeof(runs) = 'object'::text));
alter table public.agent_hourly_reflections add constraint agent_hourly_reflections_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.agent_hourly_reflections add constraint agent_hourly_reflections_tenant_id_hour_bucket_key UNIQUE (tenant_id, hour_bucket);
alter table public.agent_hourly_reflections add constraint agent_hourly_reflections_tenant_id_run_id_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES public.agent_autonomous_runs(tenant_id, id) ON DELETE SET NULL (run_id);
CREATE INDEX idx_hourly_reflections_tenant_created ON public.agent_hourly_reflections USING btree (tenant_id, created_at DESC, id DESC);
CREATE INDEX idx_hourly_reflections_tenant_run ON public.agent_hourly_reflections USING btree (tenant_id, run_id) WHERE (run_id IS NOT NULL);
CREATE TRIGGER agent_hourly_reflections_rollup BEFORE INSERT OR UPDATE ON public.agent_hourly_reflections FOR EACH ROW EXECUTE FUNCTION hourglass.roll_up_hourly_reflection();
alter table public.agent_hourly_reflections enable row level security;
create policy service_role_bypass on public.agent_hourly_reflections as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.agent_hourly_reflections as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.agent_hourly_reflections to service_role;
grant select on table public.agent_hourly_reflections to authenticated;

-- table public.agent_policy_violations
create table public.agent_policy_violations (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  run_id uuid,
  policy_key text not null,
  action_type text not null,
  action jsonb default '{}'::jsonb not null,
  decision text not null,
  severity text default 'warning'::text not null,
  blocked boolean default true not null,
  message text,
  created_at timestamp with time zone default now() not null,
  policy_version text,
  action_key text,
  rule_kind text
);
alter table public.agent_policy_violations add constraint agent_policy_violations_decision_check CHECK ((decision = ANY (ARRAY['deny'::text, 'require_approval'::text, 'warn'::text])));
alter table public.agent_policy_violations add constraint agent_policy_violations_pkey PRIMARY KEY (id);
alter table public.agent_policy_violations add constraint agent_policy_violations_policy_key_check CHECK ((btrim(policy_key) <> ''::text));
alter table public.agent_policy_violations add constraint agent_policy_violations_severity_check CHECK ((severity = ANY (ARRAY['info'::text, 'warning'::text, 'error'::text, 'critical'::text])));
alter table public.agent_policy_violations add constraint agent_policy_violations_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.agent_policy_violations add constraint agent_policy_violations_tenant_id_run_id_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES public.agent_autonomous_runs(tenant_id, id) ON DELETE SET NULL (run_id);
CREATE INDEX idx_policy_violations_tenant ON public.agent_policy_violations USING btree (tenant_id, created_at DESC);
CREATE INDEX idx_policy_violations_tenant_created ON public.agent_policy_violations USING btree (tenant_id, created_at DESC, id DESC);
CREATE INDEX idx_policy_violations_tenant_rule ON public.agent_policy_violations USING btree (tenant_id, policy_key, created_at DESC);
CREATE INDEX idx_policy_violations_tenant_run ON public.agent_policy_violations USING btree (tenant_id, run_id) WHERE (run_id IS NOT NULL);
CREATE UNIQUE INDEX uq_policy_violations_action_rule ON public.agent_policy_violations USING btree (tenant_id, action_key, policy_key) WHERE (action_key IS NOT NULL);
alter table public.agent_policy_violations enable row level security;
create policy service_role_bypass on public.agent_policy_violations as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.agent_policy_violations as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.agent_policy_violations to service_role;
grant select on table public.agent_policy_violations to authenticated;

-- table public.agent_tenant_locks
create table public.agent_tenant_locks (
  tenant_id uuid not null,
  lock_type text default 'autonomous_cycle'::text not null,
  locked_by text not null,
  locked_at timestamp with time zone default now() not null,
  expires_at timestamp with time zone not null,
  lock_token bigint default nextval('public.agent_tenant_lock_token_seq'::regclass) not null,
  created_at timestamp with time zone default now() not null
);
alter table public.agent_tenant_locks add constraint agent_tenant_locks_check CHECK ((expires_at > locked_at));
alter table public.agent_tenant_locks add constraint agent_tenant_locks_lock_type_check CHECK ((btrim(lock_type) <> ''::text));
alter table public.agent_tenant_locks add constraint agent_tenant_locks_locked_by_check CHECK ((btrim(locked_by) <> ''::text));
alter table public.agent_tenant_locks add constraint agent_tenant_locks_pkey PRIMARY KEY (tenant_id, lock_type);
alter table public.agent_tenant_locks add constraint agent_tenant_locks_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
CREATE INDEX idx_tenant_locks_expires ON public.agent_tenant_locks USING btree (expires_at);
alter table public.agent_tenant_locks enable row level security;
create policy service_role_bypass on public.agent_tenant_locks as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.agent_tenant_locks as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.agent_tenant_locks to service_role;
grant select on table public.agent_tenant_locks to authenticated;

-- table public.agent_tenant_schedules
create table public.agent_tenant_schedules (
  tenant_id uuid not null,
  cron text default '0 * * * *'::text not null,
  timezone text,
  next_due_at timestamp with time zone not null,
  last_scheduled_for timestamp with time zone,
  claimed_by text,
  claimed_until timestamp with time zone,
  paused boolean default false not null,
  paused_reason text,
  paused_at timestamp with time zone,
  paused_by text,
  consecutive_failures integer default 0 not null,
  auto_pause_after_failures integer default 3 not null,
  max_actions_per_cycle integer default 50 not null,
  max_actions_per_day integer default 500 not null,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null
);
alter table public.agent_tenant_schedules add constraint agent_tenant_schedules_auto_pause_after_failures_check CHECK ((auto_pause_after_failures > 0));
alter table public.agent_tenant_schedules add constraint agent_tenant_schedules_check CHECK ((paused = (paused_at IS NOT NULL)));
alter table public.agent_tenant_schedules add constraint agent_tenant_schedules_consecutive_failures_check CHECK ((consecutive_failures >= 0));
alter table public.agent_tenant_schedules add constraint agent_tenant_schedules_cron_check CHECK ((btrim(cron) <> ''::text));
alter table public.agent_tenant_schedules add constraint agent_tenant_schedules_max_actions_per_cycle_check CHECK ((max_actions_per_cycle >= 0));
alter table public.agent_tenant_schedules add constraint agent_tenant_schedules_max_actions_per_day_check CHECK ((max_actions_per_day >= 0));
alter table public.agent_tenant_schedules add constraint agent_tenant_schedules_pkey PRIMARY KEY (tenant_id);
alter table public.agent_tenant_schedules add constraint agent_tenant_schedules_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.agent_tenant_schedules add constraint agent_tenant_schedules_timezone_check CHECK (((timezone IS NULL) OR hourglass.is_iana_timezone(timezone)));
CREATE INDEX idx_tenant_schedules_due ON public.agent_tenant_schedules USING btree (next_due_at) WHERE (NOT paused);
alter table public.agent_tenant_schedules enable row level security;
create policy service_role_bypass on public.agent_tenant_schedules as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.agent_tenant_schedules as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.agent_tenant_schedules to service_role;
grant select on table public.agent_tenant_schedules to authenticated;

-- table public.cards
create table public.cards (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  kind text not null,
  title text not null,
  body text,
  status text default 'open'::text not null,
  entity_type text,
  entity_id uuid,
  run_id uuid,
  assignee_user_id uuid,
  payload jsonb default '{}'::jsonb not null,
  due_at timestamp with time zone,
  completed_at timestamp with time zone,
  completed_by text,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null
);
alter table public.cards add constraint cards_check CHECK (((status = ANY (ARRAY['done'::text, 'dismissed'::text])) = (completed_at IS NOT NULL)));
alter table public.cards add constraint cards_kind_check CHECK ((kind = ANY (ARRAY['touch_task'::text, 'approval'::text, 'exception_review'::text, 'notice'::text])));
alter table public.cards add constraint cards_pkey PRIMARY KEY (id);
alter table public.cards add constraint cards_run_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES public.agent_autonomous_runs(tenant_id, id) ON DELETE SET NULL (run_id);
alter table public.cards add constraint cards_status_check CHECK ((status = ANY (ARRAY['open'::text, 'done'::text, 'dismissed'::text, 'expired'::text])));
alter table public.cards add constraint cards_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.cards add constraint cards_tenant_id_id_key UNIQUE (tenant_id, id);
alter table public.cards add constraint cards_title_check CHECK ((btrim(title) <> ''::text));
CREATE INDEX idx_cards_decided_approval ON public.cards USING btree (tenant_id, ((payload ->> 'action_key'::text))) WHERE ((kind = 'approval'::text) AND (status = ANY (ARRAY['done'::text, 'dismissed'::text])));
CREATE INDEX idx_cards_tenant_approved ON public.cards USING btree (tenant_id, completed_at) WHERE ((kind = 'approval'::text) AND (status = 'done'::text));
CREATE INDEX idx_cards_tenant_created ON public.cards USING btree (tenant_id, created_at DESC, id DESC);
CREATE INDEX idx_cards_tenant_entity ON public.cards USING btree (tenant_id, entity_type, entity_id) WHERE (status = ANY (ARRAY['open'::text, 'dismissed'::text]));
CREATE INDEX idx_cards_tenant_run ON public.cards USING btree (tenant_id, run_id);
CREATE INDEX idx_cards_tenant_status ON public.cards USING btree (tenant_id, status, kind, due_at);
CREATE UNIQUE INDEX uq_cards_open_approval ON public.cards USING btree (tenant_id, ((payload ->> 'action_key'::text))) WHERE ((kind = 'approval'::text) AND (status = 'open'::text));
CREATE UNIQUE INDEX uq_cards_open_touch_task ON public.cards USING btree (tenant_id, entity_type, entity_id) WHERE ((kind = 'touch_task'::text) AND (status = 'open'::text));
alter table public.cards enable row level security;
create policy service_role_bypass on public.cards as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.cards as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.cards to service_role;
grant select on table public.cards to authenticated;

-- table public.client_patterns
create table public.client_patterns (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  entity_type text not null,
  entity_id uuid not null,
  pattern_type text not null,
  pattern_data jsonb default '{}'::jsonb not null,
  confidence numeric default 0 not null,
  evidence_count integer default 0 not null,
  is_active boolean default true not null,
  first_detected_at timestamp with time zone default now() not null,
  last_confirmed_at timestamp with time zone,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null
);
alter table public.client_patterns add constraint client_patterns_confidence_check CHECK (((confidence >= (0)::numeric) AND (confidence <= (1)::numeric)));
alter table public.client_patterns add constraint client_patterns_entity_type_check CHECK ((entity_type = ANY (ARRAY['contact'::text, 'account'::text, 'tenant'::text])));
alter table public.client_patterns add constraint client_patterns_evidence_count_check CHECK ((evidence_count >= 0));
alter table public.client_patterns add constraint client_patterns_pattern_type_check CHECK ((btrim(pattern_type) <> ''::text));
alter table public.client_patterns add constraint client_patterns_pkey PRIMARY KEY (id);
alter table public.client_patterns add constraint client_patterns_tenant_id_entity_type_entity_id_pattern_typ_key UNIQUE (tenant_id, entity_type, entity_id, pattern_type);
alter table public.client_patterns add constraint client_patterns_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
CREATE INDEX idx_client_patterns_tenant_best_time ON public.client_patterns USING btree (tenant_id) WHERE ((pattern_type = 'best_time'::text) AND is_active);
CREATE INDEX idx_client_patterns_tenant_confirmed ON public.client_patterns USING btree (tenant_id, last_confirmed_at) WHERE is_active;
CREATE INDEX idx_client_patterns_tenant_created ON public.client_patterns USING btree (tenant_id, created_at DESC, id DESC);
CREATE INDEX idx_client_patterns_tenant_type ON public.client_patterns USING btree (tenant_id, pattern_type, entity_type);
CREATE TRIGGER client_patterns_derived_guard BEFORE UPDATE ON public.client_patterns FOR EACH ROW WHEN ((current_setting('hourglass.derived_write'::text, true) IS DISTINCT FROM 'on'::text)) EXECUTE FUNCTION hourglass.guard_client_pattern();
alter table public.client_patterns enable row level security;
create policy service_role_bypass on public.client_patterns as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.client_patterns as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.client_patterns to service_role;
grant select on table public.client_patterns to authenticated;

-- table public.contacts
create table public.contacts (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  account_id uuid,
  name text not null,
  email text,
  phone text,
  timezone text,
  do_not_contact boolean default false not null,
  opted_out_at timestamp with time zone,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  opted_out_source text
);
alter table public.contacts add constraint contacts_check CHECK (((opted_out_source IS NULL) OR ((opted_out_at IS NOT NULL) AND (btrim(opted_out_source) <> ''::text))));
alter table public.contacts add constraint contacts_name_check CHECK ((btrim(name) <> ''::text));
alter table public.contacts add constraint contacts_pkey PRIMARY KEY (id);
alter table public.contacts add constraint contacts_tenant_id_account_id_fkey FOREIGN KEY (tenant_id, account_id) REFERENCES public.accounts(tenant_id, id) ON DELETE CASCADE;
alter table public.contacts add constraint contacts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.contacts add constraint contacts_tenant_id_id_key UNIQUE (tenant_id, id);
alter table public.contacts add constraint contacts_timezone_check CHECK (((timezone IS NULL) OR hourglass.is_iana_timezone(timezone)));
CREATE INDEX idx_contacts_tenant_account ON public.contacts USING btree (tenant_id, account_id);
CREATE TRIGGER contacts_engagement_clock AFTER INSERT ON public.contacts FOR EACH ROW EXECUTE FUNCTION hourglass.create_engagement_clock();
CREATE TRIGGER contacts_engagement_clock_delete AFTER DELETE ON public.contacts FOR EACH ROW EXECUTE FUNCTION hourglass.delete_engagement_clock();
CREATE TRIGGER contacts_guard_opt_out BEFORE UPDATE OF opted_out_at ON public.contacts FOR EACH ROW EXECUTE FUNCTION hourglass.guard_contact_opt_out();
alter table public.contacts enable row level security;
create policy capability_delete on public.contacts as restrictive for delete to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_insert on public.contacts as restrictive for insert to authenticated
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_update on public.contacts as restrictive for update to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy service_role_bypass on public.contacts as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.contacts as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.contacts to authenticated;
grant delete, insert, select, update on table public.contacts to service_role;
comment on column public.contacts.opted_out_source is 'Who or what recorded the opt-out (e.g. one_click_unsubscribe); set with opted_out_at, null before it.';

-- table public.engagement_clocks
create table public.engagement_clocks (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  entity_type text not null,
  entity_id uuid not null,
  last_touch_at timestamp with time zone,
  last_touch_type text,
  last_touch_by text,
  last_card_id uuid,
  next_touch_due timestamp with time zone not null,
  touch_frequency_days integer default 21 not null,
  touch_count integer default 0 not null,
  compliance_status text default 'compliant'::text not null,
  days_overdue integer default 0 not null,
  priority_score numeric default 0 not null,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  frequency_override_days integer,
  frequency_source text default 'tenant'::text not null,
  priority_reason text,
  recovered_at timestamp with time zone,
  waiting_until timestamp with time zone,
  waiting_reason text
);
alter table public.engagement_clocks add constraint engagement_clocks_check CHECK (((days_overdue = 0) OR (compliance_status = 'overdue'::text)));
alter table public.engagement_clocks add constraint engagement_clocks_compliance_status_check CHECK ((compliance_status = ANY (ARRAY['compliant'::text, 'due_soon'::text, 'overdue'::text])));
alter table public.engagement_clocks add constraint engagement_clocks_days_overdue_check CHECK ((days_overdue >= 0));
alter table public.engagement_clocks add constraint engagement_clocks_entity_type_check CHECK ((entity_type = ANY (ARRAY['contact'::text, 'account'::text])));
alter table public.engagement_clocks add constraint engagement_clocks_frequency_override_days_check CHECK (((frequency_override_days IS NULL) OR ((frequency_override_days > 0) AND (frequency_override_days <= 366))));
alter table public.engagement_clocks add constraint engagement_clocks_frequency_source_check CHECK ((frequency_source = ANY (ARRAY['clock'::text, 'segment'::text, 'tier'::text, 'tenant'::text])));
alter table public.engagement_clocks add constraint engagement_clocks_pkey PRIMARY KEY (id);
alter table public.engagement_clocks add constraint engagement_clocks_tenant_id_entity_type_entity_id_key UNIQUE (tenant_id, entity_type, entity_id);
alter table public.engagement_clocks add constraint engagement_clocks_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.engagement_clocks add constraint engagement_clocks_tenant_id_last_card_id_fkey FOREIGN KEY (tenant_id, last_card_id) REFERENCES public.cards(tenant_id, id) ON DELETE SET NULL (last_card_id);
alter table public.engagement_clocks add constraint engagement_clocks_touch_count_check CHECK ((touch_count >= 0));
alter table public.engagement_clocks add constraint engagement_clocks_touch_frequency_days_check CHECK ((touch_frequency_days > 0));
alter table public.engagement_clocks add constraint engagement_clocks_waiting_check CHECK (((waiting_until IS NULL) = (waiting_reason IS NULL)));
alter table public.engagement_clocks add constraint engagement_clocks_waiting_reason_check CHECK (((waiting_reason IS NULL) OR (btrim(waiting_reason) <> ''::text)));
CREATE INDEX idx_engagement_clocks_tenant_card ON public.engagement_clocks USING btree (tenant_id, last_card_id) WHERE (last_card_id IS NOT NULL);
CREATE INDEX idx_engagement_clocks_tenant_due ON public.engagement_clocks USING btree (tenant_id, next_touch_due);
CREATE INDEX idx_engagement_clocks_tenant_noncompliant ON public.engagement_clocks USING btree (tenant_id) WHERE (compliance_status <> 'compliant'::text);
CREATE INDEX idx_engagement_clocks_tenant_queue ON public.engagement_clocks USING btree (tenant_id, priority_score DESC) WHERE (compliance_status <> 'compliant'::text);
CREATE INDEX idx_engagement_clocks_tenant_recovered ON public.engagement_clocks USING btree (tenant_id, recovered_at) WHERE (recovered_at IS NOT NULL);
CREATE TRIGGER engagement_clocks_derived_guard BEFORE INSERT OR UPDATE ON public.engagement_clocks FOR EACH ROW WHEN ((current_setting('hourglass.derived_write'::text, true) IS DISTINCT FROM 'on'::text)) EXECUTE FUNCTION hourglass.guard_engagement_clock();
CREATE TRIGGER engagement_clocks_keep_latest_touch BEFORE UPDATE ON public.engagement_clocks FOR EACH ROW WHEN (((new.last_touch_at < old.last_touch_at) AND (new.touch_count > old.touch_count))) EXECUTE FUNCTION hourglass.keep_latest_touch();
CREATE TRIGGER engagement_clocks_override BEFORE UPDATE OF frequency_override_days ON public.engagement_clocks FOR EACH ROW WHEN ((old.frequency_override_days IS DISTINCT FROM new.frequency_override_days)) EXECUTE FUNCTION hourglass.on_clock_override_change();
alter table public.engagement_clocks enable row level security;
create policy service_role_bypass on public.engagement_clocks as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.engagement_clocks as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.engagement_clocks to service_role;
grant select on table public.engagement_clocks to authenticated;

-- table public.engagement_frequency_rules
create table public.engagement_frequency_rules (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  dimension text not null,
  value text not null,
  touch_frequency_days integer not null,
  created_at timestamp with time zone default now() not null
);
alter table public.engagement_frequency_rules add constraint engagement_frequency_rules_dimension_check CHECK ((dimension = ANY (ARRAY['tier'::text, 'segment'::text])));
alter table public.engagement_frequency_rules add constraint engagement_frequency_rules_pkey PRIMARY KEY (id);
alter table public.engagement_frequency_rules add constraint engagement_frequency_rules_tenant_id_dimension_value_key UNIQUE (tenant_id, dimension, value);
alter table public.engagement_frequency_rules add constraint engagement_frequency_rules_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.engagement_frequency_rules add constraint engagement_frequency_rules_touch_frequency_days_check CHECK (((touch_frequency_days > 0) AND (touch_frequency_days <= 366)));
alter table public.engagement_frequency_rules add constraint engagement_frequency_rules_value_check CHECK ((btrim(value) <> ''::text));
CREATE TRIGGER engagement_frequency_rules_reapply AFTER INSERT OR DELETE OR UPDATE ON public.engagement_frequency_rules FOR EACH ROW EXECUTE FUNCTION hourglass.on_frequency_rule_change();
alter table public.engagement_frequency_rules enable row level security;
create policy capability_delete on public.engagement_frequency_rules as restrictive for delete to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy capability_insert on public.engagement_frequency_rules as restrictive for insert to authenticated
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy capability_update on public.engagement_frequency_rules as restrictive for update to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy service_role_bypass on public.engagement_frequency_rules as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.engagement_frequency_rules as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.engagement_frequency_rules to authenticated;
grant delete, insert, select, update on table public.engagement_frequency_rules to service_role;

-- table public.inbound_sources
create table public.inbound_sources (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  source text not null,
  enabled boolean default true not null,
  secret_ref text,
  imap_host text,
  imap_port integer,
  imap_security text default 'auto'::text not null,
  imap_username text,
  imap_mailbox text default 'INBOX'::text not null,
  imap_uid_validity bigint,
  imap_last_uid bigint,
  last_polled_at timestamp with time zone,
  last_error text,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null
);
alter table public.inbound_sources add constraint inbound_sources_check CHECK (((source = 'imap'::text) OR (secret_ref IS NOT NULL)));
alter table public.inbound_sources add constraint inbound_sources_check1 CHECK (((source <> 'imap'::text) OR ((imap_host IS NOT NULL) AND (imap_port IS NOT NULL) AND (imap_username IS NOT NULL) AND (secret_ref IS NOT NULL))));
alter table public.inbound_sources add constraint inbound_sources_imap_host_check CHECK (((imap_host IS NULL) OR (btrim(imap_host) <> ''::text)));
alter table public.inbound_sources add constraint inbound_sources_imap_last_uid_check CHECK (((imap_last_uid IS NULL) OR (imap_last_uid >= 0)));
alter table public.inbound_sources add constraint inbound_sources_imap_mailbox_check CHECK ((btrim(imap_mailbox) <> ''::text));
alter table public.inbound_sources add constraint inbound_sources_imap_port_check CHECK (((imap_port IS NULL) OR ((imap_port >= 1) AND (imap_port <= 65535))));
alter table public.inbound_sources add constraint inbound_sources_imap_security_check CHECK ((imap_security = ANY (ARRAY['auto'::text, 'starttls'::text, 'tls'::text, 'none'::text])));
alter table public.inbound_sources add constraint inbound_sources_pkey PRIMARY KEY (id);
alter table public.inbound_sources add constraint inbound_sources_secret_ref_check CHECK (((secret_ref IS NULL) OR (secret_ref ~ '^[A-Za-z_][A-Za-z0-9_]*$'::text)));
alter table public.inbound_sources add constraint inbound_sources_source_check CHECK ((source = ANY (ARRAY['hourglass'::text, 'resend'::text, 'postmark'::text, 'sendgrid'::text, 'imap'::text])));
alter table public.inbound_sources add constraint inbound_sources_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.inbound_sources add constraint inbound_sources_tenant_id_id_key UNIQUE (tenant_id, id);
alter table public.inbound_sources add constraint inbound_sources_tenant_id_source_key UNIQUE (tenant_id, source);
alter table public.inbound_sources enable row level security;
create policy service_role_bypass on public.inbound_sources as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.inbound_sources as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.inbound_sources to service_role;
grant select on table public.inbound_sources to authenticated;

-- table public.insight_detector_state
create table public.insight_detector_state (
  tenant_id uuid not null,
  detector text not null,
  watermark_seq bigint default 0 not null,
  events_processed bigint default 0 not null,
  last_run_at timestamp with time zone,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  time_swept_at timestamp with time zone
);
alter table public.insight_detector_state add constraint insight_detector_state_detector_check CHECK ((detector ~ '^[a-z][a-z0-9_]{0,63}$'::text));
alter table public.insight_detector_state add constraint insight_detector_state_pkey PRIMARY KEY (tenant_id, detector);
alter table public.insight_detector_state add constraint insight_detector_state_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.insight_detector_state enable row level security;
create policy service_role_bypass on public.insight_detector_state as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.insight_detector_state as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.insight_detector_state to service_role;
grant select on table public.insight_detector_state to authenticated;

-- table public.message_channels
create table public.message_channels (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  channel text not null,
  enabled boolean default true not null,
  webhook_url text,
  smtp_host text,
  smtp_port integer,
  smtp_security text default 'auto'::text not null,
  smtp_username text,
  smtp_from text,
  secret_ref text,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  smtp_tls_pin_sha256 text
);
alter table public.message_channels add constraint message_channels_channel_check CHECK ((channel = ANY (ARRAY['webhook'::text, 'email'::text])));
alter table public.message_channels add constraint message_channels_check CHECK (((channel <> 'webhook'::text) OR ((webhook_url IS NOT NULL) AND (secret_ref IS NOT NULL))));
alter table public.message_channels add constraint message_channels_check1 CHECK (((channel <> 'email'::text) OR ((smtp_host IS NOT NULL) AND (smtp_port IS NOT NULL) AND (smtp_from IS NOT NULL))));
alter table public.message_channels add constraint message_channels_pkey PRIMARY KEY (id);
alter table public.message_channels add constraint message_channels_secret_ref_check CHECK (((secret_ref IS NULL) OR (secret_ref ~ '^[A-Za-z_][A-Za-z0-9_]*$'::text)));
alter table public.message_channels add constraint message_channels_smtp_from_check CHECK (((smtp_from IS NULL) OR (smtp_from ~ '^[^@\s<>]+@[^@\s<>]+$'::text)));
alter table public.message_channels add constraint message_channels_smtp_host_check CHECK (((smtp_host IS NULL) OR (btrim(smtp_host) <> ''::text)));
alter table public.message_channels add constraint message_channels_smtp_port_check CHECK (((smtp_port IS NULL) OR ((smtp_port >= 1) AND (smtp_port <= 65535))));
alter table public.message_channels add constraint message_channels_smtp_security_check CHECK ((smtp_security = ANY (ARRAY['auto'::text, 'starttls'::text, 'tls'::text, 'none'::text])));
alter table public.message_channels add constraint message_channels_smtp_tls_pin_needs_tls CHECK (((smtp_tls_pin_sha256 IS NULL) OR ((channel = 'email'::text) AND (smtp_security <> 'none'::text))));
alter table public.message_channels add constraint message_channels_smtp_tls_pin_sha256_check CHECK (((smtp_tls_pin_sha256 IS NULL) OR (smtp_tls_pin_sha256 ~ '^[0-9A-Fa-f]{64}$'::text)));
alter table public.message_channels add constraint message_channels_tenant_id_channel_key UNIQUE (tenant_id, channel);
alter table public.message_channels add constraint message_channels_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.message_channels add constraint message_channels_webhook_url_check CHECK (((webhook_url IS NULL) OR (webhook_url ~* '^https?://[^\s/]+'::text)));
alter table public.message_channels enable row level security;
create policy service_role_bypass on public.message_channels as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.message_channels as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.message_channels to service_role;
grant select on table public.message_channels to authenticated;

-- table public.message_delivery_events
create table public.message_delivery_events (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  source text not null,
  source_event_id text not null,
  event_type text not null,
  occurred_at timestamp with time zone not null,
  message_id uuid,
  recipient text,
  reason text,
  reply_label text,
  reply_confidence numeric,
  reply_evidence text,
  reply_classified_by text,
  return_on date,
  effect text not null,
  skipped_reason text,
  event_id uuid,
  created_at timestamp with time zone default now() not null
);
alter table public.message_delivery_events add constraint message_delivery_events_check CHECK (((effect = 'skipped'::text) = (skipped_reason IS NOT NULL)));
alter table public.message_delivery_events add constraint message_delivery_events_check1 CHECK (((effect = 'skipped'::text) OR (message_id IS NOT NULL)));
alter table public.message_delivery_events add constraint message_delivery_events_check2 CHECK (((event_type = 'reply'::text) OR ((reply_label IS NULL) AND (reply_confidence IS NULL) AND (reply_evidence IS NULL) AND (return_on IS NULL))));
alter table public.message_delivery_events add constraint message_delivery_events_effect_check CHECK ((effect = ANY (ARRAY['none'::text, 'address_suppressed'::text, 'soft_bounce_retried'::text, 'opted_out'::text, 'touch_recorded'::text, 'waiting_until_return'::text, 'skipped'::text])));
alter table public.message_delivery_events add constraint message_delivery_events_event_type_check CHECK ((event_type = ANY (ARRAY['delivered'::text, 'bounce_hard'::text, 'bounce_soft'::text, 'complaint'::text, 'unsubscribe'::text, 'reply'::text])));
alter table public.message_delivery_events add constraint message_delivery_events_pkey PRIMARY KEY (id);
alter table public.message_delivery_events add constraint message_delivery_events_reply_confidence_check CHECK (((reply_confidence IS NULL) OR ((reply_confidence >= (0)::numeric) AND (reply_confidence <= (1)::numeric))));
alter table public.message_delivery_events add constraint message_delivery_events_reply_label_check CHECK (((reply_label IS NULL) OR (reply_label = ANY (ARRAY['interested'::text, 'not_now'::text, 'wrong_person'::text, 'unsubscribe_request'::text, 'out_of_office'::text, 'bounce_notice'::text, 'other'::text]))));
alter table public.message_delivery_events add constraint message_delivery_events_source_check CHECK ((source = ANY (ARRAY['hourglass'::text, 'resend'::text, 'postmark'::text, 'sendgrid'::text, 'imap'::text, 'simulator'::text, 'one_click'::text])));
alter table public.message_delivery_events add constraint message_delivery_events_source_event_id_check CHECK ((btrim(source_event_id) <> ''::text));
alter table public.message_delivery_events add constraint message_delivery_events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.message_delivery_events add constraint message_delivery_events_tenant_id_message_id_fkey FOREIGN KEY (tenant_id, message_id) REFERENCES public.message_outbox(tenant_id, id) ON DELETE SET NULL (message_id);
alter table public.message_delivery_events add constraint message_delivery_events_tenant_id_source_source_event_id_key UNIQUE (tenant_id, source, source_event_id);
CREATE INDEX idx_message_delivery_events_soft_bounces ON public.message_delivery_events USING btree (tenant_id, lower(recipient), occurred_at) WHERE (event_type = ANY (ARRAY['bounce_soft'::text, 'bounce_hard'::text, 'delivered'::text, 'reply'::text]));
CREATE INDEX idx_message_delivery_events_tenant_day ON public.message_delivery_events USING btree (tenant_id, occurred_at DESC);
CREATE INDEX idx_message_delivery_events_tenant_message ON public.message_delivery_events USING btree (tenant_id, message_id);
alter table public.message_delivery_events enable row level security;
create policy service_role_bypass on public.message_delivery_events as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.message_delivery_events as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.message_delivery_events to service_role;
grant select on table public.message_delivery_events to authenticated;

-- table public.message_outbox
create table public.message_outbox (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  idempotency_key text not null,
  channel text not null,
  destination text not null,
  subject text,
  body text default ''::text not null,
  payload jsonb default '{}'::jsonb not null,
  status text default 'pending'::text not null,
  attempts integer default 0 not null,
  max_attempts integer default 8 not null,
  next_attempt_at timestamp with time zone default now() not null,
  claimed_by text,
  claimed_until timestamp with time zone,
  last_error text,
  sent_at timestamp with time zone,
  provider_message_id text,
  run_id uuid,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  suppressed_at timestamp with time zone,
  suppressed_code text,
  suppressed_reason text,
  held_reason text
);
alter table public.message_outbox add constraint message_outbox_attempts_check CHECK ((attempts >= 0));
alter table public.message_outbox add constraint message_outbox_channel_check CHECK ((channel = ANY (ARRAY['webhook'::text, 'email'::text])));
alter table public.message_outbox add constraint message_outbox_check CHECK ((((channel = 'webhook'::text) AND (destination ~* '^https?://[^\s/]+'::text)) OR ((channel = 'email'::text) AND (destination ~ '^[^@\s<>]+@[^@\s<>]+$'::text))));
alter table public.message_outbox add constraint message_outbox_check1 CHECK (((status = 'sent'::text) = (sent_at IS NOT NULL)));
alter table public.message_outbox add constraint message_outbox_check2 CHECK (((status <> 'sending'::text) OR (claimed_until IS NOT NULL)));
alter table public.message_outbox add constraint message_outbox_destination_check CHECK ((btrim(destination) <> ''::text));
alter table public.message_outbox add constraint message_outbox_idempotency_key_check CHECK ((btrim(idempotency_key) <> ''::text));
alter table public.message_outbox add constraint message_outbox_max_attempts_check CHECK ((max_attempts > 0));
alter table public.message_outbox add constraint message_outbox_payload_check CHECK ((jsonb_typeof(payload) = 'object'::text));
alter table public.message_outbox add constraint message_outbox_pkey PRIMARY KEY (id);
alter table public.message_outbox add constraint message_outbox_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'sending'::text, 'sent'::text, 'failed'::text, 'cancelled'::text, 'suppressed'::text])));
alter table public.message_outbox add constraint message_outbox_suppressed_check CHECK ((((status = 'suppressed'::text) = (suppressed_at IS NOT NULL)) AND ((status <> 'suppressed'::text) OR ((suppressed_code IS NOT NULL) AND (suppressed_reason IS NOT NULL)))));
alter table public.message_outbox add constraint message_outbox_suppressed_code_check CHECK ((suppressed_code = ANY (ARRAY['contact_opted_out'::text, 'contact_do_not_contact'::text, 'account_do_not_contact'::text, 'channel_disabled'::text, 'channel_missing'::text, 'address_suppressed'::text])));
alter table public.message_outbox add constraint message_outbox_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.message_outbox add constraint message_outbox_tenant_id_id_key UNIQUE (tenant_id, id);
alter table public.message_outbox add constraint message_outbox_tenant_id_idempotency_key_key UNIQUE (tenant_id, idempotency_key);
alter table public.message_outbox add constraint message_outbox_tenant_id_run_id_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES public.agent_autonomous_runs(tenant_id, id) ON DELETE SET NULL (run_id);
CREATE INDEX idx_message_outbox_due ON public.message_outbox USING btree (next_attempt_at) WHERE (status = ANY (ARRAY['pending'::text, 'sending'::text]));
CREATE INDEX idx_message_outbox_tenant_provider_message ON public.message_outbox USING btree (tenant_id, provider_message_id) WHERE (provider_message_id IS NOT NULL);
CREATE INDEX idx_message_outbox_tenant_run ON public.message_outbox USING btree (tenant_id, run_id) WHERE (run_id IS NOT NULL);
CREATE INDEX idx_message_outbox_tenant_status ON public.message_outbox USING btree (tenant_id, status, created_at DESC);
CREATE INDEX idx_message_outbox_unsent_target ON public.message_outbox USING btree (tenant_id, ((payload ->> 'target_id'::text))) WHERE (status = ANY (ARRAY['pending'::text, 'sending'::text]));
alter table public.message_outbox enable row level security;
create policy service_role_bypass on public.message_outbox as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.message_outbox as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.message_outbox to service_role;
grant select on table public.message_outbox to authenticated;

-- table public.message_outbox_attempts
create table public.message_outbox_attempts (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  message_id uuid not null,
  attempt integer not null,
  attempted_at timestamp with time zone default now() not null,
  outcome text not null,
  error text,
  response_code integer,
  worker_id text,
  created_at timestamp with time zone default now() not null
);
alter table public.message_outbox_attempts add constraint message_outbox_attempts_attempt_check CHECK ((attempt > 0));
alter table public.message_outbox_attempts add constraint message_outbox_attempts_outcome_check CHECK ((outcome = ANY (ARRAY['sent'::text, 'transient_error'::text, 'permanent_error'::text, 'claim_expired'::text])));
alter table public.message_outbox_attempts add constraint message_outbox_attempts_pkey PRIMARY KEY (id);
alter table public.message_outbox_attempts add constraint message_outbox_attempts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.message_outbox_attempts add constraint message_outbox_attempts_tenant_id_message_id_fkey FOREIGN KEY (tenant_id, message_id) REFERENCES public.message_outbox(tenant_id, id) ON DELETE CASCADE;
CREATE INDEX idx_message_outbox_attempts_tenant_message ON public.message_outbox_attempts USING btree (tenant_id, message_id, attempt);
alter table public.message_outbox_attempts enable row level security;
create policy service_role_bypass on public.message_outbox_attempts as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.message_outbox_attempts as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.message_outbox_attempts to service_role;
grant select on table public.message_outbox_attempts to authenticated;

-- table public.message_suppressions
create table public.message_suppressions (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  channel text not null,
  address text not null,
  reason text not null,
  contact_id uuid,
  delivery_event_id uuid,
  suppressed_at timestamp with time zone not null,
  created_at timestamp with time zone default now() not null
);
alter table public.message_suppressions add constraint message_suppressions_address_check CHECK (((btrim(address) <> ''::text) AND (address = lower(address))));
alter table public.message_suppressions add constraint message_suppressions_channel_check CHECK ((channel = 'email'::text));
alter table public.message_suppressions add constraint message_suppressions_pkey PRIMARY KEY (id);
alter table public.message_suppressions add constraint message_suppressions_reason_check CHECK ((reason = ANY (ARRAY['hard_bounce'::text, 'soft_bounce_limit'::text, 'complaint'::text])));
alter table public.message_suppressions add constraint message_suppressions_tenant_id_channel_address_key UNIQUE (tenant_id, channel, address);
alter table public.message_suppressions add constraint message_suppressions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.message_suppressions enable row level security;
create policy service_role_bypass on public.message_suppressions as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.message_suppressions as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.message_suppressions to service_role;
grant select on table public.message_suppressions to authenticated;

-- table public.order_lines
create table public.order_lines (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  order_id uuid not null,
  product_id uuid,
  quantity numeric not null,
  unit_price numeric not null,
  discount_pct numeric default 0 not null,
  created_at timestamp with time zone default now() not null
);
alter table public.order_lines add constraint order_lines_discount_pct_check CHECK (((discount_pct >= (0)::numeric) AND (discount_pct <= (100)::numeric)));
alter table public.order_lines add constraint order_lines_pkey PRIMARY KEY (id);
alter table public.order_lines add constraint order_lines_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.order_lines add constraint order_lines_tenant_id_order_id_fkey FOREIGN KEY (tenant_id, order_id) REFERENCES public.orders(tenant_id, id) ON DELETE CASCADE;
alter table public.order_lines add constraint order_lines_tenant_id_product_id_fkey FOREIGN KEY (tenant_id, product_id) REFERENCES public.products(tenant_id, id) ON DELETE SET NULL (product_id);
CREATE INDEX idx_order_lines_tenant_order ON public.order_lines USING btree (tenant_id, order_id);
CREATE INDEX idx_order_lines_tenant_product ON public.order_lines USING btree (tenant_id, product_id);
CREATE TRIGGER order_lines_enqueue AFTER INSERT OR DELETE OR UPDATE ON public.order_lines FOR EACH ROW WHEN (((current_setting('hourglass.order_processor'::text, true) IS DISTINCT FROM 'on'::text) OR (CURRENT_USER = ANY (ARRAY['anon'::name, 'authenticated'::name])))) EXECUTE FUNCTION hourglass.on_order_line_change();
alter table public.order_lines enable row level security;
create policy capability_delete on public.order_lines as restrictive for delete to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_insert on public.order_lines as restrictive for insert to authenticated
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_update on public.order_lines as restrictive for update to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy service_role_bypass on public.order_lines as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.order_lines as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.order_lines to authenticated;
grant delete, insert, select, update on table public.order_lines to service_role;

-- table public.order_processing_exceptions
create table public.order_processing_exceptions (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  queue_id uuid not null,
  order_id uuid not null,
  exception_type text not null,
  severity text default 'error'::text not null,
  details jsonb default '{}'::jsonb not null,
  resolution_status text default 'open'::text not null,
  resolved_by text,
  resolved_at timestamp with time zone,
  resolution_notes text,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null
);
alter table public.order_processing_exceptions add constraint order_processing_exceptions_check CHECK (((resolution_status = ANY (ARRAY['resolved'::text, 'dismissed'::text])) = (resolved_at IS NOT NULL)));
alter table public.order_processing_exceptions add constraint order_processing_exceptions_exception_type_check CHECK ((btrim(exception_type) <> ''::text));
alter table public.order_processing_exceptions add constraint order_processing_exceptions_pkey PRIMARY KEY (id);
alter table public.order_processing_exceptions add constraint order_processing_exceptions_resolution_status_check CHECK ((resolution_status = ANY (ARRAY['open'::text, 'in_review'::text, 'resolved'::text, 'dismissed'::text])));
alter table public.order_processing_exceptions add constraint order_processing_exceptions_severity_check CHECK ((severity = ANY (ARRAY['info'::text, 'warning'::text, 'error'::text, 'critical'::text])));
alter table public.order_processing_exceptions add constraint order_processing_exceptions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.order_processing_exceptions add constraint order_processing_exceptions_tenant_id_order_id_fkey FOREIGN KEY (tenant_id, order_id) REFERENCES public.orders(tenant_id, id) ON DELETE CASCADE;
alter table public.order_processing_exceptions add constraint order_processing_exceptions_tenant_id_queue_id_fkey FOREIGN KEY (tenant_id, queue_id) REFERENCES public.order_processing_queue(tenant_id, id) ON DELETE CASCADE;
CREATE INDEX idx_order_exceptions_tenant_created ON public.order_processing_exceptions USING btree (tenant_id, created_at DESC, id DESC);
CREATE INDEX idx_order_exceptions_tenant_order ON public.order_processing_exceptions USING btree (tenant_id, order_id);
CREATE INDEX idx_order_exceptions_tenant_queue ON public.order_processing_exceptions USING btree (tenant_id, queue_id);
CREATE INDEX idx_order_exceptions_tenant_status ON public.order_processing_exceptions USING btree (tenant_id, resolution_status, created_at);
CREATE UNIQUE INDEX uq_order_exceptions_open_type ON public.order_processing_exceptions USING btree (tenant_id, queue_id, exception_type) WHERE (resolution_status = ANY (ARRAY['open'::text, 'in_review'::text]));
alter table public.order_processing_exceptions enable row level security;
create policy service_role_bypass on public.order_processing_exceptions as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.order_processing_exceptions as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.order_processing_exceptions to service_role;
grant select on table public.order_processing_exceptions to authenticated;

-- table public.order_processing_fixes
create table public.order_processing_fixes (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  queue_id uuid not null,
  order_id uuid not null,
  attempt integer not null,
  fix_type text not null,
  order_line_id uuid,
  before jsonb not null,
  after jsonb not null,
  policy_version text,
  created_at timestamp with time zone default now() not null
);
alter table public.order_processing_fixes add constraint order_processing_fixes_attempt_check CHECK ((attempt > 0));
alter table public.order_processing_fixes add constraint order_processing_fixes_fix_type_check CHECK ((fix_type = ANY (ARRAY['recompute_totals'::text, 'apply_rule_price'::text, 'fill_ship_to'::text])));
alter table public.order_processing_fixes add constraint order_processing_fixes_pkey PRIMARY KEY (id);
alter table public.order_processing_fixes add constraint order_processing_fixes_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.order_processing_fixes add constraint order_processing_fixes_tenant_id_order_id_fkey FOREIGN KEY (tenant_id, order_id) REFERENCES public.orders(tenant_id, id) ON DELETE CASCADE;
alter table public.order_processing_fixes add constraint order_processing_fixes_tenant_id_queue_id_fkey FOREIGN KEY (tenant_id, queue_id) REFERENCES public.order_processing_queue(tenant_id, id) ON DELETE CASCADE;
CREATE INDEX idx_order_fixes_tenant_order ON public.order_processing_fixes USING btree (tenant_id, order_id);
CREATE INDEX idx_order_fixes_tenant_queue ON public.order_processing_fixes USING btree (tenant_id, queue_id);
alter table public.order_processing_fixes enable row level security;
create policy service_role_bypass on public.order_processing_fixes as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.order_processing_fixes as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant insert, select on table public.order_processing_fixes to service_role;
grant select on table public.order_processing_fixes to authenticated;

-- table public.order_processing_queue
create table public.order_processing_queue (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  order_id uuid not null,
  status text default 'pending'::text not null,
  pricing_status text default 'pending'::text not null,
  credit_status text default 'pending'::text not null,
  requirements_status text default 'pending'::text not null,
  auto_fix_attempts integer default 0 not null,
  max_auto_fix_attempts integer default 3 not null,
  validation_results jsonb default '{}'::jsonb not null,
  priority integer default 0 not null,
  claimed_by text,
  claimed_until timestamp with time zone,
  processed_at timestamp with time zone,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  claim_token bigint default 0 not null,
  credit_override_by text,
  credit_override_reason text,
  credit_override_at timestamp with time zone,
  credit_override_total numeric
);
alter table public.order_processing_queue add constraint order_processing_queue_auto_fix_attempts_check CHECK ((auto_fix_attempts >= 0));
alter table public.order_processing_queue add constraint order_processing_queue_credit_status_check CHECK ((credit_status = ANY (ARRAY['pending'::text, 'passed'::text, 'failed'::text, 'fixed'::text, 'skipped'::text])));
alter table public.order_processing_queue add constraint order_processing_queue_max_auto_fix_attempts_check CHECK ((max_auto_fix_attempts >= 0));
alter table public.order_processing_queue add constraint order_processing_queue_override_complete CHECK ((((credit_override_by IS NULL) = (credit_override_at IS NULL)) AND ((credit_override_by IS NULL) = (credit_override_reason IS NULL))));
alter table public.order_processing_queue add constraint order_processing_queue_pkey PRIMARY KEY (id);
alter table public.order_processing_queue add constraint order_processing_queue_pricing_status_check CHECK ((pricing_status = ANY (ARRAY['pending'::text, 'passed'::text, 'failed'::text, 'fixed'::text, 'skipped'::text])));
alter table public.order_processing_queue add constraint order_processing_queue_requirements_status_check CHECK ((requirements_status = ANY (ARRAY['pending'::text, 'passed'::text, 'failed'::text, 'fixed'::text, 'skipped'::text])));
alter table public.order_processing_queue add constraint order_processing_queue_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'processing'::text, 'validated'::text, 'needs_approval'::text, 'exception'::text, 'cancelled'::text])));
alter table public.order_processing_queue add constraint order_processing_queue_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.order_processing_queue add constraint order_processing_queue_tenant_id_id_key UNIQUE (tenant_id, id);
alter table public.order_processing_queue add constraint order_processing_queue_tenant_id_order_id_fkey FOREIGN KEY (tenant_id, order_id) REFERENCES public.orders(tenant_id, id) ON DELETE CASCADE;
alter table public.order_processing_queue add constraint order_processing_queue_tenant_id_order_id_key UNIQUE (tenant_id, order_id);
CREATE INDEX idx_order_processing_claimed ON public.order_processing_queue USING btree (claimed_until) WHERE (status = 'processing'::text);
CREATE INDEX idx_order_processing_needs_approval ON public.order_processing_queue USING btree (tenant_id) WHERE (status = 'needs_approval'::text);
CREATE INDEX idx_order_processing_pending ON public.order_processing_queue USING btree (tenant_id, priority DESC, created_at) WHERE (status = 'pending'::text);
CREATE INDEX idx_order_processing_pending_all ON public.order_processing_queue USING btree (priority DESC, created_at) WHERE (status = 'pending'::text);
CREATE INDEX idx_order_queue_tenant_created ON public.order_processing_queue USING btree (tenant_id, created_at DESC, id DESC);
CREATE TRIGGER order_processing_queue_credit_override_total BEFORE INSERT OR UPDATE OF credit_override_by, credit_override_at, credit_override_total ON public.order_processing_queue FOR EACH ROW EXECUTE FUNCTION hourglass.stamp_credit_override_total();
CREATE TRIGGER order_processing_queue_derived_guard BEFORE INSERT OR UPDATE ON public.order_processing_queue FOR EACH ROW WHEN (((current_setting('hourglass.derived_write'::text, true) IS DISTINCT FROM 'on'::text) AND ((current_setting('hourglass.order_processor'::text, true) IS DISTINCT FROM 'on'::text) OR (CURRENT_USER = ANY (ARRAY['anon'::name, 'authenticated'::name]))))) EXECUTE FUNCTION hourglass.guard_order_queue_entry();
alter table public.order_processing_queue enable row level security;
create policy service_role_bypass on public.order_processing_queue as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.order_processing_queue as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.order_processing_queue to service_role;
grant select on table public.order_processing_queue to authenticated;
comment on column public.order_processing_queue.credit_override_total is 'The order''s total when credit was overridden: an order that grows past it loses the override.';

-- table public.order_requirement_rules
create table public.order_requirement_rules (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  rule_key text not null,
  description text not null,
  condition jsonb not null,
  severity text default 'error'::text not null,
  active boolean default true not null,
  created_at timestamp with time zone default now() not null
);
alter table public.order_requirement_rules add constraint order_requirement_rules_condition_check CHECK (((jsonb_typeof(condition) = 'object'::text) AND ((condition ->> 'op'::text) = ANY (ARRAY['eq'::text, 'ne'::text, 'in'::text, 'not_in'::text, 'lte'::text, 'gte'::text, 'present'::text])) AND (btrim(COALESCE((condition ->> 'field'::text), ''::text)) <> ''::text)));
alter table public.order_requirement_rules add constraint order_requirement_rules_description_check CHECK ((btrim(description) <> ''::text));
alter table public.order_requirement_rules add constraint order_requirement_rules_pkey PRIMARY KEY (id);
alter table public.order_requirement_rules add constraint order_requirement_rules_rule_key_check CHECK ((rule_key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'::text));
alter table public.order_requirement_rules add constraint order_requirement_rules_severity_check CHECK ((severity = ANY (ARRAY['info'::text, 'warning'::text, 'error'::text, 'critical'::text])));
alter table public.order_requirement_rules add constraint order_requirement_rules_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.order_requirement_rules add constraint order_requirement_rules_tenant_id_rule_key_key UNIQUE (tenant_id, rule_key);
alter table public.order_requirement_rules enable row level security;
create policy capability_delete on public.order_requirement_rules as restrictive for delete to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy capability_insert on public.order_requirement_rules as restrictive for insert to authenticated
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy capability_update on public.order_requirement_rules as restrictive for update to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy service_role_bypass on public.order_requirement_rules as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.order_requirement_rules as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.order_requirement_rules to authenticated;
grant delete, insert, select, update on table public.order_requirement_rules to service_role;

-- table public.orders
create table public.orders (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  account_id uuid not null,
  contact_id uuid,
  status text default 'placed'::text not null,
  po_number text,
  ship_to jsonb,
  requested_ship_date date,
  currency text default 'USD'::text not null,
  subtotal numeric default 0 not null,
  total numeric default 0 not null,
  placed_at timestamp with time zone,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  shipping_amount numeric default 0 not null,
  tax_amount numeric default 0 not null
);
alter table public.orders add constraint orders_currency_check CHECK ((currency ~ '^[A-Z]{3}$'::text));
alter table public.orders add constraint orders_pkey PRIMARY KEY (id);
alter table public.orders add constraint orders_ship_to_check CHECK (((ship_to IS NULL) OR (jsonb_typeof(ship_to) = 'object'::text)));
alter table public.orders add constraint orders_shipping_amount_check CHECK ((shipping_amount >= (0)::numeric));
alter table public.orders add constraint orders_status_check CHECK ((status = ANY (ARRAY['draft'::text, 'placed'::text, 'validated'::text, 'on_hold'::text, 'cancelled'::text, 'fulfilled'::text])));
alter table public.orders add constraint orders_tax_amount_check CHECK ((tax_amount >= (0)::numeric));
alter table public.orders add constraint orders_tenant_id_account_id_fkey FOREIGN KEY (tenant_id, account_id) REFERENCES public.accounts(tenant_id, id) ON DELETE CASCADE;
alter table public.orders add constraint orders_tenant_id_contact_id_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES public.contacts(tenant_id, id) ON DELETE SET NULL (contact_id);
alter table public.orders add constraint orders_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.orders add constraint orders_tenant_id_id_key UNIQUE (tenant_id, id);
CREATE INDEX idx_orders_tenant_account ON public.orders USING btree (tenant_id, account_id);
CREATE INDEX idx_orders_tenant_account_open ON public.orders USING btree (tenant_id, account_id) INCLUDE (id, total) WHERE (status = ANY (ARRAY['placed'::text, 'validated'::text, 'on_hold'::text]));
CREATE INDEX idx_orders_tenant_contact ON public.orders USING btree (tenant_id, contact_id);
CREATE INDEX idx_orders_tenant_placed ON public.orders USING btree (tenant_id, placed_at) WHERE (placed_at IS NOT NULL);
CREATE TRIGGER orders_credit_override_lapses AFTER UPDATE OF total ON public.orders FOR EACH ROW WHEN ((new.total > old.total)) EXECUTE FUNCTION hourglass.lapse_outgrown_credit_override();
CREATE TRIGGER orders_enqueue AFTER INSERT OR UPDATE OF status, po_number, ship_to, requested_ship_date, currency, subtotal, total, shipping_amount, tax_amount, account_id ON public.orders FOR EACH ROW WHEN (((current_setting('hourglass.order_processor'::text, true) IS DISTINCT FROM 'on'::text) OR (CURRENT_USER = ANY (ARRAY['anon'::name, 'authenticated'::name])))) EXECUTE FUNCTION hourglass.on_order_change();
alter table public.orders enable row level security;
create policy capability_delete on public.orders as restrictive for delete to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_insert on public.orders as restrictive for insert to authenticated
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_update on public.orders as restrictive for update to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy service_role_bypass on public.orders as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.orders as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.orders to authenticated;
grant delete, insert, select, update on table public.orders to service_role;

-- table public.price_rules
create table public.price_rules (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  name text not null,
  product_id uuid,
  account_id uuid,
  tier text,
  currency text default 'USD'::text not null,
  min_quantity numeric default 0 not null,
  unit_price numeric,
  discount_pct numeric,
  valid_from date,
  valid_to date,
  priority integer default 0 not null,
  active boolean default true not null,
  created_at timestamp with time zone default now() not null
);
alter table public.price_rules add constraint price_rules_check CHECK (((unit_price IS NULL) <> (discount_pct IS NULL)));
alter table public.price_rules add constraint price_rules_check1 CHECK (((valid_to IS NULL) OR (valid_from IS NULL) OR (valid_to >= valid_from)));
alter table public.price_rules add constraint price_rules_check2 CHECK (((account_id IS NULL) OR (tier IS NULL)));
alter table public.price_rules add constraint price_rules_currency_check CHECK ((currency ~ '^[A-Z]{3}$'::text));
alter table public.price_rules add constraint price_rules_discount_pct_check CHECK (((discount_pct IS NULL) OR ((discount_pct >= (0)::numeric) AND (discount_pct <= (100)::numeric))));
alter table public.price_rules add constraint price_rules_min_quantity_check CHECK ((min_quantity >= (0)::numeric));
alter table public.price_rules add constraint price_rules_name_check CHECK ((btrim(name) <> ''::text));
alter table public.price_rules add constraint price_rules_pkey PRIMARY KEY (id);
alter table public.price_rules add constraint price_rules_tenant_id_account_id_fkey FOREIGN KEY (tenant_id, account_id) REFERENCES public.accounts(tenant_id, id) ON DELETE CASCADE;
alter table public.price_rules add constraint price_rules_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.price_rules add constraint price_rules_tenant_id_product_id_fkey FOREIGN KEY (tenant_id, product_id) REFERENCES public.products(tenant_id, id) ON DELETE CASCADE;
alter table public.price_rules add constraint price_rules_unit_price_check CHECK (((unit_price IS NULL) OR (unit_price >= (0)::numeric)));
CREATE INDEX idx_price_rules_tenant_account ON public.price_rules USING btree (tenant_id, account_id);
CREATE INDEX idx_price_rules_tenant_product ON public.price_rules USING btree (tenant_id, product_id);
alter table public.price_rules enable row level security;
create policy capability_delete on public.price_rules as restrictive for delete to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy capability_insert on public.price_rules as restrictive for insert to authenticated
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy capability_update on public.price_rules as restrictive for update to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy service_role_bypass on public.price_rules as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.price_rules as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.price_rules to authenticated;
grant delete, insert, select, update on table public.price_rules to service_role;

-- table public.products
create table public.products (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  sku text not null,
  name text not null,
  list_price numeric default 0 not null,
  unit_cost numeric,
  active boolean default true not null,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null
);
alter table public.products add constraint products_list_price_check CHECK ((list_price >= (0)::numeric));
alter table public.products add constraint products_pkey PRIMARY KEY (id);
alter table public.products add constraint products_sku_check CHECK ((btrim(sku) <> ''::text));
alter table public.products add constraint products_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.products add constraint products_tenant_id_id_key UNIQUE (tenant_id, id);
alter table public.products add constraint products_tenant_id_sku_key UNIQUE (tenant_id, sku);
alter table public.products add constraint products_unit_cost_check CHECK (((unit_cost IS NULL) OR (unit_cost >= (0)::numeric)));
alter table public.products enable row level security;
create policy capability_delete on public.products as restrictive for delete to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_insert on public.products as restrictive for insert to authenticated
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy capability_update on public.products as restrictive for update to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('edit_crm'::text) AS tenant_ids_with)::uuid[])));
create policy service_role_bypass on public.products as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.products as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.products to authenticated;
grant delete, insert, select, update on table public.products to service_role;

-- table public.strategy_attributions
create table public.strategy_attributions (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  action_id uuid not null,
  strategy_key text not null,
  touched_at timestamp with time zone not null,
  outcome text not null,
  evidence_event_id uuid,
  decided_at timestamp with time zone not null,
  created_at timestamp with time zone default now() not null
);
alter table public.strategy_attributions add constraint strategy_attributions_outcome_check CHECK ((outcome = ANY (ARRAY['success'::text, 'failure'::text])));
alter table public.strategy_attributions add constraint strategy_attributions_pkey PRIMARY KEY (id);
alter table public.strategy_attributions add constraint strategy_attributions_tenant_id_action_id_key UNIQUE (tenant_id, action_id);
alter table public.strategy_attributions add constraint strategy_attributions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
CREATE INDEX idx_strategy_attributions_tenant_strategy ON public.strategy_attributions USING btree (tenant_id, strategy_key, decided_at);
alter table public.strategy_attributions enable row level security;
create policy service_role_bypass on public.strategy_attributions as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.strategy_attributions as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant insert, select on table public.strategy_attributions to service_role;
grant select on table public.strategy_attributions to authenticated;

-- table public.success_strategies
create table public.success_strategies (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  strategy_key text not null,
  name text not null,
  description text,
  applies_to jsonb default '{}'::jsonb not null,
  action_template jsonb default '{}'::jsonb not null,
  effectiveness_score numeric default 0 not null,
  usage_count integer default 0 not null,
  success_count integer default 0 not null,
  is_active boolean default true not null,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  effectiveness_lower numeric default 0 not null
);
alter table public.success_strategies add constraint success_strategies_check CHECK ((success_count <= usage_count));
alter table public.success_strategies add constraint success_strategies_effectiveness_lower_check CHECK (((effectiveness_lower >= (0)::numeric) AND (effectiveness_lower <= (1)::numeric)));
alter table public.success_strategies add constraint success_strategies_effectiveness_score_check CHECK (((effectiveness_score >= (0)::numeric) AND (effectiveness_score <= (1)::numeric)));
alter table public.success_strategies add constraint success_strategies_pkey PRIMARY KEY (id);
alter table public.success_strategies add constraint success_strategies_strategy_key_check CHECK ((btrim(strategy_key) <> ''::text));
alter table public.success_strategies add constraint success_strategies_success_count_check CHECK ((success_count >= 0));
alter table public.success_strategies add constraint success_strategies_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.success_strategies add constraint success_strategies_tenant_id_strategy_key_key UNIQUE (tenant_id, strategy_key);
alter table public.success_strategies add constraint success_strategies_usage_count_check CHECK ((usage_count >= 0));
CREATE TRIGGER success_strategies_derived_guard BEFORE INSERT OR UPDATE ON public.success_strategies FOR EACH ROW WHEN ((current_setting('hourglass.derived_write'::text, true) IS DISTINCT FROM 'on'::text)) EXECUTE FUNCTION hourglass.guard_success_strategy();
alter table public.success_strategies enable row level security;
create policy capability_delete on public.success_strategies as restrictive for delete to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy capability_insert on public.success_strategies as restrictive for insert to authenticated
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy capability_update on public.success_strategies as restrictive for update to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.tenant_ids_with('manage_settings'::text) AS tenant_ids_with)::uuid[])));
create policy service_role_bypass on public.success_strategies as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.success_strategies as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.success_strategies to service_role;
grant select on table public.success_strategies to authenticated;
grant insert (action_template) on table public.success_strategies to authenticated;
grant update (action_template) on table public.success_strategies to authenticated;
grant insert (applies_to) on table public.success_strategies to authenticated;
grant update (applies_to) on table public.success_strategies to authenticated;
grant insert (description) on table public.success_strategies to authenticated;
grant update (description) on table public.success_strategies to authenticated;
grant insert (id) on table public.success_strategies to authenticated;
grant insert (is_active) on table public.success_strategies to authenticated;
grant update (is_active) on table public.success_strategies to authenticated;
grant insert (name) on table public.success_strategies to authenticated;
grant update (name) on table public.success_strategies to authenticated;
grant insert (strategy_key) on table public.success_strategies to authenticated;
grant insert (tenant_id) on table public.success_strategies to authenticated;

-- table public.tenant_members
create table public.tenant_members (
  tenant_id uuid not null,
  user_id uuid not null,
  role text default 'member'::text not null,
  created_at timestamp with time zone default now() not null
);
alter table public.tenant_members add constraint tenant_members_pkey PRIMARY KEY (tenant_id, user_id);
alter table public.tenant_members add constraint tenant_members_role_fkey FOREIGN KEY (tenant_id, role) REFERENCES public.tenant_roles(tenant_id, role) ON UPDATE CASCADE;
alter table public.tenant_members add constraint tenant_members_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
CREATE INDEX idx_tenant_members_tenant_role ON public.tenant_members USING btree (tenant_id, role);
CREATE INDEX idx_tenant_members_user ON public.tenant_members USING btree (user_id, tenant_id);
alter table public.tenant_members enable row level security;
create policy service_role_bypass on public.tenant_members as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.tenant_members as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.tenant_members to service_role;
grant select on table public.tenant_members to authenticated;

-- table public.tenant_policy_documents
create table public.tenant_policy_documents (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  version integer not null,
  document jsonb not null,
  created_by text not null,
  comment text,
  created_at timestamp with time zone default now() not null
);
alter table public.tenant_policy_documents add constraint tenant_policy_documents_created_by_check CHECK ((btrim(created_by) <> ''::text));
alter table public.tenant_policy_documents add constraint tenant_policy_documents_document_check CHECK ((jsonb_typeof(document) = 'object'::text));
alter table public.tenant_policy_documents add constraint tenant_policy_documents_pkey PRIMARY KEY (id);
alter table public.tenant_policy_documents add constraint tenant_policy_documents_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.tenant_policy_documents add constraint tenant_policy_documents_tenant_id_version_key UNIQUE (tenant_id, version);
alter table public.tenant_policy_documents add constraint tenant_policy_documents_version_check CHECK ((version > 0));
alter table public.tenant_policy_documents enable row level security;
create policy service_role_bypass on public.tenant_policy_documents as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.tenant_policy_documents as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant insert, select on table public.tenant_policy_documents to service_role;
grant select on table public.tenant_policy_documents to authenticated;

-- table public.tenant_roles
create table public.tenant_roles (
  tenant_id uuid not null,
  role text not null,
  capabilities text[] not null,
  description text,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null
);
alter table public.tenant_roles add constraint tenant_roles_capabilities_check CHECK ((hourglass.is_capability_list(capabilities) AND ('read'::text = ANY (capabilities))));
alter table public.tenant_roles add constraint tenant_roles_pkey PRIMARY KEY (tenant_id, role);
alter table public.tenant_roles add constraint tenant_roles_role_check CHECK (((btrim(role) <> ''::text) AND (length(role) <= 63)));
alter table public.tenant_roles add constraint tenant_roles_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
alter table public.tenant_roles enable row level security;
create policy service_role_bypass on public.tenant_roles as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.tenant_roles as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.tenant_roles to service_role;
grant select on table public.tenant_roles to authenticated;

-- table public.tenants
create table public.tenants (
  id uuid default gen_random_uuid() not null,
  name text not null,
  timezone text default 'UTC'::text not null,
  settings jsonb default '{}'::jsonb not null,
  created_at timestamp with time zone default now() not null
);
alter table public.tenants add constraint tenants_name_check CHECK ((btrim(name) <> ''::text));
alter table public.tenants add constraint tenants_pkey PRIMARY KEY (id);
alter table public.tenants add constraint tenants_settings_check CHECK ((jsonb_typeof(settings) = 'object'::text));
alter table public.tenants add constraint tenants_timezone_check CHECK (hourglass.is_iana_timezone(timezone));
CREATE TRIGGER tenants_create_roles AFTER INSERT ON public.tenants FOR EACH ROW EXECUTE FUNCTION hourglass.create_tenant_roles();
CREATE TRIGGER tenants_create_schedule AFTER INSERT ON public.tenants FOR EACH ROW EXECUTE FUNCTION hourglass.create_tenant_schedule();
alter table public.tenants enable row level security;
create policy service_role_bypass on public.tenants as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.tenants as permissive for all to authenticated
  using ((id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.tenants to service_role;
grant select on table public.tenants to authenticated;

-- table public.warehouse_events
create table public.warehouse_events (
  id uuid default gen_random_uuid() not null,
  tenant_id uuid not null,
  event_type text not null,
  entity_type text,
  entity_id uuid,
  payload jsonb default '{}'::jsonb not null,
  source text default 'hourglass'::text not null,
  idempotency_key text,
  occurred_at timestamp with time zone default now() not null,
  created_at timestamp with time zone default now() not null,
  seq bigint generated by default as identity not null
);
alter table public.warehouse_events add constraint warehouse_events_event_type_check CHECK ((btrim(event_type) <> ''::text));
alter table public.warehouse_events add constraint warehouse_events_pkey PRIMARY KEY (id);
alter table public.warehouse_events add constraint warehouse_events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;
CREATE INDEX idx_warehouse_events_tenant_entity ON public.warehouse_events USING btree (tenant_id, entity_type, entity_id, occurred_at DESC);
CREATE INDEX idx_warehouse_events_tenant_type ON public.warehouse_events USING btree (tenant_id, event_type, occurred_at DESC);
CREATE INDEX idx_warehouse_events_tenant_type_seq ON public.warehouse_events USING btree (tenant_id, event_type, seq);
CREATE UNIQUE INDEX uq_warehouse_events_seq ON public.warehouse_events USING btree (seq);
CREATE UNIQUE INDEX uq_warehouse_events_tenant_idempotency ON public.warehouse_events USING btree (tenant_id, idempotency_key) WHERE (idempotency_key IS NOT NULL);
alter table public.warehouse_events enable row level security;
create policy service_role_bypass on public.warehouse_events as permissive for all to service_role
  using (true)
  with check (true);
create policy tenant_isolation on public.warehouse_events as permissive for all to authenticated
  using ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])))
  with check ((tenant_id = ANY (( SELECT hourglass.current_tenant_ids() AS current_tenant_ids)::uuid[])));
grant delete, insert, select, update on table public.warehouse_events to service_role;
grant select on table public.warehouse_events to authenticated;

-- view public.monitoring_engagement_compliance
create view public.monitoring_engagement_compliance with (security_invoker=true) as
 SELECT t.id AS tenant_id,
    count(c.id) AS clocks,
    count(c.id) FILTER (WHERE c.compliance_status = 'compliant'::text) AS compliant,
    count(c.id) FILTER (WHERE c.compliance_status = 'due_soon'::text) AS due_soon,
    count(c.id) FILTER (WHERE c.compliance_status = 'overdue'::text) AS overdue,
    count(c.id) FILTER (WHERE c.compliance_status = 'overdue'::text AND c.entity_type = 'contact'::text) AS overdue_contacts,
    count(c.id) FILTER (WHERE c.compliance_status = 'overdue'::text AND c.entity_type = 'account'::text) AS overdue_accounts,
    COALESCE(max(c.days_overdue), 0) AS max_days_overdue,
    round(100::numeric * count(c.id) FILTER (WHERE c.compliance_status <> 'overdue'::text)::numeric / NULLIF(count(c.id), 0)::numeric, 2) AS compliance_pct
   FROM public.tenants t
     LEFT JOIN public.engagement_clocks c ON c.tenant_id = t.id
  GROUP BY t.id;
-- columns: tenant_id uuid, clocks bigint, compliant bigint, due_soon bigint, overdue bigint, overdue_contacts bigint, overdue_accounts bigint, max_days_overdue integer, compliance_pct numeric
grant select on table public.monitoring_engagement_compliance to authenticated;
grant select on table public.monitoring_engagement_compliance to service_role;
comment on view public.monitoring_engagement_compliance is 'Engagement clocks per tenant by compliance status; compliance_pct = 100 * not overdue / clocks.';

-- view public.monitoring_lock_contention
create view public.monitoring_lock_contention with (security_invoker=true) as
 SELECT x.tenant_id,
    (x.started_at AT TIME ZONE t.timezone)::date AS day,
    count(DISTINCT x.lock_token) AS leases_granted,
    count(DISTINCT x.worker_id) FILTER (WHERE x.lock_token IS NOT NULL) AS workers,
    count(*) FILTER (WHERE x.lock_token IS NOT NULL AND x.previous_worker IS NOT NULL AND x.previous_worker IS DISTINCT FROM x.worker_id) AS handovers,
    count(*) FILTER (WHERE x.status = 'skipped'::text AND x.error ~~ 'overlap:%'::text) AS overlap_skips,
    count(*) FILTER (WHERE x.status = 'abandoned'::text) AS abandoned_runs,
    round(count(*) FILTER (WHERE x.status = 'skipped'::text AND x.error ~~ 'overlap:%'::text)::numeric / NULLIF(count(DISTINCT x.lock_token) + count(*) FILTER (WHERE x.status = 'skipped'::text AND x.error ~~ 'overlap:%'::text), 0)::numeric, 4) AS contention_rate
   FROM ( SELECT r.tenant_id,
            r.started_at,
            r.status,
            r.error,
            r.worker_id,
            r.lock_token,
            lag(r.worker_id) OVER (PARTITION BY r.tenant_id, (r.lock_token IS NOT NULL) ORDER BY r.lock_token) AS previous_worker
           FROM public.agent_autonomous_runs r
          WHERE r.lock_token IS NOT NULL OR (r.status = ANY (ARRAY['skipped'::text, 'abandoned'::text]))) x
     JOIN public.tenants t ON t.id = x.tenant_id
  GROUP BY x.tenant_id, ((x.started_at AT TIME ZONE t.timezone)::date);
-- columns: tenant_id uuid, day date, leases_granted bigint, workers bigint, handovers bigint, overlap_skips bigint, abandoned_runs bigint, contention_rate numeric
grant select on table public.monitoring_lock_contention to authenticated;
grant select on table public.monitoring_lock_contention to service_role;
comment on view public.monitoring_lock_contention is 'Leases granted (distinct fencing tokens), worker handovers, overlap skips and abandoned runs per tenant per day (tenant time zone).';

-- view public.monitoring_order_throughput
create view public.monitoring_order_throughput with (security_invoker=true) as
 SELECT tenant_id,
    date_trunc('hour'::text, occurred_at, 'UTC'::text) AS hour,
    count(*) AS processed,
    count(*) FILTER (WHERE event_type = 'order_validated'::text) AS validated,
    count(*) FILTER (WHERE event_type = 'order_needs_approval'::text) AS needs_approval,
    count(*) FILTER (WHERE event_type = 'order_exception'::text) AS exceptions,
    count(DISTINCT entity_id) AS orders,
    COALESCE(sum(
        CASE
            WHEN jsonb_typeof(payload -> 'fixes'::text) = 'number'::text THEN (payload ->> 'fixes'::text)::numeric
            ELSE NULL::numeric
        END), 0::numeric) AS fixes_applied,
    COALESCE(sum(
        CASE
            WHEN event_type = 'order_validated'::text AND jsonb_typeof(payload -> 'total'::text) = 'number'::text THEN (payload ->> 'total'::text)::numeric
            ELSE NULL::numeric
        END), 0::numeric) AS validated_value
   FROM public.warehouse_events e
  WHERE (event_type = ANY (ARRAY['order_validated'::text, 'order_needs_approval'::text, 'order_exception'::text])) AND (event_type <> 'order_exception'::text OR (payload -> 'fixes'::text) IS NOT NULL)
  GROUP BY tenant_id, (date_trunc('hour'::text, occurred_at, 'UTC'::text));
-- columns: tenant_id uuid, hour timestamp with time zone, processed bigint, validated bigint, needs_approval bigint, exceptions bigint, orders bigint, fixes_applied numeric, validated_value numeric
grant select on table public.monitoring_order_throughput to authenticated;
grant select on table public.monitoring_order_throughput to service_role;
comment on view public.monitoring_order_throughput is 'Orders processed per tenant per UTC hour by outcome (order processor outcome events in warehouse_events).';

-- view public.monitoring_policy_violations
create view public.monitoring_policy_violations with (security_invoker=true) as
 SELECT v.tenant_id,
    (v.created_at AT TIME ZONE t.timezone)::date AS day,
    v.policy_key AS rule,
    v.rule_kind,
    v.severity,
    count(*) AS violations,
    count(*) FILTER (WHERE v.decision = 'deny'::text) AS denied,
    count(*) FILTER (WHERE v.decision = 'require_approval'::text) AS approvals_required,
    count(*) FILTER (WHERE v.decision = 'warn'::text) AS warned,
    count(*) FILTER (WHERE v.blocked) AS blocked
   FROM public.agent_policy_violations v
     JOIN public.tenants t ON t.id = v.tenant_id
  GROUP BY v.tenant_id, ((v.created_at AT TIME ZONE t.timezone)::date), v.policy_key, v.rule_kind, v.severity;
-- columns: tenant_id uuid, day date, rule text, rule_kind text, severity text, violations bigint, denied bigint, approvals_required bigint, warned bigint, blocked bigint
grant select on table public.monitoring_policy_violations to authenticated;
grant select on table public.monitoring_policy_violations to service_role;
comment on view public.monitoring_policy_violations is 'Policy violations per tenant per day (tenant time zone) per rule and severity, by decision.';

-- view public.monitoring_run_success
create view public.monitoring_run_success with (security_invoker=true) as
 SELECT r.tenant_id,
    (r.started_at AT TIME ZONE t.timezone)::date AS day,
    count(*) AS runs,
    count(*) FILTER (WHERE r.status = 'completed'::text) AS completed,
    count(*) FILTER (WHERE r.status = 'partial'::text) AS partial,
    count(*) FILTER (WHERE r.status = 'failed'::text) AS failed,
    count(*) FILTER (WHERE r.status = 'abandoned'::text) AS abandoned,
    count(*) FILTER (WHERE r.status = 'skipped'::text) AS skipped,
    count(*) FILTER (WHERE r.status = 'running'::text) AS running,
    round(count(*) FILTER (WHERE r.status = 'completed'::text)::numeric / NULLIF(count(*) FILTER (WHERE r.status = ANY (ARRAY['completed'::text, 'partial'::text, 'failed'::text, 'abandoned'::text])), 0)::numeric, 4) AS success_rate,
    COALESCE(sum(r.actions_taken), 0::bigint) AS actions_taken,
    COALESCE(sum(r.actions_blocked), 0::bigint) AS actions_blocked,
    round(avg(EXTRACT(epoch FROM r.completed_at - r.started_at)) FILTER (WHERE r.status = ANY (ARRAY['completed'::text, 'partial'::text, 'failed'::text])), 3) AS avg_duration_seconds
   FROM public.agent_autonomous_runs r
     JOIN public.tenants t ON t.id = r.tenant_id
  WHERE NOT r.dry_run
  GROUP BY r.tenant_id, ((r.started_at AT TIME ZONE t.timezone)::date);
-- columns: tenant_id uuid, day date, runs bigint, completed bigint, partial bigint, failed bigint, abandoned bigint, skipped bigint, running bigint, success_rate numeric, actions_taken bigint, actions_blocked bigint, avg_duration_seconds numeric
grant select on table public.monitoring_run_success to authenticated;
grant select on table public.monitoring_run_success to service_role;
comment on view public.monitoring_run_success is 'Cycle runs per tenant per day (tenant time zone) by status; success_rate = completed / (completed + partial + failed + abandoned). Dry runs excluded.';

-- function hourglass.acting_as(text,text)
CREATE OR REPLACE FUNCTION hourglass.acting_as(p_by text, p_function text)
 RETURNS text
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  v_user uuid := (select auth.uid());
begin
  if hourglass.caller_bypasses_rls() then
    return coalesce('service:' || nullif(pg_catalog.btrim(p_by), ''), 'service');
  end if;
  if v_user is null then
    raise exception using errcode = '42501', message = pg_catalog.format('%s: no signed-in user (auth.uid() is null)', p_function);
  end if;
  if p_by is not null and pg_catalog.btrim(p_by) not in ('', v_user::text, 'user:' || v_user::text) then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: p_by may not name someone else (%L); a signed-in user acts as themselves, only the service role names who it acts for',
        p_function, p_by);
  end if;
  return 'user:' || v_user::text;
end
$function$;
grant execute on function hourglass.acting_as(text,text) to authenticated;
grant execute on function hourglass.acting_as(text,text) to service_role;

-- function hourglass.advance_event_frontier(interval)
CREATE OR REPLACE FUNCTION hourglass.advance_event_frontier(p_gap_timeout interval DEFAULT '00:00:30'::interval)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
-- p_gap_timeout is kept for callers of this signature and not read: a gap is passed once its writers have ended.
-- @plpgsql_check_options: extra_warnings = off
declare
  v_start bigint;
  v_safe bigint;
  v_horizon bigint;
  v_writers text[];
  v_next bigint;
  v_last bigint;
  v_scans integer := 0;
begin
  select f.safe_seq, f.gap_horizon, f.gap_writers into v_start, v_horizon, v_writers
  from hourglass.event_frontier f where f.singleton for update;
  v_safe := v_start;
  loop
    -- The frontier moves over numbers with no gap below them (at most 100,000 events a scan, 4 scans a call), to
    -- just before the first gap.
    v_scans := v_scans + 1;
    with s as (
      select e.seq, pg_catalog.lag(e.seq) over (order by e.seq) as prev
      from (select w.seq from public.warehouse_events w where w.seq > v_safe order by w.seq limit 100000) e
    )
    select coalesce((select coalesce(s.prev, v_safe) from s where s.seq - coalesce(s.prev, v_safe) > 1 order by s.seq limit 1),
                    (select max(s.seq) from s), v_safe),
           coalesce((select max(s.seq) from s), v_safe)
      into v_next, v_last;
    v_safe := v_next;
    if v_last = v_next then
      v_horizon := null;
      v_writers := null;
      exit;
    end if;

    -- A gap. One seen before is settled once its writers have all ended; a new one is recorded with the writers now.
    if v_horizon is null or v_horizon <= v_next then
      v_horizon := v_last;
      select pg_catalog.array_agg(distinct l.virtualtransaction) into v_writers
      from pg_catalog.pg_locks l
      where l.locktype = 'relation' and l.relation = 'public.warehouse_events'::regclass and l.mode = 'RowExclusiveLock'
        and l.database = (select d.oid from pg_catalog.pg_database d where d.datname = pg_catalog.current_database());
    end if;
    if exists (select 1 from pg_catalog.pg_locks l where l.locktype = 'virtualxid' and l.virtualxid = any (v_writers)) then
      exit;
    end if;
    v_safe := v_horizon;
    v_horizon := null;
    v_writers := null;
    exit when v_scans >= 4;
  end loop;

  update hourglass.event_frontier f
  set safe_seq = v_safe, gap_horizon = v_horizon, gap_writers = v_writers,
      updated_at = case when v_safe > v_start then pg_catalog.now() else f.updated_at end
  where f.singleton
    and (f.safe_seq, f.gap_horizon, f.gap_writers) is distinct from (v_safe, v_horizon, v_writers);
  return v_safe;
end
$function$;
grant execute on function hourglass.advance_event_frontier(interval) to service_role;

-- function hourglass.assert_card_worker(uuid,uuid,text)
CREATE OR REPLACE FUNCTION hourglass.assert_card_worker(p_tenant_id uuid, p_assignee uuid, p_function text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  if p_assignee is not null and p_assignee is distinct from (select auth.uid()) and not hourglass.caller_bypasses_rls()
     and not 'work_any_card' = any (hourglass.current_capabilities(p_tenant_id)) then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: the card is assigned to someone else; completing or dismissing another person''s card needs the capability ''work_any_card'' (roles: owner, admin, manager)',
        p_function);
  end if;
end
$function$;
grant execute on function hourglass.assert_card_worker(uuid,uuid,text) to authenticated;
grant execute on function hourglass.assert_card_worker(uuid,uuid,text) to service_role;

-- function hourglass.assert_owner_change_allowed(uuid,text)
CREATE OR REPLACE FUNCTION hourglass.assert_owner_change_allowed(p_tenant_id uuid, p_function text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if not hourglass.caller_bypasses_rls() and not exists (
      select 1 from public.tenant_members m
      join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
      where m.tenant_id = p_tenant_id and m.user_id = (select auth.uid()) and m.role = 'owner') then
    raise exception using errcode = '42501', message = pg_catalog.format('%s: only an owner may make, change or remove an owner', p_function);
  end if;
end
$function$;
grant execute on function hourglass.assert_owner_change_allowed(uuid,text) to authenticated;
grant execute on function hourglass.assert_owner_change_allowed(uuid,text) to service_role;

-- function hourglass.assert_tenant_access(uuid,text)
CREATE OR REPLACE FUNCTION hourglass.assert_tenant_access(p_tenant_id uuid, p_function text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_role text;
  v_capabilities text[];
  v_needed text;
begin
  if p_tenant_id is null then
    raise exception using errcode = '22004', message = pg_catalog.format('%s: p_tenant_id must not be null', p_function);
  end if;
  if hourglass.caller_bypasses_rls() then
    if not exists (select 1 from public.tenants t where t.id = p_tenant_id) then
      raise exception using errcode = '23503', message = pg_catalog.format('%s: unknown tenant %s', p_function, p_tenant_id);
    end if;
    return;
  end if;

  select m.role, r.capabilities into v_role, v_capabilities
  from public.tenant_members m join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
  where m.tenant_id = p_tenant_id and m.user_id = (select auth.uid());
  if not found then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: tenant %s does not exist or the current user is not a member of it', p_function, p_tenant_id);
  end if;

  select f.capability into v_needed from hourglass.function_capabilities f where f.function_name = p_function;
  if v_needed is null then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: signed-in users may not call it; the service role (the worker, the CLI) does', p_function);
  end if;
  if not v_needed = any (v_capabilities) then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: your role ''%s'' in tenant %s lacks the capability ''%s''; roles that have it: %s',
        p_function, v_role, p_tenant_id, v_needed,
        coalesce((select pg_catalog.string_agg(r.role, ', ' order by r.role) from public.tenant_roles r
                  where r.tenant_id = p_tenant_id and v_needed = any (r.capabilities)), 'none'));
  end if;
end
$function$;
grant execute on function hourglass.assert_tenant_access(uuid,text) to authenticated;
grant execute on function hourglass.assert_tenant_access(uuid,text) to service_role;

-- function hourglass.caller_bypasses_rls()
CREATE OR REPLACE FUNCTION hourglass.caller_bypasses_rls()
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  return coalesce((select r.rolsuper or r.rolbypassrls from pg_catalog.pg_roles r where r.rolname = hourglass.caller_role()), false);
end
$function$;
grant execute on function hourglass.caller_bypasses_rls() to anon;
grant execute on function hourglass.caller_bypasses_rls() to authenticated;
grant execute on function hourglass.caller_bypasses_rls() to service_role;

-- function hourglass.caller_role()
CREATE OR REPLACE FUNCTION hourglass.caller_role()
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user::text)
$function$;
grant execute on function hourglass.caller_role() to anon;
grant execute on function hourglass.caller_role() to authenticated;
grant execute on function hourglass.caller_role() to service_role;

-- function hourglass.capabilities()
CREATE OR REPLACE FUNCTION hourglass.capabilities()
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select array['read', 'edit_crm', 'record_touches', 'ingest_events', 'work_any_card', 'approve', 'override_credit',
               'resolve_exceptions', 'run_cycles', 'manage_settings', 'manage_members']::text[]
$function$;
grant execute on function hourglass.capabilities() to authenticated;
grant execute on function hourglass.capabilities() to service_role;

-- function hourglass.create_engagement_clock()
CREATE OR REPLACE FUNCTION hourglass.create_engagement_clock()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
declare
  v_type text := case tg_table_name when 'contacts' then 'contact' else 'account' end;
  v_frequency record;
  v_now timestamptz := hourglass.now();
begin
  select f.days, f.source into v_frequency from hourglass.engagement_frequency(new.tenant_id, v_type, new.id) f;
  insert into public.engagement_clocks (tenant_id, entity_type, entity_id, next_touch_due, touch_frequency_days, frequency_source, created_at, updated_at)
  values (new.tenant_id, v_type, new.id, v_now + pg_catalog.make_interval(days => v_frequency.days), v_frequency.days, v_frequency.source, v_now, v_now)
  on conflict (tenant_id, entity_type, entity_id) do nothing;
  return new;
end
$function$;

-- function hourglass.create_tenant_roles()
CREATE OR REPLACE FUNCTION hourglass.create_tenant_roles()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  insert into public.tenant_roles (tenant_id, role, capabilities, description)
  select new.id, d.role, d.capabilities, d.description from hourglass.default_tenant_roles() d
  on conflict (tenant_id, role) do nothing;
  return new;
end
$function$;

-- function hourglass.create_tenant_schedule()
CREATE OR REPLACE FUNCTION hourglass.create_tenant_schedule()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  insert into public.agent_tenant_schedules (tenant_id, next_due_at)
  values (new.id, pg_catalog.date_trunc('hour', hourglass.now()) + interval '1 hour')
  on conflict (tenant_id) do nothing;
  return new;
end
$function$;

-- function hourglass.current_capabilities(uuid)
CREATE OR REPLACE FUNCTION hourglass.current_capabilities(p_tenant_id uuid)
 RETURNS text[]
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if hourglass.caller_bypasses_rls() then
    return hourglass.capabilities();
  end if;
  return coalesce((
    select r.capabilities from public.tenant_members m
    join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
    where m.tenant_id = p_tenant_id and m.user_id = (select auth.uid())), '{}'::text[]);
end
$function$;
grant execute on function hourglass.current_capabilities(uuid) to authenticated;
grant execute on function hourglass.current_capabilities(uuid) to service_role;

-- function hourglass.current_tenant_ids()
CREATE OR REPLACE FUNCTION hourglass.current_tenant_ids()
 RETURNS uuid[]
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  return coalesce((select pg_catalog.array_agg(m.tenant_id) from public.tenant_members m where m.user_id = (select auth.uid())), '{}'::uuid[]);
end
$function$;
grant execute on function hourglass.current_tenant_ids() to anon;
grant execute on function hourglass.current_tenant_ids() to authenticated;
grant execute on function hourglass.current_tenant_ids() to service_role;

-- function hourglass.default_tenant_roles()
CREATE OR REPLACE FUNCTION hourglass.default_tenant_roles()
 RETURNS TABLE(role text, capabilities text[], description text)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  values
    ('owner', hourglass.capabilities(),
     'Everything, including making and removing other owners'),
    ('admin', hourglass.capabilities(),
     'Settings, schedule, policies, rules, strategies and members (but not owners)'),
    ('manager', array['read', 'edit_crm', 'record_touches', 'ingest_events', 'work_any_card', 'approve', 'override_credit',
                      'resolve_exceptions']::text[],
     'Approves held actions, overrides credit, resolves order exceptions, works any card'),
    ('controller', array['read', 'override_credit', 'resolve_exceptions']::text[],
     'Credit overrides and the order exception workflow'),
    ('member', array['read', 'edit_crm', 'record_touches', 'ingest_events']::text[],
     'CRM data, touches, events and their own cards'),
    ('viewer', array['read']::text[],
     'Reads everything in the tenant, changes nothing')
$function$;

-- function hourglass.delete_engagement_clock()
CREATE OR REPLACE FUNCTION hourglass.delete_engagement_clock()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  delete from public.engagement_clocks c
  where c.tenant_id = old.tenant_id and c.entity_id = old.id
    and c.entity_type = case tg_table_name when 'contacts' then 'contact' else 'account' end;
  return old;
end
$function$;

-- function hourglass.enable_tenant_isolation(regclass)
CREATE OR REPLACE FUNCTION hourglass.enable_tenant_isolation(p_table regclass)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  execute pg_catalog.format('alter table %s enable row level security', p_table);
  execute pg_catalog.format(
    'create policy tenant_isolation on %s for all to authenticated '
    'using (tenant_id = any ((select hourglass.current_tenant_ids())::uuid[])) '
    'with check (tenant_id = any ((select hourglass.current_tenant_ids())::uuid[]))', p_table);
  execute pg_catalog.format(
    'create policy service_role_bypass on %s for all to service_role using (true) with check (true)', p_table);
end
$function$;

-- function hourglass.engagement_frequency(uuid,text,uuid)
CREATE OR REPLACE FUNCTION hourglass.engagement_frequency(p_tenant_id uuid, p_entity_type text, p_entity_id uuid, OUT days integer, OUT source text)
 RETURNS record
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  v_tier text;
  v_segment text;
begin
  if p_entity_type = 'account' then
    select a.tier, a.segment into v_tier, v_segment from public.accounts a where a.tenant_id = p_tenant_id and a.id = p_entity_id;
  else
    select a.tier, a.segment into v_tier, v_segment
    from public.contacts c join public.accounts a on a.tenant_id = c.tenant_id and a.id = c.account_id
    where c.tenant_id = p_tenant_id and c.id = p_entity_id;
  end if;

  select r.touch_frequency_days into days from public.engagement_frequency_rules r
  where r.tenant_id = p_tenant_id and r.dimension = 'segment' and r.value = v_segment;
  if found then
    source := 'segment';
    return;
  end if;

  select r.touch_frequency_days into days from public.engagement_frequency_rules r
  where r.tenant_id = p_tenant_id and r.dimension = 'tier' and r.value = v_tier;
  if found then
    source := 'tier';
    return;
  end if;

  days := greatest(hourglass.tenant_setting_int(p_tenant_id, 'touch_frequency_days', 21), 1);
  source := 'tenant';
end
$function$;
grant execute on function hourglass.engagement_frequency(uuid,text,uuid) to authenticated;
grant execute on function hourglass.engagement_frequency(uuid,text,uuid) to service_role;

-- function hourglass.engagement_frequency_targets(uuid,uuid)
CREATE OR REPLACE FUNCTION hourglass.engagement_frequency_targets(p_tenant_id uuid, p_account_id uuid)
 RETURNS TABLE(entity_type text, entity_id uuid)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select c.entity_type, c.entity_id from public.engagement_clocks c
  where c.tenant_id = p_tenant_id and p_account_id is null
  union all
  select 'account', p_account_id where p_account_id is not null
  union all
  select 'contact', k.id from public.contacts k where p_account_id is not null and k.tenant_id = p_tenant_id and k.account_id = p_account_id
$function$;

-- function hourglass.enqueue_order(uuid,uuid)
CREATE OR REPLACE FUNCTION hourglass.enqueue_order(p_tenant_id uuid, p_order_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_status text;
begin
  select o.status into v_status from public.orders o where o.tenant_id = p_tenant_id and o.id = p_order_id;
  if v_status is null or v_status = 'draft' then
    return;
  end if;
  insert into public.order_processing_queue as q (tenant_id, order_id, status, created_at, updated_at)
  values (p_tenant_id, p_order_id, case when v_status = 'cancelled' then 'cancelled' else 'pending' end, hourglass.now(), hourglass.now())
  on conflict (tenant_id, order_id) do update set
    status = case when v_status = 'cancelled' then 'cancelled' else 'pending' end,
    pricing_status = 'pending', credit_status = 'pending', requirements_status = 'pending',
    auto_fix_attempts = 0, claimed_by = null, claimed_until = null, updated_at = hourglass.now()
  -- Withdrawn by a person: cancelled by the dismissal of one of its exceptions, and not changed since.
  where not (q.status = 'cancelled' and exists (
    select 1 from public.order_processing_exceptions e
    where e.tenant_id = q.tenant_id and e.queue_id = q.id and e.resolution_status = 'dismissed' and e.resolved_at >= q.updated_at));
  -- An entry being processed goes back to pending too: the processor's write is fenced on its claim (status
  -- 'processing', claimed_by, claim_token) and changes nothing, and the changed order is validated again.
end
$function$;

-- function hourglass.freeze_time(timestamp with time zone)
CREATE OR REPLACE FUNCTION hourglass.freeze_time(p_at timestamp with time zone)
 RETURNS timestamp with time zone
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if p_at is null then
    raise exception using errcode = '22004', message = 'freeze_time: p_at must not be null';
  end if;
  insert into hourglass.clock_override (singleton, frozen_at, set_at, set_by)
  values (true, p_at, pg_catalog.now(), session_user)
  on conflict (singleton) do update
    set frozen_at = excluded.frozen_at, set_at = excluded.set_at, set_by = excluded.set_by;
  return p_at;
end
$function$;
grant execute on function hourglass.freeze_time(timestamp with time zone) to service_role;

-- function hourglass.guard_client_pattern()
CREATE OR REPLACE FUNCTION hourglass.guard_client_pattern()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_refused text[] := '{}'::text[];
begin
  if new.pattern_data is distinct from old.pattern_data then v_refused := v_refused || 'pattern_data'::text; end if;
  if new.confidence is distinct from old.confidence then v_refused := v_refused || 'confidence'::text; end if;
  if new.evidence_count is distinct from old.evidence_count then v_refused := v_refused || 'evidence_count'::text; end if;
  if new.is_active is distinct from old.is_active then v_refused := v_refused || 'is_active'::text; end if;
  if new.first_detected_at is distinct from old.first_detected_at then v_refused := v_refused || 'first_detected_at'::text; end if;
  if new.last_confirmed_at is distinct from old.last_confirmed_at then v_refused := v_refused || 'last_confirmed_at'::text; end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('client_patterns', v_refused, 'is the insights detectors'' finding from warehouse_events',
      'correct or add the events (ingest_events) and the detectors revise the pattern; delete the row to have it detected afresh');
  end if;
  return new;
end
$function$;

-- function hourglass.guard_contact_opt_out()
CREATE OR REPLACE FUNCTION hourglass.guard_contact_opt_out()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  if old.opted_out_at is not null and new.opted_out_at is distinct from old.opted_out_at and not hourglass.caller_bypasses_rls() then
    raise exception using errcode = '42501',
      message = pg_catalog.format('contacts.opted_out_at: contact %s opted out at %s; a user cannot clear or change an opt-out (the host CRM''s service role records an opt-in)',
        old.id, old.opted_out_at);
  end if;
  return new;
end
$function$;

-- function hourglass.guard_engagement_clock()
CREATE OR REPLACE FUNCTION hourglass.guard_engagement_clock()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_refused text[] := '{}'::text[];
  v_frequency record;
begin
  if tg_op = 'INSERT' then
    if new.compliance_status <> 'compliant' then v_refused := v_refused || 'compliance_status'::text; end if;
    if new.days_overdue <> 0 then v_refused := v_refused || 'days_overdue'::text; end if;
    if new.priority_score <> 0 then v_refused := v_refused || 'priority_score'::text; end if;
    if new.priority_reason is not null then v_refused := v_refused || 'priority_reason'::text; end if;
    if pg_catalog.cardinality(v_refused) > 0 then
      perform hourglass.refuse_derived_write('engagement_clocks', v_refused, 'is computed by refresh_engagement_compliance',
        'insert the clock without it and call refresh_engagement_compliance(tenant_id)');
    end if;
    -- A frequency given that is not the rule's is the clock's own.
    if new.frequency_override_days is null and new.touch_frequency_days <> 21 then
      select f.days, f.source into v_frequency from hourglass.engagement_frequency(new.tenant_id, new.entity_type, new.entity_id) f;
      if new.touch_frequency_days <> v_frequency.days then
        new.frequency_override_days := new.touch_frequency_days;
      end if;
    end if;
    if new.frequency_override_days is not null then
      new.touch_frequency_days := new.frequency_override_days;
      new.frequency_source := 'clock';
    end if;
    return new;
  end if;

  if new.frequency_source is distinct from old.frequency_source then
    v_refused := v_refused || 'frequency_source'::text;
  end if;
  if new.next_touch_due is distinct from old.next_touch_due then
    v_refused := v_refused || 'next_touch_due'::text;
  end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('engagement_clocks', v_refused,
      case v_refused[1] when 'frequency_source' then 'says where touch_frequency_days comes from (the clock, a segment, a tier or the tenant)'
                        else 'is derived (the last touch, or the clock''s creation, plus touch_frequency_days)' end,
      'to change how often the clock is due, set frequency_override_days (null follows the rules again); '
      || 'to restart it, record a touch with update_engagement_clock or record_touches (which takes the touch''s occurred_at)');
  end if;

  if new.compliance_status is distinct from old.compliance_status then v_refused := v_refused || 'compliance_status'::text; end if;
  if new.days_overdue is distinct from old.days_overdue then v_refused := v_refused || 'days_overdue'::text; end if;
  if new.priority_score is distinct from old.priority_score then v_refused := v_refused || 'priority_score'::text; end if;
  if new.priority_reason is distinct from old.priority_reason then v_refused := v_refused || 'priority_reason'::text; end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('engagement_clocks', v_refused,
      'is computed by refresh_engagement_compliance (from next_touch_due, the account''s tier weight and churn risk)',
      'change what it follows (record a touch, set frequency_override_days, the tenant''s tier_weights), then call refresh_engagement_compliance(tenant_id)');
  end if;

  if new.last_touch_at is distinct from old.last_touch_at then v_refused := v_refused || 'last_touch_at'::text; end if;
  if new.last_touch_type is distinct from old.last_touch_type then v_refused := v_refused || 'last_touch_type'::text; end if;
  if new.last_touch_by is distinct from old.last_touch_by then v_refused := v_refused || 'last_touch_by'::text; end if;
  if new.touch_count is distinct from old.touch_count then v_refused := v_refused || 'touch_count'::text; end if;
  if new.recovered_at is distinct from old.recovered_at then v_refused := v_refused || 'recovered_at'::text; end if;
  if new.last_card_id is distinct from old.last_card_id and new.last_card_id is not null then
    v_refused := v_refused || 'last_card_id'::text;
  end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('engagement_clocks', v_refused, 'is the clock''s touch record, written by a touch',
      'record the touch with update_engagement_clock or record_touches (occurred_at for a touch made earlier)');
  end if;

  -- Honoured: a frequency written on the clock is its override, in force at once.
  if new.touch_frequency_days is distinct from old.touch_frequency_days then
    if new.touch_frequency_days > 366 then
      raise exception using errcode = '22023',
        message = pg_catalog.format('engagement_clocks.touch_frequency_days must be between 1 and 366 days (got %s)', new.touch_frequency_days);
    end if;
    if new.frequency_override_days is distinct from old.frequency_override_days
       and new.frequency_override_days is distinct from new.touch_frequency_days then
      raise exception using errcode = '22023',
        message = pg_catalog.format('engagement_clocks: touch_frequency_days (%s) and frequency_override_days (%s) disagree',
          new.touch_frequency_days, coalesce(new.frequency_override_days::text, 'null')),
        hint = 'set frequency_override_days alone: it is the clock''s own frequency';
    end if;
    new.frequency_override_days := new.touch_frequency_days;
    new.frequency_source := 'clock';
    new.next_touch_due := coalesce(new.last_touch_at, new.created_at) + pg_catalog.make_interval(days => new.touch_frequency_days);
  end if;
  return new;
end
$function$;

-- function hourglass.guard_order_queue_entry()
CREATE OR REPLACE FUNCTION hourglass.guard_order_queue_entry()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_refused text[] := '{}'::text[];
  v_claim boolean;
  v_reset boolean;
begin
  if tg_op = 'INSERT' then
    if new.status not in ('pending', 'cancelled') then v_refused := v_refused || 'status'::text; end if;
    if new.pricing_status <> 'pending' then v_refused := v_refused || 'pricing_status'::text; end if;
    if new.credit_status <> 'pending' then v_refused := v_refused || 'credit_status'::text; end if;
    if new.requirements_status <> 'pending' then v_refused := v_refused || 'requirements_status'::text; end if;
    if new.auto_fix_attempts <> 0 then v_refused := v_refused || 'auto_fix_attempts'::text; end if;
    if new.validation_results <> '{}'::jsonb then v_refused := v_refused || 'validation_results'::text; end if;
    if new.processed_at is not null then v_refused := v_refused || 'processed_at'::text; end if;
    if new.claimed_by is not null or new.claimed_until is not null or new.claim_token <> 0 then v_refused := v_refused || 'claimed_by'::text; end if;
    if pg_catalog.cardinality(v_refused) > 0 then
      perform hourglass.refuse_derived_write('order_processing_queue', v_refused, 'is written by the order processor',
        'queue an order as pending (or cancelled) and let the processor validate it; an order enters the queue by itself when placed');
    end if;
    return new;
  end if;

  -- A claim as claim_orders makes it: 'processing', a holder, an end, a new token.
  v_claim := new.status = 'processing' and new.claimed_by is not null and new.claimed_until is not null
             and new.claim_token is distinct from old.claim_token;
  v_reset := new.status in ('pending', 'cancelled');

  if new.status is distinct from old.status and not (v_reset or v_claim) then
    perform hourglass.refuse_derived_write('order_processing_queue', array['status'],
      case when new.status = 'processing' then '= ''processing'' is set by claim_orders, with a claim'
           else pg_catalog.format('= %L is the order processor''s verdict', new.status) end,
      'set status = ''pending'' to validate the order again, or ''cancelled'' to withdraw it; an order waiting for approval is '
      || 'released by deciding its approval card; an exception is closed with resolve_order_exception');
  end if;

  if new.pricing_status is distinct from old.pricing_status and not (v_reset and new.pricing_status = 'pending') then
    v_refused := v_refused || 'pricing_status'::text;
  end if;
  if new.credit_status is distinct from old.credit_status and not (v_reset and new.credit_status = 'pending') then
    v_refused := v_refused || 'credit_status'::text;
  end if;
  if new.requirements_status is distinct from old.requirements_status and not (v_reset and new.requirements_status = 'pending') then
    v_refused := v_refused || 'requirements_status'::text;
  end if;
  if new.auto_fix_attempts is distinct from old.auto_fix_attempts and not (v_reset and new.auto_fix_attempts = 0) then
    v_refused := v_refused || 'auto_fix_attempts'::text;
  end if;
  if new.validation_results is distinct from old.validation_results then v_refused := v_refused || 'validation_results'::text; end if;
  if new.processed_at is distinct from old.processed_at then v_refused := v_refused || 'processed_at'::text; end if;
  if not v_claim then
    if new.claim_token is distinct from old.claim_token then v_refused := v_refused || 'claim_token'::text; end if;
    if new.claimed_by is distinct from old.claimed_by and not (v_reset and new.claimed_by is null) then
      v_refused := v_refused || 'claimed_by'::text;
    end if;
    if new.claimed_until is distinct from old.claimed_until and not (v_reset and new.claimed_until is null) then
      v_refused := v_refused || 'claimed_until'::text;
    end if;
  end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('order_processing_queue', v_refused, 'is the order processor''s finding',
      'set status = ''pending'' to validate the order again (the checks start over); raise max_auto_fix_attempts to allow more fixes');
  end if;

  -- Back in the queue or withdrawn: no processor holds it any more.
  if v_reset and new.status is distinct from old.status then
    new.claimed_by := null;
    new.claimed_until := null;
  end if;
  return new;
end
$function$;

-- function hourglass.guard_success_strategy()
CREATE OR REPLACE FUNCTION hourglass.guard_success_strategy()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_refused text[] := '{}'::text[];
begin
  if tg_op = 'INSERT' then
    if new.effectiveness_score <> 0
       and round(new.effectiveness_score, 4) <> round((new.success_count + 1)::numeric / (new.usage_count + 2), 4) then
      v_refused := v_refused || 'effectiveness_score'::text;
    end if;
    if new.effectiveness_lower <> 0 then v_refused := v_refused || 'effectiveness_lower'::text; end if;
    if pg_catalog.cardinality(v_refused) > 0 then
      perform hourglass.refuse_derived_write('success_strategies', v_refused,
        'is computed from usage_count and success_count by attribute_strategy_outcomes',
        'give the strategy''s history as usage_count and success_count; its score follows from them');
    end if;
    return new;
  end if;

  if new.usage_count is distinct from old.usage_count then v_refused := v_refused || 'usage_count'::text; end if;
  if new.success_count is distinct from old.success_count then v_refused := v_refused || 'success_count'::text; end if;
  if new.effectiveness_score is distinct from old.effectiveness_score then v_refused := v_refused || 'effectiveness_score'::text; end if;
  if new.effectiveness_lower is distinct from old.effectiveness_lower then v_refused := v_refused || 'effectiveness_lower'::text; end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('success_strategies', v_refused,
      'is counted from judged outcomes (strategy_attributions) by attribute_strategy_outcomes',
      'to start a strategy''s record afresh, add it under a new strategy_key and set is_active = false on this one');
  end if;
  return new;
end
$function$;

-- function hourglass.is_capability_list(text[])
CREATE OR REPLACE FUNCTION hourglass.is_capability_list(p_capabilities text[])
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select p_capabilities is not null
    and pg_catalog.array_position(p_capabilities, null) is null
    and p_capabilities <@ hourglass.capabilities()
$function$;
grant execute on function hourglass.is_capability_list(text[]) to authenticated;
grant execute on function hourglass.is_capability_list(text[]) to service_role;

-- function hourglass.is_iana_timezone(text)
CREATE OR REPLACE FUNCTION hourglass.is_iana_timezone(p_name text)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  return p_name is not null and exists (select 1 from hourglass.timezones z where z.name = p_name);
end
$function$;
grant execute on function hourglass.is_iana_timezone(text) to authenticated;
grant execute on function hourglass.is_iana_timezone(text) to service_role;

-- function hourglass.is_visible_tenant(uuid)
CREATE OR REPLACE FUNCTION hourglass.is_visible_tenant(p_tenant_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select hourglass.caller_bypasses_rls() or p_tenant_id = any (hourglass.current_tenant_ids())
$function$;
grant execute on function hourglass.is_visible_tenant(uuid) to authenticated;
grant execute on function hourglass.is_visible_tenant(uuid) to service_role;

-- function hourglass.keep_latest_touch()
CREATE OR REPLACE FUNCTION hourglass.keep_latest_touch()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  new.last_touch_at := old.last_touch_at;
  new.last_touch_type := old.last_touch_type;
  new.last_touch_by := old.last_touch_by;
  new.last_card_id := old.last_card_id;
  new.recovered_at := old.recovered_at;
  new.next_touch_due := old.last_touch_at + pg_catalog.make_interval(days => new.touch_frequency_days);
  return new;
end
$function$;

-- function hourglass.lapse_outgrown_credit_override()
CREATE OR REPLACE FUNCTION hourglass.lapse_outgrown_credit_override()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_queue record;
begin
  select q.id, q.credit_override_by, q.credit_override_total into v_queue
  from public.order_processing_queue q
  where q.tenant_id = new.tenant_id and q.order_id = new.id and q.credit_override_by is not null and q.credit_override_total < new.total
  for update;
  if found then
    update public.order_processing_queue q
    set credit_override_by = null, credit_override_reason = null, credit_override_at = null, updated_at = hourglass.now()
    where q.id = v_queue.id;
    insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
    values (new.tenant_id, 'order_credit_override_lapsed', 'order', new.id,
            pg_catalog.jsonb_build_object('overridden_by', v_queue.credit_override_by, 'overridden_total', v_queue.credit_override_total,
                                          'total', new.total), 'hourglass', hourglass.now());
  end if;
  return null;
end
$function$;

-- function hourglass.now()
CREATE OR REPLACE FUNCTION hourglass.now()
 RETURNS timestamp with time zone
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  return coalesce((select o.frozen_at from hourglass.clock_override o where o.singleton), pg_catalog.now());
end
$function$;
grant execute on function hourglass.now() to anon;
grant execute on function hourglass.now() to authenticated;
grant execute on function hourglass.now() to service_role;

-- function hourglass.on_account_class_change()
CREATE OR REPLACE FUNCTION hourglass.on_account_class_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  perform hourglass.reapply_engagement_frequencies(new.tenant_id, new.id);
  return null;
end
$function$;

-- function hourglass.on_clock_override_change()
CREATE OR REPLACE FUNCTION hourglass.on_clock_override_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_frequency record;
begin
  if new.frequency_override_days is not null then
    new.touch_frequency_days := new.frequency_override_days;
    new.frequency_source := 'clock';
  else
    select f.days, f.source into v_frequency from hourglass.engagement_frequency(new.tenant_id, new.entity_type, new.entity_id) f;
    new.touch_frequency_days := v_frequency.days;
    new.frequency_source := v_frequency.source;
  end if;
  new.next_touch_due := coalesce(new.last_touch_at, new.created_at) + pg_catalog.make_interval(days => new.touch_frequency_days);
  return new;
end
$function$;

-- function hourglass.on_frequency_rule_change()
CREATE OR REPLACE FUNCTION hourglass.on_frequency_rule_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  perform hourglass.reapply_engagement_frequencies(coalesce(new.tenant_id, old.tenant_id));
  return null;
end
$function$;

-- function hourglass.on_order_change()
CREATE OR REPLACE FUNCTION hourglass.on_order_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  perform hourglass.enqueue_order(new.tenant_id, new.id);
  return null;
end
$function$;

-- function hourglass.on_order_line_change()
CREATE OR REPLACE FUNCTION hourglass.on_order_line_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if tg_op = 'DELETE' then
    perform hourglass.enqueue_order(old.tenant_id, old.order_id);
  else
    perform hourglass.enqueue_order(new.tenant_id, new.order_id);
  end if;
  return null;
end
$function$;

-- function hourglass.reapply_engagement_frequencies(uuid,uuid)
CREATE OR REPLACE FUNCTION hourglass.reapply_engagement_frequencies(p_tenant_id uuid, p_account_id uuid DEFAULT NULL::uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
declare
  v_row_count integer;
begin
  update public.engagement_clocks c
  set touch_frequency_days = f.days,
      frequency_source = f.source,
      next_touch_due = coalesce(c.last_touch_at, c.created_at) + pg_catalog.make_interval(days => f.days),
      updated_at = hourglass.now()
  from hourglass.engagement_frequency_targets(p_tenant_id, p_account_id) t
  cross join lateral hourglass.engagement_frequency(p_tenant_id, t.entity_type, t.entity_id) f
  where c.tenant_id = p_tenant_id and c.entity_type = t.entity_type and c.entity_id = t.entity_id
    and c.frequency_override_days is null
    and (c.touch_frequency_days, c.frequency_source) is distinct from (f.days, f.source);
  get diagnostics v_row_count = row_count;
  return v_row_count;
end
$function$;

-- function hourglass.record_engagement_touch(uuid,text,uuid,text,text,uuid)
CREATE OR REPLACE FUNCTION hourglass.record_engagement_touch(p_tenant_id uuid, p_entity_type text, p_entity_id uuid, p_touch_type text, p_touch_by text DEFAULT 'agent'::text, p_card_id uuid DEFAULT NULL::uuid)
 RETURNS uuid
 LANGUAGE plpgsql
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
declare
  v_now timestamptz;
  v_clock_id uuid;
  v_touched uuid;
  v_account_id uuid;
  v_target record;
  v_frequency record;
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
  if p_entity_type = 'contact' then
    select c.account_id into v_account_id from public.contacts c where c.tenant_id = p_tenant_id and c.id = p_entity_id;
    if not found then
      raise exception using errcode = '23503',
        message = pg_catalog.format('update_engagement_clock: contact %s does not exist in tenant %s', p_entity_id, p_tenant_id);
    end if;
  elsif not exists (select 1 from public.accounts a where a.tenant_id = p_tenant_id and a.id = p_entity_id) then
    raise exception using errcode = '23503',
      message = pg_catalog.format('update_engagement_clock: account %s does not exist in tenant %s', p_entity_id, p_tenant_id);
  end if;
  if p_card_id is not null
     and not exists (select 1 from public.cards k where k.tenant_id = p_tenant_id and k.id = p_card_id) then
    raise exception using errcode = '23503',
      message = pg_catalog.format('update_engagement_clock: card %s does not exist in tenant %s', p_card_id, p_tenant_id);
  end if;

  v_now := hourglass.now();
  for v_target in
    select t.entity_type, t.entity_id from (values (1, p_entity_type, p_entity_id), (2, 'account', v_account_id)) t(n, entity_type, entity_id)
    where t.entity_id is not null order by t.n
  loop
    select f.days, f.source into v_frequency from hourglass.engagement_frequency(p_tenant_id, v_target.entity_type, v_target.entity_id) f;
    insert into public.engagement_clocks as c (
      tenant_id, entity_type, entity_id, last_touch_at, last_touch_type, last_touch_by, last_card_id,
      next_touch_due, touch_frequency_days, frequency_source, touch_count, compliance_status, days_overdue, created_at, updated_at)
    values (
      p_tenant_id, v_target.entity_type, v_target.entity_id, v_now, p_touch_type, p_touch_by, p_card_id,
      v_now + pg_catalog.make_interval(days => v_frequency.days), v_frequency.days, v_frequency.source, 1, 'compliant', 0, v_now, v_now)
    on conflict (tenant_id, entity_type, entity_id) do update set
      last_touch_at = excluded.last_touch_at,
      last_touch_type = excluded.last_touch_type,
      last_touch_by = excluded.last_touch_by,
      last_card_id = excluded.last_card_id,
      touch_frequency_days = coalesce(c.frequency_override_days, excluded.touch_frequency_days),
      frequency_source = case when c.frequency_override_days is not null then 'clock' else excluded.frequency_source end,
      next_touch_due = excluded.last_touch_at + pg_catalog.make_interval(days => coalesce(c.frequency_override_days, excluded.touch_frequency_days)),
      touch_count = c.touch_count + 1,
      compliance_status = 'compliant',
      days_overdue = 0,
      priority_score = 0,
      priority_reason = null,
      recovered_at = case when c.next_touch_due < excluded.last_touch_at then excluded.last_touch_at else c.recovered_at end,
      updated_at = excluded.updated_at
    returning c.id into v_touched;
    v_clock_id := coalesce(v_clock_id, v_touched);

    update public.cards k
    set status = 'done', completed_at = v_now, completed_by = p_touch_by, updated_at = v_now,
        payload = k.payload || pg_catalog.jsonb_build_object('satisfied_by_touch', p_touch_type)
    where k.tenant_id = p_tenant_id and k.kind = 'touch_task' and k.status = 'open'
      and k.entity_type = v_target.entity_type and k.entity_id = v_target.entity_id;
  end loop;

  insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
  values (p_tenant_id, 'touch', p_entity_type, p_entity_id,
          pg_catalog.jsonb_build_object('touch_type', p_touch_type, 'touch_by', p_touch_by, 'card_id', p_card_id),
          case when p_card_id is not null then 'card' when p_touch_by = 'agent' then 'agent' else 'hourglass' end, v_now);
  return v_clock_id;
end
$function$;
grant execute on function hourglass.record_engagement_touch(uuid,text,uuid,text,text,uuid) to service_role;

-- function hourglass.reflection_rollup(timestamp with time zone,jsonb)
CREATE OR REPLACE FUNCTION hourglass.reflection_rollup(p_hour timestamp with time zone, p_runs jsonb, OUT what_we_did jsonb, OUT what_moved jsonb, OUT what_got_blocked jsonb, OUT what_we_will_try_next jsonb, OUT hypotheses jsonb, OUT insights jsonb, OUT summary text, OUT run_ids uuid[], OUT latest_run_id uuid)
 RETURNS record
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  v_entry jsonb;
  v_runs jsonb[] := '{}'::jsonb[];
  v_taken integer;
begin
  what_we_did := '[]';
  what_got_blocked := '[]';
  what_we_will_try_next := '[]';
  hypotheses := '[]';
  insights := '{}';
  run_ids := '{}';
  -- The runs in the order they were added to the hour (then by start and key: an order that never depends on storage).
  for v_entry in
    select e.value from pg_catalog.jsonb_each(p_runs) e
    order by (e.value ->> 'seq')::integer nulls last, (e.value ->> 'started_at')::timestamptz nulls first, e.key
  loop
    v_runs := v_runs || v_entry;
    what_we_did := what_we_did
      || case when pg_catalog.jsonb_typeof(v_entry -> 'what_we_did') = 'array' then v_entry -> 'what_we_did' else '[]'::jsonb end;
    what_got_blocked := what_got_blocked
      || case when pg_catalog.jsonb_typeof(v_entry -> 'what_got_blocked') = 'array' then v_entry -> 'what_got_blocked' else '[]'::jsonb end;
    what_we_will_try_next := what_we_will_try_next
      || case when pg_catalog.jsonb_typeof(v_entry -> 'what_we_will_try_next') = 'array' then v_entry -> 'what_we_will_try_next' else '[]'::jsonb end;
    hypotheses := hypotheses
      || case when pg_catalog.jsonb_typeof(v_entry -> 'hypotheses') = 'array' then v_entry -> 'hypotheses' else '[]'::jsonb end;
    -- Per part, the latest run's observations (each run observes what happened since the run before it).
    if pg_catalog.jsonb_typeof(v_entry -> 'insights') = 'object' then
      insights := insights || (v_entry -> 'insights');
    end if;
    if v_entry ->> 'run_id' is not null then
      latest_run_id := (v_entry ->> 'run_id')::uuid;
      run_ids := run_ids || latest_run_id;
    end if;
  end loop;

  if pg_catalog.cardinality(v_runs) <= 1 then
    -- One run: its own numbers, observations and words, unchanged.
    what_moved := case when pg_catalog.jsonb_typeof(v_runs[1] -> 'what_moved') = 'object' then v_runs[1] -> 'what_moved' else '{}'::jsonb end;
    insights := coalesce(v_runs[1] -> 'insights', '[]'::jsonb);
    summary := v_runs[1] ->> 'summary';
    return;
  end if;

  -- Several runs: each measure from where the hour's first run found it to where its latest left it.
  select coalesce(pg_catalog.jsonb_object_agg(m.key, pg_catalog.jsonb_build_object(
           'before', m.before, 'after', m.after,
           'delta', case when pg_catalog.jsonb_typeof(m.before) = 'number' and pg_catalog.jsonb_typeof(m.after) = 'number'
                         then pg_catalog.to_jsonb((m.after #>> '{}')::numeric - (m.before #>> '{}')::numeric) end)), '{}'::jsonb)
    into what_moved
  from (
    select k.key, (pg_catalog.array_agg(k.value -> 'before' order by r.n))[1] as before,
           (pg_catalog.array_agg(k.value -> 'after' order by r.n desc))[1] as after
    from pg_catalog.unnest(v_runs) with ordinality r(value, n)
    cross join lateral pg_catalog.jsonb_each(
      case when pg_catalog.jsonb_typeof(r.value -> 'what_moved') = 'object' then r.value -> 'what_moved' else '{}'::jsonb end) k
    group by k.key
  ) m;

  -- A repeat of an action an earlier run of the hour took ('already_done') is not counted twice.
  select pg_catalog.count(*) into v_taken
  from pg_catalog.jsonb_array_elements(what_we_did) a
  where coalesce(a.value ->> 'status', '') <> 'already_done';
  select pg_catalog.format('Hour %s UTC, %s runs: %s action%s taken, %s blocked or failed.',
           pg_catalog.to_char(p_hour at time zone 'UTC', 'YYYY-MM-DD HH24":00"'), pg_catalog.cardinality(v_runs),
           v_taken, case when v_taken = 1 then '' else 's' end, pg_catalog.jsonb_array_length(what_got_blocked))
         || ' ' || pg_catalog.string_agg(pg_catalog.format('Run %s (%s, started %s UTC): %s', r.n,
              coalesce(r.value ->> 'trigger', 'written directly'),
              coalesce(pg_catalog.to_char((r.value ->> 'started_at')::timestamptz at time zone 'UTC', 'HH24:MI'), '?'),
              coalesce(r.value ->> 'summary', '(no summary)')), ' ' order by r.n)
    into summary
  from pg_catalog.unnest(v_runs) with ordinality r(value, n);
end
$function$;
grant execute on function hourglass.reflection_rollup(timestamp with time zone,jsonb) to service_role;

-- function hourglass.refuse_derived_write(text,text[],text,text)
CREATE OR REPLACE FUNCTION hourglass.refuse_derived_write(p_table text, p_columns text[], p_why text, p_instead text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  raise exception using errcode = '428C9',
    message = pg_catalog.format('%s.%s %s and cannot be written directly', p_table, p_columns[1], p_why),
    detail = pg_catalog.format('refused column(s) written: %s', pg_catalog.array_to_string(p_columns, ', ')),
    hint = p_instead;
end
$function$;
grant execute on function hourglass.refuse_derived_write(text,text[],text,text) to service_role;

-- function hourglass.require_capability_to_write(regclass,text)
CREATE OR REPLACE FUNCTION hourglass.require_capability_to_write(p_table regclass, p_capability text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_tenants constant text := pg_catalog.format('tenant_id = any ((select hourglass.tenant_ids_with(%L))::uuid[])', p_capability);
begin
  execute pg_catalog.format('create policy capability_insert on %s as restrictive for insert to authenticated with check (%s)', p_table, v_tenants);
  execute pg_catalog.format('create policy capability_update on %s as restrictive for update to authenticated using (%s) with check (%s)',
    p_table, v_tenants, v_tenants);
  execute pg_catalog.format('create policy capability_delete on %s as restrictive for delete to authenticated using (%s)', p_table, v_tenants);
end
$function$;

-- function hourglass.roll_up_hourly_reflection()
CREATE OR REPLACE FUNCTION hourglass.roll_up_hourly_reflection()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_rollup record;
  v_column text;
  v_old jsonb;
  v_key text;
  v_seq integer;
begin
  if tg_op = 'UPDATE' then
    v_column := case
      when new.what_we_did is distinct from old.what_we_did then 'what_we_did'
      when new.what_moved is distinct from old.what_moved then 'what_moved'
      when new.what_got_blocked is distinct from old.what_got_blocked then 'what_got_blocked'
      when new.what_we_will_try_next is distinct from old.what_we_will_try_next then 'what_we_will_try_next'
      when new.hypotheses is distinct from old.hypotheses then 'hypotheses'
      when new.insights is distinct from old.insights then 'insights'
      when new.summary is distinct from old.summary then 'summary'
      when new.run_ids is distinct from old.run_ids then 'run_ids'
    end;
    if v_column is not null
       and (new.runs is distinct from old.runs or pg_catalog.current_setting('hourglass.derived_write', true) is distinct from 'on') then
      raise exception using errcode = '428C9',
        message = pg_catalog.format('agent_hourly_reflections.%s is the roll-up of the hour''s runs and cannot be written directly', v_column),
        hint = 'each run''s own reflection is kept in runs (and in its run record, agent_autonomous_runs.reflect_output); '
               || 'a cycle adds its run to the hour and the roll-up follows';
    end if;
    if new.runs is not distinct from old.runs then
      return new;
    end if;
  elsif new.runs = '{}'::jsonb then
    new.runs := pg_catalog.jsonb_build_object(coalesce(new.run_id::text, 'reflection:' || new.id::text), pg_catalog.jsonb_build_object(
      'seq', 1, 'run_id', new.run_id, 'started_at', new.created_at,
      'what_we_did', new.what_we_did, 'what_moved', new.what_moved, 'what_got_blocked', new.what_got_blocked,
      'what_we_will_try_next', new.what_we_will_try_next, 'hypotheses', new.hypotheses, 'insights', new.insights, 'summary', new.summary));
    new.run_ids := case when new.run_id is null then '{}'::uuid[] else array[new.run_id] end;
    return new;
  elsif (new.what_we_did, new.what_moved, new.what_got_blocked, new.what_we_will_try_next, new.hypotheses, new.insights, new.summary)
        is distinct from ('[]'::jsonb, '{}'::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb, null::text) then
    raise exception using errcode = '428C9',
      message = 'agent_hourly_reflections: a reflection is written either as runs (rolled up) or as its columns, not both';
  end if;

  -- Runs new to the hour are numbered after those it has (in start order among themselves): the order runs were
  -- added, which a frozen test clock or two runs started in the same instant cannot blur.
  v_old := case when tg_op = 'UPDATE' then old.runs else '{}'::jsonb end;
  select pg_catalog.count(*) into v_seq from pg_catalog.jsonb_object_keys(v_old) k;
  for v_key in
    select k from pg_catalog.jsonb_object_keys(new.runs) k
    where not v_old ? k
    order by (new.runs -> k ->> 'started_at')::timestamptz nulls first, k
  loop
    v_seq := v_seq + 1;
    new.runs := pg_catalog.jsonb_set(new.runs, array[v_key, 'seq'], pg_catalog.to_jsonb(v_seq));
  end loop;

  select * into v_rollup from hourglass.reflection_rollup(new.hour_bucket, new.runs);
  new.what_we_did := v_rollup.what_we_did;
  new.what_moved := v_rollup.what_moved;
  new.what_got_blocked := v_rollup.what_got_blocked;
  new.what_we_will_try_next := v_rollup.what_we_will_try_next;
  new.hypotheses := v_rollup.hypotheses;
  new.insights := v_rollup.insights;
  new.summary := v_rollup.summary;
  new.run_ids := v_rollup.run_ids;
  new.run_id := coalesce(v_rollup.latest_run_id, new.run_id);
  return new;
end
$function$;

-- function hourglass.stamp_credit_override_total()
CREATE OR REPLACE FUNCTION hourglass.stamp_credit_override_total()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if new.credit_override_by is null then
    new.credit_override_total := null;
  elsif tg_op = 'INSERT' or new.credit_override_at is distinct from old.credit_override_at then
    new.credit_override_total := (select o.total from public.orders o where o.tenant_id = new.tenant_id and o.id = new.order_id);
  end if;
  return new;
end
$function$;

-- function hourglass.tenant_ids_with(text)
CREATE OR REPLACE FUNCTION hourglass.tenant_ids_with(p_capability text)
 RETURNS uuid[]
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  return coalesce((
    select pg_catalog.array_agg(m.tenant_id) from public.tenant_members m
    join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
    where m.user_id = (select auth.uid()) and p_capability = any (r.capabilities)), '{}'::uuid[]);
end
$function$;
grant execute on function hourglass.tenant_ids_with(text) to authenticated;
grant execute on function hourglass.tenant_ids_with(text) to service_role;

-- function hourglass.tenant_setting_int(uuid,text,integer)
CREATE OR REPLACE FUNCTION hourglass.tenant_setting_int(p_tenant_id uuid, p_key text, p_default integer)
 RETURNS integer
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  return coalesce(
    (select case when t.settings ->> p_key ~ '^[0-9]{1,9}$' then (t.settings ->> p_key)::integer end
     from public.tenants t where t.id = p_tenant_id),
    p_default);
end
$function$;
grant execute on function hourglass.tenant_setting_int(uuid,text,integer) to authenticated;
grant execute on function hourglass.tenant_setting_int(uuid,text,integer) to service_role;

-- function hourglass.thaw_time()
CREATE OR REPLACE FUNCTION hourglass.thaw_time()
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
  delete from hourglass.clock_override where singleton
$function$;
grant execute on function hourglass.thaw_time() to service_role;

-- function hourglass.touch_batch_lines(uuid,jsonb,timestamp with time zone,interval)
CREATE OR REPLACE FUNCTION hourglass.touch_batch_lines(p_tenant_id uuid, p_touches jsonb, p_now timestamp with time zone, p_skew interval)
 RETURNS SETOF hourglass.touch_line
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  return query
  with raw as (
    select e.ordinality::integer as line, e.value as item,
           pg_catalog.jsonb_typeof(e.value) = 'object' as is_object
    from pg_catalog.jsonb_array_elements(p_touches) with ordinality e
  ), fields as (
    select r.line, r.is_object, r.item,
           case when r.is_object then r.item ->> 'entity_type' end as entity_type,
           case when r.is_object then r.item ->> 'entity_id' end as entity_id,
           case when r.is_object then r.item ->> 'touch_type' end as touch_type,
           case when r.is_object then coalesce(r.item ->> 'touch_by', 'api') end as touch_by,
           case when r.is_object then coalesce(r.item ->> 'source', 'api') end as source,
           case when r.is_object then r.item ->> 'occurred_at' end as occurred_at,
           case when r.is_object then r.item ->> 'idempotency_key' end as idempotency_key
    from raw r
  ), shaped as (
    -- Shape errors first, so that every cast below only sees text that parses.
    select f.*,
      case
        when not f.is_object then 'not a JSON object'
        when (f.item - array['entity_type', 'entity_id', 'touch_type', 'touch_by', 'occurred_at', 'idempotency_key', 'source']) <> '{}'::jsonb then
          pg_catalog.format('unknown field(s) %s (the fields are entity_type, entity_id, touch_type, touch_by, occurred_at, idempotency_key, source)',
            (select pg_catalog.string_agg(pg_catalog.quote_literal(k), ', ' order by k collate "C")
             from pg_catalog.jsonb_object_keys(f.item - array['entity_type', 'entity_id', 'touch_type', 'touch_by', 'occurred_at', 'idempotency_key', 'source']) k))
        when f.entity_type is null or f.entity_type not in ('contact', 'account')
          then pg_catalog.format('entity_type must be ''contact'' or ''account'' (got %s)', coalesce(pg_catalog.quote_literal(f.entity_type), 'nothing'))
        when f.entity_id is null or f.entity_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
          then pg_catalog.format('entity_id must be a uuid (got %s)', coalesce(pg_catalog.quote_literal(f.entity_id), 'nothing'))
        when f.touch_type is null or pg_catalog.btrim(f.touch_type) = '' or pg_catalog.length(f.touch_type) > 100
          then 'touch_type is required (1-100 characters)'
        when pg_catalog.btrim(f.touch_by) = '' or pg_catalog.length(f.touch_by) > 200 then 'touch_by must be 1-200 characters'
        when pg_catalog.btrim(f.source) = '' or pg_catalog.length(f.source) > 100 then 'source must be 1-100 characters'
        when f.occurred_at is not null and not case
            when f.occurred_at !~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?(Z|z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)$'
              then false
            when pg_catalog.substr(f.occurred_at, 1, 4) = '0000' then false
            -- 30 February passes the pattern, not the calendar: the month's length decides.
            else pg_catalog.substr(f.occurred_at, 9, 2)::integer <= case pg_catalog.substr(f.occurred_at, 6, 2)::integer
                when 2 then case when pg_catalog.substr(f.occurred_at, 1, 4)::integer % 4 = 0
                                       and (pg_catalog.substr(f.occurred_at, 1, 4)::integer % 100 <> 0
                                            or pg_catalog.substr(f.occurred_at, 1, 4)::integer % 400 = 0) then 29 else 28 end
                when 4 then 30 when 6 then 30 when 9 then 30 when 11 then 30
                else 31 end
          end
          then pg_catalog.format('occurred_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2025-12-01T09:30:00Z (got %L)', f.occurred_at)
        when f.idempotency_key is not null and (pg_catalog.btrim(f.idempotency_key) = '' or pg_catalog.length(f.idempotency_key) > 200)
          then 'idempotency_key must be 1-200 characters'
      end as shape_error
    from fields f
  ), typed as materialized (
    -- Materialized: inlined, every later reference re-ran each line's regex checks and casts.
    select s.line, s.entity_type,
           case when s.shape_error is null then s.entity_id::uuid end as entity_id,
           s.touch_type, s.touch_by, s.source,
           case when s.shape_error is null then coalesce(s.occurred_at::timestamptz, p_now) end as occurred_at,
           s.occurred_at is not null as explicit_time, s.idempotency_key, s.shape_error
    from shaped s
  ), resolved as (
    select t.*,
           k.account_id,
           case when t.entity_type = 'contact' then k.id is not null else a.id is not null end as entity_exists,
           w.entity_type as used_entity_type, w.entity_id as used_entity_id, w.occurred_at as used_occurred_at,
           w.payload ->> 'touch_type' as used_touch_type, w.id is not null as key_used,
           pg_catalog.row_number() over (partition by t.idempotency_key order by t.line) as key_rank,
           pg_catalog.first_value(row(t.entity_type, t.entity_id, t.touch_type, case when t.explicit_time then t.occurred_at end)::text)
             over (partition by t.idempotency_key order by t.line) as first_with_key
    from typed t
    -- One index probe per line (LATERAL with LIMIT is never pulled up into a join): as plain joins, a planner misled
    -- by stale statistics could hash a whole table for a small batch.
    left join lateral (select k.id, k.account_id from public.contacts k
                       where t.entity_type = 'contact' and k.tenant_id = p_tenant_id and k.id = t.entity_id limit 1) k on true
    left join lateral (select a.id from public.accounts a
                       where t.entity_type = 'account' and a.tenant_id = p_tenant_id and a.id = t.entity_id limit 1) a on true
    left join lateral (select w.id, w.entity_type, w.entity_id, w.occurred_at, w.payload from public.warehouse_events w
                       where t.idempotency_key is not null and w.tenant_id = p_tenant_id and w.idempotency_key = t.idempotency_key
                       limit 1) w on true
  )
  select r.line, r.entity_type, r.entity_id, r.account_id, r.touch_type, r.touch_by, r.source, r.occurred_at, r.idempotency_key,
         case when x.error is not null then 'rejected'
              when r.key_used or (r.idempotency_key is not null and r.key_rank > 1) then 'duplicate'
              else 'new' end,
         x.error
  from resolved r
  cross join lateral (select case
      when r.shape_error is not null then r.shape_error
      when not r.entity_exists then pg_catalog.format('%s %s does not exist in this tenant', r.entity_type, r.entity_id)
      when r.occurred_at < '1970-01-01 00:00:00+00'::timestamptz
        then pg_catalog.format('occurred_at %s is before 1970 (the accepted times are from 1970-01-01T00:00:00Z)', r.occurred_at)
      when r.occurred_at > p_now + p_skew
        then pg_catalog.format('occurred_at %s is in the future (more than %s ahead of the database clock)', r.occurred_at, p_skew)
      -- A resent line without its own time is the same touch whenever it is resent.
      when r.key_used and (r.used_entity_type, r.used_entity_id, r.used_touch_type, case when r.explicit_time then r.used_occurred_at end)
                          is distinct from (r.entity_type, r.entity_id, r.touch_type, case when r.explicit_time then r.occurred_at end)
        then pg_catalog.format('idempotency_key %L was already used for a different touch', r.idempotency_key)
      when r.idempotency_key is not null and r.key_rank > 1
           and r.first_with_key is distinct from row(r.entity_type, r.entity_id, r.touch_type, case when r.explicit_time then r.occurred_at end)::text
        then pg_catalog.format('idempotency_key %L appears earlier in the batch for a different touch', r.idempotency_key)
    end as error) x
  order by r.line;
end
$function$;
grant execute on function hourglass.touch_batch_lines(uuid,jsonb,timestamp with time zone,interval) to authenticated;
grant execute on function hourglass.touch_batch_lines(uuid,jsonb,timestamp with time zone,interval) to service_role;

-- function hourglass.touch_candidates(uuid,integer,boolean)
CREATE OR REPLACE FUNCTION hourglass.touch_candidates(p_tenant_id uuid, p_limit integer, p_skip_open boolean)
 RETURNS TABLE(clock_id uuid, entity_type text, entity_id uuid, account_id uuid, owner_user_id uuid, compliance_status text, days_overdue integer, next_touch_due timestamp with time zone, priority_score numeric, priority_reason text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_zone text;
  v_floor numeric;
begin
  v_now := hourglass.now();
  if not exists (select 1 from public.client_patterns p where p.tenant_id = p_tenant_id and p.pattern_type = 'best_time' and p.is_active) then
    return query
    select c.id, c.entity_type, c.entity_id, a.id, a.owner_user_id, c.compliance_status, c.days_overdue, c.next_touch_due,
           c.priority_score, c.priority_reason
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
      and (c.waiting_until is null or c.waiting_until <= v_now)
      and (not p_skip_open or (not exists (
        select 1 from public.cards o
        where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
          and o.kind in ('touch_task', 'approval') and o.status = 'open')
        and not exists (
        select 1 from public.message_outbox m
        where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)))
    order by c.priority_score desc, c.next_touch_due, c.id
    limit p_limit;
    return;
  end if;

  select t.timezone into v_zone from public.tenants t where t.id = p_tenant_id;
  -- The N-th stored priority among the candidates; nothing below it by more than the bonus can reach the top N.
  select c.priority_score into v_floor
  from public.engagement_clocks c
  where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
      and (c.waiting_until is null or c.waiting_until <= v_now)
    and (not p_skip_open or (not exists (
      select 1 from public.cards o
      where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
        and o.kind in ('touch_task', 'approval') and o.status = 'open')
      and not exists (
      select 1 from public.message_outbox m
      where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)))
  order by c.priority_score desc
  offset p_limit - 1 limit 1;

  return query
  select x.id, x.entity_type, x.entity_id, x.account_id, x.owner_user_id, x.compliance_status, x.days_overdue, x.next_touch_due,
         x.priority_score + x.bonus,
         case when x.bonus > 0 then pg_catalog.concat_ws('; ', x.priority_reason, pg_catalog.format('best time to reach now (+%s)', x.bonus))
              else x.priority_reason end
  from (
    select c.id, c.entity_type, c.entity_id, a.id as account_id, a.owner_user_id, c.compliance_status, c.days_overdue, c.next_touch_due,
           c.priority_score, c.priority_reason,
           case when bt.pattern_data -> 'best_slots' @> pg_catalog.to_jsonb(
                       (extract(isodow from v_now at time zone coalesce(k.timezone, a.timezone, v_zone, 'UTC'))::integer - 1) * 24
                       + extract(hour from v_now at time zone coalesce(k.timezone, a.timezone, v_zone, 'UTC'))::integer)
                then 20 else 0 end as bonus
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    left join public.client_patterns bt on bt.tenant_id = c.tenant_id and bt.entity_type = c.entity_type and bt.entity_id = c.entity_id
      and bt.pattern_type = 'best_time' and bt.is_active
    where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
      and (c.waiting_until is null or c.waiting_until <= v_now)
      and c.priority_score >= coalesce(v_floor - 20, '-infinity'::numeric)
      and (not p_skip_open or (not exists (
        select 1 from public.cards o
        where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
          and o.kind in ('touch_task', 'approval') and o.status = 'open')
        and not exists (
        select 1 from public.message_outbox m
        where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)))
  ) x
  order by x.priority_score + x.bonus desc, x.next_touch_due, x.id
  limit p_limit;
end
$function$;
grant execute on function hourglass.touch_candidates(uuid,integer,boolean) to authenticated;
grant execute on function hourglass.touch_candidates(uuid,integer,boolean) to service_role;

-- function hourglass.touch_candidates_ahead(uuid,integer[],integer)
CREATE OR REPLACE FUNCTION hourglass.touch_candidates_ahead(p_tenant_id uuid, p_capacity integer[], p_room integer)
 RETURNS TABLE(clock_id uuid, entity_type text, entity_id uuid, account_id uuid, owner_user_id uuid, compliance_status text, days_overdue integer, next_touch_due timestamp with time zone, priority_score numeric, priority_reason text)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with horizon as (
    select least(coalesce(pg_catalog.cardinality(p_capacity), 0),
                 greatest(hourglass.tenant_setting_int(p_tenant_id, 'level_ahead_days', 7), 0)) as days
  ),
  reachable as (
    select c.id, c.entity_type, c.entity_id, a.id as account_id, a.owner_user_id, c.compliance_status, c.days_overdue,
           c.next_touch_due, c.priority_score,
           greatest(pg_catalog.floor(extract(epoch from c.next_touch_due - hourglass.now()) / 86400), 0)::integer as day
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    where c.tenant_id = p_tenant_id
      and c.next_touch_due < hourglass.now() + pg_catalog.make_interval(days => (select h.days from horizon h))
      and (c.waiting_until is null or c.waiting_until <= hourglass.now())
      and k.opted_out_at is null and not coalesce(k.do_not_contact, false) and not coalesce(a.do_not_contact, false)
      and not exists (select 1 from public.cards o
                      where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
                        and o.kind in ('touch_task', 'approval') and o.status = 'open')
      and not exists (select 1 from public.message_outbox m
                      where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)
  ),
  days as (
    select d.day,
           (select count(*) from reachable r where r.day <= d.day) as due_by,
           (select coalesce(sum(x), 0) from pg_catalog.unnest(p_capacity[2:d.day + 1]) x) as capacity_after_today
    from pg_catalog.generate_series(0, (select h.days from horizon h) - 1) d(day)
  ),
  wave as (
    select w.day, w.due_by, w.due_by - w.capacity_after_today as today
    from days w
    order by w.due_by - w.capacity_after_today desc, w.day
    limit 1
  )
  select r.id, r.entity_type, r.entity_id, r.account_id, r.owner_user_id, r.compliance_status, r.days_overdue, r.next_touch_due,
         r.priority_score,
         pg_catalog.format('due %s, touched %s day(s) early: %s touches come due in the next %s day(s), more than the cap lets through on their own days',
                           pg_catalog.to_char(r.next_touch_due at time zone 'UTC', 'YYYY-MM-DD'), r.day, w.due_by, w.day + 1)
  from reachable r
  cross join wave w
  where r.compliance_status = 'compliant'
  order by r.next_touch_due, r.id
  limit greatest(least(coalesce(p_room, 0), (select w2.today from wave w2) - (select count(*) from reachable r2 where r2.compliance_status <> 'compliant')), 0)
$function$;
grant execute on function hourglass.touch_candidates_ahead(uuid,integer[],integer) to service_role;

-- function public.acquire_tenant_lease(uuid,text,text,integer)
CREATE OR REPLACE FUNCTION public.acquire_tenant_lease(p_tenant_id uuid, p_locked_by text, p_lock_type text DEFAULT 'autonomous_cycle'::text, p_lock_duration_minutes integer DEFAULT 30)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;
grant execute on function public.acquire_tenant_lease(uuid,text,text,integer) to service_role;

-- function public.acquire_tenant_lock(uuid,text,text,integer)
CREATE OR REPLACE FUNCTION public.acquire_tenant_lock(p_tenant_id uuid, p_locked_by text, p_lock_type text DEFAULT 'autonomous_cycle'::text, p_lock_duration_minutes integer DEFAULT 30)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  return public.acquire_tenant_lease(p_tenant_id, p_locked_by, p_lock_type, p_lock_duration_minutes) is not null;
end
$function$;
grant execute on function public.acquire_tenant_lock(uuid,text,text,integer) to service_role;

-- function public.apply_retention(uuid,timestamp with time zone)
CREATE OR REPLACE FUNCTION public.apply_retention(p_tenant_id uuid, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(events_deleted bigint, runs_deleted bigint)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_events_days integer;
  v_runs_days integer;
  v_events bigint := 0;
  v_runs bigint := 0;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'apply_retention');
  v_now := hourglass.now();
  if p_now > v_now then
    raise exception using errcode = '22023',
      message = pg_catalog.format('apply_retention: p_now must not be in the future (got %s, the database clock says %s)', p_now, v_now);
  end if;
  v_now := coalesce(p_now, v_now);
  v_events_days := hourglass.tenant_setting_int(p_tenant_id, 'retention_events_days', 730);
  v_runs_days := hourglass.tenant_setting_int(p_tenant_id, 'retention_runs_days', 90);

  if v_events_days > 0 then
    delete from public.warehouse_events w
    where w.tenant_id = p_tenant_id and w.occurred_at < v_now - pg_catalog.make_interval(days => v_events_days);
    get diagnostics v_events = row_count;
  end if;

  if v_runs_days > 0 then
    -- Reflections outlive their runs whatever their foreign key says: unlinked first, never deleted.
    update public.agent_hourly_reflections f set run_id = null
    where f.tenant_id = p_tenant_id and f.run_id in (
      select r.id from public.agent_autonomous_runs r
      where r.tenant_id = p_tenant_id and r.status <> 'running' and r.started_at < v_now - pg_catalog.make_interval(days => v_runs_days));
    delete from public.agent_autonomous_runs r
    where r.tenant_id = p_tenant_id and r.status <> 'running' and r.started_at < v_now - pg_catalog.make_interval(days => v_runs_days);
    get diagnostics v_runs = row_count;
  end if;

  return query select v_events, v_runs;
end
$function$;
grant execute on function public.apply_retention(uuid,timestamp with time zone) to service_role;

-- function public.assert_lock_token(uuid,bigint,text)
CREATE OR REPLACE FUNCTION public.assert_lock_token(p_tenant_id uuid, p_lock_token bigint, p_lock_type text DEFAULT 'autonomous_cycle'::text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'assert_lock_token');
  perform 1 from public.agent_tenant_locks l
  where l.tenant_id = p_tenant_id
    and l.lock_type = coalesce(p_lock_type, 'autonomous_cycle')
    and l.lock_token = p_lock_token
    and l.expires_at > hourglass.now()
  for key share;
  if not found then
    raise exception using errcode = 'HG001',
      message = pg_catalog.format('fencing token %s is no longer current for tenant %s (%s): the lease expired or passed to another worker',
        coalesce(p_lock_token::text, 'null'), p_tenant_id, coalesce(p_lock_type, 'autonomous_cycle'));
  end if;
end
$function$;
grant execute on function public.assert_lock_token(uuid,bigint,text) to service_role;

-- function public.attribute_strategy_outcomes(uuid)
CREATE OR REPLACE FUNCTION public.attribute_strategy_outcomes(p_tenant_id uuid)
 RETURNS TABLE(judged bigint, successes bigint)
 LANGUAGE plpgsql
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_window interval;
  v_since timestamptz;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'attribute_strategy_outcomes');
  v_now := hourglass.now();
  v_window := pg_catalog.make_interval(days => greatest(hourglass.tenant_setting_int(p_tenant_id, 'attribution_days', 7), 1));
  select pg_catalog.min(a.completed_at) into v_since
  from public.agent_actions a
  where a.tenant_id = p_tenant_id and a.status = 'succeeded' and a.payload ? 'strategy_key' and a.strategy_judged_at is null;
  if v_since is null then
    return query select 0::bigint, 0::bigint;
    return;
  end if;

  return query
  with candidates as materialized (
    -- Actions whose window has ended: judged now, with or without evidence.
    select a.id
    from public.agent_actions a
    where a.tenant_id = p_tenant_id and a.status = 'succeeded' and a.payload ? 'strategy_key' and a.strategy_judged_at is null
      and a.completed_at <= v_now - v_window
    union
    -- Actions on a target that replied since the oldest pending touch.
    select a.id
    from (select e.entity_type, e.entity_id, pg_catalog.max(e.occurred_at) as last_at
          from public.warehouse_events e
          where e.tenant_id = p_tenant_id and e.event_type = 'reply' and e.occurred_at > v_since and e.occurred_at <= v_now
          group by e.entity_type, e.entity_id) r
    join public.agent_actions a
      on a.tenant_id = p_tenant_id and a.target_id = r.entity_id and a.target_type = r.entity_type
     and a.status = 'succeeded' and a.payload ? 'strategy_key' and a.strategy_judged_at is null
     and a.completed_at < r.last_at
    union
    -- Actions on an account that ordered since then, or on one of its contacts.
    select a.id
    from (select o.account_id, pg_catalog.max(o.placed_at) as last_at
          from public.orders o
          where o.tenant_id = p_tenant_id and o.placed_at > v_since and o.placed_at <= v_now
          group by o.account_id) o
    cross join lateral (
      select 'account'::text as target_type, o.account_id as target_id
      union all
      select 'contact', k.id from public.contacts k where k.tenant_id = p_tenant_id and k.account_id = o.account_id) t
    join public.agent_actions a
      on a.tenant_id = p_tenant_id and a.target_id = t.target_id and a.target_type = t.target_type
     and a.status = 'succeeded' and a.payload ? 'strategy_key' and a.strategy_judged_at is null
     and a.completed_at < o.last_at
  ), pending as materialized (
    select a.id, a.payload ->> 'strategy_key' as strategy_key, a.target_type, a.target_id, a.completed_at,
           case a.target_type when 'account' then a.target_id else k.account_id end as account_id
    from candidates c
    join public.agent_actions a on a.id = c.id and a.tenant_id = p_tenant_id
    left join public.contacts k on a.target_type = 'contact' and k.tenant_id = a.tenant_id and k.id = a.target_id
  ), judged as (
    select p.*,
           coalesce(
             (select e.id from public.warehouse_events e
              where e.tenant_id = p_tenant_id and e.entity_type = p.target_type and e.entity_id = p.target_id and e.event_type = 'reply'
                and e.occurred_at > p.completed_at and e.occurred_at <= least(p.completed_at + v_window, v_now)
              order by e.occurred_at limit 1),
             (select o.id from public.orders o
              where o.tenant_id = p_tenant_id and o.account_id = p.account_id
                and o.placed_at > p.completed_at and o.placed_at <= least(p.completed_at + v_window, v_now)
              order by o.placed_at limit 1)) as evidence
    from pending p
  ), decided as (
    insert into public.strategy_attributions (tenant_id, action_id, strategy_key, touched_at, outcome, evidence_event_id, decided_at)
    select p_tenant_id, j.id, j.strategy_key, j.completed_at, case when j.evidence is not null then 'success' else 'failure' end, j.evidence, v_now
    from judged j
    where j.evidence is not null or j.completed_at + v_window <= v_now
    on conflict (tenant_id, action_id) do nothing
    returning action_id, strategy_key, outcome
  ), marked as (
    -- Judged now, or (a conflict above) before: either way it is no longer pending.
    update public.agent_actions a set strategy_judged_at = v_now
    from judged j
    where a.tenant_id = p_tenant_id and a.id = j.id and (j.evidence is not null or j.completed_at + v_window <= v_now)
    returning a.id
  ), per_strategy as (
    select d.strategy_key, pg_catalog.count(*) as n, pg_catalog.count(*) filter (where d.outcome = 'success') as s from decided d group by d.strategy_key
  ), updated as (
    update public.success_strategies st
    set usage_count = st.usage_count + ps.n, success_count = st.success_count + ps.s,
        effectiveness_score = (st.success_count + ps.s + 1)::numeric / (st.usage_count + ps.n + 2),
        effectiveness_lower = greatest(0, least(1,
          (st.success_count + ps.s + 1)::numeric / (st.usage_count + ps.n + 2)
          - 1.645 * sqrt(((st.success_count + ps.s + 1)::numeric * (st.usage_count - st.success_count + ps.n - ps.s + 1))
                         / ((st.usage_count + ps.n + 2)::numeric ^ 2 * (st.usage_count + ps.n + 3))))),
        updated_at = v_now
    from per_strategy ps
    where st.tenant_id = p_tenant_id and st.strategy_key = ps.strategy_key
    returning st.id
  )
  select (select coalesce(sum(ps.n), 0)::bigint from per_strategy ps), (select coalesce(sum(ps.s), 0)::bigint from per_strategy ps)
  from (select pg_catalog.count(*) from updated) u, (select pg_catalog.count(*) from marked) m;
end
$function$;
grant execute on function public.attribute_strategy_outcomes(uuid) to service_role;

-- function public.claim_orders(text,integer,integer,uuid)
CREATE OR REPLACE FUNCTION public.claim_orders(p_worker text, p_limit integer, p_visibility_seconds integer DEFAULT 300, p_tenant_id uuid DEFAULT NULL::uuid)
 RETURNS TABLE(queue_id uuid, tenant_id uuid, order_id uuid, claim_token bigint, auto_fix_attempts integer, max_auto_fix_attempts integer, credit_override_by text, credit_override_reason text)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  v_now timestamptz;
begin
  if p_worker is null or pg_catalog.btrim(p_worker) = '' then
    raise exception using errcode = '22023', message = 'claim_orders: p_worker must not be empty';
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    raise exception using errcode = '22023', message = pg_catalog.format('claim_orders: p_limit must be between 1 and 1000 (got %s)', p_limit);
  end if;
  if p_visibility_seconds is null or p_visibility_seconds < 1 then
    raise exception using errcode = '22023', message = 'claim_orders: p_visibility_seconds must be at least 1';
  end if;
  if p_tenant_id is not null then
    perform hourglass.assert_tenant_access(p_tenant_id, 'claim_orders');
  end if;
  -- The global kill switch: nothing is claimed.
  if (select c.paused from hourglass.agent_control c where c.singleton) then
    return;
  end if;
  v_now := hourglass.now();
  return query
  with pending as (
    select q.id from public.order_processing_queue q
    where q.status = 'pending' and (p_tenant_id is null or q.tenant_id = p_tenant_id)
      and not exists (select 1 from public.agent_tenant_schedules s where s.tenant_id = q.tenant_id and s.paused)
    order by q.priority desc, q.created_at
    limit p_limit
    for update of q skip locked
  ), lapsed as (
    select q.id from public.order_processing_queue q
    where q.status = 'processing' and q.claimed_until < v_now and (p_tenant_id is null or q.tenant_id = p_tenant_id)
      and not exists (select 1 from public.agent_tenant_schedules s where s.tenant_id = q.tenant_id and s.paused)
    limit p_limit
    for update of q skip locked
  ), picked as (
    select l.id from lapsed l
    union
    select p.id from pending p
    limit p_limit
  )
  update public.order_processing_queue q
  set status = 'processing', claimed_by = p_worker, claimed_until = v_now + pg_catalog.make_interval(secs => p_visibility_seconds),
      claim_token = pg_catalog.nextval('hourglass.order_claim_tokens'), updated_at = v_now
  from picked
  where q.id = picked.id
  returning q.id, q.tenant_id, q.order_id, q.claim_token, q.auto_fix_attempts, q.max_auto_fix_attempts, q.credit_override_by, q.credit_override_reason;
end
$function$;
grant execute on function public.claim_orders(text,integer,integer,uuid) to service_role;

-- function public.complete_touch_card(uuid,text,text)
CREATE OR REPLACE FUNCTION public.complete_touch_card(p_card_id uuid, p_touch_type text DEFAULT 'call'::text, p_notes text DEFAULT NULL::text)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
declare
  v_card record;
  v_by text;
begin
  if p_card_id is null then
    raise exception using errcode = '22004', message = 'complete_touch_card: p_card_id must not be null';
  end if;
  select k.id, k.tenant_id, k.kind, k.status, k.entity_type, k.entity_id, k.assignee_user_id into v_card
  from public.cards k where k.id = p_card_id for update;
  -- Another tenant's card is "not found", never leaked.
  if not found or not hourglass.is_visible_tenant(v_card.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('complete_touch_card: card %s not found', p_card_id);
  end if;
  perform hourglass.assert_tenant_access(v_card.tenant_id, 'complete_touch_card');
  perform hourglass.assert_card_worker(v_card.tenant_id, v_card.assignee_user_id, 'complete_touch_card');
  if v_card.kind <> 'touch_task' then
    raise exception using errcode = '22023', message = pg_catalog.format('complete_touch_card: card %s is a %s card, not a touch_task', p_card_id, v_card.kind);
  end if;
  if v_card.status <> 'open' then
    raise exception using errcode = '55000', message = pg_catalog.format('complete_touch_card: card %s is %s, not open', p_card_id, v_card.status);
  end if;

  v_by := hourglass.acting_as(null, 'complete_touch_card');
  update public.cards k
  set status = 'done', completed_at = hourglass.now(), completed_by = v_by, updated_at = hourglass.now(),
      payload = k.payload || pg_catalog.jsonb_build_object('touch_type', p_touch_type, 'notes', p_notes)
  where k.id = p_card_id;
  return hourglass.record_engagement_touch(v_card.tenant_id, v_card.entity_type, v_card.entity_id, p_touch_type, v_by, p_card_id);
end
$function$;
grant execute on function public.complete_touch_card(uuid,text,text) to authenticated;
grant execute on function public.complete_touch_card(uuid,text,text) to service_role;

-- function public.decide_approval(uuid,boolean,text,text)
CREATE OR REPLACE FUNCTION public.decide_approval(p_card_id uuid, p_approve boolean, p_note text DEFAULT NULL::text, p_by text DEFAULT NULL::text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_card record;
  v_by text;
  v_now timestamptz;
  v_status text;
begin
  if p_card_id is null then
    raise exception using errcode = '22004', message = 'decide_approval: p_card_id must not be null';
  end if;
  if p_approve is null then
    raise exception using errcode = '22004', message = 'decide_approval: p_approve must be true (approve) or false (reject)';
  end if;
  select k.id, k.tenant_id, k.kind, k.status, k.due_at into v_card from public.cards k where k.id = p_card_id for update;
  if not found or not hourglass.is_visible_tenant(v_card.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('decide_approval: card %s not found', p_card_id);
  end if;
  perform hourglass.assert_tenant_access(v_card.tenant_id, 'decide_approval');
  v_by := hourglass.acting_as(p_by, 'decide_approval');
  if v_card.kind <> 'approval' then
    raise exception using errcode = '22023', message = pg_catalog.format('decide_approval: card %s is a %s card, not an approval', p_card_id, v_card.kind);
  end if;
  v_now := hourglass.now();
  -- Past its due time it is expired, whether or not a cycle has swept it yet (the error rolls back any write
  -- here, so the sweep in the approvals part records the status).
  if v_card.status = 'open' and v_card.due_at is not null and v_card.due_at < v_now then
    v_card.status := 'expired';
  end if;
  if v_card.status <> 'open' then
    raise exception using errcode = '55000', message = pg_catalog.format('decide_approval: card %s is %s, not open%s', p_card_id, v_card.status,
      case when v_card.status = 'expired' then pg_catalog.format(' (it expired at %s)', v_card.due_at) else '' end);
  end if;

  v_status := case when p_approve then 'done' else 'dismissed' end;
  update public.cards k
  set status = v_status, completed_at = v_now, completed_by = v_by, updated_at = v_now,
      payload = k.payload || pg_catalog.jsonb_build_object('approval', pg_catalog.jsonb_build_object(
        'decision', case when p_approve then 'approved' else 'rejected' end, 'by', v_by, 'at', v_now, 'note', p_note))
  where k.id = p_card_id;
  return case when p_approve then 'approved' else 'rejected' end;
end
$function$;
grant execute on function public.decide_approval(uuid,boolean,text,text) to authenticated;
grant execute on function public.decide_approval(uuid,boolean,text,text) to service_role;

-- function public.dismiss_card(uuid,text)
CREATE OR REPLACE FUNCTION public.dismiss_card(p_card_id uuid, p_reason text DEFAULT NULL::text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_card record;
  v_by text;
  v_now timestamptz;
begin
  if p_card_id is null then
    raise exception using errcode = '22004', message = 'dismiss_card: p_card_id must not be null';
  end if;
  select k.id, k.tenant_id, k.kind, k.status, k.assignee_user_id into v_card from public.cards k where k.id = p_card_id for update;
  if not found or not hourglass.is_visible_tenant(v_card.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('dismiss_card: card %s not found', p_card_id);
  end if;
  perform hourglass.assert_tenant_access(v_card.tenant_id, 'dismiss_card');
  perform hourglass.assert_card_worker(v_card.tenant_id, v_card.assignee_user_id, 'dismiss_card');
  if v_card.kind not in ('touch_task', 'notice') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('dismiss_card: card %s is a %s card; only touch tasks and notices are dismissed (approvals: decide_approval; exception reviews: resolve_order_exception)',
        p_card_id, v_card.kind);
  end if;
  if v_card.status <> 'open' then
    raise exception using errcode = '55000', message = pg_catalog.format('dismiss_card: card %s is %s, not open', p_card_id, v_card.status);
  end if;
  v_by := hourglass.acting_as(null, 'dismiss_card');
  v_now := hourglass.now();
  update public.cards k
  set status = 'dismissed', completed_at = v_now, completed_by = v_by, updated_at = v_now,
      payload = k.payload || pg_catalog.jsonb_build_object('dismissed_because', p_reason)
  where k.id = p_card_id;
  return 'dismissed';
end
$function$;
grant execute on function public.dismiss_card(uuid,text) to authenticated;
grant execute on function public.dismiss_card(uuid,text) to service_role;

-- function public.engagement_movement(uuid,timestamp with time zone)
CREATE OR REPLACE FUNCTION public.engagement_movement(p_tenant_id uuid, p_since timestamp with time zone)
 RETURNS TABLE(newly_overdue bigint, recovered bigint)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  v_now timestamptz;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'engagement_movement');
  if p_since is null then
    raise exception using errcode = '22004', message = 'engagement_movement: p_since must not be null';
  end if;
  v_now := hourglass.now();
  return query select
    (select pg_catalog.count(*) from public.engagement_clocks c
     where c.tenant_id = p_tenant_id and c.next_touch_due >= p_since and c.next_touch_due < v_now),
    (select pg_catalog.count(*) from public.engagement_clocks c
     where c.tenant_id = p_tenant_id and c.recovered_at >= p_since);
end
$function$;
grant execute on function public.engagement_movement(uuid,timestamp with time zone) to authenticated;
grant execute on function public.engagement_movement(uuid,timestamp with time zone) to service_role;

-- function public.engagement_queue(uuid,integer)
CREATE OR REPLACE FUNCTION public.engagement_queue(p_tenant_id uuid, p_limit integer DEFAULT 50)
 RETURNS TABLE(clock_id uuid, entity_type text, entity_id uuid, account_id uuid, owner_user_id uuid, compliance_status text, days_overdue integer, next_touch_due timestamp with time zone, priority_score numeric, priority_reason text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'engagement_queue');
  if p_limit is null or p_limit <= 0 or p_limit > 1000 then
    raise exception using errcode = '22023', message = pg_catalog.format('engagement_queue: p_limit must be between 1 and 1000 (got %s)', coalesce(p_limit::text, 'null'));
  end if;
  return query select * from hourglass.touch_candidates(p_tenant_id, p_limit, false);
end
$function$;
grant execute on function public.engagement_queue(uuid,integer) to authenticated;
grant execute on function public.engagement_queue(uuid,integer) to service_role;

-- function public.inbound_event_trends(uuid,integer)
CREATE OR REPLACE FUNCTION public.inbound_event_trends(p_tenant_id uuid, p_days integer DEFAULT 30)
 RETURNS TABLE(day date, delivered bigint, bounces_hard bigint, bounces_soft bigint, complaints bigint, unsubscribes bigint, replies bigint, out_of_office bigint, skipped bigint)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  v_zone text;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'inbound_event_trends');
  if p_days is null or p_days < 1 or p_days > 366 then
    raise exception using errcode = '22023', message = pg_catalog.format('inbound_event_trends: p_days must be between 1 and 366 (got %s)', p_days);
  end if;
  select t.timezone into v_zone from public.tenants t where t.id = p_tenant_id;
  return query
  select (e.occurred_at at time zone coalesce(v_zone, 'UTC'))::date,
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.event_type = 'delivered'),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.event_type = 'bounce_hard'),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and (e.event_type = 'bounce_soft' or e.reply_label = 'bounce_notice')),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.event_type = 'complaint'),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and (e.event_type = 'unsubscribe' or e.reply_label = 'unsubscribe_request')),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.event_type = 'reply'
                                       and e.reply_label is distinct from 'out_of_office' and e.reply_label is distinct from 'unsubscribe_request'
                                       and e.reply_label is distinct from 'bounce_notice'),
         pg_catalog.count(*) filter (where e.effect <> 'skipped' and e.reply_label = 'out_of_office'),
         pg_catalog.count(*) filter (where e.effect = 'skipped')
  from public.message_delivery_events e
  where e.tenant_id = p_tenant_id and e.occurred_at >= hourglass.now() - pg_catalog.make_interval(days => p_days)
  group by 1
  order by 1;
end
$function$;
grant execute on function public.inbound_event_trends(uuid,integer) to authenticated;
grant execute on function public.inbound_event_trends(uuid,integer) to service_role;

-- function public.ingest_events(uuid,jsonb,text)
CREATE OR REPLACE FUNCTION public.ingest_events(p_tenant_id uuid, p_events jsonb, p_on_error text DEFAULT 'refuse'::text)
 RETURNS TABLE(line integer, outcome text, event_id uuid, idempotency_key text, error text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  v_fields constant text[] := array['event_type', 'entity_type', 'entity_id', 'payload', 'occurred_at', 'idempotency_key', 'source'];
  v_now timestamptz;
  v_skew integer;
  v_lines hourglass.event_line[];
  v_total integer;
  v_rejected integer;
  v_detail text;
  v_lost text[];
  v_conflicted text[];
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'ingest_events');
  if p_on_error is null or p_on_error not in ('refuse', 'skip') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('ingest_events: p_on_error must be ''refuse'' or ''skip'' (got %L)', p_on_error);
  end if;
  if p_events is null or pg_catalog.jsonb_typeof(p_events) <> 'array' then
    raise exception using errcode = '22023', message = 'ingest_events: p_events must be a JSON array of events';
  end if;
  v_total := pg_catalog.jsonb_array_length(p_events);
  if v_total > 10000 then
    raise exception using errcode = '54000',
      message = pg_catalog.format('ingest_events: at most 10000 events per batch (got %s)', v_total);
  end if;

  v_now := hourglass.now();
  v_skew := greatest(hourglass.tenant_setting_int(p_tenant_id, 'event_future_skew_seconds', 300), 0);

  -- Each step is materialized: inlined, every reference to a column would evaluate its expression again (the
  -- pattern checks ran four times per line).
  with fields as materialized (
    select e.ordinality::integer as line, e.value as item, pg_catalog.jsonb_typeof(e.value) as item_type,
           e.value ->> 'event_type' as event_type, e.value ->> 'entity_type' as entity_type, e.value ->> 'entity_id' as entity_id,
           e.value -> 'payload' as payload, e.value ->> 'occurred_at' as occurred_at,
           e.value ->> 'idempotency_key' as idempotency_key, e.value ->> 'source' as source,
           -- jsonb_typeof of each field that must be a string (null when absent).
           array[pg_catalog.jsonb_typeof(e.value -> 'event_type'), pg_catalog.jsonb_typeof(e.value -> 'entity_type'),
                 pg_catalog.jsonb_typeof(e.value -> 'entity_id'), pg_catalog.jsonb_typeof(e.value -> 'occurred_at'),
                 pg_catalog.jsonb_typeof(e.value -> 'idempotency_key'), pg_catalog.jsonb_typeof(e.value -> 'source')] as kinds
    from pg_catalog.jsonb_array_elements(p_events) with ordinality e
  ), shaped as materialized (
    -- Shape errors first, so that every cast below only sees text that parses. CASE keeps the order: the date
    -- arithmetic runs only on text the pattern matched.
    select f.line, f.event_type, f.entity_type, f.entity_id, f.payload, f.occurred_at, f.idempotency_key, f.source,
      case
        when f.item_type <> 'object' then 'not a JSON object'
        when (f.item - v_fields) <> '{}'::jsonb then
          pg_catalog.format('unknown field(s) %s (the fields are %s)',
            (select pg_catalog.string_agg(pg_catalog.quote_literal(k), ', ' order by k collate "C")
             from pg_catalog.jsonb_object_keys(f.item - v_fields) k),
            pg_catalog.array_to_string(v_fields, ', '))
        when f.kinds[1] not in ('string', 'null') then pg_catalog.format('event_type must be a string (got %s)', f.kinds[1])
        when f.kinds[2] not in ('string', 'null') then pg_catalog.format('entity_type must be a string (got %s)', f.kinds[2])
        when f.kinds[3] not in ('string', 'null') then pg_catalog.format('entity_id must be a string (got %s)', f.kinds[3])
        when f.kinds[4] not in ('string', 'null') then pg_catalog.format('occurred_at must be a string (got %s)', f.kinds[4])
        when f.kinds[5] not in ('string', 'null') then pg_catalog.format('idempotency_key must be a string (got %s)', f.kinds[5])
        when f.kinds[6] not in ('string', 'null') then pg_catalog.format('source must be a string (got %s)', f.kinds[6])
        when pg_catalog.jsonb_typeof(f.payload) not in ('object', 'null')
          then pg_catalog.format('payload must be a JSON object (got %s)', pg_catalog.jsonb_typeof(f.payload))
        when f.event_type is null or pg_catalog.btrim(f.event_type) = '' or pg_catalog.length(f.event_type) > 100
          then 'event_type is required (1-100 characters)'
        when f.entity_type is not null and f.entity_type not in ('contact', 'account', 'order', 'tenant')
          then pg_catalog.format('entity_type must be ''contact'', ''account'', ''order'' or ''tenant'' (got %L)', f.entity_type)
        when f.entity_type is null and f.entity_id is not null then 'entity_id is given without an entity_type'
        when f.entity_type is not null
             and (f.entity_id is null or f.entity_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
          then pg_catalog.format('entity_id must be a uuid (got %s)', coalesce(pg_catalog.quote_literal(f.entity_id), 'nothing'))
        when f.source is not null and (pg_catalog.btrim(f.source) = '' or pg_catalog.length(f.source) > 100)
          then 'source must be 1-100 characters'
        when f.occurred_at is not null and not case
            when f.occurred_at !~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?(Z|z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)$'
              then false
            when pg_catalog.substr(f.occurred_at, 1, 4) = '0000' then false
            -- 30 February passes the pattern, not the calendar: the month's length decides.
            else pg_catalog.substr(f.occurred_at, 9, 2)::integer <= case pg_catalog.substr(f.occurred_at, 6, 2)::integer
                when 2 then case when pg_catalog.substr(f.occurred_at, 1, 4)::integer % 4 = 0
                                       and (pg_catalog.substr(f.occurred_at, 1, 4)::integer % 100 <> 0
                                            or pg_catalog.substr(f.occurred_at, 1, 4)::integer % 400 = 0) then 29 else 28 end
                when 4 then 30 when 6 then 30 when 9 then 30 when 11 then 30
                else 31 end
          end
          then pg_catalog.format('occurred_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2025-12-01T09:30:00Z (got %L)', f.occurred_at)
        when f.idempotency_key is not null and (pg_catalog.btrim(f.idempotency_key) = '' or pg_catalog.length(f.idempotency_key) > 200)
          then 'idempotency_key must be 1-200 characters'
      end as shape_error
    from fields f
  ), checked as materialized (
    -- Everything but the keys: the entity in this tenant, the time within bounds. Every line gets an id; a new
    -- event keeps it, a duplicate later takes its first line's.
    select s.line, s.event_type, s.entity_type, t.entity_id, t.payload, coalesce(s.source, 'api') as source, t.occurred_at,
           s.occurred_at as occurred_text, s.occurred_at is not null as explicit_time, s.idempotency_key, pg_catalog.gen_random_uuid() as id,
           case
             when s.shape_error is not null then s.shape_error
             when (s.entity_type = 'contact' and k.id is null) or (s.entity_type = 'account' and a.id is null)
                  or (s.entity_type = 'order' and o.id is null)
               then pg_catalog.format('%s %s does not exist in this tenant', s.entity_type, t.entity_id)
             when s.entity_type = 'tenant' and t.entity_id <> p_tenant_id then pg_catalog.format('tenant %s is not this tenant', t.entity_id)
             when t.occurred_at < '1970-01-01 00:00:00+00'::timestamptz then pg_catalog.format('occurred_at %L is before 1970', s.occurred_at)
             when t.occurred_at > v_now + pg_catalog.make_interval(secs => v_skew)
               then pg_catalog.format('occurred_at %L is in the future (more than %s seconds ahead of the database clock)', s.occurred_at, v_skew)
           end as line_error
    from shaped s
    -- OFFSET 0 keeps the casts in one place (pulled up, they would be evaluated at every reference).
    cross join lateral (select case when s.shape_error is null then s.entity_id::uuid end as entity_id,
                               case when s.shape_error is null then coalesce(nullif(s.payload, 'null'::jsonb), '{}'::jsonb) end as payload,
                               case when s.shape_error is null then coalesce(s.occurred_at::timestamptz, v_now) end as occurred_at
                        offset 0) t
    -- One index probe per line: a LATERAL subquery with a LIMIT is never pulled up into a join, so it runs per line
    -- through the table's primary key. As plain joins, a planner misled by stale statistics hashed the whole table
    -- for a small batch. (Not EXISTS: the planner may turn an EXISTS into a hashed subplan, and drops its LIMIT.)
    left join lateral (select k.id from public.contacts k
                       where s.entity_type = 'contact' and k.tenant_id = p_tenant_id and k.id = t.entity_id limit 1) k on true
    left join lateral (select a.id from public.accounts a
                       where s.entity_type = 'account' and a.tenant_id = p_tenant_id and a.id = t.entity_id limit 1) a on true
    left join lateral (select o.id from public.orders o
                       where s.entity_type = 'order' and o.tenant_id = p_tenant_id and o.id = t.entity_id limit 1) o on true
  ), keyed as (
    -- The keys: the event already recorded under each (one index probe per keyed line), and the first valid line
    -- of the batch with it.
    select c.*, w.id as used_id, w.event_type as used_event_type, w.entity_type as used_entity_type, w.entity_id as used_entity_id,
           w.payload as used_payload, w.occurred_at as used_occurred_at,
           pg_catalog.first_value(c.line) over first_valid as first_line,
           pg_catalog.first_value(c.id) over first_valid as first_id,
           pg_catalog.first_value(c.event_type) over first_valid as first_event_type,
           pg_catalog.first_value(c.entity_type) over first_valid as first_entity_type,
           pg_catalog.first_value(c.entity_id) over first_valid as first_entity_id,
           pg_catalog.first_value(c.payload) over first_valid as first_payload,
           pg_catalog.first_value(c.occurred_at) over first_valid as first_occurred_at
    from checked c
    -- One probe of the unique (tenant_id, idempotency_key) index per keyed line (LIMIT: never a join).
    left join lateral (select w.id, w.event_type, w.entity_type, w.entity_id, w.payload, w.occurred_at
                       from public.warehouse_events w
                       where c.line_error is null and c.idempotency_key is not null
                         and w.tenant_id = p_tenant_id and w.idempotency_key = c.idempotency_key
                       limit 1) w on true
    window first_valid as (partition by c.idempotency_key, c.line_error is null order by c.line)
  ), decided as (
    select y.*,
      case
        when y.line_error is not null then y.line_error
        -- A resent line without its own time is the same event whenever it is resent.
        when y.used_id is not null
             and not ((y.used_event_type, y.used_entity_type, y.used_entity_id, y.used_payload)
                        is not distinct from (y.event_type, y.entity_type, y.entity_id, y.payload)
                      and (not y.explicit_time or y.used_occurred_at = y.occurred_at))
          then pg_catalog.format('idempotency_key %L was already used for a different event', y.idempotency_key)
        when y.idempotency_key is not null and y.line <> y.first_line
             and not ((y.first_event_type, y.first_entity_type, y.first_entity_id, y.first_payload)
                        is not distinct from (y.event_type, y.entity_type, y.entity_id, y.payload)
                      and (not y.explicit_time or y.first_occurred_at = y.occurred_at))
          then pg_catalog.format('idempotency_key %L appears earlier in the batch for a different event', y.idempotency_key)
      end as error
    from keyed y
  )
  select pg_catalog.array_agg(row(
           d.line,
           -- The event's id: a new one's own, a duplicate's first line's or the one recorded before.
           case when d.error is not null then null
                when d.used_id is not null then d.used_id
                when d.idempotency_key is not null then d.first_id
                else d.id end,
           d.event_type, d.entity_type, d.entity_id, d.payload, d.source, d.occurred_at, d.explicit_time, d.idempotency_key,
           case when d.error is not null then 'rejected'
                when d.used_id is not null or (d.idempotency_key is not null and d.line <> d.first_line) then 'duplicate'
                else 'new' end,
           d.error)::hourglass.event_line order by d.line)
    into v_lines
  from decided d;

  select pg_catalog.count(*) into v_rejected from pg_catalog.unnest(v_lines) l where l.status = 'rejected';
  if v_rejected > 0 and p_on_error = 'refuse' then
    select pg_catalog.string_agg(pg_catalog.format('line %s: %s', f.line, f.error), '; ' order by f.line) into v_detail
    from (select l.line, l.error from pg_catalog.unnest(v_lines) l where l.status = 'rejected' order by l.line limit 20) f;
    raise exception using errcode = '22023',
      message = pg_catalog.format('ingest_events: %s of %s events rejected, nothing recorded: %s',
        v_rejected, v_total, v_detail || case when v_rejected > 20 then '; …' else '' end),
      hint = 'fix the lines named, or pass p_on_error => ''skip'' to record the valid ones';
  end if;

  -- One statement writes the batch. A key taken meanwhile by a concurrent batch is skipped (the unique index
  -- waits for that batch to commit or roll back): its lines are resolved below.
  with written as (
    insert into public.warehouse_events as w (id, tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
    select l.id, p_tenant_id, l.event_type, l.entity_type, l.entity_id, l.payload, l.source, l.idempotency_key, l.occurred_at
    from pg_catalog.unnest(v_lines) l where l.status = 'new'
    on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
    returning w.id
  )
  select pg_catalog.array_agg(l.idempotency_key) into v_lost
  from pg_catalog.unnest(v_lines) l
  where l.status = 'new' and l.idempotency_key is not null and not exists (select 1 from written x where x.id = l.id);

  if v_lost is not null then
    -- A later statement sees the winner's row (READ COMMITTED takes a new snapshot): the same event makes the key's
    -- lines duplicates, a different one rejections — which refuse the batch in 'refuse' mode, rolling back what was
    -- written.
    select pg_catalog.array_agg(l.idempotency_key) into v_conflicted
    from pg_catalog.unnest(v_lines) l
    cross join lateral (select w.event_type, w.entity_type, w.entity_id, w.payload, w.occurred_at from public.warehouse_events w
                        where w.tenant_id = p_tenant_id and w.idempotency_key = l.idempotency_key limit 1) w
    where l.status = 'new' and l.idempotency_key = any (v_lost)
      and not ((w.event_type, w.entity_type, w.entity_id, w.payload) is not distinct from (l.event_type, l.entity_type, l.entity_id, l.payload)
               and (not l.explicit_time or w.occurred_at = l.occurred_at));
    if v_conflicted is not null and p_on_error = 'refuse' then
      raise exception using errcode = '22023',
        message = pg_catalog.format('ingest_events: %s of %s events rejected, nothing recorded: %s',
          (select pg_catalog.count(*) from pg_catalog.unnest(v_lines) l where l.status <> 'rejected' and l.idempotency_key = any (v_conflicted)), v_total,
          (select pg_catalog.string_agg(pg_catalog.format('line %s: idempotency_key %L was already used for a different event', l.line, l.idempotency_key), '; ' order by l.line)
           from (select l.line, l.idempotency_key from pg_catalog.unnest(v_lines) l
                 where l.status <> 'rejected' and l.idempotency_key = any (v_conflicted) order by l.line limit 20) l)),
        hint = 'a concurrent batch recorded other events under these keys';
    end if;
  end if;

  return query
  select l.line,
         case when l.status = 'rejected' then 'rejected'
              when l.idempotency_key = any (v_conflicted) then 'rejected'
              when l.idempotency_key = any (v_lost) then 'duplicate'
              when l.status = 'new' then 'recorded'
              else l.status end,
         case when l.status = 'rejected' or l.idempotency_key = any (v_conflicted) then null
              -- The event a concurrent batch recorded under the key (a subquery run only for these lines).
              when l.idempotency_key = any (v_lost)
                then (select w.id from public.warehouse_events w where w.tenant_id = p_tenant_id and w.idempotency_key = l.idempotency_key)
              else l.id end,
         l.idempotency_key,
         case when l.status <> 'rejected' and l.idempotency_key = any (v_conflicted)
              then pg_catalog.format('idempotency_key %L was already used for a different event', l.idempotency_key)
              else l.error end
  from pg_catalog.unnest(v_lines) l
  order by l.line;
end
$function$;
grant execute on function public.ingest_events(uuid,jsonb,text) to authenticated;
grant execute on function public.ingest_events(uuid,jsonb,text) to service_role;

-- function public.is_lock_token_current(uuid,bigint,text)
CREATE OR REPLACE FUNCTION public.is_lock_token_current(p_tenant_id uuid, p_lock_token bigint, p_lock_type text DEFAULT 'autonomous_cycle'::text)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'is_lock_token_current');
  return exists (
    select 1 from public.agent_tenant_locks l
    where l.tenant_id = p_tenant_id
      and l.lock_type = coalesce(p_lock_type, 'autonomous_cycle')
      and l.lock_token = p_lock_token
      and l.expires_at > hourglass.now());
end
$function$;
grant execute on function public.is_lock_token_current(uuid,bigint,text) to service_role;

-- function public.override_order_credit(uuid,text,text)
CREATE OR REPLACE FUNCTION public.override_order_credit(p_order_id uuid, p_reason text, p_by text DEFAULT NULL::text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
declare
  v_queue record;
  v_by text;
  v_now timestamptz;
begin
  if p_order_id is null then
    raise exception using errcode = '22004', message = 'override_order_credit: p_order_id must not be null';
  end if;
  if p_reason is null or pg_catalog.btrim(p_reason) = '' then
    raise exception using errcode = '22023', message = 'override_order_credit: p_reason must say why';
  end if;
  select q.id, q.tenant_id, q.status into v_queue from public.order_processing_queue q where q.order_id = p_order_id for update;
  if not found or not hourglass.is_visible_tenant(v_queue.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('override_order_credit: order %s is not in the processing queue', p_order_id);
  end if;
  perform hourglass.assert_tenant_access(v_queue.tenant_id, 'override_order_credit');
  v_by := hourglass.acting_as(p_by, 'override_order_credit');
  if v_queue.status in ('processing', 'cancelled') then
    raise exception using errcode = '55000', message = pg_catalog.format('override_order_credit: the order''s entry is %s', v_queue.status);
  end if;
  v_now := hourglass.now();
  update public.order_processing_queue q
  set credit_override_by = v_by, credit_override_reason = p_reason, credit_override_at = v_now,
      status = 'pending', credit_status = 'pending', claimed_by = null, claimed_until = null, updated_at = v_now
  where q.id = v_queue.id;
  insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
  values (v_queue.tenant_id, 'order_credit_override', 'order', p_order_id,
          pg_catalog.jsonb_build_object('by', v_by, 'reason', p_reason), 'hourglass', v_now);
  return 'overridden';
end
$function$;
grant execute on function public.override_order_credit(uuid,text,text) to authenticated;
grant execute on function public.override_order_credit(uuid,text,text) to service_role;

-- function public.policy_violation_trends(uuid,integer)
CREATE OR REPLACE FUNCTION public.policy_violation_trends(p_tenant_id uuid, p_days integer DEFAULT 30)
 RETURNS TABLE(day date, policy_key text, severity text, decision text, violations bigint)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  v_zone text;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'policy_violation_trends');
  if p_days is null or p_days < 1 or p_days > 366 then
    raise exception using errcode = '22023', message = pg_catalog.format('policy_violation_trends: p_days must be between 1 and 366 (got %s)', p_days);
  end if;
  select t.timezone into v_zone from public.tenants t where t.id = p_tenant_id;
  return query
  select (v.created_at at time zone coalesce(v_zone, 'UTC'))::date, v.policy_key, v.severity, v.decision, pg_catalog.count(*)
  from public.agent_policy_violations v
  where v.tenant_id = p_tenant_id and v.created_at >= hourglass.now() - pg_catalog.make_interval(days => p_days)
  group by 1, 2, 3, 4
  order by 1, 2, 3, 4;
end
$function$;
grant execute on function public.policy_violation_trends(uuid,integer) to authenticated;
grant execute on function public.policy_violation_trends(uuid,integer) to service_role;

-- function public.record_touches(uuid,jsonb,text)
CREATE OR REPLACE FUNCTION public.record_touches(p_tenant_id uuid, p_touches jsonb, p_on_error text DEFAULT 'refuse'::text)
 RETURNS TABLE(line integer, outcome text, entity_type text, entity_id uuid, idempotency_key text, error text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_skew interval;
  v_due_soon timestamptz;
  v_lines hourglass.touch_line[];
  v_rejected integer;
  v_detail text;
  v_recorded text[];
  v_written integer;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'record_touches');
  if p_on_error is null or p_on_error not in ('refuse', 'skip') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('record_touches: p_on_error must be ''refuse'' or ''skip'' (got %L)', p_on_error);
  end if;
  if p_touches is null or pg_catalog.jsonb_typeof(p_touches) <> 'array' then
    raise exception using errcode = '22023', message = 'record_touches: p_touches must be a JSON array of touches';
  end if;
  if pg_catalog.jsonb_array_length(p_touches) > 10000 then
    raise exception using errcode = '54000',
      message = pg_catalog.format('record_touches: at most 10000 touches per batch (got %s)', pg_catalog.jsonb_array_length(p_touches));
  end if;

  v_now := hourglass.now();
  v_skew := pg_catalog.make_interval(secs => greatest(hourglass.tenant_setting_int(p_tenant_id, 'touch_future_skew_seconds', 300), 0));
  v_due_soon := v_now + pg_catalog.make_interval(days => greatest(hourglass.tenant_setting_int(p_tenant_id, 'due_soon_days', 3), 0));

  select pg_catalog.array_agg(l order by l.line) into v_lines from hourglass.touch_batch_lines(p_tenant_id, p_touches, v_now, v_skew) l;
  select pg_catalog.count(*) into v_rejected from unnest(v_lines) l where l.status = 'rejected';
  select pg_catalog.string_agg(pg_catalog.format('line %s: %s', f.line, f.error), '; ' order by f.line) into v_detail
  from (select l.line, l.error from unnest(v_lines) l where l.status = 'rejected' order by l.line limit 20) f;
  if v_rejected > 0 and p_on_error = 'refuse' then
    raise exception using errcode = '22023',
      message = pg_catalog.format('record_touches: %s of %s touches rejected, nothing recorded: %s',
        v_rejected, pg_catalog.jsonb_array_length(p_touches), v_detail || case when v_rejected > 20 then '; …' else '' end),
      hint = 'fix the lines named, or pass p_on_error => ''skip'' to record the valid ones';
  end if;

  -- Clocks are created with their contact or account; one missing (deleted by hand) is recreated first.
  -- The missing targets first, in a sub-select the planner cannot merge (offset 0): merged, it called
  -- engagement_frequency (three queries) for every target of the batch before the anti-join dropped them.
  insert into public.engagement_clocks (tenant_id, entity_type, entity_id, next_touch_due, touch_frequency_days, frequency_source)
  select p_tenant_id, t.entity_type, t.entity_id, v_now + pg_catalog.make_interval(days => f.days), f.days, f.source
  from (
    select distinct m.entity_type, m.entity_id
    from unnest(v_lines) l
    cross join lateral (values (l.entity_type, l.entity_id), ('account', l.account_id)) m(entity_type, entity_id)
    -- One probe of the clocks' unique key per target (LATERAL with LIMIT, never an anti-join that could hash every
    -- clock of every tenant).
    left join lateral (select c.id from public.engagement_clocks c
                       where c.tenant_id = p_tenant_id and c.entity_type = m.entity_type and c.entity_id = m.entity_id limit 1) c on true
    where l.status = 'new' and m.entity_id is not null and c.id is null
    offset 0
  ) t
  cross join lateral hourglass.engagement_frequency(p_tenant_id, t.entity_type, t.entity_id) f
  on conflict (tenant_id, entity_type, entity_id) do nothing;

  -- One statement writes the batch: the events (a key taken meanwhile by a concurrent batch is skipped, and that
  -- line is a duplicate), then every touched clock and the touch cards the touches satisfied.
  with events as (
    insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
    select p_tenant_id, 'touch', l.entity_type, l.entity_id,
           pg_catalog.jsonb_build_object('touch_type', l.touch_type, 'touch_by', l.touch_by),
           l.source, l.idempotency_key, l.occurred_at
    from unnest(v_lines) l where l.status = 'new'
    on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
    returning public.warehouse_events.idempotency_key as recorded_key
  ), touched as (
    -- A line without a key is always written; one with a key only if its insert was not skipped.
    select t.entity_type, t.entity_id, l.occurred_at, l.touch_type, l.touch_by, l.line
    from unnest(v_lines) l
    cross join lateral (values (l.entity_type, l.entity_id), ('account', l.account_id)) t(entity_type, entity_id)
    where l.status = 'new' and t.entity_id is not null
      and (l.idempotency_key is null or l.idempotency_key in (select e.recorded_key from events e))
  ), per_clock as (
    select t.entity_type, t.entity_id, pg_catalog.count(*) as touches, pg_catalog.max(t.occurred_at) as latest,
           (pg_catalog.array_agg(t.touch_type order by t.occurred_at desc, t.line desc))[1] as touch_type,
           (pg_catalog.array_agg(t.touch_by order by t.occurred_at desc, t.line desc))[1] as touch_by
    from touched t group by t.entity_type, t.entity_id
  ), clocks as (
    update public.engagement_clocks c
    set last_touch_at = case when n.newer then p.latest else c.last_touch_at end,
        last_touch_type = case when n.newer then p.touch_type else c.last_touch_type end,
        last_touch_by = case when n.newer then p.touch_by else c.last_touch_by end,
        last_card_id = case when n.newer then null else c.last_card_id end,
        next_touch_due = case when n.newer then n.due else c.next_touch_due end,
        touch_count = c.touch_count + p.touches,
        -- Back within its cadence: compliant now. Still due (a touch long ago): the refresh below re-ranks it.
        compliance_status = case when n.newer and n.due > v_due_soon then 'compliant' else c.compliance_status end,
        days_overdue = case when n.newer and n.due > v_due_soon then 0 else c.days_overdue end,
        priority_score = case when n.newer and n.due > v_due_soon then 0 else c.priority_score end,
        priority_reason = case when n.newer and n.due > v_due_soon then null else c.priority_reason end,
        recovered_at = case when n.newer and c.next_touch_due < v_now and n.due >= v_now then v_now else c.recovered_at end,
        updated_at = v_now
    from per_clock p
    -- The clock as it was (UPDATE's FROM cannot see the target's columns laterally): one index probe per clock.
    cross join lateral (select o.id, o.last_touch_at, o.touch_frequency_days from public.engagement_clocks o
                        where o.tenant_id = p_tenant_id and o.entity_type = p.entity_type and o.entity_id = p.entity_id limit 1) o
    cross join lateral (select p.latest > coalesce(o.last_touch_at, '-infinity'::timestamptz) as newer,
                               p.latest + pg_catalog.make_interval(days => o.touch_frequency_days) as due) n
    where c.id = o.id
    returning c.entity_type, c.entity_id, c.compliance_status
  ), cards as (
    -- A touch that leaves its clock within cadence has done an open touch card's job. One so old that the clock
    -- is still due leaves the card open.
    update public.cards k
    set status = 'done', completed_at = v_now, completed_by = p.touch_by, updated_at = v_now,
        payload = k.payload || pg_catalog.jsonb_build_object('satisfied_by_touch', p.touch_type)
    from clocks x
    join per_clock p on p.entity_type = x.entity_type and p.entity_id = x.entity_id
    where x.compliance_status = 'compliant' and k.tenant_id = p_tenant_id and k.kind = 'touch_task' and k.status = 'open'
      and k.entity_type = x.entity_type and k.entity_id = x.entity_id
  )
  select pg_catalog.array_agg(e.recorded_key), pg_catalog.count(*) into v_recorded, v_written from events e;

  -- A backdated touch can leave a clock due soon or overdue: recompute those clocks' status and priority.
  if v_written > 0 and exists (
    select 1 from public.engagement_clocks c
    where c.tenant_id = p_tenant_id and c.updated_at = v_now and c.next_touch_due <= v_due_soon) then
    perform public.refresh_engagement_compliance(p_tenant_id);
  end if;

  return query
  select l.line,
         case when l.status = 'new' and l.idempotency_key is not null and not (l.idempotency_key = any (coalesce(v_recorded, '{}'))) then 'duplicate'
              when l.status = 'new' then 'recorded' else l.status end,
         l.entity_type, l.entity_id, l.idempotency_key, l.error
  from unnest(v_lines) l order by l.line;
end
$function$;
grant execute on function public.record_touches(uuid,jsonb,text) to authenticated;
grant execute on function public.record_touches(uuid,jsonb,text) to service_role;

-- function public.refresh_engagement_compliance(uuid)
CREATE OR REPLACE FUNCTION public.refresh_engagement_compliance(p_tenant_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET jit TO 'off'
 SET "hourglass.derived_write" TO 'on'
AS $function$
declare
  v_now timestamptz;
  v_due_soon timestamptz;
  v_tier_weights jsonb;
  v_row_count integer;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'refresh_engagement_compliance');

  v_now := hourglass.now();
  v_due_soon := v_now + pg_catalog.make_interval(days => greatest(hourglass.tenant_setting_int(p_tenant_id, 'due_soon_days', 3), 0));
  select coalesce(case when pg_catalog.jsonb_typeof(t.settings -> 'tier_weights') = 'object' then t.settings -> 'tier_weights' end,
                  '{"strategic": 30, "growth": 15}'::jsonb)
    into v_tier_weights from public.tenants t where t.id = p_tenant_id;

  -- One UPDATE, no self-join (a CTE joined back on id made the planner hash the tenant's every row): the
  -- candidate predicate is served by idx_engagement_clocks_tenant_due and the partial noncompliant index,
  -- IS DISTINCT FROM leaves unchanged rows unwritten, and the row-valued sub-select computes the priority's
  -- parts once per written row.
  update public.engagement_clocks c
  set (compliance_status, days_overdue, priority_score, priority_reason, updated_at) = (
    select x.status, x.days,
           case x.status when 'overdue' then 100 + 10 * x.days when 'due_soon' then 50 else 0 end + x.tier_weight + 40 * x.churn,
           case when x.status = 'compliant' then null else pg_catalog.concat_ws('; ',
             case x.status when 'overdue' then pg_catalog.format('overdue %s day(s) (+%s)', x.days, 100 + 10 * x.days) else 'due soon (+50)' end,
             case when x.tier_weight <> 0 then pg_catalog.format('tier %s (+%s)', x.tier, x.tier_weight) end,
             case when x.churn > 0 then pg_catalog.format('churn risk %s (+%s)', round(x.churn, 2), round(40 * x.churn, 1)) end) end,
           v_now
    from (
      select s.status, s.days, a.tier, coalesce((v_tier_weights ->> a.tier)::numeric, 0) as tier_weight,
             coalesce((select max(p.confidence) from public.client_patterns p
                       where p.tenant_id = c.tenant_id and p.pattern_type = 'churn_risk' and p.is_active
                         and ((p.entity_type = c.entity_type and p.entity_id = c.entity_id)
                              or (p.entity_type = 'account' and p.entity_id = a.id))), 0) as churn
      from (select
              case when c.next_touch_due < v_now then 'overdue' when c.next_touch_due <= v_due_soon then 'due_soon' else 'compliant' end as status,
              case when c.next_touch_due < v_now
                then pg_catalog.floor(extract(epoch from (v_now - c.next_touch_due)) / 86400)::integer else 0 end as days) s
      left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id
        else (select k.account_id from public.contacts k where k.tenant_id = c.tenant_id and k.id = c.entity_id) end
    ) x)
  where c.tenant_id = p_tenant_id
    and (c.next_touch_due <= v_due_soon or c.compliance_status <> 'compliant')
    and (c.compliance_status, c.days_overdue) is distinct from (
      case when c.next_touch_due < v_now then 'overdue' when c.next_touch_due <= v_due_soon then 'due_soon' else 'compliant' end,
      case when c.next_touch_due < v_now
        then pg_catalog.floor(extract(epoch from (v_now - c.next_touch_due)) / 86400)::integer else 0 end);

  get diagnostics v_row_count = row_count;
  return v_row_count;
end
$function$;
grant execute on function public.refresh_engagement_compliance(uuid) to authenticated;
grant execute on function public.refresh_engagement_compliance(uuid) to service_role;

-- function public.release_tenant_lock(uuid,text)
CREATE OR REPLACE FUNCTION public.release_tenant_lock(p_tenant_id uuid, p_locked_by text)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;
grant execute on function public.release_tenant_lock(uuid,text) to service_role;

-- function public.remove_tenant_member(uuid,uuid)
CREATE OR REPLACE FUNCTION public.remove_tenant_member(p_tenant_id uuid, p_user_id uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_old text;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'remove_tenant_member');
  if p_user_id is null then
    raise exception using errcode = '22004', message = 'remove_tenant_member: p_user_id must not be null';
  end if;
  select m.role into v_old from public.tenant_members m where m.tenant_id = p_tenant_id and m.user_id = p_user_id for update;
  if not found then
    return false;
  end if;
  if v_old = 'owner' then
    perform hourglass.assert_owner_change_allowed(p_tenant_id, 'remove_tenant_member');
    if not exists (select 1 from public.tenant_members m where m.tenant_id = p_tenant_id and m.role = 'owner' and m.user_id <> p_user_id) then
      raise exception using errcode = '55000', message = 'remove_tenant_member: this is the tenant''s last owner; make someone else owner first';
    end if;
  end if;
  delete from public.tenant_members m where m.tenant_id = p_tenant_id and m.user_id = p_user_id;
  return true;
end
$function$;
grant execute on function public.remove_tenant_member(uuid,uuid) to authenticated;
grant execute on function public.remove_tenant_member(uuid,uuid) to service_role;

-- function public.remove_tenant_role(uuid,text)
CREATE OR REPLACE FUNCTION public.remove_tenant_role(p_tenant_id uuid, p_role text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'remove_tenant_role');
  if p_role = 'owner' then
    raise exception using errcode = '22023', message = 'remove_tenant_role: the owner role cannot be removed';
  end if;
  if exists (select 1 from public.tenant_members m where m.tenant_id = p_tenant_id and m.role = p_role) then
    raise exception using errcode = '55000',
      message = pg_catalog.format('remove_tenant_role: members still have the role %L; give them another role first', p_role);
  end if;
  delete from public.tenant_roles r where r.tenant_id = p_tenant_id and r.role = p_role;
  return found;
end
$function$;
grant execute on function public.remove_tenant_role(uuid,text) to authenticated;
grant execute on function public.remove_tenant_role(uuid,text) to service_role;

-- function public.renew_tenant_lock(uuid,text,bigint,text,integer)
CREATE OR REPLACE FUNCTION public.renew_tenant_lock(p_tenant_id uuid, p_locked_by text, p_lock_token bigint, p_lock_type text DEFAULT 'autonomous_cycle'::text, p_lock_duration_minutes integer DEFAULT 30)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_now timestamptz;
  v_row_count integer;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'renew_tenant_lock');
  if p_locked_by is null or pg_catalog.btrim(p_locked_by) = '' then
    raise exception using errcode = '22023', message = 'renew_tenant_lock: p_locked_by must name the holder (empty given)';
  end if;
  if p_lock_token is null then
    raise exception using errcode = '22004', message = 'renew_tenant_lock: p_lock_token must not be null';
  end if;
  if p_lock_duration_minutes is null or p_lock_duration_minutes <= 0 then
    raise exception using errcode = '22023',
      message = pg_catalog.format('renew_tenant_lock: p_lock_duration_minutes must be > 0 (got %s)', coalesce(p_lock_duration_minutes::text, 'null'));
  end if;

  v_now := hourglass.now();
  -- An expired lease is lost even if nobody has taken it yet: renewing it would let a holder that stalled
  -- past its deadline carry on as if it had not.
  update public.agent_tenant_locks l
  set expires_at = v_now + pg_catalog.make_interval(mins => p_lock_duration_minutes)
  where l.tenant_id = p_tenant_id
    and l.lock_type = coalesce(p_lock_type, 'autonomous_cycle')
    and l.locked_by = p_locked_by
    and l.lock_token = p_lock_token
    and l.expires_at > v_now;
  get diagnostics v_row_count = row_count;
  return v_row_count > 0;
end
$function$;
grant execute on function public.renew_tenant_lock(uuid,text,bigint,text,integer) to service_role;

-- function public.resolve_order_exception(uuid,text,text,text)
CREATE OR REPLACE FUNCTION public.resolve_order_exception(p_exception_id uuid, p_resolution text, p_notes text, p_by text DEFAULT NULL::text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
declare
  v_exception record;
  v_by text;
  v_now timestamptz;
begin
  if p_exception_id is null then
    raise exception using errcode = '22004', message = 'resolve_order_exception: p_exception_id must not be null';
  end if;
  if p_resolution is null or p_resolution not in ('resolved', 'dismissed') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('resolve_order_exception: p_resolution must be ''resolved'' or ''dismissed'' (got %L)', p_resolution);
  end if;
  if p_notes is null or pg_catalog.btrim(p_notes) = '' then
    raise exception using errcode = '22023', message = 'resolve_order_exception: p_notes must say why';
  end if;
  select e.id, e.tenant_id, e.order_id, e.queue_id, e.resolution_status into v_exception
  from public.order_processing_exceptions e where e.id = p_exception_id for update;
  if not found or not hourglass.is_visible_tenant(v_exception.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('resolve_order_exception: exception %s not found', p_exception_id);
  end if;
  perform hourglass.assert_tenant_access(v_exception.tenant_id, 'resolve_order_exception');
  v_by := hourglass.acting_as(p_by, 'resolve_order_exception');
  if v_exception.resolution_status not in ('open', 'in_review') then
    raise exception using errcode = '55000',
      message = pg_catalog.format('resolve_order_exception: exception %s is already %s', p_exception_id, v_exception.resolution_status);
  end if;

  v_now := hourglass.now();
  update public.order_processing_exceptions e
  set resolution_status = p_resolution, resolved_by = v_by, resolved_at = v_now, resolution_notes = p_notes, updated_at = v_now
  where e.id = p_exception_id;
  update public.cards k
  set status = case when p_resolution = 'resolved' then 'done' else 'dismissed' end, completed_at = v_now, completed_by = v_by, updated_at = v_now
  where k.tenant_id = v_exception.tenant_id and k.kind = 'exception_review' and k.status = 'open'
    and k.payload ->> 'exception_id' = p_exception_id::text;

  if p_resolution = 'resolved' then
    -- Re-validate: a person changed what was wrong (or says it is right now); the fix attempts start over.
    update public.order_processing_queue q
    set status = 'pending', pricing_status = 'pending', credit_status = 'pending', requirements_status = 'pending',
        auto_fix_attempts = 0, claimed_by = null, claimed_until = null, updated_at = v_now
    where q.tenant_id = v_exception.tenant_id and q.id = v_exception.queue_id and q.status <> 'processing';
  else
    update public.order_processing_queue q
    set status = 'cancelled', claimed_by = null, claimed_until = null, updated_at = v_now
    where q.tenant_id = v_exception.tenant_id and q.id = v_exception.queue_id and q.status <> 'processing';
  end if;
  insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
  values (v_exception.tenant_id, 'order_exception_' || p_resolution, 'order', v_exception.order_id,
          pg_catalog.jsonb_build_object('exception_id', p_exception_id, 'by', v_by, 'notes', p_notes), 'hourglass', v_now);
  return p_resolution;
end
$function$;
grant execute on function public.resolve_order_exception(uuid,text,text,text) to authenticated;
grant execute on function public.resolve_order_exception(uuid,text,text,text) to service_role;

-- function public.review_order_exception(uuid,text)
CREATE OR REPLACE FUNCTION public.review_order_exception(p_exception_id uuid, p_by text DEFAULT NULL::text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_exception record;
  v_by text;
begin
  if p_exception_id is null then
    raise exception using errcode = '22004', message = 'review_order_exception: p_exception_id must not be null';
  end if;
  select e.id, e.tenant_id, e.order_id, e.resolution_status into v_exception
  from public.order_processing_exceptions e where e.id = p_exception_id for update;
  if not found or not hourglass.is_visible_tenant(v_exception.tenant_id) then
    raise exception using errcode = 'P0002', message = pg_catalog.format('review_order_exception: exception %s not found', p_exception_id);
  end if;
  perform hourglass.assert_tenant_access(v_exception.tenant_id, 'review_order_exception');
  v_by := hourglass.acting_as(p_by, 'review_order_exception');
  if v_exception.resolution_status <> 'open' then
    raise exception using errcode = '55000',
      message = pg_catalog.format('review_order_exception: exception %s is %s, not open', p_exception_id, v_exception.resolution_status);
  end if;
  update public.order_processing_exceptions e
  set resolution_status = 'in_review', updated_at = hourglass.now(),
      details = e.details || pg_catalog.jsonb_build_object('review', pg_catalog.jsonb_build_object('by', v_by, 'at', hourglass.now()))
  where e.id = p_exception_id;
  insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
  values (v_exception.tenant_id, 'order_exception_in_review', 'order', v_exception.order_id,
          pg_catalog.jsonb_build_object('exception_id', p_exception_id, 'by', v_by), 'hourglass', hourglass.now());
  return 'in_review';
end
$function$;
grant execute on function public.review_order_exception(uuid,text) to authenticated;
grant execute on function public.review_order_exception(uuid,text) to service_role;

-- function public.set_clock_frequency(uuid,text,uuid,integer)
CREATE OR REPLACE FUNCTION public.set_clock_frequency(p_tenant_id uuid, p_entity_type text, p_entity_id uuid, p_days integer)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
declare
  v_days integer;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'set_clock_frequency');
  if p_entity_type is null or p_entity_type not in ('contact', 'account') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('set_clock_frequency: p_entity_type must be ''contact'' or ''account'' (got %L)', p_entity_type);
  end if;
  if p_days is not null and (p_days < 1 or p_days > 366) then
    raise exception using errcode = '22023', message = pg_catalog.format('set_clock_frequency: p_days must be 1-366, or null for the rules (got %s)', p_days);
  end if;
  update public.engagement_clocks c set frequency_override_days = p_days
  where c.tenant_id = p_tenant_id and c.entity_type = p_entity_type and c.entity_id = p_entity_id
  returning c.touch_frequency_days into v_days;
  if not found then
    raise exception using errcode = '23503',
      message = pg_catalog.format('set_clock_frequency: %s %s has no clock in tenant %s', p_entity_type, p_entity_id, p_tenant_id);
  end if;
  return v_days;
end
$function$;
grant execute on function public.set_clock_frequency(uuid,text,uuid,integer) to authenticated;
grant execute on function public.set_clock_frequency(uuid,text,uuid,integer) to service_role;

-- function public.set_tenant_member(uuid,uuid,text)
CREATE OR REPLACE FUNCTION public.set_tenant_member(p_tenant_id uuid, p_user_id uuid, p_role text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_old text;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'set_tenant_member');
  if p_user_id is null then
    raise exception using errcode = '22004', message = 'set_tenant_member: p_user_id must not be null';
  end if;
  if p_role is null or not exists (select 1 from public.tenant_roles r where r.tenant_id = p_tenant_id and r.role = p_role) then
    raise exception using errcode = '22023',
      message = pg_catalog.format('set_tenant_member: p_role %L is not a role of the tenant (roles: %s)', p_role,
        (select pg_catalog.string_agg(r.role, ', ' order by r.role) from public.tenant_roles r where r.tenant_id = p_tenant_id));
  end if;
  select m.role into v_old from public.tenant_members m where m.tenant_id = p_tenant_id and m.user_id = p_user_id for update;
  if v_old is not distinct from p_role then
    return 'unchanged';
  end if;
  if p_role = 'owner' or v_old = 'owner' then
    perform hourglass.assert_owner_change_allowed(p_tenant_id, 'set_tenant_member');
  end if;
  if v_old = 'owner' and not exists (
      select 1 from public.tenant_members m where m.tenant_id = p_tenant_id and m.role = 'owner' and m.user_id <> p_user_id) then
    raise exception using errcode = '55000', message = 'set_tenant_member: this is the tenant''s last owner; make someone else owner first';
  end if;
  insert into public.tenant_members (tenant_id, user_id, role) values (p_tenant_id, p_user_id, p_role)
  on conflict (tenant_id, user_id) do update set role = excluded.role;
  return case when v_old is null then 'added' else 'changed' end;
end
$function$;
grant execute on function public.set_tenant_member(uuid,uuid,text) to authenticated;
grant execute on function public.set_tenant_member(uuid,uuid,text) to service_role;

-- function public.set_tenant_role(uuid,text,text[],text)
CREATE OR REPLACE FUNCTION public.set_tenant_role(p_tenant_id uuid, p_role text, p_capabilities text[], p_description text DEFAULT NULL::text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_existed boolean;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'set_tenant_role');
  if p_role is null or pg_catalog.btrim(p_role) = '' or pg_catalog.length(p_role) > 63 then
    raise exception using errcode = '22023', message = 'set_tenant_role: p_role must be 1-63 characters';
  end if;
  if p_role = 'owner' then
    raise exception using errcode = '22023', message = 'set_tenant_role: the owner role always has every capability';
  end if;
  if not hourglass.is_capability_list(p_capabilities) then
    raise exception using errcode = '22023',
      message = pg_catalog.format('set_tenant_role: p_capabilities %L has an unknown capability (known: %s)',
        p_capabilities, pg_catalog.array_to_string(hourglass.capabilities(), ', '));
  end if;
  -- Nobody grants what they do not hold: an admin cannot mint a role above their own.
  if not hourglass.caller_bypasses_rls() and not (p_capabilities <@ hourglass.current_capabilities(p_tenant_id)) then
    raise exception using errcode = '42501', message = 'set_tenant_role: a role may not have capabilities you do not have yourself';
  end if;
  v_existed := exists (select 1 from public.tenant_roles r where r.tenant_id = p_tenant_id and r.role = p_role);
  insert into public.tenant_roles (tenant_id, role, capabilities, description)
  values (p_tenant_id, p_role,
          (select pg_catalog.array_agg(distinct c order by c) from pg_catalog.unnest(p_capabilities || array['read']) c),
          p_description)
  on conflict (tenant_id, role) do update
    set capabilities = excluded.capabilities, description = coalesce(excluded.description, public.tenant_roles.description),
        updated_at = hourglass.now();
  return case when v_existed then 'changed' else 'added' end;
end
$function$;
grant execute on function public.set_tenant_role(uuid,text,text[],text) to authenticated;
grant execute on function public.set_tenant_role(uuid,text,text[],text) to service_role;

-- function public.update_engagement_clock(uuid,text,uuid,text,text,uuid)
CREATE OR REPLACE FUNCTION public.update_engagement_clock(p_tenant_id uuid, p_entity_type text, p_entity_id uuid, p_touch_type text, p_touch_by text DEFAULT 'agent'::text, p_card_id uuid DEFAULT NULL::uuid)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET "hourglass.derived_write" TO 'on'
AS $function$
begin
  return hourglass.record_engagement_touch(p_tenant_id, p_entity_type, p_entity_id, p_touch_type,
    case when hourglass.caller_bypasses_rls() then p_touch_by else hourglass.acting_as(null, 'update_engagement_clock') end, p_card_id);
end
$function$;
grant execute on function public.update_engagement_clock(uuid,text,uuid,text,text,uuid) to authenticated;
grant execute on function public.update_engagement_clock(uuid,text,uuid,text,text,uuid) to service_role;
