using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Policies;

namespace Hourglass.IntegrationTests.Cycles;

/// <summary>The cycle engine's phases, records and guarantees: idempotent actions, dry runs, failing handlers.</summary>
public sealed class CycleEngineTests : DatabaseTest
{
    private static readonly DateTimeOffset s_start = new(2026, 6, 2, 14, 0, 0, TimeSpan.Zero);
    private CycleHarness _h = null!;

    protected override async Task SeedAsync()
    {
        await CycleHarness.EnsureSideEffectTableAsync(Db);
        _h = new CycleHarness(Database, s_start);
        await _h.SetTimeAsync(s_start);
    }

    [Fact]
    public async Task Run_EachPhaseStoredWithTimingAndReflectionWritten()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        _h.Part.Targets[tenant] = [Guid.NewGuid(), Guid.NewGuid()];

        var result = await _h.Worker("w1").RunManualAsync(tenant, dryRun: false, hour: null, default);

        Assert.Equal(("completed", 2, 2, 0), (result.Status, result.ActionsPlanned, result.ActionsTaken, result.ActionsBlocked));
        var row = await RunRowAsync(result.RunId);
        Assert.False((bool)row["dry_run"]!);
        Assert.Equal(2, row["plan_output"]!["proposals"]!.AsArray().Count);
        Assert.Equal(2, row["act_output"]!["actions"]!.AsArray().Count(a => (string?)a!["status"] == "succeeded"));
        Assert.NotNull(row["react_output"]);
        foreach (var phase in new[] { "plan", "act", "react", "reflect" })
        {
            Assert.NotNull(row["cycle_metrics"]!["phases"]![phase]!["ms"]);
        }

        var reflection = await ReflectionAsync(tenant, s_start);
        Assert.Equal(result.RunId.ToString(), (string?)reflection["run_id"]);
        Assert.Equal(2, reflection["what_we_did"]!.AsArray().Count);
        Assert.Equal(2m, (decimal)reflection["what_moved"]!["test.targets"]!["after"]!);
        Assert.StartsWith("Hour 2026-06-02 14:00 UTC. Took 2 actions (2 test effect).", (string)reflection["summary"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Replay_SameHour_NoSideEffectRepeated()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        _h.Part.Targets[tenant] = [Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid()];
        var worker = _h.Worker("w1");

        await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);
        var replay = await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);

        Assert.Equal(3L, await _h.SideEffectsAsync(tenant));
        var actions = (await RunRowAsync(replay.RunId))["act_output"]!["actions"]!.AsArray();
        Assert.All(actions, a => Assert.Equal("already_done", (string?)a!["status"]));
        Assert.Equal(3L, await _h.Db.ScalarAsync("select count(*) from public.agent_actions where tenant_id = $1", tenant));
        Assert.Single((await _h.Db.ScalarAsync("select array_agg(id) from public.agent_hourly_reflections where tenant_id = $1", tenant) as Guid[])!);

