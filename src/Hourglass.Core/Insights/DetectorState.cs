using System.Globalization;
using System.Text.Json;

namespace Hourglass.Insights;

/// <summary>
/// A detector's state for one entity, as plain fields edited in place while events are folded. It becomes JSON only
/// when it is stored (<c>client_patterns.pattern_data.state</c> of the detector's state pattern) and is parsed once
/// when loaded: editing the state as JSON nodes cost about 60 µs an event (docs/benchmarks.md, <c>detection</c>).
/// </summary>
internal interface IDetectorState
{
    /// <summary>Writes the state as the JSON object that is stored.</summary>
    void WriteTo(Utf8JsonWriter writer);
}

/// <summary>
/// <see cref="OrderPatternDetector"/>'s state for an account. Stored as
/// <c>{"orders", "recent_orders": [order ids], "first_order_at", "last_order_at", "intervals", "mean_days", "m2",
/// "sn", "sx", "sy", "sxx", "sxy", "syy"}</c> — the keys the JSON-node detector wrote, so states stored by either
/// read the same.
/// </summary>
internal sealed class OrderState : IDetectorState
{
    /// <summary>How many order ids are remembered to count an order once, however many of its events arrive.</summary>
    public const int RecentOrdersKept = 32;

    /// <summary>The last order ids seen, oldest first.</summary>
    public List<string> RecentOrders { get; } = new(RecentOrdersKept + 1);

    public double Orders { get; set; }

    public DateTimeOffset? FirstOrderAt { get; set; }

    public DateTimeOffset? LastOrderAt { get; set; }

    /// <summary>Welford's count, mean and M2 of the days between orders.</summary>
    public double Intervals { get; set; }

    public double MeanDays { get; set; }

    public double M2 { get; set; }

    /// <summary>Least-squares sums of order totals (y) over days since 1970 (x).</summary>
    public double Sn { get; set; }

    public double Sx { get; set; }

    public double Sy { get; set; }

    public double Sxx { get; set; }

    public double Sxy { get; set; }

    public double Syy { get; set; }

    public static OrderState Read(JsonElement json)
    {
        var state = new OrderState();
        if (json.ValueKind != JsonValueKind.Object)
        {
            return state;
        }

        foreach (var property in json.EnumerateObject())
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "recent_orders" when value.ValueKind == JsonValueKind.Array:
                    foreach (var id in value.EnumerateArray())
                    {
                        state.RecentOrders.Add(StateJson.Text(id));
                    }

                    break;
                case "orders": state.Orders = StateJson.Number(value); break;
                case "first_order_at": state.FirstOrderAt = StateJson.Time(value); break;
                case "last_order_at": state.LastOrderAt = StateJson.Time(value); break;
                case "intervals": state.Intervals = StateJson.Number(value); break;
                case "mean_days": state.MeanDays = StateJson.Number(value); break;
                case "m2": state.M2 = StateJson.Number(value); break;
                case "sn": state.Sn = StateJson.Number(value); break;
                case "sx": state.Sx = StateJson.Number(value); break;
                case "sy": state.Sy = StateJson.Number(value); break;
                case "sxx": state.Sxx = StateJson.Number(value); break;
                case "sxy": state.Sxy = StateJson.Number(value); break;
                case "syy": state.Syy = StateJson.Number(value); break;
                default: break;
            }
        }

        return state;
    }

    public void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteStartArray("recent_orders");
        foreach (var id in RecentOrders)
        {
            writer.WriteStringValue(id);
        }

        writer.WriteEndArray();
        writer.WriteNumber("orders", Orders);
        StateJson.WriteTime(writer, "first_order_at", FirstOrderAt);
        StateJson.WriteTime(writer, "last_order_at", LastOrderAt);
        writer.WriteNumber("intervals", Intervals);
        writer.WriteNumber("mean_days", MeanDays);
        writer.WriteNumber("m2", M2);
        writer.WriteNumber("sn", Sn);
        writer.WriteNumber("sx", Sx);
        writer.WriteNumber("sy", Sy);
        writer.WriteNumber("sxx", Sxx);
        writer.WriteNumber("sxy", Sxy);
        writer.WriteNumber("syy", Syy);
        writer.WriteEndObject();
    }
}

/// <summary>
/// <see cref="ContactEngagementDetector"/>'s state for a contact. Stored as <c>{"touches": [168], "replies": [168],
/// "channels": {"email": {"t", "r"}, …}, "last_touch_at", "last_touch_slot", "last_touch_channel",
/// "last_touch_credited", "reply_times": [≤ 60], "replies_total"}</c> — the keys the JSON-node detector wrote.
/// </summary>
internal sealed class EngagementState : IDetectorState
{
    /// <summary>Hour-of-week slots: 7 × 24.</summary>
    public const int Slots = 168;

    /// <summary>How many reply times are kept for engagement decay (the newest).</summary>
    public const int ReplyTimesKept = 60;

    public double[] Touches { get; } = new double[Slots];

    /// <summary>Replies credited to the slot of the touch they answered.</summary>
    public double[] Replies { get; } = new double[Slots];

