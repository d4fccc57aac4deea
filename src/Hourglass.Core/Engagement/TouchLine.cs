using System.Text.Json.Nodes;

namespace Hourglass.Engagement;

/// <summary>
/// One line of a touch file: the touch as JSON, or why the line could not be read. LineNumber is 1-based, in the
/// file (for CSV, the line the record starts on).
/// </summary>
internal sealed record TouchLine(int LineNumber, JsonObject? Touch, string? Error);
