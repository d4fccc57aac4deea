using System.Diagnostics;
using System.Text.Json.Nodes;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// The kill switches and the send-time checks with real processes: a running <c>hourglass worker</c>, the operator's
/// <c>hourglass pause|resume|channels disable|status</c>, a loopback SMTP relay and a loopback webhook receiver. A
/// paused tenant's queued messages reach neither while the dispatcher keeps passing, keep their attempts, and go out
/// after the resume; the global pause holds every tenant; what became forbidden while a message waited (an opt-out, a
/// disabled channel) suppresses it with the reason, shown by <c>hourglass status</c>.
/// </summary>
public sealed class KillSwitchWorkerTests : DatabaseTest
{
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string SecretRef = "HG_KILLSWITCH_WEBHOOK_SECRET";
    private static readonly TimeSpan s_waitLimit = TimeSpan.FromSeconds(120);

    protected override async Task SeedAsync()
    {
        // A Tuesday, 10:00 UTC by the database clock: inside the default business hours (tenants in UTC), and no
        // tenant's cycle comes due while it stands still (they are first due at 11:00), so only the dispatcher acts.
        await Db.FreezeTimeAsync(new DateTimeOffset(2026, 11, 3, 10, 0, 0, TimeSpan.Zero));
    }

    [Fact]
    public async Task Worker_TenantPaused_QueuedMessagesReachNeitherSinkThroughPasses_AttemptsUntouched_ResumedDelivered()
    {
        using var held = new WebhookReceiver(Secret);
        using var other = new WebhookReceiver(Secret);
        using var smtp = new LoopbackSmtpServer();
        var tenant = await TenantAsync("Paused Co", held.Url, smtp.Port);
        var control = await TenantAsync("Control Co", other.Url, smtpPort: null);
        var contact = await ContactAsync(tenant, "pat@client.example");

        var worker = StartWorker();
        try
        {
            // The worker is up and dispatching.
            await DeliveredAsync(other, await EnqueueAsync(Webhook(control, "control-0", other.Url)), worker);

            var pause = await RunAsync("pause", "--tenant", "Paused Co", "--reason", "customer asked us to stop");
            Assert.True(pause.ExitCode == 0, pause.StandardError);
            var hook = await EnqueueAsync(Webhook(tenant, "held-hook", held.Url));
            var mail = await EnqueueAsync(Email(tenant, "held-mail", "pat@client.example", contact));
            var before = await RowsAsync(tenant);

            // Three more passes, each proven by a message of the other tenant queued after the held ones (so earlier in
            // the dispatcher's order) going out.
            for (var pass = 1; pass <= 3; pass++)
            {
                await DeliveredAsync(other, await EnqueueAsync(Webhook(control, $"control-{pass}", other.Url)), worker);
            }

            Assert.Empty(held.Deliveries);
            Assert.Empty(smtp.Accepted);
            Assert.Equal(before, await RowsAsync(tenant));
            Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox_attempts where tenant_id = $1", tenant));
            var status = await RunAsync("status", "--tenant", "Paused Co");
            Assert.Contains("2 queued message(s) held by the kill switch: neither sent nor failed", status.StandardOutput, StringComparison.Ordinal);
            var summary = await RunAsync("status");
            Assert.Matches(@"\|\s*Paused Co\s*\|\s*paused: customer asked us to stop\s*\|.*\|\s*2\s*\|\s*$", summary.StandardOutput.Split('\n').Single(l => l.Contains("Paused Co", StringComparison.Ordinal)));

            var resume = await RunAsync("resume", "--tenant", "Paused Co");
            Assert.True(resume.ExitCode == 0, resume.StandardError);
            await WaitUntilAsync(async () => await StatusAsync(hook) == "sent" && await StatusAsync(mail) == "sent", "the held messages were sent after the resume", worker);

            Assert.Equal(new Dictionary<string, int> { [hook.ToString()] = 1 }, held.AcceptedById());
            Assert.Equal(["pat@client.example"], smtp.Accepted.Select(m => m.To.Mailboxes.Single().Address));
            Assert.Equal(1, await Db.ScalarAsync("select attempts from public.message_outbox where id = $1", hook));
        }
        finally
        {
            Stop(worker);
        }
    }

