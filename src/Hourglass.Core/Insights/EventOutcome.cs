using System.Text.Json;
using Hourglass.Imports;

namespace Hourglass.Insights;

/// <summary>
/// What happened to one event: <c>recorded</c>, <c>duplicate</c> (its idempotency key was already used for the same
/// event, whose id <see cref="EventId"/> is) or <c>rejected</c> (with <see cref="ImportOutcome.Error"/>).
/// </summary>
internal sealed record EventOutcome(int LineNumber, string Outcome, Guid? EventId, string? IdempotencyKey, string? Error)
    : ImportOutcome(LineNumber, Outcome, IdempotencyKey, Error)
{
    protected override void WriteKindColumns(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (EventId is { } id)
        {
            writer.WriteString("event_id", id);
        }
        else
        {
            writer.WriteNull("event_id");
        }
    }
}
