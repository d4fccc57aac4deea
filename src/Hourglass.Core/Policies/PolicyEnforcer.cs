using Hourglass.Cycles;
using Npgsql;

namespace Hourglass.Policies;

/// <summary>A policy decision on one action.</summary>
internal enum PolicyVerdict
{
    Allow,
    Warn,
    RequireApproval,
    Deny,
}

/// <summary>One rule's finding on one action: what it decided, how severe, and why.</summary>
internal sealed record PolicyFinding(string RuleId, string RuleKind, PolicyVerdict Verdict, PolicySeverity Severity, string Message)
{
    public string SeverityName => Severity.ToString().ToLowerInvariant();
}

/// <summary>The decision with the rules that made it and the version of the policy document in force.</summary>
internal sealed record PolicyDecision(PolicyVerdict Verdict, IReadOnlyList<string> DeterminingRules, string? Message, string PolicyVersion) : IActionDecision
{
    public bool Permits => Verdict is PolicyVerdict.Allow or PolicyVerdict.Warn;

    /// <summary>Every rule that did not pass (warnings too, under a deny): each is recorded as a violation.</summary>
    public IReadOnlyList<PolicyFinding> Findings { get; init; } = [];

    public string VerdictName => Verdict switch
    {
        PolicyVerdict.Allow => "allow",
        PolicyVerdict.Warn => "warn",
        PolicyVerdict.RequireApproval => "require_approval",
        _ => "deny",
    };
}

/// <summary>
/// The single entry point every action passes before its handler runs: the cycle's <see cref="IActionPolicy"/> as the
/// Policies part implements it. Its decisions leave their records (PolicyRecords) in the action's transaction.
/// </summary>
internal interface IPolicyEnforcer : IActionPolicy
{
    /// <summary>Decides one action. An action it permits counts, from then on, against the cycle's caps and budgets.</summary>
    Task<PolicyDecision> EvaluateAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken);

    async Task<IActionDecision> IActionPolicy.DecideAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken) =>
        await EvaluateAsync(context, action, cancellationToken);

    Task IActionPolicy.RecordAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CycleContext context, ProposedAction action,
        string key, IActionDecision decision, CancellationToken cancellationToken) =>
        decision is PolicyDecision policyDecision
            ? PolicyRecords.WriteAsync(connection, transaction, context, action, key, policyDecision, cancellationToken)
            : Task.CompletedTask;
}

/// <summary>Allows everything: for tests and tools that exercise the cycle without policies.</summary>
internal sealed class AllowAllPolicyEnforcer : IPolicyEnforcer
{
    private static readonly PolicyDecision s_allow = new(PolicyVerdict.Allow, [], null, "none");

    public Task<PolicyDecision> EvaluateAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken) =>
        Task.FromResult(s_allow);
}
