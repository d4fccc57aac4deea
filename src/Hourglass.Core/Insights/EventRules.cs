using System.Globalization;
using System.Text.Json.Nodes;

namespace Hourglass.Insights;

/// <summary>
/// The rules of <c>public.ingest_events</c> (20251225000000_event_ingestion.sql), in C# for the bulk path: the same
/// checks in the same order, with the same messages. Pure: the database clock and the tenant's skew come in.
/// </summary>
internal static class EventRules
{
    private static readonly string[] s_entityTypes = ["contact", "account", "order", "tenant"];
    private static readonly long s_epochTicks = DateTime.UnixEpoch.Ticks;

    /// <summary>
    /// The row, or the line's error; and separately an error about its time, which ranks behind the entity checks
    /// the caller makes against the database.
    /// </summary>
    public static (EventRow? Row, string? Error, string? TimeError) Check(EventFields fields, DateTime now, int skewSeconds)
    {
        if (fields.ShapeError is { } shape)
        {
            return (null, shape, null);
        }

        var eventType = fields.EventType;
        if (eventType is null || IsBlank(eventType) || CodePoints(eventType) > 100)
        {
            return (null, "event_type is required (1-100 characters)", null);
        }

        // The shared instance of a known type: a million rows hold four strings, not a million.
        var entityType = fields.EntityType is { } givenType ? Array.Find(s_entityTypes, t => t == givenType) : null;
        if (fields.EntityType is not null && entityType is null)
        {
            return (null, $"entity_type must be 'contact', 'account', 'order' or 'tenant' (got {Literal(fields.EntityType)})", null);
        }

        if (entityType is null && fields.EntityId is not null)
        {
            return (null, "entity_id is given without an entity_type", null);
        }

        Guid? entityId = null;
        if (entityType is not null)
        {
            if (fields.EntityId is not { Length: 36 } text || !Guid.TryParseExact(text, "D", out var id))
            {
                return (null, $"entity_id must be a uuid (got {(fields.EntityId is null ? "nothing" : Literal(fields.EntityId))})", null);
            }

            entityId = id;
        }

        if (fields.Source is { } source && (IsBlank(source) || CodePoints(source) > 100))
        {
            return (null, "source must be 1-100 characters", null);
        }

        long ticks = 0;
        if (fields.OccurredAt is { } occurred && !TryParseTimestamp(occurred, out ticks))
        {
            return (null, $"occurred_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2025-12-01T09:30:00Z (got {Literal(occurred)})", null);
        }

        if (fields.IdempotencyKey is { } key && (IsBlank(key) || CodePoints(key) > 200))
        {
            return (null, "idempotency_key must be 1-200 characters", null);
        }

        string? timeError = null;
        var at = now;
        if (fields.OccurredAt is { } given)
        {
            if (ticks < s_epochTicks)
            {
                timeError = $"occurred_at {Literal(given)} is before 1970";
            }
            else if (ticks > now.Ticks + (skewSeconds * TimeSpan.TicksPerSecond))
            {
                timeError = string.Create(CultureInfo.InvariantCulture,
                    $"occurred_at {Literal(given)} is in the future (more than {skewSeconds} seconds ahead of the database clock)");
            }
            else
            {
                at = new DateTime(ticks, DateTimeKind.Utc);
            }
        }

        var row = new EventRow(eventType, entityType, entityId, fields.PayloadJson ?? "{}".AsMemory(), fields.Source ?? "api", at, fields.OccurredAt is not null,
            fields.IdempotencyKey);
        return (row, null, timeError);
    }

    /// <summary>
    /// Whether a later line with the same key is the same event as the first: type, entity and payload (as jsonb
    /// compares them), and the time when the later line gives one.
    /// </summary>
    public static bool SameEvent(EventRow first, EventRow later) =>
        first.EventType == later.EventType && first.EntityType == later.EntityType && first.EntityId == later.EntityId
        && (!later.ExplicitTime || first.OccurredAt == later.OccurredAt)
        && (first.Payload.Span.SequenceEqual(later.Payload.Span)
            || JsonNode.DeepEquals(JsonNode.Parse(first.Payload.ToString()), JsonNode.Parse(later.Payload.ToString())));

