using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Hourglass.Insights;

/// <summary>A warehouse event as the detectors read it.</summary>
internal sealed record InsightEvent(long Seq, Guid Id, string Type, string? EntityType, Guid? EntityId, DateTimeOffset OccurredAt, JsonElement Payload);

/// <summary>One pattern as a detector sees it now: its data for people, its confidence in 0..1, the evidence behind it, and whether it holds.</summary>
internal sealed record PatternResult(string PatternType, JsonObject Data, double Confidence, int Evidence, bool Active);

/// <summary>What a detector needs from outside its own state.</summary>
internal interface IDetectorContext
{
    /// <summary>The time zone an entity lives in: the contact's, else its account's, else the tenant's.</summary>
    TimeZoneInfo ZoneOf(Guid entityId);
}

/// <summary>
/// A pattern detector: it folds events into a per-entity state (kept with the entity's main pattern, so detection is
/// incremental — each run processes only events past the detector's watermark) and evaluates the state into patterns.
/// Pure: no database here; <see cref="InsightsEngine"/> does the reading and writing.
/// </summary>
internal interface IPatternDetector
{
    /// <summary>The detector's name: its watermark's key.</summary>
    string Name { get; }

    /// <summary>The entity type its patterns are about.</summary>
    string EntityType { get; }

    /// <summary>The pattern whose row holds the state.</summary>
    string StatePattern { get; }

    IReadOnlyList<string> EventTypes { get; }

    /// <summary>
    /// The patterns that move with time alone (churn risk grows without new events): every entity's are re-evaluated
    /// each run, not only those with new events. Empty when none do.
    /// </summary>
    IReadOnlyList<string> TimeDependentPatterns { get; }

    /// <summary>The entity an event is about, or null when the event says nothing about one.</summary>
    Guid? EntityOf(InsightEvent e);

    /// <summary>The state of an entity with no events yet.</summary>
    IDetectorState NewState();

    /// <summary>A stored state (<see cref="IDetectorState.WriteTo"/>'s JSON), parsed once.</summary>
    IDetectorState ReadState(JsonElement json);

    void Fold(IDetectorState state, InsightEvent e, IDetectorContext context);

    IReadOnlyList<PatternResult> Evaluate(IDetectorState state, DateTimeOffset now);
}

/// <summary>A detector over a typed state: the casts between <see cref="IPatternDetector"/>'s states and its own, once.</summary>
internal abstract class PatternDetector<TState> : IPatternDetector where TState : class, IDetectorState, new()
{
    public abstract string Name { get; }

    public abstract string EntityType { get; }

    public abstract string StatePattern { get; }

    public abstract IReadOnlyList<string> EventTypes { get; }

    public abstract IReadOnlyList<string> TimeDependentPatterns { get; }

    public abstract Guid? EntityOf(InsightEvent e);

    public abstract TState Read(JsonElement json);

    public abstract void Fold(TState state, InsightEvent e, IDetectorContext context);

    public abstract IReadOnlyList<PatternResult> Evaluate(TState state, DateTimeOffset now);

    IDetectorState IPatternDetector.NewState() => new TState();

    IDetectorState IPatternDetector.ReadState(JsonElement json) => Read(json);

    void IPatternDetector.Fold(IDetectorState state, InsightEvent e, IDetectorContext context) => Fold((TState)state, e, context);

    IReadOnlyList<PatternResult> IPatternDetector.Evaluate(IDetectorState state, DateTimeOffset now) => Evaluate((TState)state, now);
}

/// <summary>Small statistics shared by the detectors.</summary>
internal static class InsightMath
{
    /// <summary>Evidence weight n / (n + k): 0 with no evidence, 0.5 at k, towards 1 with more.</summary>
    public static double Evidence(double n, double k) => n <= 0 ? 0 : n / (n + k);

    public static double Clamp01(double x) => double.IsNaN(x) ? 0 : Math.Clamp(x, 0, 1);

    /// <summary>Hour-of-week slot, 0 = Monday 00:00-01:00 … 167 = Sunday 23:00-24:00, in <paramref name="zone"/>.</summary>
    public static int Slot(DateTimeOffset at, TimeZoneInfo zone)
    {
        var local = TimeZoneInfo.ConvertTime(at, zone);
        var day = ((int)local.DayOfWeek + 6) % 7;
        return day * 24 + local.Hour;
    }

    public static double Days(TimeSpan span) => span.TotalDays;

    public static string Text(DateTimeOffset at) => at.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

    /// <summary>A payload field that is a JSON string, else null (absent, null or another kind).</summary>
    public static string? PayloadText(JsonElement payload, string field) =>
        payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    /// <summary>A payload field that is a JSON number, else null.</summary>
    public static double? PayloadNumber(JsonElement payload, string field) =>
        payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.Number
        && value.TryGetDouble(out var number)
            ? number
            : null;
}

