using System.Text.Json.Nodes;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Policies;
using Microsoft.Extensions.Time.Testing;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// A message the agent sent is a touch of its target, recorded when it goes out; a message still waiting to go out
/// counts as an open touch, so the queue and the one-open-touch rule do not ask for the contact again meanwhile.
/// </summary>
public sealed class MessageTouchTests : DatabaseTest
{
    private static readonly DateTimeOffset s_t0 = new(2027, 3, 1, 9, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider _clock = new(s_t0);

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_t0.AddDays(-30));
    }

    [Fact]
    public async Task Dispatch_MessageToContactSent_TouchRecordedAtSendTimeForContactAndAccount()
    {
        var (tenant, account, contact) = await OverdueContactAsync();
        var message = await EnqueueAsync(tenant, contact, "k-sent");

        await new OutboxDispatcher(DataSource, [new Answering(DeliveryResult.Success(250, "q1"))], _clock, Options()).DispatchOnceAsync(default);

        Assert.Equal("sent", await Db.ScalarAsync("select status from public.message_outbox where id = $1", message));
        Assert.Equal(s_t0.UtcDateTime, await Db.ScalarAsync("select last_touch_at from public.engagement_clocks where entity_id = $1", contact));
        Assert.Equal("email", await Db.ScalarAsync("select last_touch_type from public.engagement_clocks where entity_id = $1", contact));
        Assert.Equal("agent", await Db.ScalarAsync("select last_touch_by from public.engagement_clocks where entity_id = $1", contact));
        Assert.Equal("compliant", await Db.ScalarAsync("select compliance_status from public.engagement_clocks where entity_id = $1", contact));
        Assert.Equal(s_t0.UtcDateTime, await Db.ScalarAsync("select last_touch_at from public.engagement_clocks where entity_id = $1", account));
        Assert.Equal("agent", await Db.ScalarAsync(
            "select source from public.warehouse_events where tenant_id = $1 and event_type = 'touch' and entity_id = $2", tenant, contact));
    }

    [Fact]
    public async Task Dispatch_MessageRefusedPermanently_NoTouchRecorded()
    {
        var (tenant, _, contact) = await OverdueContactAsync();
        var before = await Db.ScalarAsync("select last_touch_at from public.engagement_clocks where entity_id = $1", contact);
        var message = await EnqueueAsync(tenant, contact, "k-refused");

        await new OutboxDispatcher(DataSource, [new Answering(DeliveryResult.PermanentFailure("550 no such user", 550))], _clock, Options())
            .DispatchOnceAsync(default);

        Assert.Equal("failed", await Db.ScalarAsync("select status from public.message_outbox where id = $1", message));
        Assert.Equal(before, await Db.ScalarAsync("select last_touch_at from public.engagement_clocks where entity_id = $1", contact));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'touch'", tenant));
    }

    [Fact]
    public async Task Queue_MessageWaitingToGoOut_ContactSkippedAsOpenTouchUntilSent()
    {
        var (tenant, _, contact) = await OverdueContactAsync();
        Assert.Equal(1L, await CandidatesAsync(tenant, contact));

        await EnqueueAsync(tenant, contact, "k-waiting");

        Assert.Equal(0L, await CandidatesAsync(tenant, contact));
        var facts = await DocumentPolicyEnforcer.LoadFactsAsync(DataSource, tenant, TimeZoneInfo.Utc, [contact], default);
        Assert.True(facts[contact].HasOpenTouch, "a message waiting to go out must count as an open touch for the one-open-touch rule");

        // Failed for good: the contact is due again, and the queue offers it again.
        await Db.ExecuteAsync("update public.message_outbox set status = 'failed', last_error = 'gave up' where tenant_id = $1", tenant);
        Assert.Equal(1L, await CandidatesAsync(tenant, contact));
    }

    private static OutboxDispatcherOptions Options() => new() { WorkerId = "touch-test", BatchSize = 10 };

    private async Task<long> CandidatesAsync(Guid tenant, Guid contact) =>
        (long)(await Db.ScalarAsync("select count(*) from hourglass.touch_candidates($1, 50, true) where entity_id = $2", tenant, contact))!;

    // A contact created 30 days ago and never touched: overdue (21-day cadence) when the clock moves to now.
    private async Task<(Guid Tenant, Guid Account, Guid Contact)> OverdueContactAsync()
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', '127.0.0.1', 2525, 'none', 'agent@acme.example')
            """, tenant);
        var account = await Db.CreateAccountAsync(tenant);
        var contact = await Db.CreateContactAsync(tenant, account);
        await Db.FreezeTimeAsync(s_t0);
        await Db.ExecuteAsync("select public.refresh_engagement_compliance($1)", tenant);
        Assert.Equal("overdue", await Db.ScalarAsync("select compliance_status from public.engagement_clocks where entity_id = $1", contact));
        return (tenant, account, contact);
    }

    private async Task<Guid> EnqueueAsync(Guid tenant, Guid contact, string key)
    {
        await using var connection = await Db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var id = await OutboxWriter.EnqueueAsync(connection, transaction, new NewMessage(tenant, key, MessageChannel.Email, "pat@acme.example", "Hi", "hello",
            new JsonObject { ["target_type"] = "contact", ["target_id"] = contact.ToString() }), default);
        await transaction.CommitAsync();
        return id!.Value;
    }

    private sealed class Answering(DeliveryResult result) : IMessageTransport
    {
        public string Channel => MessageChannel.Email;

        public Task<DeliveryResult> SendAsync(OutboxMessage message, string? secret, CancellationToken cancellationToken) => Task.FromResult(result);
    }
}
