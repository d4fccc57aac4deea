-- agent_autonomous_runs.dry_run: whether a run was a dry run, as a real boolean column instead of a key inside
-- cycle_metrics. Generated from cycle_metrics (STORED, PostgreSQL docs 5.4 "Generated Columns"), so every row already
-- written is backfilled by this statement, every writer that sets cycle_metrics.dry_run keeps working, and the column
-- can never disagree with the JSON. A run is a dry run only when the key holds JSON true, as monitoring_run_success
-- has always read it.

alter table public.agent_autonomous_runs
  add column dry_run boolean not null
  generated always as (coalesce((cycle_metrics -> 'dry_run') = 'true'::jsonb, false)) stored;

comment on column public.agent_autonomous_runs.dry_run is
  'True for a dry run (plan and policy decisions only, no side effects). Generated from cycle_metrics.dry_run.';

-- The status columns keep their names and their check constraints (agent_autonomous_runs_status_check,
-- agent_actions_status_check); the C# side maps them through one enum each (Hourglass.Cycles.CycleStatuses).
