-- Hourglass's own plumbing (schema `hourglass`, kept out of the API-exposed `public` schema) and the host
-- tables of the CRM the seed's system lives in: tenants, their members, accounts, contacts, products,
-- orders and cards. On a Supabase project that already has some of these, adapt this file before applying.

create schema if not exists hourglass;
grant usage on schema hourglass to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------
-- Time. Every piece of SQL that depends on the current time reads hourglass.now(), so tests and the
-- simulator can move the database's clock together with the application's TimeProvider (as the Supabase
-- test helpers' freeze_time does). Only the service role may move it.
-- ---------------------------------------------------------------------------------------------------

create table hourglass.clock_override (
  singleton boolean primary key default true check (singleton),
  frozen_at timestamptz not null,
  set_at timestamptz not null default now(),
  set_by text not null default current_user
);
revoke all on table hourglass.clock_override from public, anon, authenticated;
grant select on table hourglass.clock_override to service_role;

-- SECURITY DEFINER so callers need no privilege on the override table: users may read the clock, not set it.
-- plpgsql, not sql: a sql function with SET cannot be inlined and, before PostgreSQL 18, is planned again on
-- every call (about 36 µs against 10 µs measured here; docs/benchmarks.md), while plpgsql caches its plan.
create function hourglass.now() returns timestamptz
language plpgsql stable security definer set search_path = ''
as $$
begin
  return coalesce((select o.frozen_at from hourglass.clock_override o where o.singleton), pg_catalog.now());
end
$$;
revoke execute on function hourglass.now() from public;
grant execute on function hourglass.now() to anon, authenticated, service_role;

create function hourglass.freeze_time(p_at timestamptz) returns timestamptz
language plpgsql volatile security definer set search_path = ''
as $$
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
$$;

create function hourglass.thaw_time() returns void
language sql volatile security definer set search_path = ''
as $$
  delete from hourglass.clock_override where singleton
$$;

revoke execute on function hourglass.freeze_time(timestamptz), hourglass.thaw_time() from public, anon, authenticated;
grant execute on function hourglass.freeze_time(timestamptz), hourglass.thaw_time() to service_role;

-- The IANA time zone names PostgreSQL knows, copied once from pg_timezone_names: that view reads the whole
-- tz database on every query (milliseconds), too slow for a CHECK on every contact insert.
create table hourglass.timezones (name text primary key);
insert into hourglass.timezones (name) select z.name from pg_catalog.pg_timezone_names z on conflict do nothing;
revoke all on table hourglass.timezones from public, anon;
grant select on table hourglass.timezones to authenticated, service_role;

create function hourglass.is_iana_timezone(p_name text) returns boolean
language plpgsql stable set search_path = ''
as $$
begin
  return p_name is not null and exists (select 1 from hourglass.timezones z where z.name = p_name);
end
$$;
revoke execute on function hourglass.is_iana_timezone(text) from public, anon;
grant execute on function hourglass.is_iana_timezone(text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------
-- Tenants and membership
-- ---------------------------------------------------------------------------------------------------

create table public.tenants (
  id uuid primary key default gen_random_uuid(),
  name text not null check (pg_catalog.btrim(name) <> ''),
  timezone text not null default 'UTC' check (hourglass.is_iana_timezone(timezone)),
  -- Tenant-level settings read by the parts (e.g. touch_frequency_days, due_soon_days); see docs/schema.md.
  settings jsonb not null default '{}'::jsonb check (pg_catalog.jsonb_typeof(settings) = 'object'),
  created_at timestamptz not null default now()
);

create table public.tenant_members (
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- auth.users(id) on Supabase; no foreign key, so the table also works where there is no auth.users.
  user_id uuid not null,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  created_at timestamptz not null default now(),
  primary key (tenant_id, user_id)
);
-- The membership lookup behind every policy goes by user.
create index idx_tenant_members_user on public.tenant_members (user_id, tenant_id);

-- The tenants the current user belongs to, evaluated once per statement: policies call it as
-- `(select hourglass.current_tenant_ids())`, which PostgreSQL runs as an initPlan rather than per row
-- (Supabase's RLS performance guide). SECURITY DEFINER so the lookup itself is not subject to RLS.
create function hourglass.current_tenant_ids() returns uuid[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(pg_catalog.array_agg(m.tenant_id), '{}'::uuid[])
  from public.tenant_members m
  where m.user_id = (select auth.uid())
$$;
revoke execute on function hourglass.current_tenant_ids() from public;
grant execute on function hourglass.current_tenant_ids() to anon, authenticated, service_role;

-- True when the current role skips RLS (the service role, a superuser): such callers act for any tenant.
create function hourglass.caller_bypasses_rls() returns boolean
language plpgsql stable set search_path = ''
as $$
begin
  return coalesce((select r.rolsuper or r.rolbypassrls from pg_catalog.pg_roles r where r.rolname = current_user), false);
end
$$;
revoke execute on function hourglass.caller_bypasses_rls() from public;
grant execute on function hourglass.caller_bypasses_rls() to anon, authenticated, service_role;

-- The check every tenant-scoped function makes first. Raises:
--   22004 null_value_not_allowed  when the tenant id is null;
--   23503 foreign_key_violation   when a caller that sees every tenant names one that does not exist;
--   42501 insufficient_privilege  when a user names a tenant they are not a member of (or that does not
--                                 exist: the two are indistinguishable to them, so nothing leaks).
create function hourglass.assert_tenant_access(p_tenant_id uuid, p_function text) returns void
language plpgsql stable set search_path = ''
as $$
begin
  if p_tenant_id is null then
    raise exception using errcode = '22004', message = pg_catalog.format('%s: p_tenant_id must not be null', p_function);
  end if;
  if hourglass.caller_bypasses_rls() then
    if not exists (select 1 from public.tenants t where t.id = p_tenant_id) then
      raise exception using errcode = '23503',
        message = pg_catalog.format('%s: unknown tenant %s', p_function, p_tenant_id);
    end if;
  elsif not (p_tenant_id = any (hourglass.current_tenant_ids())) then
    raise exception using errcode = '42501',
      message = pg_catalog.format('%s: tenant %s does not exist or the current user is not a member of it', p_function, p_tenant_id);
  end if;
end
$$;
revoke execute on function hourglass.assert_tenant_access(uuid, text) from public, anon;
grant execute on function hourglass.assert_tenant_access(uuid, text) to authenticated, service_role;

-- A tenant's integer setting, or the default when absent. Malformed values are refused when saved by the
-- application; here a non-integer falls back to the default rather than failing a cycle.
create function hourglass.tenant_setting_int(p_tenant_id uuid, p_key text, p_default integer) returns integer
language plpgsql stable set search_path = ''
as $$
begin
  return coalesce(
    (select case when t.settings ->> p_key ~ '^[0-9]{1,9}$' then (t.settings ->> p_key)::integer end
     from public.tenants t where t.id = p_tenant_id),
    p_default);
end
$$;
revoke execute on function hourglass.tenant_setting_int(uuid, text, integer) from public, anon;
grant execute on function hourglass.tenant_setting_int(uuid, text, integer) to authenticated, service_role;

-- Row-level security for a tenant-scoped table, the same on every one: members of the row's tenant
-- (policy tenant_isolation, for authenticated) and the service role (service_role_bypass). Migrations call
-- it; nobody else may.
create function hourglass.enable_tenant_isolation(p_table regclass) returns void
language plpgsql volatile set search_path = ''
as $$
begin
  execute pg_catalog.format('alter table %s enable row level security', p_table);
  execute pg_catalog.format(
    'create policy tenant_isolation on %s for all to authenticated '
    'using (tenant_id = any ((select hourglass.current_tenant_ids())::uuid[])) '
    'with check (tenant_id = any ((select hourglass.current_tenant_ids())::uuid[]))', p_table);
  execute pg_catalog.format(
    'create policy service_role_bypass on %s for all to service_role using (true) with check (true)', p_table);
end
$$;
revoke execute on function hourglass.enable_tenant_isolation(regclass) from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------
-- CRM host tables. Each child carries tenant_id and references its parent by (tenant_id, id), so a row
-- can never point at another tenant's row, whatever the caller.
-- ---------------------------------------------------------------------------------------------------

create table public.accounts (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  name text not null check (pg_catalog.btrim(name) <> ''),
  tier text,
  segment text,
  -- The account owner: who gets the account's touch-task cards.
  owner_user_id uuid,
  credit_limit numeric check (credit_limit is null or credit_limit >= 0),
  payment_terms_days integer check (payment_terms_days is null or payment_terms_days >= 0),
  timezone text check (timezone is null or hourglass.is_iana_timezone(timezone)),
  do_not_contact boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, id)
);

create table public.contacts (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  account_id uuid,
  name text not null check (pg_catalog.btrim(name) <> ''),
  email text,
  phone text,
  timezone text check (timezone is null or hourglass.is_iana_timezone(timezone)),
  do_not_contact boolean not null default false,
  opted_out_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, id),
  foreign key (tenant_id, account_id) references public.accounts (tenant_id, id) on delete cascade
);
create index idx_contacts_tenant_account on public.contacts (tenant_id, account_id);

create table public.products (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  sku text not null check (pg_catalog.btrim(sku) <> ''),
  name text not null,
  list_price numeric not null default 0 check (list_price >= 0),
  unit_cost numeric check (unit_cost is null or unit_cost >= 0),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, sku),
  unique (tenant_id, id)
);

create table public.orders (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  account_id uuid not null,
  contact_id uuid,
  status text not null default 'placed'
    check (status in ('draft', 'placed', 'validated', 'on_hold', 'cancelled', 'fulfilled')),
  po_number text,
  ship_to jsonb check (ship_to is null or pg_catalog.jsonb_typeof(ship_to) = 'object'),
  requested_ship_date date,
  currency text not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
  subtotal numeric not null default 0,
  total numeric not null default 0,
  placed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, id),
  foreign key (tenant_id, account_id) references public.accounts (tenant_id, id) on delete cascade,
  foreign key (tenant_id, contact_id) references public.contacts (tenant_id, id) on delete set null (contact_id)
);
create index idx_orders_tenant_account on public.orders (tenant_id, account_id);
create index idx_orders_tenant_contact on public.orders (tenant_id, contact_id);

