using System.Text.Json;
using Hourglass.Engagement.Outbox;

namespace Hourglass.Engagement.Inbound.Providers;

/// <summary>
/// SendGrid's Event Webhook (docs/inbound.md, "SendGrid"): a POST is a JSON array of events, each with
/// <c>sg_event_id</c> (its id: a retry of the batch carries the same ones), <c>event</c>, <c>email</c>, <c>timestamp</c>
/// (Unix seconds), <c>sg_message_id</c>, <c>smtp-id</c> (the Message-ID) and the message's custom arguments as
/// top-level fields (Hourglass's outbox id is <c>hourglass_outbox_id</c>). Mapped: delivered → delivered; bounce →
/// hard (<c>type</c> bounce) or soft (<c>type</c> blocked); dropped → hard when its reason is a bounced or invalid
/// address, complaint or unsubscribe when the address had reported spam or unsubscribed, else skipped; spamreport →
/// complaint; unsubscribe and group_unsubscribe → unsubscribe; deferred is skipped (SendGrid's SMTP retries go on); every
/// other type (processed, open, click …) is skipped with its name, as is an event missing its id, time or address.
/// </summary>
internal static class SendGridEvents
{
    /// <summary>The custom argument (unique_args) whose value is Hourglass's outbox id, as the SMTP transport sets it.</summary>
    public const string OutboxArgument = SmtpTransport.SendGridOutboxArgument;

    /// <summary>The most events one POST may carry (SendGrid batches far fewer).</summary>
    public const int MaxEvents = 5000;

    /// <exception cref="InboundPayloadException">The body is not a JSON array.</exception>
    public static IReadOnlyList<InboundItem> Parse(ReadOnlyMemory<byte> body)
    {
        using var document = InboundJson.Parse(body);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Array)
        {
            throw new InboundPayloadException("the body must be a JSON array of events (SendGrid's Event Webhook posts a batch)");
        }

        if (root.GetArrayLength() > MaxEvents)
        {
            throw new InboundPayloadException($"at most {MaxEvents} events per request (got {root.GetArrayLength()})");
        }

        var items = new List<InboundItem>();
        var index = 0;
        foreach (var element in root.EnumerateArray())
        {
            items.Add(ParseEvent(index++, element));
        }

        return items;
    }

    private static InboundItem ParseEvent(int index, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            return InboundItem.Skip(index, null, null, "not an event object");
        }

        var id = InboundJson.Text(element, "sg_event_id");
        var type = InboundJson.Text(element, "event");
        if (id is null)
        {
            return InboundItem.Skip(index, null, type, "no sg_event_id: without it a retry could not be told from a new event");
        }

        if (type is null)
        {
            return InboundItem.Skip(index, id, null, "no event type");
        }

        var (eventType, skip) = Map(type, element);
        if (eventType is null)
        {
            return InboundItem.Skip(index, id, type, skip!);
        }

        if (!element.TryGetProperty("timestamp", out var timestamp) || !timestamp.TryGetInt64(out var seconds) || seconds is < 0 or > 99_999_999_999)
        {
            return InboundItem.Skip(index, id, type, "no timestamp: the event has no time");
        }

        var email = InboundJson.Text(element, "email");
        if (email is null)
        {
            return InboundItem.Skip(index, id, type, "no email: the event does not name its recipient");
        }

        // sg_message_id is "<the X-Message-Id SendGrid answered the send with>.filter…": the part before the first dot.
        var providerId = InboundJson.Text(element, "sg_message_id") is { } sgMessageId ? sgMessageId.Split('.', 2)[0] : null;
        var smtpId = InboundJson.Text(element, "smtp-id");
        var reason = string.Join(" ", new[] { InboundJson.Text(element, "status"), InboundJson.Text(element, "reason") }.Where(t => t is not null));
        var delivery = new DeliveryEvent(InboundSourceKind.SendGrid, id, eventType, DateTimeOffset.FromUnixTimeSeconds(seconds),
            new MessageReference(InboundJson.Uuid(InboundJson.Text(element, OutboxArgument)), providerId, smtpId is null ? null : [smtpId]),
            email, reason.Length == 0 ? null : InboundJson.Cut(reason));
        return InboundItem.Record(index, type, delivery);
    }

    private static (string? Type, string? Skip) Map(string type, JsonElement element) => type switch
    {
        "delivered" => (DeliveryEventType.Delivered, null),
        // "bounce" is a permanent rejection; "blocked" a temporary one (the receiving server refused for now).
        "bounce" => (InboundJson.Text(element, "type") is "blocked" ? DeliveryEventType.SoftBounce : DeliveryEventType.HardBounce, null),
        "dropped" => InboundJson.Text(element, "reason") switch
        {
            "Bounced Address" or "Invalid" => (DeliveryEventType.HardBounce, null),
            "Spam Reporting Address" => (DeliveryEventType.Complaint, null),
            "Unsubscribed Address" => (DeliveryEventType.Unsubscribe, null),
            var reason => (null, $"dropped by SendGrid ({reason ?? "no reason given"}): not about the address"),
        },
        "spamreport" => (DeliveryEventType.Complaint, null),
        "unsubscribe" or "group_unsubscribe" => (DeliveryEventType.Unsubscribe, null),
        "deferred" => (null, "deferred: SendGrid is still retrying (bounce or delivered follows)"),
        _ => (null, $"'{type}' is not a delivery event Hourglass records"),
    };
}
