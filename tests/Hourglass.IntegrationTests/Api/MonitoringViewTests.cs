using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.IntegrationTests.Security;
using Hourglass.Orders;
using Npgsql;

namespace Hourglass.IntegrationTests.Api;

/// <summary>
/// The monitoring views (20251226000000_monitoring_views.sql): the numbers for seeded data, days in the tenant's time
/// zone, the same numbers from what the real cycle and order processor record, and row-level security applying to
/// whoever queries them (security_invoker): a member sees their tenant only, the service role all, anon nothing.
/// Each test makes tenants of its own in the class's database.
/// </summary>
public sealed class MonitoringViewTests(DatabaseFixture fixture) : IClassFixture<DatabaseFixture>
{
    public static readonly TheoryData<string> Views = new()
    {
        "monitoring_run_success", "monitoring_engagement_compliance", "monitoring_policy_violations",
        "monitoring_order_throughput", "monitoring_lock_contention",
    };

    private TestDb Db => fixture.Db;

    [Fact]
    public async Task RunSuccess_ByStatusPerLocalDay_DryRunsLeftOut()
    {
        var (tenant, _) = await TenantAsync("America/New_York");
        // 2026-03-09 in New York: 15:00Z is 11:00 local, 2026-03-10 03:00Z is 23:00 local the same day.
        await RunAsync(tenant, "completed", "2026-03-09T15:00:00Z", seconds: 60, taken: 2);
        await RunAsync(tenant, "completed", "2026-03-09T16:00:00Z", seconds: 60, taken: 1);
        await RunAsync(tenant, "completed", "2026-03-10T03:00:00Z", seconds: 60);
        await RunAsync(tenant, "partial", "2026-03-09T17:00:00Z", seconds: 60, blocked: 3);
        await RunAsync(tenant, "failed", "2026-03-09T18:00:00Z", seconds: 120);
        await RunAsync(tenant, "abandoned", "2026-03-09T19:00:00Z", seconds: 600);
        await RunAsync(tenant, "skipped", "2026-03-09T20:00:00Z", seconds: 0);
        await RunAsync(tenant, "skipped", "2026-03-09T21:00:00Z", seconds: 0);
        await RunAsync(tenant, "completed", "2026-03-09T22:00:00Z", seconds: 60, dryRun: true);
        // 2026-03-10 in New York.
        await RunAsync(tenant, "completed", "2026-03-10T14:00:00Z", seconds: 30);
        await RunAsync(tenant, "running", "2026-03-10T15:00:00Z", seconds: null);

        var rows = await LinesAsync("""
            select day || ' runs=' || runs || ' ok=' || completed || ' partial=' || partial || ' failed=' || failed || ' abandoned=' || abandoned
                   || ' skipped=' || skipped || ' running=' || running || ' rate=' || coalesce(success_rate::text, 'null')
                   || ' taken=' || actions_taken || ' blocked=' || actions_blocked || ' avg=' || coalesce(avg_duration_seconds::text, 'null')
            from public.monitoring_run_success where tenant_id = $1 order by day
            """, tenant);

        Assert.Equal(
        [
            "2026-03-09 runs=8 ok=3 partial=1 failed=1 abandoned=1 skipped=2 running=0 rate=0.5000 taken=3 blocked=3 avg=72.000",
            "2026-03-10 runs=2 ok=1 partial=0 failed=0 abandoned=0 skipped=0 running=1 rate=1.0000 taken=0 blocked=0 avg=30.000",
        ], rows);
    }

    [Fact]
    public async Task EngagementCompliance_ClocksByStatus_ShareNotOverdue_TenantWithoutClocksHasARow()
    {
        var (tenant, _) = await TenantAsync("UTC");
        var (empty, _) = await TenantAsync("UTC");
        await ClockAsync(tenant, "contact", "compliant", 0);
        await ClockAsync(tenant, "contact", "compliant", 0);
        await ClockAsync(tenant, "account", "due_soon", 0);
        await ClockAsync(tenant, "contact", "overdue", 3);
        await ClockAsync(tenant, "account", "overdue", 7);

        var rows = await LinesAsync("""
            select clocks || ' ' || compliant || ' ' || due_soon || ' ' || overdue || ' ' || overdue_contacts || ' ' || overdue_accounts
                   || ' ' || max_days_overdue || ' ' || coalesce(compliance_pct::text, 'null')
            from public.monitoring_engagement_compliance where tenant_id = any ($1) order by clocks desc
            """, new[] { tenant, empty });

        Assert.Equal(["5 2 1 2 1 1 7 60.00", "0 0 0 0 0 0 0 null"], rows);
    }

