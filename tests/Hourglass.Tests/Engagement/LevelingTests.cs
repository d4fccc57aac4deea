using Hourglass.Engagement;
using Hourglass.Policies;

namespace Hourglass.Tests.Engagement;

/// <summary>
/// What the email cap lets through on each day ahead, as leveling weighs it against the clocks coming due: the cap's limit
/// spread over the hours the send window leaves open, the tightest cap winning, nothing on a closed day.
/// </summary>
public sealed class LevelingTests
{
    // A Monday, midnight UTC: day 0 is Monday, days 5 and 6 the weekend.
    private static readonly DateTimeOffset s_monday = new(2026, 1, 5, 0, 0, 0, TimeSpan.Zero);

    private const string Weekdays = """{"id": "hours", "kind": "send_window", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}""";

    [Theory]
    [InlineData("day", 200, 200)]
    [InlineData("hour", 10, 80)]
    [InlineData("week", 500, 100)]
    public void EmailCap_InAWeekdayWindow_SpreadOverTheOpenHours_NothingAtTheWeekend(string window, int limit, int perWeekday)
    {
        var policy = Policy(Weekdays, Cap("email", window, limit));

        var capacity = Leveling.DailyCapacity(policy, TimeZoneInfo.Utc, s_monday);

        Assert.Equal(Leveling.HorizonDays, capacity.Length);
        Assert.Equal([perWeekday, perWeekday, perWeekday, perWeekday, perWeekday, 0, 0], capacity[..7]);
        Assert.Equal(capacity[..7], capacity[7..14]);
    }

    [Fact]
    public void TwoEmailCaps_TheTighterWinsEachDay()
    {
        // 30 an hour over eight hours is 240 a day, more than the daily 200; 5 an hour is 40, less.
        Assert.Equal(200, Leveling.DailyCapacity(Policy(Weekdays, Cap("email", "day", 200), Cap("email", "hour", 30)), TimeZoneInfo.Utc, s_monday)[0]);
        Assert.Equal(40, Leveling.DailyCapacity(Policy(Weekdays, Cap("email", "day", 200), Cap("email", "hour", 5)), TimeZoneInfo.Utc, s_monday)[0]);
    }

    [Fact]
    public void NoSendWindow_EveryDayOpen_ADailyCapIsItsLimit()
    {
        Assert.All(Leveling.DailyCapacity(Policy(Cap("email", "day", 50)), TimeZoneInfo.Utc, s_monday), day => Assert.Equal(50, day));
    }

    [Fact]
    public void TheWindowIsReadInTheTenantsZone()
    {
        // Tokyo is UTC+9: from Friday 15:00 UTC on (Saturday 00:00 in Tokyo) the first day is Tokyo's Saturday, closed.
        var tokyo = TimeZoneInfo.FindSystemTimeZoneById("Asia/Tokyo");
        var capacity = Leveling.DailyCapacity(Policy(Weekdays, Cap("email", "day", 100)), tokyo, s_monday.AddDays(4).AddHours(15));

        Assert.Equal([0, 0, 100, 100], capacity[..4]);
    }

    [Fact]
    public void NoEmailCap_NothingToLevel()
    {
        Assert.Empty(Leveling.DailyCapacity(Policy(Weekdays), TimeZoneInfo.Utc, s_monday));
        Assert.Empty(Leveling.DailyCapacity(Policy(Weekdays, Cap("webhook", "day", 10)), TimeZoneInfo.Utc, s_monday));
        Assert.Empty(Leveling.DailyCapacity(Policy(Weekdays, """{"id": "t", "kind": "cap", "scope": "tenant", "window": "day", "limit": 10}"""),
            TimeZoneInfo.Utc, s_monday));
        // A cap that only warns holds nothing back.
        Assert.Empty(Leveling.DailyCapacity(Policy(
            """{"id": "w", "kind": "cap", "scope": "channel", "channel": "email", "window": "day", "limit": 10, "decision": "warn", "severity": "info"}"""),
            TimeZoneInfo.Utc, s_monday));
    }

    private static string Cap(string channel, string window, int limit) =>
        $$"""{"id": "{{channel}}-{{window}}-{{limit}}", "kind": "cap", "scope": "channel", "channel": "{{channel}}", "window": "{{window}}", "limit": {{limit}}}""";

    private static PolicyDocument Policy(params string[] rules) => PolicyDocument.Parse($$"""
        {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"], "rules": [{{string.Join(", ", rules)}}]}
        """);
}
