using System.Globalization;
using System.Text.Json;

namespace Hourglass.Engagement.Inbound.Providers;

/// <summary>
/// One event of a posted batch as a parser read it: the <see cref="DeliveryEvent"/> to record, or the reason it is skipped
/// (a type Hourglass does not record, a provider event missing what an event needs). <c>Index</c> is its position in the
/// batch, <c>EventId</c> and <c>SourceType</c> the sender's id and type as sent, when there were any.
/// </summary>
internal sealed record InboundItem(int Index, string? EventId, string? SourceType, DeliveryEvent? Event, string? SkipReason)
{
    public static InboundItem Record(int index, string? sourceType, DeliveryEvent delivery) => new(index, delivery.SourceEventId, sourceType, delivery, null);

    public static InboundItem Skip(int index, string? eventId, string? sourceType, string reason) => new(index, eventId, sourceType, null, reason);
}

/// <summary>A body refused whole (not JSON, not the documented shape): nothing of it is recorded; the message names what is wrong.</summary>
internal sealed class InboundPayloadException(string message) : Exception(message);

/// <summary>Reading provider JSON leniently: a property of the wrong kind reads as absent.</summary>
internal static class InboundJson
{
    /// <summary>The longest id, address, reason or header value kept (longer text is cut, never refused).</summary>
    public const int MaxText = 1000;

    public static string? Text(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            && value.GetString() is { } text && !string.IsNullOrWhiteSpace(text)
            ? Cut(text.Trim())
            : null;

    public static JsonElement? Object(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Object ? value : null;

    public static string Cut(string text) => text.Length <= MaxText ? text : text[..MaxText];

    /// <summary>An ISO 8601 time with its offset (or Z); null for anything else.</summary>
    public static DateTimeOffset? Time(string? text) =>
        // RoundtripKind reads a time without an offset as Unspecified: refused, since its zone would be a guess.
        text is not null && DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var kind)
            && kind.Kind != DateTimeKind.Unspecified
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out var at)
            ? at
            : null;

    /// <summary>A uuid written in any of .NET's usual forms, or null.</summary>
    public static Guid? Uuid(string? text) => Guid.TryParse(text, out var id) ? id : null;

    /// <summary>Parses the body, refusing it whole (naming why) when it is not JSON.</summary>
    public static JsonDocument Parse(ReadOnlyMemory<byte> body)
    {
        try
        {
            return JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException ex)
        {
            throw new InboundPayloadException($"the body is not JSON ({ex.Message.Split(" Path:", 2)[0].Split(" LineNumber:", 2)[0].TrimEnd('.')})");
        }
    }
}
