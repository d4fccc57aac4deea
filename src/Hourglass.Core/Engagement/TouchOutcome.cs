using Hourglass.Imports;

namespace Hourglass.Engagement;

/// <summary>What happened to one touch: <c>recorded</c>, <c>duplicate</c> (its idempotency key was already used for it) or <c>rejected</c>.</summary>
public sealed record TouchOutcome(int LineNumber, string Outcome, string? EntityType, Guid? EntityId, string? IdempotencyKey, string? Error)
    : ImportOutcome(LineNumber, Outcome, IdempotencyKey, Error);
