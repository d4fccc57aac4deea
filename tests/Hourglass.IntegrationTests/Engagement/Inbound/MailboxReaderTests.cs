using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Inbound.Mailbox;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;
using MimeKit;

namespace Hourglass.IntegrationTests.Engagement.Inbound;

/// <summary>
/// Replies from a mailbox (issue 17 part 4; docs/inbound.md) against a real IMAP server, Debian's Dovecot, started on
/// loopback for each test: an email goes out through the real dispatcher and a loopback SMTP relay, the answer is put
/// into the mailbox with IMAP APPEND, and <see cref="MailboxReader"/> reads it through the real recorder. A reply is
/// recorded once however often the mailbox is polled, and the position survives a new reader; a delivery report is a
/// bounce; a message for no sent message or one that cannot be read is skipped with its reason; a refused login writes
/// only last_error and leaves another tenant's mailbox alone; a new UIDVALIDITY reads the mailbox again, recording
/// nothing twice.
/// </summary>
public sealed class MailboxReaderTests() : FrozenClockTest(s_t0)
{
    private const string PasswordVariable = "ACME_MAILBOX_PASSWORD";

    // A Tuesday, 10:00 UTC: inside the default policy's business hours, so the dispatcher sends at once.
    private static readonly DateTimeOffset s_t0 = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);

    private DovecotServer _imap = null!;

    protected override async Task SeedAsync()
    {
        await base.SeedAsync();
        _imap = await DovecotServer.StartAsync();
    }

    protected override async Task TearDownAsync()
    {
        await _imap.DisposeAsync();
        await base.TearDownAsync();
    }

    [Fact]
    public async Task Reply_TwoPollsAndANewReader_RecordedOnceClockMovedPositionKept()
    {
        var (tenant, pat, messageId) = await SentEmailAsync("pat@client.example");
        await MailboxAsync(tenant);
        var replyAt = s_t0.AddHours(2);
        var uid = await _imap.AppendAsync(Reply("pat@client.example", messageId, replyAt, "Thanks, yes: let's talk on Thursday.\n\n> the original text"));
        await MoveTimeAsync(s_t0.AddHours(3));

        var calls = new ConcurrentQueue<DeliveryEvent>();
        var first = Assert.Single(await Reader(calls).PollAllAsync(tenant, default));
        Assert.Equal((MailboxPollResult.Polled, 1, 0, 0, (string?)null), (first.Status, first.Recorded, first.Duplicates, first.Skipped, first.Error));
        var recorded = Assert.Single(calls);
        Assert.Equal(DeliveryEventType.Reply, recorded.Type);
        Assert.Equal("Thanks, yes: let's talk on Thursday.", recorded.Reply!.Text);

        // The same reader again: the position is past the reply, so it is not even read.
        var second = Assert.Single(await Reader(calls).PollAllAsync(tenant, default));
        Assert.Equal((MailboxPollResult.Polled, 0, 0, 0), (second.Status, second.Recorded, second.Duplicates, second.Skipped));
        Assert.Single(calls);

        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.message_delivery_events where tenant_id = $1", tenant));
        Assert.Equal($"reply|{messageId.Split('.')[0]}|imap", await Db.ScalarAsync("""
            select concat_ws('|', event_type, replace(message_id::text, '-', ''), source) from public.message_delivery_events where tenant_id = $1
            """, tenant));
        // The contact's clock moved to the reply's own time.
        Assert.Equal(replyAt.UtcDateTime, await Db.ScalarAsync("""
            select last_touch_at from public.engagement_clocks where tenant_id = $1 and entity_type = 'contact' and entity_id = $2
            """, tenant, pat));
        Assert.Equal($"{uid}|", await PositionAsync(tenant));

        // A restart: a new reader instance goes on from the saved position and reads nothing again.
        var later = await _imap.AppendAsync(Reply("pat@client.example", messageId, replyAt.AddMinutes(5), "One more thing."));
        var restarted = new ConcurrentQueue<DeliveryEvent>();
        var third = Assert.Single(await Reader(restarted).PollAllAsync(tenant, default));
        Assert.Equal((1, 0), (third.Recorded, third.Duplicates));
        Assert.Equal("One more thing.", Assert.Single(restarted).Reply!.Text);
        Assert.Equal($"{later}|", await PositionAsync(tenant));
        Assert.Equal(2L, await Db.ScalarAsync("select count(*) from public.message_delivery_events where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task DeliveryReports_PermanentAndTemporary_HardAndSoftBounceOfTheSentMessage()
    {
        var (tenant, _, hardId) = await SentEmailAsync("gone@client.example");
        var (_, _, softId) = await SentEmailAsync("full@client.example", tenant);
        await MailboxAsync(tenant);
        await _imap.AppendAsync(Report("gone@client.example", hardId, "failed", "5.1.1", "smtp; 550 5.1.1 <gone@client.example>: user unknown"));
        await _imap.AppendAsync(Report("full@client.example", softId, "delayed", "4.2.2", "smtp; 452 4.2.2 mailbox full"));
        await MoveTimeAsync(s_t0.AddHours(3));

        var result = Assert.Single(await Reader().PollAllAsync(tenant, default));
        Assert.Equal((2, 0, null), (result.Recorded, result.Skipped, result.Error));
        var rows = (string?)await Db.ScalarAsync("""
            select string_agg(concat_ws('|', event_type, recipient, replace(message_id::text, '-', ''), reason), ',' order by event_type)
            from public.message_delivery_events where tenant_id = $1
            """, tenant);
        Assert.Equal(
            $"bounce_hard|gone@client.example|{hardId.Split('.')[0]}|5.1.1 smtp; 550 5.1.1 <gone@client.example>: user unknown," +
            $"bounce_soft|full@client.example|{softId.Split('.')[0]}|4.2.2 smtp; 452 4.2.2 mailbox full", rows);
        Assert.Equal(1L, await Db.ScalarAsync("""
            select count(*) from public.message_suppressions where tenant_id = $1 and address = 'gone@client.example'
            """, tenant));
    }

    [Fact]
    public async Task UnmatchedAndUnreadableMessages_SkippedWithReason_MailboxGoesOn()
    {
        var (tenant, _, messageId) = await SentEmailAsync("pat@client.example");
        await MailboxAsync(tenant);
        // A reply to a message this tenant never sent, a delivery report that says nothing readable, then a real reply.
        await _imap.AppendAsync(Reply("stranger@elsewhere.example", "0badc0de0badc0de0badc0de0badc0de.outbox@acme.example", s_t0.AddHours(1), "Who are you?"));
        var broken = await _imap.AppendAsync(Report("pat@client.example", messageId, "", "", ""));
        var last = await _imap.AppendAsync(Reply("pat@client.example", messageId, s_t0.AddHours(2), "Sounds good."));
        await MoveTimeAsync(s_t0.AddHours(3));

        var result = Assert.Single(await Reader().PollAllAsync(tenant, default));
        Assert.Equal((MailboxPollResult.Polled, 1, 2), (result.Status, result.Recorded, result.Skipped));
        Assert.Contains($"UID {broken}: a delivery report whose status cannot be read", result.Error, StringComparison.Ordinal);
        Assert.Equal(result.Error, await Db.ScalarAsync("select last_error from public.inbound_sources where tenant_id = $1", tenant));
        // The unmatched reply is kept, skipped, with the recorder's reason, and has no effect.
        Assert.Equal("skipped|true", await Db.ScalarAsync("""
            select effect || '|' || (skipped_reason is not null)::text from public.message_delivery_events
            where tenant_id = $1 and recipient = 'stranger@elsewhere.example'
            """, tenant));
        Assert.Equal("touch_recorded", await Db.ScalarAsync("""
            select effect from public.message_delivery_events where tenant_id = $1 and recipient = 'pat@client.example'
            """, tenant));
        Assert.Equal($"{last}|", await PositionAsync(tenant));
    }

    [Fact]
    public async Task WrongPassword_OnlyLastErrorWritten_OtherTenantsMailboxRead_NextPollTriesAgain()
    {
        var (tenant, _, messageId) = await SentEmailAsync("pat@client.example");
        var (other, _, otherMessageId) = await SentEmailAsync("kim@client.example");
        await MailboxAsync(tenant, "WRONG_PASSWORD");
        await MailboxAsync(other);
        await _imap.AppendAsync(Reply("pat@client.example", messageId, s_t0.AddHours(1), "Yes."));
        await _imap.AppendAsync(Reply("kim@client.example", otherMessageId, s_t0.AddHours(1), "Yes please."));
        await MoveTimeAsync(s_t0.AddHours(3));
        var secrets = new Dictionary<string, string> { [PasswordVariable] = _imap.Password, ["WRONG_PASSWORD"] = "not-the-password" };

        var results = await Reader(secrets: secrets).PollAllAsync(null, default);
        var refused = Assert.Single(results, r => r.TenantId == tenant);
        Assert.Equal(MailboxPollResult.Failed, refused.Status);
        Assert.Contains($"login refused by 127.0.0.1:{_imap.Port} for {_imap.Username}", refused.Error, StringComparison.Ordinal);
        Assert.Contains("WRONG_PASSWORD", refused.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-password", refused.Error, StringComparison.Ordinal);
        Assert.Equal(refused.Error, await Db.ScalarAsync("select last_error from public.inbound_sources where tenant_id = $1", tenant));
        Assert.Equal("|", await PositionAsync(tenant));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_delivery_events where tenant_id = $1", tenant));

        // The other tenant's mailbox (the same server, its own login) was read as usual.
        var read = Assert.Single(results, r => r.TenantId == other);
        Assert.Equal((MailboxPollResult.Polled, 1), (read.Status, read.Recorded));
        // Both tenants' mailboxes are one here: kim's reply is the other tenant's, pat's matches none of its emails (skipped).
        Assert.Equal("reply|kim@client.example|touch_recorded,reply|pat@client.example|skipped", await Db.ScalarAsync("""
            select string_agg(concat_ws('|', event_type, recipient, effect), ',' order by recipient) from public.message_delivery_events where tenant_id = $1
            """, other));

        // The password is fixed: the next poll reads the mailbox, and last_error is cleared.
        secrets["WRONG_PASSWORD"] = _imap.Password;
        var retried = Assert.Single(await Reader(secrets: secrets).PollAllAsync(tenant, default));
        Assert.Equal((MailboxPollResult.Polled, 1, 1, null), (retried.Status, retried.Recorded, retried.Skipped, retried.Error));
        Assert.Null(await Db.ScalarAsync("select last_error from public.inbound_sources where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task UidValidityChanged_ReadAgainFromTheStart_NothingRecordedTwice()
    {
        var (tenant, _, messageId) = await SentEmailAsync("pat@client.example");
        var first = await _imap.RecreateFolderAsync("Replies");
        await MailboxAsync(tenant, mailbox: "Replies");
        var reply = Reply("pat@client.example", messageId, s_t0.AddHours(1), "Yes.");
        await _imap.AppendAsync(reply, "Replies");
        await MoveTimeAsync(s_t0.AddHours(3));
        Assert.Equal(1, Assert.Single(await Reader().PollAllAsync(tenant, default)).Recorded);
        Assert.Equal($"1|{first}", await PositionAsync(tenant, withValidity: true));

        // The folder is recreated (a new UIDVALIDITY) with the same reply and a new one in it.
        var second = await _imap.RecreateFolderAsync("Replies");
        Assert.NotEqual(first, second);
        await _imap.AppendAsync(reply, "Replies");
        await _imap.AppendAsync(Reply("pat@client.example", messageId, s_t0.AddHours(2), "And one more."), "Replies");

        var result = Assert.Single(await Reader().PollAllAsync(tenant, default));
        Assert.Equal((MailboxPollResult.Polled, 1, 1), (result.Status, result.Recorded, result.Duplicates));
        Assert.Contains($"UIDVALIDITY changed from {first} to {second}", result.Error, StringComparison.Ordinal);
        Assert.Equal($"2|{second}", await PositionAsync(tenant, withValidity: true));
        Assert.Equal(2L, await Db.ScalarAsync("select count(*) from public.message_delivery_events where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task PollInProgressElsewhere_SecondPollerBacksOff()
    {
        var (tenant, _, messageId) = await SentEmailAsync("pat@client.example");
        var source = await MailboxAsync(tenant);
        await _imap.AppendAsync(Reply("pat@client.example", messageId, s_t0.AddHours(1), "Yes."));
        await MoveTimeAsync(s_t0.AddHours(3));

        // Another worker holds the mailbox's poll lock.
        await using (var other = await DataSource.OpenConnectionAsync())
        {
            Assert.True(await MailboxStore.TryLockAsync(other, source, default));
            var busy = Assert.Single(await Reader().PollAllAsync(tenant, default));
            Assert.Equal((MailboxPollResult.Busy, 0), (busy.Status, busy.Recorded));
            Assert.Equal("|", await PositionAsync(tenant));
        }

        // Its session ended (a crashed worker's too): the lock is gone with it.
        Assert.Equal(1, Assert.Single(await Reader().PollAllAsync(tenant, default)).Recorded);
    }

    private MailboxReader Reader(ConcurrentQueue<DeliveryEvent>? calls = null, IReadOnlyDictionary<string, string>? secrets = null)
    {
        // Without the classifier: these tests are about reading the mailbox; a reply unlabelled is a touch.
        var recorder = new InboundRecorder(Db.DataSource);
        secrets ??= new Dictionary<string, string> { [PasswordVariable] = _imap.Password };
        return new MailboxReader(Db.DataSource, (tenant, delivery, cancellationToken) =>
        {
            calls?.Enqueue(delivery);
            return recorder.RecordAsync(tenant, delivery, cancellationToken);
        }, Clock, new MailboxReaderOptions { Timeout = TimeSpan.FromSeconds(10) }, name => secrets.GetValueOrDefault(name));
    }

    private async Task<Guid> MailboxAsync(Guid tenant, string secretRef = PasswordVariable, string mailbox = "INBOX") =>
        await MailboxStore.SetAsync(Db.DataSource, tenant, new MailboxSettings("127.0.0.1", _imap.Port, "none", _imap.Username, mailbox, secretRef), default);

    private async Task<string> PositionAsync(Guid tenant, bool withValidity = false) =>
        (string)(await Db.ScalarAsync(withValidity
            ? "select concat_ws('|', imap_last_uid, imap_uid_validity) from public.inbound_sources where tenant_id = $1"
            : "select coalesce(imap_last_uid::text, '') || '|' from public.inbound_sources where tenant_id = $1", tenant))!;

    private async Task MoveTimeAsync(DateTimeOffset to)
    {
        Clock.SetUtcNow(to);
        await Db.FreezeTimeAsync(to);
    }

    // An email to a new contact of the tenant (a new tenant when none is given), sent through the real dispatcher and a
    // loopback relay; returns the Message-ID the relay received (without angle brackets).
    private async Task<(Guid Tenant, Guid Contact, string MessageId)> SentEmailAsync(string to, Guid? tenantId = null)
    {
        using var smtp = new LoopbackSmtpServer();
        var tenant = tenantId ?? await Db.CreateTenantAsync();
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', '127.0.0.1', $2, 'none', 'agent@acme.example')
            on conflict (tenant_id, channel) do update set smtp_port = excluded.smtp_port
            """, tenant, smtp.Port);
        var contact = (Guid)(await Db.ScalarAsync("insert into public.contacts (tenant_id, name, email) values ($1, $2, $3) returning id", tenant, to, to))!;
        await Db.EnqueueMessageAsync(new NewMessage(tenant, $"k-{to}", MessageChannel.Email, to, "Renewal", "Shall we talk about the renewal?",
            new JsonObject { ["target_type"] = "contact", ["target_id"] = contact.ToString() }));
        var options = new OutboxDispatcherOptions { WorkerId = "mailbox-test", SendTimeout = TimeSpan.FromSeconds(10) };
        var dispatcher = new OutboxDispatcher(Db.DataSource, OutboxDispatcher.DefaultTransports(Http, options, Clock), Clock, options, _ => null, new Random(7));
        while (await dispatcher.DispatchOnceAsync(default) > 0)
        {
        }

        return (tenant, contact, Assert.Single(smtp.Accepted).MessageId!);
    }

    private static MimeMessage Reply(string from, string inReplyTo, DateTimeOffset at, string text)
    {
        var message = new MimeMessage { Subject = "Re: Renewal", Date = at, InReplyTo = inReplyTo, Body = new TextPart("plain") { Text = text } };
        message.References.Add(inReplyTo);
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse("agent@acme.example"));
        return message;
    }

    // A delivery status notification as an MTA sends it (RFC 3464): a human part, the machine-readable status, and the
    // original message's headers (text/rfc822-headers).
    private static MimeMessage Report(string recipient, string originalId, string action, string status, string diagnostic)
    {
        var raw = $"""
            From: Mail Delivery System <MAILER-DAEMON@mx.client.example>
            To: agent@acme.example
            Subject: Undelivered Mail Returned to Sender
            Date: Tue, 03 Nov 2026 11:00:00 +0000
            Message-ID: <{Guid.NewGuid():N}@mx.client.example>
            MIME-Version: 1.0
            Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

            --b1
            Content-Type: text/plain

            Your message could not be delivered.

            --b1
            Content-Type: message/delivery-status

            Reporting-MTA: dns; mx.client.example

            Final-Recipient: rfc822; {recipient}
            {(action.Length > 0 ? $"Action: {action}" : "X-Note: none")}
            {(status.Length > 0 ? $"Status: {status}" : "X-Other: none")}
            {(diagnostic.Length > 0 ? $"Diagnostic-Code: {diagnostic}" : "X-Empty: none")}

            --b1
            Content-Type: text/rfc822-headers

            From: agent@acme.example
            To: {recipient}
            Subject: Renewal
            Message-ID: <{originalId}>

            --b1--
            """.ReplaceLineEndings("\r\n");
        return MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(raw)));
    }
}
