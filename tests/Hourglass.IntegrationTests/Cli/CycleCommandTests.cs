using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>hourglass run / schedule / pause / resume as a user runs them, and the optional narrative over HTTP.</summary>
public sealed class CycleCommandTests : IAsyncLifetime
{
    private readonly DatabaseFixture _database = new();
    private Guid _tenant;

    public async Task InitializeAsync()
    {
        await _database.InitializeAsync();
        _tenant = await _database.Db.CreateTenantAsync("Cli Tenant");
    }

    public Task DisposeAsync() => _database.DisposeAsync();

    [Fact]
    public async Task Run_ByName_CompletesAndPrintsSummary()
    {
        var result = await HourglassProcess.RunAsync("run", "--tenant", "Cli Tenant", "--database", _database.ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.Contains(": completed; 0 planned", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("No actions taken.", result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(1L, await _database.Db.ScalarAsync("select count(*) from public.agent_hourly_reflections where tenant_id = $1", _tenant));
    }

    [Fact]
    public async Task Run_DryRunPastHour_RecordedAsDryRunOnly()
    {
        var result = await HourglassProcess.RunAsync("run", "--tenant", _tenant.ToString(), "--dry-run", "--hour", "2026-01-05T09:00Z",
            "--database", _database.ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.Contains("Dry run for 2026-01-05 09:00 UTC.", result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(0L, await _database.Db.ScalarAsync("select count(*) from public.agent_hourly_reflections where tenant_id = $1", _tenant));
        Assert.Equal(true, await _database.Db.ScalarAsync("select (cycle_metrics ->> 'dry_run')::boolean from public.agent_autonomous_runs where tenant_id = $1", _tenant));
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
        var result = await HourglassProcess.RunAsync([.. arguments, "--database", _database.ConnectionString]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(0L, await _database.Db.ScalarAsync("select count(*) from public.agent_autonomous_runs"));
        Assert.Equal("0 * * * *", await _database.Db.ScalarAsync("select cron from public.agent_tenant_schedules where tenant_id = $1", _tenant));
        Assert.Equal(false, await _database.Db.ScalarAsync("select paused from hourglass.agent_control"));
    }

    [Fact]
    public async Task ScheduleThenPauseAndResume_StoredAndShown()
    {
        var schedule = await HourglassProcess.RunAsync("schedule", "--tenant", "Cli Tenant", "--cron", "30 9 * * 1-5", "--timezone", "Asia/Tokyo",
            "--database", _database.ConnectionString);
        Assert.True(schedule.ExitCode == 0, schedule.StandardError);
        Assert.Contains("next cycle at", schedule.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("30 9 * * 1-5", await _database.Db.ScalarAsync("select cron from public.agent_tenant_schedules where tenant_id = $1", _tenant));

        var pause = await HourglassProcess.RunAsync("pause", "--tenant", "Cli Tenant", "--reason", "quarter close", "--database", _database.ConnectionString);
        Assert.Equal(0, pause.ExitCode);
        Assert.Equal("quarter close", await _database.Db.ScalarAsync("select paused_reason from public.agent_tenant_schedules where tenant_id = $1 and paused", _tenant));

        var resume = await HourglassProcess.RunAsync("resume", "--tenant", "Cli Tenant", "--database", _database.ConnectionString);
        Assert.Equal(0, resume.ExitCode);
        Assert.Equal(false, await _database.Db.ScalarAsync("select paused from public.agent_tenant_schedules where tenant_id = $1", _tenant));
    }

    [Fact]
    public async Task Run_LlmEndpointConfigured_SummaryWrittenByModelFactsStillStored()
    {
        using var model = new FakeOpenAiServer("The agent had nothing to do this hour; compliance held.");

        var result = await HourglassProcess.RunAsync(new Dictionary<string, string?>
        {
            ["HOURGLASS_LLM_ENDPOINT"] = model.Url,
            ["HOURGLASS_LLM_MODEL"] = "test-model",
            ["HOURGLASS_LLM_API_KEY"] = "test-key",
        }, "run", "--tenant", "Cli Tenant", "--database", _database.ConnectionString);

        Assert.True(result.ExitCode == 0, result.StandardOutput + result.StandardError);
        Assert.Equal("The agent had nothing to do this hour; compliance held.",
            await _database.Db.ScalarAsync("select summary from public.agent_hourly_reflections where tenant_id = $1", _tenant));
        Assert.NotNull(await _database.Db.ScalarAsync("select what_moved from public.agent_hourly_reflections where tenant_id = $1", _tenant));
        var request = Assert.Single(model.Requests);
        Assert.Equal("test-model", (string?)request["model"]);
        Assert.Contains("\"what_we_did\"", (string?)request["messages"]![1]!["content"], StringComparison.Ordinal);
        Assert.Equal("Bearer test-key", model.Authorization);
    }

    /// <summary>An OpenAI-compatible chat completions endpoint on loopback that answers with a fixed text.</summary>
    private sealed class FakeOpenAiServer : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Task _loop;

        public FakeOpenAiServer(string answer)
        {
            var port = FreePort();
            Url = $"http://127.0.0.1:{port}/v1";
            _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            _listener.Start();
            _loop = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    HttpListenerContext context;
                    try
                    {
                        context = await _listener.GetContextAsync();
                    }
                    catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
                    {
                        return;
                    }

                    using var reader = new StreamReader(context.Request.InputStream);
                    Requests.Add(JsonNode.Parse(await reader.ReadToEndAsync())!);
                    Authorization = context.Request.Headers["Authorization"];
                    var body = new JsonObject
                    {
                        ["id"] = "chatcmpl-test",
                        ["object"] = "chat.completion",
                        ["created"] = 1_764_000_000,
                        ["model"] = "test-model",
                        ["choices"] = new JsonArray(new JsonObject
                        {
                            ["index"] = 0,
                            ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = answer },
                            ["finish_reason"] = "stop",
                        }),
                        ["usage"] = new JsonObject { ["prompt_tokens"] = 10, ["completion_tokens"] = 10, ["total_tokens"] = 20 },
                    };
                    var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
                    context.Response.ContentType = "application/json";
                    await context.Response.OutputStream.WriteAsync(bytes);
                    context.Response.Close();
                }
            });
        }

        public string Url { get; }

        public List<JsonNode> Requests { get; } = [];

        public string? Authorization { get; private set; }

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
            _loop.Wait(TimeSpan.FromSeconds(5));
        }

        private static int FreePort()
        {
            using var socket = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            socket.Start();
            return ((IPEndPoint)socket.LocalEndpoint).Port;
        }
    }
}
