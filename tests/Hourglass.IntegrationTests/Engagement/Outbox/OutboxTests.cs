using System.Text.Json.Nodes;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using SmtpServer.Protocol;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// The outbox against a real PostgreSQL, a local webhook receiver and a local SMTP server: a message exists iff its
/// transaction committed, retries back off until delivered or failed, every attempt is recorded, concurrent
/// dispatchers send each message once, and a dispatcher that dies between sending and recording leads to a
/// redelivery with the same id.
/// </summary>
public sealed class OutboxTests() : FrozenClockTest(s_t0)
{
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string SecretRef = "HG_TEST_WEBHOOK_SECRET";
    private static readonly DateTimeOffset s_t0 = new(2026, 11, 2, 9, 0, 0, TimeSpan.Zero);
    private static readonly Dictionary<string, string> s_secrets = new() { [SecretRef] = Secret };

    [Fact]
    public async Task Enqueue_TransactionRolledBack_NothingWrittenNothingSent()
    {
        using var receiver = new WebhookReceiver(Secret);
        var tenant = await TenantWithWebhookAsync(receiver.Url);

        await using (var connection = await Db.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            Assert.NotNull(await OutboxWriter.EnqueueAsync(connection, transaction, Webhook(tenant, "k-rolled-back", receiver.Url), default));
            await transaction.RollbackAsync();
        }

        Assert.Equal(0, await Dispatcher("d1").DispatchOnceAsync(default));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox where tenant_id = $1", tenant));
        Assert.Empty(receiver.Deliveries);
    }

