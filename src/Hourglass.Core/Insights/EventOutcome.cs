using Hourglass.Imports;

namespace Hourglass.Insights;

/// <summary>
/// What happened to one event: <c>recorded</c>, <c>duplicate</c> (its idempotency key was already used for the same
/// event, whose id <see cref="EventId"/> is) or <c>rejected</c> (with <see cref="ImportOutcome.Error"/>).
/// </summary>
public sealed record EventOutcome(int LineNumber, string Outcome, Guid? EventId, string? IdempotencyKey, string? Error)
    : ImportOutcome(LineNumber, Outcome, IdempotencyKey, Error);
