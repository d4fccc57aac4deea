using System.Text.Json;
using Hourglass.Imports;

namespace Hourglass.Engagement;

/// <summary>What happened to one touch: <c>recorded</c>, <c>duplicate</c> (its idempotency key was already used for it) or <c>rejected</c>.</summary>
internal sealed record TouchOutcome(int LineNumber, string Outcome, string? EntityType, Guid? EntityId, string? IdempotencyKey, string? Error)
    : ImportOutcome(LineNumber, Outcome, IdempotencyKey, Error)
{
    protected override void WriteKindColumns(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteString("entity_type", EntityType);
        if (EntityId is { } id)
        {
            writer.WriteString("entity_id", id);
        }
        else
        {
            writer.WriteNull("entity_id");
        }
    }
}
