-- The action ledger keeps every attempt of an action (issue 15, the upsert audit in docs/schema.md). A retried action
-- (failed or blocked in one run of its hour, run again by the next) used to overwrite its row: the earlier attempt's
-- run, decision and error were gone from the ledger. The cycle's upsert now appends the attempt it replaces here, oldest
-- first; the row itself stays the action's latest outcome (the idempotency key's state), as before.
alter table public.agent_actions
  add column previous_attempts jsonb not null default '[]'::jsonb check (pg_catalog.jsonb_typeof(previous_attempts) = 'array');
