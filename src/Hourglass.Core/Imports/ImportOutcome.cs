namespace Hourglass.Imports;

/// <summary>
/// What happened to one line of an import, whatever its kind: <see cref="Recorded"/>, <see cref="Duplicate"/> (its
/// idempotency key was already used for the same record) or <see cref="Rejected"/> (with <see cref="Error"/>).
/// <see cref="LineNumber"/> is the line's number in its file or batch. A kind adds what it knows of the record (an
/// event's id, a touch's entity).
/// </summary>
public abstract record ImportOutcome(int LineNumber, string Outcome, string? IdempotencyKey, string? Error)
{
    public const string Recorded = "recorded";

    public const string Duplicate = "duplicate";

    public const string Rejected = "rejected";
}
