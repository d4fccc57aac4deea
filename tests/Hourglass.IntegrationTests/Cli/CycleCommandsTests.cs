using System.Text;
using System.Text.Json.Nodes;
using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>hourglass run / schedule / pause / resume as a user runs them, and the optional narrative over HTTP.</summary>
public sealed class CycleCommandsTests : DatabaseTest
{
    private Guid _tenant;

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync("Cli Tenant");
    }

    [Fact]
    public async Task Run_ByName_CompletesAndPrintsSummary()
    {
        var result = await HourglassProcess.RunAsync("run", "--tenant", "Cli Tenant", "--database", ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.Contains(": completed; 0 planned", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("No actions taken.", result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.agent_hourly_reflections where tenant_id = $1", _tenant));
    }

    [Fact]
    public async Task Run_DryRunPastHour_RecordedAsDryRunOnly()
    {
        var result = await HourglassProcess.RunAsync("run", "--tenant", _tenant.ToString(), "--dry-run", "--hour", "2026-01-05T09:00Z",
            "--database", ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.Contains("Dry run for 2026-01-05 09:00 UTC.", result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.agent_hourly_reflections where tenant_id = $1", _tenant));
        Assert.Equal(true, await Db.ScalarAsync("select (cycle_metrics ->> 'dry_run')::boolean from public.agent_autonomous_runs where tenant_id = $1", _tenant));
    }

    [Theory]
    [InlineData(new[] { "run", "--tenant", "No Such Tenant" }, "--tenant: no tenant has the id or name 'No Such Tenant'")]
    [InlineData(new[] { "run", "--tenant", "Cli Tenant", "--dry-run", "--hour", "yesterday" }, "--hour: 'yesterday' is not an ISO 8601 time")]
    [InlineData(new[] { "run", "--tenant", "Cli Tenant", "--hour", "2026-01-05T09:00Z" }, "--hour: only a dry run")]
    [InlineData(new[] { "schedule", "--tenant", "Cli Tenant", "--cron", "*/90 * * *" }, "cron: '*/90 * * *' is not a five-field cron expression")]
    [InlineData(new[] { "schedule", "--tenant", "Cli Tenant", "--cron", "0 * * * *", "--timezone", "Atlantis/Capital" }, "timezone: 'Atlantis/Capital' is not an IANA time zone")]
    [InlineData(new[] { "pause", "--reason", "  " }, "reason: say why you pause")]
    [InlineData(new[] { "worker", "--concurrency", "0" }, "--concurrency: must be a positive number")]
    public async Task BadInput_OneLineNamingTheFlagNothingWritten(string[] arguments, string expected)
    {
        var result = await HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.agent_autonomous_runs"));
        Assert.Equal("0 * * * *", await Db.ScalarAsync("select cron from public.agent_tenant_schedules where tenant_id = $1", _tenant));
        Assert.Equal(false, await Db.ScalarAsync("select paused from hourglass.agent_control"));
    }

    [Fact]
    public async Task ScheduleThenPauseAndResume_StoredAndShown()
    {
        var schedule = await HourglassProcess.RunAsync("schedule", "--tenant", "Cli Tenant", "--cron", "30 9 * * 1-5", "--timezone", "Asia/Tokyo",
            "--database", ConnectionString);
        Assert.True(schedule.ExitCode == 0, schedule.StandardError);
        Assert.Contains("next cycle at", schedule.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("30 9 * * 1-5", await Db.ScalarAsync("select cron from public.agent_tenant_schedules where tenant_id = $1", _tenant));

        var pause = await HourglassProcess.RunAsync("pause", "--tenant", "Cli Tenant", "--reason", "quarter close", "--database", ConnectionString);
        Assert.Equal(0, pause.ExitCode);
        Assert.Equal("quarter close", await Db.ScalarAsync("select paused_reason from public.agent_tenant_schedules where tenant_id = $1 and paused", _tenant));

        var resume = await HourglassProcess.RunAsync("resume", "--tenant", "Cli Tenant", "--database", ConnectionString);
        Assert.Equal(0, resume.ExitCode);
        Assert.Equal(false, await Db.ScalarAsync("select paused from public.agent_tenant_schedules where tenant_id = $1", _tenant));
    }

    [Fact]
    public async Task Run_LlmEndpointConfigured_SummaryWrittenByModelFactsStillStored()
    {
        using var model = new LoopbackHttpServer(_ => ("application/json", Encoding.UTF8.GetBytes(new JsonObject
        {
            ["id"] = "chatcmpl-test",
            ["object"] = "chat.completion",
            ["created"] = 1_764_000_000,
            ["model"] = "test-model",
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = "The agent had nothing to do this hour; compliance held." },
                ["finish_reason"] = "stop",
            }),
            ["usage"] = new JsonObject { ["prompt_tokens"] = 10, ["completion_tokens"] = 10, ["total_tokens"] = 20 },
        }.ToJsonString())));

        var result = await HourglassProcess.RunAsync(new Dictionary<string, string?>
        {
            ["HOURGLASS_LLM_ENDPOINT"] = model.BaseUrl + "/v1",
            ["HOURGLASS_LLM_MODEL"] = "test-model",
            ["HOURGLASS_LLM_API_KEY"] = "test-key",
        }, "run", "--tenant", "Cli Tenant", "--database", ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.Equal("The agent had nothing to do this hour; compliance held.",
            await Db.ScalarAsync("select summary from public.agent_hourly_reflections where tenant_id = $1", _tenant));
        Assert.NotNull(await Db.ScalarAsync("select what_moved from public.agent_hourly_reflections where tenant_id = $1", _tenant));
        var call = Assert.Single(model.Requests);
        Assert.Equal(("POST", "/v1/chat/completions"), (call.Method, call.Path));
        var request = JsonNode.Parse(call.Body)!;
        Assert.Equal("test-model", (string?)request["model"]);
        Assert.Contains("\"what_we_did\"", (string?)request["messages"]![1]!["content"], StringComparison.Ordinal);
        Assert.Equal("Bearer test-key", call.Headers["Authorization"]);
    }

    [Fact]
    public async Task Run_OtlpEndpointConfigured_TracesAndMetricsExported()
    {
        using var collector = new LoopbackHttpServer(_ => ("application/x-protobuf", []));

        var result = await HourglassProcess.RunAsync(new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.BaseUrl,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        }, "run", "--tenant", "Cli Tenant", "--database", ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        var traces = collector.Requests.Where(r => r.Path == "/v1/traces").SelectMany(r => r.Body).ToArray();
        var text = Encoding.UTF8.GetString(traces);
        foreach (var span in new[] { "cycle", "plan", "act", "react", "reflect", "hourglass.tenant_id", _tenant.ToString() })
        {
            Assert.Contains(span, text, StringComparison.Ordinal);
        }

        var metrics = Encoding.UTF8.GetString(collector.Requests.Where(r => r.Path == "/v1/metrics").SelectMany(r => r.Body).ToArray());
        Assert.Contains("hourglass.cycles", metrics, StringComparison.Ordinal);
        Assert.Contains("hourglass.cycle.phase.duration", metrics, StringComparison.Ordinal);
    }
}
