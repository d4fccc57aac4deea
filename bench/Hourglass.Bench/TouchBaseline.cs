namespace Hourglass.Bench;

/// <summary>
/// The touch benchmark's baseline (docs/development.md, "Where SQL goes": a baseline file): the least SQL that writes what
/// <c>record_touches</c> writes, sent as one statement per batch — the bar the function is measured against — and how the
/// function's own statements start in auto_explain's log. The function lives in SQL (supabase/schema.sql), so there is no
/// store constant to take.
/// </summary>
internal static class TouchBaseline
{
    // The baseline's name in the report.
    internal const string Label = "(c) baseline: one INSERT into warehouse_events + one UPDATE of engagement_clocks per batch";

    // "A newer touch": the batch's latest touch for the clock is later than its last touch (record_touches' n.newer).
    internal const string Newer = "p.latest > coalesce(c.last_touch_at, '-infinity'::timestamptz)";
    internal const string NewDue = "p.latest + pg_catalog.make_interval(days => c.touch_frequency_days)";

    // The least SQL that does what record_touches writes for valid, new touches of contacts: the touch log with its
    // idempotency keys (a key already taken is skipped), and each touched contact's and account's clock — the latest
    // touch moves it forward, an older one only counts; back within cadence it is compliant. No validation, no
    // per-line outcomes, no missing clocks or touch cards, no refresh of clocks still due; the due-soon window is
    // the default 3 days (the bench tenants set none).
    internal const string BaselineSql = $"""
        with input as (
          select i.entity_id, i.occurred_at, i.idempotency_key, i.touch_type, i.line
          from unnest($2::uuid[], $3::timestamptz[], $4::text[], $5::text[]) with ordinality as i (entity_id, occurred_at, idempotency_key, touch_type, line)
        ), events as (
          insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
          select $1, 'touch', 'contact', i.entity_id, pg_catalog.jsonb_build_object('touch_type', i.touch_type, 'touch_by', $6::text),
                 $7, i.idempotency_key, i.occurred_at
          from input i
          on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
          returning idempotency_key
        ), per_clock as (
          select t.entity_type, t.entity_id, pg_catalog.count(*) as touches, pg_catalog.max(i.occurred_at) as latest,
                 (pg_catalog.array_agg(i.touch_type order by i.occurred_at desc, i.line desc))[1] as touch_type
          from input i
          join events e on e.idempotency_key = i.idempotency_key
          join public.contacts k on k.tenant_id = $1 and k.id = i.entity_id
          cross join lateral (values ('contact', i.entity_id), ('account', k.account_id)) t (entity_type, entity_id)
          where t.entity_id is not null
          group by t.entity_type, t.entity_id
        )
        update public.engagement_clocks c
        set last_touch_at = case when {Newer} then p.latest else c.last_touch_at end,
            last_touch_type = case when {Newer} then p.touch_type else c.last_touch_type end,
            last_touch_by = case when {Newer} then $6::text else c.last_touch_by end,
            last_card_id = case when {Newer} then null else c.last_card_id end,
            next_touch_due = case when {Newer} then {NewDue} else c.next_touch_due end,
            touch_count = c.touch_count + p.touches,
            compliance_status = case when {Newer} and {NewDue} > pg_catalog.now() + interval '3 days' then 'compliant' else c.compliance_status end,
            days_overdue = case when {Newer} and {NewDue} > pg_catalog.now() + interval '3 days' then 0 else c.days_overdue end,
            priority_score = case when {Newer} and {NewDue} > pg_catalog.now() + interval '3 days' then 0 else c.priority_score end,
            priority_reason = case when {Newer} and {NewDue} > pg_catalog.now() + interval '3 days' then null else c.priority_reason end,
            recovered_at = case when {Newer} and c.next_touch_due < pg_catalog.now() and {NewDue} >= pg_catalog.now()
                                then pg_catalog.now() else c.recovered_at end,
            updated_at = pg_catalog.now()
        from per_clock p
        where c.tenant_id = $1 and c.entity_type = p.entity_type and c.entity_id = p.entity_id
        """;

    // How record_touches' statement that recreates missing clocks starts, as auto_explain logs it (where a batch spends its time).
    internal const string MissingClocksMarker = "insert into public.engagement_clocks";
}
