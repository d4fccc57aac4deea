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

/// <summary>The decision with the rules that made it and the version of the policy document in force.</summary>
public sealed record PolicyDecision(PolicyVerdict Verdict, IReadOnlyList<string> DeterminingRules, string? Message, string PolicyVersion)
{
    public bool Permits => Verdict is PolicyVerdict.Allow or PolicyVerdict.Warn;

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
    Task<PolicyDecision> EvaluateAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken);
}

/// <summary>Allows everything: the enforcer in force until tenants have policy documents.</summary>
public sealed class AllowAllPolicyEnforcer : IPolicyEnforcer
{
    private static readonly PolicyDecision s_allow = new(PolicyVerdict.Allow, [], null, "none");

    public Task<PolicyDecision> EvaluateAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken) =>
        Task.FromResult(s_allow);
}
