-- hourglass.advance_event_frontier keeps its parameter p_gap_timeout so that callers of the signature keep working,
-- but no longer reads it: a gap is passed once the transactions that were writing when it was seen have ended, not
-- after a timeout. The function now says so, and tells plpgsql_check not to report the unused parameter (its "extra"
-- warnings, of which that is the only one here). Behaviour is unchanged.

CREATE OR REPLACE FUNCTION hourglass.advance_event_frontier(p_gap_timeout interval DEFAULT '00:00:30'::interval)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
-- p_gap_timeout is kept for callers of this signature and not read: a gap is passed once its writers have ended.
-- @plpgsql_check_options: extra_warnings = off
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
$function$;
