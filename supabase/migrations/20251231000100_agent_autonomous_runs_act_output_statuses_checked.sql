-- agent_autonomous_runs.act_output: each action's status must be one of the action statuses
-- (Hourglass.Cycles.ActionStatus, mapped to text in CycleStatuses alone). agent_actions.status holds, and checks, the
-- ledger's three (succeeded, failed, blocked); already_done (a key already recorded as succeeded) and would_run (a dry
-- run's permitted action) are never ledger rows and exist only here, so here is where the database checks them.
-- An act_output without actions (a run that stopped before Act) passes; an action without a status, or whose status is
-- not a string, does not.
-- jsonb_path_exists is immutable (PostgreSQL docs 9.16.2, "The SQL/JSON Path Language"), as a CHECK needs.

alter table public.agent_autonomous_runs
  add constraint agent_autonomous_runs_act_output_status_check check (
    act_output is null
    or not pg_catalog.jsonb_path_exists(act_output,
      '$.actions[*] ? (!(exists(@.status)) || @.status.type() != "string"
                      || !(@.status == "succeeded" || @.status == "failed" || @.status == "blocked" || @.status == "already_done" || @.status == "would_run"))'));

comment on constraint agent_autonomous_runs_act_output_status_check on public.agent_autonomous_runs is
  'Each act_output action status is one of succeeded, failed, blocked (the ledger''s, agent_actions.status), already_done, would_run.';
