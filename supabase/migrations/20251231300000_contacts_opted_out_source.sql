-- contacts.opted_out_source: who or what recorded the opt-out ('one_click_unsubscribe' for the RFC 8058 link of an
-- email, docs/unsubscribe.md). Set with opted_out_at the first time and kept, as opted_out_at is: a second unsubscribe
-- changes neither. Null for opt-outs recorded before this column, or by the host CRM without a source.

alter table public.contacts
  add column opted_out_source text check (opted_out_source is null or (opted_out_at is not null and pg_catalog.btrim(opted_out_source) <> ''));

comment on column public.contacts.opted_out_source is
  'Who or what recorded the opt-out (e.g. one_click_unsubscribe); set with opted_out_at, null before it.';
