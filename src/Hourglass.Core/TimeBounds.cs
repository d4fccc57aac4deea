using System.Globalization;

namespace Hourglass;

/// <summary>
/// The times Hourglass takes from outside — API bodies, page cursors, command-line options: from
/// <see cref="Earliest"/> (1970-01-01T00:00:00Z, the lower bound the event and touch batches apply per line too) to
/// <see cref="Latest"/> (2999-12-31T23:59:59Z). Past them, .NET's years 1–9999 overflow as soon as a cycle adds a day or
/// converts to a time zone, and Npgsql writes the extremes as ±infinity; no account manager's hour lies there.
/// </summary>
internal static class TimeBounds
{
    /// <summary>1970-01-01T00:00:00Z.</summary>
    public static readonly DateTimeOffset Earliest = new(1970, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>2999-12-31T23:59:59Z.</summary>
    public static readonly DateTimeOffset Latest = new(2999, 12, 31, 23, 59, 59, TimeSpan.Zero);

    /// <summary>The range in words, as errors name it.</summary>
    public const string Range = "from 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z";

    /// <summary>Whether <paramref name="at"/> is within the range (both ends included).</summary>
    public static bool Contains(DateTimeOffset at) => at >= Earliest && at <= Latest;

    /// <summary>Whether UTC ticks (as a cursor carries them) are within the range; no <see cref="DateTimeOffset"/> is built before it is known to fit.</summary>
    public static bool ContainsTicks(long utcTicks) => utcTicks >= Earliest.UtcTicks && utcTicks <= Latest.UtcTicks;

    /// <summary>What is wrong with a time given as <paramref name="at"/>, or null when it is within the range.</summary>
    public static string? Problem(DateTimeOffset at) =>
        Contains(at) ? null : $"must be {Range} (got {at.ToString("yyyy-MM-dd'T'HH:mm:ssK", CultureInfo.InvariantCulture)})";

    /// <summary><paramref name="at"/> when it is within the range, else a <see cref="HourglassException"/> naming <paramref name="name"/> (an option) and the range.</summary>
    public static DateTimeOffset Checked(string name, DateTimeOffset at) => Problem(at) is { } problem ? throw new HourglassException($"{name}: {problem}") : at;
}