    /// <summary>PostgreSQL's quote_literal (format's %L): single quotes doubled; with a backslash, an E'' string with it doubled.</summary>
    public static string Literal(string value) =>
        value.Contains('\\', StringComparison.Ordinal)
            ? $"E'{value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal)}'"
            : $"'{value.Replace("'", "''", StringComparison.Ordinal)}'";

    // btrim's default trims spaces only.
    private static bool IsBlank(string value) => value.AsSpan().Trim(' ').IsEmpty;

    // length() counts characters, not UTF-16 units.
    private static int CodePoints(string value)
    {
        var count = value.Length;
        foreach (var c in value)
        {
            if (char.IsLowSurrogate(c))
            {
                count--;
            }
        }

        return count;
    }

    /// <summary>
    /// ISO-8601 with a UTC offset, as ingest_events' pattern accepts it —
    /// <c>YYYY-MM-DD[T ]hh:mm[:ss[.f{1,9}]](Z|z|±HH[[:]MM])</c>, a real date, offsets to ±15:59 — as UTC ticks,
    /// fractions rounded to microseconds as PostgreSQL rounds them. The ticks may fall outside DateTime's range.
    /// </summary>
    public static bool TryParseTimestamp(string text, out long utcTicks)
    {
        utcTicks = 0;
        var s = text.AsSpan();
        if (s.Length < 17 || !Digits(s, 0, 4, out var year) || s[4] != '-' || !Digits(s, 5, 2, out var month) || s[7] != '-'
            || !Digits(s, 8, 2, out var day) || s[10] is not ('T' or ' ') || !Digits(s, 11, 2, out var hour) || s[13] != ':'
            || !Digits(s, 14, 2, out var minute))
        {
            return false;
        }

        var position = 16;
        var second = 0;
        long micros = 0;
        if (s[position] == ':')
        {
            if (!Digits(s, position + 1, 2, out second))
            {
                return false;
            }

            position += 3;
            if (position < s.Length && s[position] == '.')
            {
                var end = position + 1;
                while (end < s.Length && char.IsAsciiDigit(s[end]))
                {
                    end++;
                }

                if (end - position - 1 is < 1 or > 9)
                {
                    return false;
                }

                // As PostgreSQL: the fraction as a double, times 10^6, rounded half to even (rint).
                micros = (long)Math.Round(double.Parse(s[position..end], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture) * 1_000_000,
                    MidpointRounding.ToEven);
                position = end;
            }
        }

        if (position >= s.Length)
        {
            return false;
        }

        if (!TryParseOffset(s[position..], out var offsetMinutes))
        {
            return false;
        }

        if (year == 0 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59)
        {
            return false;
        }

        utcTicks = new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc).Ticks + (micros * 10) - (offsetMinutes * TimeSpan.TicksPerMinute);
        return true;
    }

    // Z, z, ±HH, ±HHMM or ±HH:MM, up to ±15:59 (PostgreSQL's limit), as minutes east of UTC.
    private static bool TryParseOffset(ReadOnlySpan<char> zone, out int minutes)
    {
        minutes = 0;
        if (zone is "Z" or "z")
        {
            return true;
        }

        if (zone.Length < 3 || zone[0] is not ('+' or '-') || !Digits(zone, 1, 2, out var hours) || hours > 15)
        {
            return false;
        }

        var extra = 0;
        var valid = zone.Length switch
        {
            3 => true,
            5 => Digits(zone, 3, 2, out extra) && extra <= 59,
            6 => zone[3] == ':' && Digits(zone, 4, 2, out extra) && extra <= 59,
            _ => false,
        };
        minutes = (zone[0] == '-' ? -1 : 1) * ((hours * 60) + extra);
        return valid;
    }

    private static bool Digits(ReadOnlySpan<char> s, int start, int count, out int value)
    {
        value = 0;
        if (start + count > s.Length)
        {
            return false;
        }

        for (var i = start; i < start + count; i++)
        {
            if (!char.IsAsciiDigit(s[i]))
            {
                return false;
            }

            value = (value * 10) + (s[i] - '0');
        }

        return true;
    }
}