        // The next hour is a new hour: the same actions run again.
        await _h.SetTimeAsync(s_start.AddHours(1));
        await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);
        Assert.Equal(6L, await _h.SideEffectsAsync(tenant));
    }

    [Fact]
    public async Task Handler_Throws_FailsItsActionNotTheCycle_AndReplayRetriesOnlyIt()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        var flaky = Guid.NewGuid();
        _h.Part.Targets[tenant] = [Guid.NewGuid(), flaky, Guid.NewGuid()];
        _h.Handler.FailTargets[flaky] = 1;
        var worker = _h.Worker("w1");

        var first = await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);

        Assert.Equal(("partial", 2), (first.Status, first.ActionsTaken));
        Assert.Contains("simulated failure", first.Error, StringComparison.Ordinal);
        Assert.Equal(2L, await _h.SideEffectsAsync(tenant));
        var reflection = await ReflectionAsync(tenant, s_start);
        Assert.Contains("simulated failure", reflection["what_got_blocked"]!.ToJsonString(), StringComparison.Ordinal);
        Assert.Contains("retry after failure", reflection["what_we_will_try_next"]!.ToJsonString(), StringComparison.Ordinal);

        var retry = await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);

        Assert.Equal("completed", retry.Status);
        Assert.Equal(3L, await _h.SideEffectsAsync(tenant));
        Assert.Equal(2, await _h.Db.ScalarAsync("select attempts from public.agent_actions where tenant_id = $1 and target_id = $2", tenant, flaky));
        // The ledger row is the action's latest outcome; the failed attempt it replaced is kept with it.
        var earlier = JsonNode.Parse((string)(await _h.Db.ScalarAsync(
            "select previous_attempts::text from public.agent_actions where tenant_id = $1 and target_id = $2", tenant, flaky))!)!.AsArray();
        var attempt = Assert.Single(earlier)!;
        Assert.Equal((first.RunId.ToString(), "failed", "allow"), ((string?)attempt["run_id"], (string?)attempt["status"], (string?)attempt["decision"]));
        Assert.Contains("simulated failure", (string?)attempt["error"], StringComparison.Ordinal);
        Assert.Equal(retry.RunId, await _h.Db.ScalarAsync("select run_id from public.agent_actions where tenant_id = $1 and target_id = $2", tenant, flaky));
    }

    [Fact]
    public async Task DryRun_PastHour_RecordsPlanAndDecisionsWithoutSideEffects()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        var denied = Guid.NewGuid();
        _h.Part.Targets[tenant] = [Guid.NewGuid(), denied];
        var policy = new DenyTargetsPolicy(denied);
        var worker = new CycleWorker(_h.Fixture.DataSource, _h.Clock, new CycleEngine(_h.Fixture.DataSource, [_h.Part], [_h.Handler], _h.Clock, policy),
            new CycleWorkerOptions { WorkerId = "w1" });

        var result = await worker.RunManualAsync(tenant, dryRun: true, hour: s_start.AddDays(-3), default);

        Assert.Equal("completed", result.Status);
        var row = await RunRowAsync(result.RunId);
        Assert.True((bool)row["cycle_metrics"]!["dry_run"]!);
        Assert.True((bool)row["dry_run"]!);
        Assert.Equal(s_start.AddDays(-3), DateTimeOffset.Parse((string)row["scheduled_for"]!, System.Globalization.CultureInfo.InvariantCulture));
        var actions = row["act_output"]!["actions"]!.AsArray();
        Assert.Equal(["would_run", "blocked"], actions.Select(a => (string)a!["status"]!));
        Assert.Equal("deny", (string?)actions[1]!["decision"]);
        Assert.Equal("test.deny_list", (string?)actions[1]!["rules"]![0]);
        Assert.Equal(0L, await _h.SideEffectsAsync(tenant));
        Assert.Equal(0L, await _h.Db.ScalarAsync("select count(*) from public.agent_actions where tenant_id = $1", tenant));
        Assert.Equal(0L, await _h.Db.ScalarAsync("select count(*) from public.agent_hourly_reflections where tenant_id = $1", tenant));
        Assert.Equal(0L, await _h.Db.ScalarAsync("select count(*) from public.agent_tenant_locks where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task Plan_OverBudget_TopPrioritiesTakenRestDeferred()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        _h.Part.Targets[tenant] = Enumerable.Range(0, 6).Select(_ => Guid.NewGuid()).ToList();
        await _h.Db.ExecuteAsync("update public.agent_tenant_schedules set max_actions_per_cycle = 4, max_actions_per_day = 7 where tenant_id = $1", tenant);
        var worker = _h.Worker("w1");

        var first = await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);
        await _h.SetTimeAsync(s_start.AddHours(1));
        var second = await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);

        Assert.Equal(4, first.ActionsTaken);
        Assert.Equal(3, second.ActionsTaken);
        var plan = (await RunRowAsync(first.RunId))["plan_output"]!;
        var selected = plan["selected"]!.AsArray().Select(k => (string)k!).ToList();
        Assert.All(_h.Part.Targets[tenant].Take(4), t => Assert.Contains(selected, k => k.EndsWith(t.ToString(), StringComparison.Ordinal)));
        Assert.Equal("budget: at most 4 actions per cycle", (string?)plan["deferred"]![0]!["reason"]);
        Assert.Equal("budget: at most 7 actions per day (4 taken today)", (string?)(await RunRowAsync(second.RunId))["plan_output"]!["deferred"]![0]!["reason"]);
    }

    [Fact]
    public async Task ManualRun_WhileCycleHoldsLease_RefusedWithHolder()
    {
        var tenant = await _h.TenantAsync(s_start.AddHours(1));
        await _h.Db.ExecuteAsync("select public.acquire_tenant_lease($1, 'busy-worker', 'autonomous_cycle', 10)", tenant);

        var ex = await Assert.ThrowsAsync<HourglassException>(() => _h.Worker("w1").RunManualAsync(tenant, false, null, default));

        Assert.Contains("has a cycle running (busy-worker since", ex.Message, StringComparison.Ordinal);
    }

    private sealed class DenyTargetsPolicy(Guid denied) : IPolicyEnforcer
    {
        public Task<PolicyDecision> EvaluateAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken) =>
            Task.FromResult(action.TargetId == denied
                ? new PolicyDecision(PolicyVerdict.Deny, ["test.deny_list"], "target is on the deny list", "v1")
                : new PolicyDecision(PolicyVerdict.Allow, [], null, "v1"));
    }

    private async Task<JsonObject> RunRowAsync(Guid runId) =>
        JsonNode.Parse((string)(await _h.Db.ScalarAsync("select to_jsonb(r)::text from public.agent_autonomous_runs r where id = $1", runId))!)!.AsObject();

    private async Task<JsonObject> ReflectionAsync(Guid tenant, DateTimeOffset hour) =>
        JsonNode.Parse((string)(await _h.Db.ScalarAsync(
            "select to_jsonb(r)::text from public.agent_hourly_reflections r where tenant_id = $1 and hour_bucket = $2", tenant, hour))!)!.AsObject();
}
