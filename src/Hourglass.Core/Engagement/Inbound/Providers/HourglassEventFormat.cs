using System.Text.Json;

namespace Hourglass.Engagement.Inbound.Providers;

/// <summary>
/// Hourglass's own inbound event format (docs/inbound.md, "Webhooks: Hourglass's own format"): a JSON object whose
/// <c>events</c> array holds events in the <see cref="DeliveryEventType"/> vocabulary, each naming its message by
/// <c>outbox_id</c>, <c>provider_message_id</c> or <c>message_id_header</c>. The sender is the tenant's own code, so the
/// batch is all or nothing: any malformed event refuses the whole batch, naming <c>events[i].field</c>, and nothing is
/// recorded — fix it and send it again.
/// </summary>
internal static class HourglassEventFormat
{
    /// <summary>The most events one POST may carry.</summary>
    public const int MaxEvents = 1000;

    private static readonly HashSet<string> s_eventFields = ["id", "type", "occurred_at", "message", "recipient", "reason", "reply"];

    /// <exception cref="InboundPayloadException">The body is not the documented format; the message names the first fault.</exception>
    public static IReadOnlyList<InboundItem> Parse(ReadOnlyMemory<byte> body)
    {
        using var document = InboundJson.Parse(body);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("events", out var events) || events.ValueKind != JsonValueKind.Array)
        {
            throw new InboundPayloadException("the body must be a JSON object with an \"events\" array");
        }

        if (events.GetArrayLength() > MaxEvents)
        {
            throw new InboundPayloadException($"events: at most {MaxEvents} events per request (got {events.GetArrayLength()}); send them in several");
        }

        var items = new List<InboundItem>();
        var index = 0;
        foreach (var element in events.EnumerateArray())
        {
            items.Add(InboundItem.Record(index, null, ParseEvent(element, $"events[{index}]")));
            index++;
        }

        return items;
    }

    private static DeliveryEvent ParseEvent(JsonElement element, string at)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new InboundPayloadException($"{at}: must be an object");
        }

        foreach (var property in element.EnumerateObject())
        {
            if (!s_eventFields.Contains(property.Name))
            {
                throw new InboundPayloadException($"{at}.{property.Name}: not a field of an event (fields: {string.Join(", ", s_eventFields)})");
            }
        }

        var id = Required(element, at, "id", MaxIdLength);
        var type = Required(element, at, "type");
        if (!DeliveryEventType.All.Contains(type))
        {
            throw new InboundPayloadException($"{at}.type: unknown event type '{type}' (one of {string.Join(", ", DeliveryEventType.All)})");
        }

        var occurredAt = InboundJson.Time(Required(element, at, "occurred_at"))
                         ?? throw new InboundPayloadException($"{at}.occurred_at: must be an ISO 8601 time with its offset, e.g. 2026-12-07T10:15:00Z");
        var message = ParseMessage(element, at);
        var recipient = Optional(element, at, "recipient");
        var reason = Optional(element, at, "reason");

        InboundReply? reply = null;
        if (element.TryGetProperty("reply", out var replyElement) && replyElement.ValueKind != JsonValueKind.Null)
        {
            if (type != DeliveryEventType.Reply)
            {
                throw new InboundPayloadException($"{at}.reply: only for an event of type reply");
            }

            if (replyElement.ValueKind != JsonValueKind.Object)
            {
                throw new InboundPayloadException($"{at}.reply: must be an object {{from, subject, text}}");
            }

            reply = new InboundReply(Optional(replyElement, $"{at}.reply", "from"), Optional(replyElement, $"{at}.reply", "subject"),
                Required(replyElement, $"{at}.reply", "text", InboundReplyMaxText));
        }
        else if (type == DeliveryEventType.Reply)
        {
            throw new InboundPayloadException($"{at}.reply: required for an event of type reply ({{from, subject, text}})");
        }

        return new DeliveryEvent(InboundSourceKind.Hourglass, id, type, occurredAt, message, recipient, reason, reply);
    }

    /// <summary>The longest event id taken (the recorder's limit).</summary>
    public const int MaxIdLength = 500;

    /// <summary>The longest reply text taken (a quoted thread beyond it says nothing the classifier needs).</summary>
    public const int InboundReplyMaxText = 100_000;

    private static MessageReference ParseMessage(JsonElement element, string at)
    {
        if (!element.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.Object)
        {
            throw new InboundPayloadException($"{at}.message: required, an object naming the message: outbox_id, provider_message_id or message_id_header");
        }

        Guid? outboxId = null;
        if (Optional(message, $"{at}.message", "outbox_id") is { } text)
        {
            outboxId = InboundJson.Uuid(text) ?? throw new InboundPayloadException($"{at}.message.outbox_id: '{text}' is not a uuid");
        }

        var providerId = Optional(message, $"{at}.message", "provider_message_id");
        var header = Optional(message, $"{at}.message", "message_id_header");
        if (outboxId is null && providerId is null && header is null)
        {
            throw new InboundPayloadException($"{at}.message: name the message by outbox_id, provider_message_id or message_id_header");
        }

        return new MessageReference(outboxId, providerId, header is null ? null : [header]);
    }

    private static string Required(JsonElement element, string at, string name, int maxLength = InboundJson.MaxText) =>
        Optional(element, at, name, maxLength) ?? throw new InboundPayloadException($"{at}.{name}: required");

    private static string? Optional(JsonElement element, string at, string name, int maxLength = InboundJson.MaxText)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            throw new InboundPayloadException($"{at}.{name}: must be a string");
        }

        var text = value.GetString()!.Trim();
        if (text.Length > maxLength)
        {
            throw new InboundPayloadException($"{at}.{name}: longer than {maxLength} characters");
        }

        return text.Length == 0 ? throw new InboundPayloadException($"{at}.{name}: must not be empty") : text;
    }
}
