-- An hour's reflection covers every run of that hour (issue 15). A second run in the same hour (a manual run, the
-- demo run twice) used to replace the hour's row: the first run's actions vanished from the reflection while the
-- action ledger still held them.
--
-- The row stays one per tenant and hour (the schema contract) and now keeps each run's own reflection in `runs`, an
-- object keyed by run id. The contract's columns are the hour's roll-up of those runs, computed here by a trigger
-- whenever `runs` changes:
--   what_we_did, what_got_blocked, what_we_will_try_next, hypotheses: every run's entries, in the order the runs
--     were added to the hour (each run's `seq`, stamped by the trigger), each carrying its run_id (the cycle writes it);
--   what_moved: per measure, `before` from the hour's first run, `after` from its latest, `delta` between them;
--   insights: per part, the latest run's observations;
--   summary: one run's own summary; for several, a line for the hour and each run's summary after it;
--   run_ids: the hour's runs, in that order; run_id: the latest of them.
-- A cycle adds its run with one statement, INSERT … ON CONFLICT DO UPDATE SET runs = runs || the run's entry, which
-- merges into the row as it is when the statement gets its lock (concurrent runs of one hour both land), and does
-- nothing when the run is already there (a retried write counts once). Each run's reflection also stays in its run
-- record (agent_autonomous_runs.reflect_output), and, since retention deletes runs but never reflections, in `runs`.

alter table public.agent_hourly_reflections
  add column runs jsonb not null default '{}'::jsonb check (pg_catalog.jsonb_typeof(runs) = 'object'),
  add column run_ids uuid[] not null default '{}'::uuid[];

-- Rows written before: each becomes the one entry of its hour.
update public.agent_hourly_reflections f
set runs = pg_catalog.jsonb_build_object(coalesce(f.run_id::text, 'reflection:' || f.id::text), pg_catalog.jsonb_build_object(
      'seq', 1, 'run_id', f.run_id, 'trigger', r.trigger, 'started_at', coalesce(r.started_at, f.created_at),
      'what_we_did', f.what_we_did, 'what_moved', f.what_moved, 'what_got_blocked', f.what_got_blocked,
      'what_we_will_try_next', f.what_we_will_try_next, 'hypotheses', f.hypotheses, 'insights', f.insights, 'summary', f.summary)),
    run_ids = case when f.run_id is null then '{}'::uuid[] else array[f.run_id] end
from public.agent_hourly_reflections x
left join public.agent_autonomous_runs r on r.tenant_id = x.tenant_id and r.id = x.run_id
where x.id = f.id;

-- The hour's roll-up of its runs' reflections (see the top of this file). The common hour has one run: its lists,
-- numbers and words are taken as they are; with several, the lists are concatenated (a cycle tags each entry with its
-- run_id as it writes it), and only the numbers and the summary are computed.
create function hourglass.reflection_rollup(
  p_hour timestamptz, p_runs jsonb,
  out what_we_did jsonb, out what_moved jsonb, out what_got_blocked jsonb, out what_we_will_try_next jsonb,
  out hypotheses jsonb, out insights jsonb, out summary text, out run_ids uuid[], out latest_run_id uuid)
language plpgsql stable set search_path = ''
as $$
declare
  v_entry jsonb;
  v_runs jsonb[] := '{}';
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
$$;

-- Keeps the roll-up columns the roll-up of `runs`. A reflection inserted with its columns and no runs (written
-- directly, not by a cycle) is kept as given and becomes its hour's first entry, so a cycle of that hour later adds to
-- it instead of replacing it. The roll-up columns are not written directly once the row exists: a direct write would
-- be replaced by the next run's roll-up. (hourglass.derived_write = 'on' lets a repair write them; see docs/schema.md.)
create function hourglass.roll_up_hourly_reflection() returns trigger
language plpgsql set search_path = ''
as $$
declare
  v_rollup record;
  v_column text;
  v_old jsonb;
  v_key text;
  v_seq integer;
begin
  if tg_op = 'UPDATE' then
    v_column := case
      when new.what_we_did is distinct from old.what_we_did then 'what_we_did'
      when new.what_moved is distinct from old.what_moved then 'what_moved'
      when new.what_got_blocked is distinct from old.what_got_blocked then 'what_got_blocked'
      when new.what_we_will_try_next is distinct from old.what_we_will_try_next then 'what_we_will_try_next'
      when new.hypotheses is distinct from old.hypotheses then 'hypotheses'
      when new.insights is distinct from old.insights then 'insights'
      when new.summary is distinct from old.summary then 'summary'
      when new.run_ids is distinct from old.run_ids then 'run_ids'
    end;
    if v_column is not null
       and (new.runs is distinct from old.runs or pg_catalog.current_setting('hourglass.derived_write', true) is distinct from 'on') then
      raise exception using errcode = '428C9',
        message = pg_catalog.format('agent_hourly_reflections.%s is the roll-up of the hour''s runs and cannot be written directly', v_column),
        hint = 'each run''s own reflection is kept in runs (and in its run record, agent_autonomous_runs.reflect_output); '
               || 'a cycle adds its run to the hour and the roll-up follows';
    end if;
    if new.runs is not distinct from old.runs then
      return new;
    end if;
  elsif new.runs = '{}'::jsonb then
    new.runs := pg_catalog.jsonb_build_object(coalesce(new.run_id::text, 'reflection:' || new.id::text), pg_catalog.jsonb_build_object(
      'seq', 1, 'run_id', new.run_id, 'started_at', new.created_at,
      'what_we_did', new.what_we_did, 'what_moved', new.what_moved, 'what_got_blocked', new.what_got_blocked,
      'what_we_will_try_next', new.what_we_will_try_next, 'hypotheses', new.hypotheses, 'insights', new.insights, 'summary', new.summary));
    new.run_ids := case when new.run_id is null then '{}'::uuid[] else array[new.run_id] end;
    return new;
  elsif (new.what_we_did, new.what_moved, new.what_got_blocked, new.what_we_will_try_next, new.hypotheses, new.insights, new.summary)
        is distinct from ('[]'::jsonb, '{}'::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb, null::text) then
    raise exception using errcode = '428C9',
      message = 'agent_hourly_reflections: a reflection is written either as runs (rolled up) or as its columns, not both';
  end if;

  -- Runs new to the hour are numbered after those it has (in start order among themselves): the order runs were
  -- added, which a frozen test clock or two runs started in the same instant cannot blur.
  v_old := case when tg_op = 'UPDATE' then old.runs else '{}'::jsonb end;
  select pg_catalog.count(*) into v_seq from pg_catalog.jsonb_object_keys(v_old) k;
  for v_key in
    select k from pg_catalog.jsonb_object_keys(new.runs) k
    where not v_old ? k
    order by (new.runs -> k ->> 'started_at')::timestamptz nulls first, k
  loop
    v_seq := v_seq + 1;
    new.runs := pg_catalog.jsonb_set(new.runs, array[v_key, 'seq'], pg_catalog.to_jsonb(v_seq));
  end loop;

  select * into v_rollup from hourglass.reflection_rollup(new.hour_bucket, new.runs);
  new.what_we_did := v_rollup.what_we_did;
  new.what_moved := v_rollup.what_moved;
  new.what_got_blocked := v_rollup.what_got_blocked;
  new.what_we_will_try_next := v_rollup.what_we_will_try_next;
  new.hypotheses := v_rollup.hypotheses;
  new.insights := v_rollup.insights;
  new.summary := v_rollup.summary;
  new.run_ids := v_rollup.run_ids;
  new.run_id := coalesce(v_rollup.latest_run_id, new.run_id);
  return new;
end
$$;

revoke execute on function hourglass.reflection_rollup(timestamptz, jsonb), hourglass.roll_up_hourly_reflection()
  from public, anon, authenticated;
grant execute on function hourglass.reflection_rollup(timestamptz, jsonb) to service_role;

create trigger agent_hourly_reflections_rollup before insert or update on public.agent_hourly_reflections
  for each row execute function hourglass.roll_up_hourly_reflection();
