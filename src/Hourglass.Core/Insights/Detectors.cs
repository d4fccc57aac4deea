using System.Globalization;
using System.Text.Json.Nodes;

namespace Hourglass.Insights;

/// <summary>A warehouse event as the detectors read it.</summary>
public sealed record InsightEvent(long Seq, Guid Id, string Type, string? EntityType, Guid? EntityId, DateTimeOffset OccurredAt, JsonObject Payload);

/// <summary>One pattern as a detector sees it now: its data for people, its confidence in 0..1, the evidence behind it, and whether it holds.</summary>
public sealed record PatternResult(string PatternType, JsonObject Data, double Confidence, int Evidence, bool Active);

/// <summary>What a detector needs from outside its own state.</summary>
public interface IDetectorContext
{
    /// <summary>The time zone an entity lives in: the contact's, else its account's, else the tenant's.</summary>
    TimeZoneInfo ZoneOf(Guid entityId);
}

/// <summary>
/// A pattern detector: it folds events into a per-entity state (kept with the entity's main pattern, so detection is
/// incremental — each run processes only events past the detector's watermark) and evaluates the state into patterns.
/// Pure: no database here; <see cref="InsightsEngine"/> does the reading and writing.
/// </summary>
public interface IPatternDetector
{
    /// <summary>The detector's name: its watermark's key.</summary>
    string Name { get; }

    /// <summary>The entity type its patterns are about.</summary>
    string EntityType { get; }

    /// <summary>The pattern whose row holds the state.</summary>
    string StatePattern { get; }

    IReadOnlyList<string> EventTypes { get; }

    /// <summary>The entity an event is about, or null when the event says nothing about one.</summary>
    Guid? EntityOf(InsightEvent e);

    void Fold(JsonObject state, InsightEvent e, IDetectorContext context);

    IReadOnlyList<PatternResult> Evaluate(JsonObject state, DateTimeOffset now);

    /// <summary>Whether its patterns move with time alone (so every entity is re-evaluated each run, not only those with new events).</summary>
    bool TimeDependent { get; }
}

/// <summary>Small statistics shared by the detectors.</summary>
public static class InsightMath
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

    public static double Number(JsonObject state, string key, double fallback = 0) => Number(state[key]) ?? fallback;

    /// <summary>A JSON number as a double, whatever it was built from (an int, a decimal, parsed text).</summary>
    public static double? Number(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number
            ? v.TryGetValue<double>(out var d) ? d : double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture)
            : null;

    public static double[] Array(JsonObject state, string key, int length)
    {
        var result = new double[length];
        if (state[key] is JsonArray array)
        {
            for (var i = 0; i < Math.Min(length, array.Count); i++)
            {
                result[i] = Number(array[i]) ?? 0;
            }
        }

        return result;
    }

    public static JsonArray ToJson(double[] values) => new(values.Select(v => (JsonNode)v).ToArray());

    public static DateTimeOffset? Time(JsonObject state, string key) =>
        state[key] is JsonValue v && v.TryGetValue<string>(out var s) && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var t) ? t : null;

    public static string Text(DateTimeOffset at) => at.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);
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
public sealed class OrderPatternDetector : IPatternDetector
{
    public const double PriorActive = 0.9;

    public string Name => "orders";

    public string EntityType => "account";

    public string StatePattern => "reorder_cadence";

    public IReadOnlyList<string> EventTypes { get; } = ["order_placed", "order_validated"];

    public bool TimeDependent => true;

    public Guid? EntityOf(InsightEvent e) =>
        e.EntityType == "account" ? e.EntityId
        : e.Payload["account_id"] is JsonValue v && v.TryGetValue<string>(out var s) && Guid.TryParse(s, out var id) ? id : null;

