using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Engagement.Outbox;
using Hourglass.Insights;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Engagement.Inbound;

/// <summary>A delivery event that cannot be recorded as given: <see cref="Field"/> names what was wrong.</summary>
internal sealed class InvalidDeliveryEventException(string field, string message) : HourglassException($"{field}: {message}")
{
    public string Field { get; } = field;
}

/// <summary>
/// Records a delivery event for a tenant and applies its effect, in one transaction (docs/inbound.md, "What each event
/// does"): matched to the tenant's message, written once to <c>message_delivery_events</c> and the event store, then
/// hard bounce → address suppressed and an owner card; soft bounce → retried, hard after the tenant's limit; complaint or
/// unsubscribe → opted out; reply → a touch at the reply's time (out of office → the next touch waits).
/// </summary>
internal sealed class InboundRecorder(NpgsqlDataSource dataSource, ReplyClassifier? classifier = null)
{
    /// <summary>Soft bounces of one address in a row (no delivery or reply between) after which it is treated as hard.</summary>
    public const int DefaultSoftBounceLimit = 3;

    /// <summary>The tenant setting (<c>tenants.settings</c>) that overrides <see cref="DefaultSoftBounceLimit"/>.</summary>
    public const string SoftBounceLimitSetting = "soft_bounce_limit";

    /// <summary>How long after the n-th soft bounce its retry is due: n × this.</summary>
    public static readonly TimeSpan SoftBounceRetryStep = TimeSpan.FromHours(4);

    private const int MaxIdLength = 500;
    private const int MaxTextLength = 20_000;

