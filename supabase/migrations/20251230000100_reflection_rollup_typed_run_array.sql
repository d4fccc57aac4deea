-- hourglass.reflection_rollup starts its list of runs as a typed empty array ('{}'::jsonb[]) instead of a bare literal
-- that plpgsql casts from text at run time (plpgsql_check: "target type is different type than source type").
-- Behaviour is unchanged.

CREATE OR REPLACE FUNCTION hourglass.reflection_rollup(p_hour timestamp with time zone, p_runs jsonb, OUT what_we_did jsonb, OUT what_moved jsonb, OUT what_got_blocked jsonb, OUT what_we_will_try_next jsonb, OUT hypotheses jsonb, OUT insights jsonb, OUT summary text, OUT run_ids uuid[], OUT latest_run_id uuid)
 RETURNS record
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  v_entry jsonb;
  v_runs jsonb[] := '{}'::jsonb[];
  v_taken integer;
begin
  what_we_did := '[]';
  what_got_blocked := '[]';
  what_we_will_try_next := '[]';
  hypotheses := '[]';
  insights := '{}';
  run_ids := '{}';
  -- The runs in the order they were added to the hour (then by start and key: an order that never depends on storage).
  for v_entry in
    select e.value from pg_catalog.jsonb_each(p_runs) e
    order by (e.value ->> 'seq')::integer nulls last, (e.value ->> 'started_at')::timestamptz nulls first, e.key
  loop
    v_runs := v_runs || v_entry;
    what_we_did := what_we_did
      || case when pg_catalog.jsonb_typeof(v_entry -> 'what_we_did') = 'array' then v_entry -> 'what_we_did' else '[]'::jsonb end;
    what_got_blocked := what_got_blocked
      || case when pg_catalog.jsonb_typeof(v_entry -> 'what_got_blocked') = 'array' then v_entry -> 'what_got_blocked' else '[]'::jsonb end;
    what_we_will_try_next := what_we_will_try_next
      || case when pg_catalog.jsonb_typeof(v_entry -> 'what_we_will_try_next') = 'array' then v_entry -> 'what_we_will_try_next' else '[]'::jsonb end;
    hypotheses := hypotheses
      || case when pg_catalog.jsonb_typeof(v_entry -> 'hypotheses') = 'array' then v_entry -> 'hypotheses' else '[]'::jsonb end;
    -- Per part, the latest run's observations (each run observes what happened since the run before it).
    if pg_catalog.jsonb_typeof(v_entry -> 'insights') = 'object' then
      insights := insights || (v_entry -> 'insights');
    end if;
    if v_entry ->> 'run_id' is not null then
      latest_run_id := (v_entry ->> 'run_id')::uuid;
      run_ids := run_ids || latest_run_id;
    end if;
  end loop;

  if pg_catalog.cardinality(v_runs) <= 1 then
    -- One run: its own numbers, observations and words, unchanged.
    what_moved := case when pg_catalog.jsonb_typeof(v_runs[1] -> 'what_moved') = 'object' then v_runs[1] -> 'what_moved' else '{}'::jsonb end;
    insights := coalesce(v_runs[1] -> 'insights', '[]'::jsonb);
    summary := v_runs[1] ->> 'summary';
    return;
  end if;

  -- Several runs: each measure from where the hour's first run found it to where its latest left it.
  select coalesce(pg_catalog.jsonb_object_agg(m.key, pg_catalog.jsonb_build_object(
           'before', m.before, 'after', m.after,
           'delta', case when pg_catalog.jsonb_typeof(m.before) = 'number' and pg_catalog.jsonb_typeof(m.after) = 'number'
                         then pg_catalog.to_jsonb((m.after #>> '{}')::numeric - (m.before #>> '{}')::numeric) end)), '{}'::jsonb)
    into what_moved
  from (
    select k.key, (pg_catalog.array_agg(k.value -> 'before' order by r.n))[1] as before,
           (pg_catalog.array_agg(k.value -> 'after' order by r.n desc))[1] as after
    from pg_catalog.unnest(v_runs) with ordinality r(value, n)
    cross join lateral pg_catalog.jsonb_each(
      case when pg_catalog.jsonb_typeof(r.value -> 'what_moved') = 'object' then r.value -> 'what_moved' else '{}'::jsonb end) k
    group by k.key
  ) m;

  -- A repeat of an action an earlier run of the hour took ('already_done') is not counted twice.
  select pg_catalog.count(*) into v_taken
  from pg_catalog.jsonb_array_elements(what_we_did) a
  where coalesce(a.value ->> 'status', '') <> 'already_done';
  select pg_catalog.format('Hour %s UTC, %s runs: %s action%s taken, %s blocked or failed.',
           pg_catalog.to_char(p_hour at time zone 'UTC', 'YYYY-MM-DD HH24":00"'), pg_catalog.cardinality(v_runs),
           v_taken, case when v_taken = 1 then '' else 's' end, pg_catalog.jsonb_array_length(what_got_blocked))
         || ' ' || pg_catalog.string_agg(pg_catalog.format('Run %s (%s, started %s UTC): %s', r.n,
              coalesce(r.value ->> 'trigger', 'written directly'),
              coalesce(pg_catalog.to_char((r.value ->> 'started_at')::timestamptz at time zone 'UTC', 'HH24:MI'), '?'),
              coalesce(r.value ->> 'summary', '(no summary)')), ' ' order by r.n)
    into summary
  from pg_catalog.unnest(v_runs) with ordinality r(value, n);
end
$function$;
