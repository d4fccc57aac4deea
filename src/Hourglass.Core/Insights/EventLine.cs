using System.Text.Json.Nodes;

namespace Hourglass.Insights;

/// <summary>
/// One line of an event file: the event's JSON text, or why the line could not be read. LineNumber is 1-based, in
/// the file (for CSV, the line the record starts on). The JSON is checked when the line is recorded — an unreadable
/// one comes back rejected with its number — or at once with <see cref="Parse"/>.
/// </summary>
internal sealed record EventLine(int LineNumber, string? Json, string? Error)
{
    /// <summary>
    /// Checks one event's JSON text now: an object with the fields of <see cref="EventIngestion.Fields"/>. Text that is
    /// not a JSON object, repeats a property, or holds what PostgreSQL cannot store (U+0000, an unpaired surrogate)
    /// comes back with <see cref="Error"/> set.
    /// </summary>
    public static EventLine Parse(int lineNumber, string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var error = EventFields.Read(json).Error;
        return error is null ? new EventLine(lineNumber, json, null) : new EventLine(lineNumber, null, error);
    }

    /// <summary>An event built in code, checked as <see cref="Parse"/> checks a line.</summary>
    public static EventLine FromObject(int lineNumber, JsonObject value)
    {
        ArgumentNullException.ThrowIfNull(value);
        string json;
        try
        {
            json = value.ToJsonString();
        }
        catch (InvalidOperationException)
        {
            return new EventLine(lineNumber, null, "not valid JSON (a string with an unpaired surrogate)");
        }

        return Parse(lineNumber, json);
    }
}
