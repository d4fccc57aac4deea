-- The 21-day engagement engine: a clock for every contact and account from the moment it exists, the touch
-- frequency by rule (tenant default, account tier or segment, or the clock's own override), a touch on a
-- contact counting for its account, and the priority that orders the touch queue, with its reasons.

-- ---------------------------------------------------------------------------------------------------
-- Frequency rules. Precedence: the clock's own override > the account's segment > the account's tier >
-- the tenant's touch_frequency_days setting (default 21).
-- ---------------------------------------------------------------------------------------------------

create table public.engagement_frequency_rules (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  dimension text not null check (dimension in ('tier', 'segment')),
  value text not null check (pg_catalog.btrim(value) <> ''),
  touch_frequency_days integer not null check (touch_frequency_days > 0 and touch_frequency_days <= 366),
  created_at timestamptz not null default now(),
  unique (tenant_id, dimension, value)
);

-- A frequency set on the clock itself survives rule changes; null means "by rule".
alter table public.engagement_clocks add column frequency_override_days integer
  check (frequency_override_days is null or (frequency_override_days > 0 and frequency_override_days <= 366));
-- Why the clock has its frequency: 'clock', 'segment', 'tier' or 'tenant'.
alter table public.engagement_clocks add column frequency_source text not null default 'tenant'
  check (frequency_source in ('clock', 'segment', 'tier', 'tenant'));
-- Why the clock has its place in the queue, in words (written with priority_score).
alter table public.engagement_clocks add column priority_reason text;

-- The touch queue: a tenant's clocks that need a touch, most urgent first.
create index idx_engagement_clocks_tenant_queue on public.engagement_clocks (tenant_id, priority_score desc)
  where compliance_status <> 'compliant';

revoke all on table public.engagement_frequency_rules from anon, authenticated;
grant select, insert, update, delete on table public.engagement_frequency_rules to authenticated, service_role;
select hourglass.enable_tenant_isolation('public.engagement_frequency_rules'::regclass);

-- The frequency and its source for an entity, by the precedence above.
create function hourglass.engagement_frequency(p_tenant_id uuid, p_entity_type text, p_entity_id uuid, out days integer, out source text)
language plpgsql stable set search_path = ''
as $$
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
$$;
revoke execute on function hourglass.engagement_frequency(uuid, text, uuid) from public, anon;
grant execute on function hourglass.engagement_frequency(uuid, text, uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------
-- A clock for every contact and account, created with it (first due one frequency after creation) and
-- removed with it; existing ones are backfilled below.
-- ---------------------------------------------------------------------------------------------------

create function hourglass.create_engagement_clock() returns trigger
language plpgsql security definer set search_path = ''
as $$
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
$$;

create function hourglass.delete_engagement_clock() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  delete from public.engagement_clocks c
  where c.tenant_id = old.tenant_id and c.entity_id = old.id
    and c.entity_type = case tg_table_name when 'contacts' then 'contact' else 'account' end;
  return old;
end
$$;
revoke execute on function hourglass.create_engagement_clock(), hourglass.delete_engagement_clock() from public, anon, authenticated;

create trigger contacts_engagement_clock after insert on public.contacts
  for each row execute function hourglass.create_engagement_clock();
create trigger accounts_engagement_clock after insert on public.accounts
  for each row execute function hourglass.create_engagement_clock();
create trigger contacts_engagement_clock_delete after delete on public.contacts
  for each row execute function hourglass.delete_engagement_clock();
create trigger accounts_engagement_clock_delete after delete on public.accounts
  for each row execute function hourglass.delete_engagement_clock();

insert into public.engagement_clocks (tenant_id, entity_type, entity_id, next_touch_due, touch_frequency_days, frequency_source)
select x.tenant_id, x.entity_type, x.id, x.created_at + pg_catalog.make_interval(days => f.days), f.days, f.source
from (
  select c.tenant_id, 'contact' as entity_type, c.id, c.created_at from public.contacts c
  union all
  select a.tenant_id, 'account', a.id, a.created_at from public.accounts a
) x
cross join lateral hourglass.engagement_frequency(x.tenant_id, x.entity_type, x.id) f
on conflict (tenant_id, entity_type, entity_id) do nothing;

-- ---------------------------------------------------------------------------------------------------
-- Keeping frequencies right: a clock override, a rule change, or an account moving tier or segment
-- recomputes the affected clocks' frequency and next due date (from the last touch, or creation).
-- ---------------------------------------------------------------------------------------------------

-- Recomputes by rule the clocks of a tenant without an override; p_entity_id limits it to one account (and
-- its contacts) when given. Returns how many clocks changed.
create function hourglass.reapply_engagement_frequencies(p_tenant_id uuid, p_account_id uuid default null) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
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
$$;

-- The clocks a rule change can affect: all of the tenant's, or one account's and its contacts'.
create function hourglass.engagement_frequency_targets(p_tenant_id uuid, p_account_id uuid)
returns table (entity_type text, entity_id uuid)
language sql stable set search_path = ''
as $$
  select c.entity_type, c.entity_id from public.engagement_clocks c
  where c.tenant_id = p_tenant_id and p_account_id is null
  union all
  select 'account', p_account_id where p_account_id is not null
  union all
  select 'contact', k.id from public.contacts k where p_account_id is not null and k.tenant_id = p_tenant_id and k.account_id = p_account_id
$$;

create function hourglass.on_frequency_rule_change() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform hourglass.reapply_engagement_frequencies(coalesce(new.tenant_id, old.tenant_id));
  return null;
end
$$;

create function hourglass.on_account_class_change() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform hourglass.reapply_engagement_frequencies(new.tenant_id, new.id);
  return null;
end
$$;

-- An override on the clock takes effect at once; clearing it goes back to the rule.
create function hourglass.on_clock_override_change() returns trigger
language plpgsql security definer set search_path = ''
as $$
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
$$;

revoke execute on function hourglass.reapply_engagement_frequencies(uuid, uuid), hourglass.engagement_frequency_targets(uuid, uuid),
  hourglass.on_frequency_rule_change(), hourglass.on_account_class_change(), hourglass.on_clock_override_change()
  from public, anon, authenticated;

create trigger engagement_frequency_rules_reapply after insert or update or delete on public.engagement_frequency_rules
  for each row execute function hourglass.on_frequency_rule_change();
create trigger accounts_engagement_class after update of tier, segment on public.accounts
  for each row when (old.tier is distinct from new.tier or old.segment is distinct from new.segment)
  execute function hourglass.on_account_class_change();
create trigger engagement_clocks_override before update of frequency_override_days on public.engagement_clocks
  for each row when (old.frequency_override_days is distinct from new.frequency_override_days)
  execute function hourglass.on_clock_override_change();

-- ---------------------------------------------------------------------------------------------------
-- Touches. Same signature as before; now the frequency follows the rules, and a touch on a contact also
-- counts for its account.
-- ---------------------------------------------------------------------------------------------------

create or replace function public.update_engagement_clock(
  p_tenant_id uuid,
  p_entity_type text,
  p_entity_id uuid,
  p_touch_type text,
  p_touch_by text default 'agent',
  p_card_id uuid default null
) returns uuid
language plpgsql volatile set search_path = ''
as $$
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
  -- The entity's clock, then (for a contact) its account's: the same touch, the same moment.
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
      -- The frequency follows the rules in force now, unless the clock has its own.
      touch_frequency_days = coalesce(c.frequency_override_days, excluded.touch_frequency_days),
      frequency_source = case when c.frequency_override_days is not null then 'clock' else excluded.frequency_source end,
      next_touch_due = excluded.last_touch_at + pg_catalog.make_interval(days => coalesce(c.frequency_override_days, excluded.touch_frequency_days)),
      touch_count = c.touch_count + 1,
      compliance_status = 'compliant',
      days_overdue = 0,
      priority_score = 0,
      priority_reason = null,
      updated_at = excluded.updated_at
    returning c.id into v_touched;
    v_clock_id := coalesce(v_clock_id, v_touched);

    -- The touch is made: an open touch card for the same contact or account has done its job.
    update public.cards k
    set status = 'done', completed_at = v_now, completed_by = p_touch_by, updated_at = v_now,
        payload = k.payload || pg_catalog.jsonb_build_object('satisfied_by_touch', p_touch_type)
    where k.tenant_id = p_tenant_id and k.kind = 'touch_task' and k.status = 'open'
      and k.entity_type = v_target.entity_type and k.entity_id = v_target.entity_id;
  end loop;
  return v_clock_id;
end
$$;

-- ---------------------------------------------------------------------------------------------------
-- Compliance and priority. The refresh now also writes each changed clock's priority and its reason:
--   overdue:  100 + 10 per day overdue;  due soon: 50
--   + the account's tier weight (tenant setting tier_weights, default strategic 30, growth 15)
--   + 40 × the churn risk Insights found for the contact or its account (client_patterns 'churn_risk')
-- Priority moves when the status or days overdue move, which is exactly when the refresh writes a row.
-- ---------------------------------------------------------------------------------------------------

create or replace function public.refresh_engagement_compliance(p_tenant_id uuid) returns integer
language plpgsql volatile set search_path = ''
as $$
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
$$;

-- The touch queue: a tenant's top clocks by priority, each with the reason for its place, and who owns it.
create function public.engagement_queue(p_tenant_id uuid, p_limit integer default 50)
returns table (clock_id uuid, entity_type text, entity_id uuid, account_id uuid, owner_user_id uuid, compliance_status text,
               days_overdue integer, next_touch_due timestamptz, priority_score numeric, priority_reason text)
language plpgsql stable set search_path = ''
as $$
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'engagement_queue');
  if p_limit is null or p_limit <= 0 or p_limit > 1000 then
    raise exception using errcode = '22023', message = pg_catalog.format('engagement_queue: p_limit must be between 1 and 1000 (got %s)', coalesce(p_limit::text, 'null'));
  end if;
  return query
    select c.id, c.entity_type, c.entity_id, a.id, a.owner_user_id, c.compliance_status, c.days_overdue, c.next_touch_due,
           c.priority_score, c.priority_reason
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
    order by c.priority_score desc, c.next_touch_due, c.id
    limit p_limit;
end
$$;
revoke execute on function public.engagement_queue(uuid, integer) from public, anon;
grant execute on function public.engagement_queue(uuid, integer) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------
-- Touch cards. A person completes a touch_task card; completing it records the touch on the card's
-- contact or account (and so on its account), with the card and who did it.
-- ---------------------------------------------------------------------------------------------------

-- One open touch per contact or account: the agent never stacks cards on someone.
create unique index uq_cards_open_touch_task on public.cards (tenant_id, entity_type, entity_id)
  where kind = 'touch_task' and status = 'open';

create function public.complete_touch_card(p_card_id uuid, p_touch_type text default 'call', p_notes text default null)
returns uuid
language plpgsql volatile set search_path = ''
as $$
declare
  v_card record;
  v_by text;
begin
  if p_card_id is null then
    raise exception using errcode = '22004', message = 'complete_touch_card: p_card_id must not be null';
  end if;
  -- Under RLS a user sees only their tenants' cards: another tenant's card is "not found", never leaked.
  select k.id, k.tenant_id, k.kind, k.status, k.entity_type, k.entity_id into v_card
  from public.cards k where k.id = p_card_id for update;
  if not found then
    raise exception using errcode = 'P0002', message = pg_catalog.format('complete_touch_card: card %s not found', p_card_id);
  end if;
  perform hourglass.assert_tenant_access(v_card.tenant_id, 'complete_touch_card');
  if v_card.kind <> 'touch_task' then
    raise exception using errcode = '22023', message = pg_catalog.format('complete_touch_card: card %s is a %s card, not a touch_task', p_card_id, v_card.kind);
  end if;
  if v_card.status <> 'open' then
    raise exception using errcode = '55000', message = pg_catalog.format('complete_touch_card: card %s is %s, not open', p_card_id, v_card.status);
  end if;

  v_by := coalesce('user:' || (select auth.uid())::text, 'service');
  update public.cards k
  set status = 'done', completed_at = hourglass.now(), completed_by = v_by, updated_at = hourglass.now(),
      payload = k.payload || pg_catalog.jsonb_build_object('touch_type', p_touch_type, 'notes', p_notes)
  where k.id = p_card_id;
  return public.update_engagement_clock(v_card.tenant_id, v_card.entity_type, v_card.entity_id, p_touch_type, v_by, p_card_id);
end
$$;
revoke execute on function public.complete_touch_card(uuid, text, text) from public, anon;
grant execute on function public.complete_touch_card(uuid, text, text) to authenticated, service_role;