-- Quantities and prices are not constrained beyond their type: the order processor must see a bad line
-- (zero or negative quantity) to raise an exception for it, so the database stores what the host sent.
create table public.order_lines (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  order_id uuid not null,
  product_id uuid,
  quantity numeric not null,
  unit_price numeric not null,
  discount_pct numeric not null default 0 check (discount_pct >= 0 and discount_pct <= 100),
  created_at timestamptz not null default now(),
  foreign key (tenant_id, order_id) references public.orders (tenant_id, id) on delete cascade,
  foreign key (tenant_id, product_id) references public.products (tenant_id, id) on delete set null (product_id)
);
create index idx_order_lines_tenant_order on public.order_lines (tenant_id, order_id);
create index idx_order_lines_tenant_product on public.order_lines (tenant_id, product_id);

create table public.cards (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  kind text not null check (kind in ('touch_task', 'approval', 'exception_review', 'notice')),
  title text not null check (pg_catalog.btrim(title) <> ''),
  body text,
  status text not null default 'open' check (status in ('open', 'done', 'dismissed', 'expired')),
  entity_type text,
  entity_id uuid,
  -- References agent_autonomous_runs; the constraint is added with that table.
  run_id uuid,
  assignee_user_id uuid,
  payload jsonb not null default '{}'::jsonb,
  due_at timestamptz,
  completed_at timestamptz,
  completed_by text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, id),
  check ((status in ('done', 'dismissed')) = (completed_at is not null))
);
create index idx_cards_tenant_status on public.cards (tenant_id, status, kind, due_at);
create index idx_cards_tenant_run on public.cards (tenant_id, run_id);