    public void Fold(JsonObject state, InsightEvent e, IDetectorContext context)
    {
        // One order, counted once: by its id (the event's order, or payload.order_id), remembering the last 32.
        var orderId = e.EntityType == "order" ? e.EntityId?.ToString() : (string?)e.Payload["order_id"] ?? e.Id.ToString();
        var recent = state["recent_orders"] as JsonArray ?? [];
        if (recent.Any(r => (string?)r == orderId))
        {
            return;
        }

        recent.Add(orderId);
        while (recent.Count > 32)
        {
            recent.RemoveAt(0);
        }

        state["recent_orders"] = recent.DeepClone();
        var total = e.Payload["total"] is JsonValue t && t.TryGetValue<double>(out var amount) ? amount : (double?)null;
        var orders = InsightMath.Number(state, "orders") + 1;
        state["orders"] = orders;
        var first = InsightMath.Time(state, "first_order_at") ?? e.OccurredAt;
        if (e.OccurredAt < first)
        {
            first = e.OccurredAt;
        }

        state["first_order_at"] = InsightMath.Text(first);
        var last = InsightMath.Time(state, "last_order_at");
        if (last is { } previous && e.OccurredAt > previous)
        {
            // Welford: mean and M2 of the intervals, in days.
            var interval = InsightMath.Days(e.OccurredAt - previous);
            var n = InsightMath.Number(state, "intervals") + 1;
            var mean = InsightMath.Number(state, "mean_days");
            var delta = interval - mean;
            mean += delta / n;
            state["intervals"] = n;
            state["mean_days"] = mean;
            state["m2"] = InsightMath.Number(state, "m2") + delta * (interval - mean);
        }

        if (last is null || e.OccurredAt > last)
        {
            state["last_order_at"] = InsightMath.Text(e.OccurredAt);
        }

        if (total is { } y)
        {
            // Least squares of total over time (x: days since the first order seen).
            var x = InsightMath.Days(e.OccurredAt - DateTimeOffset.UnixEpoch);
            state["sn"] = InsightMath.Number(state, "sn") + 1;
            state["sx"] = InsightMath.Number(state, "sx") + x;
            state["sy"] = InsightMath.Number(state, "sy") + y;
            state["sxx"] = InsightMath.Number(state, "sxx") + x * x;
            state["sxy"] = InsightMath.Number(state, "sxy") + x * y;
            state["syy"] = InsightMath.Number(state, "syy") + y * y;
        }
    }

