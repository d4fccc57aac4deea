using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Api;

/// <summary>
/// POST /runs against a real <c>hourglass serve</c> with its worker: a real run of a paused tenant is a 409 problem
/// saying since when, by whom, why and how to resume (the tenant's own switch through the settings route, the global
/// one by an operator), and records no run; a dry run still answers 201; after the resume the run goes ahead.
/// </summary>
public sealed class RunNowPausedTests : DatabaseTest
{
    private Guid _tenant;
    private Guid _owner;

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync("Paused API Tenant");
        _owner = await Db.AddMemberAsync(_tenant, role: "owner");
        // Nothing comes due while the server's worker lives: it only answers "run now".
        await Db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = now() + interval '30 days'");
    }

    [Fact]
    public async Task RunNow_TenantThenGlobalPause_409ProblemSayingSinceWhyAndHow_DryRun201_ResumedRuns()
    {
        await using var server = await ApiServer.StartAsync(ConnectionString, worker: true);
        var token = ApiServer.UserToken(_owner);
        var path = $"/api/v1/tenants/{_tenant}/runs";
        var control = new TenantControl(Db.DataSource, TimeProvider.System);

        await control.PauseTenantAsync(_tenant, "quarter close", "ops", default);
        var tenantPaused = await server.SendAsync(HttpMethod.Post, path, token, """{"dry_run": false}""");
        var dry = await server.SendAsync(HttpMethod.Post, path, token, """{"dry_run": true}""");
        await control.ResumeTenantAsync(_tenant, default);
        await control.PauseAllAsync("incident 42", "ops", default);
        var globalPaused = await server.SendAsync(HttpMethod.Post, path, token, null);
        var runsWhilePaused = await RealRunsAsync();
        await control.ResumeAllAsync("ops", default);
        var resumed = await server.SendAsync(HttpMethod.Post, path, token, null);

        var problem = Problem(tenantPaused, 409);
        Assert.Equal(("https://hourglass.dev/problems/paused", "Tenant paused", "tenant", "quarter close", "ops"),
            ((string?)problem["type"], (string?)problem["title"], (string?)problem["scope"], (string?)problem["reason"], (string?)problem["paused_by"]));
        Assert.NotNull(problem["paused_since"]);
        var detail = (string)problem["detail"]!;
        Assert.Matches($@"^tenant {_tenant} is paused since \d{{4}}-\d\d-\d\d \d\d:\d\d UTC by ops: quarter close\. ", detail);
        Assert.Contains($"PATCH /api/v1/tenants/{_tenant}/settings {{\"paused\": false}}", detail, StringComparison.Ordinal);
        Assert.Contains("A dry run (\"dry_run\": true) still works.", detail, StringComparison.Ordinal);

        Assert.True(dry.Code == 201, dry.ToString());

        var global = Problem(globalPaused, 409);
        Assert.Equal(("global", "incident 42"), ((string?)global["scope"], (string?)global["reason"]));
        Assert.StartsWith("all tenants are paused (the global kill switch) since ", (string)global["detail"]!, StringComparison.Ordinal);
        Assert.Contains("lifted by an operator with 'hourglass resume'", (string)global["detail"]!, StringComparison.Ordinal);

        Assert.Equal(0L, runsWhilePaused);
        Assert.True(resumed.Code == 201, resumed.ToString());
        Assert.Equal("completed", (string?)JsonNode.Parse(resumed.Body)!["status"]);
        Assert.Equal(1L, await RealRunsAsync());
    }

    private static JsonObject Problem(ApiResponse response, int code)
    {
        Assert.True(response.Code == code, response.ToString());
        Assert.Equal("application/problem+json", response.ContentType);
        return JsonNode.Parse(response.Body)!.AsObject();
    }

    private async Task<long> RealRunsAsync() => (long)(await Db.ScalarAsync(
        "select count(*) from public.agent_autonomous_runs where tenant_id = $1 and not coalesce((cycle_metrics ->> 'dry_run')::boolean, false)", _tenant))!;
}
