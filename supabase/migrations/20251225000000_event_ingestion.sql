-- Insights, part 1: events from outside systems, in batches, with idempotency keys and bad lines named by number
-- (public.ingest_events, the path a member's session takes under RLS); and retention for events and runs that
-- keeps the hourly reflections (public.apply_retention, for the service role). The trusted bulk path (binary COPY
-- as the service role) is C#: src/Hourglass.Core/Insights/EventIngestion.cs, with the same rules. docs/insights.md.

-- ---------------------------------------------------------------------------------------------------
-- ingest_events(tenant, events, on_error) takes a JSON array; each element:
--   {"event_type": text (required, 1-100 characters: reply, order_placed, meeting, …),
--    "entity_type": "contact" | "account" | "order" | "tenant" (optional),
--    "entity_id": uuid (required with entity_type; a contact, account or order of this tenant, or the tenant itself),
--    "payload": JSON object (default {}),
--    "occurred_at": ISO-8601 with a UTC offset (default now),
--    "idempotency_key": text (optional, 1-200 characters),
--    "source": text (default 'api', 1-100 characters)}
-- Any other field is refused by name: a line cannot choose its tenant (a "tenant_id" field is an unknown field).
-- One row comes back per element: line (1-based), outcome ('recorded' | 'duplicate' | 'rejected'), the event's id
-- (for a duplicate, the event recorded before under its key), the key and, when rejected, the reason.
--
--   * An idempotency key already used for the same event (type, entity, payload and — when the line gives one —
--     time; not the source) is a no-op: 'duplicate'. Used for a different event, it is rejected. The same holds
--     for a key repeated within the batch: the first valid line with it counts.
--   * More than the tenant's event_future_skew_seconds (default 300) in the future is rejected.
--   * on_error 'refuse' (default): any rejected line refuses the whole batch, naming the first 20 lines, and
--     nothing is written. 'skip': the valid lines are written and each rejected one returned with its reason.
--   * Set-based: one validation query and one write statement per batch (at most 10,000 events).
-- ---------------------------------------------------------------------------------------------------

-- One line of a batch, checked.
create type hourglass.event_line as (
  line integer,
  id uuid,       -- a new event's id; a duplicate's, the event it duplicates; null when rejected
  event_type text,
  entity_type text,
  entity_id uuid,
  payload jsonb,
  source text,
  occurred_at timestamptz,
  explicit_time boolean,
  idempotency_key text,
  status text,   -- 'new', 'duplicate' or 'rejected'
  error text
);

create function public.ingest_events(p_tenant_id uuid, p_events jsonb, p_on_error text default 'refuse')
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
    left join public.contacts k on s.entity_type = 'contact' and k.tenant_id = p_tenant_id and k.id = t.entity_id
    left join public.accounts a on s.entity_type = 'account' and a.tenant_id = p_tenant_id and a.id = t.entity_id
    left join public.orders o on s.entity_type = 'order' and o.tenant_id = p_tenant_id and o.id = t.entity_id
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
    left join public.warehouse_events w on c.line_error is null and c.idempotency_key is not null
      and w.tenant_id = p_tenant_id and w.idempotency_key = c.idempotency_key
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
    join public.warehouse_events w on w.tenant_id = p_tenant_id and w.idempotency_key = l.idempotency_key
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
grant usage on type hourglass.event_line to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------------
-- Retention. apply_retention(tenant, now) deletes the tenant's events that occurred more than
-- retention_events_days ago (tenant setting, default 730) and its finished runs that started more than
-- retention_runs_days ago (default 90); 0 keeps that kind forever. The hourly reflections are kept: each loses
-- only its run_id. Actions, policy violations, cards and outbox messages keep their rows too: their foreign keys
-- to the runs are ON DELETE SET NULL (run_id) (20251217000000, 20251218000000, 20251220000000), and the check
-- below holds every migration after this one to that. The service role only: it is the worker's housekeeping.
-- ---------------------------------------------------------------------------------------------------

do $check$
declare
  v_bad text;
begin
  select pg_catalog.string_agg(pg_catalog.format('%s.%s', c.conrelid::regclass, c.conname), ', ') into v_bad
  from pg_catalog.pg_constraint c
  where c.contype = 'f' and c.confrelid = 'public.agent_autonomous_runs'::regclass and c.confdeltype <> 'n';
  if v_bad is not null then
    raise exception 'apply_retention deletes runs and relies on every foreign key to them being ON DELETE SET NULL; these are not: %', v_bad;
  end if;
end
$check$;

create function public.apply_retention(p_tenant_id uuid, p_now timestamptz default null)
returns table (events_deleted bigint, runs_deleted bigint)
language plpgsql volatile set search_path = ''
as $$
#variable_conflict use_column
declare
  v_now timestamptz;
  v_events_days integer;
  v_runs_days integer;
  v_events bigint := 0;
  v_runs bigint := 0;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'apply_retention');
  v_now := hourglass.now();
  if p_now > v_now then
    raise exception using errcode = '22023',
      message = pg_catalog.format('apply_retention: p_now must not be in the future (got %s, the database clock says %s)', p_now, v_now);
  end if;
  v_now := coalesce(p_now, v_now);
  v_events_days := hourglass.tenant_setting_int(p_tenant_id, 'retention_events_days', 730);
  v_runs_days := hourglass.tenant_setting_int(p_tenant_id, 'retention_runs_days', 90);

  if v_events_days > 0 then
    delete from public.warehouse_events w
    where w.tenant_id = p_tenant_id and w.occurred_at < v_now - pg_catalog.make_interval(days => v_events_days);
    get diagnostics v_events = row_count;
  end if;

  if v_runs_days > 0 then
    -- Reflections outlive their runs whatever their foreign key says: unlinked first, never deleted.
    update public.agent_hourly_reflections f set run_id = null
    where f.tenant_id = p_tenant_id and f.run_id in (
      select r.id from public.agent_autonomous_runs r
      where r.tenant_id = p_tenant_id and r.status <> 'running' and r.started_at < v_now - pg_catalog.make_interval(days => v_runs_days));
    delete from public.agent_autonomous_runs r
    where r.tenant_id = p_tenant_id and r.status <> 'running' and r.started_at < v_now - pg_catalog.make_interval(days => v_runs_days);
    get diagnostics v_runs = row_count;
  end if;

  return query select v_events, v_runs;
end
$$;

revoke execute on function public.apply_retention(uuid, timestamptz) from public, anon, authenticated;
grant execute on function public.apply_retention(uuid, timestamptz) to service_role;
