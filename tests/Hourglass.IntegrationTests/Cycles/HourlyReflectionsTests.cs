using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Cycles;

/// <summary>
/// An hour's reflection covers every run of the hour: real cycles run two and three times in one hour all land in the
/// hour's row (each with its own reflection kept), two writes at once both land, a replayed write counts once, a dry
/// run writes nothing, and the roll-up columns are not writable directly.
/// </summary>
public sealed class HourlyReflectionsTests : DatabaseTest
{
    private static readonly DateTimeOffset s_hour = new(2026, 6, 2, 14, 0, 0, TimeSpan.Zero);
    private CycleHarness _h = null!;

    protected override async Task SeedAsync()
    {
        await CycleHarness.EnsureSideEffectTableAsync(Db);
        _h = new CycleHarness(Database, s_hour.AddHours(-1));
        await _h.SetTimeAsync(s_hour.AddHours(-1));
    }

    [Fact]
    public async Task ThreeRunsInAnHour_EveryRunsActionsInTheHoursReflection_EachRunKeepsItsOwn()
    {
        var tenant = await _h.TenantAsync(s_hour.AddHours(2));
        var worker = _h.Worker("w1");
        // The hour before: four targets measured, the "before" of every run of the next hour.
        _h.Part.Targets[tenant] = [Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid()];
        await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);

        await _h.SetTimeAsync(s_hour.AddMinutes(5));
        var runs = new List<CycleResult>();
        foreach (var count in new[] { 2, 1, 3 })
        {
            _h.Part.Targets[tenant] = Enumerable.Range(0, count).Select(_ => Guid.NewGuid()).ToList();
            runs.Add(await worker.RunManualAsync(tenant, dryRun: false, hour: null, default));
            await _h.SetTimeAsync(_h.Clock.GetUtcNow().AddMinutes(10));
        }

        var row = await ReflectionAsync(tenant, s_hour);
        // Every action the ledger holds for the hour is in the hour's reflection, under the run that took it.
        var did = row["what_we_did"]!.AsArray();
        Assert.Equal(6, did.Count);
        Assert.Equal(6L, await _h.Db.ScalarAsync("select count(*) from public.agent_actions where tenant_id = $1 and hour_bucket = $2", tenant, s_hour));
        Assert.Equal([2, 1, 3], runs.Select(r => did.Count(a => (string?)a!["run_id"] == r.RunId.ToString())));
        Assert.Equal(runs.Select(r => r.RunId.ToString()), row["run_ids"]!.AsArray().Select(id => (string)id!));
        Assert.Equal(runs[2].RunId.ToString(), (string?)row["run_id"]);

        // What moved over the hour: from where its first run found it (4) to where its last left it (3).
        var targets = row["what_moved"]!["test.targets"]!;
        Assert.Equal((4m, 3m, -1m), ((decimal)targets["before"]!, (decimal)targets["after"]!, (decimal)targets["delta"]!));

        // The summary says it for the hour, then each run's own words, in order.
        var summary = (string)row["summary"]!;
        Assert.StartsWith("Hour 2026-06-02 14:00 UTC, 3 runs: 6 actions taken, 0 blocked or failed.", summary, StringComparison.Ordinal);
        var own = new List<string>();
        foreach (var run in runs)
        {
            var reflectOutput = JsonNode.Parse((string)(await _h.Db.ScalarAsync(
                "select reflect_output::text from public.agent_autonomous_runs where id = $1", run.RunId))!)!;
            own.Add((string)reflectOutput["summary"]!);
            // Each run's own reflection stays readable: in its run record, and in the hour's runs.
            Assert.Equal(run.ActionsTaken, reflectOutput["what_we_did"]!.AsArray().Count);
            Assert.Equal(run.ActionsTaken, row["runs"]![run.RunId.ToString()]!["what_we_did"]!.AsArray().Count);
        }