-- ---------------------------------------------------------------------------------------------------
-- Grants and row-level security for the host tables. Users reach only their tenants' rows; the service
-- role (BYPASSRLS) reaches all, and an explicit policy says so for servers where it lacks the attribute.
-- ---------------------------------------------------------------------------------------------------

-- Revoke first: on Supabase, default privileges give anon and authenticated every privilege (TRUNCATE
-- included, which RLS does not govern) on each new table in public. Then grant exactly what each role needs.
revoke all on table public.tenants, public.tenant_members, public.accounts, public.contacts, public.products,
  public.orders, public.order_lines, public.cards from anon, authenticated;
grant select on table public.tenants, public.tenant_members to authenticated;
grant select, insert, update, delete on table public.accounts, public.contacts, public.products,
  public.orders, public.order_lines, public.cards to authenticated;
grant select, insert, update, delete on table public.tenants, public.tenant_members, public.accounts,
  public.contacts, public.products, public.orders, public.order_lines, public.cards to service_role;

alter table public.tenants enable row level security;
create policy tenant_isolation on public.tenants for all to authenticated
  using (id = any ((select hourglass.current_tenant_ids())::uuid[]))
  with check (id = any ((select hourglass.current_tenant_ids())::uuid[]));
create policy service_role_bypass on public.tenants for all to service_role using (true) with check (true);

select hourglass.enable_tenant_isolation(t)
from pg_catalog.unnest(array['public.tenant_members', 'public.accounts', 'public.contacts', 'public.products',
  'public.orders', 'public.order_lines', 'public.cards']::regclass[]) t;
