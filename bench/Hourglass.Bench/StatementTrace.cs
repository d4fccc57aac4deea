using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Hourglass.Bench;

/// <summary>
/// The SQL a piece of code sends, from Npgsql's own trace (its "Npgsql" ActivitySource, which tags every
/// command with its text as db.query.text): used to check that a baseline sends exactly what the code it
/// stands for sends. Listening costs time, so it is only ever on for untimed runs.
/// </summary>
internal static class StatementTrace
{
    /// <summary>Runs <paramref name="action"/> and counts the statements sent meanwhile, by text with whitespace collapsed.</summary>
    public static async Task<IReadOnlyDictionary<string, int>> RecordAsync<T>(Func<Task<T>> action)
    {
        var counts = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.GetTagItem("db.query.text") is string text)
                {
                    counts.AddOrUpdate(Normalize(text), 1, (_, n) => n + 1);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        await action();
        return counts;
    }

    /// <summary>
    /// Fails unless both sent the same statements the same number of times; otherwise describes the match.
    /// </summary>
    public static string Compare(string what, IReadOnlyDictionary<string, int> code, IReadOnlyDictionary<string, int> baseline, int cycles)
    {
        var differences = code.Keys.Union(baseline.Keys)
            .Where(s => code.GetValueOrDefault(s) != baseline.GetValueOrDefault(s))
            .Select(s => $"{code.GetValueOrDefault(s)} by the worker, {baseline.GetValueOrDefault(s)} by the baseline: {s[..Math.Min(100, s.Length)]}…")
            .ToList();
        if (differences.Count > 0)
        {
            throw new HourglassException(
                $"cycles: the baseline no longer sends what the worker sends ({what}); update bench/Hourglass.Bench/CycleBaseline.cs: " +
                string.Join(" | ", differences));
        }

        var total = code.Values.Sum();
        return string.Create(CultureInfo.InvariantCulture,
            $"{what}: the baseline sent the worker's {code.Count} distinct statements the same number of times each " +
            $"({total:#,0} in {cycles} cycles, {(double)total / cycles:0.#} per cycle), by Npgsql's trace");
    }

    private static string Normalize(string text) => string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
}