    /// <summary>Touches and credited replies per channel, in the order the channels were first seen.</summary>
    public List<ChannelCounts> Channels { get; } = [];

    public DateTimeOffset? LastTouchAt { get; set; }

    public int LastTouchSlot { get; set; }

    public string? LastTouchChannel { get; set; }

    public bool LastTouchCredited { get; set; }

    /// <summary>The newest reply times, oldest first.</summary>
    public List<DateTimeOffset> ReplyTimes { get; } = new(ReplyTimesKept + 1);

    public double RepliesTotal { get; set; }

    public ChannelCounts Channel(string name)
    {
        foreach (var channel in Channels)
        {
            if (string.Equals(channel.Name, name, StringComparison.Ordinal))
            {
                return channel;
            }
        }

        var added = new ChannelCounts(name);
        Channels.Add(added);
        return added;
    }

    public static EngagementState Read(JsonElement json)
    {
        var state = new EngagementState();
        if (json.ValueKind != JsonValueKind.Object)
        {
            return state;
        }

        foreach (var property in json.EnumerateObject())
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "touches": StateJson.ReadArray(value, state.Touches); break;
                case "replies": StateJson.ReadArray(value, state.Replies); break;
                case "channels" when value.ValueKind == JsonValueKind.Object:
                    foreach (var channel in value.EnumerateObject())
                    {
                        var counts = state.Channel(channel.Name);
                        if (channel.Value.ValueKind == JsonValueKind.Object)
                        {
                            counts.Touches = channel.Value.TryGetProperty("t", out var t) ? StateJson.Number(t) : 0;
                            counts.Replies = channel.Value.TryGetProperty("r", out var r) ? StateJson.Number(r) : 0;
                        }
                    }

                    break;
                case "last_touch_at": state.LastTouchAt = StateJson.Time(value); break;
                case "last_touch_slot": state.LastTouchSlot = (int)StateJson.Number(value); break;
                case "last_touch_channel": state.LastTouchChannel = value.ValueKind == JsonValueKind.String ? value.GetString() : null; break;
                case "last_touch_credited": state.LastTouchCredited = value.ValueKind == JsonValueKind.True; break;
                case "reply_times" when value.ValueKind == JsonValueKind.Array:
                    foreach (var time in value.EnumerateArray())
                    {
                        if (StateJson.Time(time) is { } at)
                        {
                            state.ReplyTimes.Add(at);
                        }
                    }

                    break;
                case "replies_total": state.RepliesTotal = StateJson.Number(value); break;
                default: break;
            }
        }

        return state;
    }

    public void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        StateJson.WriteArray(writer, "touches", Touches);
        StateJson.WriteArray(writer, "replies", Replies);
        writer.WriteStartObject("channels");
        foreach (var channel in Channels)
        {
            writer.WriteStartObject(channel.Name);
            writer.WriteNumber("t", channel.Touches);
            writer.WriteNumber("r", channel.Replies);
            writer.WriteEndObject();
        }

        writer.WriteEndObject();
        StateJson.WriteTime(writer, "last_touch_at", LastTouchAt);
        if (LastTouchAt is not null)
        {
            writer.WriteNumber("last_touch_slot", LastTouchSlot);
            writer.WriteString("last_touch_channel", LastTouchChannel);
            writer.WriteBoolean("last_touch_credited", LastTouchCredited);
        }

        writer.WriteStartArray("reply_times");
        foreach (var at in ReplyTimes)
        {
            writer.WriteStringValue(InsightMath.Text(at));
        }

        writer.WriteEndArray();
        writer.WriteNumber("replies_total", RepliesTotal);
        writer.WriteEndObject();
    }
}

/// <summary>One channel's touches and the replies credited to them.</summary>
internal sealed class ChannelCounts(string name)
{
    public string Name { get; } = name;

    public double Touches { get; set; }

    public double Replies { get; set; }
}

/// <summary>Reading and writing the stored states' values, as the JSON-node detector wrote them.</summary>
internal static class StateJson
{
    public static double Number(JsonElement value) =>
        value.ValueKind == JsonValueKind.Number
            ? value.TryGetDouble(out var d) ? d : double.Parse(value.GetRawText(), CultureInfo.InvariantCulture)
            : 0;

    public static string Text(JsonElement value) => value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText();

    public static DateTimeOffset? Time(JsonElement value) =>
        value.ValueKind == JsonValueKind.String
        && DateTimeOffset.TryParse(value.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var at)
            ? at
            : null;

    public static void ReadArray(JsonElement value, double[] into)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            return;
        }

        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (i == into.Length)
            {
                break;
            }

            into[i++] = Number(item);
        }
    }

    public static void WriteArray(Utf8JsonWriter writer, string name, double[] values)
    {
        writer.WriteStartArray(name);
        foreach (var value in values)
        {
            writer.WriteNumberValue(value);
        }

        writer.WriteEndArray();
    }

    public static void WriteTime(Utf8JsonWriter writer, string name, DateTimeOffset? at)
    {
        if (at is { } value)
        {
            writer.WriteString(name, InsightMath.Text(value));
        }
    }
}
