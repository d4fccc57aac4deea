namespace Hourglass.Bench;

/// <summary>
/// The queue benchmark's baselines (docs/development.md, "Where SQL goes": a baseline file): <c>engagement_queue</c>'s
/// statement sent as plain SQL, and the bare indexed read of a tenant's top clocks — the bars the function is measured
/// against. The function lives in SQL (supabase/schema.sql), so there is no store constant to take.
/// </summary>
internal static class QueueBaseline
{
    // The queue as engagement_queue returns it (20251219000000_engagement_engine.sql), as plain SQL.
    internal const string FunctionBodySql = """
        select c.id, c.entity_type, c.entity_id, a.id, a.owner_user_id, c.compliance_status, c.days_overdue, c.next_touch_due,
               c.priority_score, c.priority_reason
        from public.engagement_clocks c
        left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
        left join public.accounts a on a.tenant_id = c.tenant_id and a.id = case c.entity_type when 'account' then c.entity_id else k.account_id end
        where c.tenant_id = $1 and c.compliance_status <> 'compliant'
        order by c.priority_score desc, c.next_touch_due, c.id
        limit $2
        """;

    // The baseline: the tenant's top clocks straight off idx_engagement_clocks_tenant_queue, no joins, no tie-break.
    internal const string BareSql = """
        select id, entity_type, entity_id, compliance_status, days_overdue, next_touch_due, priority_score, priority_reason
        from public.engagement_clocks
        where tenant_id = $1 and compliance_status <> 'compliant'
        order by priority_score desc
        limit $2
        """;

    // How the function's own statement shows in auto_explain's log (the nested plan of (a)).
    internal const string FunctionBodyMarker = "from public.engagement_clocks c";
}
