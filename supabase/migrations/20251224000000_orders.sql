-- The order processor: orders queue themselves when placed or changed; processors claim them with SKIP LOCKED
-- and a visibility timeout; pricing, credit and requirements are validated against data (price rules,
-- requirement rules, credit limits); bounded auto-fixes are recorded with before and after; what cannot be
-- fixed becomes an exception with a review workflow. The validation itself runs in the processor
-- (src/Hourglass.Core/Orders, docs/orders.md); this file holds the data and the queue's state machine.

-- ---------------------------------------------------------------------------------------------------
-- Host data the validators read.
-- ---------------------------------------------------------------------------------------------------

-- The account's purchase-order requirement, its default ship-to (the auto-fix fills a missing one from it) and the
-- unpaid balance the host's receivables hold (credit exposure counts it).
alter table public.accounts add column requires_po boolean not null default false;
alter table public.accounts add column default_ship_to jsonb check (default_ship_to is null or pg_catalog.jsonb_typeof(default_ship_to) = 'object');
alter table public.accounts add column open_balance numeric not null default 0 check (open_balance >= 0);

-- An order's total is its lines plus shipping and tax.
alter table public.orders add column shipping_amount numeric not null default 0 check (shipping_amount >= 0);
alter table public.orders add column tax_amount numeric not null default 0 check (tax_amount >= 0);

-- A member who may override a credit decision.
alter table public.tenant_members drop constraint tenant_members_role_check;
alter table public.tenant_members add constraint tenant_members_role_check check (role in ('owner', 'admin', 'member', 'credit_controller'));

-- ---------------------------------------------------------------------------------------------------
-- Price rules, as Odoo pricelist items and ERPNext pricing rules work: for a product (or all products), for an
-- account, a tier or everyone, in a currency, from a quantity, within dates: a fixed unit price or a discount
-- off the list price. The rule that applies to a line: the highest priority, then the most specific (account
-- over tier over everyone; one product over all), then the largest quantity break reached.
-- ---------------------------------------------------------------------------------------------------

create table public.price_rules (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  name text not null check (pg_catalog.btrim(name) <> ''),
  product_id uuid,
  account_id uuid,
  tier text,
  currency text not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
  min_quantity numeric not null default 0 check (min_quantity >= 0),
  unit_price numeric check (unit_price is null or unit_price >= 0),
  discount_pct numeric check (discount_pct is null or (discount_pct >= 0 and discount_pct <= 100)),
  valid_from date,
  valid_to date,
  priority integer not null default 0,
  active boolean not null default true,
  created_at timestamptz not null default now(),
  check ((unit_price is null) <> (discount_pct is null)),
  check (valid_to is null or valid_from is null or valid_to >= valid_from),
  check (account_id is null or tier is null),
  foreign key (tenant_id, product_id) references public.products (tenant_id, id) on delete cascade,
  foreign key (tenant_id, account_id) references public.accounts (tenant_id, id) on delete cascade
);
create index idx_price_rules_tenant_product on public.price_rules (tenant_id, product_id);
create index idx_price_rules_tenant_account on public.price_rules (tenant_id, account_id);

