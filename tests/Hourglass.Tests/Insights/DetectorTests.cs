using System.Text.Json;
using Hourglass.Insights;

namespace Hourglass.Tests.Insights;

/// <summary>The detectors' maths on synthetic histories whose answers are known.</summary>
public sealed class DetectorTests
{
    private static readonly DateTimeOffset s_start = new(2026, 1, 5, 9, 0, 0, TimeSpan.Zero); // a Monday
    private static readonly Guid s_account = Guid.Parse("6d3c1f4e-0000-4000-8000-0000000000a1");
    private static readonly Guid s_contact = Guid.Parse("6d3c1f4e-0000-4000-8000-0000000000c1");
    private long _seq;

    [Fact]
    public void Cadence_OrdersEvery14Days_MeanSdNextExpectedAndConfidence()
    {
        var detector = new OrderPatternDetector();
        var state = Fold(detector, Enumerable.Range(0, 6).Select(i => Order(s_start.AddDays(14 * i), 100)));

        var cadence = Pattern(detector.Evaluate(state, s_start.AddDays(71)), "reorder_cadence");

        Assert.Equal(14.0, cadence.Data["mean_interval_days"]!.GetValue<double>(), 6);
        Assert.Equal(0.0, cadence.Data["sd_interval_days"]!.GetValue<double>(), 6);
        Assert.Equal(InsightFormat(s_start.AddDays(84)), (string?)cadence.Data["next_order_expected_at"]);
        // 5 intervals, no variation: 5 / (5 + 4) / (1 + 0).
        Assert.Equal(5.0 / 9, cadence.Confidence, 6);
        Assert.True(cadence.Active);
    }

    [Fact]
    public void Cadence_ConfidenceRisesWithConsistentEvidence_FallsWithInconsistent()
    {
        var detector = new OrderPatternDetector();
        double ConfidenceAfter(int orders, Func<int, double> day) =>
            Pattern(detector.Evaluate(Fold(detector, Enumerable.Range(0, orders).Select(i => Order(s_start.AddDays(day(i)), 50))), s_start.AddDays(400)), "reorder_cadence").Confidence;

        var three = ConfidenceAfter(3, i => 10 * i);
        var six = ConfidenceAfter(6, i => 10 * i);
        var twelve = ConfidenceAfter(12, i => 10 * i);
        var erratic = ConfidenceAfter(12, i => i * i * 3);

        Assert.True(three < six && six < twelve, $"{three} < {six} < {twelve}");
        Assert.True(erratic < twelve * 0.7, $"erratic {erratic} vs regular {twelve}");
    }

    [Fact]
    public void ChurnRisk_KnownPosterior_AndAnOrderBringsItDown()
    {
        var detector = new OrderPatternDetector();
        var state = Fold(detector, Enumerable.Range(0, 5).Select(i => Order(s_start.AddDays(10 * i), 80)));
        var last = s_start.AddDays(40);

        var onTime = Pattern(detector.Evaluate(state, last), "churn_risk");
        var late = Pattern(detector.Evaluate(state, last.AddDays(30)), "churn_risk");
        detector.Fold(state, Order(last.AddDays(31), 80), new Utc());
        var recovered = Pattern(detector.Evaluate(state, last.AddDays(31)), "churn_risk");

        // t = 0: P(active) = 0.9 / (0.9 + 0.1) → risk 0.1. t = 3 means: 0.9e^-3 / (0.9e^-3 + 0.1) → risk 0.6903.
        Assert.Equal(0.1, onTime.Data["risk"]!.GetValue<double>(), 4);
        Assert.Equal(1 - 0.9 * Math.Exp(-3) / (0.9 * Math.Exp(-3) + 0.1), late.Data["risk"]!.GetValue<double>(), 4);
        Assert.True(late.Active);
        Assert.False(onTime.Active);
        Assert.False(recovered.Active);
        // Confidence is the risk weighted by the evidence (4 intervals: 4 / 8).
        Assert.Equal(late.Data["risk"]!.GetValue<double>() * 0.5, late.Confidence, 3);
    }

    [Fact]
    public void Orders_SameOrderTwice_CountedOnce()
    {
        var detector = new OrderPatternDetector();
        var order = Guid.NewGuid();
        var placed = new InsightEvent(++_seq, Guid.NewGuid(), "order_placed", "order", order, s_start, Payload(new { account_id = s_account, total = 10 }));
        var validated = placed with { Seq = ++_seq, Id = Guid.NewGuid(), Type = "order_validated" };

        var state = Fold(detector, [placed, validated]);

        Assert.Equal(1, state.Orders);
        Assert.Equal(s_account, detector.EntityOf(validated));
    }

    [Fact]
    public void OrderSizeTrend_LinearGrowth_SlopeAndDirection()
    {
        var detector = new OrderPatternDetector();
        // Every 30 days, 10 more than the last: 100, 110, … 150 (mean 125): +8% of the mean a month, a perfect line.
        var state = Fold(detector, Enumerable.Range(0, 6).Select(i => Order(s_start.AddDays(30 * i), 100 + 10 * i)));

        var trend = Pattern(detector.Evaluate(state, s_start.AddDays(160)), "order_size_trend");

        Assert.Equal("up", (string?)trend.Data["direction"]);
        Assert.Equal(8.0, trend.Data["change_per_30_days_pct"]!.GetValue<double>(), 2);
        Assert.Equal(1.0, trend.Data["r2"]!.GetValue<double>(), 4);
        Assert.True(trend.Active);
    }

