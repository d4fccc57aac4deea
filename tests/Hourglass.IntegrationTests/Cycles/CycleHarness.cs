using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Hourglass.IntegrationTests.Cycles;

/// <summary>
/// A simulated clock shared by the application (FakeTimeProvider) and the database (hourglass.freeze_time),
/// plus test parts: a part that proposes one action per listed target and a handler whose effect is a row
/// in <c>test_side_effects</c>, so a repeated side effect is visible as a second row.
/// </summary>
internal sealed class CycleHarness
{
    public CycleHarness(DatabaseFixture fixture, DateTimeOffset start)
    {
        Fixture = fixture;
        Clock = new FakeTimeProvider(start);
    }

    public DatabaseFixture Fixture { get; }

    public FakeTimeProvider Clock { get; }

    public TestDb Db => Fixture.Db;

    public TestPart Part { get; } = new();

    public SideEffectHandler Handler { get; } = new();

    public static async Task EnsureSideEffectTableAsync(TestDb db) =>
        await db.ExecuteAsync("create table if not exists public.test_side_effects (id bigserial primary key, tenant_id uuid, target uuid, hour timestamptz, run_id uuid)");

    /// <summary>Moves both clocks to <paramref name="at"/>.</summary>
    public async Task SetTimeAsync(DateTimeOffset at)
    {
        await Db.FreezeTimeAsync(at);
        if (at > Clock.GetUtcNow())
        {
            Clock.SetUtcNow(at);
        }
    }

    public CycleEngine Engine(TimeProvider? time = null, params ICyclePart[] extraParts) =>
        new(Fixture.DataSource, [Part, .. extraParts], [Handler], time: time ?? Clock);

    public CycleWorker Worker(string name, TimeProvider? time = null, int maxConcurrent = 4) =>
        new(Fixture.DataSource, time ?? Clock, Engine(time), new CycleWorkerOptions { WorkerId = name, LeaseMinutes = 2, MaxConcurrentCycles = maxConcurrent });

    /// <summary>Creates a tenant due at <paramref name="firstDue"/>.</summary>
    public async Task<Guid> TenantAsync(DateTimeOffset firstDue, string timezone = "UTC", string cron = CycleSchedule.Hourly)
    {
        var tenant = (Guid)(await Db.ScalarAsync("insert into public.tenants (name, timezone) values ($1, $2) returning id", $"t-{Guid.NewGuid():N}", timezone))!;
        await Db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = $2, cron = $3 where tenant_id = $1", tenant, firstDue, cron);
        return tenant;
    }

    public async Task<List<Run>> RunsAsync(Guid tenant)
    {
        await using var command = Fixture.DataSource.CreateCommand("""
            select id, status, trigger, scheduled_for, error, cycle_metrics, worker_id, actions_taken, actions_blocked
            from public.agent_autonomous_runs where tenant_id = $1 order by scheduled_for, started_at, created_at
            """);
        command.Parameters.Add(new() { Value = tenant });
        var runs = new List<Run>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            runs.Add(new Run(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3),
                reader.IsDBNull(4) ? null : reader.GetString(4), JsonNode.Parse(reader.GetString(5))!.AsObject(), reader.GetString(6),
                reader.GetInt32(7), reader.GetInt32(8)));
        }

        return runs;
    }

    public async Task<long> SideEffectsAsync(Guid tenant) =>
        (long)(await Db.ScalarAsync("select count(*) from public.test_side_effects where tenant_id = $1", tenant))!;

    internal sealed record Run(Guid Id, string Status, string Trigger, DateTimeOffset ScheduledFor, string? Error, JsonObject Metrics,
        string WorkerId, int ActionsTaken, int ActionsBlocked);
}

/// <summary>Proposes one <c>test_effect</c> action per target registered for the tenant; can be made to stall or throw.</summary>
internal sealed class TestPart : ICyclePart
{
    public ConcurrentDictionary<Guid, List<Guid>> Targets { get; } = new();

    /// <summary>When set for a tenant, Plan waits on it: a worker that stalls between transactions.</summary>
    public ConcurrentDictionary<Guid, TaskCompletionSource> PlanGates { get; } = new();

    public ConcurrentDictionary<Guid, string> FailMeasure { get; } = new();

    public string Name => "test";

    public async Task<IReadOnlyList<ProposedAction>> ProposeAsync(CycleContext context, CancellationToken cancellationToken)
    {
        if (PlanGates.TryGetValue(context.TenantId, out var gate))
        {
            await gate.Task.WaitAsync(cancellationToken);
        }

        return Targets.TryGetValue(context.TenantId, out var targets)
            ? targets.Select((t, i) => new ProposedAction("test_effect", "contact", t, 100 - i, $"test target {i}")).ToList()
            : [];
    }

    public Task<IReadOnlyDictionary<string, decimal>> MeasureAsync(CycleContext context, CancellationToken cancellationToken) =>
        FailMeasure.TryGetValue(context.TenantId, out var message)
            ? throw new InvalidOperationException(message)
            : Task.FromResult<IReadOnlyDictionary<string, decimal>>(new Dictionary<string, decimal> { ["targets"] = Targets.GetValueOrDefault(context.TenantId)?.Count ?? 0 });
}

/// <summary>Writes one test_side_effects row per action; throws for targets in <see cref="FailTargets"/>; tracks concurrency per tenant.</summary>
internal sealed class SideEffectHandler : IActionHandler
{
    private readonly ConcurrentDictionary<Guid, int> _inFlight = new();

    public ConcurrentDictionary<Guid, int> FailTargets { get; } = new();

    public ConcurrentDictionary<Guid, Func<Task>> BeforeEffect { get; } = new();

    public int MaxConcurrentPerTenant { get; private set; }

    public string Kind => "test_effect";

    public async Task<JsonObject?> ExecuteAsync(CycleContext context, ProposedAction action, NpgsqlConnection connection, NpgsqlTransaction transaction,
        CancellationToken cancellationToken)
    {
        var now = _inFlight.AddOrUpdate(context.TenantId, 1, (_, n) => n + 1);
        lock (_inFlight)
        {
            MaxConcurrentPerTenant = Math.Max(MaxConcurrentPerTenant, now);
        }

        try
        {
            if (BeforeEffect.TryGetValue(context.TenantId, out var before))
            {
                await before();
            }

            if (FailTargets.TryGetValue(action.TargetId!.Value, out var remaining) && remaining > 0)
            {
                FailTargets[action.TargetId.Value] = remaining - 1;
                throw new InvalidOperationException($"simulated failure for {action.TargetId}");
            }

            await using var command = new NpgsqlCommand(
                "insert into public.test_side_effects (tenant_id, target, hour, run_id) values ($1, $2, $3, $4)", connection, transaction);
            command.Parameters.Add(new() { Value = context.TenantId });
            command.Parameters.Add(new() { Value = action.TargetId!.Value });
            command.Parameters.Add(new() { Value = context.HourBucket });
            command.Parameters.Add(new() { Value = context.RunId });
            await command.ExecuteNonQueryAsync(cancellationToken);
            return new JsonObject { ["written"] = true };
        }
        finally
        {
            _inFlight.AddOrUpdate(context.TenantId, 0, (_, n) => n - 1);
        }
    }
}