-- ---------------------------------------------------------------------------------------------------
-- Requirement rules a tenant defines (as OCA's exception rules): a condition on the order that must hold.
-- condition: {"field": "<order field or ship_to.<key>>", "op": "eq|ne|in|not_in|lte|gte|present", "value": …}
-- The built-in requirements (lines, positive quantities, known and active products, PO number when the account
-- requires one, complete ship-to, lead time) always apply.
-- ---------------------------------------------------------------------------------------------------

create table public.order_requirement_rules (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  rule_key text not null check (rule_key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  description text not null check (pg_catalog.btrim(description) <> ''),
  condition jsonb not null check (pg_catalog.jsonb_typeof(condition) = 'object'
    and condition ->> 'op' in ('eq', 'ne', 'in', 'not_in', 'lte', 'gte', 'present')
    and pg_catalog.btrim(coalesce(condition ->> 'field', '')) <> ''),
  severity text not null default 'error' check (severity in ('info', 'warning', 'error', 'critical')),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  unique (tenant_id, rule_key)
);

-- ---------------------------------------------------------------------------------------------------
-- The queue's claims: a token per claim fences a processor whose claim lapsed and was taken over (as the
-- outbox's attempt number does); a credit controller's override is recorded on the entry.
-- ---------------------------------------------------------------------------------------------------

alter table public.order_processing_queue add column claim_token bigint not null default 0;
alter table public.order_processing_queue add column credit_override_by text;
alter table public.order_processing_queue add column credit_override_reason text;
alter table public.order_processing_queue add column credit_override_at timestamptz;
alter table public.order_processing_queue add constraint order_processing_queue_override_complete
  check ((credit_override_by is null) = (credit_override_at is null) and (credit_override_by is null) = (credit_override_reason is null));
-- Lapsed claims come back: processing entries by claimed_until.
create index idx_order_processing_claimed on public.order_processing_queue (claimed_until) where status = 'processing';

-- Every fix an auto-fix applied, with the value before and after and the policy version that allowed it.
create table public.order_processing_fixes (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  queue_id uuid not null,
  order_id uuid not null,
  attempt integer not null check (attempt > 0),
  fix_type text not null check (fix_type in ('recompute_totals', 'apply_rule_price', 'fill_ship_to')),
  order_line_id uuid,
  before jsonb not null,
  after jsonb not null,
  policy_version text,
  created_at timestamptz not null default now(),
  foreign key (tenant_id, queue_id) references public.order_processing_queue (tenant_id, id) on delete cascade,
  foreign key (tenant_id, order_id) references public.orders (tenant_id, id) on delete cascade
);
create index idx_order_fixes_tenant_queue on public.order_processing_fixes (tenant_id, queue_id);
create index idx_order_fixes_tenant_order on public.order_processing_fixes (tenant_id, order_id);

-- One open exception of a type per queue entry: a re-validation does not stack them.
create unique index uq_order_exceptions_open_type on public.order_processing_exceptions (tenant_id, queue_id, exception_type)
  where resolution_status in ('open', 'in_review');

revoke all on table public.price_rules, public.order_requirement_rules, public.order_processing_fixes from anon, authenticated;
grant select, insert, update, delete on table public.price_rules, public.order_requirement_rules to authenticated, service_role;
grant select on table public.order_processing_fixes to authenticated;
grant select, insert on table public.order_processing_fixes to service_role;
select hourglass.enable_tenant_isolation('public.price_rules'::regclass);
select hourglass.enable_tenant_isolation('public.order_requirement_rules'::regclass);
select hourglass.enable_tenant_isolation('public.order_processing_fixes'::regclass);

-- ---------------------------------------------------------------------------------------------------
-- Enqueueing: an order enters the queue when placed and goes back to pending when it or its lines change —
-- except changes the processor makes itself (its transactions set hourglass.order_processor = 'on'), which
-- would otherwise re-queue every fixed order. Drafts wait; a cancelled order's entry is cancelled.
-- ---------------------------------------------------------------------------------------------------

create function hourglass.enqueue_order(p_tenant_id uuid, p_order_id uuid) returns void
language plpgsql volatile set search_path = ''
as $$
declare
  v_status text;
begin
  if coalesce(pg_catalog.current_setting('hourglass.order_processor', true), '') = 'on' then
    return;
  end if;
  select o.status into v_status from public.orders o where o.tenant_id = p_tenant_id and o.id = p_order_id;
  if v_status is null or v_status = 'draft' then
    return;
  end if;
  insert into public.order_processing_queue as q (tenant_id, order_id, status, created_at, updated_at)
  values (p_tenant_id, p_order_id, case when v_status = 'cancelled' then 'cancelled' else 'pending' end, hourglass.now(), hourglass.now())
  on conflict (tenant_id, order_id) do update set
    status = case when v_status = 'cancelled' then 'cancelled' else 'pending' end,
    pricing_status = 'pending', credit_status = 'pending', requirements_status = 'pending',
    auto_fix_attempts = 0, claimed_by = null, claimed_until = null, updated_at = hourglass.now();
  -- An entry being processed goes back to pending too: the processor's write is fenced on its claim (status
  -- 'processing', claimed_by, claim_token) and changes nothing, and the changed order is validated again.
end
$$;

create function hourglass.on_order_change() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
begin
  perform hourglass.enqueue_order(new.tenant_id, new.id);
  return null;
end
$$;

create function hourglass.on_order_line_change() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
begin
  if tg_op = 'DELETE' then
    perform hourglass.enqueue_order(old.tenant_id, old.order_id);
  else
    perform hourglass.enqueue_order(new.tenant_id, new.order_id);
  end if;
  return null;
end
$$;
revoke execute on function hourglass.enqueue_order(uuid, uuid), hourglass.on_order_change(), hourglass.on_order_line_change()
  from public, anon, authenticated;

create trigger orders_enqueue after insert or update of status, po_number, ship_to, requested_ship_date, currency, subtotal, total,
  shipping_amount, tax_amount, account_id on public.orders
  for each row execute function hourglass.on_order_change();
create trigger order_lines_enqueue after insert or update or delete on public.order_lines
  for each row execute function hourglass.on_order_line_change();

-- ---------------------------------------------------------------------------------------------------
-- Claiming. Pending entries (highest priority, then oldest), and entries whose processor's claim lapsed, are
-- marked 'processing' for p_visibility_seconds under a new claim token. SKIP LOCKED: processors never wait on
-- each other and never get the same entry while a claim holds. Processors are trusted (service role).
-- ---------------------------------------------------------------------------------------------------

create sequence hourglass.order_claim_tokens;
grant usage on sequence hourglass.order_claim_tokens to service_role;

create function public.claim_orders(p_worker text, p_limit integer, p_visibility_seconds integer default 300, p_tenant_id uuid default null)
returns table (queue_id uuid, tenant_id uuid, order_id uuid, claim_token bigint, auto_fix_attempts integer, max_auto_fix_attempts integer,
  credit_override_by text, credit_override_reason text)
language plpgsql volatile set search_path = ''
as $$
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
  v_now := hourglass.now();
  return query
  with pending as (
    select q.id from public.order_processing_queue q
    where q.status = 'pending' and (p_tenant_id is null or q.tenant_id = p_tenant_id)
    order by q.priority desc, q.created_at
    limit p_limit
    for update skip locked
  ), lapsed as (
    select q.id from public.order_processing_queue q
    where q.status = 'processing' and q.claimed_until < v_now and (p_tenant_id is null or q.tenant_id = p_tenant_id)
    limit p_limit
    for update skip locked
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
$$;
revoke execute on function public.claim_orders(text, integer, integer, uuid) from public, anon, authenticated;
grant execute on function public.claim_orders(text, integer, integer, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------------
-- The exception workflow: open → in_review → resolved or dismissed, who, when and why; each step a warehouse
-- event. Resolving re-validates the order (its entry goes back to pending); dismissing withdraws the order from
-- automatic processing (its entry is cancelled): a person handles it. The exception's review card closes with it.
-- ---------------------------------------------------------------------------------------------------

create function public.review_order_exception(p_exception_id uuid, p_by text default null)
returns text
language plpgsql volatile set search_path = ''
as $$
declare
  v_exception record;
  v_by text;
begin
  if p_exception_id is null then
    raise exception using errcode = '22004', message = 'review_order_exception: p_exception_id must not be null';
  end if;
  select e.id, e.tenant_id, e.order_id, e.resolution_status into v_exception
  from public.order_processing_exceptions e where e.id = p_exception_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = pg_catalog.format('review_order_exception: exception %s not found', p_exception_id);
  end if;
  perform hourglass.assert_tenant_access(v_exception.tenant_id, 'review_order_exception');
  if v_exception.resolution_status <> 'open' then
    raise exception using errcode = '55000',
      message = pg_catalog.format('review_order_exception: exception %s is %s, not open', p_exception_id, v_exception.resolution_status);
  end if;
  v_by := coalesce('user:' || (select auth.uid())::text, 'service:' || nullif(pg_catalog.btrim(p_by), ''), 'service');
  update public.order_processing_exceptions e
  set resolution_status = 'in_review', updated_at = hourglass.now(),
      details = e.details || pg_catalog.jsonb_build_object('review', pg_catalog.jsonb_build_object('by', v_by, 'at', hourglass.now()))
  where e.id = p_exception_id;
  insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
  values (v_exception.tenant_id, 'order_exception_in_review', 'order', v_exception.order_id,
          pg_catalog.jsonb_build_object('exception_id', p_exception_id, 'by', v_by), 'hourglass', hourglass.now());
  return 'in_review';
end
$$;

create function public.resolve_order_exception(p_exception_id uuid, p_resolution text, p_notes text, p_by text default null)
returns text
language plpgsql volatile set search_path = ''
as $$
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
  if not found then
    raise exception using errcode = 'P0002', message = pg_catalog.format('resolve_order_exception: exception %s not found', p_exception_id);
  end if;
  perform hourglass.assert_tenant_access(v_exception.tenant_id, 'resolve_order_exception');
  if v_exception.resolution_status not in ('open', 'in_review') then
    raise exception using errcode = '55000',
      message = pg_catalog.format('resolve_order_exception: exception %s is already %s', p_exception_id, v_exception.resolution_status);
  end if;

  v_by := coalesce('user:' || (select auth.uid())::text, 'service:' || nullif(pg_catalog.btrim(p_by), ''), 'service');
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
$$;

-- A credit controller (or the tenant's owner or admin) overrides the credit check for an order, with a reason;
-- the order is re-validated with the override in force.
create function public.override_order_credit(p_order_id uuid, p_reason text, p_by text default null)
returns text
language plpgsql volatile set search_path = ''
as $$
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
  if not found then
    raise exception using errcode = 'P0002', message = pg_catalog.format('override_order_credit: order %s is not in the processing queue', p_order_id);
  end if;
  perform hourglass.assert_tenant_access(v_queue.tenant_id, 'override_order_credit');
  if not hourglass.caller_bypasses_rls() and not exists (
      select 1 from public.tenant_members m
      where m.tenant_id = v_queue.tenant_id and m.user_id = (select auth.uid()) and m.role in ('owner', 'admin', 'credit_controller')) then
    raise exception using errcode = '42501', message = 'override_order_credit: only a credit controller, an admin or the owner may override credit';
  end if;
  if v_queue.status in ('processing', 'cancelled') then
    raise exception using errcode = '55000', message = pg_catalog.format('override_order_credit: the order''s entry is %s', v_queue.status);
  end if;
  v_by := coalesce('user:' || (select auth.uid())::text, 'service:' || nullif(pg_catalog.btrim(p_by), ''), 'service');
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
$$;

revoke execute on function public.review_order_exception(uuid, text), public.resolve_order_exception(uuid, text, text, text),
  public.override_order_credit(uuid, text, text) from public, anon;
grant execute on function public.review_order_exception(uuid, text), public.resolve_order_exception(uuid, text, text, text),
  public.override_order_credit(uuid, text, text) to authenticated, service_role;

-- Queue entries for orders placed before this migration.
insert into public.order_processing_queue (tenant_id, order_id)
select o.tenant_id, o.id from public.orders o where o.status not in ('draft', 'cancelled')
on conflict (tenant_id, order_id) do nothing;
