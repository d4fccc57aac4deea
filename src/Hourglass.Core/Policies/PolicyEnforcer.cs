using Hourglass.Cycles;

namespace Hourglass.Policies;

/// <summary>A policy decision on one action.</summary>
public enum PolicyVerdict
{
    Allow,
    Warn,
    RequireApproval,
    Deny,
}

/// <summary>One rule's finding on one action: what it decided, how severe, and why.</summary>
public sealed record PolicyFinding(string RuleId, string RuleKind, PolicyVerdict Verdict, PolicySeverity Severity, string Message)
{
    public string SeverityName => Severity.ToString().ToLowerInvariant();
}

/// <summary>The decision with the rules that made it and the version of the policy document in force.</summary>
public sealed record PolicyDecision(PolicyVerdict Verdict, IReadOnlyList<string> DeterminingRules, string? Message, string PolicyVersion)
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

/// <summary>The single entry point every action passes before its handler runs.</summary>
public interface IPolicyEnforcer
{
    /// <summary>Called once before a cycle's actions are evaluated, with all of them: a chance to load what they need in one go.</summary>
    Task PrepareAsync(CycleContext context, IReadOnlyList<ProposedAction> actions, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Decides one action. An action it permits counts, from then on, against the cycle's caps and budgets.</summary>
    Task<PolicyDecision> EvaluateAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken);
}

/// <summary>Allows everything: for tests and tools that exercise the cycle without policies.</summary>
public sealed class AllowAllPolicyEnforcer : IPolicyEnforcer
{
    private static readonly PolicyDecision s_allow = new(PolicyVerdict.Allow, [], null, "none");

    public Task<PolicyDecision> EvaluateAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken) =>
        Task.FromResult(s_allow);
}
