using System.Text.Json;

namespace Hourglass.Imports;

/// <summary>
/// What happened to one line of an import, whatever its kind: <see cref="Recorded"/>, <see cref="Duplicate"/> (its
/// idempotency key was already used for the same record) or <see cref="Rejected"/> (with <see cref="Error"/>).
/// <see cref="LineNumber"/> is the line's number in its file or batch. A kind adds what it knows of the record (an
/// event's id, a touch's entity).
/// </summary>
internal abstract record ImportOutcome(int LineNumber, string Outcome, string? IdempotencyKey, string? Error)
{
    public const string Recorded = "recorded";

    public const string Duplicate = "duplicate";

    public const string Rejected = "rejected";

    /// <summary>
    /// The outcome as the batch functions return it, one JSON object with their column names in their order:
    /// <c>line</c>, <c>outcome</c>, the kind's own columns, <c>idempotency_key</c>, <c>error</c> (the API's answer).
    /// </summary>
    public void WriteTo(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteNumber("line", LineNumber);
        writer.WriteString("outcome", Outcome);
        WriteKindColumns(writer);
        writer.WriteString("idempotency_key", IdempotencyKey);
        writer.WriteString("error", Error);
        writer.WriteEndObject();
    }

    /// <summary>The kind's own columns of <see cref="WriteTo"/>, null ones written as null.</summary>
    protected abstract void WriteKindColumns(Utf8JsonWriter writer);
}
