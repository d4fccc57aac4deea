using Hourglass.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Hourglass.IntegrationTests.Cycles;

/// <summary>
/// The worker and the scheduler's rules against a real database, with the application's and the
/// database's clocks moved together. Each test gets its own database, since workers claim every due tenant.
/// </summary>
public sealed class SchedulerTests : DatabaseTest
{
    private static readonly DateTimeOffset s_start = new(2026, 4, 14, 8, 0, 0, TimeSpan.Zero);
    private CycleHarness _h = null!;

    protected override async Task SeedAsync()
    {
        await CycleHarness.EnsureSideEffectTableAsync(Db);
        _h = new CycleHarness(Database, s_start);
        await _h.SetTimeAsync(s_start);
    }

    [Fact]
    public async Task Worker_HourByHour_OneScheduledRunAndReflectionPerHour()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        _h.Part.Targets[tenant] = [Guid.NewGuid()];
        var worker = _h.Worker("w1");

        Assert.Equal(0, await worker.RunOnceAsync(default));
        for (var hour = 1; hour <= 5; hour++)
        {
            await _h.SetTimeAsync(s_start.AddHours(hour).AddSeconds(5));
            Assert.Equal(1, await worker.RunOnceAsync(default));
            Assert.Equal(0, await worker.RunOnceAsync(default));
        }

