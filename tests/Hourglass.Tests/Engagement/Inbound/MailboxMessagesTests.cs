using System.Text;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Inbound.Mailbox;
using MimeKit;

namespace Hourglass.Tests.Engagement.Inbound;

public sealed class MailboxMessagesTests
{
    private static readonly DateTimeOffset s_now = new(2026, 11, 3, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Read_Reply_MatchedByInReplyToAndReferences_QuotedHistoryStripped()
    {
        var reading = MailboxMessages.Read(Load("""
            From: Pat Doe <Pat@Client.Example>
            To: agent@acme.example
            Subject: Re: Renewal
            Date: Tue, 03 Nov 2026 11:30:00 +0000
            Message-ID: <reply-1@client.example>
            In-Reply-To: <abc.outbox@acme.example>
            References: <first.outbox@acme.example> <abc.outbox@acme.example>
            Auto-Submitted: auto-replied
            Content-Type: text/plain

            Yes, Thursday works.

            On Tue, 3 Nov 2026 at 10:00, Agent <agent@acme.example> wrote:
            > Shall we talk about the renewal?
            """), 7, 42, null, s_now);

        var delivery = Assert.IsType<DeliveryEvent>(reading.Event);
        Assert.Equal((InboundSourceKind.Imap, "reply-1@client.example", DeliveryEventType.Reply), (delivery.Source, delivery.SourceEventId, delivery.Type));
        Assert.Equal(new DateTimeOffset(2026, 11, 3, 11, 30, 0, TimeSpan.Zero), delivery.OccurredAt);
        Assert.Equal(["abc.outbox@acme.example", "first.outbox@acme.example"], delivery.Message.HeaderMessageIds!);
        Assert.Equal("pat@client.example", delivery.Recipient);
        Assert.Equal(new InboundReply("pat@client.example", "Re: Renewal", "Yes, Thursday works."), delivery.Reply! with { Headers = null });
        // What the classifier reads to tell an automatic answer is passed on.
        Assert.Equal(["Auto-Submitted=auto-replied", "Content-Type=text/plain"],
            delivery.Reply!.Headers!.Select(h => $"{h.Key}={h.Value}").Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Read_NoMessageIdNoDateHtmlOnly_UidFallbackReceivedTimeAndHtmlText()
    {
        var received = new DateTimeOffset(2026, 11, 3, 9, 0, 0, TimeSpan.Zero);
        var reading = MailboxMessages.Read(Load("""
            From: pat@client.example
            Subject: Re: Renewal
            In-Reply-To: <abc.outbox@acme.example>
            Content-Type: text/html

            <html><head><style>p { color: red }</style></head><body><p>Not now,</p><p>maybe in March.</p>
            <blockquote>Shall we talk?</blockquote></body></html>
            """), 7, 42, received, s_now);

        var delivery = reading.Event!;
        Assert.Equal("7:42", delivery.SourceEventId);
        Assert.Equal(received, delivery.OccurredAt);
        Assert.Equal("Not now,\nmaybe in March.", delivery.Reply!.Text);
    }

    [Fact]
    public void Read_DateInTheFuture_CappedAtNow()
    {
        var reading = MailboxMessages.Read(Load("""
            From: pat@client.example
            Date: Tue, 10 Nov 2026 11:30:00 +0000
            Content-Type: text/plain

            Hello
            """), 7, 1, null, s_now);

        Assert.Equal(s_now, reading.Event!.OccurredAt);
    }

    [Theory]
    [InlineData("failed", "5.1.1", DeliveryEventType.HardBounce)]
    [InlineData("failed", "", DeliveryEventType.HardBounce)]
    [InlineData("delayed", "4.4.7", DeliveryEventType.SoftBounce)]
    [InlineData("failed", "4.2.2", DeliveryEventType.SoftBounce)]
    [InlineData("delivered", "2.0.0", DeliveryEventType.Delivered)]
    public void Read_DeliveryReport_TypeFromStatusAndAction(string action, string status, string expected)
    {
        var reading = MailboxMessages.Read(Report(action, status, "message/rfc822"), 7, 3, null, s_now);

        var delivery = reading.Event!;
        Assert.Equal(expected, delivery.Type);
        Assert.Equal("gone@client.example", delivery.Recipient);
        Assert.Equal(["abc.outbox@acme.example"], delivery.Message.HeaderMessageIds!);
        Assert.Null(delivery.Reply);
    }

    [Fact]
    public void Read_DeliveryReportWithReturnedHeaders_ReasonIsStatusAndDiagnostic()
    {
        var delivery = MailboxMessages.Read(Report("failed", "5.1.1", "text/rfc822-headers"), 7, 3, null, s_now).Event!;

        Assert.Equal(DeliveryEventType.HardBounce, delivery.Type);
        Assert.Equal("5.1.1 smtp; 550 user unknown", delivery.Reason);
        Assert.Equal(["abc.outbox@acme.example"], delivery.Message.HeaderMessageIds!);
    }

    [Fact]
    public void Read_DeliveryReportWithoutStatusOrAction_SkippedWithReason()
    {
        var reading = MailboxMessages.Read(Report("", "", "text/rfc822-headers"), 7, 3, null, s_now);

        Assert.Null(reading.Event);
        Assert.StartsWith("a delivery report whose status cannot be read", reading.SkipReason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Sure.\n-----Original Message-----\nFrom: agent", "Sure.")]
    [InlineData("> quoted\nMine\n>> deeper", "Mine")]
    [InlineData("Line one\n\nLine two", "Line one\n\nLine two")]
    public void StripQuoted_SimpleHistory_Removed(string text, string expected) =>
        Assert.Equal(expected, MailboxMessages.StripQuoted(text));

    private static MimeMessage Load(string raw) =>
        MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(raw.ReplaceLineEndings("\r\n") + "\r\n")));

    private static MimeMessage Report(string action, string status, string originalType) => Load($"""
        From: MAILER-DAEMON@mx.client.example
        Subject: Undelivered Mail Returned to Sender
        Date: Tue, 03 Nov 2026 11:00:00 +0000
        Message-ID: <dsn-1@mx.client.example>
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

        --b1
        Content-Type: text/plain

        Your message could not be delivered.

        --b1
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.client.example

        Final-Recipient: rfc822; Gone@Client.Example
        {(action.Length > 0 ? $"Action: {action}" : "X-Note: none")}
        {(status.Length > 0 ? $"Status: {status}" : "X-Other: none")}
        Diagnostic-Code: smtp; 550 user unknown

        --b1
        Content-Type: {originalType}

        From: agent@acme.example
        To: gone@client.example
        Subject: Renewal
        Message-ID: <abc.outbox@acme.example>

        --b1--
        """);
}
