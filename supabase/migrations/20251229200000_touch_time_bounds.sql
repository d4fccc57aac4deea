-- A touch's occurred_at is judged line by line, as an event's is (20251227000100's ingest_events):
--   * a time that matches the pattern but not the calendar (year 0000, 30 February) or a UTC offset past ±15:59
--     refused the whole batch with 22008/22009 from the cast, naming no line; it is now that line's shape error;
--   * a time before 1970 is refused by line ("is before 1970"), as for events: a touch in year 1 was recorded.
-- Otherwise the same as 20251227000200's; grants and SECURITY (invoker) unchanged.

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
      when r.occurred_at < '1970-01-01 00:00:00+00'::timestamptz
        then pg_catalog.format('occurred_at %s is before 1970 (the accepted times are from 1970-01-01T00:00:00Z)', r.occurred_at)
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