/// <summary>
/// Orders per account: reorder cadence (inter-order statistics by Welford's method; the next order expected one mean
/// interval after the last), churn risk (the probability the account has stopped ordering, below), and the order-size
/// trend (least squares of order totals over time). Reads <c>order_placed</c> and <c>order_validated</c> events; an
/// order counted once, however many of its events arrive.
///
/// Churn risk: with inter-order gaps taken as exponential with the account's mean interval m, an account still
/// ordering goes t days without an order with probability e^(−t/m). From a prior of 0.9 that it is still active, the
/// posterior is P(active) = 0.9·e^(−t/m) / (0.9·e^(−t/m) + 0.1), and the risk is 1 − P(active) — the idea behind
/// BG/NBD's "probability alive", in its simplest form. The pattern's confidence is the risk weighted by the evidence
/// (the number of intervals), which is what the engagement queue adds to priority.
/// </summary>
internal sealed class OrderPatternDetector : PatternDetector<OrderState>
{
    public const double PriorActive = 0.9;

    public override string Name => "orders";

    public override string EntityType => "account";

    public override string StatePattern => "reorder_cadence";

    public override IReadOnlyList<string> EventTypes { get; } = ["order_placed", "order_validated"];

    public override IReadOnlyList<string> TimeDependentPatterns { get; } = ["churn_risk"];

    public override Guid? EntityOf(InsightEvent e) =>
        e.EntityType == "account" ? e.EntityId
        : InsightMath.PayloadText(e.Payload, "account_id") is { } s && Guid.TryParse(s, out var id) ? id : null;

    public override OrderState Read(JsonElement json) => OrderState.Read(json);

    public override void Fold(OrderState state, InsightEvent e, IDetectorContext context)
    {
        // One order, counted once: by its id (the event's order, or payload.order_id), remembering the last 32.
        var orderId = e.EntityType == "order" ? e.EntityId?.ToString() ?? e.Id.ToString() : OrderId(e);
        var recent = state.RecentOrders;
        foreach (var seen in recent)
        {
            if (string.Equals(seen, orderId, StringComparison.Ordinal))
            {
                return;
            }
        }

        recent.Add(orderId);
        if (recent.Count > OrderState.RecentOrdersKept)
        {
            recent.RemoveAt(0);
        }

        state.Orders++;
        if (state.FirstOrderAt is not { } first || e.OccurredAt < first)
        {
            state.FirstOrderAt = e.OccurredAt;
        }

        var last = state.LastOrderAt;
        if (last is { } previous && e.OccurredAt > previous)
        {
            // Welford: mean and M2 of the intervals, in days.
            var interval = InsightMath.Days(e.OccurredAt - previous);
            var n = state.Intervals + 1;
            var delta = interval - state.MeanDays;
            state.MeanDays += delta / n;
            state.Intervals = n;
            state.M2 += delta * (interval - state.MeanDays);
        }

        if (last is null || e.OccurredAt > last)
        {
            state.LastOrderAt = e.OccurredAt;
        }

        if (InsightMath.PayloadNumber(e.Payload, "total") is { } y)
        {
            // Least squares of total over time (x: days since 1970).
            var x = InsightMath.Days(e.OccurredAt - DateTimeOffset.UnixEpoch);
            state.Sn++;
            state.Sx += x;
            state.Sy += y;
            state.Sxx += x * x;
            state.Sxy += x * y;
            state.Syy += y * y;
        }
    }

