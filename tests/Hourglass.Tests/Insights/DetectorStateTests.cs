using System.Globalization;
using System.Text;
using System.Text.Json;
using Hourglass.Insights;

namespace Hourglass.Tests.Insights;

/// <summary>
/// The typed detector states as stored: a state written and read back between any two events folds on to exactly the
/// patterns of one uninterrupted fold (what makes incremental detection equal to full), and states in the JSON the
/// JSON-node detectors wrote still read.
/// </summary>
public sealed class DetectorStateTests
{
    private static readonly DateTimeOffset s_start = new(2026, 1, 5, 9, 0, 0, TimeSpan.Zero); // a Monday
    private static readonly DateTimeOffset s_now = s_start.AddDays(400);
    private static readonly Guid s_account = Guid.Parse("6d3c1f4e-0000-4000-8000-0000000000a1");
    private static readonly Guid s_contact = Guid.Parse("6d3c1f4e-0000-4000-8000-0000000000c1");
    private static readonly TimeZoneInfo s_chicago = TimeZoneInfo.FindSystemTimeZoneById("America/Chicago");

    [Fact]
    public void Orders_StoredAndReadBackAtEverySplit_SamePatternsAsOneFold()
    {
        // 45 orders (more than the 32 ids remembered), irregular gaps and totals, each order's id seen twice (placed,
        // then validated two events later), so a split can fall between an order's two events.
        var events = new List<InsightEvent>();
        for (var i = 0; i < 45; i++)
        {
            var at = s_start.AddDays(i * 9 + i % 4 * 2.5).AddMinutes(i * 7);
            var order = $"o-{i}";
            events.Add(Event("order_placed", "account", s_account, at, $$"""{"order_id": "{{order}}", "total": {{100 + i * 3.3 % 17}}}"""));
            events.Add(Event("order_validated", "account", s_account, at.AddMinutes(5), $$"""{"order_id": "{{order}}", "total": {{100 + i * 3.3 % 17}}}"""));
        }

        events = [.. events.Select((e, i) => (e, i)).OrderBy(x => x.i % 2 == 0 ? x.i : x.i + 3).Select(x => x.e)];

        AssertEverySplitMatches(new OrderPatternDetector(), events);
    }

    [Fact]
    public void Engagement_StoredAndReadBackAtEverySplit_SamePatternsAsOneFold()
    {
        // 110 replies (more than the 60 times kept), touches on four channels, replies within and outside the 7-day
        // window and second replies to one touch, so a split can fall between a touch and the reply credited to it,
        // or between that reply and the next.
        var events = new List<InsightEvent>();
        string[] channels = ["email", "Call", "meeting", "sms"];
        for (var i = 0; i < 120; i++)
        {
            var at = s_start.AddHours(i * 61 + i % 5 * 3);
            events.Add(Event("touch", "contact", s_contact, at, $$"""{"touch_type": "{{channels[i % 4]}}"}"""));
            if (i % 3 != 1)
            {
                events.Add(Event("reply", "contact", s_contact, at.AddHours(i % 7 == 0 ? 24 * 8 : 2 + i % 5), "{}"));
            }

            if (i % 4 == 0)
            {
                // A second reply to the same touch: not credited again.
                events.Add(Event("reply", "contact", s_contact, at.AddHours(9), "{}"));
            }
        }

        AssertEverySplitMatches(new ContactEngagementDetector(), events);
    }

    [Fact]
    public void Orders_StateAsTheJsonNodeDetectorWroteIt_ReadsAndFoldsOn()
    {
        // After one order of 120 (intervals, m2 and the trend sums of one point as it wrote them, no interval keys yet).
        var first = s_start;
        var x = (first - DateTimeOffset.UnixEpoch).TotalDays;
        var legacy = $$"""
            {"recent_orders": ["o-1"], "orders": 1, "first_order_at": "{{Text(first)}}", "last_order_at": "{{Text(first)}}",
             "sn": 1, "sx": {{Number(x)}}, "sy": 120, "sxx": {{Number(x * x)}}, "sxy": {{Number(x * 120)}}, "syy": 14400}
            """;
        var detector = new OrderPatternDetector();
        var later = new[]
        {
            Event("order_placed", "account", s_account, first.AddDays(10), """{"order_id": "o-2", "total": 130}"""),
            Event("order_placed", "account", s_account, first.AddDays(10), """{"order_id": "o-1", "total": 120}"""),
            Event("order_placed", "account", s_account, first.AddDays(21), """{"order_id": "o-3", "total": 150}"""),
        };
        var fromLegacy = detector.Read(JsonElement.Parse(legacy));
        var fromScratch = new OrderState();
        foreach (var e in new[] { Event("order_placed", "account", s_account, first, """{"order_id": "o-1", "total": 120}""") }.Concat(later))
        {
            detector.Fold(fromScratch, e, new Zone(TimeZoneInfo.Utc));
        }

        foreach (var e in later)
        {
            detector.Fold(fromLegacy, e, new Zone(TimeZoneInfo.Utc));
        }

        Assert.Equal(3, fromLegacy.Orders);
        Assert.Equal(10.5, fromLegacy.MeanDays, 9);
        Assert.Equal(Describe(detector, fromScratch), Describe(detector, fromLegacy));
    }