    /// <summary>Records one event; a retry of one already recorded writes nothing and says <c>duplicate</c>.</summary>
    /// <exception cref="InvalidDeliveryEventException">The event is malformed (unknown type or source, no id, a time far off).</exception>
    public async Task<InboundOutcome> RecordAsync(Guid tenantId, DeliveryEvent delivery, CancellationToken cancellationToken)
    {
        Validate(delivery);
        if (delivery is { Type: DeliveryEventType.Reply, Reply: { Label: null } unread } && classifier is not null)
        {
            delivery = delivery with { Reply = await classifier.ClassifyAsync(unread, delivery.OccurredAt, cancellationToken) };
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var outcome = await RecordAsync(connection, transaction, tenantId, delivery, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return outcome;
    }

    /// <summary>Records one event in the caller's transaction (the simulator batches an hour's events this way).</summary>
    public static async Task<InboundOutcome> RecordAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, DeliveryEvent delivery,
        CancellationToken cancellationToken)
    {
        Validate(delivery);
        if (await InboundStore.RecordedAsync(connection, transaction, tenantId, delivery.Source, delivery.SourceEventId, cancellationToken) is { } seen)
        {
            return new InboundOutcome(InboundOutcome.Duplicate, seen.Effect, seen.MessageId, seen.SkippedReason);
        }

        // The event store refuses what claims to come from the future (beyond its clock skew); so does the recorder,
        // before anything is written.
        var now = await InboundStore.NowAsync(connection, transaction, cancellationToken);
        var skew = await InboundStore.TenantSettingAsync(connection, transaction, tenantId, "event_future_skew_seconds", 300, cancellationToken);
        if (delivery.OccurredAt > now.AddSeconds(Math.Max(skew, 0)))
        {
            throw new InvalidDeliveryEventException("occurred_at",
                $"{delivery.OccurredAt:O} is in the future (more than {skew} seconds ahead of the database clock, {now:O})");
        }

        var outboxIds = OutboxIdsOf(delivery.Message);
        var message = outboxIds.Length > 0 || delivery.Message.ProviderMessageId is not null
            ? await InboundStore.MatchMessageAsync(connection, transaction, tenantId, outboxIds, delivery.Message.ProviderMessageId, cancellationToken)
            : null;
        var skipped = message is null ? UnmatchedReason(delivery.Message)
            : message.Channel != MessageChannel.Email ? $"message {message.Id} was a {message.Channel}, not an email"
            : delivery.Type is not DeliveryEventType.Reply && delivery.Recipient is { } to
              && !string.Equals(to.Trim(), message.Destination, StringComparison.OrdinalIgnoreCase)
                ? $"the event is about {to.Trim()}, but message {message.Id} went to {message.Destination}"
                : null;
        var recipient = delivery.Type == DeliveryEventType.Reply ? delivery.Recipient?.Trim().ToLowerInvariant() ?? message?.Destination.ToLowerInvariant()
            : message?.Destination.ToLowerInvariant() ?? delivery.Recipient?.Trim().ToLowerInvariant();
        var id = await InboundStore.InsertEventAsync(connection, transaction, tenantId, delivery, skipped is null ? message?.Id : null, recipient, skipped,
            cancellationToken);
        if (id is not Guid deliveryEventId)
        {
            // A concurrent call recorded it between our look and our insert; it is that call's to apply.
            var first = await InboundStore.RecordedAsync(connection, transaction, tenantId, delivery.Source, delivery.SourceEventId, cancellationToken);
            return new InboundOutcome(InboundOutcome.Duplicate, first?.Effect ?? "none", first?.MessageId, first?.SkippedReason);
        }

        if (skipped is not null)
        {
            return new InboundOutcome(InboundOutcome.Skipped, "skipped", null, skipped);
        }

        var (effect, eventType) = await ApplyAsync(connection, transaction, tenantId, delivery, message!, deliveryEventId, cancellationToken);
        var eventId = await StoreEventAsync(connection, transaction, tenantId, delivery, message!, eventType, effect, cancellationToken);
        await InboundStore.SetEffectAsync(connection, transaction, tenantId, deliveryEventId, effect, eventId, cancellationToken);
        return new InboundOutcome(InboundOutcome.Recorded, effect, message!.Id);
    }

    /// <summary>Checks an event's fields before anything is read or written.</summary>
    /// <exception cref="InvalidDeliveryEventException">A field is missing or out of range.</exception>
    public static void Validate(DeliveryEvent delivery)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        if (delivery.Source is not (InboundSourceKind.Hourglass or InboundSourceKind.Resend or InboundSourceKind.Postmark or InboundSourceKind.SendGrid
            or InboundSourceKind.Imap or InboundSourceKind.Simulator))
        {
            throw new InvalidDeliveryEventException("source", $"'{delivery.Source}' is not a source Hourglass knows");
        }

        if (string.IsNullOrWhiteSpace(delivery.SourceEventId) || delivery.SourceEventId.Length > MaxIdLength)
        {
            throw new InvalidDeliveryEventException("id", $"an event needs its source's id for it, of at most {MaxIdLength} characters");
        }

        if (!DeliveryEventType.All.Contains(delivery.Type))
        {
            throw new InvalidDeliveryEventException("type", $"'{delivery.Type}' is not an event type (the types are {string.Join(", ", DeliveryEventType.All)})");
        }

        if (delivery.OccurredAt.Year is < 2000 or > 2999)
        {
            throw new InvalidDeliveryEventException("occurred_at", $"{delivery.OccurredAt:O} is not a plausible time for the event");
        }

        if (delivery.Type == DeliveryEventType.Reply && delivery.Reply is null)
        {
            throw new InvalidDeliveryEventException("reply", "a reply event carries the reply (from, subject, text)");
        }

        if (delivery.Reply is { } reply)
        {
            if (reply.Text.Length > MaxTextLength * 10)
            {
                throw new InvalidDeliveryEventException("reply.text", $"at most {MaxTextLength * 10} characters");
            }

            if (reply.Label is not null && !ReplyLabel.All.Contains(reply.Label))
            {
                throw new InvalidDeliveryEventException("reply.label", $"'{reply.Label}' is not a label (the labels are {string.Join(", ", ReplyLabel.All)})");
            }

            if (reply.Confidence is < 0 or > 1)
            {
                throw new InvalidDeliveryEventException("reply.confidence", "must be between 0 and 1");
            }
        }

        if (delivery.Reason is { Length: > MaxTextLength })
        {
            throw new InvalidDeliveryEventException("reason", $"at most {MaxTextLength} characters");
        }
    }

    /// <summary>
    /// The outbox ids an event names: its outbox id, and every Message-ID of the form Hourglass gives its emails
    /// (<c>{id:N}.outbox@domain</c>, <see cref="Outbox.SmtpTransport.MessageIdFor"/>) among its header ids.
    /// </summary>
    internal static Guid[] OutboxIdsOf(MessageReference reference)
    {
        var ids = new List<Guid>();
        if (reference.OutboxId is Guid outboxId)
        {
            ids.Add(outboxId);
        }

        foreach (var header in reference.HeaderMessageIds ?? [])
        {
            ids.AddRange(SmtpTransport.OutboxIdsIn(header));
        }

        return [.. ids.Distinct()];
    }

