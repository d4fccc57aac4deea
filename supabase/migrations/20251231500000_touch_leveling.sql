-- Leveling the touch wave (docs/engagement.md, "Leveling the wave"). Touches come due in waves: the contacts the agent
-- touched while it cleared a backlog all come due again one interval later, on the same few days, and a channel cap
-- (the email cap) lets the wave through only over several days, so some of it goes late. The agent looks ahead
-- (tenant setting level_ahead_days, default 7; 0 turns leveling off) and, when the clocks coming due in those days
-- would not fit through the cap on their own days, spends the cap's spare room today on the earliest of them.
--
-- hourglass.touch_candidates_ahead(p_tenant_id, p_capacity, p_room): p_capacity[i] is how many messages the cap lets
-- through on day i - 1 counted from now (day 0 = the next 24 hours; the caller reads it off the tenant's policy: cap,
-- send window, holidays); the first level_ahead_days of it are looked at; p_room is how many the cap still lets through now.
-- The clocks counted are those the queue could touch: not waiting on a return date, no open touch card or approval,
-- no message in flight, nobody opted out or marked do-not-contact. S(d) is how many of them are due by the end of day
-- d (the overdue and due-soon ones, already touch_candidates, included); the cap lets through C(1) + … + C(d) after
-- today, so at least max over d of S(d) - (C(1) + … + C(d)) must be touched today for every one of them to be on time.
-- What today's due and due-soon clocks do not cover of that (up to p_room) is returned: the earliest-due compliant
-- clocks, in the columns of touch_candidates, each with the reason. Read-only, security invoker (RLS applies);
-- executable by the service role.
create function hourglass.touch_candidates_ahead(p_tenant_id uuid, p_capacity integer[], p_room integer)
returns table (clock_id uuid, entity_type text, entity_id uuid, account_id uuid, owner_user_id uuid, compliance_status text,
               days_overdue integer, next_touch_due timestamptz, priority_score numeric, priority_reason text)
language sql
stable
set search_path to ''
as $function$
  with horizon as (
    select least(coalesce(pg_catalog.cardinality(p_capacity), 0),
                 greatest(hourglass.tenant_setting_int(p_tenant_id, 'level_ahead_days', 7), 0)) as days
  ),
  reachable as (
    select c.id, c.entity_type, c.entity_id, a.id as account_id, a.owner_user_id, c.compliance_status, c.days_overdue,
           c.next_touch_due, c.priority_score,
           greatest(pg_catalog.floor(extract(epoch from c.next_touch_due - hourglass.now()) / 86400), 0)::integer as day
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    where c.tenant_id = p_tenant_id
      and c.next_touch_due < hourglass.now() + pg_catalog.make_interval(days => (select h.days from horizon h))
      and (c.waiting_until is null or c.waiting_until <= hourglass.now())
      and k.opted_out_at is null and not coalesce(k.do_not_contact, false) and not coalesce(a.do_not_contact, false)
      and not exists (select 1 from public.cards o
                      where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
                        and o.kind in ('touch_task', 'approval') and o.status = 'open')
      and not exists (select 1 from public.message_outbox m
                      where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)
  ),
  days as (
    select d.day,
           (select count(*) from reachable r where r.day <= d.day) as due_by,
           (select coalesce(sum(x), 0) from pg_catalog.unnest(p_capacity[2:d.day + 1]) x) as capacity_after_today
    from pg_catalog.generate_series(0, (select h.days from horizon h) - 1) d(day)
  ),
  wave as (
    select w.day, w.due_by, w.due_by - w.capacity_after_today as today
    from days w
    order by w.due_by - w.capacity_after_today desc, w.day
    limit 1
  )
  select r.id, r.entity_type, r.entity_id, r.account_id, r.owner_user_id, r.compliance_status, r.days_overdue, r.next_touch_due,
         r.priority_score,
         pg_catalog.format('due %s, touched %s day(s) early: %s touches come due in the next %s day(s), more than the cap lets through on their own days',
                           pg_catalog.to_char(r.next_touch_due at time zone 'UTC', 'YYYY-MM-DD'), r.day, w.due_by, w.day + 1)
  from reachable r
  cross join wave w
  where r.compliance_status = 'compliant'
  order by r.next_touch_due, r.id
  limit greatest(least(coalesce(p_room, 0), (select w2.today from wave w2) - (select count(*) from reachable r2 where r2.compliance_status <> 'compliant')), 0)
$function$;

revoke execute on function hourglass.touch_candidates_ahead(uuid, integer[], integer) from public;
grant execute on function hourglass.touch_candidates_ahead(uuid, integer[], integer) to service_role;