    [Fact]
    public async Task PolicyViolations_PerLocalDayRuleAndSeverity_ByDecision()
    {
        var (tenant, _) = await TenantAsync("America/New_York");
        await ViolationAsync(tenant, "contact-weekly-cap", "cap", "deny", "warning", blocked: true, "2026-03-10T02:00:00Z");  // 03-09 local
        await ViolationAsync(tenant, "contact-weekly-cap", "cap", "deny", "warning", blocked: true, "2026-03-09T13:00:00Z");
        await ViolationAsync(tenant, "contact-weekly-cap", "cap", "warn", "warning", blocked: false, "2026-03-09T14:00:00Z");
        await ViolationAsync(tenant, "contact-weekly-cap", "cap", "deny", "error", blocked: true, "2026-03-09T15:00:00Z");
        await ViolationAsync(tenant, "large-orders", "order_value_approval", "require_approval", "info", blocked: true, "2026-03-10T12:00:00Z");

        var rows = await LinesAsync("""
            select day || ' ' || rule || ' ' || rule_kind || ' ' || severity || ' n=' || violations || ' deny=' || denied
                   || ' approval=' || approvals_required || ' warn=' || warned || ' blocked=' || blocked
            from public.monitoring_policy_violations where tenant_id = $1 order by day, rule, severity
            """, tenant);

        Assert.Equal(
        [
            "2026-03-09 contact-weekly-cap cap error n=1 deny=1 approval=0 warn=0 blocked=1",
            "2026-03-09 contact-weekly-cap cap warning n=3 deny=2 approval=0 warn=1 blocked=2",
            "2026-03-10 large-orders order_value_approval info n=1 deny=0 approval=1 warn=0 blocked=1",
        ], rows);
    }

    [Fact]
    public async Task OrderThroughput_OutcomeEventsPerUtcHour_ProblemEventsNotCounted()
    {
        var (tenant, _) = await TenantAsync("Asia/Kolkata");
        Guid[] orders = [Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid()];
        await EventAsync(tenant, "order_validated", orders[0], """{"pricing": "passed", "fixes": 1, "total": 20}""", "2026-03-10T14:05:00Z");
        await EventAsync(tenant, "order_validated", orders[1], """{"pricing": "passed", "fixes": 0, "total": 35.5}""", "2026-03-10T14:59:59Z");
        await EventAsync(tenant, "order_needs_approval", orders[2], """{"pricing": "passed", "fixes": 0, "total": 60000}""", "2026-03-10T14:10:00Z");
        await EventAsync(tenant, "order_exception", orders[3], """{"type": "quantity", "message": "line 1: quantity must be above 0"}""", "2026-03-10T14:20:00Z");
        await EventAsync(tenant, "order_exception", orders[3], """{"type": "lead_time", "message": "too soon"}""", "2026-03-10T14:20:00Z");
        await EventAsync(tenant, "order_exception", orders[3], """{"pricing": "passed", "requirements": "failed", "fixes": 2, "total": 0}""", "2026-03-10T14:20:00Z");
        await EventAsync(tenant, "order_fixed", orders[0], """{"fix": "recompute_totals", "attempt": 1}""", "2026-03-10T14:05:00Z");
        await EventAsync(tenant, "order_validated", orders[4], """{"pricing": "passed", "fixes": 0, "total": 5}""", "2026-03-10T15:00:00Z");
        // Kolkata is UTC+05:30: hours stay UTC hours whatever the tenant's zone or the session's.
        var rows = await LinesInZoneAsync("Asia/Kolkata", """
            select to_char(hour at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI') || ' processed=' || processed || ' validated=' || validated
                   || ' approval=' || needs_approval || ' exceptions=' || exceptions || ' orders=' || orders || ' fixes=' || fixes_applied
                   || ' value=' || validated_value
            from public.monitoring_order_throughput where tenant_id = $1 order by hour
            """, tenant);

        Assert.Equal(
        [
            "2026-03-10T14:00 processed=4 validated=2 approval=1 exceptions=1 orders=4 fixes=3 value=55.5",
            "2026-03-10T15:00 processed=1 validated=1 approval=0 exceptions=0 orders=1 fixes=0 value=5",
        ], rows);
    }