    private static string UnmatchedReason(MessageReference reference)
    {
        var named = new List<string>();
        if (reference.OutboxId is Guid id)
        {
            named.Add($"outbox id {id}");
        }

        if (reference.ProviderMessageId is { } provider)
        {
            named.Add($"provider message id '{Short(provider)}'");
        }

        if (reference.HeaderMessageIds is { Count: > 0 } headers)
        {
            named.Add($"Message-ID {string.Join(", ", headers.Take(3).Select(Short))}");
        }

        return named.Count == 0
            ? "the event names no message (no outbox id, provider message id or Message-ID)"
            : $"no message of this tenant matches {string.Join(" or ", named)}";
    }

    private static string Short(string text) => text.Length <= 120 ? text : text[..117] + "...";

    private static async Task<(string Effect, string EventType)> ApplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        DeliveryEvent delivery, MatchedMessage message, Guid deliveryEventId, CancellationToken cancellationToken)
    {
        var contactId = message.TargetType == "contact" ? message.TargetId : null;
        switch (delivery.Type)
        {
            case DeliveryEventType.HardBounce:
                return (await SuppressAsync(connection, transaction, tenantId, delivery, message, contactId, "hard_bounce", deliveryEventId, cancellationToken),
                    delivery.Type);
            case DeliveryEventType.SoftBounce:
                return (await SoftBounceAsync(connection, transaction, tenantId, delivery, message, contactId, deliveryEventId, cancellationToken), delivery.Type);
            case DeliveryEventType.Complaint:
                await SuppressAsync(connection, transaction, tenantId, delivery, message, contactId, "complaint", deliveryEventId, cancellationToken);
                return (await OptOutAsync(connection, transaction, tenantId, contactId, $"complaint:{delivery.Source}", cancellationToken) ?? "address_suppressed",
                    delivery.Type);
            case DeliveryEventType.Unsubscribe:
                return (await OptOutAsync(connection, transaction, tenantId, contactId, $"unsubscribe:{delivery.Source}", cancellationToken) ?? "none", delivery.Type);
            case DeliveryEventType.Reply:
                return await ReplyAsync(connection, transaction, tenantId, delivery, message, contactId, deliveryEventId, cancellationToken);
            default:
                return ("none", delivery.Type);
        }
    }

    private static async Task<string> SuppressAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, DeliveryEvent delivery,
        MatchedMessage message, Guid? contactId, string reason, Guid deliveryEventId, CancellationToken cancellationToken)
    {
        var added = await InboundStore.SuppressAddressAsync(connection, transaction, tenantId, message.Destination, reason, contactId, deliveryEventId,
            delivery.OccurredAt, cancellationToken);
        if (added && reason != "complaint" && contactId is Guid contact
            && await TenancyStore.ContactForNoticeAsync(connection, transaction, tenantId, contact, cancellationToken) is { } who)
        {
            // The owner finds a new address: only a person can, and until then no email reaches the contact.
            var why = reason == "hard_bounce" ? "bounced" : "soft-bounced too many times in a row";
            await InboundStore.OpenNoticeCardAsync(connection, transaction, tenantId, contact, who.OwnerUserId, "address_unreachable",
                $"Find a new email address for {who.Name}",
                $"Email to {message.Destination} {why} on {delivery.OccurredAt.UtcDateTime:yyyy-MM-dd}"
                + (delivery.Reason is { } diagnostic ? $" ({Short(diagnostic)})" : "")
                + ". No more email goes to this address; give the contact a new one to reach them by email again.",
                new JsonObject { ["address"] = message.Destination.ToLowerInvariant(), ["delivery_event_id"] = deliveryEventId.ToString("D") },
                cancellationToken);
        }

        return "address_suppressed";
    }

    private static async Task<string> SoftBounceAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, DeliveryEvent delivery,
        MatchedMessage message, Guid? contactId, Guid deliveryEventId, CancellationToken cancellationToken)
    {
        var limit = Math.Max(1, await InboundStore.TenantSettingAsync(connection, transaction, tenantId, SoftBounceLimitSetting, DefaultSoftBounceLimit,
            cancellationToken));
        var inARow = await InboundStore.SoftBouncesInARowAsync(connection, transaction, tenantId, message.Destination, cancellationToken);
        if (inARow >= limit)
        {
            return await SuppressAsync(connection, transaction, tenantId, delivery, message, contactId, "soft_bounce_limit", deliveryEventId, cancellationToken);
        }

        await InboundStore.EnqueueRetryAsync(connection, transaction, tenantId, message.Id, inARow, SoftBounceRetryStep * inARow, cancellationToken);
        return "soft_bounce_retried";
    }

    private static async Task<string?> OptOutAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, Guid? contactId, string source,
        CancellationToken cancellationToken) =>
        contactId is Guid contact && await TenancyStore.RecordOptOutAsync(connection, transaction, tenantId, contact, source, cancellationToken) is not null
            ? "opted_out"
            : null;

    private static async Task<(string Effect, string EventType)> ReplyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        DeliveryEvent delivery, MatchedMessage message, Guid? contactId, Guid deliveryEventId, CancellationToken cancellationToken)
    {
        var reply = delivery.Reply!;
        switch (reply.Label)
        {
            case ReplyLabel.UnsubscribeRequest:
                // An unsubscribe in words is an unsubscribe.
                return (await OptOutAsync(connection, transaction, tenantId, contactId, $"reply:{delivery.Source}", cancellationToken) ?? "none",
                    DeliveryEventType.Unsubscribe);
            case ReplyLabel.OutOfOffice:
                // An automatic answer: no touch, and no evidence for the strategy; the next touch waits for the return date.
                if (reply.ReturnOn is DateOnly back && message.TargetType is { } type && message.TargetId is Guid target
                    && back.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc) > delivery.OccurredAt.UtcDateTime)
                {
                    var until = new DateTimeOffset(back.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc));
                    var waiting = await InboundStore.WaitUntilAsync(connection, transaction, tenantId, type, target, until,
                        $"out of office until {back:yyyy-MM-dd}", cancellationToken);
                    return (waiting > 0 ? "waiting_until_return" : "none", "out_of_office");
                }

                return ("none", "out_of_office");
            case ReplyLabel.BounceNotice:
                // A bounce told in words (a mailer's notice read as a reply): counted as a soft bounce, so the address is
                // retried and suppressed only if it keeps bouncing.
                return (await SoftBounceAsync(connection, transaction, tenantId, delivery, message, contactId, deliveryEventId, cancellationToken),
                    DeliveryEventType.SoftBounce);
        }

        if (message.TargetType is { } targetType && message.TargetId is Guid targetId)
        {
            // The reply is a touch, at the reply's own time: the clock moves from when the contact answered.
            var touch = new JsonArray(new JsonObject
            {
                ["entity_type"] = targetType,
                ["entity_id"] = targetId.ToString("D"),
                ["touch_type"] = "reply",
                ["touch_by"] = "contact",
                ["occurred_at"] = delivery.OccurredAt.ToString("O", CultureInfo.InvariantCulture),
                ["idempotency_key"] = $"reply-touch:{delivery.Source}:{delivery.SourceEventId}",
                ["source"] = $"inbound:{delivery.Source}",
            });
            await EngagementStore.RecordTouchesOrRefuseAsync(connection, transaction, tenantId, touch.ToJsonString(), cancellationToken);
            return ("touch_recorded", DeliveryEventType.Reply);
        }

        return ("none", DeliveryEventType.Reply);
    }

    /// <summary>
    /// The event for Insights and the day's counts (docs/insights.md), keyed by the source's event id: a reply is a
    /// <c>reply</c> event about its contact — the evidence strategy attribution looks for — and an automatic answer is not.
    /// </summary>
    private static async Task<Guid?> StoreEventAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, DeliveryEvent delivery,
        MatchedMessage message, string eventType, string effect, CancellationToken cancellationToken)
    {
        var payload = new JsonObject
        {
            ["message_id"] = message.Id.ToString("D"),
            ["delivery_event"] = delivery.Type,
            ["effect"] = effect,
            ["strategy_key"] = message.StrategyKey,
        };
        if (delivery.Reason is { } reason)
        {
            payload["reason"] = Short(reason);
        }

        if (delivery.Reply is { } reply)
        {
            payload["label"] = reply.Label;
            payload["confidence"] = reply.Confidence;
            payload["return_on"] = reply.ReturnOn?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        }

        var events = new JsonArray(new JsonObject
        {
            ["event_type"] = eventType,
            ["entity_type"] = message.TargetType ?? "message",
            ["entity_id"] = (message.TargetId ?? message.Id).ToString("D"),
            ["occurred_at"] = delivery.OccurredAt.ToString("O", CultureInfo.InvariantCulture),
            ["idempotency_key"] = $"delivery:{delivery.Source}:{delivery.SourceEventId}",
            ["source"] = $"inbound:{delivery.Source}",
            ["payload"] = payload,
        });
        var outcome = await InsightsStore.IngestEventsAsync(connection, transaction, tenantId, events.ToJsonString(), cancellationToken);
        return outcome.FirstOrDefault() switch
        {
            { Error: { } refusal } => throw new InvalidOperationException($"delivery event refused by ingest_events: {refusal}"),
            var line => line.EventId,
        };
    }
}
