-- What the world answers about the messages Hourglass sends (docs/inbound.md): where a tenant's delivery events come
-- from (inbound_sources), each event matched to its message and recorded once (message_delivery_events), and the
-- addresses no message may go to any more (message_suppressions). Agent-owned: members read, only the service role
-- (the server's webhook endpoints, the mailbox reader, the simulator) writes.

-- ---------------------------------------------------------------------------------------------------
-- Per-tenant sources of delivery events. 'hourglass' is Hourglass's own documented format, signed with Standard
-- Webhooks; the providers' adapters verify each provider's own signature; 'imap' reads replies from a shared mailbox.
-- As for message_channels, secrets are never stored: secret_ref names an environment variable of the server that holds
-- the signing secret, the provider's verification key, or the mailbox password.
-- ---------------------------------------------------------------------------------------------------
create table public.inbound_sources (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  source text not null check (source in ('hourglass', 'resend', 'postmark', 'sendgrid', 'imap')),
  enabled boolean not null default true,
  secret_ref text check (secret_ref is null or secret_ref ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
  -- imap: the mailbox to read, and the position reached (UIDVALIDITY and the last UID recorded), kept across restarts.
  imap_host text check (imap_host is null or pg_catalog.btrim(imap_host) <> ''),
  imap_port integer check (imap_port is null or imap_port between 1 and 65535),
  imap_security text not null default 'auto' check (imap_security in ('auto', 'starttls', 'tls', 'none')),
  imap_username text,
  imap_mailbox text not null default 'INBOX' check (pg_catalog.btrim(imap_mailbox) <> ''),
  imap_uid_validity bigint,
  imap_last_uid bigint check (imap_last_uid is null or imap_last_uid >= 0),
  last_polled_at timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, source),
  unique (tenant_id, id),
  check (source = 'imap' or secret_ref is not null),
  check (source <> 'imap' or (imap_host is not null and imap_port is not null and imap_username is not null and secret_ref is not null))
);

-- ---------------------------------------------------------------------------------------------------
-- Delivery events, one row per event a source reported (a provider's retry finds its row by (source, source_event_id)
-- and records nothing twice). message_id is the outbox message the event is about; an event that matches none of the
-- tenant's messages is kept with the reason it was skipped and no effect.
-- ---------------------------------------------------------------------------------------------------
create table public.message_delivery_events (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  source text not null check (source in ('hourglass', 'resend', 'postmark', 'sendgrid', 'imap', 'simulator')),
  source_event_id text not null check (pg_catalog.btrim(source_event_id) <> ''),
  event_type text not null check (event_type in ('delivered', 'bounce_hard', 'bounce_soft', 'complaint', 'unsubscribe', 'reply')),
  occurred_at timestamptz not null,
  message_id uuid,
  recipient text,
  reason text,
  -- For replies: what the classifier read (docs/inbound.md, "Reading a reply").
  reply_label text check (reply_label is null or reply_label in
    ('interested', 'not_now', 'wrong_person', 'unsubscribe_request', 'out_of_office', 'bounce_notice', 'other')),
  reply_confidence numeric check (reply_confidence is null or reply_confidence between 0 and 1),
  reply_evidence text,
  reply_classified_by text,
  return_on date,
  -- What recording it did: the effect applied, or why it was skipped.
  effect text not null check (effect in ('none', 'address_suppressed', 'soft_bounce_retried', 'opted_out', 'touch_recorded',
                                         'waiting_until_return', 'skipped')),
  skipped_reason text,
  event_id uuid,
  recorded_at timestamptz not null default now(),
  unique (tenant_id, source, source_event_id),
  foreign key (tenant_id, message_id) references public.message_outbox (tenant_id, id) on delete set null (message_id),
  check ((effect = 'skipped') = (skipped_reason is not null)),
  check (effect = 'skipped' or message_id is not null),
  check ((event_type = 'reply') or (reply_label is null and reply_confidence is null and reply_evidence is null and return_on is null))
);
create index idx_message_delivery_events_tenant_message on public.message_delivery_events (tenant_id, message_id);
create index idx_message_delivery_events_tenant_day on public.message_delivery_events (tenant_id, occurred_at desc);
create index idx_message_delivery_events_soft_bounces on public.message_delivery_events (tenant_id, pg_catalog.lower(recipient), occurred_at)
  where event_type in ('bounce_soft', 'bounce_hard', 'delivered', 'reply');

-- ---------------------------------------------------------------------------------------------------
-- Addresses no message goes to any more on a channel: hard bounces (or soft bounces past the tenant's limit) and
-- complaints. Keyed by the address, not the contact: a contact given a new address is reachable again, and an address
-- shared by two contacts is suppressed for both. Never lifted by the agent.
-- ---------------------------------------------------------------------------------------------------
create table public.message_suppressions (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  channel text not null check (channel in ('email')),
  address text not null check (pg_catalog.btrim(address) <> '' and address = pg_catalog.lower(address)),
  reason text not null check (reason in ('hard_bounce', 'soft_bounce_limit', 'complaint')),
  contact_id uuid,
  delivery_event_id uuid,
  suppressed_at timestamptz not null,
  created_at timestamptz not null default now(),
  unique (tenant_id, channel, address)
);

select hourglass.enable_tenant_isolation(t)
from unnest(array['public.inbound_sources', 'public.message_delivery_events', 'public.message_suppressions']::regclass[]) t;
revoke all on table public.inbound_sources, public.message_delivery_events, public.message_suppressions from anon, authenticated;
grant select on table public.inbound_sources, public.message_delivery_events, public.message_suppressions to authenticated;
grant select, insert, update, delete on table public.inbound_sources, public.message_delivery_events, public.message_suppressions to service_role;

-- An OOO reply's return date: the next touch waits for it (touch_candidates skips the clock until then).
alter table public.engagement_clocks
  add column waiting_until timestamptz,
  add column waiting_reason text check (waiting_reason is null or pg_catalog.btrim(waiting_reason) <> ''),
  add constraint engagement_clocks_waiting_check check ((waiting_until is null) = (waiting_reason is null));

-- The send-time check refuses an address on the suppression list.
alter table public.message_outbox drop constraint message_outbox_suppressed_code_check;
alter table public.message_outbox add constraint message_outbox_suppressed_code_check check (suppressed_code in
  ('contact_opted_out', 'contact_do_not_contact', 'account_do_not_contact', 'channel_disabled', 'channel_missing', 'address_suppressed'));
