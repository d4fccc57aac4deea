using Hourglass.Insights;
using Hourglass.Orders;
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
        await Bench.ExecuteAsync(connection, """
            insert into public.accounts (tenant_id, name, tier, segment)
            select t.id, pg_catalog.format('Account %s', a), 'gold', 'smb'
            from unnest($1::uuid[]) as t (id) cross join generate_series(1, $2) as a
            """, cancellationToken, tenants, StandardAccounts);
        await Bench.ExecuteAsync(connection, """
            insert into public.contacts (tenant_id, account_id, name, email)
            select a.tenant_id, a.id, pg_catalog.format('%s person %s', a.name, c), pg_catalog.format('p%s@example.com', c)
            from public.accounts a cross join generate_series(1, $2) as c
            where a.tenant_id = any ($1)
            order by a.tenant_id, a.id, c
            """, cancellationToken, tenants, StandardContactsPerAccount);
        await LoadClocksAsync(connection, tenants, StandardContacts, cancellationToken);
        await Bench.ExecuteAsync(connection, """
            insert into public.products (tenant_id, sku, name, list_price, unit_cost)
            select t.id, pg_catalog.format('SKU-%s', p), pg_catalog.format('Product %s', p), 10 * p, 6 * p
            from unnest($1::uuid[]) as t (id) cross join generate_series(1, $2) as p
            """, cancellationToken, tenants, StandardProducts);
        await Bench.ExecuteAsync(connection, """
            insert into public.orders (tenant_id, account_id, status, po_number, placed_at, subtotal, total)
            select a.tenant_id, a.id, 'placed', 'PO-' || a.name, now() - interval '30 minutes', 300, 300
            from public.accounts a where a.tenant_id = any ($1)
            """, cancellationToken, tenants);
        await Bench.ExecuteAsync(connection, """
            insert into public.order_lines (tenant_id, order_id, product_id, quantity, unit_price)
            select o.tenant_id, o.id, p.id, k, p.list_price
            from public.orders o cross join generate_series(1, $2) as k
            join public.products p on p.tenant_id = o.tenant_id and p.sku = 'SKU-' || k
            where o.tenant_id = any ($1)
            """, cancellationToken, tenants, LinesPerOrder);
        await Bench.ExecuteAsync(connection, """
            insert into public.order_processing_queue (tenant_id, order_id, priority)
            select o.tenant_id, o.id, 0 from public.orders o where o.tenant_id = any ($1)
            on conflict (tenant_id, order_id) do nothing
            """, cancellationToken, tenants);
        await Bench.ExecuteAsync(connection, """
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
            select t.id,
                   (array['order_placed', 'order_shipped', 'contact_touched', 'invoice_paid', 'quote_viewed'])[1 + e % 5],
                   'contact', gen_random_uuid(), pg_catalog.jsonb_build_object('sequence', e, 'amount', e % 97),
                   'bench', pg_catalog.format('bench-%s-%s', t.n, e), now() - e * interval '1 day' / $2
            from unnest($1::uuid[]) with ordinality as t (id, n) cross join generate_series(1, $2) as e
            order by t.n, e
            """, cancellationToken, tenants, StandardEventsPerDay);
        await LoadHistoryAsync(connection, tenants, cancellationToken);
        return tenants;
    }

    /// <summary>Creates <paramref name="count"/> small tenants (contacts and clocks, history); returns their ids.</summary>
    public static async Task<Guid[]> LoadSmallAsync(NpgsqlConnection connection, int count, int firstNumber, CancellationToken cancellationToken)
    {
        var tenants = await CreateTenantsAsync(connection, "bench-cycles-small", count, cancellationToken, firstNumber);
        await Bench.ExecuteAsync(connection, """
            insert into public.contacts (tenant_id, name, email)
            select t.id, pg_catalog.format('person %s', c), pg_catalog.format('p%s@example.com', c)
            from unnest($1::uuid[]) with ordinality as t (id, n) cross join generate_series(1, $2) as c
            order by t.n, c
            """, cancellationToken, tenants, SmallContacts);
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
            var last = await Bench.ScalarAsync<long>(connection, "select coalesce(max(seq), 0) from public.warehouse_events", cancellationToken);
            for (var attempt = 0; await Bench.ScalarAsync<long>(connection, "select hourglass.advance_event_frontier()", cancellationToken) < last; attempt++)
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
        var ids = new List<Guid>();
        await using (var command = new NpgsqlCommand(
            "insert into public.tenants (name) select pg_catalog.format('%s-%s', $1::text, g) from generate_series($2, $3) g returning id",
            connection))
        {
            command.Parameters.Add(new() { Value = prefix });
            command.Parameters.Add(new() { Value = firstNumber });
            command.Parameters.Add(new() { Value = firstNumber + count - 1 });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                ids.Add(reader.GetGuid(0));
            }
        }

        var tenants = ids.ToArray();
        await Bench.ExecuteAsync(connection,
            "update public.agent_tenant_schedules set next_due_at = now() + interval '1 year' where tenant_id = any ($1)",
            cancellationToken, tenants);
        return tenants;
    }

    // Clock k of a tenant is due at now - 2 days + (k - 1 + n / tenants) * (21 days / clocks per tenant): each
    // tenant covers the whole cycle, offset a little from the others, as contacts touched over the past weeks
    // would be. Statuses start at the column defaults; the benchmark's first restore sets them as a refresh an
    // hour ago would have. An upsert: the schema's trigger has already given each new contact a clock, due one
    // frequency after its creation.
    private static Task LoadClocksAsync(NpgsqlConnection connection, Guid[] tenants, int perTenant, CancellationToken cancellationToken) =>
        Bench.ExecuteAsync(connection, """
            insert into public.engagement_clocks as k (tenant_id, entity_type, entity_id, next_touch_due, created_at, updated_at)
            select c.tenant_id, 'contact', c.id,
                   now() - $2 + ((pg_catalog.row_number() over (partition by c.tenant_id order by c.id) - 1) + t.n::float8 / $4) * $3,
                   now() - interval '30 days', now() - interval '30 days'
            from public.contacts c
            join unnest($1::uuid[]) with ordinality as t (id, n) on t.id = c.tenant_id
            order by t.n
            on conflict (tenant_id, entity_type, entity_id) do update
              set next_touch_due = excluded.next_touch_due, created_at = excluded.created_at, updated_at = excluded.updated_at
            """, cancellationToken, tenants, s_overdueSpan, s_cycle / perTenant, tenants.Length);

    // A day of hourly history per tenant: completed runs and their reflections, with the engine's JSON shapes.
    private static async Task LoadHistoryAsync(NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken)
    {
        await Bench.ExecuteAsync(connection, """
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, completed_at,
              plan_output, act_output, react_output, reflect_output, cycle_metrics, worker_id, lock_token)
            select t.id, 'completed', 'schedule', h.hour, h.hour + interval '1 second', h.hour + interval '1.05 seconds',
                   $3::jsonb, $4::jsonb, $5::jsonb,
                   pg_catalog.jsonb_build_object('what_moved', $6::jsonb, 'what_we_did', '[]'::jsonb, 'summary', 'No actions taken.'),
                   pg_catalog.jsonb_build_object('dry_run', false, 'hour_bucket', h.hour, 'covered_hours', pg_catalog.jsonb_build_array(h.hour),
                     'phases', '{"plan": {"ms": 1.2}, "act": {"ms": 0.1}, "react": {"ms": 4.5}, "reflect": {"ms": 2.3}}'::jsonb),
                   'bench-history', 0
            from unnest($1::uuid[]) with ordinality as t (id, n)
            cross join lateral (select pg_catalog.date_trunc('hour', now(), 'UTC') - pg_catalog.make_interval(hours => g) as hour
                                from generate_series(1, $2) g) as h
            order by t.n, h.hour
            """, cancellationToken, tenants, HistoryHours, PlanOutput, ActOutput, ReactOutput, WhatMoved);
        await Bench.ExecuteAsync(connection, """
            insert into public.agent_hourly_reflections (tenant_id, run_id, hour_bucket, what_moved, insights, summary)
            select r.tenant_id, r.id, r.scheduled_for, $2::jsonb, ($3::jsonb) -> 'parts', 'Hour: no actions taken.'
            from public.agent_autonomous_runs r
            where r.tenant_id = any ($1) and r.worker_id = 'bench-history'
            """, cancellationToken, tenants, WhatMoved, ReactOutput);
    }
}
