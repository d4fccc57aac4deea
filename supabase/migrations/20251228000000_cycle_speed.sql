-- A cycle's fixed costs, cut (what the simulator's profile showed, docs/simulation.md).
--
-- Strategy attribution, evidence first. attribute_strategy_outcomes read every pending action (a touch that used a
-- strategy and is not judged yet) every hour and looked for each one's evidence — the first reply of the target after
-- the touch, else the first order of its account — until a reply or order came or the attribution window ended. A
-- tenant with a week's worth of touches (about 900 in the simulator) paid that every hour: 5-10 ms a call, a third of
-- the database's time in a cycle. Now the function starts from the other end: the replies and orders since the oldest
-- pending touch (a range of the (tenant_id, event_type, occurred_at) index and of a new (tenant_id, placed_at) index
-- on orders) lead to the pending actions on their targets (a new partial index by target), and only those, with the
-- actions whose window has ended, are judged — as before, by the first reply, else the first order, within the
-- window. Same signature, results and grants.

create index idx_orders_tenant_placed on public.orders (tenant_id, placed_at) where placed_at is not null;
create index idx_agent_actions_strategy_unjudged_target on public.agent_actions (tenant_id, target_id)
  where status = 'succeeded' and payload ? 'strategy_key' and strategy_judged_at is null;

create or replace function public.attribute_strategy_outcomes(p_tenant_id uuid)
returns table (judged bigint, successes bigint)
language plpgsql volatile set search_path = ''
as $$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_window interval;
  v_since timestamptz;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'attribute_strategy_outcomes');
  v_now := hourglass.now();
  v_window := pg_catalog.make_interval(days => greatest(hourglass.tenant_setting_int(p_tenant_id, 'attribution_days', 7), 1));
  select pg_catalog.min(a.completed_at) into v_since
  from public.agent_actions a
  where a.tenant_id = p_tenant_id and a.status = 'succeeded' and a.payload ? 'strategy_key' and a.strategy_judged_at is null;
  if v_since is null then
    return query select 0::bigint, 0::bigint;
    return;
  end if;

  return query
  with candidates as materialized (
    -- Actions whose window has ended: judged now, with or without evidence.
    select a.id
    from public.agent_actions a
    where a.tenant_id = p_tenant_id and a.status = 'succeeded' and a.payload ? 'strategy_key' and a.strategy_judged_at is null
      and a.completed_at <= v_now - v_window
    union
    -- Actions on a target that replied since the oldest pending touch.
    select a.id
    from (select e.entity_type, e.entity_id, pg_catalog.max(e.occurred_at) as last_at
          from public.warehouse_events e
          where e.tenant_id = p_tenant_id and e.event_type = 'reply' and e.occurred_at > v_since and e.occurred_at <= v_now
          group by e.entity_type, e.entity_id) r
    join public.agent_actions a
      on a.tenant_id = p_tenant_id and a.target_id = r.entity_id and a.target_type = r.entity_type
     and a.status = 'succeeded' and a.payload ? 'strategy_key' and a.strategy_judged_at is null
     and a.completed_at < r.last_at
    union
    -- Actions on an account that ordered since then, or on one of its contacts.
    select a.id
    from (select o.account_id, pg_catalog.max(o.placed_at) as last_at
          from public.orders o
          where o.tenant_id = p_tenant_id and o.placed_at > v_since and o.placed_at <= v_now
          group by o.account_id) o
    cross join lateral (
      select 'account'::text as target_type, o.account_id as target_id
      union all
      select 'contact', k.id from public.contacts k where k.tenant_id = p_tenant_id and k.account_id = o.account_id) t
    join public.agent_actions a
      on a.tenant_id = p_tenant_id and a.target_id = t.target_id and a.target_type = t.target_type
     and a.status = 'succeeded' and a.payload ? 'strategy_key' and a.strategy_judged_at is null
     and a.completed_at < o.last_at
  ), pending as materialized (
    select a.id, a.payload ->> 'strategy_key' as strategy_key, a.target_type, a.target_id, a.completed_at,
           case a.target_type when 'account' then a.target_id else k.account_id end as account_id
    from candidates c
    join public.agent_actions a on a.id = c.id and a.tenant_id = p_tenant_id
    left join public.contacts k on a.target_type = 'contact' and k.tenant_id = a.tenant_id and k.id = a.target_id
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

-- The patterns confirmed since the last cycle (React's hypotheses): a range of the tenant's active patterns by when
-- they were last confirmed, instead of all of them sorted by confidence.
create index idx_client_patterns_tenant_confirmed on public.client_patterns (tenant_id, last_confirmed_at) where is_active;