    [Fact]
    public async Task OrderThroughput_FromTheRealOrderProcessor_MatchesWhatItProcessed()
    {
        var (tenant, _) = await TenantAsync("UTC");
        var account = await Db.CreateAccountAsync(tenant);
        var product = (Guid)(await Db.ScalarAsync(
            "insert into public.products (tenant_id, sku, name, list_price, unit_cost) values ($1, 'W-1', 'Widget', 10, 6) returning id", tenant))!;
        foreach (var (quantity, total) in new[] { (2m, 20m), (1m, 10m), (1m, 3m), (0m, 0m) })
        {
            var order = (Guid)(await Db.ScalarAsync("""
                insert into public.orders (tenant_id, account_id, status, po_number, ship_to, requested_ship_date, currency, placed_at)
                values ($1, $2, 'draft', 'PO-1', '{"line1": "1 Main St", "city": "Springfield", "postal_code": "62701", "country": "US"}',
                        current_date + 10, 'USD', now()) returning id
                """, tenant, account))!;
            await Db.ExecuteAsync("insert into public.order_lines (tenant_id, order_id, product_id, quantity, unit_price) values ($1, $2, $3, $4, 10)",
                tenant, order, product, quantity);
            await Db.ExecuteAsync("update public.orders set subtotal = $3, total = $3, status = 'placed' where id = $2 and tenant_id = $1", tenant, order, total);
        }

        var result = await new OrderProcessor(Db.DataSource, new OrderProcessorOptions { WorkerId = "monitoring-test" }).DrainAsync(tenant, null, 100, default);

        var totals = await LinesAsync("""
            select sum(processed) || ' ' || sum(validated) || ' ' || sum(needs_approval) || ' ' || sum(exceptions) || ' ' || sum(fixes_applied)
            from public.monitoring_order_throughput where tenant_id = $1
            """, tenant);
        Assert.Equal(4, result.Claimed);
        Assert.Equal(
            [$"{result.Validated + result.NeedsApproval + result.Exceptions} {result.Validated} {result.NeedsApproval} {result.Exceptions} {result.Fixes}"],
            totals);
        Assert.True(result.Exceptions >= 1 && result.Fixes >= 1, $"expected an exception and a fix: {result}");
    }

    [Fact]
    public async Task LockContention_LeasesHandoversOverlapSkipsAbandoned()
    {
        var (tenant, _) = await TenantAsync("America/New_York");
        await LeasedRunAsync(tenant, "completed", "w1", 9_000_101, "2026-03-09T14:00:00Z");
        await LeasedRunAsync(tenant, "completed", "w1", 9_000_102, "2026-03-09T15:00:00Z");
        await LeasedRunAsync(tenant, "completed", "w2", 9_000_103, "2026-03-09T16:00:00Z");   // w1 → w2: a handover
        await LeasedRunAsync(tenant, "abandoned", "w2", 9_000_104, "2026-03-09T17:00:00Z");
        await SkippedAsync(tenant, "overlap: a cycle is still running (w2)", "2026-03-09T17:30:00Z");
        await SkippedAsync(tenant, "overlap: the cycle for 2026-03-09 17:00Z (run x) was still running", "2026-03-09T18:00:00Z");
        await SkippedAsync(tenant, "invalid schedule: cron: bad", "2026-03-09T19:00:00Z");
        await RunAsync(tenant, "completed", "2026-03-09T20:00:00Z", seconds: 10, dryRun: true);
        // 2026-03-10 local (03:00Z is still the 9th in New York; 14:00Z is the 10th): w2 → w1 again.
        await LeasedRunAsync(tenant, "completed", "w1", 9_000_105, "2026-03-10T14:00:00Z");

        var rows = await LinesAsync("""
            select day || ' leases=' || leases_granted || ' workers=' || workers || ' handovers=' || handovers || ' overlaps=' || overlap_skips
                   || ' abandoned=' || abandoned_runs || ' rate=' || coalesce(contention_rate::text, 'null')
            from public.monitoring_lock_contention where tenant_id = $1 order by day
            """, tenant);

        Assert.Equal(
        [
            "2026-03-09 leases=4 workers=2 handovers=1 overlaps=2 abandoned=1 rate=0.3333",
            "2026-03-10 leases=1 workers=1 handovers=1 overlaps=0 abandoned=0 rate=0.0000",
        ], rows);
    }

