using System.Text.Json;
using Hourglass.Engagement.Outbox;

namespace Hourglass.Engagement.Inbound.Providers;

/// <summary>
/// Resend's email webhooks (docs/inbound.md, "Resend"): one event per POST, <c>{type, created_at, data}</c>, signed by
/// Svix (Standard Webhooks under <c>svix-</c> headers). The <c>svix-id</c> header is the event's id (a retry carries the
/// same one); <c>data.email_id</c> is Resend's message id. Mapped: <c>email.delivered</c> → delivered;
/// <c>email.bounced</c> → hard bounce when <c>data.bounce.type</c> is Permanent (or absent: Resend sends the event for a
/// permanent rejection), soft when Transient or Undetermined; <c>email.complained</c> → complaint.
/// <c>email.delivery_delayed</c> is skipped: Resend is still retrying, and sends <c>email.bounced</c> if it gives up.
/// Every other type (sent, opened, clicked, received …) is skipped with its name.
/// </summary>
internal static class ResendEvents
{
    /// <summary>The tag (or header) whose value is Hourglass's outbox id, when the sender set one.</summary>
    public const string OutboxTag = SmtpTransport.OutboxIdKey;

    /// <exception cref="InboundPayloadException">The body is not a JSON object with a <c>type</c>.</exception>
    public static IReadOnlyList<InboundItem> Parse(string eventId, ReadOnlyMemory<byte> body)
    {
        using var document = InboundJson.Parse(body);
        var root = document.RootElement;
        if (InboundJson.Text(root, "type") is not { } type)
        {
            throw new InboundPayloadException("the body must be a JSON object with a \"type\" (a Resend webhook event)");
        }

        var eventType = type switch
        {
            "email.delivered" => DeliveryEventType.Delivered,
            "email.bounced" => BounceType(root),
            "email.complained" => DeliveryEventType.Complaint,
            _ => null,
        };
        if (eventType is null)
        {
            return [InboundItem.Skip(0, eventId, type, type == "email.delivery_delayed"
                ? "delivery delayed: Resend is still retrying (email.bounced follows if it gives up)"
                : $"'{type}' is not a delivery event Hourglass records")];
        }

        var data = InboundJson.Object(root, "data");
        if (data is not { } fields || InboundJson.Text(fields, "email_id") is not { } emailId)
        {
            return [InboundItem.Skip(0, eventId, type, "no data.email_id: the event does not name its email")];
        }

        var occurredAt = InboundJson.Time(InboundJson.Text(root, "created_at")) ?? InboundJson.Time(InboundJson.Text(fields, "created_at"));
        if (occurredAt is not { } at)
        {
            return [InboundItem.Skip(0, eventId, type, "no created_at: the event has no time")];
        }

        var (outboxId, messageIds) = Metadata(fields);
        var bounce = InboundJson.Object(fields, "bounce");
        var reason = bounce is { } b
            ? string.Join(": ", new[] { InboundJson.Text(b, "type"), InboundJson.Text(b, "subType"), InboundJson.Text(b, "message") }.Where(t => t is not null))
            : null;
        var delivery = new DeliveryEvent(InboundSourceKind.Resend, eventId, eventType, at,
            new MessageReference(outboxId, emailId, messageIds.Count == 0 ? null : messageIds), Recipient(fields), string.IsNullOrEmpty(reason) ? null : InboundJson.Cut(reason));
        return [InboundItem.Record(0, type, delivery)];
    }

    // Permanent → hard; Transient and Undetermined → soft (retried, hard after the tenant's limit); absent → hard, as
    // Resend documents email.bounced for a permanent rejection.
    private static string BounceType(JsonElement root) =>
        (InboundJson.Object(root, "data") is { } data && InboundJson.Object(data, "bounce") is { } bounce ? InboundJson.Text(bounce, "type") : null) switch
        {
            null => DeliveryEventType.HardBounce,
            var kind when kind.Equals("Permanent", StringComparison.OrdinalIgnoreCase) => DeliveryEventType.HardBounce,
            _ => DeliveryEventType.SoftBounce,
        };

    private static string? Recipient(JsonElement data)
    {
        if (!data.TryGetProperty("to", out var to))
        {
            return null;
        }

        var first = to.ValueKind switch
        {
            JsonValueKind.String => to.GetString(),
            JsonValueKind.Array => to.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()).FirstOrDefault(),
            _ => null,
        };
        return string.IsNullOrWhiteSpace(first) ? null : InboundJson.Cut(first.Trim());
    }

    // Tags come as an object ({"name": "value"}) or as [{name, value}]; headers, when present, as [{name, value}]. The
    // outbox id tag names the message outright; a Message-ID header names it as Hourglass set it.
    private static (Guid? OutboxId, List<string> MessageIds) Metadata(JsonElement data)
    {
        Guid? outboxId = null;
        var messageIds = new List<string>();
        foreach (var (name, value) in Pairs(data, "tags").Concat(Pairs(data, "headers")))
        {
            if (name.Equals(OutboxTag, StringComparison.OrdinalIgnoreCase) || name.Equals("X-Hourglass-Outbox-Id", StringComparison.OrdinalIgnoreCase))
            {
                outboxId ??= InboundJson.Uuid(value);
            }
            else if (name.Equals("Message-ID", StringComparison.OrdinalIgnoreCase) || name.Equals("In-Reply-To", StringComparison.OrdinalIgnoreCase))
            {
                messageIds.Add(InboundJson.Cut(value));
            }
        }

        return (outboxId, messageIds);
    }

    private static IEnumerable<(string Name, string Value)> Pairs(JsonElement data, string property)
    {
        if (!data.TryGetProperty(property, out var pairs))
        {
            yield break;
        }

        if (pairs.ValueKind == JsonValueKind.Object)
        {
            foreach (var pair in pairs.EnumerateObject())
            {
                if (pair.Value.ValueKind == JsonValueKind.String && pair.Value.GetString() is { Length: > 0 } value)
                {
                    yield return (pair.Name, value);
                }
            }
        }
        else if (pairs.ValueKind == JsonValueKind.Array)
        {
            foreach (var pair in pairs.EnumerateArray())
            {
                if (InboundJson.Text(pair, "name") is { } name && InboundJson.Text(pair, "value") is { } value)
                {
                    yield return (name, value);
                }
            }
        }
    }
}
