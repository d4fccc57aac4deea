namespace Hourglass.Engagement.Inbound;

/// <summary>
/// The one vocabulary for what the world answers about a message Hourglass sent (docs/inbound.md): every source — the
/// tenant's own signed webhook, a provider's adapter, the mailbox reader, the simulator — reports one of these, and the
/// same names are the <c>event_type</c> of <c>message_delivery_events</c> and of the event store's rows.
/// </summary>
internal static class DeliveryEventType
{
    public const string Delivered = "delivered";
    public const string HardBounce = "bounce_hard";
    public const string SoftBounce = "bounce_soft";
    public const string Complaint = "complaint";
    public const string Unsubscribe = "unsubscribe";
    public const string Reply = "reply";

    public static readonly IReadOnlyList<string> All = [Delivered, HardBounce, SoftBounce, Complaint, Unsubscribe, Reply];
}

/// <summary>Where delivery events come from; the values of <c>inbound_sources.source</c> (and 'simulator').</summary>
internal static class InboundSourceKind
{
    public const string Hourglass = "hourglass";
    public const string Resend = "resend";
    public const string Postmark = "postmark";
    public const string SendGrid = "sendgrid";
    public const string Imap = "imap";
    public const string Simulator = "simulator";
}

/// <summary>What the reply classifier reads a reply as (docs/inbound.md, "Reading a reply").</summary>
internal static class ReplyLabel
{
    public const string Interested = "interested";
    public const string NotNow = "not_now";
    public const string WrongPerson = "wrong_person";
    public const string UnsubscribeRequest = "unsubscribe_request";
    public const string OutOfOffice = "out_of_office";
    public const string BounceNotice = "bounce_notice";
    public const string Other = "other";

    public static readonly IReadOnlyList<string> All = [Interested, NotNow, WrongPerson, UnsubscribeRequest, OutOfOffice, BounceNotice, Other];
}

/// <summary>
/// How an event names the message it is about, in the order the recorder tries them: Hourglass's outbox id (carried in a
/// provider's metadata/custom args, or in Hourglass's own format), the provider's message id (recorded on the outbox row
/// when the provider accepted it), or Message-ID values read from the event's headers or a reply's In-Reply-To and
/// References (Hourglass sets <c>{outbox id:N}.outbox@{sender domain}</c> on every email; angle brackets optional).
/// </summary>
internal sealed record MessageReference(Guid? OutboxId = null, string? ProviderMessageId = null, IReadOnlyList<string>? HeaderMessageIds = null);

/// <summary>
/// A reply's sender, subject and text, and what the classifier read in it: <c>Label</c> is one of <see cref="ReplyLabel"/>
/// (null when not yet classified: the recorder classifies it), <c>ReturnOn</c> the return date read from an out-of-office
/// reply, when one could be read. <c>Headers</c>: the reply's headers the classifier reads when a source has them
/// (Auto-Submitted, X-Autoreply, X-Autorespond, Precedence, Content-Type; names matched case-insensitively).
/// </summary>
internal sealed record InboundReply(
    string? From,
    string? Subject,
    string Text,
    string? Label = null,
    decimal? Confidence = null,
    string? Evidence = null,
    string? ClassifiedBy = null,
    DateOnly? ReturnOn = null,
    IReadOnlyDictionary<string, string>? Headers = null);

/// <summary>
/// One event as a source reported it, normalised. <c>Source</c> is one of <see cref="InboundSourceKind"/>;
/// <c>SourceEventId</c> the source's own id for this event (a provider's event id, the mailbox message's Message-ID…), so
/// a retry carries the same one and records nothing twice; <c>Type</c> one of <see cref="DeliveryEventType"/>;
/// <c>Recipient</c> the address the event concerns (the bounced or complaining recipient, the replier); <c>Reason</c> the
/// provider's diagnostic (bounce code and text).
/// </summary>
internal sealed record DeliveryEvent(
    string Source,
    string SourceEventId,
    string Type,
    DateTimeOffset OccurredAt,
    MessageReference Message,
    string? Recipient = null,
    string? Reason = null,
    InboundReply? Reply = null);

/// <summary>
/// What recording an event did. <c>Status</c>: recorded (new, effect applied), duplicate (seen before: nothing written),
/// or skipped (recorded with its <c>Reason</c> and no effect: no such message for this tenant…). <c>Effect</c>: the values
/// of <c>message_delivery_events.effect</c>.
/// </summary>
internal sealed record InboundOutcome(string Status, string Effect, Guid? MessageId, string? Reason = null)
{
    public const string Recorded = "recorded";
    public const string Duplicate = "duplicate";
    public const string Skipped = "skipped";
}
