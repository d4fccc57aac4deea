using Hourglass.Cycles;
using Hourglass.Insights;
using Hourglass.Policies;

namespace Hourglass.Engagement;

/// <summary>
/// Leveling the touch wave (docs/engagement.md, "Leveling the wave"): what the email cap lets through on each of the days
/// ahead, read off the tenant's policy, for <c>hourglass.touch_candidates_ahead</c> to weigh against the clocks coming due.
/// </summary>
internal static class Leveling
{
    /// <summary>The channel leveling spends: the one a cap holds back and a message reaches without a person's work.</summary>
    public const string Channel = "email";

    /// <summary>The most days looked ahead; the tenant's <c>level_ahead_days</c> (default 7) takes fewer.</summary>
    public const int HorizonDays = 14;

    /// <summary>The policy's channel caps: <c>cap</c> rules of scope channel that deny messages.</summary>
    public static IEnumerable<PolicyRule> ChannelCaps(PolicyDocument policy) =>
        policy.Rules.Where(r => r is { Kind: "cap", Scope: CapScope.Channel, Decision: PolicyVerdict.Deny, Channel: not null } && r.AppliesToKind("send_message"));

    /// <summary>A strategy that sends an email.</summary>
    public static bool IsEmailStrategy(Strategy strategy) =>
        (string?)strategy.ActionTemplate["kind"] == "send_message" && ((string?)strategy.ActionTemplate["channel"] ?? Channel) == Channel;

    /// <summary>A proposal that sends an email.</summary>
    public static bool IsEmail(ProposedAction action) =>
        action.Kind == "send_message" && ((string?)action.Payload?["channel"] ?? Channel) == Channel;

    /// <summary>
    /// How many emails the policy lets through on each of the next <see cref="HorizonDays"/> days (day 0: the 24 hours from
    /// <paramref name="now"/>): for each email cap, its limit spread over the hours the send window and holidays leave open
    /// (an hourly cap of 10 and eight open hours: 80; a daily cap of 200: 200 on a day with open hours, 0 on a weekend; a
    /// weekly cap of 500 over five open days: 100 a day), the tightest cap winning. Empty when no cap holds email back:
    /// nothing then needs to start early.
    /// </summary>
    public static int[] DailyCapacity(PolicyDocument policy, TimeZoneInfo zone, DateTimeOffset now)
    {
        var caps = ChannelCaps(policy).Where(r => r.Channel == Channel).ToList();
        if (caps.Count == 0)
        {
            return [];
        }

        // Which of the horizon's hours a message may go out in (the tenant's zone: the send window and holidays).
        var hours = HorizonDays * 24;
        var open = new bool[hours];
        for (var h = 0; h < hours; h++)
        {
            open[h] = PolicyEvaluator.TimingBlocks(policy, "send_message", (zone, "tenant"), now.AddHours(h), zone) is null;
        }

        var capacity = new int[HorizonDays];
        for (var day = 0; day < HorizonDays; day++)
        {
            var openHours = open.Skip(day * 24).Take(24).Count(o => o);
            capacity[day] = caps.Min(rule => (int)Math.Min(int.MaxValue, (long)rule.Limit * openHours / OpenHoursPerWindow(open, PolicyEvaluator.Length(rule.Window))));
        }

        return capacity;
    }

    // The most open hours any one of the rule's windows holds within the horizon (at least one): what its limit is spread over.
    private static int OpenHoursPerWindow(bool[] open, TimeSpan window)
    {
        var length = (int)Math.Max(1, Math.Ceiling(window.TotalHours));
        if (length >= open.Length)
        {
            // A window longer than the horizon: the horizon's open hours, scaled to the window.
            return Math.Max(1, (int)Math.Ceiling((double)open.Count(o => o) * length / open.Length));
        }

        var inWindow = open.Take(length).Count(o => o);
        var most = inWindow;
        for (var start = 1; start + length <= open.Length; start++)
        {
            inWindow += (open[start + length - 1] ? 1 : 0) - (open[start - 1] ? 1 : 0);
            most = Math.Max(most, inWindow);
        }

        return Math.Max(1, most);
    }
}
