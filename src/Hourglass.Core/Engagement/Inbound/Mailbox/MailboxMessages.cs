using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using MimeKit;
using MimeKit.Text;

namespace Hourglass.Engagement.Inbound.Mailbox;

/// <summary>What one mailbox message reads as: the delivery event to record, or why it cannot be one.</summary>
internal sealed record MailboxReading(DeliveryEvent? Event, string? SkipReason)
{
    public static MailboxReading Skip(string reason) => new(null, reason);
}

/// <summary>
/// Reads a message from a tenant's mailbox as one <see cref="DeliveryEvent"/> (docs/inbound.md, "Replies from a mailbox
/// (IMAP)"): a delivery status notification (RFC 3464) is a bounce of the message it reports on, anything else a reply to
/// the message its In-Reply-To and References name. Out-of-office answers are replies too: the classifier labels them.
/// </summary>
internal static partial class MailboxMessages
{
    // A reply longer than this is cut: the classifier reads the start, and a quoted thread adds nothing.
    public const int MaxTextLength = 20_000;

    /// <summary>
    /// The event for <paramref name="message"/>, the mailbox's message <paramref name="uid"/> under
    /// <paramref name="uidValidity"/>, received at <paramref name="receivedAt"/> (its INTERNALDATE); <paramref name="now"/>
    /// caps a Date header from the future.
    /// </summary>
    public static MailboxReading Read(MimeMessage message, long uidValidity, long uid, DateTimeOffset? receivedAt, DateTimeOffset now)
    {
        var sourceEventId = string.IsNullOrWhiteSpace(message.MessageId)
            ? string.Create(CultureInfo.InvariantCulture, $"{uidValidity}:{uid}")
            : message.MessageId.Trim();
        var occurredAt = OccurredAt(message, receivedAt, now);
        return FindReport(message.Body) is { } report
            ? ReadReport(report, sourceEventId, occurredAt)
            : ReadReply(message, sourceEventId, occurredAt);
    }

    // The message's own time: its Date header (the reply's own time, issue 17), else when the mailbox received it; never
    // later than now (a wrong clock on the sender's side must not move the contact's clock into the future).
    private static DateTimeOffset OccurredAt(MimeMessage message, DateTimeOffset? receivedAt, DateTimeOffset now)
    {
        var at = message.Headers.Contains(HeaderId.Date) && message.Date != DateTimeOffset.MinValue ? message.Date : receivedAt ?? now;
        return (at > now ? now : at).ToUniversalTime();
    }

    private static MultipartReport? FindReport(MimeEntity? body) => body switch
    {
        MultipartReport report when string.Equals(report.ReportType, "delivery-status", StringComparison.OrdinalIgnoreCase) => report,
        // Some servers wrap the report in a multipart/mixed (a notice to the postmaster, a signature).
        Multipart multipart => multipart.OfType<MimeEntity>().Select(FindReport).FirstOrDefault(r => r is not null),
        _ => null,
    };

    private static MailboxReading ReadReport(MultipartReport report, string sourceEventId, DateTimeOffset occurredAt)
    {
        if (report.OfType<MessageDeliveryStatus>().FirstOrDefault() is not { } status)
        {
            return MailboxReading.Skip("a delivery report (multipart/report; report-type=delivery-status) without its message/delivery-status part");
        }

        // RFC 3464 §2.1: the first group holds the per-message fields, each later one a recipient's.
        var recipients = status.StatusGroups.Skip(1).ToList();
        // A failure first, then a delay, then anything else: one event per notification, for the recipient it is about.
        var recipient = recipients.FirstOrDefault(g => ActionOf(g) == "failed")
                        ?? recipients.FirstOrDefault(g => ActionOf(g) == "delayed")
                        ?? recipients.FirstOrDefault();
        if (recipient is null)
        {
            return MailboxReading.Skip("a delivery report that names no recipient (no per-recipient fields in message/delivery-status)");
        }

        var address = AddressOf(recipient["Final-Recipient"]) ?? AddressOf(recipient["Original-Recipient"]);
        var code = recipient["Status"]?.Trim();
        var action = ActionOf(recipient);
        string type;
        if ((code is { Length: > 0 } && code[0] == '5') || (code is null && action == "failed"))
        {
            type = DeliveryEventType.HardBounce;
        }
        else if ((code is { Length: > 0 } && code[0] == '4') || action == "delayed")
        {
            type = DeliveryEventType.SoftBounce;
        }
        else if (code is { Length: > 0 } && code[0] == '2' && action is "delivered" or "relayed" or "expanded")
        {
            type = DeliveryEventType.Delivered;
        }
        else
        {
            return MailboxReading.Skip($"a delivery report whose status cannot be read (Status: {code ?? "none"}, Action: {action ?? "none"})");
        }

        // The message it reports on: the returned headers (text/rfc822-headers) or the whole message (message/rfc822).
        var ids = new List<string>();
        foreach (var part in report.OfType<MessagePart>())
        {
            if (part.Message?.MessageId is { Length: > 0 } id)
            {
                ids.Add(id);
            }
        }

        var diagnostic = recipient["Diagnostic-Code"]?.Trim();
        var reason = string.Join(" ", new[] { code, diagnostic }.Where(s => !string.IsNullOrWhiteSpace(s)));
        return new MailboxReading(new DeliveryEvent(InboundSourceKind.Imap, sourceEventId, type, occurredAt,
            new MessageReference(HeaderMessageIds: ids.Distinct(StringComparer.Ordinal).ToList()),
            Recipient: address, Reason: reason.Length == 0 ? null : Limit(reason, 1000)), null);
    }

