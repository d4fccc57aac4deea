namespace Hourglass.Bench;

/// <summary>
/// The detection benchmark's baselines (docs/development.md, "Where SQL goes": a baseline file): the detectors' aggregates
/// computed by plain SQL over the event log — the bar the detectors are measured against — and the checks that hold the
/// detectors' patterns to the same SQL, independently of the product's code.
/// </summary>
internal static class DetectionBaseline
{
    // The baseline, reorder cadence and order size: per account, the count of orders, the mean and standard deviation
    // of the intervals between them (lag over the account's orders) and the least-squares trend of their totals.
    internal const string OrdersBaselineSql = """
        select count(*), coalesce(sum(y.orders), 0)::bigint from (
          select x.tenant_id, x.entity_id, count(*) as orders, avg(x.gap_days) as mean_days, stddev_samp(x.gap_days) as sd_days,
                 regr_slope(x.total, x.days) as slope, regr_r2(x.total, x.days) as r2
          from (
            select e.tenant_id, e.entity_id, (e.payload ->> 'total')::float8 as total,
                   extract(epoch from e.occurred_at) / 86400 as days,
                   extract(epoch from e.occurred_at - pg_catalog.lag(e.occurred_at) over (partition by e.tenant_id, e.entity_id order by e.seq)) / 86400 as gap_days
            from public.warehouse_events e
            where e.event_type in ('order_placed', 'order_validated') and e.entity_type = 'account'
          ) x
          group by x.tenant_id, x.entity_id
        ) y
        """;

    // The baseline, best time: per contact, touches and replies by hour-of-week slot (ISO weekday - 1) * 24 + hour, in
    // the contact's zone, else its account's, else the tenant's.
    internal const string ContactsBaselineSql = """
        select count(*), coalesce(sum(z.touches + z.replies), 0)::bigint from (
          select e.tenant_id, e.entity_id, s.slot,
                 count(*) filter (where e.event_type = 'touch') as touches, count(*) filter (where e.event_type = 'reply') as replies
          from public.warehouse_events e
          join public.tenants t on t.id = e.tenant_id
          left join public.contacts k on k.tenant_id = e.tenant_id and k.id = e.entity_id
          left join public.accounts a on a.tenant_id = k.tenant_id and a.id = k.account_id
          cross join lateral (select e.occurred_at at time zone coalesce(k.timezone, a.timezone, t.timezone) as local) l
          cross join lateral (select ((extract(isodow from l.local))::int - 1) * 24 + extract(hour from l.local)::int as slot) s
          where e.event_type in ('touch', 'reply') and e.entity_type = 'contact'
          group by e.tenant_id, e.entity_id, s.slot
        ) z
        """;

    // The full run's cross-checks, computed from the events by plain SQL, independently of the detectors: the accounts whose
    // reorder_cadence pattern disagrees with their orders (count, mean interval within 0.006 days) ...
    internal const string OrderMismatchesSql = """
        select count(*) from (
          select e.tenant_id, e.entity_id, count(*) as orders,
                 avg(extract(epoch from e.occurred_at - e.previous) / 86400) as mean_days
          from (select w.tenant_id, w.entity_id, w.occurred_at,
                       pg_catalog.lag(w.occurred_at) over (partition by w.tenant_id, w.entity_id order by w.seq) as previous
                from public.warehouse_events w where w.event_type = 'order_placed') e
          group by e.tenant_id, e.entity_id
        ) s
        full join (select p.tenant_id, p.entity_id, (p.pattern_data ->> 'orders')::float8 as orders,
                          (p.pattern_data ->> 'mean_interval_days')::float8 as mean_days
                   from public.client_patterns p where p.pattern_type = 'reorder_cadence') p
          on p.tenant_id = s.tenant_id and p.entity_id = s.entity_id
        where p.orders is distinct from s.orders or pg_catalog.abs(coalesce(p.mean_days, 0) - coalesce(s.mean_days, 0)) > 0.006
        """;

    // ... and the contacts whose best_time pattern disagrees with their touch count.
    internal const string TouchMismatchesSql = """
        select count(*) from (
          select w.tenant_id, w.entity_id, count(*) as touches from public.warehouse_events w where w.event_type = 'touch' group by 1, 2
        ) s
        full join (select p.tenant_id, p.entity_id, (p.pattern_data ->> 'touches')::float8 as touches
                   from public.client_patterns p where p.pattern_type = 'best_time') p
          on p.tenant_id = s.tenant_id and p.entity_id = s.entity_id
        where coalesce(p.touches, 0) is distinct from coalesce(s.touches, 0)
        """;
}