    public override IReadOnlyList<PatternResult> Evaluate(OrderState state, DateTimeOffset now)
    {
        var results = new List<PatternResult>(3);
        var intervals = (int)state.Intervals;
        var mean = state.MeanDays;
        var sd = intervals > 1 ? Math.Sqrt(state.M2 / (intervals - 1)) : 0;
        var cv = mean > 0 ? sd / mean : 1;
        var last = state.LastOrderAt;
        var evidence = InsightMath.Evidence(intervals, 4);
        var cadenceConfidence = InsightMath.Clamp01(evidence / (1 + cv));
        results.Add(new PatternResult("reorder_cadence", new JsonObject
        {
            ["mean_interval_days"] = Math.Round(mean, 2),
            ["sd_interval_days"] = Math.Round(sd, 2),
            ["orders"] = state.Orders,
            ["last_order_at"] = last is { } l ? InsightMath.Text(l) : null,
            ["next_order_expected_at"] = last is { } l2 && mean > 0 ? InsightMath.Text(l2.AddDays(mean)) : null,
        }, cadenceConfidence, intervals, intervals >= 2));

        if (last is { } lastOrder && intervals >= 1 && mean > 0)
        {
            var days = Math.Max(0, InsightMath.Days(now - lastOrder));
            var stillOrdering = PriorActive * Math.Exp(-days / mean);
            var pActive = stillOrdering / (stillOrdering + (1 - PriorActive));
            var risk = 1 - pActive;
            var confidence = InsightMath.Clamp01(risk * evidence);
            results.Add(new PatternResult("churn_risk", new JsonObject
            {
                ["p_active"] = Math.Round(pActive, 4),
                ["risk"] = Math.Round(risk, 4),
                ["days_since_last_order"] = Math.Round(days, 1),
                ["mean_interval_days"] = Math.Round(mean, 2),
            }, confidence, intervals, confidence >= 0.2));
        }

        var sn = state.Sn;
        if (sn >= 3)
        {
            var (sx, sy, sxx, sxy, syy) = (state.Sx, state.Sy, state.Sxx, state.Sxy, state.Syy);
            var vx = sn * sxx - sx * sx;
            var vy = sn * syy - sy * sy;
            var cov = sn * sxy - sx * sy;
            var slope = vx > 0 ? cov / vx : 0;
            var r2 = vx > 0 && vy > 0 ? cov * cov / (vx * vy) : 0;
            var meanSize = sy / sn;
            var monthly = meanSize != 0 ? slope * 30 / meanSize : 0;
            results.Add(new PatternResult("order_size_trend", new JsonObject
            {
                ["direction"] = Math.Abs(monthly) < 0.02 ? "flat" : monthly > 0 ? "up" : "down",
                ["change_per_30_days_pct"] = Math.Round(monthly * 100, 2),
                ["mean_order_total"] = Math.Round(meanSize, 2),
                ["r2"] = Math.Round(r2, 4),
            }, InsightMath.Clamp01(InsightMath.Evidence(sn, 4) * r2), (int)sn, sn >= 4 && r2 >= 0.3 && Math.Abs(monthly) >= 0.02));
        }

        return results;
    }

    // payload.order_id as text (a number as written), else the event's own id.
    private static string OrderId(InsightEvent e) =>
        e.Payload.ValueKind == JsonValueKind.Object && e.Payload.TryGetProperty("order_id", out var id) && id.ValueKind != JsonValueKind.Null
            ? id.ValueKind == JsonValueKind.String ? id.GetString()! : id.GetRawText()
            : e.Id.ToString();
}

/// <summary>
/// Touches and replies per contact: the best time to contact (reply rate by hour of the week, 168 slots in the
/// contact's time zone, as Einstein Send Time Optimization learns it), the preferred channel (reply rate by channel),
/// and engagement decay (replies in the last 30 days against the rate of the 150 days before). A reply counts for the
/// contact's latest touch within 7 days before it — its slot and its channel.
/// </summary>
internal sealed class ContactEngagementDetector : PatternDetector<EngagementState>
{
    public static readonly TimeSpan ReplyWindow = TimeSpan.FromDays(7);

    public override string Name => "engagement";

    public override string EntityType => "contact";

    public override string StatePattern => "best_time";

    public override IReadOnlyList<string> EventTypes { get; } = ["touch", "reply"];

    public override IReadOnlyList<string> TimeDependentPatterns { get; } = [];

    public override Guid? EntityOf(InsightEvent e) => e.EntityType == "contact" ? e.EntityId : null;

    public override EngagementState Read(JsonElement json) => EngagementState.Read(json);

    public override void Fold(EngagementState state, InsightEvent e, IDetectorContext context)
    {
        if (e.Type == "touch")
        {
            var slot = InsightMath.Slot(e.OccurredAt, context.ZoneOf(e.EntityId!.Value));
            state.Touches[slot]++;
            var channel = Channel(e);
            state.Channel(channel).Touches++;
            if (state.LastTouchAt is not { } lastTouch || e.OccurredAt >= lastTouch)
            {
                state.LastTouchAt = e.OccurredAt;
                state.LastTouchSlot = slot;
                state.LastTouchChannel = channel;
                state.LastTouchCredited = false;
            }

            return;
        }

        // A reply.
        state.ReplyTimes.Add(e.OccurredAt);
        if (state.ReplyTimes.Count > EngagementState.ReplyTimesKept)
        {
            state.ReplyTimes.RemoveAt(0);
        }

        state.RepliesTotal++;
        if (state.LastTouchAt is { } at && e.OccurredAt >= at && e.OccurredAt - at <= ReplyWindow && !state.LastTouchCredited)
        {
            state.Replies[state.LastTouchSlot]++;
            state.Channel(state.LastTouchChannel ?? "email").Replies++;
            state.LastTouchCredited = true;
        }
    }

