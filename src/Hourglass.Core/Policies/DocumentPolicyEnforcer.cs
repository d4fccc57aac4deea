using System.Runtime.CompilerServices;
using Hourglass.Cycles;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Policies;

/// <summary>
/// The enforcer in force: each cycle evaluates its actions against the tenant's policy document (or the built-in
/// default). Before the cycle's Act it loads, in two queries, the touches of the last 7 days (the longest rolling
/// window; this hour's own actions excluded, so a replayed hour decides the same) and the facts about every target;
/// then each decision is in-process (<see cref="PolicyEvaluator"/>). Each permitted action counts at once against
/// the caps and the budget, so no sequence of actions in a cycle can take a cap past its limit.
/// </summary>
internal sealed class DocumentPolicyEnforcer(NpgsqlDataSource dataSource) : IPolicyEnforcer
{
    private readonly ConditionalWeakTable<CycleContext, CycleState> _cycles = [];

    public async Task PrepareAsync(CycleContext context, IReadOnlyList<ProposedAction> actions, CancellationToken cancellationToken)
    {
        var state = new CycleState(await PolicyStore.InForceAsync(dataSource, context.TenantId, cancellationToken), new PolicyHistory());
        await LoadHistoryAsync(dataSource, context.TenantId, context.Now, context.HourBucket, state.History, cancellationToken);
        var subjects = actions.Select(a => Subject(PolicyAction.From(a))).OfType<Guid>().Distinct().ToArray();
        foreach (var (id, facts) in await LoadFactsAsync(dataSource, context.TenantId, context.TenantZone, subjects, cancellationToken))
        {
            state.Facts[id] = facts;
        }

        _cycles.AddOrUpdate(context, state);
    }

    public async Task<PolicyDecision> EvaluateAsync(CycleContext context, ProposedAction action, CancellationToken cancellationToken)
    {
        if (!_cycles.TryGetValue(context, out var state))
        {
            await PrepareAsync(context, [action], cancellationToken);
            state = _cycles.TryGetValue(context, out var prepared) ? prepared : throw new InvalidOperationException("policy state not prepared");
        }

        var policyAction = PolicyAction.From(action);
        var facts = TargetFacts.None(context.TenantZone);
        if (Subject(policyAction) is { } subject && !state.Facts.TryGetValue(subject, out facts!))
        {
            var loaded = await LoadFactsAsync(dataSource, context.TenantId, context.TenantZone, [subject], cancellationToken);
            facts = state.Facts[subject] = loaded.TryGetValue(subject, out var f) ? f : TargetFacts.None(context.TenantZone);
        }

        var decision = PolicyEvaluator.Evaluate(state.Policy.Document, state.Policy.Version, policyAction, facts, state.History, context.Now, context.TenantZone);
        if (decision.Permits)
        {
            state.History.RecordPermitted(policyAction, context.Now);
        }

        return decision;
    }

    /// <summary>Whose facts decide: the contact touched, else the account, else the target itself.</summary>
    public static Guid? Subject(PolicyAction action) => action.ContactId ?? action.AccountId ?? action.TargetId;

    /// <summary>
    /// The tenant's touches in the 7 days before <paramref name="now"/>, outside <paramref name="excludeHour"/>. A message
    /// that never went out — suppressed when it was enqueued or when it was to be sent, or cancelled — is not a touch.
    /// </summary>
    public static async Task LoadHistoryAsync(NpgsqlDataSource dataSource, Guid tenantId, DateTimeOffset now, DateTimeOffset? excludeHour,
        PolicyHistory history, CancellationToken cancellationToken)
    {
        foreach (var (at, target, channel) in await ActionLedger.TouchHistoryAsync(dataSource, tenantId, now, excludeHour, cancellationToken))
        {
            history.AddPast(channel, target, at);
        }
    }

    /// <summary>
    /// The facts for contacts or accounts (by id): time zone, do-not-contact, credit hold, open touches (an open touch card or
    /// approval, or a message waiting to go out), last touch.
    /// </summary>
    public static async Task<Dictionary<Guid, TargetFacts>> LoadFactsAsync(NpgsqlDataSource dataSource, Guid tenantId, TimeZoneInfo tenantZone,
        Guid[] subjects, CancellationToken cancellationToken)
    {
        var facts = new Dictionary<Guid, TargetFacts>();
        if (subjects.Length == 0)
        {
            return facts;
        }

        foreach (var row in await TenancyStore.SubjectFactsAsync(dataSource, tenantId, subjects, cancellationToken))
        {
            var (zone, source) = Zone(row.ContactZone, "contact") ?? Zone(row.AccountZone, "account") ?? (tenantZone, "tenant");
            facts[row.Id] = new TargetFacts(zone, source, row.Refusal, row.CreditHold, row.Pending, row.LastTouchAt);
        }

        return facts;
    }

    private static (TimeZoneInfo, string)? Zone(string? id, string source) =>
        id is not null && TimeZoneInfo.TryFindSystemTimeZoneById(id, out var zone) ? (zone, source) : null;

    private sealed record CycleState(PolicyVersion Policy, PolicyHistory History)
    {
        public Dictionary<Guid, TargetFacts> Facts { get; } = [];
    }
}
