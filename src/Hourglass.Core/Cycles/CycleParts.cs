using System.Text.Json.Nodes;
using Npgsql;

namespace Hourglass.Cycles;

/// <summary>How a cycle was started.</summary>
internal enum CycleTrigger
{
    Schedule,
    Manual,
    CatchUp,
}

/// <summary>An action a part proposes in Plan: what, on what, why, and how urgent.</summary>
/// <param name="Kind">The handler that performs it (e.g. <c>touch_task</c>).</param>
/// <param name="TargetType">What it acts on (<c>contact</c>, <c>account</c>, <c>order</c>…), if anything.</param>
/// <param name="TargetId">The target's id, if any.</param>
/// <param name="Priority">Higher goes first when budgets cut the plan.</param>
/// <param name="Reason">Why, in words a person reads in the run record.</param>
/// <param name="Payload">What the handler needs.</param>
internal sealed record ProposedAction(string Kind, string? TargetType, Guid? TargetId, decimal Priority, string Reason, JsonObject? Payload = null)
{
    /// <summary>A key fixed elsewhere: an approved action runs under the key it was proposed with.</summary>
    public string? Key { get; init; }

    /// <summary>(tenant, hour, kind, target): the same action in the same hour is the same action.</summary>
    public string IdempotencyKey(DateTimeOffset hourBucket) =>
        Key ?? $"{hourBucket.UtcDateTime:yyyy-MM-ddTHH}Z/{Kind}/{TargetType ?? "-"}/{TargetId?.ToString() ?? "-"}";
}

/// <summary>What a part sees of the cycle it takes part in.</summary>
internal sealed class CycleContext
{
    internal CycleContext(Guid tenantId, Guid runId, DateTimeOffset hourBucket, DateTimeOffset now, CycleTrigger trigger, bool dryRun,
        TimeZoneInfo tenantZone, FencedDatabase database)
    {
        TenantId = tenantId;
        RunId = runId;
        HourBucket = hourBucket;
        Now = now;
        Trigger = trigger;
        DryRun = dryRun;
        TenantZone = tenantZone;
        Database = database;
    }

    public Guid TenantId { get; }

    public Guid RunId { get; }

    /// <summary>The UTC hour the cycle is for.</summary>
    public DateTimeOffset HourBucket { get; }

    public DateTimeOffset Now { get; }

    public CycleTrigger Trigger { get; }

    /// <summary>True when nothing may change: parts read, propose and explain only.</summary>
    public bool DryRun { get; }

    public TimeZoneInfo TenantZone { get; }

    /// <summary>Transactions fenced by the cycle's lease: a write commits only while the lease is ours.</summary>
    public FencedDatabase Database { get; }
}

/// <summary>A part's observations in React: what happened since the last cycle, in its terms.</summary>
internal sealed record PartReaction(JsonObject Observations, IReadOnlyList<Hypothesis> Hypotheses);

/// <summary>A hypothesis for the reflection, with the evidence (event or pattern ids) behind it.</summary>
internal sealed record Hypothesis(string Statement, decimal Confidence, IReadOnlyList<string> EvidenceIds);

/// <summary>
/// One part of the agent in the cycle. A part proposes actions in Plan, observes outcomes in React and
/// reports the numbers it moves in Reflect; the engine knows nothing else about it. Every member has a
/// do-nothing default, so a part implements only what it takes part in.
/// </summary>
internal interface ICyclePart
{
    string Name { get; }

    /// <summary>Actions this part would take this hour.</summary>
    Task<IReadOnlyList<ProposedAction>> ProposeAsync(CycleContext context, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ProposedAction>>([]);

    /// <summary>Outcomes and events since <paramref name="since"/> (the last cycle's start), fed back to the part.</summary>
    Task<PartReaction?> ReactAsync(CycleContext context, DateTimeOffset? since, CancellationToken cancellationToken) =>
        Task.FromResult<PartReaction?>(null);

    /// <summary>The part's headline numbers now (e.g. compliance %); Reflect reports how they moved.</summary>
    Task<IReadOnlyDictionary<string, decimal>> MeasureAsync(CycleContext context, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyDictionary<string, decimal>>(new Dictionary<string, decimal>());
}

/// <summary>Performs one kind of action, inside the fenced transaction that records it.</summary>
internal interface IActionHandler
{
    string Kind { get; }

    /// <summary>
    /// Does the action. Database effects go through <paramref name="connection"/> and
    /// <paramref name="transaction"/>: they commit together with the action's ledger row, exactly once.
    /// Effects outside the database go through an outbox written the same way. Returns what to record.
    /// </summary>
    Task<JsonObject?> ExecuteAsync(CycleContext context, ProposedAction action, NpgsqlConnection connection, NpgsqlTransaction transaction,
        CancellationToken cancellationToken);
}
