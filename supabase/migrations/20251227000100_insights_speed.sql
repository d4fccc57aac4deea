-- Insights, faster and safer (docs/insights.md, docs/benchmarks.md "detection"):
--   1. the detectors' page index, (tenant_id, event_type, seq);
--   2. ingest_events and touch_batch_lines (record_touches) probe the entities and idempotency keys of a batch
--      through their indexes, one probe per line, whatever the planner's statistics say;
--   3. the event frontier passes a gap only when no transaction that could still fill it is running.

-- ---------------------------------------------------------------------------------------------------
-- 1. Each detector reads, per tenant, its event types in ranges of seq numbers past its watermark
-- (InsightsEngine.PageSql: tenant_id = $1 and event_type = any($4) and seq > $2 and seq <= $3): with this index a
-- page reads only its own rows. With (tenant_id, seq), a detector fetched every event of the tenant and filtered
-- out the other types (the orders detector threw away 9 rows in 10), and with (tenant_id, event_type, occurred_at)
-- a page could not be bounded by seq. Nothing else reads (tenant_id, seq).
-- ---------------------------------------------------------------------------------------------------

create index idx_warehouse_events_tenant_type_seq on public.warehouse_events (tenant_id, event_type, seq);
drop index public.idx_warehouse_events_tenant_seq;

