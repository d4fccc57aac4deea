using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Policies;

/// <summary>A hypothetical action's decision under a tenant's policy, with every rule's verdict and why.</summary>
internal sealed record PolicyExplanation(PolicyVersion Policy, PolicyAction Action, TargetFacts Facts, PolicyDecision Decision, IReadOnlyList<RuleTrace> Trace);

/// <summary>
/// "What would the policy say if the agent did this now (or at some moment)?" The same evaluator the cycle uses,
/// with the same facts read from the database: the document in force, the touches of the 7 days before the moment,
/// and the target's facts. Writes nothing.
/// </summary>
internal static class PolicyExplainer
{
    public static async Task<PolicyExplanation> ExplainAsync(NpgsqlDataSource dataSource, Guid tenantId, PolicyAction action, DateTimeOffset at,
        CancellationToken cancellationToken = default)
    {
        var policy = await PolicyStore.InForceAsync(dataSource, tenantId, cancellationToken);
        var zoneId = await TenancyStore.TimezoneAsync(dataSource, tenantId, cancellationToken) ?? throw new HourglassException($"tenant {tenantId} does not exist");
        var tenantZone = TimeZoneInfo.TryFindSystemTimeZoneById(zoneId, out var zone) ? zone : TimeZoneInfo.Utc;

        var history = new PolicyHistory();
        await DocumentPolicyEnforcer.LoadHistoryAsync(dataSource, tenantId, at, excludeHour: null, history, cancellationToken);
        var facts = TargetFacts.None(tenantZone);
        if (DocumentPolicyEnforcer.Subject(action) is { } subject)
        {
            var loaded = await DocumentPolicyEnforcer.LoadFactsAsync(dataSource, tenantId, tenantZone, [subject], cancellationToken);
            facts = loaded[subject];
        }

        var trace = new List<RuleTrace>();
        var decision = PolicyEvaluator.Evaluate(policy.Document, policy.Version, action, facts, history, at, tenantZone, trace);
        return new PolicyExplanation(policy, action, facts, decision, trace);
    }
}
