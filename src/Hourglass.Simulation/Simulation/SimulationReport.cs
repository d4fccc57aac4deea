using System.Text.Json;
using System.Text.Json.Serialization;

namespace Hourglass.Simulation;

/// <summary>
/// What a simulation reached, as data: the same seed and settings give the same report, except <see cref="Timing"/>.
/// Written as JSON (<see cref="ToJson"/>), as an HTML page with charts (<see cref="SimulationHtml"/>) and summarized in
/// the terminal by <c>hourglass simulate</c>.
/// </summary>
internal sealed record SimulationReport(
    SimulationSettings Settings,
    IReadOnlyList<TenantSummary> Tenants,
    IReadOnlyList<SimulationGoal> Goals,
    ComplianceResult Compliance,
    CapResult Caps,
    IReadOnlyList<DayPoint> Days,
    OrderResult Orders,
    StrategyResult Strategies,
    CycleOutcomes Cycles,
    InboundResult Inbound,
    SimulationTiming? Timing)
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public bool AllGoalsMet => Goals.All(g => g.Met);

    public string ToJson() => JsonSerializer.Serialize(this, s_json);

    /// <summary>The report without its timing: what the same seed must reproduce exactly.</summary>
    public string DeterministicJson() => (this with { Timing = null }).ToJson();
}

internal sealed record SimulationSettings(
    long Seed, int Tenants, int ContactsPerTenant, int ContactsPerAccount, int Days, DateTimeOffset Start, int OwnersPerTenant, int DueSoonDays,
    int EmailDailyCap, int ContactWeeklyCap, int ApprovalEveryNthTenant, double FixableShare, double UnfixableShare,
    double MeanDaysBetweenOrders, double ManualTouchesPerContactDay, int Concurrency, double DeadAddressShare = 0, double SoftBounceRate = 0,
    double ComplaintRate = 0, double UnsubscribeRate = 0, double OutOfOfficeShare = 0, int LevelAheadDays = 0);

internal sealed record TenantSummary(string Name, string TimeZone, bool ApprovesMessages, int Accounts, int Contacts, int OrdersPlanned,
    IReadOnlyList<string> Holidays);

internal sealed record SimulationGoal(string Key, string Description, string Target, string Reached, bool Met);

/// <summary>Hourly share of all clocks (contacts and accounts) past due, before anyone acts in that hour.</summary>
internal sealed record ComplianceResult(int FromDay, double StartShare, double WorstShare, double WorstTenantShare, int HoursOverGoal,
    OverdueCauses OverdueClockHours, IReadOnlyList<HourPoint> Hourly);

/// <summary>
/// From <see cref="ComplianceResult.FromDay"/>, the hours clocks spent overdue (one clock overdue for one hour is one),
/// by what stood for each: an open touch card, an undecided approval, a message not yet sent, or nothing.
/// </summary>
internal sealed record OverdueCauses(long TouchCardOpen, long ApprovalOpen, long MessageUnsent, long NothingOpen);

/// <summary>
/// One simulated hour's compliance: the share of all clocks overdue, the worst tenant's share, the overdue count, and — when
/// a tenant had any overdue — which tenant was worst and what stood for its overdue clocks.
/// </summary>
internal sealed record HourPoint(int Hour, double OverdueShare, double WorstTenantShare, long Overdue, string? WorstTenant = null,
    OverdueCauses? WorstTenantCauses = null);

/// <summary>The caps and the most any rolling window reached, from the ledger (agent actions) and the outbox (messages sent).</summary>
internal sealed record CapResult(int EmailDailyCap, long EmailPeak24h, long SentPeak24h, int ContactWeeklyCap, long ContactPeak7d, long SentOutsideWindow);

internal sealed record DayPoint(int Day, int Messages, int Calls, int ManualTouches, int Replies, int Orders);

internal sealed record OrderResult(
    long Clean, long CleanReleased, long Fixable, long FixableAutoResolved, long FixableExceptions, long Unfixable, long UnfixableReleased,
    long UnfixableExceptions, long Unprocessed, IReadOnlyList<DefectRow> ByDefect);

internal sealed record DefectRow(string Defect, long Placed, long Released, long Fixed, long Exceptions, long Other);

/// <summary>
/// Per tenant and strategy: the world's true success rate (a reply, or an order within the attribution window) from
/// <see cref="FromDay"/>, how often the agent chose it, and the agent's own estimate (its posterior mean).
/// </summary>
internal sealed record StrategyResult(int FromDay, double ChosenToBestRatio, double RealizedSuccessRate, long Touches, IReadOnlyList<TenantStrategies> Tenants);

internal sealed record TenantStrategies(string Tenant, IReadOnlyList<StrategyRow> Strategies, string Best, double ChosenRate, double BestRate, double Ratio,
    long Touches, double RealizedRate);

internal sealed record StrategyRow(string Key, double TrueRate, long ChosenAll, long ChosenLate, int AgentUses, int AgentSuccesses, decimal AgentEstimate);

/// <summary>
/// Runs by status; approvals people granted and rejected; and the decisions the database refused them because the card was
/// no longer open (by function and the card's status: "decide_approval: expired"…), which people take as an answer.
/// </summary>
internal sealed record CycleOutcomes(IReadOnlyDictionary<string, long> Runs, int ApprovalsGranted, int ApprovalsRejected,
    IReadOnlyDictionary<string, long> RefusedDecisions);

/// <summary>
/// What the world answered about the agent's emails, through the inbound recorder: the events by type (out-of-office
/// auto-replies apart), what the recorder did with each ("reply: recorded, touch_recorded"…); emails the outbox sent after
/// their address was suppressed or their contact opted out, and (the world's own count) messages that reached a contact
/// after it had bounced hard, complained or unsubscribed; replies checked at the end of the hour they arrived, and how many
/// had moved their contact's clock.
/// </summary>
internal sealed record InboundResult(IReadOnlyDictionary<string, long> Answers, IReadOnlyDictionary<string, long> Outcomes, long SentAfterSuppression,
    long SentAfterWorldAnswer, long RepliesChecked, long RepliesMovedClock);

/// <summary>Where the wall time went: seeding, and per stage of the hour loop (seconds); cycles per second of the cycle stage; the cycles' mean phase times (ms).</summary>
internal sealed record SimulationTiming(double TotalSeconds, double SeedSeconds, IReadOnlyDictionary<string, double> StageSeconds, double CyclesPerSecond,
    IReadOnlyDictionary<string, double> CyclePhaseMs);
