-- message_delivery_events: the time a row was written is created_at, as on every other table (the guardrail tests and
-- the schema contract rely on it).
alter table public.message_delivery_events rename column recorded_at to created_at;
