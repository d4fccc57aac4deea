-- The message outbox: messages the agent sends (signed webhooks, email) are written in the same transaction as
-- the action that decides to send them, and a dispatcher delivers them afterwards, retrying with backoff. The
-- message exists iff the action committed; delivery is at least once, with an id a receiver can dedupe on
-- (docs/outbox.md).

-- ---------------------------------------------------------------------------------------------------
-- Per-tenant channels: where a tenant's webhooks go and how its email leaves. A table of its own, not
-- tenants.settings: every member can read tenants.settings, the rows here get CHECK constraints per
-- channel, and a channel can be switched off without touching the rest of the tenant's settings.
-- Secrets are never stored: secret_ref names where the dispatcher finds them (an environment variable of
-- the worker), so a database dump or a member's SELECT reveals no signing key or SMTP password.
-- ---------------------------------------------------------------------------------------------------

create table public.message_channels (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  channel text not null check (channel in ('webhook', 'email')),
  enabled boolean not null default true,
  -- webhook: where messages are POSTed; the signing secret ("whsec_" + base64) is in secret_ref.
  webhook_url text check (webhook_url is null or webhook_url ~* '^https?://[^\s/]+'),
  -- email: the SMTP relay and the From address; the relay's password (if any) is in secret_ref.
  smtp_host text check (smtp_host is null or pg_catalog.btrim(smtp_host) <> ''),
  smtp_port integer check (smtp_port is null or smtp_port between 1 and 65535),
  smtp_security text not null default 'auto' check (smtp_security in ('auto', 'starttls', 'tls', 'none')),
  smtp_username text,
  smtp_from text check (smtp_from is null or smtp_from ~ '^[^@\s<>]+@[^@\s<>]+$'),
  secret_ref text check (secret_ref is null or secret_ref ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, channel),
  check (channel <> 'webhook' or (webhook_url is not null and secret_ref is not null)),
  check (channel <> 'email' or (smtp_host is not null and smtp_port is not null and smtp_from is not null))
);

-- ---------------------------------------------------------------------------------------------------
-- The outbox. A row is claimed by a dispatcher (status 'sending', claimed_until) before the network call
-- and marked 'sent' after it; a dispatcher that dies in between leaves a 'sending' row whose
-- next_attempt_at is its claimed_until, so it comes due again when the claim lapses.
-- ---------------------------------------------------------------------------------------------------

create table public.message_outbox (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- The action's idempotency key: the same action never enqueues a second message.
  idempotency_key text not null check (pg_catalog.btrim(idempotency_key) <> ''),
  channel text not null check (channel in ('webhook', 'email')),
  -- A URL for webhooks, an address for email; the application validates fully, this is the backstop.
  destination text not null check (pg_catalog.btrim(destination) <> ''),
  subject text,
  body text not null default '',
  payload jsonb not null default '{}'::jsonb check (pg_catalog.jsonb_typeof(payload) = 'object'),
  status text not null default 'pending' check (status in ('pending', 'sending', 'sent', 'failed', 'cancelled')),
  attempts integer not null default 0 check (attempts >= 0),
  max_attempts integer not null default 8 check (max_attempts > 0),
  next_attempt_at timestamptz not null default now(),
  claimed_by text,
  claimed_until timestamptz,
  last_error text,
  sent_at timestamptz,
  provider_message_id text,
  run_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, idempotency_key),
  unique (tenant_id, id),
  foreign key (tenant_id, run_id) references public.agent_autonomous_runs (tenant_id, id) on delete set null (run_id),
  check ((channel = 'webhook' and destination ~* '^https?://[^\s/]+') or (channel = 'email' and destination ~ '^[^@\s<>]+@[^@\s<>]+$')),
  check ((status = 'sent') = (sent_at is not null)),
  check (status <> 'sending' or claimed_until is not null)
);

-- The claim query: due messages across all tenants, earliest first. A range scan over the undelivered rows only.
create index idx_message_outbox_due on public.message_outbox (next_attempt_at) where status in ('pending', 'sending');
create index idx_message_outbox_tenant_run on public.message_outbox (tenant_id, run_id) where run_id is not null;
-- A tenant's messages by state, for the API and the operator.
create index idx_message_outbox_tenant_status on public.message_outbox (tenant_id, status, created_at desc);

-- Every attempt, so a failure is never only the last_error that the next attempt overwrites.
create table public.message_outbox_attempts (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  message_id uuid not null,
  attempt integer not null check (attempt > 0),
  attempted_at timestamptz not null default now(),
  -- sent; transient_error (retried); permanent_error (not retried); claim_expired (the dispatcher stopped
  -- between claiming and recording: the message may or may not have gone out).
  outcome text not null check (outcome in ('sent', 'transient_error', 'permanent_error', 'claim_expired')),
  error text,
  response_code integer,
  worker_id text,
  created_at timestamptz not null default now(),
  foreign key (tenant_id, message_id) references public.message_outbox (tenant_id, id) on delete cascade
);
create index idx_message_outbox_attempts_tenant_message on public.message_outbox_attempts (tenant_id, message_id, attempt);

-- ---------------------------------------------------------------------------------------------------
-- Grants and RLS: members read their tenant's channels, messages and attempts; enqueueing, delivery and
-- channel changes go through the service role (the API checks the member's role before it acts).
-- ---------------------------------------------------------------------------------------------------

revoke all on table public.message_channels, public.message_outbox, public.message_outbox_attempts from anon, authenticated;
grant select on table public.message_channels, public.message_outbox, public.message_outbox_attempts to authenticated;
grant select, insert, update, delete on table public.message_channels, public.message_outbox, public.message_outbox_attempts to service_role;

select hourglass.enable_tenant_isolation(t)
from pg_catalog.unnest(array['public.message_channels', 'public.message_outbox', 'public.message_outbox_attempts']::regclass[]) t;
