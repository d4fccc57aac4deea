using System.Text.Json;
using Hourglass.Engagement.Outbox;

namespace Hourglass.Engagement.Inbound.Providers;

/// <summary>
/// Postmark's webhooks (docs/inbound.md, "Postmark"): one record per POST, told apart by <c>RecordType</c>; Postmark
/// does not sign them, but sends the basic-auth credentials written into the webhook's URL. Mapped: <c>Delivery</c> →
/// delivered; <c>Bounce</c> by its <c>Type</c> — HardBounce and BadEmailAddress → hard, SoftBounce, Transient, DnsError
/// and Blocked → soft, SpamComplaint → complaint, Unsubscribe → unsubscribe, any other (AutoResponder, Subscribe,
/// SpamNotification …) skipped; <c>SpamComplaint</c> → complaint; <c>SubscriptionChange</c> that suppresses sending →
/// unsubscribe (ManualSuppression), hard bounce or complaint by its <c>SuppressionReason</c>, one that lifts it skipped.
/// <c>MessageID</c> is Postmark's message id; the metadata <c>hourglass_outbox_id</c> (set by the SMTP header
/// <c>X-PM-Metadata-hourglass_outbox_id</c>) names the outbox message.
/// </summary>
internal static class PostmarkEvents
{
    /// <exception cref="InboundPayloadException">The body is not a JSON object with a <c>RecordType</c>.</exception>
    public static IReadOnlyList<InboundItem> Parse(ReadOnlyMemory<byte> body)
    {
        using var document = InboundJson.Parse(body);
        var root = document.RootElement;
        if (InboundJson.Text(root, "RecordType") is not { } recordType)
        {
            throw new InboundPayloadException("the body must be a JSON object with a \"RecordType\" (a Postmark webhook)");
        }

        var messageId = InboundJson.Text(root, "MessageID");
        var recipient = InboundJson.Text(root, "Email") ?? InboundJson.Text(root, "Recipient");
        string? type, skip = null, at = null, id = null;
        switch (recordType)
        {
            case "Delivery":
                (type, at, id) = (DeliveryEventType.Delivered, InboundJson.Text(root, "DeliveredAt"), $"delivery:{messageId}:{recipient}");
                break;
            case "Bounce" or "SpamComplaint":
                (type, skip) = BounceType(InboundJson.Text(root, "Type"));
                (at, id) = (InboundJson.Text(root, "BouncedAt"), Number(root, "ID") is { } bounceId ? $"bounce:{bounceId}" : null);
                break;
            case "SubscriptionChange":
                (type, skip) = Subscription(root);
                at = InboundJson.Text(root, "ChangedAt");
                id = $"subscription:{messageId}:{recipient}:{at}";
                break;
            default:
                (type, skip) = (null, $"'{recordType}' is not a delivery event Hourglass records");
                break;
        }

        var sourceType = recordType == "Bounce" ? $"Bounce/{InboundJson.Text(root, "Type")}" : recordType;
        if (type is null)
        {
            return [InboundItem.Skip(0, id, sourceType, skip!)];
        }

        if (id is null || messageId is null)
        {
            return [InboundItem.Skip(0, id, sourceType, "no ID or MessageID: the record cannot be told apart from a retry, or names no message")];
        }

        if (InboundJson.Time(at) is not { } occurredAt)
        {
            return [InboundItem.Skip(0, id, sourceType, "no time (DeliveredAt, BouncedAt or ChangedAt)")];
        }

        var outboxId = InboundJson.Object(root, "Metadata") is { } metadata ? InboundJson.Uuid(InboundJson.Text(metadata, SmtpTransport.PostmarkOutboxMetadata)) : null;
        var reason = string.Join(": ", new[] { InboundJson.Text(root, "Name"), InboundJson.Text(root, "Description"), InboundJson.Text(root, "Details") }
            .Where(t => t is not null));
        return [InboundItem.Record(0, sourceType, new DeliveryEvent(InboundSourceKind.Postmark, id, type, occurredAt,
            new MessageReference(outboxId, messageId), recipient, reason.Length == 0 ? null : InboundJson.Cut(reason)))];
    }

    private static (string? Type, string? Skip) BounceType(string? type) => type switch
    {
        "HardBounce" or "BadEmailAddress" => (DeliveryEventType.HardBounce, null),
        "SoftBounce" or "Transient" or "DnsError" or "Blocked" => (DeliveryEventType.SoftBounce, null),
        "SpamComplaint" => (DeliveryEventType.Complaint, null),
        "Unsubscribe" => (DeliveryEventType.Unsubscribe, null),
        _ => (null, $"a bounce of type '{type ?? "(none)"}' says nothing about the address (an auto-reply, a notification …)"),
    };

    private static (string? Type, string? Skip) Subscription(JsonElement root)
    {
        if (!root.TryGetProperty("SuppressSending", out var suppress) || suppress.ValueKind != JsonValueKind.True)
        {
            return (null, "sending reactivated: not an event about the address Hourglass records");
        }

        return InboundJson.Text(root, "SuppressionReason") switch
        {
            "HardBounce" => (DeliveryEventType.HardBounce, null),
            "SpamComplaint" => (DeliveryEventType.Complaint, null),
            _ => (DeliveryEventType.Unsubscribe, null),
        };
    }

    private static string? Number(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number)
            ? number.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : null;
}
