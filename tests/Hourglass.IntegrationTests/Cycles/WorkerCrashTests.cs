using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cycles;

/// <summary>A worker process killed mid-cycle loses nothing: its run is marked abandoned and another worker reruns the hour.</summary>
public sealed class WorkerCrashTests : DatabaseTest
{
    [Fact]
    public async Task WorkerKilledMidCycle_RunAbandonedAfterLeaseAndHourRerunByAnotherWorker()
    {
        var db = Db;
        var tenant = await db.CreateTenantAsync("crash tenant");
        await db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = date_trunc('hour', now()) where tenant_id = $1", tenant);

        // Worker A stalls right after Plan (a failpoint), then is killed with SIGKILL.
        using var doomed = HourglassProcess.Start(new Dictionary<string, string?> { ["HOURGLASS_FAILPOINTS"] = "cycle.after_plan=600000" },
            "worker", "--lease-minutes", "1", "--poll-seconds", "1", "--database", ConnectionString);
        await WaitForAsync(db, "select count(*) from public.agent_autonomous_runs where status = 'running' and plan_output is not null", tenant);
        doomed.Kill(entireProcessTree: true);
        await doomed.WaitForExitAsync();
        Assert.Equal(1L, await db.ScalarAsync("select count(*) from public.agent_autonomous_runs where tenant_id = $1 and status = 'running'", tenant));

        // Its lease runs out (the database clock moves past it), and worker B takes over at its next look.
        await db.FreezeTimeAsync(DateTimeOffset.UtcNow.AddMinutes(2));
        using var survivor = HourglassProcess.Start(null, "worker", "--poll-seconds", "1", "--database", ConnectionString);
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

    [Fact]
    public async Task WorkerProcessFrozenPastLease_SuccessorCompletesAndFrozenWorkerWritesNothingMore()
    {
        var db = Db;
        var tenant = await db.CreateTenantAsync("stall tenant");
        await db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = date_trunc('hour', now()) where tenant_id = $1", tenant);

        // Worker A pauses 3 s after Plan; while it is there we freeze the whole process (SIGSTOP).
        using var frozen = HourglassProcess.Start(new Dictionary<string, string?> { ["HOURGLASS_FAILPOINTS"] = "cycle.after_plan=3000" },
            "worker", "--lease-minutes", "1", "--poll-seconds", "1", "--database", ConnectionString);
        try
        {
            await WaitForAsync(db, "select count(*) from public.agent_autonomous_runs where status = 'running' and plan_output is not null", tenant);
            Assert.Equal(0, (await Signal("STOP", frozen.Id)).ExitCode);

            // A's lease runs out while it is frozen; B reaps A's run and completes the hour.
            await db.FreezeTimeAsync(DateTimeOffset.UtcNow.AddMinutes(2));
            using (var successor = HourglassProcess.Start(null, "worker", "--poll-seconds", "1", "--database", ConnectionString))
            {
                try
                {
                    await WaitForAsync(db, "select count(*) from public.agent_autonomous_runs where status = 'completed'", tenant);
                }
                finally
                {
                    successor.Kill(entireProcessTree: true);
                    await successor.WaitForExitAsync();
                }
            }

            // A thaws and carries on from where it stopped: its next fenced write must fail.
            Assert.Equal(0, (await Signal("CONT", frozen.Id)).ExitCode);
            await Task.Delay(TimeSpan.FromSeconds(5));
        }
        finally
        {
            frozen.Kill(entireProcessTree: true);
            await frozen.WaitForExitAsync();
        }

        var runs = await RunsAsync(db, tenant);
        Assert.Equal(2, runs.Count);
        Assert.Equal("abandoned", runs[0].Status);
        Assert.Null(runs[0].ActOutput);
        Assert.Equal("completed", runs[1].Status);
        Assert.Equal(runs[1].Id, await db.ScalarAsync("select run_id from public.agent_hourly_reflections where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task WorkerSigTermMidCycle_StopsReleasesTenantAndTheHourRunsAgainAtOnce()
    {
        var db = Db;
        var tenant = await db.CreateTenantAsync("sigterm tenant");
        await db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = date_trunc('hour', now()) where tenant_id = $1", tenant);
        using var stopping = HourglassProcess.Start(new Dictionary<string, string?> { ["HOURGLASS_FAILPOINTS"] = "cycle.after_plan=600000" },
            "worker", "--poll-seconds", "1", "--database", ConnectionString);
        await WaitForAsync(db, "select count(*) from public.agent_autonomous_runs where status = 'running' and plan_output is not null", tenant);

        Assert.Equal(0, (await Signal("TERM", stopping.Id)).ExitCode);
        using (var exited = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
        {
            await stopping.WaitForExitAsync(exited.Token);
        }

        // Claim and lease are given back: another worker takes the hour at once, no waiting for expiry.
        Assert.Equal(0L, await db.ScalarAsync("select count(*) from public.agent_tenant_schedules where tenant_id = $1 and claimed_by is not null", tenant));
        Assert.Equal(0L, await db.ScalarAsync("select count(*) from public.agent_tenant_locks where tenant_id = $1", tenant));
        using var next = HourglassProcess.Start(null, "worker", "--poll-seconds", "1", "--database", ConnectionString);
        try
        {
            await WaitForAsync(db, "select count(*) from public.agent_autonomous_runs where status = 'completed'", tenant);
        }
        finally
        {
            next.Kill(entireProcessTree: true);
            await next.WaitForExitAsync();
        }

        Assert.Equal(["abandoned", "completed"], (string[])(await db.ScalarAsync(
            "select array_agg(status order by started_at) from public.agent_autonomous_runs where tenant_id = $1", tenant))!);
    }

    private static async Task<List<(Guid Id, string Status, string? ActOutput)>> RunsAsync(TestDb db, Guid tenant)
    {
        await using var command = db.DataSource.CreateCommand(
            "select id, status, act_output::text from public.agent_autonomous_runs where tenant_id = $1 order by started_at");
        command.Parameters.Add(new() { Value = tenant });
        await using var reader = await command.ExecuteReaderAsync();
        var runs = new List<(Guid, string, string?)>();
        while (await reader.ReadAsync())
        {
            runs.Add((reader.GetGuid(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2)));
        }

        return runs;
    }

    private static async Task<(int ExitCode, string Output)> Signal(string signal, int processId)
    {
        using var kill = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("kill", $"-{signal} {processId}") { RedirectStandardError = true })!;
        var error = await kill.StandardError.ReadToEndAsync();
        await kill.WaitForExitAsync();
        return (kill.ExitCode, error);
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
