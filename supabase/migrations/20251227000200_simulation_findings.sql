-- What the simulator (docs/simulation.md) found, fixed.
--
-- A message the agent sent is a touch. Until now a send_message action enqueued a message and nothing more: the
-- contact's clock stayed due, so the next cycle proposed the contact again and the planner could queue a message
-- for them every hour (the simulator, docs/simulation.md, showed it). Now:
--   * the dispatcher records the touch (update_engagement_clock, touch_type = the channel, touch_by 'agent') in
--     the same transaction that marks the message sent — a message that never goes out is not a touch;
--   * while a message for a contact or account is waiting to go out (pending or sending), that target counts as
--     having an open touch, like an open touch card: the queue skips it and the one_open_touch rule sees it;
--   * a message a person declined (a rejected approval) no longer keeps the contact out of the queue for 7 days — the
--     contact still needs a touch, so the planner asks the owner for one instead of another message (TouchTaskPart).

-- Unsent messages by their target (the handler writes target_type and target_id into the payload).
create index idx_message_outbox_unsent_target on public.message_outbox (tenant_id, (payload ->> 'target_id'))
  where status in ('pending', 'sending');

create or replace function hourglass.touch_candidates(p_tenant_id uuid, p_limit integer, p_skip_open boolean)
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
  if not exists (select 1 from public.client_patterns p where p.tenant_id = p_tenant_id and p.pattern_type = 'best_time' and p.is_active) then
    return query
    select c.id, c.entity_type, c.entity_id, a.id, a.owner_user_id, c.compliance_status, c.days_overdue, c.next_touch_due,
           c.priority_score, c.priority_reason
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
      and (not p_skip_open or (not exists (
        select 1 from public.cards o
        where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
          and o.kind in ('touch_task', 'approval') and o.status = 'open')
        and not exists (
        select 1 from public.message_outbox m
        where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)))
    order by c.priority_score desc, c.next_touch_due, c.id
    limit p_limit;
    return;
  end if;

  select t.timezone into v_zone from public.tenants t where t.id = p_tenant_id;
  -- The N-th stored priority among the candidates; nothing below it by more than the bonus can reach the top N.
  select c.priority_score into v_floor
  from public.engagement_clocks c
  where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
    and (not p_skip_open or (not exists (
      select 1 from public.cards o
      where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
        and o.kind in ('touch_task', 'approval') and o.status = 'open')
      and not exists (
      select 1 from public.message_outbox m
      where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)))
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
           case when bt.pattern_data -> 'best_slots' @> pg_catalog.to_jsonb(
                       (extract(isodow from v_now at time zone coalesce(k.timezone, a.timezone, v_zone, 'UTC'))::integer - 1) * 24
                       + extract(hour from v_now at time zone coalesce(k.timezone, a.timezone, v_zone, 'UTC'))::integer)
                then 20 else 0 end as bonus
    from public.engagement_clocks c
    left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
    left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
    left join public.client_patterns bt on bt.tenant_id = c.tenant_id and bt.entity_type = c.entity_type and bt.entity_id = c.entity_id
      and bt.pattern_type = 'best_time' and bt.is_active
    where c.tenant_id = p_tenant_id and c.compliance_status <> 'compliant'
      and c.priority_score >= coalesce(v_floor - 20, '-infinity'::numeric)
      and (not p_skip_open or (not exists (
        select 1 from public.cards o
        where o.tenant_id = c.tenant_id and o.entity_type = c.entity_type and o.entity_id = c.entity_id
          and o.kind in ('touch_task', 'approval') and o.status = 'open')
        and not exists (
        select 1 from public.message_outbox m
        where m.tenant_id = c.tenant_id and m.status in ('pending', 'sending') and (m.payload ->> 'target_id') = c.entity_id::text)))
  ) x
  order by x.priority_score + x.bonus desc, x.next_touch_due, x.id
  limit p_limit;
end
$$;

-- ---------------------------------------------------------------------------------------------------
-- When a detector last re-evaluated the patterns that move with time alone (churn risk) for every entity it knows.
-- InsightsEngine does that at most every 6 hours instead of every run: rewriting every account's churn risk every
-- hour was most of a quiet cycle's time in the simulator (docs/simulation.md); an entity with new events is still
-- re-evaluated at once.
-- ---------------------------------------------------------------------------------------------------
alter table public.insight_detector_state add column time_swept_at timestamptz;