    [Fact]
    public async Task Enqueue_SameKeyTwiceCommitted_OneMessageDeliveredOnceSigned()
    {
        using var receiver = new WebhookReceiver(Secret);
        var tenant = await TenantWithWebhookAsync(receiver.Url);

        var first = await EnqueueAsync(Webhook(tenant, "k-once", receiver.Url));
        var second = await EnqueueAsync(Webhook(tenant, "k-once", receiver.Url));
        await DrainAsync(Dispatcher("d1"));

        Assert.NotNull(first);
        Assert.Null(second);
        var delivery = Assert.Single(receiver.Deliveries);
        Assert.Equal(first.ToString(), delivery.Id);
        Assert.True(delivery.SignatureValid, $"signature {delivery.Signature} does not verify");
        Assert.Equal(s_t0.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), delivery.Timestamp);
        Assert.Equal("hello", (string?)JsonNode.Parse(delivery.Body)!["data"]!["body"]);
        Assert.Equal(("sent", 1), await StateAsync(first.Value));
    }

    [Fact]
    public async Task Dispatch_ReceiverFailsTwiceWith500_DeliveredOnceEveryAttemptRecordedBackoffApplied()
    {
        using var receiver = new WebhookReceiver(Secret, n => n <= 2 ? 500 : 200);
        var tenant = await TenantWithWebhookAsync(receiver.Url);
        var id = (await EnqueueAsync(Webhook(tenant, "k-retry", receiver.Url)))!.Value;
        var dispatcher = Dispatcher("d1");

        Assert.Equal(1, await dispatcher.DispatchOnceAsync(default));
        var retryAt = (DateTime)(await Db.ScalarAsync("select next_attempt_at from public.message_outbox where id = $1", id))!;
        // Backoff after attempt 1: between half and all of the base delay (1 minute here).
        Assert.InRange(new DateTimeOffset(retryAt, TimeSpan.Zero) - s_t0, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1));
        Assert.Equal(0, await dispatcher.DispatchOnceAsync(default));
        await DrainAsync(dispatcher);

        Assert.Equal(3, receiver.Deliveries.Count);
        Assert.Single(receiver.Deliveries.Select(d => d.Id).Distinct());
        Assert.All(receiver.Deliveries, d => Assert.True(d.SignatureValid));
        Assert.Equal(new Dictionary<string, int> { [id.ToString()] = 1 }, receiver.AcceptedById());
        Assert.Equal(("sent", 3), await StateAsync(id));
        Assert.Equal(
            [(1, "transient_error", (int?)500), (2, "transient_error", 500), (3, "sent", 200)],
            await AttemptsAsync(id));
    }

    [Theory]
    [InlineData(400, "failed")]
    [InlineData(404, "failed")]
    [InlineData(410, "failed")]
    [InlineData(408, "pending")]
    [InlineData(429, "pending")]
    [InlineData(503, "pending")]
    public async Task Dispatch_ReceiverAnswers_PermanentOnlyForPlain4xx(int status, string expected)
    {
        using var receiver = new WebhookReceiver(Secret, _ => status);
        var tenant = await TenantWithWebhookAsync(receiver.Url);
        var id = (await EnqueueAsync(Webhook(tenant, $"k-{status}", receiver.Url)))!.Value;

        await Dispatcher("d1").DispatchOnceAsync(default);
        await AdvanceAsync(TimeSpan.FromHours(2));
        await Dispatcher("d1").DispatchOnceAsync(default);

        Assert.Equal(expected == "failed" ? 1 : 2, receiver.Deliveries.Count);
        Assert.Equal(expected == "failed" ? ("failed", 1) : ("pending", 2), await StateAsync(id));
        Assert.Equal(expected == "failed" ? "permanent_error" : "transient_error", (await AttemptsAsync(id))[0].Outcome);
        var lastError = (string)(await Db.ScalarAsync("select last_error from public.message_outbox where id = $1", id))!;
        Assert.Contains($"HTTP {status}", lastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dispatch_AlwaysFailing_FailedAfterMaxAttemptsWithLastError()
    {
        using var receiver = new WebhookReceiver(Secret, _ => 502);
        var tenant = await TenantWithWebhookAsync(receiver.Url);
        var id = (await EnqueueAsync(Webhook(tenant, "k-exhaust", receiver.Url) with { MaxAttempts = 3 }))!.Value;

        await DrainAsync(Dispatcher("d1"));

        Assert.Equal(3, receiver.Deliveries.Count);
        Assert.Equal(("failed", 3), await StateAsync(id));
        Assert.Equal(3, (await AttemptsAsync(id)).Count(a => a.Outcome == "transient_error"));
        Assert.Contains("HTTP 502", (string)(await Db.ScalarAsync("select last_error from public.message_outbox where id = $1", id))!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dispatch_TwoDispatchersConcurrently_EachMessageSentExactlyOnce()
    {
        using var receiver = new WebhookReceiver(Secret) { Delay = TimeSpan.FromMilliseconds(5) };
        var tenant = await TenantWithWebhookAsync(receiver.Url);
        var ids = new List<Guid>();
        for (var i = 0; i < 60; i++)
        {
            ids.Add((await EnqueueAsync(Webhook(tenant, $"k-concurrent-{i}", receiver.Url)))!.Value);
        }

        using var start = new ManualResetEventSlim();
        var workers = new[] { "a", "b", "c" }.Select(name => Task.Run(async () =>
        {
            start.Wait();
            var dispatcher = Dispatcher(name, batchSize: 4);
            while (await dispatcher.DispatchOnceAsync(default) > 0)
            {
            }
        })).ToArray();
        start.Set();
        await Task.WhenAll(workers);

        Assert.Equal(60, receiver.Deliveries.Count);
        Assert.Equal(ids.Select(i => i.ToString()).Order(), receiver.AcceptedById().Keys.Order());
        Assert.All(receiver.AcceptedById().Values, n => Assert.Equal(1, n));
        Assert.Equal(60L, await Db.ScalarAsync("select count(*) from public.message_outbox where tenant_id = $1 and status = 'sent' and attempts = 1", tenant));
        Assert.True((long)(await Db.ScalarAsync("select count(distinct claimed_by) from public.message_outbox where tenant_id = $1", tenant))! >= 2,
            "expected the dispatchers to share the work");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task Dispatch_SendsUpToMaxParallelSendsOfABatchAtOnce_EachResultRecorded(int parallel)
    {
        using var receiver = new WebhookReceiver(Secret);
        var tenant = await TenantWithWebhookAsync(receiver.Url);
        var ids = new List<Guid>();
        for (var i = 0; i < 8; i++)
        {
            ids.Add((await EnqueueAsync(Webhook(tenant, $"k-parallel-{i}", receiver.Url)))!.Value);
        }

        var gate = new GatedTransport(new WebhookTransport(Http, Clock, TimeSpan.FromSeconds(10)), parallel);
        var dispatcher = new OutboxDispatcher(DataSource, [gate], Clock, Options("parallel") with { MaxParallelSends = parallel },
            s_secrets.GetValueOrDefault, new Random(1));
        Assert.Equal(8, await dispatcher.DispatchOnceAsync(default));

        // Each send waits until `parallel` sends are in flight (or a second passes): a dispatcher sending one at a time
        // under MaxParallelSends = 4 would never let four meet.
        Assert.Equal(parallel, gate.MostInFlight);
        Assert.Equal(8, receiver.Deliveries.Count);
        foreach (var id in ids)
        {
            Assert.Equal(("sent", 1), await StateAsync(id));
            Assert.Equal([(1, "sent", (int?)200)], await AttemptsAsync(id));
        }
    }

    [Fact]
    public async Task Dispatch_DiesBetweenSendingAndRecording_RedeliveredWithSameIdAfterClaimLapses()
    {
        using var receiver = new WebhookReceiver(Secret);
        var tenant = await TenantWithWebhookAsync(receiver.Url);
        var id = (await EnqueueAsync(Webhook(tenant, "k-crash", receiver.Url)))!.Value;

        // The first dispatcher's "process" stops the instant its send returns, before it records anything: the
        // transport cancels the dispatcher's token, as a kill would end it. Its claim stays in the database.
        using var dying = new CancellationTokenSource();
        var crashing = new DyingTransport(new WebhookTransport(Http, Clock, TimeSpan.FromSeconds(10)), dying);
        var first = new OutboxDispatcher(DataSource, [crashing], Clock, Options("dies"), s_secrets.GetValueOrDefault, new Random(1));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.DispatchOnceAsync(dying.Token));
        Assert.Equal(("sending", 1), await StateAsync(id));

        // Another dispatcher leaves it alone while the claim holds, and takes it over once the claim lapses.
        var second = Dispatcher("survivor");
        Assert.Equal(0, await second.DispatchOnceAsync(default));
        await AdvanceAsync(Options("x").VisibilityTimeout + TimeSpan.FromSeconds(1));
        Assert.Equal(1, await second.DispatchOnceAsync(default));

        Assert.Equal(2, receiver.Deliveries.Count);
        Assert.Equal(new Dictionary<string, int> { [id.ToString()] = 2 }, receiver.AcceptedById());
        Assert.Equal(("sent", 2), await StateAsync(id));
        Assert.Equal([(1, "claim_expired", (int?)null), (2, "sent", 200)], await AttemptsAsync(id));
    }

    [Fact]
    public async Task Email_RelayRefusesOnceWith451ThenAccepts_OneMessageWithOutboxMessageId()
    {
        using var smtp = new LoopbackSmtpServer { Reject = n => n == 1 ? new SmtpResponse((SmtpReplyCode)451, "try later") : null };
        var tenant = await TenantWithEmailAsync(smtp.Port);
        var id = (await EnqueueAsync(Email(tenant, "k-mail", "pat@client.example")))!.Value;

        await DrainAsync(Dispatcher("d1"));

        var message = Assert.Single(smtp.Accepted);
        Assert.Equal(SmtpTransport.MessageIdFor(id, "agent@acme.example"), message.MessageId);
        Assert.Equal("Renewal", message.Subject);
        Assert.Equal("pat@client.example", message.To.Mailboxes.Single().Address);
        Assert.Equal("hello", message.TextBody?.Trim());
        Assert.Equal(("sent", 2), await StateAsync(id));
        Assert.Equal([(1, "transient_error", (int?)451), (2, "sent", 250)], await AttemptsAsync(id));
    }

    [Fact]
    public async Task Email_RelayRefusesWith550_FailedNotRetried()
    {
        using var smtp = new LoopbackSmtpServer { Reject = _ => SmtpResponse.MailboxUnavailable };
        var tenant = await TenantWithEmailAsync(smtp.Port);
        var id = (await EnqueueAsync(Email(tenant, "k-mail-550", "nobody@client.example")))!.Value;

        await DrainAsync(Dispatcher("d1"));

        Assert.Empty(smtp.Accepted);
        Assert.Equal(("failed", 1), await StateAsync(id));
        Assert.Equal([(1, "permanent_error", (int?)550)], await AttemptsAsync(id));
    }

    [Fact]
    public async Task Email_DiesBetweenSendingAndRecording_SameMessageIdTwice()
    {
        using var smtp = new LoopbackSmtpServer();
        var tenant = await TenantWithEmailAsync(smtp.Port);
        var id = (await EnqueueAsync(Email(tenant, "k-mail-crash", "pat@client.example")))!.Value;

        using var dying = new CancellationTokenSource();
        var first = new OutboxDispatcher(DataSource, [new DyingTransport(new SmtpTransport(TimeSpan.FromSeconds(10)), dying)],
            Clock, Options("dies"), s_secrets.GetValueOrDefault, new Random(1));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.DispatchOnceAsync(dying.Token));
        await AdvanceAsync(TimeSpan.FromHours(1));
        await DrainAsync(Dispatcher("survivor"));

        Assert.Equal(new Dictionary<string, int> { [SmtpTransport.MessageIdFor(id, "agent@acme.example")] = 2 }, smtp.AcceptedByMessageId());
        Assert.Equal(("sent", 2), await StateAsync(id));
    }

    [Theory]
    [InlineData("sms", "+15550100", "channel")]
    [InlineData("webhook", "", "destination")]
    [InlineData("webhook", "   ", "destination")]
    [InlineData("webhook", "ftp://hooks.example/x", "destination")]
    [InlineData("webhook", "hooks.example/x", "destination")]
    [InlineData("email", "not-an-address", "destination")]
    [InlineData("email", "Pat <pat@client.example>", "destination")]
    [InlineData("email", "a@b.example, c@d.example", "destination")]
    public async Task Enqueue_BadInput_RefusedNamingFieldNothingWritten(string channel, string destination, string field)
    {
        var tenant = await Db.CreateTenantAsync();

        var error = await Assert.ThrowsAsync<InvalidMessageException>(() =>
            EnqueueAsync(new NewMessage(tenant, "k-bad", channel, destination, "s", "b")));

        Assert.Equal(field, error.Field);
        Assert.StartsWith(field + ":", error.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task Insert_BypassingTheWriter_CheckConstraintsRefuseBadRows()
    {
        var tenant = await Db.CreateTenantAsync();

        async Task<string> RefusedAsync(string channel, string destination) =>
            (await Assert.ThrowsAsync<PostgresException>(() => Db.ExecuteAsync(
                "insert into public.message_outbox (tenant_id, idempotency_key, channel, destination) values ($1, $2, $3, $4)",
                tenant, Guid.NewGuid().ToString(), channel, destination))).SqlState;

        Assert.Equal(PostgresErrorCodes.CheckViolation, await RefusedAsync("sms", "x"));
        Assert.Equal(PostgresErrorCodes.CheckViolation, await RefusedAsync("webhook", "ftp://x"));
        Assert.Equal(PostgresErrorCodes.CheckViolation, await RefusedAsync("email", "nobody"));
        Assert.Equal(PostgresErrorCodes.CheckViolation, await RefusedAsync("email", ""));
    }

    private OutboxDispatcher Dispatcher(string name, int batchSize = 20) =>
        new(DataSource, OutboxDispatcher.DefaultTransports(Http, Options(name), Clock), Clock, Options(name) with { BatchSize = batchSize },
            s_secrets.GetValueOrDefault, new Random(42));

    private static OutboxDispatcherOptions Options(string name) => new()
    {
        WorkerId = name,
        BaseDelay = TimeSpan.FromMinutes(1),
        MaxDelay = TimeSpan.FromMinutes(10),
        VisibilityTimeout = TimeSpan.FromMinutes(2),
        SendTimeout = TimeSpan.FromSeconds(10),
    };

    // Dispatches until nothing is pending, moving both clocks past each backoff.
    private async Task DrainAsync(OutboxDispatcher dispatcher)
    {
        for (var pass = 0; pass < 20; pass++)
        {
            await dispatcher.DispatchOnceAsync(default);
            if ((long)(await Db.ScalarAsync("select count(*) from public.message_outbox where status in ('pending', 'sending')"))! == 0)
            {
                return;
            }

            await AdvanceAsync(TimeSpan.FromMinutes(11));
        }

        Assert.Fail("the outbox did not drain in 20 passes");
    }

    private async Task AdvanceAsync(TimeSpan by)
    {
        Clock.Advance(by);
        await Db.FreezeTimeAsync(Clock.GetUtcNow());
    }

    private static NewMessage Webhook(Guid tenant, string key, string url) => new(tenant, key, MessageChannel.Webhook, url, "Renewal", "hello");

    private static NewMessage Email(Guid tenant, string key, string to) => new(tenant, key, MessageChannel.Email, to, "Renewal", "hello");

    private Task<Guid?> EnqueueAsync(NewMessage message) => Db.EnqueueMessageAsync(message);

    private async Task<Guid> TenantWithWebhookAsync(string url)
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.ExecuteAsync("insert into public.message_channels (tenant_id, channel, webhook_url, secret_ref) values ($1, 'webhook', $2, $3)",
            tenant, url, SecretRef);
        return tenant;
    }

    private async Task<Guid> TenantWithEmailAsync(int port)
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', '127.0.0.1', $2, 'none', 'agent@acme.example')
            """, tenant, port);
        return tenant;
    }

    private async Task<(string Status, int Attempts)> StateAsync(Guid id)
    {
        await using var command = Db.DataSource.CreateCommand("select status, attempts from public.message_outbox where id = $1");
        command.Parameters.Add(new() { Value = id });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetString(0), reader.GetInt32(1));
    }

    private async Task<List<(int Attempt, string Outcome, int? ResponseCode)>> AttemptsAsync(Guid id)
    {
        await using var command = Db.DataSource.CreateCommand(
            "select attempt, outcome, response_code from public.message_outbox_attempts where message_id = $1 order by attempt, attempted_at");
        command.Parameters.Add(new() { Value = id });
        await using var reader = await command.ExecuteReaderAsync();
        var attempts = new List<(int, string, int?)>();
        while (await reader.ReadAsync())
        {
            attempts.Add((reader.GetInt32(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetInt32(2)));
        }

        return attempts;
    }

    /// <summary>Counts the sends in flight; each waits (up to a second) until <c>meet</c> of them are, then sends for real.</summary>
    private sealed class GatedTransport(IMessageTransport inner, int meet) : IMessageTransport
    {
        private readonly Lock _lock = new();
        private readonly TaskCompletionSource _met = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _inFlight;

        public int MostInFlight { get; private set; }

        public string Channel => inner.Channel;

        public async Task<DeliveryResult> SendAsync(OutboxMessage message, string? secret, CancellationToken cancellationToken)
        {
            lock (_lock)
            {
                MostInFlight = Math.Max(MostInFlight, ++_inFlight);
                if (_inFlight >= meet)
                {
                    _met.TrySetResult();
                }
            }

            try
            {
                await Task.WhenAny(_met.Task, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None));
                return await inner.SendAsync(message, secret, cancellationToken);
            }
            finally
            {
                lock (_lock)
                {
                    _inFlight--;
                }
            }
        }
    }

    /// <summary>Sends for real, then stops the dispatcher before it can record the result: a process killed between the two.</summary>
    private sealed class DyingTransport(IMessageTransport inner, CancellationTokenSource death) : IMessageTransport
    {
        public string Channel => inner.Channel;

        public async Task<DeliveryResult> SendAsync(OutboxMessage message, string? secret, CancellationToken cancellationToken)
        {
            await inner.SendAsync(message, secret, CancellationToken.None);
            await death.CancelAsync();
            throw new OperationCanceledException(death.Token);
        }
    }
}
