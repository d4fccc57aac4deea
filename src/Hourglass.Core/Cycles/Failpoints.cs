using System.Globalization;

namespace Hourglass.Cycles;

/// <summary>
/// Named points where a test can make a real process stall, so crash tests can kill it at a known moment
/// (as FoundationDB's and TiKV's failpoints do). Off unless HOURGLASS_FAILPOINTS is set, e.g.
/// <c>cycle.after_plan=60000</c> (milliseconds to wait there). For tests only; never set it in production.
/// </summary>
internal static class Failpoints
{
    private static readonly IReadOnlyDictionary<string, int> s_delays = Parse(Environment.GetEnvironmentVariable("HOURGLASS_FAILPOINTS"));

    public static Task HitAsync(string name, CancellationToken cancellationToken) =>
        s_delays.TryGetValue(name, out var milliseconds) ? Task.Delay(milliseconds, cancellationToken) : Task.CompletedTask;

    internal static IReadOnlyDictionary<string, int> Parse(string? value)
    {
        var delays = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = entry.Split('=', 2);
            if (parts.Length == 2 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var milliseconds))
            {
                delays[parts[0]] = milliseconds;
            }
        }

        return delays;
    }
}