    [Fact]
    public async Task Worker_GlobalPause_HoldsEveryTenantThroughPasses_ResumedDelivered()
    {
        using var receiver = new WebhookReceiver(Secret);
        using var smtp = new LoopbackSmtpServer();
        var first = await TenantAsync("First Co", receiver.Url, smtp.Port);
        var second = await TenantAsync("Second Co", receiver.Url, smtp.Port);
        var contact = await ContactAsync(second, "kim@client.example");

        // The cycle loop looks once an hour: the only transactions the worker commits while everything is paused are
        // the dispatcher's passes (its claim is a transaction, committed even when it finds nothing).
        var worker = StartWorker(pollSeconds: 3600);
        try
        {
            await DeliveredAsync(receiver, await EnqueueAsync(Webhook(first, "warm-up", receiver.Url)), worker);

            var pause = await RunAsync("pause", "--reason", "incident 42");
            Assert.True(pause.ExitCode == 0, pause.StandardError);
            var hook = await EnqueueAsync(Webhook(first, "held-hook", receiver.Url));
            var mail = await EnqueueAsync(Email(second, "held-mail", "kim@client.example", contact));
            var before = (await RowsAsync(first), await RowsAsync(second));

            await DispatcherPassesAsync(3, worker);

            Assert.Single(receiver.Deliveries);
            Assert.Empty(smtp.Accepted);
            Assert.Equal(before, (await RowsAsync(first), await RowsAsync(second)));

            var resume = await RunAsync("resume");
            Assert.True(resume.ExitCode == 0, resume.StandardError);
            await WaitUntilAsync(async () => await StatusAsync(hook) == "sent" && await StatusAsync(mail) == "sent", "every tenant's messages were sent after the resume", worker);

            Assert.Equal(2, receiver.Deliveries.Count);
            Assert.Single(smtp.Accepted);
        }
        finally
        {
            Stop(worker);
        }
    }

    [Fact]
    public async Task Worker_ContactOptedOutAndChannelDisabledWhileQueued_SuppressedWithReasonNeverDelivered_StatusShowsWhy()
    {
        using var receiver = new WebhookReceiver(Secret);
        using var smtp = new LoopbackSmtpServer();
        var tenant = await TenantAsync("Careful Co", receiver.Url, smtp.Port);
        var leaving = await ContactAsync(tenant, "pat@client.example");
        var staying = await ContactAsync(tenant, "kim@client.example");

        var worker = StartWorker();
        try
        {
            // Queued while the tenant is paused, so they wait; meanwhile the contact opts out and the webhook channel is switched off.
            var pause = await RunAsync("pause", "--tenant", "Careful Co", "--reason", "reviewing the campaign");
            Assert.True(pause.ExitCode == 0, pause.StandardError);
            var optedOut = await EnqueueAsync(Email(tenant, "to-leaving", "pat@client.example", leaving));
            var fine = await EnqueueAsync(Email(tenant, "to-staying", "kim@client.example", staying));
            var hook = await EnqueueAsync(Webhook(tenant, "hook", receiver.Url));
            await Db.ExecuteAsync("update public.contacts set opted_out_at = '2026-11-03T09:30:00Z' where id = $1", leaving);
            var disable = await RunAsync("channels", "disable", "--tenant", "Careful Co", "--channel", "webhook");
            Assert.True(disable.ExitCode == 0, disable.StandardError);

            var resume = await RunAsync("resume", "--tenant", "Careful Co");
            Assert.True(resume.ExitCode == 0, resume.StandardError);
            await WaitUntilAsync(async () => (long)(await Db.ScalarAsync(
                "select count(*) from public.message_outbox where tenant_id = $1 and status in ('pending', 'sending')", tenant))! == 0,
                "every message of the tenant was settled", worker);

            Assert.Equal(["kim@client.example"], smtp.Accepted.Select(m => m.To.Mailboxes.Single().Address));
            Assert.Empty(receiver.Deliveries);
            Assert.Equal("sent", await StatusAsync(fine));
            Assert.Equal("suppressed|contact_opted_out|the contact opted out on 2026-11-03|0", await Db.ScalarAsync(
                "select concat_ws('|', status, suppressed_code, suppressed_reason, attempts) from public.message_outbox where id = $1", optedOut));
            Assert.Equal("suppressed|channel_disabled|the tenant's webhook channel is disabled|0", await Db.ScalarAsync(
                "select concat_ws('|', status, suppressed_code, suppressed_reason, attempts) from public.message_outbox where id = $1", hook));
            // Never a touch: the opted-out contact's clock did not move, and no touch event names it.
            Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.warehouse_events where entity_id = $1 and event_type = 'touch'", leaving));

            var status = await RunAsync("status", "--tenant", "Careful Co");
            Assert.True(status.ExitCode == 0, status.StandardError);
            Assert.Matches(@"\|\s*sent\s*\|\s*1\s*\|", status.StandardOutput);
            Assert.Matches(@"\|\s*suppressed\s*\|\s*2\s*\|", status.StandardOutput);
            Assert.Contains("Suppressed at the moment of sending, by reason", status.StandardOutput, StringComparison.Ordinal);
            Assert.Matches(@"\|\s*channel_disabled\s*\|\s*1\s*\|[^|]+\|\s*the tenant's webhook channel is disabled\s*\|", status.StandardOutput);
            Assert.Matches(@"\|\s*contact_opted_out\s*\|\s*1\s*\|[^|]+\|\s*the contact opted out on 2026-11-03\s*\|", status.StandardOutput);
        }
        finally
        {
            Stop(worker);
        }
    }