        Assert.Contains($"Run 1 (manual, started 14:05 UTC): {own[0]}", summary, StringComparison.Ordinal);
        Assert.Contains($"Run 2 (manual, started 14:15 UTC): {own[1]}", summary, StringComparison.Ordinal);
        Assert.Contains($"Run 3 (manual, started 14:25 UTC): {own[2]}", summary, StringComparison.Ordinal);
        Assert.True(summary.IndexOf(own[0], StringComparison.Ordinal) < summary.IndexOf(own[2], StringComparison.Ordinal));
    }

    [Fact]
    public async Task SecondRun_FailedActionRetried_BothOutcomesKeptAndDeferralsOfBothRuns()
    {
        var tenant = await _h.TenantAsync(s_hour.AddHours(2));
        var flaky = Guid.NewGuid();
        _h.Part.Targets[tenant] = [Guid.NewGuid(), flaky];
        _h.Handler.FailTargets[flaky] = 1;
        await _h.SetTimeAsync(s_hour);
        var worker = _h.Worker("w1");

        var first = await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);
        var second = await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);

        var row = await ReflectionAsync(tenant, s_hour);
        // The failure of the first run stays in the hour's record after the second run retried it.
        var blocked = row["what_got_blocked"]!.AsArray();
        Assert.Single(blocked);
        Assert.Equal(first.RunId.ToString(), (string?)blocked[0]!["run_id"]);
        Assert.Contains("simulated failure", (string?)blocked[0]!["why"], StringComparison.Ordinal);
        Assert.Equal(first.RunId.ToString(), (string?)row["what_we_will_try_next"]![0]!["run_id"]);
        var did = row["what_we_did"]!.AsArray();
        Assert.Equal(["succeeded", "already_done", "succeeded"], did.Select(a => (string)a!["status"]!));
        Assert.Equal(second.RunId.ToString(), (string?)did[2]!["run_id"]);
        Assert.StartsWith("Hour 2026-06-02 14:00 UTC, 2 runs: 2 actions taken, 1 blocked or failed.", (string)row["summary"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoRunsWriteTheHourAtOnce_NeitherIsLost()
    {
        var tenant = await _h.TenantAsync(s_hour.AddHours(2));
        var (runA, runB) = (await RunRowAsync(tenant), await RunRowAsync(tenant));

        // A writes first and holds its transaction open; B's statement waits on A's row, then merges into it.
        await using var a = await DataSource.OpenConnectionAsync();
        await using var txA = await a.BeginTransactionAsync();
        await ExecuteAsync(a, txA, HourlyReflections.AddRun(tenant, runA, s_hour, Entry(runA, "a", 2)));
        var backendA = (int)(await TestDb.ScalarAsync(a, txA, "select pg_backend_pid()"))!;

        await using var b = await DataSource.OpenConnectionAsync();
        var backendB = (int)(await TestDb.ScalarAsync(b, null, "select pg_backend_pid()"))!;
        var writeB = Task.Run(async () =>
        {
            await using var txB = await b.BeginTransactionAsync();
            await ExecuteAsync(b, txB, HourlyReflections.AddRun(tenant, runB, s_hour, Entry(runB, "b", 3)));
            await txB.CommitAsync();
        });

        // B is blocked by A (not merely slow): wait until PostgreSQL says so, then let A commit.
        while (!writeB.IsCompleted && !(bool)(await _h.Db.ScalarAsync(
                   "select coalesce($2 = any (pg_blocking_pids($1)), false)", backendB, backendA))!)
        {
            await Task.Delay(20);
        }

        Assert.False(writeB.IsCompleted, "B should wait for A's uncommitted row");
        await txA.CommitAsync();
        await writeB;

        var row = await ReflectionAsync(tenant, s_hour);
        Assert.Equal(5, row["what_we_did"]!.AsArray().Count);
        Assert.Equal([runA.ToString(), runB.ToString()], row["run_ids"]!.AsArray().Select(id => (string)id!));
        Assert.StartsWith("Hour 2026-06-02 14:00 UTC, 2 runs: 5 actions taken", (string)row["summary"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SameRunsReflectionWrittenTwice_CountsOnce()
    {
        var tenant = await _h.TenantAsync(s_hour.AddHours(2));
        _h.Part.Targets[tenant] = [Guid.NewGuid(), Guid.NewGuid()];
        await _h.SetTimeAsync(s_hour);
        var run = await _h.Worker("w1").RunManualAsync(tenant, dryRun: false, hour: null, default);
        var before = await ReflectionAsync(tenant, s_hour);

        // A retried write of the run's reflection (the same entry again) changes nothing.
        var entry = before["runs"]![run.RunId.ToString()]!.AsObject();
        await using (var connection = await DataSource.OpenConnectionAsync())
        {
            await ExecuteAsync(connection, null, HourlyReflections.AddRun(tenant, run.RunId, s_hour, entry));
            await ExecuteAsync(connection, null, HourlyReflections.AddRun(tenant, run.RunId, s_hour, Entry(run.RunId, "replayed", 5)));
        }

        var after = await ReflectionAsync(tenant, s_hour);
        Assert.Equal(before.ToJsonString(), after.ToJsonString());
        Assert.Equal(2, after["what_we_did"]!.AsArray().Count);
    }

    [Fact]
    public async Task DryRun_InAnHourWithARun_WritesNoReflection()
    {
        var tenant = await _h.TenantAsync(s_hour.AddHours(2));
        _h.Part.Targets[tenant] = [Guid.NewGuid()];
        await _h.SetTimeAsync(s_hour);
        var worker = _h.Worker("w1");
        await worker.RunManualAsync(tenant, dryRun: false, hour: null, default);
        var before = await ReflectionAsync(tenant, s_hour);

        _h.Part.Targets[tenant] = [Guid.NewGuid(), Guid.NewGuid()];
        var dry = await worker.RunManualAsync(tenant, dryRun: true, hour: null, default);
        await worker.RunManualAsync(tenant, dryRun: true, hour: s_hour.AddHours(-5), default);

        Assert.Equal("completed", dry.Status);
        Assert.Equal(before.ToJsonString(), (await ReflectionAsync(tenant, s_hour)).ToJsonString());
        Assert.Equal(1L, await _h.Db.ScalarAsync("select count(*) from public.agent_hourly_reflections where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task ReflectionWrittenDirectly_ThenARunOfItsHour_BothKept()
    {
        var tenant = await _h.TenantAsync(s_hour.AddHours(2));
        await _h.Db.ExecuteAsync("""
            insert into public.agent_hourly_reflections (tenant_id, hour_bucket, what_we_did, summary)
            values ($1, $2, '[{"kind": "imported", "reason": "from the old system"}]', 'Imported from the old system.')
            """, tenant, s_hour);
        _h.Part.Targets[tenant] = [Guid.NewGuid()];
        await _h.SetTimeAsync(s_hour.AddMinutes(30));

        var run = await _h.Worker("w1").RunManualAsync(tenant, dryRun: false, hour: null, default);

        var row = await ReflectionAsync(tenant, s_hour);
        Assert.Equal(["imported", "test_effect"], row["what_we_did"]!.AsArray().Select(a => (string)a!["kind"]!));
        Assert.Equal(run.RunId.ToString(), (string?)row["run_id"]);
        var summary = (string)row["summary"]!;
        Assert.Contains("Run 1 (written directly, started ", summary, StringComparison.Ordinal);
        Assert.Contains("Imported from the old system.", summary, StringComparison.Ordinal);
        Assert.Contains("Run 2 (manual, started 14:30 UTC): Hour 2026-06-02 14:00 UTC. Took 1 action", summary, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("what_we_did", "'[]'::jsonb")]
    [InlineData("what_moved", "'{}'::jsonb")]
    [InlineData("summary", "'rewritten'")]
    [InlineData("run_ids", "'{}'::uuid[]")]
    public async Task RollUpColumn_WrittenDirectly_RefusedNamingIt(string column, string value)
    {
        var tenant = await _h.TenantAsync(s_hour.AddHours(2));
        _h.Part.Targets[tenant] = [Guid.NewGuid()];
        await _h.SetTimeAsync(s_hour);
        await _h.Worker("w1").RunManualAsync(tenant, dryRun: false, hour: null, default);
        var before = await ReflectionAsync(tenant, s_hour);

        var ex = await Assert.ThrowsAsync<PostgresException>(() => _h.Db.ExecuteAsync(
            $"update public.agent_hourly_reflections set {column} = {value} where tenant_id = $1", tenant));

        Assert.Equal(DerivedColumns.RefusedSqlState, ex.SqlState);
        Assert.Equal($"agent_hourly_reflections.{column} is the roll-up of the hour's runs and cannot be written directly", ex.MessageText);
        Assert.Contains("reflect_output", ex.Hint, StringComparison.Ordinal);
        Assert.Equal(before.ToJsonString(), (await ReflectionAsync(tenant, s_hour)).ToJsonString());
    }

    private static JsonObject Entry(Guid runId, string label, int actions) => new()
    {
        ["run_id"] = runId.ToString(),
        ["trigger"] = "manual",
        ["started_at"] = s_hour.AddMinutes(1).ToString("O"),
        ["what_we_did"] = new JsonArray(Enumerable.Range(0, actions)
            .Select(i => (JsonNode)new JsonObject { ["kind"] = "test_effect", ["reason"] = $"{label} {i}", ["status"] = "succeeded" }).ToArray()),
        ["what_moved"] = new JsonObject(),
        ["what_got_blocked"] = new JsonArray(),
        ["what_we_will_try_next"] = new JsonArray(),
        ["hypotheses"] = new JsonArray(),
        ["insights"] = new JsonObject(),
        ["summary"] = $"run {label}",
    };

    private async Task<Guid> RunRowAsync(Guid tenant) => (Guid)(await _h.Db.ScalarAsync("""
        insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, completed_at)
        values ($1, 'completed', 'manual', $2, $2, $2) returning id
        """, tenant, s_hour))!;

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, NpgsqlBatchCommand statement)
    {
        await using var batch = new NpgsqlBatch(connection, transaction);
        batch.BatchCommands.Add(statement);
        await batch.ExecuteNonQueryAsync();
    }

    private async Task<JsonObject> ReflectionAsync(Guid tenant, DateTimeOffset hour) =>
        JsonNode.Parse((string)(await _h.Db.ScalarAsync(
            "select to_jsonb(r)::text from public.agent_hourly_reflections r where tenant_id = $1 and hour_bucket = $2", tenant, hour))!)!.AsObject();
}
