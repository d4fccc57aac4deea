using Hourglass.Policies;

namespace Hourglass.Tests.Policies;

public sealed class TimingBlocksTests
{
    private static readonly TimeZoneInfo s_chicago = TimeZoneInfo.FindSystemTimeZoneById("America/Chicago");

    private static readonly PolicyDocument s_document = PolicyDocument.Parse("""
        {
          "schema": "hourglass.policy/v1",
          "actions": ["touch_task", "send_message"],
          "rules": [
            { "id": "business-hours", "kind": "send_window", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00" },
            { "id": "holidays", "kind": "holidays", "dates": ["2026-12-25"] },
            { "id": "weekly", "kind": "cap", "scope": "contact", "window": "week", "limit": 0 }
          ]
        }
        """);

    [Theory]
    [InlineData("2026-12-01T15:00:00Z", null)]                       // Tue 09:00 in Chicago
    [InlineData("2026-12-01T13:00:00Z", "business-hours")]           // Tue 07:00 in Chicago
    [InlineData("2026-12-05T18:00:00Z", "business-hours")]           // Sat noon
    [InlineData("2026-12-25T16:00:00Z", "holidays")]                 // a Friday, in the window, a holiday
    public void TimingBlocks_SendMessage_OnlyTheTimingRulesDecide(string at, string? rule)
    {
        var blocked = PolicyEvaluator.TimingBlocks(s_document, "send_message", (s_chicago, "contact"), DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture), TimeZoneInfo.Utc);

        // The cap of 0 would deny every touch, but it is not a timing rule: it is left to the enforcer.
        Assert.Equal(rule, blocked?.Split(':')[0]);
    }

    [Fact]
    public void TimingBlocks_TouchTask_SendWindowDoesNotApply() =>
        Assert.Null(PolicyEvaluator.TimingBlocks(s_document, "touch_task", (s_chicago, "contact"), new DateTimeOffset(2026, 12, 5, 18, 0, 0, TimeSpan.Zero), TimeZoneInfo.Utc));
}
