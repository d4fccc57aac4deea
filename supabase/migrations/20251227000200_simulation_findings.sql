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

-- ---------------------------------------------------------------------------------------------------
-- A touch line with a field record_touches does not know is refused by name, as ingest_events refuses an event's:
-- a typo ("ocurred_at") was silently ignored and the touch recorded at the wrong time, and a line could look as
-- if it chose its tenant ("tenant_id"). Otherwise the same as 20251227000100's.
-- ---------------------------------------------------------------------------------------------------
create or replace function hourglass.touch_batch_lines(p_tenant_id uuid, p_touches jsonb, p_now timestamptz, p_skew interval)
returns setof hourglass.touch_line
language plpgsql stable set search_path = ''
as $$
begin
  return query
  with raw as (
    select e.ordinality::integer as line, e.value as item,
           pg_catalog.jsonb_typeof(e.value) = 'object' as is_object
    from pg_catalog.jsonb_array_elements(p_touches) with ordinality e
  ), fields as (
    select r.line, r.is_object, r.item,
           case when r.is_object then r.item ->> 'entity_type' end as entity_type,
           case when r.is_object then r.item ->> 'entity_id' end as entity_id,
           case when r.is_object then r.item ->> 'touch_type' end as touch_type,
           case when r.is_object then coalesce(r.item ->> 'touch_by', 'api') end as touch_by,
           case when r.is_object then coalesce(r.item ->> 'source', 'api') end as source,
           case when r.is_object then r.item ->> 'occurred_at' end as occurred_at,
           case when r.is_object then r.item ->> 'idempotency_key' end as idempotency_key
    from raw r
  ), shaped as (
    -- Shape errors first, so that every cast below only sees text that parses.
    select f.*,
      case
        when not f.is_object then 'not a JSON object'
        when (f.item - array['entity_type', 'entity_id', 'touch_type', 'touch_by', 'occurred_at', 'idempotency_key', 'source']) <> '{}'::jsonb then
          pg_catalog.format('unknown field(s) %s (the fields are entity_type, entity_id, touch_type, touch_by, occurred_at, idempotency_key, source)',
            (select pg_catalog.string_agg(pg_catalog.quote_literal(k), ', ' order by k collate "C")
             from pg_catalog.jsonb_object_keys(f.item - array['entity_type', 'entity_id', 'touch_type', 'touch_by', 'occurred_at', 'idempotency_key', 'source']) k))
        when f.entity_type is null or f.entity_type not in ('contact', 'account')
          then pg_catalog.format('entity_type must be ''contact'' or ''account'' (got %s)', coalesce(pg_catalog.quote_literal(f.entity_type), 'nothing'))
        when f.entity_id is null or f.entity_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
          then pg_catalog.format('entity_id must be a uuid (got %s)', coalesce(pg_catalog.quote_literal(f.entity_id), 'nothing'))
        when f.touch_type is null or pg_catalog.btrim(f.touch_type) = '' or pg_catalog.length(f.touch_type) > 100
          then 'touch_type is required (1-100 characters)'
        when pg_catalog.btrim(f.touch_by) = '' or pg_catalog.length(f.touch_by) > 200 then 'touch_by must be 1-200 characters'
        when pg_catalog.btrim(f.source) = '' or pg_catalog.length(f.source) > 100 then 'source must be 1-100 characters'
        when f.occurred_at is not null and f.occurred_at !~
             '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|z|[+-]\d{2}(:?\d{2})?)$'
          then pg_catalog.format('occurred_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2025-12-01T09:30:00Z (got %L)', f.occurred_at)
        when f.idempotency_key is not null and (pg_catalog.btrim(f.idempotency_key) = '' or pg_catalog.length(f.idempotency_key) > 200)
          then 'idempotency_key must be 1-200 characters'
      end as shape_error
    from fields f
  ), typed as materialized (
    -- Materialized: inlined, every later reference re-ran each line's regex checks and casts.
    select s.line, s.entity_type,
           case when s.shape_error is null then s.entity_id::uuid end as entity_id,
           s.touch_type, s.touch_by, s.source,
           case when s.shape_error is null then coalesce(s.occurred_at::timestamptz, p_now) end as occurred_at,
           s.occurred_at is not null as explicit_time, s.idempotency_key, s.shape_error
    from shaped s
  ), resolved as (
    select t.*,
           k.account_id,
           case when t.entity_type = 'contact' then k.id is not null else a.id is not null end as entity_exists,
           w.entity_type as used_entity_type, w.entity_id as used_entity_id, w.occurred_at as used_occurred_at,
           w.payload ->> 'touch_type' as used_touch_type, w.id is not null as key_used,
           pg_catalog.row_number() over (partition by t.idempotency_key order by t.line) as key_rank,
           pg_catalog.first_value(row(t.entity_type, t.entity_id, t.touch_type, case when t.explicit_time then t.occurred_at end)::text)
             over (partition by t.idempotency_key order by t.line) as first_with_key
    from typed t
    -- One index probe per line (LATERAL with LIMIT is never pulled up into a join): as plain joins, a planner misled
    -- by stale statistics could hash a whole table for a small batch.
    left join lateral (select k.id, k.account_id from public.contacts k
                       where t.entity_type = 'contact' and k.tenant_id = p_tenant_id and k.id = t.entity_id limit 1) k on true
    left join lateral (select a.id from public.accounts a
                       where t.entity_type = 'account' and a.tenant_id = p_tenant_id and a.id = t.entity_id limit 1) a on true
    left join lateral (select w.id, w.entity_type, w.entity_id, w.occurred_at, w.payload from public.warehouse_events w
                       where t.idempotency_key is not null and w.tenant_id = p_tenant_id and w.idempotency_key = t.idempotency_key
                       limit 1) w on true
  )
  select r.line, r.entity_type, r.entity_id, r.account_id, r.touch_type, r.touch_by, r.source, r.occurred_at, r.idempotency_key,
         case when x.error is not null then 'rejected'
              when r.key_used or (r.idempotency_key is not null and r.key_rank > 1) then 'duplicate'
              else 'new' end,
         x.error
  from resolved r
  cross join lateral (select case
      when r.shape_error is not null then r.shape_error
      when not r.entity_exists then pg_catalog.format('%s %s does not exist in this tenant', r.entity_type, r.entity_id)
      when r.occurred_at > p_now + p_skew
        then pg_catalog.format('occurred_at %s is in the future (more than %s ahead of the database clock)', r.occurred_at, p_skew)
      -- A resent line without its own time is the same touch whenever it is resent.
      when r.key_used and (r.used_entity_type, r.used_entity_id, r.used_touch_type, case when r.explicit_time then r.used_occurred_at end)
                          is distinct from (r.entity_type, r.entity_id, r.touch_type, case when r.explicit_time then r.occurred_at end)
        then pg_catalog.format('idempotency_key %L was already used for a different touch', r.idempotency_key)
      when r.idempotency_key is not null and r.key_rank > 1
           and r.first_with_key is distinct from row(r.entity_type, r.entity_id, r.touch_type, case when r.explicit_time then r.occurred_at end)::text
        then pg_catalog.format('idempotency_key %L appears earlier in the batch for a different touch', r.idempotency_key)
    end as error) x
  order by r.line;
end
$$;