    public IReadOnlyList<PatternResult> Evaluate(JsonObject state, DateTimeOffset now)
    {
        var results = new List<PatternResult>(3);
        var intervals = (int)InsightMath.Number(state, "intervals");
        var mean = InsightMath.Number(state, "mean_days");
        var sd = intervals > 1 ? Math.Sqrt(InsightMath.Number(state, "m2") / (intervals - 1)) : 0;
        var cv = mean > 0 ? sd / mean : 1;
        var last = InsightMath.Time(state, "last_order_at");
        var evidence = InsightMath.Evidence(intervals, 4);
        var cadenceConfidence = InsightMath.Clamp01(evidence / (1 + cv));
        results.Add(new PatternResult("reorder_cadence", new JsonObject
        {
            ["mean_interval_days"] = Math.Round(mean, 2),
            ["sd_interval_days"] = Math.Round(sd, 2),
            ["orders"] = InsightMath.Number(state, "orders"),
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

        var sn = InsightMath.Number(state, "sn");
        if (sn >= 3)
        {
            var (sx, sy, sxx, sxy, syy) = (InsightMath.Number(state, "sx"), InsightMath.Number(state, "sy"), InsightMath.Number(state, "sxx"),
                InsightMath.Number(state, "sxy"), InsightMath.Number(state, "syy"));
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
}

/// <summary>
/// Touches and replies per contact: the best time to contact (reply rate by hour of the week, 168 slots in the
/// contact's time zone, as Einstein Send Time Optimization learns it), the preferred channel (reply rate by channel),
/// and engagement decay (replies in the last 30 days against the rate of the 150 days before). A reply counts for the
/// contact's latest touch within 7 days before it — its slot and its channel.
/// </summary>
public sealed class ContactEngagementDetector : IPatternDetector
{
    public static readonly TimeSpan ReplyWindow = TimeSpan.FromDays(7);

    public string Name => "engagement";

    public string EntityType => "contact";

    public string StatePattern => "best_time";

    public IReadOnlyList<string> EventTypes { get; } = ["touch", "reply"];

    public bool TimeDependent => false;

    public Guid? EntityOf(InsightEvent e) => e.EntityType == "contact" ? e.EntityId : null;

    public void Fold(JsonObject state, InsightEvent e, IDetectorContext context)
    {
        var channels = state["channels"] as JsonObject ?? [];
        if (e.Type == "touch")
        {
            var slot = InsightMath.Slot(e.OccurredAt, context.ZoneOf(e.EntityId!.Value));
            var touches = InsightMath.Array(state, "touches", 168);
            touches[slot]++;
            state["touches"] = InsightMath.ToJson(touches);
            var channel = Channel(e);
            var entry = channels[channel] as JsonObject ?? new JsonObject { ["t"] = 0, ["r"] = 0 };
            entry["t"] = InsightMath.Number(entry, "t") + 1;
            channels[channel] = entry.DeepClone();
            state["channels"] = channels.DeepClone();
            var lastTouch = InsightMath.Time(state, "last_touch_at");
            if (lastTouch is null || e.OccurredAt >= lastTouch)
            {
                state["last_touch_at"] = InsightMath.Text(e.OccurredAt);
                state["last_touch_slot"] = slot;
                state["last_touch_channel"] = channel;
                state["last_touch_credited"] = false;
            }

            return;
        }

        // A reply.
        var replyTimes = state["reply_times"] as JsonArray ?? [];
        replyTimes.Add(InsightMath.Text(e.OccurredAt));
        while (replyTimes.Count > 60)
        {
            replyTimes.RemoveAt(0);
        }

        state["reply_times"] = replyTimes.DeepClone();
        state["replies_total"] = InsightMath.Number(state, "replies_total") + 1;
        var touchedAt = InsightMath.Time(state, "last_touch_at");
        if (touchedAt is { } at && e.OccurredAt >= at && e.OccurredAt - at <= ReplyWindow && state["last_touch_credited"] is JsonValue credited
            && credited.TryGetValue<bool>(out var done) && !done)
        {
            var replies = InsightMath.Array(state, "replies", 168);
            replies[(int)InsightMath.Number(state, "last_touch_slot")]++;
            state["replies"] = InsightMath.ToJson(replies);
            var channel = (string?)state["last_touch_channel"] ?? "email";
            var entry = channels[channel] as JsonObject ?? new JsonObject { ["t"] = 0, ["r"] = 0 };
            entry["r"] = InsightMath.Number(entry, "r") + 1;
            channels[channel] = entry.DeepClone();
            state["channels"] = channels.DeepClone();
            state["last_touch_credited"] = true;
        }
    }

    public IReadOnlyList<PatternResult> Evaluate(JsonObject state, DateTimeOffset now)
    {
        var results = new List<PatternResult>(3);
        var touches = InsightMath.Array(state, "touches", 168);
        var replies = InsightMath.Array(state, "replies", 168);
        var totalTouches = touches.Sum();
        var totalReplies = replies.Sum();
        var overall = (totalReplies + 1) / (totalTouches + 2);
        const double Shrink = 2;
        var rates = Enumerable.Range(0, 168).Select(s => (Slot: s, Touches: touches[s], Rate: (replies[s] + overall * Shrink) / (touches[s] + Shrink))).ToList();
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

        if (state["channels"] is JsonObject channels && channels.Count > 0)
        {
            var ranked = channels
                .Select(c => (Channel: c.Key, T: InsightMath.Number((JsonObject)c.Value!, "t"), R: InsightMath.Number((JsonObject)c.Value!, "r")))
                .Select(c => (c.Channel, c.T, c.R, Mean: (c.R + 1) / (c.T + 2)))
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

        var times = (state["reply_times"] as JsonArray ?? []).Select(n => DateTimeOffset.TryParse((string?)n, CultureInfo.InvariantCulture,
            DateTimeStyles.RoundtripKind, out var t) ? t : (DateTimeOffset?)null).OfType<DateTimeOffset>().ToList();
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

    private static string Channel(InsightEvent e)
    {
        var channel = (string?)e.Payload["channel"] ?? (string?)e.Payload["touch_type"] ?? "email";
        return channel.ToLowerInvariant() switch
        {
            "email" or "mail" => "email",
            "call" or "phone" => "call",
            "meeting" or "visit" => "meeting",
            "sms" or "text" => "sms",
            var other => other.Length <= 32 ? other : "other",
        };
    }
}
