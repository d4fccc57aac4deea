namespace Hourglass.Insights;

/// <summary>One event, checked, as the bulk path writes it.</summary>
internal readonly record struct EventRow(string EventType, string? EntityType, Guid? EntityId, ReadOnlyMemory<char> Payload, string Source,
    DateTime OccurredAt, bool ExplicitTime, string? Key);
