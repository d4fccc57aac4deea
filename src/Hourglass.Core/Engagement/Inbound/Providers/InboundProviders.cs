namespace Hourglass.Engagement.Inbound.Providers;

/// <summary>
/// A source that POSTs signed events to <c>/inbound/{tenant}/{source}</c>: what its secret is, the headers it signs
/// with, how to verify them, and how to read its body. <c>Verify</c> takes the secret (the value of the variable the
/// tenant's <c>secret_ref</c> names), a header lookup, the raw body and the server's time; <c>Parse</c> the header
/// lookup and the body, and throws <see cref="InboundPayloadException"/> for a body it refuses whole. <c>AllOrNothing</c>:
/// a batch is recorded in one transaction and refused whole when one event is (Hourglass's own format, whose sender can fix
/// and resend); otherwise each event is recorded alone and a bad one skipped (a provider's batch, which it would retry for
/// a day).
/// </summary>
internal sealed record InboundProvider(
    string Source,
    string Secret,
    IReadOnlyList<string> Headers,
    Func<string, Func<string, string?>, ReadOnlyMemory<byte>, DateTimeOffset, SignatureCheck> Verify,
    Func<Func<string, string?>, ReadOnlyMemory<byte>, IReadOnlyList<InboundItem>> Parse,
    bool AllOrNothing = false);

/// <summary>The webhook sources Hourglass reads (docs/inbound.md); <c>imap</c> is read from a mailbox, not posted.</summary>
internal static class InboundProviders
{
    public static InboundProvider Hourglass { get; } = new(InboundSourceKind.Hourglass,
        "the whsec_ signing secret (Standard Webhooks)",
        ["webhook-id", "webhook-timestamp", "webhook-signature"],
        (secret, header, body, now) => WebhookSignatures.VerifyStandard(secret, "webhook", header, body.Span, now),
        (_, body) => HourglassEventFormat.Parse(body),
        AllOrNothing: true);

    public static InboundProvider Resend { get; } = new(InboundSourceKind.Resend,
        "the webhook's signing secret Resend shows (whsec_…)",
        ["svix-id", "svix-timestamp", "svix-signature"],
        (secret, header, body, now) => WebhookSignatures.VerifyStandard(secret, "svix", header, body.Span, now),
        // Verified first, so svix-id is there.
        (header, body) => ResendEvents.Parse(header("svix-id")!, body));

    public static InboundProvider SendGrid { get; } = new(InboundSourceKind.SendGrid,
        "the Signed Event Webhook's verification key SendGrid shows (base64 public key)",
        [WebhookSignatures.SendGridSignatureHeader, WebhookSignatures.SendGridTimestampHeader],
        (key, header, body, now) => WebhookSignatures.VerifySendGrid(key, header, body.Span, now),
        (_, body) => SendGridEvents.Parse(body));

    public static InboundProvider Postmark { get; } = new(InboundSourceKind.Postmark,
        "the user:password written into the webhook's URL (Postmark sends them as basic authentication)",
        ["Authorization"],
        (credentials, header, _, _) => WebhookSignatures.VerifyBasic(credentials, header),
        (_, body) => PostmarkEvents.Parse(body));

    public static IReadOnlyList<InboundProvider> All { get; } = [Hourglass, Resend, SendGrid, Postmark];

    /// <summary>The provider for a source name as written in the URL (case-insensitive), or null.</summary>
    public static InboundProvider? Find(string source) =>
        All.FirstOrDefault(p => p.Source.Equals(source, StringComparison.OrdinalIgnoreCase));
}