        var runs = await _h.RunsAsync(tenant);
        Assert.Equal(5, runs.Count);
        Assert.All(runs, r => Assert.Equal(("completed", "schedule"), (r.Status, r.Trigger)));
        Assert.Equal(Enumerable.Range(1, 5).Select(h => s_start.AddHours(h)), runs.Select(r => r.ScheduledFor));
        Assert.Equal(5L, await _h.Db.ScalarAsync("select count(distinct hour_bucket) from public.agent_hourly_reflections where tenant_id = $1", tenant));
        Assert.Equal(5L, await _h.SideEffectsAsync(tenant));
        Assert.Equal(s_start.AddHours(6), await NextDueAsync(tenant));
    }

    [Fact]
    public async Task Worker_ClaimsTwiceItsConcurrencyPerPass_UnlessToldToClaimMore()
    {
        for (var i = 0; i < 5; i++)
        {
            await _h.TenantAsync(s_start.AddHours(1));
        }

        await _h.SetTimeAsync(s_start.AddHours(1).AddSeconds(5));
        var shared = _h.Worker("shared", maxConcurrent: 1);
        Assert.Equal(2, await shared.RunOnceAsync(default));

        var alone = new CycleWorker(_h.Fixture.DataSource, _h.Clock, _h.Engine(), new CycleWorkerOptions { WorkerId = "alone", LeaseMinutes = 2, MaxConcurrentCycles = 1, MaxClaimedPerPass = 5 });
        Assert.Equal(3, await alone.RunOnceAsync(default));
        Assert.Equal(0, await alone.RunOnceAsync(default));
        Assert.Equal(5L, await _h.Db.ScalarAsync("select count(*) from public.agent_autonomous_runs where status = 'completed'"));
    }

    [Fact]
    public async Task Worker_AfterDowntime_MissedHoursCollapseIntoOneCatchUpRun()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        await _h.SetTimeAsync(s_start.AddHours(5).AddMinutes(20));

        await _h.Worker("w1").RunOnceAsync(default);

        var run = Assert.Single(await _h.RunsAsync(tenant));
        Assert.Equal(("completed", "catch_up"), (run.Status, run.Trigger));
        Assert.Equal(s_start.AddHours(5), run.ScheduledFor);
        Assert.Equal(5, run.Metrics["covered_hours"]!.AsArray().Count);
        Assert.Equal(s_start.AddHours(6), await NextDueAsync(tenant));
    }

    [Fact]
    public async Task Worker_CycleStillRunningAtNextOccurrence_NextOccurrenceSkippedAndRecorded()
    {
        // Every minute, so the next occurrence comes while the first cycle runs, well within its lease.
        var tenant = await _h.TenantAsync(s_start.AddMinutes(1), cron: "* * * * *");
        _h.Part.Targets[tenant] = [Guid.NewGuid()];
        var gate = new TaskCompletionSource();
        _h.Part.PlanGates[tenant] = gate;
        await _h.SetTimeAsync(s_start.AddMinutes(1));
        var first = _h.Worker("slow").RunOnceAsync(default);
        await WaitForRunningAsync(tenant);

        await _h.SetTimeAsync(s_start.AddMinutes(2).AddSeconds(10));
        Assert.Equal(0, await _h.Worker("other").RunOnceAsync(default));

        gate.SetResult();
        await first;

        var runs = await _h.RunsAsync(tenant);
        Assert.Equal(2, runs.Count);
        Assert.Equal(("completed", "slow"), (runs[0].Status, runs[0].WorkerId));
        Assert.Equal(("skipped", s_start.AddMinutes(2)), (runs[1].Status, runs[1].ScheduledFor));
        Assert.StartsWith("overlap: the cycle for", runs[1].Error, StringComparison.Ordinal);
        Assert.Equal(s_start.AddMinutes(3), await NextDueAsync(tenant));
    }

    [Fact]
    public async Task Worker_LeaseHeldByManualRun_ScheduledCycleSkippedWithHolder()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        await _h.Db.ExecuteAsync("select public.acquire_tenant_lease($1, 'operator-manual-run', 'autonomous_cycle', 120)", tenant);
        await _h.SetTimeAsync(s_start.AddHours(1));

        await _h.Worker("w1").RunOnceAsync(default);

        var run = Assert.Single(await _h.RunsAsync(tenant));
        Assert.Equal("skipped", run.Status);
        Assert.Contains("overlap: a cycle is still running (operator-manual-run since", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Worker_GlobalPause_ClaimsNothingUntilResumed()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        var control = new TenantControl(_h.Fixture.DataSource, _h.Clock);
        await control.PauseAllAsync("incident 42", "ops", default);
        await _h.SetTimeAsync(s_start.AddHours(1));

        Assert.Equal(0, await _h.Worker("w1").RunOnceAsync(default));
        await control.ResumeAllAsync("ops", default);
        Assert.Equal(1, await _h.Worker("w1").RunOnceAsync(default));
        Assert.Single(await _h.RunsAsync(tenant));
    }

    [Fact]
    public async Task Worker_TenantPausedMidCycle_RemainingActionsBlockedBeforeTheirEffect()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        var targets = Enumerable.Range(0, 3).Select(_ => Guid.NewGuid()).ToList();
        _h.Part.Targets[tenant] = targets;
        var control = new TenantControl(_h.Fixture.DataSource, _h.Clock);
        var effects = 0;
        _h.Handler.BeforeEffect[tenant] = async () =>
        {
            // The first action pauses the tenant (as an operator would, mid-cycle).
            if (Interlocked.Increment(ref effects) == 1)
            {
                await control.PauseTenantAsync(tenant, "customer asked us to stop", "ops", default);
            }
        };
        await _h.SetTimeAsync(s_start.AddHours(1));

        await _h.Worker("w1").RunOnceAsync(default);

        var run = Assert.Single(await _h.RunsAsync(tenant));
        Assert.Equal((1, 2), (run.ActionsTaken, run.ActionsBlocked));
        Assert.Equal(1L, await _h.SideEffectsAsync(tenant));
        var blocked = (string)(await _h.Db.ScalarAsync("select what_got_blocked::text from public.agent_hourly_reflections where tenant_id = $1", tenant))!;
        Assert.Contains("paused: this tenant (customer asked us to stop)", blocked, StringComparison.Ordinal);

        await _h.SetTimeAsync(s_start.AddHours(2));
        Assert.Equal(0, await _h.Worker("w1").RunOnceAsync(default));
    }

    [Fact]
    public async Task Worker_RepeatedFailures_TenantAutoPausedWithReason()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        _h.Part.FailMeasure[tenant] = "warehouse unreachable";
        var worker = _h.Worker("w1");

        for (var hour = 1; hour <= 4; hour++)
        {
            await _h.SetTimeAsync(s_start.AddHours(hour));
            await worker.RunOnceAsync(default);
        }

        var runs = await _h.RunsAsync(tenant);
        Assert.Equal(3, runs.Count);
        Assert.All(runs, r => Assert.Equal("failed", r.Status));
        Assert.All(runs, r => Assert.Contains("warehouse unreachable", r.Error, StringComparison.Ordinal));
        var reason = (string)(await _h.Db.ScalarAsync("select paused_reason from public.agent_tenant_schedules where tenant_id = $1 and paused", tenant))!;
        Assert.Contains("automatically paused after 3 consecutive failed cycles", reason, StringComparison.Ordinal);
        Assert.Contains("warehouse unreachable", reason, StringComparison.Ordinal);

        _h.Part.FailMeasure.Clear();
        await new TenantControl(_h.Fixture.DataSource, _h.Clock).ResumeTenantAsync(tenant, default);
        await _h.SetTimeAsync(s_start.AddHours(5));
        await worker.RunOnceAsync(default);
        Assert.Equal("completed", (await _h.RunsAsync(tenant))[^1].Status);
    }

    [Fact]
    public async Task Worker_DeadWorkersRun_AbandonedAfterLeaseExpiryAndTenantRunsAgainAtOnce()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        await _h.SetTimeAsync(s_start.AddHours(1));
        // What a worker killed mid-cycle leaves behind: a claim, a lease and a run marked running.
        var token = (long)(await _h.Db.ScalarAsync("select public.acquire_tenant_lease($1, 'dead-worker', 'autonomous_cycle', 2)", tenant))!;
        await _h.Db.ExecuteAsync("update public.agent_tenant_schedules set claimed_by = 'dead-worker', claimed_until = $2 where tenant_id = $1", tenant, s_start.AddHours(1).AddMinutes(2));
        await _h.Db.ExecuteAsync("""
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, worker_id, lock_token)
            values ($1, 'running', 'schedule', $2, $2, 'dead-worker', $3)
            """, tenant, s_start.AddHours(1), token);

        var worker = _h.Worker("survivor");
        await _h.SetTimeAsync(s_start.AddHours(1).AddMinutes(1));
        Assert.Equal(0, await worker.RunOnceAsync(default));
        Assert.Equal("running", (await _h.RunsAsync(tenant))[0].Status);

        await _h.SetTimeAsync(s_start.AddHours(1).AddMinutes(2).AddSeconds(1));
        Assert.Equal(1, await worker.RunOnceAsync(default));

        var runs = await _h.RunsAsync(tenant);
        Assert.Equal(2, runs.Count);
        Assert.Equal("abandoned", runs[0].Status);
        Assert.Contains("worker dead-worker stopped renewing its lease", runs[0].Error, StringComparison.Ordinal);
        Assert.Equal(("completed", "survivor"), (runs[1].Status, runs[1].WorkerId));
    }

    [Fact]
    public async Task Worker_InvalidStoredSchedule_ThatTenantSkipsWithReasonOthersRun()
    {
        var broken = await _h.TenantAsync(s_start.AddHours(1));
        var healthy = await _h.TenantAsync(s_start.AddHours(1));
        await _h.Db.ExecuteAsync("update public.agent_tenant_schedules set cron = '61 * * * *' where tenant_id = $1", broken);
        await _h.SetTimeAsync(s_start.AddHours(1));

        Assert.Equal(2, await _h.Worker("w1").RunOnceAsync(default));

        var skipped = Assert.Single(await _h.RunsAsync(broken));
        Assert.Equal("skipped", skipped.Status);
        Assert.StartsWith("invalid schedule: cron: '61 * * * *'", skipped.Error, StringComparison.Ordinal);
        Assert.Equal("completed", Assert.Single(await _h.RunsAsync(healthy)).Status);
    }

    [Fact]
    public async Task SetSchedule_Invalid_RefusedNamingFieldAndNothingSaved()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        var control = new TenantControl(_h.Fixture.DataSource, _h.Clock);

        var cron = await Assert.ThrowsAsync<InvalidScheduleException>(() => control.SetScheduleAsync(tenant, "every hour", null, default));
        var zone = await Assert.ThrowsAsync<InvalidScheduleException>(() => control.SetScheduleAsync(tenant, "0 9 * * 1-5", "Mars/Olympus", default));

        Assert.Equal("cron", cron.Field);
        Assert.Equal("timezone", zone.Field);
        Assert.Equal("0 * * * *", await _h.Db.ScalarAsync("select cron from public.agent_tenant_schedules where tenant_id = $1", tenant));

        var next = await control.SetScheduleAsync(tenant, "0 9 * * 1-5", "Europe/Berlin", default);
        Assert.Equal(new DateTimeOffset(2026, 4, 15, 7, 0, 0, TimeSpan.Zero), next);
    }

    [Fact]
    public async Task Worker_AcrossBothDstTransitions_EveryRealHourRunsOnce()
    {
        // America/New_York: clocks spring forward at 2026-03-08 07:00Z and fall back at 2026-11-01 06:00Z.
        foreach (var transition in new[] { new DateTimeOffset(2026, 3, 8, 7, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 11, 1, 6, 0, 0, TimeSpan.Zero) })
        {
            await using var database = new DatabaseFixture();
            await database.InitializeAsync();
            try
            {
                await CycleHarness.EnsureSideEffectTableAsync(database.Db);
                var start = transition.AddHours(-3);
                var h = new CycleHarness(database, start);
                await h.SetTimeAsync(start);
                var tenant = await h.TenantAsync(start.AddHours(1), timezone: "America/New_York");
                var worker = h.Worker("w1");
                for (var hour = 1; hour <= 6; hour++)
                {
                    await h.SetTimeAsync(start.AddHours(hour).AddSeconds(30));
                    await worker.RunOnceAsync(default);
                }

                var runs = await h.RunsAsync(tenant);
                Assert.Equal(Enumerable.Range(1, 6).Select(i => start.AddHours(i)), runs.Select(r => r.ScheduledFor));
                Assert.All(runs, r => Assert.Equal("schedule", r.Trigger));
            }
            finally
            {
                await database.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Worker_StalledPastLease_SuccessorTakesOverAndStalledWritesNeverCommit()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        _h.Part.Targets[tenant] = [Guid.NewGuid()];
        await _h.SetTimeAsync(s_start.AddHours(1));

        // Worker A's own clock stands still while it is stalled (a paused process: no timers, no renewals).
        var frozenClock = new FakeTimeProvider(s_start.AddHours(1));
        var gate = new TaskCompletionSource();
        _h.Part.PlanGates[tenant] = gate;
        var stalled = _h.Worker("stalled", frozenClock).RunOnceAsync(default);
        await WaitForRunningAsync(tenant);

        // Past A's lease the successor reaps A's run, claims the tenant and completes the hour.
        await _h.SetTimeAsync(s_start.AddHours(1).AddMinutes(3));
        _h.Part.PlanGates.TryRemove(tenant, out _);
        Assert.Equal(1, await _h.Worker("successor").RunOnceAsync(default));

        // A wakes up and carries on: its action's fenced write must fail.
        gate.SetResult();
        await stalled;

        var runs = await _h.RunsAsync(tenant);
        Assert.Equal(2, runs.Count);
        Assert.Equal(("abandoned", "stalled"), (runs[0].Status, runs[0].WorkerId));
        Assert.Equal(("completed", "successor"), (runs[1].Status, runs[1].WorkerId));
        Assert.Equal(1L, await _h.SideEffectsAsync(tenant));
        Assert.Equal(runs[1].Id, await _h.Db.ScalarAsync("select run_id from public.test_side_effects where tenant_id = $1", tenant));
        Assert.Null(await _h.Db.ScalarAsync("select plan_output from public.agent_autonomous_runs where id = $1", runs[0].Id));
    }

    private async Task<DateTimeOffset> NextDueAsync(Guid tenant) =>
        new((DateTime)(await _h.Db.ScalarAsync("select next_due_at from public.agent_tenant_schedules where tenant_id = $1", tenant))!);

    private async Task WaitForRunningAsync(Guid tenant)
    {
        for (var i = 0; i < 200; i++)
        {
            if ((long)(await _h.Db.ScalarAsync("select count(*) from public.agent_autonomous_runs where tenant_id = $1 and status = 'running'", tenant))! > 0)
            {
                return;
            }

            await Task.Delay(25);
        }

        throw new TimeoutException("the cycle never started");
    }
}