    [Fact]
    public void BestTime_RepliesOnlyToTuesdayNineTouches_InTheContactsZone()
    {
        var detector = new ContactEngagementDetector();
        var chicago = TimeZoneInfo.FindSystemTimeZoneById("America/Chicago");
        var events = new List<InsightEvent>();
        for (var week = 0; week < 8; week++)
        {
            // Tuesday 09:00 in Chicago (15:00 UTC in January) — replied; Thursday 14:00 there — never.
            var tuesday = new DateTimeOffset(2026, 1, 6, 15, 0, 0, TimeSpan.Zero).AddDays(7 * week);
            var thursday = new DateTimeOffset(2026, 1, 8, 20, 0, 0, TimeSpan.Zero).AddDays(7 * week);
            events.Add(Touch(tuesday, "email"));
            events.Add(Reply(tuesday.AddHours(3)));
            events.Add(Touch(thursday, "email"));
        }

        var state = Fold(detector, events, new Fixed(chicago));
        var best = Pattern(detector.Evaluate(state, s_start.AddDays(70)), "best_time");

        // Tuesday is ISO day 2: slot (2 - 1) * 24 + 9 = 33.
        Assert.Equal(33, best.Data["best_slots"]!.AsArray()[0]!.GetValue<int>());
        Assert.Single(best.Data["best_slots"]!.AsArray());
        Assert.True(best.Active);
        Assert.Equal(16, best.Evidence);
    }

    [Fact]
    public void PreferredChannel_RepliesByChannel()
    {
        var detector = new ContactEngagementDetector();
        var events = new List<InsightEvent>();
        for (var i = 0; i < 10; i++)
        {
            var at = s_start.AddDays(8 * i);
            events.Add(Touch(at, "email"));
            if (i % 2 == 0)
            {
                events.Add(Reply(at.AddHours(2)));
            }

            events.Add(Touch(at.AddDays(4), "call"));
            if (i == 0)
            {
                events.Add(Reply(at.AddDays(4).AddHours(1)));
            }
        }

        var preferred = Pattern(detector.Evaluate(Fold(detector, events), s_start.AddDays(90)), "preferred_channel");

        Assert.Equal("email", (string?)preferred.Data["channel"]);
        Assert.Equal((5.0 + 1) / 12, preferred.Data["reply_rate"]!.GetValue<double>(), 4);
        Assert.True(preferred.Active);
    }

    [Fact]
    public void EngagementDecay_RepliesStopped_Active_StillReplying_Not()
    {
        var detector = new ContactEngagementDetector();
        var now = s_start.AddDays(200);
        var before = Enumerable.Range(0, 6).Select(i => Reply(now.AddDays(-40 - 20 * i))).ToList();

        var stopped = Pattern(detector.Evaluate(Fold(detector, before), now), "engagement_decay");
        var still = Pattern(detector.Evaluate(Fold(detector, [.. before, Reply(now.AddDays(-3)), Reply(now.AddDays(-10))]), now), "engagement_decay");

        Assert.Equal(0, stopped.Data["replies_last_30_days"]!.GetValue<int>());
        Assert.True(stopped.Active);
        Assert.Equal(2 / (6 / 5.0), still.Data["ratio"]!.GetValue<double>(), 3);
        Assert.False(still.Active);
    }

    [Fact]
    public void Slot_MondayMidnightIsZero_SundayLastHourIs167()
    {
        Assert.Equal(0, InsightMath.Slot(new DateTimeOffset(2026, 1, 5, 0, 30, 0, TimeSpan.Zero), TimeZoneInfo.Utc));
        Assert.Equal(167, InsightMath.Slot(new DateTimeOffset(2026, 1, 11, 23, 30, 0, TimeSpan.Zero), TimeZoneInfo.Utc));
    }

    private static string InsightFormat(DateTimeOffset at) => InsightMath.Text(at);

    private static PatternResult Pattern(IReadOnlyList<PatternResult> results, string type) => results.Single(r => r.PatternType == type);

    private static TState Fold<TState>(PatternDetector<TState> detector, IEnumerable<InsightEvent> events, IDetectorContext? context = null)
        where TState : class, IDetectorState, new()
    {
        var state = new TState();
        foreach (var e in events)
        {
            detector.Fold(state, e, context ?? new Utc());
        }

        return state;
    }

    private static JsonElement Payload(object fields) => JsonSerializer.SerializeToElement(fields);

    private InsightEvent Order(DateTimeOffset at, double total) =>
        new(++_seq, Guid.NewGuid(), "order_placed", "account", s_account, at, Payload(new { total, order_id = Guid.NewGuid() }));

    private InsightEvent Touch(DateTimeOffset at, string channel) =>
        new(++_seq, Guid.NewGuid(), "touch", "contact", s_contact, at, Payload(new { touch_type = channel }));

    private InsightEvent Reply(DateTimeOffset at) =>
        new(++_seq, Guid.NewGuid(), "reply", "contact", s_contact, at, Payload(new { }));

    private sealed class Utc : IDetectorContext
    {
        public TimeZoneInfo ZoneOf(Guid entityId) => TimeZoneInfo.Utc;
    }

    private sealed class Fixed(TimeZoneInfo zone) : IDetectorContext
    {
        public TimeZoneInfo ZoneOf(Guid entityId) => zone;
    }
}
