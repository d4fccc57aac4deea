using System.Diagnostics;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// The outbox's crash claim with a real crash: a <c>hourglass worker</c> process whose dispatcher has sent a webhook
/// but not yet recorded it is killed with SIGKILL. The message stays 'sending'; once its claim lapses another worker
/// process sends it again with the same webhook-id, records it 'sent' once, and logs the lost attempt as
/// 'claim_expired' — and a receiver that dedupes on webhook-id acts on it once.
/// </summary>
public sealed class DispatcherCrashTests : DatabaseTest
{
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string SecretRef = "HG_CRASH_TEST_WEBHOOK_SECRET";
    private static readonly TimeSpan s_waitLimit = TimeSpan.FromSeconds(90);

    protected override async Task SeedAsync()
    {
        // A weekday morning: inside the default policy's business hours, which the dispatcher checks before each send.
        await Db.FreezeTimeAsync(new DateTimeOffset(2026, 11, 3, 10, 0, 0, TimeSpan.Zero));
    }

    [Fact]
    public async Task WorkerKilledAfterSendBeforeRecord_RedeliveredWithSameIdAfterClaimLapses_SentOnce()
    {
        using var receiver = new WebhookReceiver(Secret);
        var tenant = await Db.CreateTenantAsync("outbox crash tenant");
        await Db.ExecuteAsync("insert into public.message_channels (tenant_id, channel, webhook_url, secret_ref) values ($1, 'webhook', $2, $3)",
            tenant, receiver.Url, SecretRef);
        var id = await EnqueueAsync(new NewMessage(tenant, "k-process-crash", MessageChannel.Webhook, receiver.Url, "Renewal", "hello"));

        // Worker A sends, then stalls at the failpoint between the send and the record, and is killed there.
        var doomed = StartWorker(failpoint: "outbox.after_send=60000");
        string doomedId;
        try
        {
            await WaitUntilAsync(() => Task.FromResult(!receiver.Deliveries.IsEmpty), "the receiver got the first delivery", doomed);
            // Parked at the failpoint, not merely slow: without it the 200 would be recorded within milliseconds.
            for (var i = 0; i < 15; i++)
            {
                Assert.Equal(("sending", 1), await StateAsync(id));
                Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox_attempts where message_id = $1", id));
                await Task.Delay(200);
            }

            Assert.False(doomed.HasExited, "worker A exited by itself");
            doomedId = (string)(await Db.ScalarAsync("select claimed_by from public.message_outbox where id = $1", id))!;
            doomed.Kill(); // SIGKILL: no handler runs, nothing is flushed, the process is gone.
            using var exited = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await doomed.WaitForExitAsync(exited.Token);
            Assert.Equal(128 + 9, doomed.ExitCode);
        }
        finally
        {
            Stop(doomed);
        }

        // The receiver has the message; the database does not know: still 'sending', nothing recorded 'sent'.
        Assert.Single(receiver.Deliveries);
        Assert.Equal(("sending", 1), await StateAsync(id));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox_attempts where message_id = $1", id));
        Assert.Null(await Db.ScalarAsync("select sent_at from public.message_outbox where id = $1", id));

        // The claim lapses (the database clock moves just past claimed_until) and worker B takes the message over.
        var claimedUntil = (DateTime)(await Db.ScalarAsync("select claimed_until from public.message_outbox where id = $1", id))!;
        await Db.FreezeTimeAsync(new DateTimeOffset(claimedUntil, TimeSpan.Zero).AddSeconds(1));
        var survivor = StartWorker(failpoint: null);
        try
        {
            await WaitUntilAsync(async () => (await StateAsync(id)).Status == "sent", "worker B recorded the message 'sent'", survivor);
        }
        finally
        {
            Stop(survivor);
        }

        // Delivered twice, with the same id and the same signed body: a receiver deduping on webhook-id acts once.
        Assert.Equal(2, receiver.Deliveries.Count);
        Assert.All(receiver.Deliveries, d => Assert.Equal(id.ToString(), d.Id));
        Assert.All(receiver.Deliveries, d => Assert.True(d.SignatureValid, $"signature {d.Signature} does not verify"));
        Assert.Single(receiver.Deliveries.Select(d => d.Body).Distinct());
        Assert.Equal(new Dictionary<string, int> { [id.ToString()] = 2 }, receiver.AcceptedById());
        Assert.Equal(1, receiver.ActedOn);

        // Sent exactly once in the database, with the crashed attempt on record.
        Assert.Equal(("sent", 2), await StateAsync(id));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.message_outbox_attempts where message_id = $1 and outcome = 'sent'", id));
        var attempts = await AttemptsAsync(id);
        Assert.Equal([(1, "claim_expired", (int?)null), (2, "sent", (int?)200)], attempts.Select(a => (a.Attempt, a.Outcome, a.ResponseCode)));
        Assert.Equal(doomedId, attempts[0].WorkerId);
        Assert.NotEqual(doomedId, attempts[1].WorkerId);
    }

    private Process StartWorker(string? failpoint)
    {
        var environment = new Dictionary<string, string?> { [SecretRef] = Secret };
        if (failpoint is not null)
        {
            environment["HOURGLASS_FAILPOINTS"] = failpoint;
        }

        return HourglassProcess.Start(environment, "worker", "--poll-seconds", "1", "--database", ConnectionString);
    }

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

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, Process process)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the worker exited (code {process.ExitCode}) before {what}");
            }

            if (deadline.Elapsed > s_waitLimit)
            {
                throw new TimeoutException($"not within {s_waitLimit.TotalSeconds} s: {what}");
            }

            await Task.Delay(100);
        }
    }

    private async Task<Guid> EnqueueAsync(NewMessage message) => (await Db.EnqueueMessageAsync(message))!.Value;

    private async Task<(string Status, int Attempts)> StateAsync(Guid id)
    {
        await using var command = Db.DataSource.CreateCommand("select status, attempts from public.message_outbox where id = $1");
        command.Parameters.Add(new() { Value = id });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetString(0), reader.GetInt32(1));
    }

    private async Task<List<(int Attempt, string Outcome, int? ResponseCode, string? WorkerId)>> AttemptsAsync(Guid id)
    {
        await using var command = Db.DataSource.CreateCommand(
            "select attempt, outcome, response_code, worker_id from public.message_outbox_attempts where message_id = $1 order by attempt, attempted_at");
        command.Parameters.Add(new() { Value = id });
        await using var reader = await command.ExecuteReaderAsync();
        var attempts = new List<(int, string, int?, string?)>();
        while (await reader.ReadAsync())
        {
            attempts.Add((reader.GetInt32(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetInt32(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
        }

        return attempts;
    }
}
