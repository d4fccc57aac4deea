using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// send_message in a real cycle: the message is enqueued in the action's fenced transaction (with the run's id), a
/// replayed hour does not enqueue it again, and contacts nobody can reach, or who must not be contacted, are
/// reported in the action's result instead of failing it.
/// </summary>
public sealed class MessageHandlerCycleTests : DatabaseTest
{
    private static readonly DateTimeOffset s_t0 = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider _clock = new(s_t0);
    private readonly SendToAll _part = new();

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_t0);
    }

    [Fact]
    public async Task Cycle_SendMessage_EnqueuedWithRunReachableOnlyUnreachableAndOptedOutReported()
    {
        using var smtp = new LoopbackSmtpServer();
        var tenant = await Db.CreateTenantAsync();
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', '127.0.0.1', $2, 'none', 'agent@acme.example')
            """, tenant, smtp.Port);
        var account = await Db.CreateAccountAsync(tenant);
        var reachable = await ContactAsync(tenant, account, "Pat", "pat@client.example");
        var noEmail = await ContactAsync(tenant, account, "Sam", null);
        var optedOut = await ContactAsync(tenant, account, "Lee", "lee@client.example", optedOut: true);
        _part.Targets.AddRange([reachable, noEmail, optedOut]);

        var run = await Worker().RunManualAsync(tenant, false, null, default);

        Assert.Equal(("completed", 3, 0), (run.Status, run.ActionsTaken, run.ActionsFailed));
        var message = await Db.ScalarAsync("select destination || ' ' || run_id from public.message_outbox where tenant_id = $1", tenant);
        Assert.Equal($"pat@client.example {run.RunId}", message);
        var unreachable = await ResultAsync(tenant, noEmail);
        Assert.True((bool)unreachable["unreachable"]!);
        Assert.Contains("no email address", (string)unreachable["reason"]!, StringComparison.Ordinal);
        Assert.Contains("no enabled webhook channel", (string)unreachable["reason"]!, StringComparison.Ordinal);
        // Unreachable is not a failed send: a person gets a touch card for the contact instead.
        Assert.Equal((string?)unreachable["card_id"], (await Db.ScalarAsync(
            "select id::text from public.cards where tenant_id = $1 and kind = 'touch_task' and status = 'open' and entity_id = $2", tenant, noEmail))?.ToString());
        Assert.NotNull((string?)unreachable["card_id"]);
        Assert.True((bool)(await ResultAsync(tenant, optedOut))["suppressed"]!);

        // The same hour again: the ledger has the actions, and the outbox the key: nothing doubles.
        await Worker().RunManualAsync(tenant, false, null, default);
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.message_outbox where tenant_id = $1", tenant));

        await new OutboxDispatcher(DataSource, [new SmtpTransport(TimeSpan.FromSeconds(10))], _clock, random: new Random(1))
            .DispatchOnceAsync(default);
        Assert.Equal("pat@client.example", Assert.Single(smtp.Accepted).To.Mailboxes.Single().Address);
    }

    [Fact]
    public async Task Cycle_SendMessageWithUnknownChannel_ActionFailsNamingFieldNothingEnqueued()
    {
        var tenant = await Db.CreateTenantAsync();
        var contact = await ContactAsync(tenant, await Db.CreateAccountAsync(tenant), "Pat", "pat@client.example");
        _part.Targets.Add(contact);
        _part.Channel = "carrier-pigeon";

        var run = await Worker().RunManualAsync(tenant, false, null, default);

        Assert.Equal(1, run.ActionsFailed);
        var error = (string)(await Db.ScalarAsync("select error from public.agent_actions where tenant_id = $1", tenant))!;
        Assert.Contains("channel: must be 'webhook' or 'email'", error, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_outbox where tenant_id = $1", tenant));
    }

    private CycleWorker Worker() =>
        new(DataSource, _clock, new CycleEngine(DataSource, [_part], [new MessageHandler()], _clock), new CycleWorkerOptions { WorkerId = "outbox-cycle" });

    private async Task<Guid> ContactAsync(Guid tenant, Guid account, string name, string? email, bool optedOut = false) =>
        (Guid)(await Db.ScalarAsync(
            "insert into public.contacts (tenant_id, account_id, name, email, opted_out_at) values ($1, $2, $3, $4, case when $5 then now() end) returning id",
            tenant, account, name, (object?)email ?? DBNull.Value, optedOut))!;

    private async Task<JsonObject> ResultAsync(Guid tenant, Guid target) =>
        JsonNode.Parse((string)(await Db.ScalarAsync(
            "select result::text from public.agent_actions where tenant_id = $1 and target_id = $2", tenant, target))!)!.AsObject();

    /// <summary>Proposes send_message to each target contact.</summary>
    private sealed class SendToAll : ICyclePart
    {
        public List<Guid> Targets { get; } = [];

        public string? Channel { get; set; }

        public string Name => "test-messages";

        public Task<IReadOnlyList<ProposedAction>> ProposeAsync(CycleContext context, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<ProposedAction>>(Targets.Select(t => new ProposedAction(
                MessageHandler.ActionKind, "contact", t, 10, "test", new JsonObject
                {
                    ["subject"] = "Checking in",
                    ["body"] = "hello",
                    ["channel"] = Channel,
                })).ToList());
    }
}