-- ---------------------------------------------------------------------------------------------------
-- 2. Batch lookups, one index probe per line. ingest_events looked up each line's contact, account or order and
-- each key's event with plain joins against the whole tables; on a table with stale statistics the planner chose
-- to hash 500,000 events for a batch of 1,000 (1.4 s against 66 ms). The planner never pulls a subquery with a
-- LIMIT up into the outer query (it is planned on its own), so a LATERAL one
-- (https://www.postgresql.org/docs/current/queries-table-expressions.html#QUERIES-LATERAL) runs once per line,
-- through the primary key or the unique (tenant_id, idempotency_key) index, whatever the statistics say (tested
-- with nested loops disabled: BatchProbeAndFrontierTests). touch_batch_lines (record_touches' validation) had the same joins, and record_touches the same
-- shape for the clocks of a batch's targets. Same signatures, results and grants.
-- ---------------------------------------------------------------------------------------------------

create or replace function public.ingest_events(p_tenant_id uuid, p_events jsonb, p_on_error text default 'refuse')
returns table (line integer, outcome text, event_id uuid, idempotency_key text, error text)
language plpgsql volatile set search_path = ''
as $$
#variable_conflict use_column
declare
  v_fields constant text[] := array['event_type', 'entity_type', 'entity_id', 'payload', 'occurred_at', 'idempotency_key', 'source'];
  v_now timestamptz;
  v_skew integer;
  v_lines hourglass.event_line[];
  v_total integer;
  v_rejected integer;
  v_detail text;
  v_lost text[];
  v_conflicted text[];
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'ingest_events');
  if p_on_error is null or p_on_error not in ('refuse', 'skip') then
    raise exception using errcode = '22023',
      message = pg_catalog.format('ingest_events: p_on_error must be ''refuse'' or ''skip'' (got %L)', p_on_error);
  end if;
  if p_events is null or pg_catalog.jsonb_typeof(p_events) <> 'array' then
    raise exception using errcode = '22023', message = 'ingest_events: p_events must be a JSON array of events';
  end if;
  v_total := pg_catalog.jsonb_array_length(p_events);
  if v_total > 10000 then
    raise exception using errcode = '54000',
      message = pg_catalog.format('ingest_events: at most 10000 events per batch (got %s)', v_total);
  end if;

  v_now := hourglass.now();
  v_skew := greatest(hourglass.tenant_setting_int(p_tenant_id, 'event_future_skew_seconds', 300), 0);

  -- Each step is materialized: inlined, every reference to a column would evaluate its expression again (the
  -- pattern checks ran four times per line).
  with fields as materialized (
    select e.ordinality::integer as line, e.value as item, pg_catalog.jsonb_typeof(e.value) as item_type,
           e.value ->> 'event_type' as event_type, e.value ->> 'entity_type' as entity_type, e.value ->> 'entity_id' as entity_id,
           e.value -> 'payload' as payload, e.value ->> 'occurred_at' as occurred_at,
           e.value ->> 'idempotency_key' as idempotency_key, e.value ->> 'source' as source,
           -- jsonb_typeof of each field that must be a string (null when absent).
           array[pg_catalog.jsonb_typeof(e.value -> 'event_type'), pg_catalog.jsonb_typeof(e.value -> 'entity_type'),
                 pg_catalog.jsonb_typeof(e.value -> 'entity_id'), pg_catalog.jsonb_typeof(e.value -> 'occurred_at'),
                 pg_catalog.jsonb_typeof(e.value -> 'idempotency_key'), pg_catalog.jsonb_typeof(e.value -> 'source')] as kinds
    from pg_catalog.jsonb_array_elements(p_events) with ordinality e
  ), shaped as materialized (
    -- Shape errors first, so that every cast below only sees text that parses. CASE keeps the order: the date
    -- arithmetic runs only on text the pattern matched.
    select f.line, f.event_type, f.entity_type, f.entity_id, f.payload, f.occurred_at, f.idempotency_key, f.source,
      case
        when f.item_type <> 'object' then 'not a JSON object'
        when (f.item - v_fields) <> '{}'::jsonb then
          pg_catalog.format('unknown field(s) %s (the fields are %s)',
            (select pg_catalog.string_agg(pg_catalog.quote_literal(k), ', ' order by k collate "C")
             from pg_catalog.jsonb_object_keys(f.item - v_fields) k),
            pg_catalog.array_to_string(v_fields, ', '))
        when f.kinds[1] not in ('string', 'null') then pg_catalog.format('event_type must be a string (got %s)', f.kinds[1])
        when f.kinds[2] not in ('string', 'null') then pg_catalog.format('entity_type must be a string (got %s)', f.kinds[2])
        when f.kinds[3] not in ('string', 'null') then pg_catalog.format('entity_id must be a string (got %s)', f.kinds[3])
        when f.kinds[4] not in ('string', 'null') then pg_catalog.format('occurred_at must be a string (got %s)', f.kinds[4])
        when f.kinds[5] not in ('string', 'null') then pg_catalog.format('idempotency_key must be a string (got %s)', f.kinds[5])
        when f.kinds[6] not in ('string', 'null') then pg_catalog.format('source must be a string (got %s)', f.kinds[6])
        when pg_catalog.jsonb_typeof(f.payload) not in ('object', 'null')
          then pg_catalog.format('payload must be a JSON object (got %s)', pg_catalog.jsonb_typeof(f.payload))
        when f.event_type is null or pg_catalog.btrim(f.event_type) = '' or pg_catalog.length(f.event_type) > 100
          then 'event_type is required (1-100 characters)'
        when f.entity_type is not null and f.entity_type not in ('contact', 'account', 'order', 'tenant')
          then pg_catalog.format('entity_type must be ''contact'', ''account'', ''order'' or ''tenant'' (got %L)', f.entity_type)
        when f.entity_type is null and f.entity_id is not null then 'entity_id is given without an entity_type'
        when f.entity_type is not null
             and (f.entity_id is null or f.entity_id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
          then pg_catalog.format('entity_id must be a uuid (got %s)', coalesce(pg_catalog.quote_literal(f.entity_id), 'nothing'))
        when f.source is not null and (pg_catalog.btrim(f.source) = '' or pg_catalog.length(f.source) > 100)
          then 'source must be 1-100 characters'
        when f.occurred_at is not null and not case
            when f.occurred_at !~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?(Z|z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)$'
              then false
            when pg_catalog.substr(f.occurred_at, 1, 4) = '0000' then false
            -- 30 February passes the pattern, not the calendar: the month's length decides.
            else pg_catalog.substr(f.occurred_at, 9, 2)::integer <= case pg_catalog.substr(f.occurred_at, 6, 2)::integer
                when 2 then case when pg_catalog.substr(f.occurred_at, 1, 4)::integer % 4 = 0
                                       and (pg_catalog.substr(f.occurred_at, 1, 4)::integer % 100 <> 0
                                            or pg_catalog.substr(f.occurred_at, 1, 4)::integer % 400 = 0) then 29 else 28 end
                when 4 then 30 when 6 then 30 when 9 then 30 when 11 then 30
                else 31 end
          end
          then pg_catalog.format('occurred_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2025-12-01T09:30:00Z (got %L)', f.occurred_at)
        when f.idempotency_key is not null and (pg_catalog.btrim(f.idempotency_key) = '' or pg_catalog.length(f.idempotency_key) > 200)
          then 'idempotency_key must be 1-200 characters'
      end as shape_error
    from fields f
  ), checked as materialized (
    -- Everything but the keys: the entity in this tenant, the time within bounds. Every line gets an id; a new
    -- event keeps it, a duplicate later takes its first line's.
    select s.line, s.event_type, s.entity_type, t.entity_id, t.payload, coalesce(s.source, 'api') as source, t.occurred_at,
           s.occurred_at as occurred_text, s.occurred_at is not null as explicit_time, s.idempotency_key, pg_catalog.gen_random_uuid() as id,
           case
             when s.shape_error is not null then s.shape_error
             when (s.entity_type = 'contact' and k.id is null) or (s.entity_type = 'account' and a.id is null)
                  or (s.entity_type = 'order' and o.id is null)
               then pg_catalog.format('%s %s does not exist in this tenant', s.entity_type, t.entity_id)
             when s.entity_type = 'tenant' and t.entity_id <> p_tenant_id then pg_catalog.format('tenant %s is not this tenant', t.entity_id)
             when t.occurred_at < '1970-01-01 00:00:00+00'::timestamptz then pg_catalog.format('occurred_at %L is before 1970', s.occurred_at)
             when t.occurred_at > v_now + pg_catalog.make_interval(secs => v_skew)
               then pg_catalog.format('occurred_at %L is in the future (more than %s seconds ahead of the database clock)', s.occurred_at, v_skew)
           end as line_error
    from shaped s
    -- OFFSET 0 keeps the casts in one place (pulled up, they would be evaluated at every reference).
    cross join lateral (select case when s.shape_error is null then s.entity_id::uuid end as entity_id,
                               case when s.shape_error is null then coalesce(nullif(s.payload, 'null'::jsonb), '{}'::jsonb) end as payload,
                               case when s.shape_error is null then coalesce(s.occurred_at::timestamptz, v_now) end as occurred_at
                        offset 0) t
    -- One index probe per line: a LATERAL subquery with a LIMIT is never pulled up into a join, so it runs per line
    -- through the table's primary key. As plain joins, a planner misled by stale statistics hashed the whole table
    -- for a small batch. (Not EXISTS: the planner may turn an EXISTS into a hashed subplan, and drops its LIMIT.)
    left join lateral (select k.id from public.contacts k
                       where s.entity_type = 'contact' and k.tenant_id = p_tenant_id and k.id = t.entity_id limit 1) k on true
    left join lateral (select a.id from public.accounts a
                       where s.entity_type = 'account' and a.tenant_id = p_tenant_id and a.id = t.entity_id limit 1) a on true
    left join lateral (select o.id from public.orders o
                       where s.entity_type = 'order' and o.tenant_id = p_tenant_id and o.id = t.entity_id limit 1) o on true
  ), keyed as (
    -- The keys: the event already recorded under each (one index probe per keyed line), and the first valid line
    -- of the batch with it.
    select c.*, w.id as used_id, w.event_type as used_event_type, w.entity_type as used_entity_type, w.entity_id as used_entity_id,
           w.payload as used_payload, w.occurred_at as used_occurred_at,
           pg_catalog.first_value(c.line) over first_valid as first_line,
           pg_catalog.first_value(c.id) over first_valid as first_id,
           pg_catalog.first_value(c.event_type) over first_valid as first_event_type,
           pg_catalog.first_value(c.entity_type) over first_valid as first_entity_type,
           pg_catalog.first_value(c.entity_id) over first_valid as first_entity_id,
           pg_catalog.first_value(c.payload) over first_valid as first_payload,
           pg_catalog.first_value(c.occurred_at) over first_valid as first_occurred_at
    from checked c
    -- One probe of the unique (tenant_id, idempotency_key) index per keyed line (LIMIT: never a join).
    left join lateral (select w.id, w.event_type, w.entity_type, w.entity_id, w.payload, w.occurred_at
                       from public.warehouse_events w
                       where c.line_error is null and c.idempotency_key is not null
                         and w.tenant_id = p_tenant_id and w.idempotency_key = c.idempotency_key
                       limit 1) w on true
    window first_valid as (partition by c.idempotency_key, c.line_error is null order by c.line)
  ), decided as (
    select y.*,
      case
        when y.line_error is not null then y.line_error
        -- A resent line without its own time is the same event whenever it is resent.
        when y.used_id is not null
             and not ((y.used_event_type, y.used_entity_type, y.used_entity_id, y.used_payload)
                        is not distinct from (y.event_type, y.entity_type, y.entity_id, y.payload)
                      and (not y.explicit_time or y.used_occurred_at = y.occurred_at))
          then pg_catalog.format('idempotency_key %L was already used for a different event', y.idempotency_key)
        when y.idempotency_key is not null and y.line <> y.first_line
             and not ((y.first_event_type, y.first_entity_type, y.first_entity_id, y.first_payload)
                        is not distinct from (y.event_type, y.entity_type, y.entity_id, y.payload)
                      and (not y.explicit_time or y.first_occurred_at = y.occurred_at))
          then pg_catalog.format('idempotency_key %L appears earlier in the batch for a different event', y.idempotency_key)
      end as error
    from keyed y
  )
  select pg_catalog.array_agg(row(
           d.line,
           -- The event's id: a new one's own, a duplicate's first line's or the one recorded before.
           case when d.error is not null then null
                when d.used_id is not null then d.used_id
                when d.idempotency_key is not null then d.first_id
                else d.id end,
           d.event_type, d.entity_type, d.entity_id, d.payload, d.source, d.occurred_at, d.explicit_time, d.idempotency_key,
           case when d.error is not null then 'rejected'
                when d.used_id is not null or (d.idempotency_key is not null and d.line <> d.first_line) then 'duplicate'
                else 'new' end,
           d.error)::hourglass.event_line order by d.line)
    into v_lines
  from decided d;

  select pg_catalog.count(*) into v_rejected from pg_catalog.unnest(v_lines) l where l.status = 'rejected';
  if v_rejected > 0 and p_on_error = 'refuse' then
    select pg_catalog.string_agg(pg_catalog.format('line %s: %s', f.line, f.error), '; ' order by f.line) into v_detail
    from (select l.line, l.error from pg_catalog.unnest(v_lines) l where l.status = 'rejected' order by l.line limit 20) f;
    raise exception using errcode = '22023',
      message = pg_catalog.format('ingest_events: %s of %s events rejected, nothing recorded: %s',
        v_rejected, v_total, v_detail || case when v_rejected > 20 then '; …' else '' end),
      hint = 'fix the lines named, or pass p_on_error => ''skip'' to record the valid ones';
  end if;

  -- One statement writes the batch. A key taken meanwhile by a concurrent batch is skipped (the unique index
  -- waits for that batch to commit or roll back): its lines are resolved below.
  with written as (
    insert into public.warehouse_events as w (id, tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
    select l.id, p_tenant_id, l.event_type, l.entity_type, l.entity_id, l.payload, l.source, l.idempotency_key, l.occurred_at
    from pg_catalog.unnest(v_lines) l where l.status = 'new'
    on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
    returning w.id
  )
  select pg_catalog.array_agg(l.idempotency_key) into v_lost
  from pg_catalog.unnest(v_lines) l
  where l.status = 'new' and l.idempotency_key is not null and not exists (select 1 from written x where x.id = l.id);

  if v_lost is not null then
    -- A later statement sees the winner's row (READ COMMITTED takes a new snapshot): the same event makes the key's
    -- lines duplicates, a different one rejections — which refuse the batch in 'refuse' mode, rolling back what was
    -- written.
    select pg_catalog.array_agg(l.idempotency_key) into v_conflicted
    from pg_catalog.unnest(v_lines) l
    cross join lateral (select w.event_type, w.entity_type, w.entity_id, w.payload, w.occurred_at from public.warehouse_events w
                        where w.tenant_id = p_tenant_id and w.idempotency_key = l.idempotency_key limit 1) w
    where l.status = 'new' and l.idempotency_key = any (v_lost)
      and not ((w.event_type, w.entity_type, w.entity_id, w.payload) is not distinct from (l.event_type, l.entity_type, l.entity_id, l.payload)
               and (not l.explicit_time or w.occurred_at = l.occurred_at));
    if v_conflicted is not null and p_on_error = 'refuse' then
      raise exception using errcode = '22023',
        message = pg_catalog.format('ingest_events: %s of %s events rejected, nothing recorded: %s',
          (select pg_catalog.count(*) from pg_catalog.unnest(v_lines) l where l.status <> 'rejected' and l.idempotency_key = any (v_conflicted)), v_total,
          (select pg_catalog.string_agg(pg_catalog.format('line %s: idempotency_key %L was already used for a different event', l.line, l.idempotency_key), '; ' order by l.line)
           from (select l.line, l.idempotency_key from pg_catalog.unnest(v_lines) l
                 where l.status <> 'rejected' and l.idempotency_key = any (v_conflicted) order by l.line limit 20) l)),
        hint = 'a concurrent batch recorded other events under these keys';
    end if;
  end if;

  return query
  select l.line,
         case when l.status = 'rejected' then 'rejected'
              when l.idempotency_key = any (v_conflicted) then 'rejected'
              when l.idempotency_key = any (v_lost) then 'duplicate'
              when l.status = 'new' then 'recorded'
              else l.status end,
         case when l.status = 'rejected' or l.idempotency_key = any (v_conflicted) then null
              -- The event a concurrent batch recorded under the key (a subquery run only for these lines).
              when l.idempotency_key = any (v_lost)
                then (select w.id from public.warehouse_events w where w.tenant_id = p_tenant_id and w.idempotency_key = l.idempotency_key)
              else l.id end,
         l.idempotency_key,
         case when l.status <> 'rejected' and l.idempotency_key = any (v_conflicted)
              then pg_catalog.format('idempotency_key %L was already used for a different event', l.idempotency_key)
              else l.error end
  from pg_catalog.unnest(v_lines) l
  order by l.line;
end
$$;

revoke execute on function public.ingest_events(uuid, jsonb, text) from public, anon;
grant execute on function public.ingest_events(uuid, jsonb, text) to authenticated, service_role;

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

revoke execute on function hourglass.touch_batch_lines(uuid, jsonb, timestamptz, interval) from public, anon;
grant execute on function hourglass.touch_batch_lines(uuid, jsonb, timestamptz, interval) to authenticated, service_role;

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
    -- One probe of the clocks' unique key per target (LATERAL with LIMIT, never an anti-join that could hash every
    -- clock of every tenant).
    left join lateral (select c.id from public.engagement_clocks c
                       where c.tenant_id = p_tenant_id and c.entity_type = m.entity_type and c.entity_id = m.entity_id limit 1) c on true
    where l.status = 'new' and m.entity_id is not null and c.id is null
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
    cross join lateral (select o.id, o.last_touch_at, o.touch_frequency_days from public.engagement_clocks o
                        where o.tenant_id = p_tenant_id and o.entity_type = p.entity_type and o.entity_id = p.entity_id limit 1) o
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

revoke execute on function public.record_touches(uuid, jsonb, text) from public, anon;
grant execute on function public.record_touches(uuid, jsonb, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------
-- 3. The frontier's gaps. A number missing below a committed event is either still held by a transaction in
-- flight, or burned (a rollback, an ON CONFLICT DO NOTHING). The frontier used to pass a gap once the event after it
-- was 30 seconds old — which skipped, for good, the events of an ingestion that held its numbers longer.
--
-- Now it passes a gap only when it knows: every transaction that inserts into warehouse_events holds a
-- RowExclusiveLock on it from before it takes a number until it ends (the lock is taken when the statement is
-- parsed, https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-TABLES, and held to the end of the
-- transaction). So when the frontier stops at a gap it records the newest seq it saw (the horizon: every number up to
-- it was taken already) and the virtual transaction ids of the transactions then holding that lock; once none of
-- them is running any more (each holds a lock on its own virtualxid until it ends, pg_locks) every number up to the
-- horizon is committed or never will be, and the frontier moves to the horizon. When no one is writing, a gap is
-- passed at once. A transaction ends after its commit is visible, so a lock gone means its events are there to read.
-- Long-running writers of any kind (a large import, retention's DELETE) hold back the frontier while there is a gap,
-- never the events. p_gap_timeout is no longer needed; the parameter stays so that callers keep working.
-- ---------------------------------------------------------------------------------------------------

alter table hourglass.event_frontier
  add column gap_horizon bigint,
  add column gap_writers text[];

create or replace function hourglass.advance_event_frontier(p_gap_timeout interval default interval '30 seconds') returns bigint
language plpgsql volatile set search_path = ''
as $$
declare
  v_start bigint;
  v_safe bigint;
  v_horizon bigint;
  v_writers text[];
  v_next bigint;
  v_last bigint;
  v_scans integer := 0;
begin
  select f.safe_seq, f.gap_horizon, f.gap_writers into v_start, v_horizon, v_writers
  from hourglass.event_frontier f where f.singleton for update;
  v_safe := v_start;
  loop
    -- The frontier moves over numbers with no gap below them (at most 100,000 events a scan, 4 scans a call), to
    -- just before the first gap.
    v_scans := v_scans + 1;
    with s as (
      select e.seq, pg_catalog.lag(e.seq) over (order by e.seq) as prev
      from (select w.seq from public.warehouse_events w where w.seq > v_safe order by w.seq limit 100000) e
    )
    select coalesce((select coalesce(s.prev, v_safe) from s where s.seq - coalesce(s.prev, v_safe) > 1 order by s.seq limit 1),
                    (select max(s.seq) from s), v_safe),
           coalesce((select max(s.seq) from s), v_safe)
      into v_next, v_last;
    v_safe := v_next;
    if v_last = v_next then
      v_horizon := null;
      v_writers := null;
      exit;
    end if;

    -- A gap. One seen before is settled once its writers have all ended; a new one is recorded with the writers now.
    if v_horizon is null or v_horizon <= v_next then
      v_horizon := v_last;
      select pg_catalog.array_agg(distinct l.virtualtransaction) into v_writers
      from pg_catalog.pg_locks l
      where l.locktype = 'relation' and l.relation = 'public.warehouse_events'::regclass and l.mode = 'RowExclusiveLock'
        and l.database = (select d.oid from pg_catalog.pg_database d where d.datname = pg_catalog.current_database());
    end if;
    if exists (select 1 from pg_catalog.pg_locks l where l.locktype = 'virtualxid' and l.virtualxid = any (v_writers)) then
      exit;
    end if;
    v_safe := v_horizon;
    v_horizon := null;
    v_writers := null;
    exit when v_scans >= 4;
  end loop;

  update hourglass.event_frontier f
  set safe_seq = v_safe, gap_horizon = v_horizon, gap_writers = v_writers,
      updated_at = case when v_safe > v_start then pg_catalog.now() else f.updated_at end
  where f.singleton
    and (f.safe_seq, f.gap_horizon, f.gap_writers) is distinct from (v_safe, v_horizon, v_writers);
  return v_safe;
end
$$;
revoke execute on function hourglass.advance_event_frontier(interval) from public, anon, authenticated;
grant execute on function hourglass.advance_event_frontier(interval) to service_role;
