using System.Globalization;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>
/// hourglass status over two seeded tenants: every number it prints is read back from the database here, with
/// queries of the test's own, and checked against the seeded values besides.
/// </summary>
public sealed class StatusCommandTests : DatabaseTest
{
    // Brackets: a tenant name is text, never Spectre markup.
    private const string AcmeName = "Acme [East]";
    private const string GlobexName = "Globex";

    private Guid _acme;
    private Guid _globex;
    private DateTime _reflectionHour;

    protected override async Task SeedAsync()
    {
        var db = Db;
        _acme = await db.CreateTenantAsync(AcmeName);
        _globex = await db.CreateTenantAsync(GlobexName);

        // Engagement: Acme 1 account + 4 contacts = 5 clocks (2 overdue, 1 due soon); Globex 1 + 1 = 2 clocks (1 overdue).
        var initech = await db.CreateAccountAsync(_acme, "Initech");
        for (var i = 0; i < 4; i++)
        {
            await db.CreateContactAsync(_acme, initech, $"Contact {i}");
        }

        var hooli = await db.CreateAccountAsync(_globex, "Hooli");
        await db.CreateContactAsync(_globex, hooli, "Gavin");
        await db.ExecuteAsProductAsync("""
            update public.engagement_clocks set compliance_status = 'overdue', days_overdue = 3
            where id in (select id from public.engagement_clocks where tenant_id = $1 and entity_type = 'contact' order by id limit 2)
            """, _acme);
        await db.ExecuteAsProductAsync("""
            update public.engagement_clocks set compliance_status = 'due_soon'
            where id in (select id from public.engagement_clocks where tenant_id = $1 and entity_type = 'contact' and compliance_status = 'compliant' order by id limit 1)
            """, _acme);
        await db.ExecuteAsProductAsync("update public.engagement_clocks set compliance_status = 'overdue', days_overdue = 1 where tenant_id = $1 and entity_type = 'contact'", _globex);

        // Runs: Acme's last cycle completed (5 taken, 2 blocked); a newer dry run is not a cycle; a failed one two hours ago.
        await db.ExecuteAsync("""
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, started_at, completed_at, actions_planned, actions_taken, actions_blocked, worker_id, cycle_metrics, error)
            values ($1, 'failed', 'schedule', now() - interval '2 hours', now() - interval '2 hours' + interval '3 seconds', 4, 0, 0, 'worker-b', '{}', 'boom'),
                   ($1, 'completed', 'schedule', now() - interval '10 minutes', now() - interval '10 minutes' + interval '2 seconds', 9, 5, 2, 'worker-a', '{}', null),
                   ($1, 'completed', 'manual', now() - interval '1 minute', now() - interval '1 minute', 3, 0, 0, 'worker-a', '{"dry_run": true}', null),
                   ($2, 'partial', 'schedule', now() - interval '30 minutes', now() - interval '29 minutes', 6, 1, 4, 'worker-b', '{}', 'touch part failed')
            """, _acme, _globex);
        await db.ExecuteAsync("update public.agent_tenant_schedules set claimed_by = 'worker-a', claimed_until = now() + interval '1 minute' where tenant_id = $1", _acme);

        // Approvals: Acme 3 open (1 past due), 1 decided, and a touch card that is no approval; Globex only an expired one.
        await db.ExecuteAsync("""
            insert into public.cards (tenant_id, kind, title, status, due_at, completed_at)
            values ($1, 'approval', 'Send to Pat', 'open', now() + interval '2 days', null),
                   ($1, 'approval', 'Send to Sam', 'open', now() + interval '3 days', null),
                   ($1, 'approval', 'Send to Lee', 'open', now() - interval '1 hour', null),
                   ($1, 'approval', 'Decided', 'done', now() - interval '1 day', now() - interval '1 day'),
                   ($1, 'touch_task', 'Touch base', 'open', now() + interval '1 day', null),
                   ($2, 'approval', 'Too late', 'expired', now() - interval '1 day', null)
            """, _acme, _globex);

        // Violations: Acme 2 warnings (1 blocked) and 1 critical in the last 24 hours, 1 info before; Globex 1 error.
        await db.ExecuteAsync("""
            insert into public.agent_policy_violations (tenant_id, policy_key, action_type, decision, severity, blocked, message, created_at)
            values ($1, 'weekly-cap', 'touch_task', 'deny', 'warning', true, 'cap', now() - interval '1 hour'),
                   ($1, 'weekly-cap', 'touch_task', 'warn', 'warning', false, 'cap', now() - interval '2 hours'),
                   ($1, 'never-opted-out', 'send_message', 'deny', 'critical', true, 'opted out', now() - interval '3 hours'),
                   ($1, 'business-hours', 'send_message', 'deny', 'info', true, 'window', now() - interval '30 hours'),
                   ($2, 'channels', 'send_message', 'deny', 'error', true, 'allowlist', now() - interval '5 hours')
            """, _acme, _globex);

        // Orders: Acme PO-1 pending, PO-2 and PO-3 exceptions, PO-4 validated; Globex one pending, one processing.
        await db.ExecuteAsync("""
            insert into public.orders (tenant_id, account_id, po_number, placed_at)
            select $1, $2, 'PO-' || g, now() from pg_catalog.generate_series(1, 4) g
            """, _acme, initech);
        await db.ExecuteAsync("""
            insert into public.orders (tenant_id, account_id, po_number, placed_at)
            select $1, $2, 'G-' || g, now() from pg_catalog.generate_series(1, 2) g
            """, _globex, hooli);
        await db.ExecuteAsProductAsync("""
            update public.order_processing_queue q set status = s.status
            from public.orders o, (values ('PO-2', 'exception'), ('PO-3', 'exception'), ('PO-4', 'validated'), ('G-2', 'processing')) s(po, status)
            where o.tenant_id = q.tenant_id and o.id = q.order_id and o.po_number = s.po
            """);
        await db.ExecuteAsync("""
            insert into public.order_processing_exceptions (tenant_id, queue_id, order_id, exception_type, resolution_status, resolved_at, resolved_by)
            select q.tenant_id, q.id, q.order_id, s.type, s.status, case when s.status = 'resolved' then now() end, case when s.status = 'resolved' then 'sam' end
            from public.order_processing_queue q
            join public.orders o on o.tenant_id = q.tenant_id and o.id = q.order_id
            join (values ('PO-2', 'missing_po', 'open'), ('PO-3', 'missing_po', 'open'), ('PO-3', 'price_mismatch', 'in_review'),
                         ('PO-4', 'price_mismatch', 'resolved')) s(po, type, status) on s.po = o.po_number
            """);

        // Acme's last hour had two runs (the failed one and the completed one): its reflection rolls both up.
        var runIds = (Guid[])(await db.ScalarAsync("""
            select array_agg(id order by started_at) from public.agent_autonomous_runs where tenant_id = $1 and status in ('failed', 'completed')
              and not coalesce((cycle_metrics ->> 'dry_run')::boolean, false)
            """, _acme))!;
        _reflectionHour = (DateTime)(await db.ScalarAsync("select date_trunc('hour', now(), 'UTC') - interval '1 hour'"))!;
        foreach (var (run, taken) in runIds.Zip([1, 2]))
        {
            var did = string.Join(", ", Enumerable.Repeat("""{"kind": "touch_task", "status": "succeeded"}""", taken));
            await db.ExecuteAsync(Hourglass.Cycles.HourlyReflections.AddRunSql, _acme, run, _reflectionHour,
                $$"""{"run_id": "{{run}}", "trigger": "schedule", "what_we_did": [{{did}}], "summary": "Run took {{taken}}."}""");
        }

        // Kill switches: Globex paused by hand; everything paused globally.
        await db.ExecuteAsync("""
            update public.agent_tenant_schedules set paused = true, paused_reason = 'quarter close', paused_at = now(), paused_by = 'cli:test' where tenant_id = $1
            """, _globex);
        await db.ExecuteAsync("update hourglass.agent_control set paused = true, reason = 'maintenance window', set_at = now(), set_by = 'cli:ops'");
    }

