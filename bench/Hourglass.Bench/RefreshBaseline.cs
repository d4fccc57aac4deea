namespace Hourglass.Bench;

/// <summary>
/// The refresh benchmark's baseline (docs/development.md, "Where SQL goes": a baseline file): the rows
/// <c>refresh_engagement_compliance</c> changes, computed ahead by plain SQL from the function's own rule, and one plain
/// UPDATE of exactly those rows (and, for scale, of every row) — the bar the function is measured against. The rule lives
/// in the function (supabase/schema.sql), so there is no store constant to take.
/// </summary>
internal static class RefreshBaseline
{
    // The function's own rule, evaluated at $1 with the default due_soon_days (3; the bench tenants set none).
    internal const string NewStatusSql = """
        case
          when c.next_touch_due < $1 then 'overdue'
          when c.next_touch_due <= $1 + interval '3 days' then 'due_soon'
          else 'compliant'
        end
        """;

    internal const string NewDaysOverdueSql = """
        case
          when c.next_touch_due < $1 then pg_catalog.floor(extract(epoch from ($1 - c.next_touch_due)) / 86400)::integer
          else 0
        end
        """;

    // The baseline's input: the rows whose values at $1 differ from what they hold, with their new values.
    internal const string CreateChangedSetSql = $"""
        create temp table bench_changed as
        select c.id, {NewStatusSql} as new_status, {NewDaysOverdueSql} as new_days_overdue
        from public.engagement_clocks c
        where c.tenant_id = any ($2)
          and (c.compliance_status, c.days_overdue) is distinct from ({NewStatusSql}, {NewDaysOverdueSql})
        """;

    internal const string UpdateEveryRowSql = $"""
        update public.engagement_clocks c
        set compliance_status = {NewStatusSql}, days_overdue = {NewDaysOverdueSql}, updated_at = $1
        where c.tenant_id = any ($2)
        """;

    // The baseline itself: exactly the changed rows, from the precomputed set.
    internal const string UpdateChangedRowsSql = """
        update public.engagement_clocks c
        set compliance_status = x.new_status, days_overdue = x.new_days_overdue, updated_at = $1
        from bench_changed x
        where c.id = x.id
        """;
}
