using System.Globalization;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>hourglass events import (both paths, NDJSON and CSV) and events prune, as an operator runs them.</summary>
public sealed class EventCommandsTests : DatabaseTest
{
    private Guid _tenant;
    private Guid _contact;
    private string _at = "";

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync("Eventful Co");
        var account = await Db.CreateAccountAsync(_tenant, "Initech");
        _contact = await Db.CreateContactAsync(_tenant, account, "Milton Waddams");
        _at = DateTimeOffset.UtcNow.AddHours(-1).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ImportNdjson_BadLines_RefusedNamingThem_SkipRecordsTheRest_ResendWritesNothing(bool bulk)
    {
        var file = await WriteAsync("ndjson",
            $$$"""{"event_type":"reply","entity_type":"contact","entity_id":"{{{_contact}}}","occurred_at":"{{{_at}}}","idempotency_key":"mail-1","payload":{"subject":"Re: stapler"}}""",
            "",
            $$"""{"event_type":"reply","entity_type":"contact","entity_id":"{{Guid.NewGuid()}}"}""",
            """{"event_type":"reply","tenant_id":"6d3c1f4e-0000-4000-8000-000000000000"}""",
            """{"event_type":"meeting" """,
            """{"event_type":"order_placed","idempotency_key":"erp-1"}""");
        string[] import = ["events", "import", "--tenant", "Eventful Co", "--file", file, .. (bulk ? ["--bulk"] : Array.Empty<string>()), "--database", ConnectionString];
        try
        {
            var refused = await HourglassProcess.RunAsync(import);
            var afterRefusal = await CountAsync();
            var skipped = await HourglassProcess.RunAsync([.. import, "--on-error", "skip"]);
            var resent = await HourglassProcess.RunAsync([.. import, "--on-error", "skip"]);

            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("3 of 5 events rejected, nothing recorded: line 3: contact", refused.StandardError, StringComparison.Ordinal);
            Assert.Contains("line 4: unknown field(s) 'tenant_id'", refused.StandardError, StringComparison.Ordinal);
            Assert.Contains("line 5: not valid JSON", refused.StandardError, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", refused.StandardError, StringComparison.Ordinal);
            Assert.Equal(0L, afterRefusal);
            Assert.Equal(3, skipped.ExitCode);
            Assert.Contains("5 event(s) read: 2 recorded, 0 duplicate(s) skipped, 3 rejected.", skipped.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("  line 3: contact", skipped.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("5 event(s) read: 0 recorded, 2 duplicate(s) skipped, 3 rejected.", resent.StandardOutput, StringComparison.Ordinal);
            Assert.Equal(2L, await CountAsync());
            Assert.Equal("Re: stapler", await Db.ScalarAsync(
                "select payload ->> 'subject' from public.warehouse_events where tenant_id = $1 and idempotency_key = 'mail-1'", _tenant));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ImportCsv_PayloadInAQuotedField_Recorded(bool bulk)
    {
        var file = await WriteAsync("csv",
            "event_type,entity_type,entity_id,occurred_at,idempotency_key,source,payload",
            $"reply,contact,{_contact},{_at},mail-7,email-sync,\"{{\"\"subject\"\": \"\"Re: case, the red one\"\"}}\"",
            "meeting,,,,cal-1,,",
            "order_placed,order,not-a-uuid,,,,");
        try
        {
            var result = await HourglassProcess.RunAsync(["events", "import", "--tenant", _tenant.ToString(), "--file", file, "--on-error", "skip",
                .. (bulk ? ["--bulk"] : Array.Empty<string>()), "--database", ConnectionString]);

            Assert.Equal(3, result.ExitCode);
            Assert.Contains("3 event(s) read: 2 recorded, 0 duplicate(s) skipped, 1 rejected.", result.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("  line 4: entity_id must be a uuid (got 'not-a-uuid')", result.StandardOutput, StringComparison.Ordinal);
            Assert.Equal("email-sync|Re: case, the red one;api|", await Db.ScalarAsync("""
                select string_agg(source || '|' || coalesce(payload ->> 'subject', ''), ';' order by idempotency_key desc)
                from public.warehouse_events where tenant_id = $1
                """, _tenant));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task ImportNdjson_FromStandardInput_AllGood_ExitZero()
    {
        var line = $$"""{"event_type":"meeting","entity_type":"contact","entity_id":"{{_contact}}","source":"calendar-sync"}""";

        var result = await HourglassProcess.RunAsync(["events", "import", "--tenant", "Eventful Co", "--file", "-", "--format", "ndjson", "--bulk",
            "--database", ConnectionString], standardInput: line + "\n" + line.Replace("meeting", "call", StringComparison.Ordinal) + "\n");

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Contains("2 event(s) read: 2 recorded, 0 duplicate(s) skipped, 0 rejected.", result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(2L, await CountAsync());
    }

    [Fact]
    public async Task Prune_DeletesPerTheTenantsSettings_PrintsCounts_KeepsReflections()
    {
        await Db.ExecuteAsync("update public.tenants set settings = '{\"retention_events_days\": 30}' where id = $1", _tenant);
        await Db.ExecuteAsync("""
            insert into public.warehouse_events (tenant_id, event_type, occurred_at)
            values ($1, 'reply', now() - interval '31 days'), ($1, 'reply', now() - interval '29 days')
            """, _tenant);
        await Db.ExecuteAsync("""
            with run as (
              insert into public.agent_autonomous_runs (tenant_id, status, started_at, completed_at)
              values ($1, 'completed', now() - interval '100 days', now() - interval '100 days') returning id)
            insert into public.agent_hourly_reflections (tenant_id, run_id, hour_bucket)
            select $1, run.id, date_trunc('hour', now() - interval '100 days', 'UTC') from run
            """, _tenant);

        var result = await HourglassProcess.RunAsync("events", "prune", "--tenant", "Eventful Co", "--database", ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Contains("Retention applied: 1 event(s) deleted (older than 30 days), 1 run(s) deleted (older than 90 days); hourly reflections kept.",
            result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("1 events, 0 runs, 1 reflections", await Db.ScalarAsync("""
            select (select count(*) from public.warehouse_events where tenant_id = $1) || ' events, '
                || (select count(*) from public.agent_autonomous_runs where tenant_id = $1) || ' runs, '
                || (select count(*) from public.agent_hourly_reflections where tenant_id = $1 and run_id is null) || ' reflections'
            """, _tenant));
    }

    [Theory]
    [InlineData(new[] { "events", "import", "--tenant", "Eventful Co", "--file", "/nonexistent/events.ndjson" }, "--file: '/nonexistent/events.ndjson' does not exist")]
    [InlineData(new[] { "events", "import", "--tenant", "Eventful Co", "--file", "events.txt" }, "--format is needed")]
    [InlineData(new[] { "events", "import", "--tenant", "Eventful Co", "--file", "e.csv", "--batch-size", "10001" }, "--batch-size must be between 1 and 10000")]
    [InlineData(new[] { "events", "import", "--tenant", "Nobody Inc", "--file", "-", "--format", "ndjson" }, "Nobody Inc")]
    [InlineData(new[] { "events", "prune", "--tenant", "Nobody Inc" }, "Nobody Inc")]
    public async Task BadInput_OneLineNothingWritten(string[] arguments, string expected)
    {
        var result = await HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString], standardInput: "");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(0L, await CountAsync());
    }

    private async Task<long> CountAsync() =>
        (long)(await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1", _tenant))!;

    private static async Task<string> WriteAsync(string extension, params string[] lines)
    {
        var file = Path.Combine(Path.GetTempPath(), $"events-{Guid.NewGuid():N}.{extension}");
        await File.WriteAllTextAsync(file, string.Join('\n', lines) + "\n");
        return file;
    }
}
