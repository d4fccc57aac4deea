using System.Text.Json.Nodes;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Engagement.Outbox;

namespace Hourglass.IntegrationTests.Engagement.Inbound;

/// <summary>
/// What each delivery event does, recorded through <see cref="InboundRecorder"/> against a real PostgreSQL: matched to the
/// tenant's message (by outbox id or Message-ID), written once (a source's retry records nothing twice), and its effect —
/// a hard bounce suppresses the address (the next email is suppressed at send time, through a real SMTP server) and opens
/// a card for the owner; soft bounces are retried, then hard after the limit; a complaint or unsubscribe opts out for good;
/// a reply is a touch at its own time and a <c>reply</c> event; an out-of-office answer holds the next touch; an event for
/// a message the tenant never sent is skipped with the reason and touches nothing, in no tenant.
/// </summary>
public sealed class InboundRecorderTests() : FrozenClockTest(s_t0)
{
    // A Tuesday, 10:00 UTC: inside the default policy's business hours for a tenant in UTC.
    private static readonly DateTimeOffset s_t0 = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);
    private const string Address = "pat@client.example";

    private Guid _tenant;
    private Guid _owner;
    private Guid _contact;
    private Guid _message;

    protected override async Task SeedAsync()
    {
        await base.SeedAsync();
        _tenant = await Db.CreateTenantAsync();
        _owner = await Db.AddMemberAsync(_tenant);
        var account = (Guid)(await Db.ScalarAsync("insert into public.accounts (tenant_id, name, owner_user_id) values ($1, 'Client Co', $2) returning id",
            _tenant, _owner))!;
        _contact = (Guid)(await Db.ScalarAsync("insert into public.contacts (tenant_id, account_id, name, email) values ($1, $2, 'Pat Client', $3) returning id",
            _tenant, account, Address))!;
        _message = await EnqueueAsync(_tenant, "k-1", Address, _contact);
    }

    private InboundRecorder Recorder => new(DataSource);

    [Fact]
    public async Task HardBounce_SuppressesTheAddress_OpensTheOwnersCard_AndTheNextEmailIsSuppressedAtSendTime()
    {
        var outcome = await Recorder.RecordAsync(_tenant, Event("evt-1", DeliveryEventType.HardBounce, reason: "550 5.1.1 user unknown"), default);

        Assert.Equal(new InboundOutcome(InboundOutcome.Recorded, "address_suppressed", _message), outcome);
        Assert.Equal("hard_bounce", await Db.ScalarAsync("select reason from public.message_suppressions where tenant_id = $1 and address = $2", _tenant, Address));
        var card = await Db.ScalarAsync(
            "select title || '|' || assignee_user_id from public.cards where tenant_id = $1 and kind = 'notice' and entity_id = $2 and status = 'open'",
            _tenant, _contact);
        Assert.Equal($"Find a new email address for Pat Client|{_owner}", card);
        Assert.Equal("bounce_hard", await Db.ScalarAsync("select event_type from public.warehouse_events where tenant_id = $1 and idempotency_key = 'delivery:resend:evt-1'", _tenant));

        // A message queued before the bounce (planned when the address still worked) is stopped at the moment of sending.
        using var smtp = new LoopbackSmtpServer();
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', '127.0.0.1', $2, 'none', 'agent@acme.example')
            """, _tenant, smtp.Port);
        var next = await EnqueueAsync(_tenant, "k-2", "PAT@client.example", _contact);
        await Db.ExecuteAsync("update public.message_outbox set status = 'cancelled' where id = $1", _message);
        await Dispatcher().DispatchOnceAsync(default);

        Assert.Empty(smtp.Accepted);
        Assert.Equal("suppressed|address_suppressed",
            await Db.ScalarAsync("select status || '|' || suppressed_code from public.message_outbox where id = $1", next));
    }

    [Fact]
    public async Task SameEventTwice_RecordsNothingTheSecondTime()
    {
        var first = await Recorder.RecordAsync(_tenant, Event("evt-2", DeliveryEventType.HardBounce), default);
        var again = await Recorder.RecordAsync(_tenant, Event("evt-2", DeliveryEventType.HardBounce), default);

        Assert.Equal(InboundOutcome.Recorded, first.Status);
        Assert.Equal(new InboundOutcome(InboundOutcome.Duplicate, "address_suppressed", _message), again);
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.message_delivery_events where tenant_id = $1", _tenant));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'bounce_hard'", _tenant));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.cards where tenant_id = $1 and kind = 'notice'", _tenant));
    }

    [Fact]
    public async Task SoftBounces_AreRetried_ThenTreatedAsHardAtTheLimit_ADeliveryBetweenResetsTheCount()
    {
        var effects = new List<string>();
        effects.Add((await Recorder.RecordAsync(_tenant, Event("s1", DeliveryEventType.SoftBounce, at: s_t0.AddMinutes(-9)), default)).Effect);
        effects.Add((await Recorder.RecordAsync(_tenant, Event("s2", DeliveryEventType.SoftBounce, at: s_t0.AddMinutes(-8)), default)).Effect);
        effects.Add((await Recorder.RecordAsync(_tenant, Event("d1", DeliveryEventType.Delivered, at: s_t0.AddMinutes(-7)), default)).Effect);
        effects.Add((await Recorder.RecordAsync(_tenant, Event("s3", DeliveryEventType.SoftBounce, at: s_t0.AddMinutes(-6)), default)).Effect);
        effects.Add((await Recorder.RecordAsync(_tenant, Event("s4", DeliveryEventType.SoftBounce, at: s_t0.AddMinutes(-5)), default)).Effect);
        Assert.Null(await Db.ScalarAsync("select reason from public.message_suppressions where tenant_id = $1", _tenant));
        effects.Add((await Recorder.RecordAsync(_tenant, Event("s5", DeliveryEventType.SoftBounce, at: s_t0.AddMinutes(-4)), default)).Effect);

        Assert.Equal(["soft_bounce_retried", "soft_bounce_retried", "none", "soft_bounce_retried", "soft_bounce_retried", "address_suppressed"], effects);
        Assert.Equal("soft_bounce_limit", await Db.ScalarAsync("select reason from public.message_suppressions where tenant_id = $1", _tenant));
        // Each retry is the same message again, due later each time, under its own key (a replayed event enqueues none).
        Assert.Equal("k-1:soft-bounce-retry:1@14400|k-1:soft-bounce-retry:2@28800",
            await Db.ScalarAsync("""
                select string_agg(idempotency_key || '@' || extract(epoch from next_attempt_at - $2)::int, '|' order by idempotency_key)
                from public.message_outbox where tenant_id = $1 and payload ->> 'retry_of' = $3
                """, _tenant, s_t0, _message.ToString()));
    }

    [Fact]
    public async Task Complaint_OptsTheContactOutForGood_AndALaterUnsubscribeKeepsTheFirstOptOut()
    {
        var complaint = await Recorder.RecordAsync(_tenant, Event("c1", DeliveryEventType.Complaint, source: InboundSourceKind.SendGrid), default);
        await Db.FreezeTimeAsync(s_t0.AddDays(1));
        var unsubscribe = await Recorder.RecordAsync(_tenant, Event("u1", DeliveryEventType.Unsubscribe, source: InboundSourceKind.SendGrid), default);

        Assert.Equal("opted_out", complaint.Effect);
        Assert.Equal("opted_out", unsubscribe.Effect);
        Assert.Equal($"{s_t0:yyyy-MM-dd HH:mm}|complaint:sendgrid|true",
            await Db.ScalarAsync("select to_char(opted_out_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || '|' || opted_out_source || '|' || do_not_contact from public.contacts where id = $1",
                _contact));
        Assert.Equal("complaint", await Db.ScalarAsync("select reason from public.message_suppressions where tenant_id = $1", _tenant));
    }

    [Fact]
    public async Task Reply_IsATouchAtTheRepliesOwnTime_AndTheReplyEventStrategyAttributionReads()
    {
        var repliedAt = s_t0.AddHours(-3);
        var reference = new MessageReference(HeaderMessageIds: [$"<{SmtpTransport.MessageIdFor(_message, "agent@acme.example")}>"]);
        var outcome = await Recorder.RecordAsync(_tenant, new DeliveryEvent(InboundSourceKind.Imap, "<reply-1@client.example>", DeliveryEventType.Reply,
            repliedAt, reference, Address, Reply: new InboundReply(Address, "Re: Renewal", "Sounds good, call me Thursday.", ReplyLabel.Interested, 0.9m,
                "call me", "rules")), default);

        Assert.Equal(new InboundOutcome(InboundOutcome.Recorded, "touch_recorded", _message), outcome);
        Assert.Equal($"{repliedAt:yyyy-MM-dd HH:mm}|reply|contact",
            await Db.ScalarAsync("""
                select to_char(last_touch_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || '|' || last_touch_type || '|' || last_touch_by
                from public.engagement_clocks where tenant_id = $1 and entity_type = 'contact' and entity_id = $2
                """, _tenant, _contact));
        Assert.Equal("interested", await Db.ScalarAsync("""
            select payload ->> 'label' from public.warehouse_events
            where tenant_id = $1 and event_type = 'reply' and entity_type = 'contact' and entity_id = $2
            """, _tenant, _contact));
        Assert.Equal("interested|0.9", await Db.ScalarAsync("select reply_label || '|' || reply_confidence from public.message_delivery_events where tenant_id = $1",
            _tenant));
    }

    [Fact]
    public async Task OutOfOffice_HoldsTheNextTouchUntilTheReturnDate_WithoutATouchOrAReplyEvent()
    {
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where tenant_id = $1", _tenant, s_t0.AddDays(-2));
        await Db.ExecuteAsync("select public.refresh_engagement_compliance($1)", _tenant);
        Assert.Equal(1L, await CandidatesAsync());

        var outcome = await Recorder.RecordAsync(_tenant, Reply("ooo-1", "I am out of the office", ReplyLabel.OutOfOffice, new DateOnly(2026, 11, 16)), default);

        Assert.Equal("waiting_until_return", outcome.Effect);
        Assert.Equal(0L, await CandidatesAsync());
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'reply'", _tenant));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'out_of_office'", _tenant));
        Assert.Null(await Db.ScalarAsync("select last_touch_type from public.engagement_clocks where tenant_id = $1 and entity_id = $2", _tenant, _contact));

        await Db.FreezeTimeAsync(new DateTimeOffset(2026, 11, 16, 0, 0, 1, TimeSpan.Zero));
        Assert.Equal(1L, await CandidatesAsync());
    }

    [Fact]
    public async Task UnsubscribeRequestInWords_IsAnUnsubscribe()
    {
        var outcome = await Recorder.RecordAsync(_tenant, Reply("r-unsub", "Please take me off your list.", ReplyLabel.UnsubscribeRequest, null), default);

        Assert.Equal("opted_out", outcome.Effect);
        Assert.Equal("reply:imap", await Db.ScalarAsync("select opted_out_source from public.contacts where id = $1", _contact));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'unsubscribe'", _tenant));
    }

    [Fact]
    public async Task EventForAMessageTheTenantNeverSent_IsSkippedWithTheReason_AndTouchesNoTenant()
    {
        var other = await Db.CreateTenantAsync();

        // The message is this tenant's: posted as the other tenant's event, it matches nothing there.
        var foreign = await Recorder.RecordAsync(other, Event("x1", DeliveryEventType.HardBounce), default);
        var unknown = await Recorder.RecordAsync(_tenant, Event("x2", DeliveryEventType.HardBounce) with { Message = new MessageReference(Guid.NewGuid()) },
            default);
        var wrongAddress = await Recorder.RecordAsync(_tenant, Event("x3", DeliveryEventType.Complaint) with { Recipient = "someone@else.example" }, default);

        Assert.Equal(InboundOutcome.Skipped, foreign.Status);
        Assert.StartsWith("no message of this tenant matches outbox id", foreign.Reason, StringComparison.Ordinal);
        Assert.Equal(InboundOutcome.Skipped, unknown.Status);
        Assert.Equal($"the event is about someone@else.example, but message {_message} went to {Address}", wrongAddress.Reason);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_suppressions"));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.contacts where opted_out_at is not null"));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.warehouse_events where source like 'inbound:%'"));
        Assert.Equal("skipped|skipped|skipped", await Db.ScalarAsync("select string_agg(effect, '|') from public.message_delivery_events"));
    }

    [Fact]
    public async Task EventFromTheFuture_IsRefused_NothingWritten()
    {
        var error = await Assert.ThrowsAsync<InvalidDeliveryEventException>(() =>
            Recorder.RecordAsync(_tenant, Event("future", DeliveryEventType.HardBounce, at: s_t0.AddHours(1)), default));

        Assert.Equal("occurred_at", error.Field);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_delivery_events"));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_suppressions"));
    }

    [Theory]
    [InlineData("source", "mailchimp", "x", DeliveryEventType.HardBounce)]
    [InlineData("id", InboundSourceKind.Resend, " ", DeliveryEventType.HardBounce)]
    [InlineData("type", InboundSourceKind.Resend, "x", "opened")]
    public async Task MalformedEvent_IsRefusedNamingTheField_AndNothingIsWritten(string field, string source, string id, string type)
    {
        var error = await Assert.ThrowsAsync<InvalidDeliveryEventException>(() =>
            Recorder.RecordAsync(_tenant, Event(id, type, source: source), default));

        Assert.Equal(field, error.Field);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_delivery_events"));
    }

    private DeliveryEvent Event(string id, string type, string source = InboundSourceKind.Resend, DateTimeOffset? at = null, string? reason = null) =>
        new(source, id, type, at ?? s_t0, new MessageReference(_message), Address, reason);

    private DeliveryEvent Reply(string id, string text, string label, DateOnly? returnOn) =>
        new(InboundSourceKind.Imap, id, DeliveryEventType.Reply, s_t0, new MessageReference(_message), Address,
            Reply: new InboundReply(Address, "Re: Renewal", text, label, 0.95m, text, "rules", returnOn));

    private async Task<long> CandidatesAsync() =>
        (long)(await Db.ScalarAsync("select count(*) from hourglass.touch_candidates($1, 100, false) where entity_id = $2", _tenant, _contact))!;

    private async Task<Guid> EnqueueAsync(Guid tenant, string key, string to, Guid contact) =>
        (await Db.EnqueueMessageAsync(new NewMessage(tenant, key, MessageChannel.Email, to, "Renewal", "hello",
            new JsonObject { ["target_type"] = "contact", ["target_id"] = contact.ToString(), ["strategy_key"] = "checkin-email" })))!.Value;

    private OutboxDispatcher Dispatcher() =>
        new(DataSource, OutboxDispatcher.DefaultTransports(Http, Options, Clock), Clock, Options, _ => null, new Random(7));

    private static OutboxDispatcherOptions Options => new()
    {
        WorkerId = "inbound-test",
        BaseDelay = TimeSpan.FromMinutes(1),
        MaxDelay = TimeSpan.FromMinutes(10),
        VisibilityTimeout = TimeSpan.FromMinutes(2),
        SendTimeout = TimeSpan.FromSeconds(10),
    };
}
