using System.Globalization;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Hourglass.Policies;

namespace Hourglass.Tests.Policies;

/// <summary>
/// The policy evaluator's timing: <see cref="PolicyEvaluator.TimingBlocks"/>, which timing rule (send window, holidays)
/// holds a message at an instant, and <see cref="PolicyEvaluator.NextTimingOpening"/>, when the outbox may send a message
/// the send window (or a holiday) holds — the first instant the evaluator's own <see cref="PolicyEvaluator.TimingBlocks"/> lets it through, across
/// weekends, holidays and daylight-saving changes.
/// </summary>
public sealed class PolicyEvaluatorTimingTests
{
    private static readonly TimeZoneInfo s_berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
    private static readonly TimeZoneInfo s_newYork = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
    private static readonly TimeSpan s_horizon = TimeSpan.FromDays(14);

    private static PolicyDocument Document(string start, string end, string days = "\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"", string holidays = "") =>
        PolicyDocument.Parse($$"""
            {
              "schema": "hourglass.policy/v1",
              "actions": ["send_message"],
              "rules": [
                { "id": "business-hours", "kind": "send_window", "days": [{{days}}], "start": "{{start}}", "end": "{{end}}" }
                {{(holidays.Length == 0 ? "" : $", {{ \"id\": \"holidays\", \"kind\": \"holidays\", \"dates\": [{holidays}] }}")}}
              ]
            }
            """);

    private static DateTimeOffset At(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    [Theory]
    // Inside the window: now.
    [InlineData("2026-12-01T09:00:00Z", "2026-12-01T09:00:00Z")]
    // Tue 07:00 Berlin: 08:00 Berlin the same day (07:00 UTC).
    [InlineData("2026-12-01T06:00:00Z", "2026-12-01T07:00:00Z")]
    // Fri 19:00 Berlin: Monday 08:00.
    [InlineData("2026-12-04T18:00:00Z", "2026-12-07T07:00:00Z")]
    // Sat noon: Monday 08:00.
    [InlineData("2026-12-05T11:00:00Z", "2026-12-07T07:00:00Z")]
    public void NextTimingOpening_OutsideTheWindow_TheNextStartInTheRecipientsZone(string now, string expected)
    {
        var opening = PolicyEvaluator.NextTimingOpening(Document("08:00", "18:00"), "send_message", (s_berlin, "contact"), At(now), TimeZoneInfo.Utc, s_horizon);

        Assert.Equal(At(expected), opening);
    }

    [Fact]
    public void NextTimingOpening_HolidayInTheTenantsZone_OpensTheNextWorkingMorning()
    {
        // Thursday 2026-12-24 and Friday 2026-12-25 are holidays; Wednesday evening after the window.
        var document = Document("08:00", "18:00", holidays: "\"2026-12-24\", \"2026-12-25\"");

        var opening = PolicyEvaluator.NextTimingOpening(document, "send_message", (s_berlin, "contact"), At("2026-12-23T18:30:00Z"), s_berlin, s_horizon);

        Assert.Equal(At("2026-12-28T07:00:00Z"), opening);
    }

    [Fact]
    public void NextTimingOpening_WindowStartsInTheSkippedHour_OpensAtTheTransition()
    {
        // 2026-03-08: New York skips 02:00-03:00. A window from 02:30 opens when the clocks jump, at 03:00 EDT (07:00 UTC).
        var opening = PolicyEvaluator.NextTimingOpening(Document("02:30", "05:00", days: "\"sun\""), "send_message", (s_newYork, "contact"),
            At("2026-03-08T05:00:00Z"), s_newYork, s_horizon);

        Assert.Equal(At("2026-03-08T07:00:00Z"), opening);
    }

    [Fact]
    public void NextTimingOpening_WindowStartsInTheRepeatedHour_OpensAtItsFirstOccurrence()
    {
        // 2026-11-01: New York repeats 01:00-02:00. 01:30 first happens at 05:30 UTC (EDT).
        var opening = PolicyEvaluator.NextTimingOpening(Document("01:30", "05:00", days: "\"sun\""), "send_message", (s_newYork, "contact"),
            At("2026-11-01T03:00:00Z"), s_newYork, s_horizon);

        Assert.Equal(At("2026-11-01T05:30:00Z"), opening);
    }

    [Fact]
    public void NextTimingOpening_NoOpeningWithinTheHorizon_Null()
    {
        var dates = string.Join(", ", Enumerable.Range(0, 20).Select(d => $"\"{new DateOnly(2026, 12, 1).AddDays(d):yyyy-MM-dd}\""));

        Assert.Null(PolicyEvaluator.NextTimingOpening(Document("08:00", "18:00", holidays: dates), "send_message", (s_berlin, "contact"),
            At("2026-12-01T12:00:00Z"), TimeZoneInfo.Utc, s_horizon));
    }

    // Whatever the window, days, holidays, zones and moment: the opening is allowed by TimingBlocks, and every minute
    // before it (from now) is blocked — so it is the first moment the evaluator would let the message go.
    [Property(MaxTest = 60)]
    public Property NextTimingOpening_IsTheFirstAllowedMinute()
    {
        var zones = new[] { "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "America/Santiago" };
        var inputs = from startHour in Gen.Choose(0, 23)
                     from startMinute in Gen.Elements(0, 15, 30, 45)
                     from lengthMinutes in Gen.Choose(15, 24 * 60 - 15)
                     from dayMask in Gen.Choose(1, 127)
                     from holidayOffsets in Gen.Choose(0, 9).ArrayOf(2)
                     from target in Gen.Elements(zones)
                     from tenant in Gen.Elements(zones)
                     // Any minute of 2026, the daylight-saving changes of both hemispheres included.
                     from minute in Gen.Choose(0, 365 * 24 * 60)
                     select (startHour, startMinute, lengthMinutes, dayMask, holidayOffsets, target, tenant, minute);
        return Prop.ForAll(inputs.ToArbitrary(), input =>
        {
            var (startHour, startMinute, lengthMinutes, dayMask, holidayOffsets, targetId, tenantId, minute) = input;
            var start = new TimeOnly(startHour, startMinute);
            var endMinutes = Math.Min(startHour * 60 + startMinute + lengthMinutes, 24 * 60);
            var end = endMinutes == 24 * 60 ? "24:00" : new TimeOnly(endMinutes / 60, endMinutes % 60).ToString("HH:mm", CultureInfo.InvariantCulture);
            string[] names = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
            var days = string.Join(", ", Enumerable.Range(0, 7).Where(d => (dayMask & (1 << d)) != 0).Select(d => $"\"{names[d]}\""));
            var now = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddMinutes(minute);
            var holidays = string.Join(", ", holidayOffsets.Distinct().Select(d => $"\"{DateOnly.FromDateTime(now.UtcDateTime).AddDays(d):yyyy-MM-dd}\""));
            var document = Document(start.ToString("HH:mm", CultureInfo.InvariantCulture), end, days, holidays);
            var target = (TimeZoneInfo.FindSystemTimeZoneById(targetId), "contact");
            var tenantZone = TimeZoneInfo.FindSystemTimeZoneById(tenantId);
            var horizon = TimeSpan.FromDays(12);

            var opening = PolicyEvaluator.NextTimingOpening(document, "send_message", target, now, tenantZone, horizon);

            // Every minute from now up to the opening (or the horizon) is blocked; the opening itself is not.
            var until = opening ?? now + horizon;
            for (var at = now; at < until; at = at.AddMinutes(1))
            {
                if (PolicyEvaluator.TimingBlocks(document, "send_message", target, at, tenantZone) is null)
                {
                    return false.Label($"allowed at {at:u}, before the opening {opening:u}");
                }
            }

            return opening is null
                ? true.Label("no opening within the horizon")
                : (opening >= now && PolicyEvaluator.TimingBlocks(document, "send_message", target, opening.Value, tenantZone) is null)
                    .Label($"opening {opening:u} is blocked or before {now:u}");
        });
    }

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
