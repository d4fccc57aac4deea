using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cycles;

/// <summary>A worker process killed mid-cycle loses nothing: its run is marked abandoned and another worker reruns the hour.</summary>
public sealed class WorkerCrashTests : IAsyncLifetime
{
    private readonly DatabaseFixture _database = new();

    public Task InitializeAsync() => _database.InitializeAsync();

    public Task DisposeAsync() => _database.DisposeAsync();

    [Fact]
    public async Task WorkerKilledMidCycle_RunAbandonedAfterLeaseAndHourRerunByAnotherWorker()
    {
        var db = _database.Db;
        var tenant = await db.CreateTenantAsync("crash tenant");
        await db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = date_trunc('hour', now()) where tenant_id = $1", tenant);

        // Worker A stalls right after Plan (a failpoint), then is killed with SIGKILL.
        using var doomed = HourglassProcess.Start(new Dictionary<string, string?> { ["HOURGLASS_FAILPOINTS"] = "cycle.after_plan=600000" },
            "worker", "--lease-minutes", "1", "--poll-seconds", "1", "--database", _database.ConnectionString);
        await WaitForAsync(db, "select count(*) from public.agent_autonomous_runs where status = 'running' and plan_output is not null", tenant);
        doomed.Kill(entireProcessTree: true);
        await doomed.WaitForExitAsync();
        Assert.Equal(1L, await db.ScalarAsync("select count(*) from public.agent_autonomous_runs where tenant_id = $1 and status = 'running'", tenant));

        // Its lease runs out (the database clock moves past it), and worker B takes over at its next look.
        await db.FreezeTimeAsync(DateTimeOffset.UtcNow.AddMinutes(2));
        using var survivor = HourglassProcess.Start(null, "worker", "--poll-seconds", "1", "--database", _database.ConnectionString);
        try
        {
            await WaitForAsync(db, "select count(*) from public.agent_autonomous_runs where status = 'completed'", tenant);
        }
        finally
        {
            survivor.Kill(entireProcessTree: true);
            await survivor.WaitForExitAsync();
        }

        var statuses = (string[])(await db.ScalarAsync(
            "select array_agg(status order by started_at) from public.agent_autonomous_runs where tenant_id = $1", tenant))!;
        Assert.Equal(["abandoned", "completed"], statuses);
        Assert.Contains("stopped renewing its lease", (string)(await db.ScalarAsync(
            "select error from public.agent_autonomous_runs where tenant_id = $1 and status = 'abandoned'", tenant))!, StringComparison.Ordinal);
        Assert.Equal(1L, await db.ScalarAsync("select count(*) from public.agent_hourly_reflections where tenant_id = $1", tenant));
        Assert.Equal(0L, await db.ScalarAsync("select count(*) from public.agent_tenant_locks where tenant_id = $1 and expires_at > hourglass.now()", tenant));
    }

    private static async Task WaitForAsync(TestDb db, string countSql, Guid tenant)
    {
        var sql = countSql + " and tenant_id = $1";
        for (var i = 0; i < 600; i++)
        {
            if ((long)(await db.ScalarAsync(sql, tenant))! > 0)
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"never true within 60 s: {countSql}");
    }
}