    public override IReadOnlyList<PatternResult> Evaluate(EngagementState state, DateTimeOffset now)
    {
        var results = new List<PatternResult>(3);
        var touches = state.Touches;
        var replies = state.Replies;
        var totalTouches = touches.Sum();
        var totalReplies = replies.Sum();
        var overall = (totalReplies + 1) / (totalTouches + 2);
        const double Shrink = 2;
        var rates = Enumerable.Range(0, EngagementState.Slots).Select(s => (Slot: s, Touches: touches[s], Rate: (replies[s] + overall * Shrink) / (touches[s] + Shrink))).ToList();
        var best = rates.Where(r => r.Touches >= 2 && r.Rate >= overall * 1.25).OrderByDescending(r => r.Rate).ThenBy(r => r.Slot).Take(6).ToList();
        var lift = best.Count > 0 ? (best[0].Rate - overall) / overall : 0;
        results.Add(new PatternResult("best_time", new JsonObject
        {
            ["best_slots"] = new JsonArray(best.Select(b => (JsonNode)b.Slot).ToArray()),
            ["best_rates"] = new JsonArray(best.Select(b => (JsonNode)Math.Round(b.Rate, 4)).ToArray()),
            ["overall_reply_rate"] = Math.Round(overall, 4),
            ["touches"] = totalTouches,
            ["replies"] = totalReplies,
            ["slot_rule"] = "slot = (ISO weekday - 1) * 24 + hour, in the contact's time zone",
        }, InsightMath.Clamp01(InsightMath.Evidence(totalTouches, 20) * Math.Min(1, lift)), (int)totalTouches, best.Count > 0 && totalReplies >= 3));

        if (state.Channels.Count > 0)
        {
            var ranked = state.Channels
                .Select(c => (Channel: c.Name, T: c.Touches, R: c.Replies, Mean: (c.Replies + 1) / (c.Touches + 2)))
                .OrderByDescending(c => c.Mean).ThenBy(c => c.Channel, StringComparer.Ordinal).ToList();
            var top = ranked[0];
            var second = ranked.Count > 1 ? ranked[1].Mean : 0.5;
            var separation = top.Mean > 0 ? Math.Max(0, (top.Mean - second) / top.Mean) : 0;
            results.Add(new PatternResult("preferred_channel", new JsonObject
            {
                ["channel"] = top.Channel,
                ["reply_rate"] = Math.Round(top.Mean, 4),
                ["by_channel"] = new JsonObject(ranked.Select(r => KeyValuePair.Create(r.Channel, (JsonNode?)new JsonObject
                {
                    ["touches"] = r.T, ["replies"] = r.R, ["reply_rate"] = Math.Round(r.Mean, 4),
                }))),
            }, InsightMath.Clamp01(InsightMath.Evidence(ranked.Sum(r => r.T), 10) * separation), (int)ranked.Sum(r => r.T), top.T >= 3 && top.R >= 1));
        }

        var times = state.ReplyTimes;
        var recent = times.Count(t => now - t <= TimeSpan.FromDays(30) && t <= now);
        var prior = times.Count(t => now - t > TimeSpan.FromDays(30) && now - t <= TimeSpan.FromDays(180));
        if (prior >= 2)
        {
            var priorPerMonth = prior / 5.0;
            var ratio = recent / priorPerMonth;
            results.Add(new PatternResult("engagement_decay", new JsonObject
            {
                ["replies_last_30_days"] = recent,
                ["replies_per_30_days_before"] = Math.Round(priorPerMonth, 2),
                ["ratio"] = Math.Round(ratio, 3),
            }, InsightMath.Clamp01((1 - Math.Min(1, ratio)) * InsightMath.Evidence(prior, 4)), prior + recent, ratio < 0.5));
        }

        return results;
    }

    // The channel of a touch (payload channel, else touch_type, else email), in one spelling; the common ones without
    // allocating.
    private static string Channel(InsightEvent e)
    {
        var channel = InsightMath.PayloadText(e.Payload, "channel") ?? InsightMath.PayloadText(e.Payload, "touch_type") ?? "email";
        foreach (var (spelling, canonical) in s_channels)
        {
            if (string.Equals(channel, spelling, StringComparison.OrdinalIgnoreCase))
            {
                return canonical;
            }
        }

        var other = channel.ToLowerInvariant();
        return other.Length <= 32 ? other : "other";
    }

    private static readonly (string Spelling, string Canonical)[] s_channels =
    [
        ("email", "email"), ("call", "call"), ("meeting", "meeting"), ("mail", "email"), ("phone", "call"), ("visit", "meeting"),
        ("sms", "sms"), ("text", "sms"),
    ];
}
