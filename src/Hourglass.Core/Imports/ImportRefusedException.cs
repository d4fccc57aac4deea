using System.Globalization;

namespace Hourglass.Imports;

/// <summary>
/// A batch was refused (<see cref="ImportErrorMode.Refuse"/>): nothing was recorded. <see cref="Rejected"/> names every
/// bad line and why; the message names the first twenty, in the words the database functions use when they refuse a
/// batch themselves.
/// </summary>
internal sealed class ImportRefusedException(string records, IReadOnlyList<ImportOutcome> rejected, int total)
    : HourglassException(Describe(records, rejected, total))
{
    /// <summary>The rejected lines, in line order.</summary>
    public IReadOnlyList<ImportOutcome> Rejected { get; } = rejected;

    private static string Describe(string records, IReadOnlyList<ImportOutcome> rejected, int total)
    {
        var shown = string.Join("; ", rejected.Take(20).Select(r => string.Create(CultureInfo.InvariantCulture, $"line {r.LineNumber}: {r.Error}")));
        return string.Create(CultureInfo.InvariantCulture,
            $"{rejected.Count} of {total} {records} rejected, nothing recorded: {shown}{(rejected.Count > 20 ? "; …" : "")}");
    }
}
