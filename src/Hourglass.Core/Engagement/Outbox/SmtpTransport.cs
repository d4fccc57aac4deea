using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Hourglass.Engagement.Outbox;

/// <summary>
/// Sends a message as plain-text email through the tenant's SMTP relay (MailKit), one connection per message.
/// The Message-Id is derived from the outbox id, so every attempt carries the same one and a receiver (or the
/// relay) can dedupe. An SMTP 5xx reply is permanent (RFC 5321 §4.2.1); 4xx replies, timeouts and connection
/// failures are retried.
/// </summary>
internal sealed class SmtpTransport(TimeSpan timeout) : IMessageTransport
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

        using var client = new SmtpClient { Timeout = (int)timeout.TotalMilliseconds };
        try
        {
            await client.ConnectAsync(settings.SmtpHost!, settings.SmtpPort!.Value, Security(settings.SmtpSecurity), cancellationToken);
            if (!string.IsNullOrEmpty(settings.SmtpUsername))
            {
                await client.AuthenticateAsync(settings.SmtpUsername, secret ?? "", cancellationToken);
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
        catch (Exception ex) when (ex is SmtpProtocolException or IOException or System.Net.Sockets.SocketException or TimeoutException
                                       or AuthenticationException or SslHandshakeException)
        {
            return DeliveryResult.Transient($"{ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>The Message-Id for an outbox message: its id at the sender's domain (without angle brackets, as MimeKit takes it).</summary>
    internal static string MessageIdFor(Guid messageId, string fromAddress)
    {
        var at = fromAddress.LastIndexOf('@');
        var domain = at >= 0 && at < fromAddress.Length - 1 ? fromAddress[(at + 1)..] : "hourglass.invalid";
        return $"{messageId:N}.outbox@{domain}";
    }

    private static SecureSocketOptions Security(string setting) => setting switch
    {
        "starttls" => SecureSocketOptions.StartTls,
        "tls" => SecureSocketOptions.SslOnConnect,
        "none" => SecureSocketOptions.None,
        _ => SecureSocketOptions.Auto,
    };
}
