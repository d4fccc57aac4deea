using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Insights;
using Hourglass.Orders;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// The tenants the cycles benchmark runs on, loaded set-based (one <c>insert … select generate_series</c>
/// per table): "standard" tenants with a CRM's worth of data, and small tenants that fill the database.
/// </summary>
internal static class CycleBenchData
{
    /// <summary>A standard tenant: 20 accounts x 100 contacts, each with an engagement clock (made by the schema's trigger).</summary>
    public const int StandardAccounts = 20;

    public const int StandardContactsPerAccount = 100;

    public const int StandardContacts = StandardAccounts * StandardContactsPerAccount;

    /// <summary>One order per account, each queued for processing, with three lines over ten products.</summary>
    public const int StandardOrders = StandardAccounts;

    public const int LinesPerOrder = 3;

    public const int StandardProducts = 10;

    /// <summary>A day of warehouse events at 500 a day.</summary>
    public const int StandardEventsPerDay = 500;

    public const int SmallContacts = 20;

    /// <summary>Every tenant has run hourly for a day: 24 completed runs and their reflections.</summary>
    public const int HistoryHours = 24;

    // Clocks are spread evenly over one 21-day cycle from 2 days overdue to 19 days ahead (as in `refresh`),
    // so about 2/21 of them are overdue and 3/21 due soon, and an hour moves about 16 of a standard tenant's.
    private static readonly TimeSpan s_cycle = TimeSpan.FromDays(21);
    private static readonly TimeSpan s_overdueSpan = TimeSpan.FromDays(2);

    // What the engine writes for a quiet hour (no actions), so history rows are the size of real ones.
    private const string PlanOutput = """
        {"errors": [], "budgets": {"per_day": 500, "per_cycle": 50, "taken_today": 0}, "deferred": [], "selected": [], "proposals": []}
        """;

    private const string ActOutput = """{"dry_run": false, "actions": []}""";

    private const string ReactOutput = """{"since": "2026-01-01T00:00:00+00:00", "parts": {}}""";

    private const string WhatMoved = """
        {"engagement.clocks": {"after": 2000, "delta": 0, "before": 2000},
         "engagement.compliance_pct": {"after": 90.48, "delta": -0.05, "before": 90.53},
         "engagement.due_soon": {"after": 286, "delta": 0, "before": 286},
         "engagement.overdue": {"after": 190, "delta": 1, "before": 189}}
        """;

    /// <summary>Creates <paramref name="count"/> standard tenants with their data and history; returns their ids.</summary>
    public static async Task<Guid[]> LoadStandardAsync(NpgsqlConnection connection, int count, CancellationToken cancellationToken)
    {
        var tenants = await CreateTenantsAsync(connection, "bench-cycles-standard", count, cancellationToken);
        await TenancyStore.GenerateAccountsAsync(connection, tenants, StandardAccounts, cancellationToken);
        await TenancyStore.GenerateAccountContactsAsync(connection, tenants, StandardContactsPerAccount, cancellationToken);
        await LoadClocksAsync(connection, tenants, StandardContacts, cancellationToken);
        await OrderStore.GenerateProductsAsync(connection, tenants, StandardProducts, cancellationToken);
        await OrderStore.GenerateAccountOrdersAsync(connection, tenants, cancellationToken);
        await OrderStore.GenerateOrderLinesAsync(connection, tenants, LinesPerOrder, cancellationToken);
        await OrderStore.QueueAllOrdersAsync(connection, tenants, cancellationToken);
        await InsightsStore.GenerateEventsAsync(connection, tenants, StandardEventsPerDay, cancellationToken);
        await LoadHistoryAsync(connection, tenants, cancellationToken);
        return tenants;
    }

    /// <summary>Creates <paramref name="count"/> small tenants (contacts and clocks, history); returns their ids.</summary>
    public static async Task<Guid[]> LoadSmallAsync(NpgsqlConnection connection, int count, int firstNumber, CancellationToken cancellationToken)
    {
        var tenants = await CreateTenantsAsync(connection, "bench-cycles-small", count, cancellationToken, firstNumber);
        await TenancyStore.GenerateContactsAsync(connection, tenants, SmallContacts, cancellationToken);
        await LoadClocksAsync(connection, tenants, SmallContacts, cancellationToken);
        await LoadHistoryAsync(connection, tenants, cancellationToken);
        return tenants;
    }