    private static string? ActionOf(HeaderList group) => group["Action"]?.Trim().ToLowerInvariant();

    // "rfc822; pat@client.example" → "pat@client.example" (RFC 3464 §2.3.2: address-type ";" generic-address).
    private static string? AddressOf(string? field)
    {
        if (string.IsNullOrWhiteSpace(field))
        {
            return null;
        }

        var value = field[(field.IndexOf(';', StringComparison.Ordinal) + 1)..].Trim().Trim('<', '>');
        return value.Length == 0 ? null : value.ToLowerInvariant();
    }

    private static MailboxReading ReadReply(MimeMessage message, string sourceEventId, DateTimeOffset occurredAt)
    {
        var references = new List<string>();
        if (!string.IsNullOrWhiteSpace(message.InReplyTo))
        {
            references.Add(message.InReplyTo.Trim());
        }

        references.AddRange(message.References.Reverse());
        var from = message.From.Mailboxes.FirstOrDefault()?.Address?.Trim().ToLowerInvariant();
        var text = Limit(StripQuoted(BodyText(message)), MaxTextLength);
        return new MailboxReading(new DeliveryEvent(InboundSourceKind.Imap, sourceEventId, DeliveryEventType.Reply, occurredAt,
            new MessageReference(HeaderMessageIds: references.Distinct(StringComparer.Ordinal).ToList()),
            Recipient: from, Reply: new InboundReply(from, message.Subject, text, Headers: ClassifierHeaders(message))), null);
    }

    /// <summary>
    /// The headers the reply classifier reads to tell an automatic answer (RFC 3834's Auto-Submitted, the common
    /// X-Autoreply, X-Autorespond and Precedence, and the Content-Type), those the message has.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ClassifierHeaders(MimeMessage message)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in s_classifierHeaders)
        {
            // MimeKit keeps a message's Content-* headers on its body, not in the message's own list.
            if ((message.Headers[name] ?? message.Body?.Headers[name]) is { } value)
            {
                headers[name] = value.Trim();
            }
        }

        return headers;
    }

    private static readonly string[] s_classifierHeaders = ["Auto-Submitted", "X-Autoreply", "X-Autorespond", "Precedence", "Content-Type"];

    // text/plain when the message has it, else the HTML part's text.
    private static string BodyText(MimeMessage message)
    {
        if (message.TextBody is { } plain)
        {
            return plain;
        }

        return message.HtmlBody is { } html ? HtmlText(html) : "";
    }

    private static string HtmlText(string html)
    {
        var text = new StringBuilder();
        using var reader = new StringReader(html);
        var tokenizer = new HtmlTokenizer(reader);
        var skipping = false;
        while (tokenizer.ReadNextToken(out var token))
        {
            switch (token)
            {
                case HtmlTagToken tag when tag.Id is HtmlTagId.Script or HtmlTagId.Style or HtmlTagId.Head:
                    skipping = !tag.IsEndTag;
                    break;
                case HtmlTagToken tag when tag.Id == HtmlTagId.BlockQuote && !tag.IsEndTag:
                    // A quoted message in HTML: what follows is history, not the reply.
                    return text.ToString();
                case HtmlTagToken tag when tag.Id == HtmlTagId.Br
                                           || (tag.IsEndTag && tag.Id is HtmlTagId.P or HtmlTagId.Div or HtmlTagId.TR or HtmlTagId.LI):
                    text.Append('\n');
                    break;
                case HtmlDataToken data when !skipping:
                    text.Append(data.Data);
                    break;
            }
        }

        return text.ToString();
    }

    /// <summary>
    /// The reply without the history it quotes, when that is simple to see: lines quoted with '&gt;' are dropped, and
    /// everything from an "On … wrote:" line or an "-----Original Message-----" separator on is cut.
    /// </summary>
    public static string StripQuoted(string text)
    {
        var kept = new List<string>();
        foreach (var raw in text.ReplaceLineEndings("\n").Split('\n'))
        {
            var line = raw.TrimEnd();
            if (OriginalMessage().IsMatch(line) || Attribution().IsMatch(line))
            {
                break;
            }

            if (!line.TrimStart().StartsWith('>'))
            {
                kept.Add(line);
            }
        }

        return string.Join('\n', kept).Trim();
    }

    private static string Limit(string text, int length) => text.Length <= length ? text : text[..length];

    [GeneratedRegex(@"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex OriginalMessage();

    [GeneratedRegex(@"^\s*On\s.{1,300}\swrote:\s*$", RegexOptions.CultureInvariant)]
    private static partial Regex Attribution();
}
