-- record_touches, faster (docs/benchmarks.md, "touches"): the batch's validation materializes its typed lines
-- once instead of re-running each line's checks at every reference, and clocks are recreated only for the
-- targets that lack one, instead of computing a frequency for every target first. Same signatures, same
-- results, same grants.

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
    select r.line, r.is_object,
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
    left join public.contacts k on t.entity_type = 'contact' and k.tenant_id = p_tenant_id and k.id = t.entity_id
    left join public.accounts a on t.entity_type = 'account' and a.tenant_id = p_tenant_id and a.id = t.entity_id
    left join public.warehouse_events w on t.idempotency_key is not null and w.tenant_id = p_tenant_id
      and w.idempotency_key = t.idempotency_key
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

create or replace function public.record_touches(p_tenant_id uuid, p_touches jsonb, p_on_error text default 'refuse')
returns table (line integer, outcome text, entity_type text, entity_id uuid, idempotency_key text, error text)
language plpgsql volatile set search_path = ''
as $$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_skew interval;
  v_due_soon timestamptz;
  v_lines hourglass.touch_line[];
  v_rejected integer;
  v_detail text;
  v_recorded text[];
  v_written integer;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'record_touches');
  if p_on_error is null or p_on_error not in ('refuse', 'skip') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('record_touches: p_on_error must be ''refuse'' or ''skip'' (got %L)', p_on_error);
  end if;
  if p_touches is null or pg_catalog.jsonb_typeof(p_touches) <> 'array' then
    raise exception using errcode = '22023', message = 'record_touches: p_touches must be a JSON array of touches';
  end if;
  if pg_catalog.jsonb_array_length(p_touches) > 10000 then
    raise exception using errcode = '54000',
      message = pg_catalog.format('record_touches: at most 10000 touches per batch (got %s)', pg_catalog.jsonb_array_length(p_touches));
  end if;

  v_now := hourglass.now();
  v_skew := pg_catalog.make_interval(secs => greatest(hourglass.tenant_setting_int(p_tenant_id, 'touch_future_skew_seconds', 300), 0));
  v_due_soon := v_now + pg_catalog.make_interval(days => greatest(hourglass.tenant_setting_int(p_tenant_id, 'due_soon_days', 3), 0));

  select pg_catalog.array_agg(l order by l.line) into v_lines from hourglass.touch_batch_lines(p_tenant_id, p_touches, v_now, v_skew) l;
  select pg_catalog.count(*) into v_rejected from unnest(v_lines) l where l.status = 'rejected';
  select pg_catalog.string_agg(pg_catalog.format('line %s: %s', f.line, f.error), '; ' order by f.line) into v_detail
  from (select l.line, l.error from unnest(v_lines) l where l.status = 'rejected' order by l.line limit 20) f;
  if v_rejected > 0 and p_on_error = 'refuse' then
    raise exception using errcode = '22023',
      message = pg_catalog.format('record_touches: %s of %s touches rejected, nothing recorded: %s',
        v_rejected, pg_catalog.jsonb_array_length(p_touches), v_detail || case when v_rejected > 20 then '; …' else '' end),
      hint = 'fix the lines named, or pass p_on_error => ''skip'' to record the valid ones';
  end if;

  -- Clocks are created with their contact or account; one missing (deleted by hand) is recreated first.
  -- The missing targets first, in a sub-select the planner cannot merge (offset 0): merged, it called
  -- engagement_frequency (three queries) for every target of the batch before the anti-join dropped them.
  insert into public.engagement_clocks (tenant_id, entity_type, entity_id, next_touch_due, touch_frequency_days, frequency_source)
  select p_tenant_id, t.entity_type, t.entity_id, v_now + pg_catalog.make_interval(days => f.days), f.days, f.source
  from (
    select distinct m.entity_type, m.entity_id
    from unnest(v_lines) l
    cross join lateral (values (l.entity_type, l.entity_id), ('account', l.account_id)) m(entity_type, entity_id)
    where l.status = 'new' and m.entity_id is not null
      and not exists (select 1 from public.engagement_clocks c
                      where c.tenant_id = p_tenant_id and c.entity_type = m.entity_type and c.entity_id = m.entity_id)
    offset 0
  ) t
  cross join lateral hourglass.engagement_frequency(p_tenant_id, t.entity_type, t.entity_id) f
  on conflict (tenant_id, entity_type, entity_id) do nothing;

  -- One statement writes the batch: the events (a key taken meanwhile by a concurrent batch is skipped, and that
  -- line is a duplicate), then every touched clock and the touch cards the touches satisfied.
  with events as (
    insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
    select p_tenant_id, 'touch', l.entity_type, l.entity_id,
           pg_catalog.jsonb_build_object('touch_type', l.touch_type, 'touch_by', l.touch_by),
           l.source, l.idempotency_key, l.occurred_at
    from unnest(v_lines) l where l.status = 'new'
    on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
    returning public.warehouse_events.idempotency_key as recorded_key
  ), touched as (
    -- A line without a key is always written; one with a key only if its insert was not skipped.
    select t.entity_type, t.entity_id, l.occurred_at, l.touch_type, l.touch_by, l.line
    from unnest(v_lines) l
    cross join lateral (values (l.entity_type, l.entity_id), ('account', l.account_id)) t(entity_type, entity_id)
    where l.status = 'new' and t.entity_id is not null
      and (l.idempotency_key is null or l.idempotency_key in (select e.recorded_key from events e))
  ), per_clock as (
    select t.entity_type, t.entity_id, pg_catalog.count(*) as touches, pg_catalog.max(t.occurred_at) as latest,
           (pg_catalog.array_agg(t.touch_type order by t.occurred_at desc, t.line desc))[1] as touch_type,
           (pg_catalog.array_agg(t.touch_by order by t.occurred_at desc, t.line desc))[1] as touch_by
    from touched t group by t.entity_type, t.entity_id
  ), clocks as (
    update public.engagement_clocks c
    set last_touch_at = case when n.newer then p.latest else c.last_touch_at end,
        last_touch_type = case when n.newer then p.touch_type else c.last_touch_type end,
        last_touch_by = case when n.newer then p.touch_by else c.last_touch_by end,
        last_card_id = case when n.newer then null else c.last_card_id end,
        next_touch_due = case when n.newer then n.due else c.next_touch_due end,
        touch_count = c.touch_count + p.touches,
        -- Back within its cadence: compliant now. Still due (a touch long ago): the refresh below re-ranks it.
        compliance_status = case when n.newer and n.due > v_due_soon then 'compliant' else c.compliance_status end,
        days_overdue = case when n.newer and n.due > v_due_soon then 0 else c.days_overdue end,
        priority_score = case when n.newer and n.due > v_due_soon then 0 else c.priority_score end,
        priority_reason = case when n.newer and n.due > v_due_soon then null else c.priority_reason end,
        recovered_at = case when n.newer and c.next_touch_due < v_now and n.due >= v_now then v_now else c.recovered_at end,
        updated_at = v_now
    from per_clock p
    -- The clock as it was (UPDATE's FROM cannot see the target's columns laterally): one index probe per clock.
    join public.engagement_clocks o on o.tenant_id = p_tenant_id and o.entity_type = p.entity_type and o.entity_id = p.entity_id
    cross join lateral (select p.latest > coalesce(o.last_touch_at, '-infinity'::timestamptz) as newer,
                               p.latest + pg_catalog.make_interval(days => o.touch_frequency_days) as due) n
    where c.id = o.id
    returning c.entity_type, c.entity_id, c.compliance_status
  ), cards as (
    -- A touch that leaves its clock within cadence has done an open touch card's job. One so old that the clock
    -- is still due leaves the card open.
    update public.cards k
    set status = 'done', completed_at = v_now, completed_by = p.touch_by, updated_at = v_now,
        payload = k.payload || pg_catalog.jsonb_build_object('satisfied_by_touch', p.touch_type)
    from clocks x
    join per_clock p on p.entity_type = x.entity_type and p.entity_id = x.entity_id
    where x.compliance_status = 'compliant' and k.tenant_id = p_tenant_id and k.kind = 'touch_task' and k.status = 'open'
      and k.entity_type = x.entity_type and k.entity_id = x.entity_id
  )
  select pg_catalog.array_agg(e.recorded_key), pg_catalog.count(*) into v_recorded, v_written from events e;

  -- A backdated touch can leave a clock due soon or overdue: recompute those clocks' status and priority.
  if v_written > 0 and exists (
    select 1 from public.engagement_clocks c
    where c.tenant_id = p_tenant_id and c.updated_at = v_now and c.next_touch_due <= v_due_soon) then
    perform public.refresh_engagement_compliance(p_tenant_id);
  end if;

  return query
  select l.line,
         case when l.status = 'new' and l.idempotency_key is not null and not (l.idempotency_key = any (coalesce(v_recorded, '{}'))) then 'duplicate'
              when l.status = 'new' then 'recorded' else l.status end,
         l.entity_type, l.entity_id, l.idempotency_key, l.error
  from unnest(v_lines) l order by l.line;
end
$$;