    /// <summary>
    /// The backlog a cycle would find on a tenant's first hour, processed before anything is measured: every queued order
    /// decided and written (<see cref="OrderProcessor.DrainAsync"/>, which logs events of its own), then the detectors run
    /// over every event (<see cref="InsightsEngine.RunAsync"/>, which also makes their time sweep). The measured hours then
    /// bring no new orders and no new events: the Orders part finds an empty queue and the Insights part its watermarks at
    /// the frontier, in the worker and in the baseline alike.
    /// </summary>
    public static async Task ProcessBacklogAsync(NpgsqlDataSource dataSource, Guid[] tenants, CancellationToken cancellationToken)
    {
        var processor = new OrderProcessor(dataSource, new OrderProcessorOptions { WorkerId = "bench-cycles-loader" });
        foreach (var tenant in tenants)
        {
            await processor.DrainAsync(tenant, null, OrderPart.MaxOrdersPerCycle, cancellationToken);
        }

        // The frontier past every event the drain logged (it waits out a gap's writers), so no tenant's watermark is left
        // behind events that another tenant's run would then find.
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            var last = await InsightsStore.LastEventSeqAsync(connection, cancellationToken);
            for (var attempt = 0; await Bench.ScalarAsync<long>(connection, InsightsStore.AdvanceFrontierSql, cancellationToken) < last; attempt++)
            {
                if (attempt == 100)
                {
                    throw new HourglassException("cycles: the event frontier did not reach the last event after the loader's order drain.");
                }

                await Task.Delay(100, cancellationToken);
            }
        }

        var insights = new InsightsEngine(dataSource);
        foreach (var tenant in tenants)
        {
            await insights.RunAsync(tenant, 500_000, cancellationToken);
        }
    }

    /// <summary>VACUUM ANALYZE of the tables the load wrote, so plans and visibility maps are as in a settled database.</summary>
    public static async Task SettleAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        foreach (var table in new[]
        {
            "tenants", "agent_tenant_schedules", "accounts", "contacts", "engagement_clocks", "products", "orders", "order_lines",
            "order_processing_queue", "warehouse_events", "client_patterns", "insight_detector_state", "agent_autonomous_runs", "agent_hourly_reflections", "agent_tenant_locks",
        })
        {
            await Bench.ExecuteAsync(connection, $"vacuum analyze public.{table}", cancellationToken);
        }
    }

    private static async Task<Guid[]> CreateTenantsAsync(
        NpgsqlConnection connection, string prefix, int count, CancellationToken cancellationToken, int firstNumber = 1)
    {
        // The trigger gives each a schedule due at the next full hour; push it out of the way until a round makes it due.
        var tenants = await TenancyStore.CreateNumberedTenantsAsync(connection, prefix, firstNumber, firstNumber + count - 1, cancellationToken);
        await ScheduleStore.PostponeAYearAsync(connection, null, tenants, cancellationToken);
        return tenants;
    }

    // Clock k of a tenant is due at now - 2 days + (k - 1 + n / tenants) * (21 days / clocks per tenant): each
    // tenant covers the whole cycle, offset a little from the others, as contacts touched over the past weeks
    // would be. Statuses start at the column defaults; the benchmark's first restore sets them as a refresh an
    // hour ago would have. An upsert: the schema's trigger has already given each new contact a clock, due one
    // frequency after its creation.
    private static Task LoadClocksAsync(NpgsqlConnection connection, Guid[] tenants, int perTenant, CancellationToken cancellationToken) =>
        EngagementStore.InsertSpreadContactClocksAsync(connection, tenants, s_overdueSpan, s_cycle / perTenant, cancellationToken);

    // A day of hourly history per tenant: completed runs and their reflections, with the engine's JSON shapes.
    private static async Task LoadHistoryAsync(NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken)
    {
        await RunsStore.GenerateHistoryAsync(connection, tenants, HistoryHours, PlanOutput, ActOutput, ReactOutput, WhatMoved, cancellationToken);
        await HourlyReflections.GenerateHistoryAsync(connection, tenants, WhatMoved, ReactOutput, cancellationToken);
    }
}