-- ---------------------------------------------------------------------------------------------------
-- Strategy attribution, bounded. attribute_strategy_outcomes found its pending actions by reading every action that
-- ever used a strategy and probing strategy_attributions for each: in the simulator that grew with every hour and
-- became the largest part of a cycle (about 100 ms of it after four days). Now an action records when it was judged
-- (agent_actions.strategy_judged_at, set in the statement that judges it), and the pending ones are a partial index
-- of the actions not yet judged — at most the attribution window's worth. Same signature, results and grants.
-- ---------------------------------------------------------------------------------------------------
alter table public.agent_actions add column strategy_judged_at timestamptz;
update public.agent_actions a set strategy_judged_at = s.decided_at
from public.strategy_attributions s
where s.tenant_id = a.tenant_id and s.action_id = a.id;

drop index public.idx_agent_actions_tenant_strategy;
create index idx_agent_actions_strategy_unjudged on public.agent_actions (tenant_id, completed_at)
  where status = 'succeeded' and payload ? 'strategy_key' and strategy_judged_at is null;

create or replace function public.attribute_strategy_outcomes(p_tenant_id uuid)
returns table (judged bigint, successes bigint)
language plpgsql volatile set search_path = ''
as $$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_window interval;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'attribute_strategy_outcomes');
  v_now := hourglass.now();
  v_window := pg_catalog.make_interval(days => greatest(hourglass.tenant_setting_int(p_tenant_id, 'attribution_days', 7), 1));
  return query
  with pending as materialized (
    select a.id, a.payload ->> 'strategy_key' as strategy_key, a.target_type, a.target_id, a.completed_at,
           case a.target_type when 'account' then a.target_id else k.account_id end as account_id
    from public.agent_actions a
    left join public.contacts k on a.target_type = 'contact' and k.tenant_id = a.tenant_id and k.id = a.target_id
    where a.tenant_id = p_tenant_id and a.status = 'succeeded' and a.payload ? 'strategy_key' and a.strategy_judged_at is null
  ), judged as (
    select p.*,
           coalesce(
             (select e.id from public.warehouse_events e
              where e.tenant_id = p_tenant_id and e.entity_type = p.target_type and e.entity_id = p.target_id and e.event_type = 'reply'
                and e.occurred_at > p.completed_at and e.occurred_at <= least(p.completed_at + v_window, v_now)
              order by e.occurred_at limit 1),
             (select o.id from public.orders o
              where o.tenant_id = p_tenant_id and o.account_id = p.account_id
                and o.placed_at > p.completed_at and o.placed_at <= least(p.completed_at + v_window, v_now)
              order by o.placed_at limit 1)) as evidence
    from pending p
  ), decided as (
    insert into public.strategy_attributions (tenant_id, action_id, strategy_key, touched_at, outcome, evidence_event_id, decided_at)
    select p_tenant_id, j.id, j.strategy_key, j.completed_at, case when j.evidence is not null then 'success' else 'failure' end, j.evidence, v_now
    from judged j
    where j.evidence is not null or j.completed_at + v_window <= v_now
    on conflict (tenant_id, action_id) do nothing
    returning action_id, strategy_key, outcome
  ), marked as (
    -- Judged now, or (a conflict above) before: either way it is no longer pending.
    update public.agent_actions a set strategy_judged_at = v_now
    from judged j
    where a.tenant_id = p_tenant_id and a.id = j.id and (j.evidence is not null or j.completed_at + v_window <= v_now)
    returning a.id
  ), per_strategy as (
    select d.strategy_key, pg_catalog.count(*) as n, pg_catalog.count(*) filter (where d.outcome = 'success') as s from decided d group by d.strategy_key
  ), updated as (
    update public.success_strategies st
    set usage_count = st.usage_count + ps.n, success_count = st.success_count + ps.s,
        effectiveness_score = (st.success_count + ps.s + 1)::numeric / (st.usage_count + ps.n + 2),
        effectiveness_lower = greatest(0, least(1,
          (st.success_count + ps.s + 1)::numeric / (st.usage_count + ps.n + 2)
          - 1.645 * sqrt(((st.success_count + ps.s + 1)::numeric * (st.usage_count - st.success_count + ps.n - ps.s + 1))
                         / ((st.usage_count + ps.n + 2)::numeric ^ 2 * (st.usage_count + ps.n + 3))))),
        updated_at = v_now
    from per_strategy ps
    where st.tenant_id = p_tenant_id and st.strategy_key = ps.strategy_key
    returning st.id
  )
  select (select coalesce(sum(ps.n), 0)::bigint from per_strategy ps), (select coalesce(sum(ps.s), 0)::bigint from per_strategy ps)
  from (select pg_catalog.count(*) from updated) u, (select pg_catalog.count(*) from marked) m;
end
$$;
