-- The touch queue takes Insights' best-time signal into account: a contact (or account) whose best time to be
-- reached is the current hour of the week — in its own time zone, else its account's, else the tenant's — moves up
-- by 20 while that hour lasts, and its reason says so. The signal is a client_patterns row of pattern_type
-- 'best_time' whose pattern_data.best_slots lists hour-of-week slots, slot = (ISO weekday − 1) × 24 + hour
-- (0 = Monday 00:00-01:00 … 167 = Sunday 23:00-24:00), in the entity's local time.
--
-- The stored priority (written by refresh_engagement_compliance) cannot hold an hour-of-week bonus without
-- rewriting every due clock every hour, so the bonus is added when the queue is read. The bonus is bounded, so
-- only clocks within 20 of the N-th stored priority can enter the top N: the queue reads that band through the
-- priority index and no more.

create function hourglass.best_time_bonus(p_tenant_id uuid, p_entity_type text, p_entity_id uuid, p_zone text, p_at timestamptz)
returns integer
language plpgsql stable set search_path = ''
as $$
declare
  v_local timestamp;
begin
  v_local := p_at at time zone coalesce(p_zone, 'UTC');
  return case when exists (
    select 1 from public.client_patterns p
    where p.tenant_id = p_tenant_id and p.entity_type = p_entity_type and p.entity_id = p_entity_id
      and p.pattern_type = 'best_time' and p.is_active
      and p.pattern_data -> 'best_slots' @> pg_catalog.to_jsonb(
        ((extract(isodow from v_local)::integer - 1) * 24 + extract(hour from v_local)::integer)))
    then 20 else 0 end;
end
$$;
revoke execute on function hourglass.best_time_bonus(uuid, text, uuid, text, timestamptz) from public, anon;
grant execute on function hourglass.best_time_bonus(uuid, text, uuid, text, timestamptz) to authenticated, service_role;

-- The queue's candidates, shared by engagement_queue and the cycle's touch part: with p_skip_open, clocks that
-- already have an open touch card, an open approval, or an approval a person rejected in the last 7 days are left
-- out before the limit.
create function hourglass.touch_candidates(p_tenant_id uuid, p_limit integer, p_skip_open boolean)
returns table (clock_id uuid, entity_type text, entity_id uuid, account_id uuid, owner_user_id uuid, compliance_status text,
               days_overdue integer, next_touch_due timestamptz, priority_score numeric, priority_reason text)
language plpgsql stable set search_path = ''
as $$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_zone text;
  v_floor numeric;
begin
  v_now := hourglass.now();
  select t.timezone into v_zone from public.tenants t where t.id = p_tenant_id;
  -- The N-th stored priority among the candidates; nothing below it by more than the bonus can reach the top N.
  select c.priority_score into v_floor
  from public.engagement_clocks c
  where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
    and (not p_skip_open or not hourglass.touch_is_open(c.tenant_id, c.entity_type, c.entity_id, v_now))
  order by c.priority_score desc
  offset p_limit - 1 limit 1;

  return query
  select x.id, x.entity_type, x.entity_id, x.account_id, x.owner_user_id, x.compliance_status, x.days_overdue, x.next_touch_due,
         x.priority_score + x.bonus,
         case when x.bonus > 0 then pg_catalog.concat_ws('; ', x.priority_reason, pg_catalog.format('best time to reach now (+%s)', x.bonus))
              else x.priority_reason end
  from (
    select c.id, c.entity_type, c.entity_id, a.id as account_id, a.owner_user_id, c.compliance_status, c.days_overdue, c.next_touch_due,
           c.priority_score, c.priority_reason,
           hourglass.best_time_bonus(c.tenant_id, c.entity_type, c.entity_id, coalesce(k.timezone, a.timezone, v_zone), v_now) as bonus
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
      and c.priority_score >= coalesce(v_floor - 20, '-infinity'::numeric)
      and (not p_skip_open or not hourglass.touch_is_open(c.tenant_id, c.entity_type, c.entity_id, v_now))
  ) x
  order by x.priority_score + x.bonus desc, x.next_touch_due, x.id
  limit p_limit;
end
$$;

-- plpgsql, not sql: a sql function with SET is re-planned on every call before PostgreSQL 18.
create function hourglass.touch_is_open(p_tenant_id uuid, p_entity_type text, p_entity_id uuid, p_now timestamptz)
returns boolean
language plpgsql stable set search_path = ''
as $$
begin
  return exists (
    select 1 from public.cards o
    where o.tenant_id = p_tenant_id and o.entity_type = p_entity_type and o.entity_id = p_entity_id
      and ((o.kind = 'touch_task' and o.status = 'open')
           or (o.kind = 'approval' and (o.status = 'open' or (o.status = 'dismissed' and o.completed_at > p_now - interval '7 days')))));
end
$$;
-- Open cards and approvals by the entity they are for.
create index idx_cards_tenant_entity on public.cards (tenant_id, entity_type, entity_id) where status in ('open', 'dismissed');

revoke execute on function hourglass.touch_candidates(uuid, integer, boolean), hourglass.touch_is_open(uuid, text, uuid, timestamptz) from public, anon;
grant execute on function hourglass.touch_candidates(uuid, integer, boolean), hourglass.touch_is_open(uuid, text, uuid, timestamptz)
  to authenticated, service_role;

create or replace function public.engagement_queue(p_tenant_id uuid, p_limit integer default 50)
returns table (clock_id uuid, entity_type text, entity_id uuid, account_id uuid, owner_user_id uuid, compliance_status text,
               days_overdue integer, next_touch_due timestamptz, priority_score numeric, priority_reason text)
language plpgsql stable set search_path = ''
as $$
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'engagement_queue');
  if p_limit is null or p_limit <= 0 or p_limit > 1000 then
    raise exception using errcode = '22023', message = pg_catalog.format('engagement_queue: p_limit must be between 1 and 1000 (got %s)', coalesce(p_limit::text, 'null'));
  end if;
  return query select * from hourglass.touch_candidates(p_tenant_id, p_limit, false);
end
$$;
