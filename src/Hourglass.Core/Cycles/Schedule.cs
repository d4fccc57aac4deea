using Cronos;

namespace Hourglass.Cycles;

/// <summary>A schedule value that cannot be used; <see cref="Field"/> names which.</summary>
internal sealed class InvalidScheduleException(string field, string message) : HourglassException($"{field}: {message}")
{
    public string Field { get; } = field;
}

/// <summary>
/// When a tenant's cycles are due: a five-field cron expression read in an IANA time zone (Cronos), so
/// "every hour" and "09:00 on weekdays" mean what the tenant's people mean, across daylight-saving changes.
/// Occurrences are instants; a cycle's hour is the UTC hour of its occurrence, so no real hour runs twice
/// and none is lost when clocks go back or forward.
/// </summary>
internal sealed class CycleSchedule
{
    /// <summary>Every hour, on the hour: the default.</summary>
    public const string Hourly = "0 * * * *";

    private CycleSchedule(string cron, CronExpression expression, TimeZoneInfo zone)
    {
        Cron = cron;
        Expression = expression;
        Zone = zone;
    }

    public string Cron { get; }

    public TimeZoneInfo Zone { get; }

    private CronExpression Expression { get; }

    /// <summary>Parses and validates; throws <see cref="InvalidScheduleException"/> naming the bad field.</summary>
    public static CycleSchedule Parse(string? cron, string? timeZone)
    {
        if (string.IsNullOrWhiteSpace(cron))
        {
            throw new InvalidScheduleException("cron", "a cron expression is required (e.g. '0 * * * *' for hourly)");
        }

        CronExpression expression;
        try
        {
            expression = CronExpression.Parse(cron.Trim(), CronFormat.Standard);
        }
        catch (CronFormatException ex)
        {
            throw new InvalidScheduleException("cron", $"'{cron}' is not a five-field cron expression: {ex.Message}");
        }

        if (string.IsNullOrWhiteSpace(timeZone))
        {
            throw new InvalidScheduleException("timezone", "a time zone is required (an IANA name such as 'Europe/Berlin')");
        }

        TimeZoneInfo zone;
        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(timeZone.Trim());
        }
        catch (TimeZoneNotFoundException)
        {
            throw new InvalidScheduleException("timezone", $"'{timeZone}' is not an IANA time zone");
        }
        catch (InvalidTimeZoneException)
        {
            throw new InvalidScheduleException("timezone", $"'{timeZone}' is not a valid time zone");
        }

        return new CycleSchedule(cron.Trim(), expression, zone);
    }

    /// <summary>The first occurrence strictly after <paramref name="instant"/>, in UTC.</summary>
    public DateTimeOffset NextAfter(DateTimeOffset instant) => Next(instant, inclusive: false)
        ?? throw new InvalidScheduleException("cron", $"'{Cron}' has no occurrence after {instant:O}");

    /// <summary>Occurrences in [<paramref name="from"/>, <paramref name="to"/>], oldest first, in UTC, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<DateTimeOffset> Between(DateTimeOffset from, DateTimeOffset to, int limit = int.MaxValue)
    {
        var result = new List<DateTimeOffset>();
        for (var next = Next(from, inclusive: true); next is { } at && at <= to && result.Count < limit; next = Next(at, inclusive: false))
        {
            result.Add(at);
        }

        return result;
    }

    // Cronos returns instants in the zone's offset; the database takes UTC only.
    private DateTimeOffset? Next(DateTimeOffset instant, bool inclusive) =>
        Expression.GetNextOccurrence(instant.ToUniversalTime(), Zone, inclusive)?.ToUniversalTime();

    /// <summary>The UTC hour a cycle at <paramref name="instant"/> belongs to (its reflection's hour).</summary>
    public static DateTimeOffset HourBucket(DateTimeOffset instant)
    {
        var utc = instant.ToUniversalTime();
        return new DateTimeOffset(utc.Year, utc.Month, utc.Day, utc.Hour, 0, 0, TimeSpan.Zero);
    }
}
