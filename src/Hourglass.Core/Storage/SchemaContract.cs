namespace Hourglass.Storage;

/// <summary>
/// The names fixed by the customer's migration report and the schema contract (design/SCHEMA.md): what
/// <c>hourglass verify</c> checks and what tests iterate over.
/// </summary>
internal static class SchemaContract
{
    /// <summary>The seed's ten tables.</summary>
    public static readonly IReadOnlyList<string> SeedTables =
    [
        "agent_autonomous_runs", "agent_tenant_locks", "engagement_clocks", "agent_policy_violations",
        "order_processing_queue", "order_processing_exceptions", "warehouse_events", "client_patterns",
        "success_strategies", "agent_hourly_reflections",
    ];

    /// <summary>The host tables the seed's system assumes around it.</summary>
    public static readonly IReadOnlyList<string> HostTables =
    [
        "tenants", "tenant_members", "tenant_roles", "accounts", "contacts", "products", "orders", "order_lines", "cards",
    ];

    /// <summary>The scheduler's own tables (schedules and the action ledger).</summary>
    public static readonly IReadOnlyList<string> SchedulerTables = ["agent_tenant_schedules", "agent_actions"];

    /// <summary>The engagement engine's and the message outbox's tables.</summary>
    public static readonly IReadOnlyList<string> EngagementTables =
        ["engagement_frequency_rules", "message_channels", "message_outbox", "message_outbox_attempts"];

    /// <summary>The policy enforcer's tables.</summary>
    public static readonly IReadOnlyList<string> PolicyTables = ["tenant_policy_documents"];

    /// <summary>The order processor's tables.</summary>
    public static readonly IReadOnlyList<string> OrderTables = ["price_rules", "order_requirement_rules", "order_processing_fixes"];

    /// <summary>Insights' tables beyond the seed's: detector watermarks and strategy outcomes.</summary>
    public static readonly IReadOnlyList<string> InsightTables = ["insight_detector_state", "strategy_attributions"];

    public static IEnumerable<string> AllTables =>
        HostTables.Concat(SeedTables).Concat(SchedulerTables).Concat(EngagementTables).Concat(PolicyTables).Concat(OrderTables).Concat(InsightTables);

    /// <summary>The seed's four functions with their fixed signatures, then the ones leases add.</summary>
    public static readonly IReadOnlyList<string> SeedFunctions =
    [
        "public.acquire_tenant_lock(uuid, text, text, integer)",
        "public.release_tenant_lock(uuid, text)",
        "public.update_engagement_clock(uuid, text, uuid, text, text, uuid)",
        "public.refresh_engagement_compliance(uuid)",
    ];

    public static readonly IReadOnlyList<string> LeaseFunctions =
    [
        "public.acquire_tenant_lease(uuid, text, text, integer)",
        "public.renew_tenant_lock(uuid, text, bigint, text, integer)",
        "public.is_lock_token_current(uuid, bigint, text)",
        "public.assert_lock_token(uuid, bigint, text)",
    ];

    /// <summary>The engagement engine's functions, callable through the API (PostgREST rpc) by members of the tenant.</summary>
    public static readonly IReadOnlyList<string> EngagementFunctions =
    [
        "public.engagement_queue(uuid, integer)",
        "public.complete_touch_card(uuid, text, text)",
        "public.record_touches(uuid, jsonb, text)",
        "public.engagement_movement(uuid, timestamp with time zone)",
        "public.dismiss_card(uuid, text)",
        "public.set_clock_frequency(uuid, text, uuid, integer)",
    ];

    /// <summary>The policy enforcer's functions: deciding an approval, violation trends.</summary>
    public static readonly IReadOnlyList<string> PolicyFunctions =
    [
        "public.decide_approval(uuid, boolean, text, text)",
        "public.policy_violation_trends(uuid, integer)",
    ];

    /// <summary>The order processor's functions a member calls: the exception workflow and the credit override.</summary>
    public static readonly IReadOnlyList<string> OrderFunctions =
    [
        "public.review_order_exception(uuid, text)",
        "public.resolve_order_exception(uuid, text, text, text)",
        "public.override_order_credit(uuid, text, text)",
    ];

    /// <summary>Insights' functions: judging strategy outcomes and retention (the service role's), ingesting events (members').</summary>
    public static readonly IReadOnlyList<string> InsightFunctions =
    [
        "public.attribute_strategy_outcomes(uuid)",
        "public.ingest_events(uuid, jsonb, text)",
        "public.apply_retention(uuid, timestamp with time zone)",
    ];

    /// <summary>Members and roles within a tenant, for owners and admins (capability manage_members).</summary>
    public static readonly IReadOnlyList<string> MemberFunctions =
    [
        "public.set_tenant_member(uuid, uuid, text)",
        "public.remove_tenant_member(uuid, uuid)",
        "public.set_tenant_role(uuid, text, text[], text)",
        "public.remove_tenant_role(uuid, text)",
    ];

    /// <summary>Every function the API exposes: the seed's, the leases', the engagement engine's, the policy enforcer's, the order processor's, Insights', members'.</summary>
    public static IEnumerable<string> ApiFunctions =>
        SeedFunctions.Concat(LeaseFunctions).Concat(EngagementFunctions).Concat(PolicyFunctions).Concat(OrderFunctions).Concat(InsightFunctions)
            .Concat(MemberFunctions);

    /// <summary>The monitoring views (security_invoker: RLS applies to whoever reads them).</summary>
    public static readonly IReadOnlyList<string> MonitoringViews =
    [
        "monitoring_run_success", "monitoring_engagement_compliance", "monitoring_policy_violations", "monitoring_order_throughput",
        "monitoring_lock_contention",
    ];

    /// <summary>The seed's seven indexes: table, and whether the seed describes it as partial.</summary>
    public static readonly IReadOnlyList<(string Index, string Table, bool Partial)> SeedIndexes =
    [
        ("idx_autonomous_runs_tenant_status", "agent_autonomous_runs", false),
        ("idx_autonomous_runs_running", "agent_autonomous_runs", true),
        ("idx_engagement_clocks_tenant_due", "engagement_clocks", false),
        ("idx_order_processing_pending", "order_processing_queue", true),
        ("idx_tenant_locks_expires", "agent_tenant_locks", false),
        ("idx_warehouse_events_tenant_type", "warehouse_events", false),
        ("idx_policy_violations_tenant", "agent_policy_violations", false),
    ];

    /// <summary>The roles a Supabase project has and the migrations create elsewhere.</summary>
    public static readonly IReadOnlyList<string> ApiRoles = ["anon", "authenticated", "service_role"];
}
