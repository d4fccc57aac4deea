using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Hourglass.Engagement.Unsubscribe;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Hourglass.Engagement.Outbox;

/// <summary>
/// Sends a message as plain-text email through the tenant's SMTP relay (MailKit), one connection per message.
/// The Message-Id is derived from the outbox id, so every attempt carries the same one and a receiver (or the
/// relay) can dedupe. An SMTP 5xx reply to the message is permanent (RFC 5321 §4.2.1); 4xx replies, timeouts,
/// connection and TLS failures, and a refused login are retried. The relay's certificate is validated as usual,
/// unless the channel pins one (smtp_tls_pin_sha256): then exactly that certificate is accepted, and nothing else.
/// With <paramref name="unsubscribe"/> configured, an email to a contact carries RFC 8058 one-click unsubscribe headers
/// (docs/unsubscribe.md); without it, none.
/// </summary>
internal sealed partial class SmtpTransport(TimeSpan timeout, UnsubscribeTokens? unsubscribe = null) : IMessageTransport
{
    public string Channel => MessageChannel.Email;

    public async Task<DeliveryResult> SendAsync(OutboxMessage message, string? secret, CancellationToken cancellationToken)
    {
        var settings = message.Settings!;
        var from = MailboxAddress.Parse(settings.SmtpFrom!);
        var email = new MimeMessage
        {
            MessageId = MessageIdFor(message.Id, from.Address),
            Date = message.CreatedAt,
            Subject = message.Subject ?? "",
            Body = new TextPart("plain") { Text = message.Body },
        };
        email.From.Add(from);
        email.To.Add(MailboxAddress.Parse(message.Destination));
        // SendGrid's SMTP API header: its unique_args come back as fields of every event SendGrid posts about this email,
        // so a bounce names the outbox message outright (docs/inbound.md, "SendGrid"). SendGrid strips the header; another
        // relay passes it on, and it tells the reader no more than the Message-ID above.
        email.Headers.Add(SendGridApiHeader, $"{{\"unique_args\":{{\"{SendGridOutboxArgument}\":\"{message.Id:D}\"}}}}");
        // Postmark's SMTP metadata header, for the same purpose: it comes back as Metadata in Postmark's webhooks.
        email.Headers.Add(PostmarkMetadataHeaderPrefix + PostmarkOutboxMetadata, message.Id.ToString("D"));
        if (unsubscribe is not null && UnsubscribeClaimsFor(message) is { } claims)
        {
            // RFC 8058 §3.1: List-Unsubscribe holds one HTTPS URI and List-Unsubscribe-Post exactly this value; the
            // receiver POSTs "List-Unsubscribe=One-Click" to the URI. The token is made per send, so every attempt's expiry
            // runs from the moment it went out.
            email.Headers.Add("List-Unsubscribe", $"<{unsubscribe.UrlFor(unsubscribe.Create(claims)).AbsoluteUri}>");
            email.Headers.Add("List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
        }

        using var client = new SmtpClient { Timeout = (int)timeout.TotalMilliseconds };
        var pin = settings.SmtpTlsPinSha256;
        string? presented = null;
        if (pin is not null)
        {
            // A pin replaces chain and host-name validation: the relay proves itself by presenting the one certificate
            // the operator named, which a self-signed or private-CA relay can do. Without a pin, MailKit's default
            // validation applies (the system trust store and the host name), as for any TLS client.
            client.ServerCertificateValidationCallback = (_, certificate, _, _) =>
            {
                presented = certificate is null ? null : Fingerprint(certificate);
                return string.Equals(presented, pin, StringComparison.OrdinalIgnoreCase);
            };
        }

        try
        {
            await client.ConnectAsync(settings.SmtpHost!, settings.SmtpPort!.Value, Security(settings.SmtpSecurity, settings.SmtpPort.Value, pin is not null),
                cancellationToken);
            if (!string.IsNullOrEmpty(settings.SmtpUsername))
            {
                try
                {
                    await client.AuthenticateAsync(settings.SmtpUsername, secret ?? "", cancellationToken);
                }
                catch (AuthenticationException ex)
                {
                    // The relay refused the login (typically 535 5.7.8, RFC 4954 §6). A 5xx, but about the channel, not the message:
                    // like a missing secret it is retried, so messages go out once the operator fixes the password
                    // instead of every message of the meantime failing for good.
                    var text = OneLine(ex.Message);
                    return DeliveryResult.Transient($"SMTP login as '{settings.SmtpUsername}' refused: {text}", LeadingReplyCode(text));
                }
            }

            var reply = await client.SendAsync(email, cancellationToken);
            await client.DisconnectAsync(true, cancellationToken);
            return DeliveryResult.Success(250, reply);
        }
        catch (SmtpCommandException ex)
        {
            var code = (int)ex.StatusCode;
            return code >= 500
                ? DeliveryResult.PermanentFailure($"SMTP {code}: {ex.Message}", code)
                : DeliveryResult.Transient($"SMTP {code}: {ex.Message}", code);
        }
        catch (SslHandshakeException ex)
        {
            // Retried: a relay's certificate is renewed, or the operator pins it, without the message being at fault.
            return DeliveryResult.Transient(pin is null
                ? $"TLS refused: {OneLine(ex.Message)} (a relay with a self-signed or private-CA certificate can be pinned: smtp_tls_pin_sha256)"
                : presented is not null && !string.Equals(presented, pin, StringComparison.OrdinalIgnoreCase)
                    ? $"TLS refused: the relay presented the certificate with SHA-256 {presented}, not the pinned {pin.ToLowerInvariant()}"
                    : $"TLS refused: {OneLine(ex.Message)}");
        }
        catch (Exception ex) when (ex is SmtpProtocolException or IOException or System.Net.Sockets.SocketException or TimeoutException
                                       or NotSupportedException)
        {
            return DeliveryResult.Transient($"{ex.GetType().Name}: {OneLine(ex.Message)}");
        }
    }

    /// <summary>Who an email's unsubscribe link opts out: its target contact, or nobody for a message to an account.</summary>
    internal static UnsubscribeClaims? UnsubscribeClaimsFor(OutboxMessage message) =>
        message.Payload["target_type"]?.GetValueKind() == System.Text.Json.JsonValueKind.String
        && (string?)message.Payload["target_type"] == "contact"
        && message.Payload["target_id"]?.GetValueKind() == System.Text.Json.JsonValueKind.String
        && Guid.TryParse((string?)message.Payload["target_id"], out var contact)
            ? new UnsubscribeClaims(message.TenantId, contact, message.Id)
            : null;

    /// <summary>A certificate's SHA-256 fingerprint over its DER bytes, lower-case hex: the form smtp_tls_pin_sha256 holds.</summary>
    internal static string Fingerprint(X509Certificate certificate) => Convert.ToHexStringLower(certificate.GetCertHash(HashAlgorithmName.SHA256));

    // MailKit reports a refused login as an AuthenticationException whose message starts with the relay's reply code
    // ("535: authentication failed"); the code is kept when it is there.
    private static int? LeadingReplyCode(string text) =>
        text.Length >= 3 && text[..3].All(char.IsAsciiDigit) && (text.Length == 3 || !char.IsAsciiDigit(text[3]))
            ? int.Parse(text.AsSpan(0, 3), System.Globalization.CultureInfo.InvariantCulture)
            : null;

    // MailKit's TLS errors span several lines; the attempt log keeps one.
    private static string OneLine(string text) => string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>SendGrid's SMTP API header, carrying the outbox id as a unique argument (<see cref="SendGridOutboxArgument"/>).</summary>
    public const string SendGridApiHeader = "X-SMTPAPI";

    /// <summary>
    /// The key under which an email carries its outbox id for a provider to echo back in its events: SendGrid's unique
    /// argument, Postmark's metadata, Resend's tag.
    /// </summary>
    public const string OutboxIdKey = "hourglass_outbox_id";

    /// <summary>The unique argument naming the outbox message: what SendGrid's events echo back.</summary>
    public const string SendGridOutboxArgument = OutboxIdKey;

    /// <summary>Postmark's SMTP header prefix for a message's metadata (X-PM-Metadata-{key}).</summary>
    public const string PostmarkMetadataHeaderPrefix = "X-PM-Metadata-";

    /// <summary>The metadata key naming the outbox message: what Postmark's webhooks echo back.</summary>
    public const string PostmarkOutboxMetadata = OutboxIdKey;

    /// <summary>The Message-Id for an outbox message: its id at the sender's domain (without angle brackets, as MimeKit takes it).</summary>
    internal static string MessageIdFor(Guid messageId, string fromAddress)
    {
        var at = fromAddress.LastIndexOf('@');
        var domain = at >= 0 && at < fromAddress.Length - 1 ? fromAddress[(at + 1)..] : "hourglass.invalid";
        return $"{messageId:N}.outbox@{domain}";
    }

    /// <summary>
    /// The outbox ids named by Hourglass's Message-IDs (<see cref="MessageIdFor"/>) in a header's text: an In-Reply-To,
    /// a References list, a bounce's original Message-ID (angle brackets around or not).
    /// </summary>
    internal static IEnumerable<Guid> OutboxIdsIn(string? header) =>
        OutboxMessageId().Matches(header ?? "").Select(match => Guid.ParseExact(match.Groups[1].Value, "N"));

    // The form MessageIdFor writes: 32 hex digits of the outbox id, ".outbox@", the sender's domain.
    [System.Text.RegularExpressions.GeneratedRegex(@"([0-9a-fA-F]{32})\.outbox@", System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex OutboxMessageId();

    private static SecureSocketOptions Security(string setting, int port, bool pinned) => setting switch
    {
        "starttls" => SecureSocketOptions.StartTls,
        "tls" => SecureSocketOptions.SslOnConnect,
        "none" => SecureSocketOptions.None,
        // 'auto' lets MailKit choose: TLS on connect for port 465, else STARTTLS if the relay offers it, else plain. A
        // pinned certificate is a demand for TLS, so then a relay that does not offer STARTTLS is refused, not trusted.
        _ when pinned => port == 465 ? SecureSocketOptions.SslOnConnect : SecureSocketOptions.StartTls,
        _ => SecureSocketOptions.Auto,
    };
}
