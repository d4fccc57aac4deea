using System.Globalization;

namespace Hourglass.Insights;

/// <summary>A batch of events was refused: nothing was recorded. <see cref="Rejected"/> names every bad line and why.</summary>
public sealed class EventBatchRefusedException(IReadOnlyList<EventOutcome> rejected, int total)
    : HourglassException(Describe(rejected, total))
{
    public IReadOnlyList<EventOutcome> Rejected { get; } = rejected;

    private static string Describe(IReadOnlyList<EventOutcome> rejected, int total)
    {
        var shown = string.Join("; ", rejected.Take(20).Select(r => string.Create(CultureInfo.InvariantCulture, $"line {r.LineNumber}: {r.Error}")));
        return string.Create(CultureInfo.InvariantCulture,
            $"{rejected.Count} of {total} events rejected, nothing recorded: {shown}{(rejected.Count > 20 ? "; …" : "")}");
    }
}