    private Process StartWorker(int pollSeconds = 1) =>
        HourglassProcess.Start(new Dictionary<string, string?> { [SecretRef] = Secret },
            "worker", "--poll-seconds", pollSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--database", ConnectionString);

    private Task<HourglassProcess.Result> RunAsync(params string[] arguments) =>
        HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);

    private static void Stop(Process process)
    {
        using (process)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(TimeSpan.FromSeconds(30));
            }
        }
    }

    private static Task DeliveredAsync(WebhookReceiver receiver, Guid id, Process worker) =>
        WaitUntilAsync(() => Task.FromResult(receiver.Deliveries.Any(d => d.Id == id.ToString())), $"message {id} was delivered", worker);

    // Waits until the worker's dispatcher has made `count` passes since now, as the database sees them: each pass's
    // claim is a transaction the worker commits (pg_stat_activity shows 'COMMIT' with its start time until that
    // connection's next statement, seconds later). This test's own connections commit nothing meanwhile.
    private async Task DispatcherPassesAsync(int count, Process worker)
    {
        var since = (DateTime)(await Db.ScalarAsync("select clock_timestamp()"))!;
        var seen = new HashSet<(int, DateTime)>();
        await WaitUntilAsync(async () =>
        {
            await using var command = Db.DataSource.CreateCommand("""
                select pid, query_start from pg_catalog.pg_stat_activity
                where datname = current_database() and pid <> pg_backend_pid() and query = 'COMMIT' and query_start > $1
                """);
            command.Parameters.Add(new() { Value = since });
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                seen.Add((reader.GetInt32(0), reader.GetDateTime(1)));
            }

            return seen.Count >= count;
        }, $"{count} dispatcher passes", worker);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, Process worker)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (worker.HasExited)
            {
                throw new InvalidOperationException($"the worker exited (code {worker.ExitCode}) before {what}");
            }

            if (deadline.Elapsed > s_waitLimit)
            {
                throw new TimeoutException($"not within {s_waitLimit.TotalSeconds} s: {what}");
            }

            await Task.Delay(100);
        }
    }

    private async Task<Guid> TenantAsync(string name, string webhookUrl, int? smtpPort)
    {
        var tenant = await Db.CreateTenantAsync(name);
        await Db.ExecuteAsync("insert into public.message_channels (tenant_id, channel, webhook_url, secret_ref) values ($1, 'webhook', $2, $3)",
            tenant, webhookUrl, SecretRef);
        if (smtpPort is { } port)
        {
            await Db.ExecuteAsync("""
                insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
                values ($1, 'email', '127.0.0.1', $2, 'none', 'agent@vendor.example')
                """, tenant, port);
        }

        return tenant;
    }

    private async Task<Guid> ContactAsync(Guid tenant, string email) =>
        (Guid)(await Db.ScalarAsync("insert into public.contacts (tenant_id, name, email) values ($1, $2, $2) returning id", tenant, email))!;

    private static NewMessage Webhook(Guid tenant, string key, string url) => new(tenant, key, MessageChannel.Webhook, url, "Renewal", "hello");

    private static NewMessage Email(Guid tenant, string key, string to, Guid contact) =>
        new(tenant, key, MessageChannel.Email, to, "Renewal", "hello", new JsonObject { ["target_type"] = "contact", ["target_id"] = contact.ToString() });

    private async Task<Guid> EnqueueAsync(NewMessage message) => (await Db.EnqueueMessageAsync(message))!.Value;

    private async Task<string> StatusAsync(Guid id) => (string)(await Db.ScalarAsync("select status from public.message_outbox where id = $1", id))!;

    // Everything about a tenant's messages that a pause must leave as it was.
    private async Task<string> RowsAsync(Guid tenant) =>
        (string)(await Db.ScalarAsync("""
            select coalesce(string_agg(concat_ws('|', id, status, attempts, next_attempt_at, claimed_by, claimed_until, last_error, updated_at, held_reason), E'\n' order by id), '')
            from public.message_outbox where tenant_id = $1
            """, tenant))!;
}
