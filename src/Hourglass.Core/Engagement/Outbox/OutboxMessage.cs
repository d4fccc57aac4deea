using System.Text.Json.Nodes;

namespace Hourglass.Engagement.Outbox;

/// <summary>The channels a message can leave by; the same names as the migration's CHECK constraints.</summary>
internal static class MessageChannel
{
    public const string Webhook = "webhook";
    public const string Email = "email";
}

/// <summary>A message refused before anything was written: <see cref="Field"/> names the bad input.</summary>
internal sealed class InvalidMessageException(string field, string message) : HourglassException($"{field}: {message}")
{
    public string Field { get; } = field;
}

/// <summary>A message to enqueue. <see cref="IdempotencyKey"/> is unique per tenant: a second enqueue with it does nothing.</summary>
internal sealed record NewMessage(
    Guid TenantId, string IdempotencyKey, string Channel, string Destination, string? Subject, string Body,
    JsonObject? Payload = null, Guid? RunId = null, int? MaxAttempts = null)
{
    /// <summary>Refuses a message the dispatcher could never deliver, naming the field: nothing is written for it.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(IdempotencyKey))
        {
            throw new InvalidMessageException("idempotency_key", "must not be empty");
        }

        if (Channel is not (MessageChannel.Webhook or MessageChannel.Email))
        {
            throw new InvalidMessageException("channel", $"must be 'webhook' or 'email' (got '{Channel}')");
        }

        if (string.IsNullOrWhiteSpace(Destination))
        {
            throw new InvalidMessageException("destination", $"must not be empty: a URL for a webhook, an address for email");
        }

        if (Channel == MessageChannel.Webhook && !IsHttpUrl(Destination))
        {
            throw new InvalidMessageException("destination", $"a webhook needs an absolute http or https URL (got '{Destination}')");
        }

        if (Channel == MessageChannel.Email && !IsEmailAddress(Destination))
        {
            throw new InvalidMessageException("destination", $"'{Destination}' is not a single email address");
        }

        if (MaxAttempts is <= 0)
        {
            throw new InvalidMessageException("max_attempts", $"must be at least 1 (got {MaxAttempts})");
        }
    }

    internal static bool IsHttpUrl(string value) => MessageAddress.IsHttpUrl(value);

    internal static bool IsEmailAddress(string value) => MessageAddress.IsEmailAddress(value);
}

/// <summary>The address rules messages and channels share (the executable's <c>channels set</c> checks with them too).</summary>
internal static class MessageAddress
{
    /// <summary>An absolute http or https URL with a host and no whitespace.</summary>
    public static bool IsHttpUrl(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
        && !string.IsNullOrEmpty(uri.Host) && !value.Any(char.IsWhiteSpace);

    /// <summary>One bare mailbox, "a@b.example": MimeKit's parser (RFC 5322), not a list, a group or a display name.</summary>
    public static bool IsEmailAddress(string value) =>
        MimeKit.MailboxAddress.TryParse(MimeKit.ParserOptions.Default, value, out var mailbox)
        && mailbox.Address == value.Trim() && mailbox.Address.Contains('@', StringComparison.Ordinal)
        && !mailbox.Address.StartsWith('@') && !mailbox.Address.EndsWith('@') && !value.Any(char.IsWhiteSpace);
}

/// <summary>A claimed message, with the channel settings of its tenant needed to send it.</summary>
internal sealed record OutboxMessage(
    Guid Id, Guid TenantId, string IdempotencyKey, string Channel, string Destination, string? Subject, string Body, JsonObject Payload,
    int Attempt, int MaxAttempts, DateTimeOffset CreatedAt, ChannelSettings? Settings);

/// <summary>
/// A tenant's channel row (message_channels); secrets are references, resolved by the dispatcher.
/// <see cref="SmtpTlsPinSha256"/>, when set, is the SHA-256 fingerprint (hex) of the only certificate the relay may present.
/// </summary>
internal sealed record ChannelSettings(
    string Channel, bool Enabled, string? WebhookUrl, string? SmtpHost, int? SmtpPort, string SmtpSecurity, string? SmtpUsername, string? SmtpFrom,
    string? SecretRef, string? SmtpTlsPinSha256 = null);

/// <summary>What one send did. A permanent failure is not retried; a transient one is, with backoff.</summary>
internal sealed record DeliveryResult(bool Sent, bool Permanent, string? Error, int? ResponseCode, string? ProviderMessageId)
{
    public static DeliveryResult Success(int? responseCode, string? providerMessageId) => new(true, false, null, responseCode, providerMessageId);

    public static DeliveryResult Transient(string error, int? responseCode = null) => new(false, false, error, responseCode, null);

    public static DeliveryResult PermanentFailure(string error, int? responseCode = null) => new(false, true, error, responseCode, null);
}

/// <summary>Sends one message over one channel. Throwing counts as a transient failure.</summary>
internal interface IMessageTransport
{
    string Channel { get; }

    Task<DeliveryResult> SendAsync(OutboxMessage message, string? secret, CancellationToken cancellationToken);
}