    [Fact]
    public async Task RealCycles_CountedAsTheWorkerRecordedThem()
    {
        var (tenant, _) = await TenantAsync("UTC");
        var worker = CycleComposition.CreateWorker(Db.DataSource, TimeProvider.System, new CycleWorkerOptions { WorkerId = "monitoring-worker" });

        var dry = await worker.RunManualAsync(tenant, dryRun: true, hour: null, default);
        var first = await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);
        var second = await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);

        Assert.Equal(["completed", "completed"], new[] { first.Status, second.Status });
        Assert.NotEqual(dry.RunId, first.RunId);
        Assert.Equal(["2 2 1.0000"], await LinesAsync(
            "select sum(runs) || ' ' || sum(completed) || ' ' || min(success_rate) from public.monitoring_run_success where tenant_id = $1", tenant));
        Assert.Equal(["2 1 0 0"], await LinesAsync(
            "select sum(leases_granted) || ' ' || max(workers) || ' ' || sum(handovers) || ' ' || sum(overlap_skips) from public.monitoring_lock_contention where tenant_id = $1",
            tenant));
    }

    [Theory]
    [MemberData(nameof(Views))]
    public async Task View_MemberSeesOnlyTheirTenant_ServiceRoleAll_AnonDenied(string view)
    {
        var (a, userA) = await TenantAsync("UTC");
        var (b, userB) = await TenantAsync("Europe/Berlin");
        foreach (var tenant in new[] { a, b })
        {
            await RunAsync(tenant, "completed", "2026-03-09T15:00:00Z", seconds: 60);
            await LeasedRunAsync(tenant, "completed", "w1", null, "2026-03-09T16:00:00Z");
            await ClockAsync(tenant, "contact", "overdue", 2);
            await ViolationAsync(tenant, "contact-weekly-cap", "cap", "deny", "warning", blocked: true, "2026-03-09T13:00:00Z");
            await EventAsync(tenant, "order_validated", Guid.NewGuid(), """{"fixes": 0, "total": 10}""", "2026-03-09T13:00:00Z");
        }

        var calls = new ApiCalls(Db.DataSource);
        var sql = $"select tenant_id from public.{view} where tenant_id = any ($1)";
        var tenants = new[] { a, b };

        var asA = await calls.LinesAsync(Principal.User(userA), sql, [tenants]);
        var asB = await calls.LinesAsync(Principal.User(userB), sql, [tenants]);
        var unfiltered = await calls.LinesAsync(Principal.User(userA), $"select tenant_id from public.{view}");
        var asService = await calls.LinesAsync(Principal.ServiceRole, sql, [tenants]);
        var asAnon = await calls.LinesAsync(Principal.Anon, $"select count(*) from public.{view}");

        Assert.True(asA.Succeeded, asA.ToString());
        Assert.NotEmpty(asA.Result!);
        Assert.All(asA.Result!, t => Assert.Equal(a.ToString(), t));
        Assert.All(asB.Result!, t => Assert.Equal(b.ToString(), t));
        Assert.NotEmpty(asB.Result!);
        // No filter at all: still only A's rows, whatever else the database holds.
        Assert.All(unfiltered.Result!, t => Assert.Equal(a.ToString(), t));
        Assert.Equal(new[] { a.ToString(), b.ToString() }.Order(), asService.Result!.Distinct().Order());
        Assert.Equal(IsolationAssert.Denied, asAnon.SqlState);
    }

    [Theory]
    [MemberData(nameof(Views))]
    public async Task View_SecurityInvoker_ReadOnlyForMembersAndService_NothingForAnon(string view)
    {
        var qualified = $"public.{view}";

        Assert.Equal(true, await Db.ScalarAsync(
            "select coalesce('security_invoker=true' = any (c.reloptions), false) from pg_catalog.pg_class c where c.oid = $1::regclass and c.relkind = 'v'", qualified));
        Assert.Equal(false, await Db.ScalarAsync("select has_table_privilege('anon', $1, 'SELECT')", qualified));
        Assert.Equal(true, await Db.ScalarAsync("select has_table_privilege('authenticated', $1, 'SELECT')", qualified));
        Assert.Equal(true, await Db.ScalarAsync("select has_table_privilege('service_role', $1, 'SELECT')", qualified));
        foreach (var role in new[] { "anon", "authenticated", "service_role" })
        {
            foreach (var privilege in new[] { "INSERT", "UPDATE", "DELETE", "TRUNCATE" })
            {
                Assert.Equal(false, await Db.ScalarAsync("select has_table_privilege($1, $2, $3)", role, qualified, privilege));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------

    private async Task<(Guid Tenant, Guid User)> TenantAsync(string timeZone)
    {
        var tenant = (Guid)(await Db.ScalarAsync("insert into public.tenants (name, timezone) values ($1, $2) returning id", $"monitored-{Guid.NewGuid():N}", timeZone))!;
        return (tenant, await Db.AddMemberAsync(tenant));
    }

    private Task RunAsync(Guid tenant, string status, string startedAt, int? seconds, int taken = 0, int blocked = 0, bool dryRun = false)
    {
        var started = DateTimeOffset.Parse(startedAt, System.Globalization.CultureInfo.InvariantCulture);
        return Db.ExecuteAsync("""
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, started_at, completed_at, actions_taken, actions_blocked, cycle_metrics)
            values ($1, $2, 'schedule', $3, $4, $5, $6, jsonb_build_object('dry_run', $7::boolean))
            """, tenant, status, started, seconds is { } s ? started.AddSeconds(s) : null, taken, blocked, dryRun);
    }

    private Task LeasedRunAsync(Guid tenant, string status, string worker, long? token, string startedAt)
    {
        var started = DateTimeOffset.Parse(startedAt, System.Globalization.CultureInfo.InvariantCulture);
        return Db.ExecuteAsync("""
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, started_at, completed_at, worker_id, lock_token)
            values ($1, $2, 'schedule', $3, $3 + interval '1 minute', $4, coalesce($5, nextval('public.agent_tenant_lock_token_seq')))
            """, tenant, status, started, worker, token);
    }

    private Task SkippedAsync(Guid tenant, string reason, string at) =>
        Db.ExecuteAsync("""
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, started_at, completed_at, worker_id, error)
            values ($1, 'skipped', 'schedule', $2, $2, 'w3', $3)
            """, tenant, DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture), reason);

    private Task ClockAsync(Guid tenant, string entityType, string status, int daysOverdue) =>
        Db.ExecuteAsProductAsync("""
            insert into public.engagement_clocks (tenant_id, entity_type, entity_id, next_touch_due, compliance_status, days_overdue)
            values ($1, $2, gen_random_uuid(), now() - make_interval(days => $4), $3, $4)
            """, tenant, entityType, status, daysOverdue);

    private Task ViolationAsync(Guid tenant, string rule, string kind, string decision, string severity, bool blocked, string at) =>
        Db.ExecuteAsync("""
            insert into public.agent_policy_violations (tenant_id, policy_key, rule_kind, action_type, decision, severity, blocked, created_at)
            values ($1, $2, $3, 'send_message', $4, $5, $6, $7)
            """, tenant, rule, kind, decision, severity, blocked, DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture));

    private Task EventAsync(Guid tenant, string type, Guid order, string payload, string at) =>
        Db.ExecuteAsync("""
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
            values ($1, $2, 'order', $3, $4::jsonb, 'order_processor', $5)
            """, tenant, type, order, payload, DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture));

    private Task<List<string>> LinesAsync(string sql, params object?[] parameters) => LinesInZoneAsync("UTC", sql, parameters);

    // The first column of every row, as the superuser, in a session whose time zone is the one given.
    private async Task<List<string>> LinesInZoneAsync(string sessionZone, string sql, params object?[] parameters)
    {
        await using var connection = await Db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await TestDb.ExecuteAsync(connection, transaction, "select set_config('timezone', $1, true)", sessionZone);
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter ?? DBNull.Value });
        }

        var lines = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            lines.Add(reader.IsDBNull(0) ? "null" : reader.GetString(0));
        }

        return lines;
    }
}
