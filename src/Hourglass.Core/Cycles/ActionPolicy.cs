using Npgsql;

namespace Hourglass.Cycles;

/// <summary>What the cycle needs to know of a policy's decision on one action.</summary>
internal interface IActionDecision
{
    /// <summary>True when the action may run (allowed, perhaps with a warning).</summary>
    bool Permits { get; }

    /// <summary>The verdict as recorded (agent_actions.decision).</summary>
    string VerdictName { get; }

    /// <summary>The rules that made the decision.</summary>
    IReadOnlyList<string> DeterminingRules { get; }

    /// <summary>Why, when the action may not run.</summary>
    string? Message { get; }

    /// <summary>The version of the policy in force.</summary>
    string PolicyVersion { get; }
}

/// <summary>
/// The gate every action passes before its handler runs. Cycles owns this contract; the Policies part implements it
/// (<c>IPolicyEnforcer</c>), so the engine never reaches into Policies.
/// </summary>
internal interface IActionPolicy
{
    /// <summary>Called once before a cycle's actions are decided, with all of them: a chance to load what they need in one go.</summary>
    Task PrepareAsync(CycleContext context, IReadOnlyList<ProposedAction> actions, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Decides one action. An action it permits counts, from then on, against the cycle's caps and budgets.</summary>
    Task<IActionDecision> DecideAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken);

    /// <summary>
    /// Writes what the decision leaves behind (violations, approvals, a pause) in the transaction that records the action
    /// in the ledger, so both commit or neither does.
    /// </summary>
    Task RecordAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CycleContext context, ProposedAction action, string key,
        IActionDecision decision, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Permits everything and records nothing: the engine's default when it is given no policy.</summary>
internal sealed class PermitEverything : IActionPolicy
{
    private static readonly Decision s_permit = new();

    public Task<IActionDecision> DecideAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken) =>
        Task.FromResult<IActionDecision>(s_permit);

    private sealed class Decision : IActionDecision
    {
        public bool Permits => true;

        public string VerdictName => "allow";

        public IReadOnlyList<string> DeterminingRules => [];

        public string? Message => null;

        public string PolicyVersion => "none";
    }
}