    [Fact]
    public async Task Status_AllTenants_OneRowEachWithTheDatabasesNumbers()
    {
        var result = await HourglassProcess.RunAsync("status", "--database", ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.DoesNotContain('\u001b', result.StandardOutput); // redirected: plain text, no ANSI
        Assert.Contains("Global kill switch: PAUSED", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("by cli:ops: maintenance window", result.StandardOutput, StringComparison.Ordinal);

        var tenants = Table(result.StandardOutput, "tenant");
        Assert.Equal(2, tenants.Rows.Count);
        foreach (var (id, name) in new[] { (_acme, AcmeName), (_globex, GlobexName) })
        {
            var row = tenants.Row(name);
            var expected = await ExpectedAsync(id);
            Assert.Equal(expected.Clocks, row["clocks"]);
            Assert.Equal(expected.Overdue, row["overdue"]);
            Assert.Equal(expected.DueSoon, row["due soon"]);
            Assert.Equal(expected.CompliancePct, row["compliance %"]);
            Assert.Equal(expected.OpenApprovals, row["approvals"]);
            Assert.Equal(expected.Violations24h, row["violations 24h"]);
            Assert.Equal(expected.OrdersQueued, row["orders queued"]);
            Assert.Equal(expected.OpenExceptions, row["exceptions"]);
            Assert.Equal(expected.LastRunStatus, row["last run"]);
            Assert.Equal(expected.LastRunTaken, row["taken"]);
            Assert.Equal(expected.LastRunBlocked, row["blocked"]);
        }

        // And the seeded values, in case both sides read the database the same wrong way.
        var acme = tenants.Row(AcmeName);
        Assert.Equal(new[] { "active", "completed", "5", "2", "5", "2", "1", "60.00", "3", "3", "1", "3" },
            new[] { "state", "last run", "taken", "blocked", "clocks", "overdue", "due soon", "compliance %", "approvals", "violations 24h", "orders queued", "exceptions" }
                .Select(c => acme[c]));
        var globex = tenants.Row(GlobexName);
        Assert.Equal(new[] { "paused: quarter close", "partial", "1", "4", "2", "1", "0", "50.00", "0", "1", "2", "0" },
            new[] { "state", "last run", "taken", "blocked", "clocks", "overdue", "due soon", "compliance %", "approvals", "violations 24h", "orders queued", "exceptions" }
                .Select(c => globex[c]));

        // Workers: cycles started in the last hour (not the dry run, not the failed run two hours ago), and claims held now.
        var workers = Table(result.StandardOutput, "worker");
        var perWorker = await RowsAsync("""
            select worker_id, count(*)::text, count(*) filter (where status = 'completed')::text, count(*) filter (where status = 'partial')::text
            from public.agent_autonomous_runs
            where started_at > now() - interval '1 hour' and (cycle_metrics -> 'dry_run') is distinct from 'true'::jsonb
            group by worker_id
            """);
        Assert.Equal(perWorker.Count, workers.Rows.Count);
        foreach (var worker in perWorker)
        {
            var row = workers.Row(worker[0]);
            Assert.Equal((worker[1], worker[2], worker[3]), (row["runs"], row["completed"], row["partial"]));
        }

        Assert.Equal(("1", "1", "1"), (workers.Row("worker-a")["runs"], workers.Row("worker-a")["completed"], workers.Row("worker-a")["claims now"]));
        Assert.Equal(("1", "1", "0"), (workers.Row("worker-b")["runs"], workers.Row("worker-b")["partial"], workers.Row("worker-b")["claims now"]));
    }

    [Fact]
    public async Task Status_OneTenant_DetailTablesWithTheDatabasesNumbers()
    {
        var result = await HourglassProcess.RunAsync("status", "--tenant", AcmeName, "--database", ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.Contains($"Tenant {AcmeName} ({_acme})", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("State: active, but held by the global kill switch.", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("claimed by worker-a", result.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain(GlobexName, result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"Last reflection: hour {_reflectionHour:yyyy-MM-dd HH:mm} UTC, 2 runs", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"Hour {_reflectionHour:yyyy-MM-dd HH}:00 UTC, 2 runs: 3 actions taken, 0 blocked or failed. Run 1 (schedule, started ? UTC): Run took 1. " +
                        "Run 2 (schedule, started ? UTC): Run took 2.", result.StandardOutput.ReplaceLineEndings(" "), StringComparison.Ordinal);

        var runs = Table(result.StandardOutput, "started");
        var expectedRuns = await RowsAsync("""
            select status, trigger, actions_planned::text, actions_taken::text, actions_blocked::text, coalesce(worker_id, '-')
            from public.agent_autonomous_runs where tenant_id = $1 order by started_at desc
            """, _acme);
        Assert.Equal(expectedRuns, runs.Rows.Select(r => new[] { r["status"], r["trigger"], r["planned"], r["taken"], r["blocked"], r["worker"] }).ToList());
        Assert.Equal(new[] { "dry run", "", "boom" }, runs.Rows.Select(r => r["note"]));

        var expected = await ExpectedAsync(_acme);
        var clocks = Table(result.StandardOutput, "clocks").Rows.Single();
        Assert.Equal(new[] { expected.Clocks, expected.Compliant, expected.DueSoon, expected.Overdue, expected.CompliancePct },
            new[] { "clocks", "compliant", "due soon", "overdue", "compliance %" }.Select(c => clocks[c]));
        Assert.Equal(new[] { "5", "2", "1", "2", "60.00" }, new[] { "clocks", "compliant", "due soon", "overdue", "compliance %" }.Select(c => clocks[c]));

        var approvals = Table(result.StandardOutput, "open").Rows.Single();
        Assert.Equal((expected.OpenApprovals, "1"), (approvals["open"], approvals["past due"]));

        var violations = Table(result.StandardOutput, "severity");
        var bySeverity = await RowsAsync("""
            select s.severity, count(v.id)::text, count(v.id) filter (where v.blocked)::text
            from (values (1, 'info'), (2, 'warning'), (3, 'error'), (4, 'critical')) s(n, severity)
            left join public.agent_policy_violations v on v.severity = s.severity and v.tenant_id = $1 and v.created_at > now() - interval '24 hours'
            group by s.n, s.severity order by s.n
            """, _acme);
        Assert.Equal([.. bySeverity, ["total", "3", "2"]], violations.Rows.Select(r => new[] { r["severity"], r["violations"], r["blocked"] }).ToList());

        var queue = Table(result.StandardOutput, "status");
        var byStatus = await RowsAsync("""
            select s.status, count(q.id)::text
            from (values (1, 'pending'), (2, 'processing'), (3, 'validated'), (4, 'needs_approval'), (5, 'exception'), (6, 'cancelled')) s(n, status)
            left join public.order_processing_queue q on q.status = s.status and q.tenant_id = $1
            group by s.n, s.status order by s.n
            """, _acme);
        Assert.Equal(byStatus, queue.Rows.Select(r => new[] { r["status"], r["orders"] }).ToList());
        Assert.Equal(new[] { "1", "0", "1", "0", "2", "0" }, queue.Rows.Select(r => r["orders"]));

        var exceptions = Table(result.StandardOutput, "type");
        var byType = await RowsAsync("""
            select exception_type, count(*) filter (where resolution_status = 'open')::text, count(*) filter (where resolution_status = 'in_review')::text
            from public.order_processing_exceptions where tenant_id = $1 and resolution_status in ('open', 'in_review')
            group by exception_type order by exception_type
            """, _acme);
        Assert.Equal([.. byType, ["total", "2", "1"]], exceptions.Rows.Select(r => new[] { r["type"], r["open"], r["in review"] }).ToList());
    }

    [Fact]
    public async Task Status_PausedTenant_SaysWhyAndWho()
    {
        var result = await HourglassProcess.RunAsync("status", "--tenant", _globex.ToString(), "--database", ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.Contains("State: PAUSED since ", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("by cli:test: quarter close", result.StandardOutput, StringComparison.Ordinal);
        var run = Table(result.StandardOutput, "started").Rows.Single();
        Assert.Equal(("partial", "touch part failed"), (run["status"], run["note"]));
        Assert.Contains("Open order exceptions", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("None.", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Status_UnknownTenant_OneLineError()
    {
        var result = await HourglassProcess.RunAsync("status", "--tenant", "No Such Tenant", "--database", ConnectionString);

        Assert.Equal(1, result.ExitCode);
        Assert.Equal("hourglass: --tenant: no tenant has the id or name 'No Such Tenant'", result.StandardError.Trim());
        Assert.Equal("", result.StandardOutput);
    }

    private sealed record Expected(string Clocks, string Compliant, string DueSoon, string Overdue, string CompliancePct, string OpenApprovals, string Violations24h,
        string OrdersQueued, string OpenExceptions, string LastRunStatus, string LastRunTaken, string LastRunBlocked);

    // The numbers, as the test reads them from the tables.
    private async Task<Expected> ExpectedAsync(Guid tenant)
    {
        var row = (await RowsAsync("""
            select (select count(*) from public.engagement_clocks where tenant_id = $1)::text,
                   (select count(*) from public.engagement_clocks where tenant_id = $1 and compliance_status = 'compliant')::text,
                   (select count(*) from public.engagement_clocks where tenant_id = $1 and compliance_status = 'due_soon')::text,
                   (select count(*) from public.engagement_clocks where tenant_id = $1 and compliance_status = 'overdue')::text,
                   (select count(*) from public.cards where tenant_id = $1 and kind = 'approval' and status = 'open')::text,
                   (select count(*) from public.agent_policy_violations where tenant_id = $1 and created_at > now() - interval '24 hours')::text,
                   (select count(*) from public.order_processing_queue where tenant_id = $1 and status in ('pending', 'processing'))::text,
                   (select count(*) from public.order_processing_exceptions where tenant_id = $1 and resolution_status in ('open', 'in_review'))::text,
                   r.status, r.actions_taken::text, r.actions_blocked::text
            from (select * from public.agent_autonomous_runs where tenant_id = $1 and (cycle_metrics -> 'dry_run') is distinct from 'true'::jsonb
                  order by started_at desc limit 1) r
            """, tenant)).Single();
        var clocks = long.Parse(row[0], CultureInfo.InvariantCulture);
        var overdue = long.Parse(row[3], CultureInfo.InvariantCulture);
        var pct = (100m * (clocks - overdue) / clocks).ToString("0.00", CultureInfo.InvariantCulture);
        return new Expected(row[0], row[1], row[2], row[3], pct, row[4], row[5], row[6], row[7], row[8], row[9], row[10]);
    }

    private async Task<List<string[]>> RowsAsync(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new() { Value = parameter });
        }

        var rows = new List<string[]>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(Enumerable.Range(0, reader.FieldCount).Select(i => reader.GetString(i)).ToArray());
        }

        return rows;
    }

    private sealed record PrintedTable(string[] Header, List<string[]> Cells)
    {
        public List<IReadOnlyDictionary<string, string>> Rows =>
            Cells.Select(c => (IReadOnlyDictionary<string, string>)Header.Zip(c).ToDictionary(p => p.First, p => p.Second)).ToList();

        public IReadOnlyDictionary<string, string> Row(string first) => Assert.Single(Rows, r => r[Header[0]] == first);
    }

    // Redirected, status prints Markdown tables: a header line, a line of dashes, then the rows.
    private static PrintedTable Table(string output, string firstColumn)
    {
        var tables = new List<List<string[]>>();
        List<string[]>? current = null;
        foreach (var line in output.Split('\n'))
        {
            if (!line.StartsWith('|'))
            {
                current = null;
                continue;
            }

            var cells = line.Trim().Trim('|').Split('|').Select(c => c.Trim()).ToArray();
            if (current is null)
            {
                tables.Add(current = []);
            }

            if (!cells.All(c => c.Length > 0 && c.All(ch => ch is '-' or ':')))
            {
                current.Add(cells);
            }
        }

        var table = Assert.Single(tables, t => t[0][0] == firstColumn);
        return new PrintedTable(table[0], table.Skip(1).ToList());
    }
}