    [Fact]
    public void Engagement_StateAsTheJsonNodeDetectorWroteIt_ReadsAndFoldsOn()
    {
        // After one email touch, Monday 09:00 UTC (slot 9), not yet answered: no replies array, no reply times yet.
        var touches = Enumerable.Repeat("0", 168).ToArray();
        touches[9] = "1";
        var legacy = $$$"""
            {"channels": {"email": {"t": 1, "r": 0}}, "touches": [{{{string.Join(", ", touches)}}}], "last_touch_at": "{{{Text(s_start)}}}",
             "last_touch_slot": 9, "last_touch_channel": "email", "last_touch_credited": false}
            """;
        var detector = new ContactEngagementDetector();
        var state = detector.Read(JsonElement.Parse(legacy));

        detector.Fold(state, Event("reply", "contact", s_contact, s_start.AddHours(3), "{}"), new Zone(TimeZoneInfo.Utc));
        detector.Fold(state, Event("reply", "contact", s_contact, s_start.AddHours(4), "{}"), new Zone(TimeZoneInfo.Utc));

        // The first reply is credited to the stored touch's slot and channel, the second not (one per touch).
        Assert.Equal(1, state.Replies[9]);
        Assert.Equal(1, state.Replies.Sum());
        Assert.Equal((1.0, 1.0), (state.Channel("email").Touches, state.Channel("email").Replies));
        Assert.Equal(2, state.RepliesTotal);
        Assert.Equal([s_start.AddHours(3), s_start.AddHours(4)], state.ReplyTimes);
    }

    // Folding the events in two parts, the state written as stored and read back between them, gives the patterns of
    // one fold — at every split point — and the stored JSON of the two states is the same.
    private static void AssertEverySplitMatches<TState>(PatternDetector<TState> detector, List<InsightEvent> events)
        where TState : class, IDetectorState, new()
    {
        var zone = new Zone(s_chicago);
        var whole = new TState();
        foreach (var e in events)
        {
            detector.Fold(whole, e, zone);
        }

        var expected = Describe(detector, whole);
        for (var split = 0; split <= events.Count; split++)
        {
            var state = new TState();
            foreach (var e in events.Take(split))
            {
                detector.Fold(state, e, zone);
            }

            var stored = Json(state);
            state = detector.Read(JsonElement.Parse(stored));
            Assert.Equal(stored, Json(state));
            foreach (var e in events.Skip(split))
            {
                detector.Fold(state, e, zone);
            }

            Assert.Equal(expected, Describe(detector, state));
        }
    }

    private static string Describe<TState>(PatternDetector<TState> detector, TState state) where TState : class, IDetectorState, new() =>
        string.Join("\n", detector.Evaluate(state, s_now).Select(p => $"{p.PatternType} {p.Data.ToJsonString()} {p.Confidence:R} {p.Evidence} {p.Active}"))
        + "\n" + Json(state);

    private static string Json(IDetectorState state)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            state.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static string Text(DateTimeOffset at) => InsightMath.Text(at);

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static long s_seq;

    private static InsightEvent Event(string type, string entityType, Guid entity, DateTimeOffset at, string payload) =>
        new(Interlocked.Increment(ref s_seq), Guid.NewGuid(), type, entityType, entity, at, JsonElement.Parse(payload));

    private sealed class Zone(TimeZoneInfo zone) : IDetectorContext
    {
        public TimeZoneInfo ZoneOf(Guid entityId) => zone;
    }
}
