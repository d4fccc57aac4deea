using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Policies;
using Microsoft.Extensions.Time.Testing;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// What the dispatcher checks again at the moment of sending, against a real PostgreSQL, a loopback webhook receiver
/// and a loopback SMTP server: a kill switch holds a tenant's messages untouched (neither sent nor failed, attempts
/// and backoff as they were) until the resume; a contact or account marked do-not-contact, or a channel disabled or
/// removed, since the message was queued suppresses it with the reason (never sent, never a touch); outside the send
/// window it is held until the window opens, then sent.
/// </summary>
public sealed class SendTimeCheckTests() : FrozenClockTest(s_t0)
{
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string SecretRef = "HG_SENDTIME_WEBHOOK_SECRET";

    // A Tuesday, 10:00 UTC: inside the default policy's business hours for a tenant in UTC.
    private static readonly DateTimeOffset s_t0 = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);
    private static readonly Dictionary<string, string> s_secrets = new() { [SecretRef] = Secret };

    [Fact]
    public async Task Dispatch_TenantPaused_MessagesStayQueuedUntouchedThroughPasses_ResumedThenDelivered()
    {
        using var receiver = new WebhookReceiver(Secret);
        using var smtp = new LoopbackSmtpServer();
        var paused = await TenantAsync(receiver.Url, smtp.Port);
        var other = await TenantAsync(receiver.Url, smtp.Port);
        var contact = await ContactAsync(paused, "pat@client.example");
        var hook = await EnqueueAsync(Webhook(paused, "k-hook", receiver.Url));
        var mail = await EnqueueAsync(Email(paused, "k-mail", "pat@client.example", contact));
        // A message that already failed once, waiting for its backoff: the pause must not touch its attempts or its retry time.
        await Db.ExecuteAsync("update public.message_outbox set attempts = 1, last_error = 'HTTP 503', next_attempt_at = $2 where id = $1", hook, s_t0.AddMinutes(-1));
        var before = await RowsAsync(paused);
        await new TenantControl(Db.DataSource, TimeProvider.System).PauseTenantAsync(paused, "customer asked us to stop", "ops", default);
        var control = await EnqueueAsync(Webhook(other, "k-other", receiver.Url));

        var dispatcher = Dispatcher();
        var passes = new List<int>();
        for (var pass = 0; pass < 3; pass++)
        {
            passes.Add(await dispatcher.DispatchOnceAsync(default));
            await AdvanceAsync(TimeSpan.FromMinutes(30));
        }

        // The other tenant's message went out in the first pass; the paused tenant's were never even taken up.
        Assert.Equal([1, 0, 0], passes);
        Assert.Equal([control.ToString()], receiver.Deliveries.Select(d => d.Id));
        Assert.Empty(smtp.Accepted);
        Assert.Equal(before, await RowsAsync(paused));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox_attempts where tenant_id = $1", paused));

        await new TenantControl(Db.DataSource, TimeProvider.System).ResumeTenantAsync(paused, default);
        await dispatcher.DispatchOnceAsync(default);

        Assert.Equal(new Dictionary<string, int> { [control.ToString()] = 1, [hook.ToString()] = 1 }, receiver.AcceptedById());
        Assert.Single(smtp.Accepted);
        Assert.Equal(("sent", 2), await StateAsync(hook));
        Assert.Equal(("sent", 1), await StateAsync(mail));
    }

    [Fact]
    public async Task Dispatch_GlobalPause_HoldsEveryTenant_LapsedLastAttemptNotFailed_ResumeDelivers()
    {
        using var receiver = new WebhookReceiver(Secret);
        var first = await TenantAsync(receiver.Url, smtpPort: null);
        var second = await TenantAsync(receiver.Url, smtpPort: null);
        var a = await EnqueueAsync(Webhook(first, "k-a", receiver.Url));
        var b = await EnqueueAsync(Webhook(second, "k-b", receiver.Url));
        // A last attempt whose dispatcher died: outside a pause it would be failed; under the pause it waits.
        await Db.ExecuteAsync("""
            update public.message_outbox set status = 'sending', attempts = max_attempts, claimed_by = 'dead', claimed_until = $2, next_attempt_at = $2
            where id = $1
            """, b, s_t0.AddMinutes(-5));
        var before = (await RowsAsync(first), await RowsAsync(second));
        await new TenantControl(Db.DataSource, TimeProvider.System).PauseAllAsync("incident 42", "ops", default);

        var dispatcher = Dispatcher();
        for (var pass = 0; pass < 3; pass++)
        {
            Assert.Equal(0, await dispatcher.DispatchOnceAsync(default));
            await AdvanceAsync(TimeSpan.FromHours(1));
        }

        Assert.Empty(receiver.Deliveries);
        Assert.Equal(before, (await RowsAsync(first), await RowsAsync(second)));

        await new TenantControl(Db.DataSource, TimeProvider.System).ResumeAllAsync("ops", default);
        await dispatcher.DispatchOnceAsync(default);

        Assert.Equal([a.ToString()], receiver.Deliveries.Select(d => d.Id));
        Assert.Equal(("sent", 1), await StateAsync(a));
        Assert.Equal(("failed", 8), await StateAsync(b));
    }

    [Fact]
    public async Task Dispatch_ContactOptedOutAfterQueuing_SuppressedWithReason_NeverSentNeverATouch()
    {
        using var receiver = new WebhookReceiver(Secret);
        using var smtp = new LoopbackSmtpServer();
        var tenant = await TenantAsync(receiver.Url, smtp.Port);
        var account = await Db.CreateAccountAsync(tenant, "Globex");
        var optedOut = await ContactAsync(tenant, "pat@client.example", account);
        var marked = await ContactAsync(tenant, "sam@client.example", account);
        var fine = await ContactAsync(tenant, "kim@client.example");
        var otherAccount = await Db.CreateAccountAsync(tenant, "Initech");
        var atBlockedAccount = await ContactAsync(tenant, "lee@initech.example", otherAccount);
        var m1 = await EnqueueAsync(Email(tenant, "k-opted-out", "pat@client.example", optedOut));
        var m2 = await EnqueueAsync(Email(tenant, "k-marked", "sam@client.example", marked));
        var m3 = await EnqueueAsync(Email(tenant, "k-account", "lee@initech.example", atBlockedAccount));
        var m4 = await EnqueueAsync(Webhook(tenant, "k-account-hook", receiver.Url, ("account", otherAccount)));
        var ok = await EnqueueAsync(Email(tenant, "k-fine", "kim@client.example", fine));

        // After the messages were queued: one contact opts out, one is marked do-not-contact, one account is too.
        await Db.ExecuteAsync("update public.contacts set opted_out_at = $2 where id = $1", optedOut, s_t0.AddDays(-1));
        await Db.ExecuteAsync("update public.contacts set do_not_contact = true where id = $1", marked);
        await Db.ExecuteAsync("update public.accounts set do_not_contact = true where id = $1", otherAccount);
        await DispatchAllAsync();

        Assert.Equal(["kim@client.example"], smtp.Accepted.Select(m => m.To.Mailboxes.Single().Address));
        Assert.Empty(receiver.Deliveries);
        Assert.Equal(("sent", 1), await StateAsync(ok));
        Assert.Equal(("suppressed", "contact_opted_out", "the contact opted out on 2026-11-02"), await SuppressedAsync(m1));
        Assert.Equal(("suppressed", "contact_do_not_contact", "the contact is marked do-not-contact"), await SuppressedAsync(m2));
        Assert.Equal(("suppressed", "account_do_not_contact", "the account is marked do-not-contact"), await SuppressedAsync(m3));
        Assert.Equal(("suppressed", "account_do_not_contact", "the account is marked do-not-contact"), await SuppressedAsync(m4));
        foreach (var id in new[] { m1, m2, m3, m4 })
        {
            // Never attempted, never a touch: no attempt row, the clock of its target not moved, no touch event.
            Assert.Equal(("suppressed", 0), await StateAsync(id));
            Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox_attempts where message_id = $1", id));
        }

        foreach (var target in new[] { optedOut, marked, atBlockedAccount, otherAccount })
        {
            Assert.Equal(0L, await Db.ScalarAsync(
                "select count(*) from public.warehouse_events where tenant_id = $1 and entity_id = $2 and event_type = 'touch'", tenant, target));
        }

        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and entity_id = $2 and event_type = 'touch'", tenant, fine));

        // Terminal: later passes leave it as it is, even after the contact opts back in.
        await Db.ExecuteAsync("update public.contacts set opted_out_at = null where id = $1", optedOut);
        await AdvanceAsync(TimeSpan.FromHours(1));
        Assert.Equal(0, await Dispatcher().DispatchOnceAsync(default));
        Assert.Equal(("suppressed", 0), await StateAsync(m1));
    }

    [Fact]
    public async Task Dispatch_ChannelDisabledOrRemovedAfterQueuing_SuppressedWithReason_NeverSent()
    {
        using var receiver = new WebhookReceiver(Secret);
        using var smtp = new LoopbackSmtpServer();
        var disabled = await TenantAsync(receiver.Url, smtp.Port);
        var removed = await TenantAsync(receiver.Url, smtp.Port);
        var mail = await EnqueueAsync(Email(disabled, "k-mail", "pat@client.example"));
        var hook = await EnqueueAsync(Webhook(disabled, "k-hook", receiver.Url));
        var gone = await EnqueueAsync(Webhook(removed, "k-gone", receiver.Url));

        await Db.ExecuteAsync("update public.message_channels set enabled = false where tenant_id = $1 and channel = 'email'", disabled);
        await Db.ExecuteAsync("delete from public.message_channels where tenant_id = $1 and channel = 'webhook'", removed);
        await DispatchAllAsync();

        Assert.Empty(smtp.Accepted);
        Assert.Equal([hook.ToString()], receiver.Deliveries.Select(d => d.Id));
        Assert.Equal(("suppressed", "channel_disabled", "the tenant's email channel is disabled"), await SuppressedAsync(mail));
        Assert.Equal(("suppressed", "channel_missing", "the tenant has no webhook channel (message_channels)"), await SuppressedAsync(gone));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox_attempts where message_id = any($1)", new[] { mail, gone }));
    }

    [Fact]
    public async Task Dispatch_OutsideTheSendWindow_HeldUntilItOpensAttemptsUntouched_ThenSent()
    {
        using var smtp = new LoopbackSmtpServer();
        var tenant = await TenantAsync(webhookUrl: null, smtp.Port);
        // The contact is in Berlin; the default policy sends on weekdays 08:00-18:00 in the contact's zone. Friday
        // 18:30 in Berlin: the window opens on Monday at 08:00 Berlin, 07:00 UTC.
        var contact = await ContactAsync(tenant, "pat@client.example");
        await Db.ExecuteAsync("update public.contacts set timezone = 'Europe/Berlin' where id = $1", contact);
        var friday = new DateTimeOffset(2026, 11, 6, 17, 30, 0, TimeSpan.Zero);
        await SetTimeAsync(friday);
        var id = await EnqueueAsync(Email(tenant, "k-window", "pat@client.example", contact));

        Assert.Equal(1, await Dispatcher().DispatchOnceAsync(default));

        var monday = new DateTimeOffset(2026, 11, 9, 7, 0, 0, TimeSpan.Zero);
        Assert.Empty(smtp.Accepted);
        Assert.Equal(("pending", 0), await StateAsync(id));
        Assert.Equal(monday, new DateTimeOffset((DateTime)(await Db.ScalarAsync("select next_attempt_at from public.message_outbox where id = $1", id))!, TimeSpan.Zero));
        var held = (string)(await Db.ScalarAsync("select held_reason from public.message_outbox where id = $1", id))!;
        Assert.Equal("business-hours: it is Fri 18:30 in Europe/Berlin (the contact's time zone); sends are allowed Mon,Tue,Wed,Thu,Fri 08:00-18:00; " +
                     "held until the window opens at 2026-11-09 07:00 UTC", held);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox_attempts where message_id = $1", id));

        // Not due over the weekend; due, and sent, when the window opens.
        await SetTimeAsync(monday.AddMinutes(-1));
        Assert.Equal(0, await Dispatcher().DispatchOnceAsync(default));
        await SetTimeAsync(monday);
        Assert.Equal(1, await Dispatcher().DispatchOnceAsync(default));

        Assert.Single(smtp.Accepted);
        Assert.Equal(("sent", 1), await StateAsync(id));
        Assert.Null(await Db.ScalarAsync("select held_reason from public.message_outbox where id = $1", id));
    }

    [Fact]
    public async Task PolicyHistory_SuppressedOrCancelledMessage_IsNotATouch()
    {
        var tenant = await Db.CreateTenantAsync();
        var contact = await ContactAsync(tenant, "pat@client.example");
        var statuses = new[] { "sent", "suppressed", "cancelled", "pending" };
        for (var i = 0; i < statuses.Length; i++)
        {
            var message = await EnqueueAsync(Email(tenant, $"k-{i}", "pat@client.example", contact));
            await Db.ExecuteAsync("""
                update public.message_outbox
                set status = $2, sent_at = case when $2 = 'sent' then now() end,
                    suppressed_at = case when $2 = 'suppressed' then now() end,
                    suppressed_code = case when $2 = 'suppressed' then 'contact_opted_out' end,
                    suppressed_reason = case when $2 = 'suppressed' then 'the contact opted out on 2026-11-02' end
                where id = $1
                """, message, statuses[i]);
            await Db.ExecuteAsync("""
                insert into public.agent_actions (tenant_id, idempotency_key, hour_bucket, kind, target_type, target_id, reason, status, result, completed_at)
                values ($1, $2, $3, 'send_message', 'contact', $4, 'test', 'succeeded', jsonb_build_object('message_id', $5::text, 'channel', 'email'), $3)
                """, tenant, $"send/{i}", s_t0.AddHours(-i - 1), contact, message.ToString());
        }

        // And one the handler suppressed when it was enqueued (no message at all).
        await Db.ExecuteAsync("""
            insert into public.agent_actions (tenant_id, idempotency_key, hour_bucket, kind, target_type, target_id, reason, status, result, completed_at)
            values ($1, 'send/suppressed', $2, 'send_message', 'contact', $3, 'test', 'succeeded', '{"suppressed": true, "reason": "the contact opted out"}', $2)
            """, tenant, s_t0.AddHours(-6), contact);

        var history = new PolicyHistory();
        await DocumentPolicyEnforcer.LoadHistoryAsync(Db.DataSource, tenant, s_t0, null, history, default);

        // The sent one and the one still queued count; the suppressed and cancelled ones do not.
        Assert.Equal(2, history.Count(CapScope.Contact, "email", contact, s_t0.AddDays(-7), s_t0));
    }

    private OutboxDispatcher Dispatcher() =>
        new(Db.DataSource, OutboxDispatcher.DefaultTransports(Http, Options, Clock), Clock, Options, s_secrets.GetValueOrDefault, new Random(7));

    private static OutboxDispatcherOptions Options => new()
    {
        WorkerId = "send-time-test",
        BaseDelay = TimeSpan.FromMinutes(1),
        MaxDelay = TimeSpan.FromMinutes(10),
        VisibilityTimeout = TimeSpan.FromMinutes(2),
        SendTimeout = TimeSpan.FromSeconds(10),
    };

    private async Task DispatchAllAsync()
    {
        var dispatcher = Dispatcher();
        while (await dispatcher.DispatchOnceAsync(default) > 0)
        {
        }
    }

    private async Task AdvanceAsync(TimeSpan by) => await SetTimeAsync(Clock.GetUtcNow() + by);

    private async Task SetTimeAsync(DateTimeOffset at)
    {
        Clock.SetUtcNow(at);
        await Db.FreezeTimeAsync(at);
    }

    // A tenant (in UTC) with a webhook channel and, given a port, an email channel to the loopback relay.
    private async Task<Guid> TenantAsync(string? webhookUrl, int? smtpPort)
    {
        var tenant = await Db.CreateTenantAsync();
        if (webhookUrl is not null)
        {
            await Db.ExecuteAsync("insert into public.message_channels (tenant_id, channel, webhook_url, secret_ref) values ($1, 'webhook', $2, $3)",
                tenant, webhookUrl, SecretRef);
        }

        if (smtpPort is { } port)
        {
            await Db.ExecuteAsync("""
                insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
                values ($1, 'email', '127.0.0.1', $2, 'none', 'agent@acme.example')
                """, tenant, port);
        }

        return tenant;
    }

    private async Task<Guid> ContactAsync(Guid tenant, string email, Guid? account = null) =>
        (Guid)(await Db.ScalarAsync("insert into public.contacts (tenant_id, account_id, name, email) values ($1, $2, $3, $4) returning id",
            tenant, account, email, email))!;

    private static NewMessage Webhook(Guid tenant, string key, string url, (string Type, Guid Id)? target = null) =>
        new(tenant, key, MessageChannel.Webhook, url, "Renewal", "hello", Target(target));

    private static NewMessage Email(Guid tenant, string key, string to, Guid? contact = null) =>
        new(tenant, key, MessageChannel.Email, to, "Renewal", "hello", Target(contact is { } id ? ("contact", id) : null));

    private static JsonObject? Target((string Type, Guid Id)? target) =>
        target is { } t ? new JsonObject { ["target_type"] = t.Type, ["target_id"] = t.Id.ToString() } : null;

    private async Task<Guid> EnqueueAsync(NewMessage message) => (await Db.EnqueueMessageAsync(message))!.Value;

    private async Task<(string Status, int Attempts)> StateAsync(Guid id)
    {
        await using var command = Db.DataSource.CreateCommand("select status, attempts from public.message_outbox where id = $1");
        command.Parameters.Add(new() { Value = id });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetString(0), reader.GetInt32(1));
    }

    private async Task<(string Status, string? Code, string? Reason)> SuppressedAsync(Guid id)
    {
        await using var command = Db.DataSource.CreateCommand("select status, suppressed_code, suppressed_reason from public.message_outbox where id = $1");
        command.Parameters.Add(new() { Value = id });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2));
    }

    // Everything about a tenant's messages that a pause must leave as it was.
    private async Task<string> RowsAsync(Guid tenant) =>
        (string)(await Db.ScalarAsync("""
            select coalesce(string_agg(concat_ws('|', id, status, attempts, next_attempt_at, claimed_by, claimed_until, last_error, updated_at, held_reason), E'\n' order by id), '')
            from public.message_outbox where tenant_id = $1
            """, tenant))!;
}
