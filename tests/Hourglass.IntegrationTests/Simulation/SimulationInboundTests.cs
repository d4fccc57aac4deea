using Hourglass.Engagement;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Simulation;

namespace Hourglass.IntegrationTests.Simulation;

/// <summary>
/// The world answers through the inbound recorder, and the goals that measure what follows hold: a world with many dead
/// addresses, complaints, unsubscribes and out-of-office spells sends nothing to an address after its hard bounce or to a
/// contact after their opt-out, and every reply has moved its contact's clock by the end of the hour it arrived.
/// </summary>
public sealed class SimulationInboundTests : DatabaseTest
{
    // One tenant, a week, answers far more often than the default world's, so each kind happens.
    private static readonly SimulationOptions s_world = SimulationTests.SmallWorld with
    {
        Tenants = 1, ContactsPerTenant = 240, Days = 7, EmailDailyCap = 80, ApprovalEveryNthTenant = 0,
        DeadAddressShare = 0.1, SoftBounceRate = 0.1, ComplaintRate = 0.1, UnsubscribeRate = 0.1, OutOfOfficeShare = 0.5,
    };

    [Fact]
    public async Task Run_WorldAnswersOften_NoSendAfterABounceOrOptOut_RepliesMoveTheirClocks()
    {
        var report = await new Simulator(s_world, DataSource).RunAsync();

        // Every kind of answer happened and went through the recorder.
        foreach (var kind in new[] { "bounce_hard", "bounce_soft", "complaint", "unsubscribe", "reply", "reply (out of office)" })
        {
            Assert.True(report.Inbound.Answers.GetValueOrDefault(kind) > 0, $"no {kind} in {string.Join(", ", report.Inbound.Answers)}");
        }

        // Every message the transport was handed is one the outbox records as sent (a bounced one too: it left).
        var sent = (long)(await Db.ScalarAsync("select count(*) from public.message_outbox where status = 'sent'"))!;
        var statuses = await Db.ScalarAsync("select string_agg(status || ' ' || n, ', ') from (select status, count(*) as n from public.message_outbox group by status) x");
        Assert.True(sent == report.Days.Sum(d => (long)d.Messages), $"{sent} sent, {report.Days.Sum(d => (long)d.Messages)} handed to the transport ({statuses})");

        var recorded = (long)(await Db.ScalarAsync("select count(*) from public.message_delivery_events where source = 'simulator' and effect <> 'skipped'"))!;
        Assert.Equal(report.Inbound.Answers.Values.Sum(), recorded);

        // A dead address got exactly one message, whatever else was due for its contact afterwards.
        var world = SimWorld.Generate(s_world);
        var dead = world.Tenants[0].Contacts.Where(c => c.DeadAddress).Select(c => c.Email).ToArray();
        var perDeadAddress = await Db.ScalarAsync("""
            select coalesce(max(n), 0) from (select count(*) as n from public.message_outbox where status = 'sent' and destination = any($1) group by destination) x
            """, new object?[] { dead });
        Assert.Equal(1L, perDeadAddress);
        Assert.Equal(0, report.Inbound.SentAfterSuppression);
        Assert.Equal(0, report.Inbound.SentAfterWorldAnswer);
        Assert.True(report.Goals.Single(g => g.Key == "no_sends_after_opt_out").Met);

        // Every reply moved its contact's clock within the hour it arrived.
        Assert.True(report.Inbound.RepliesChecked > 0, "replies were expected");
        Assert.Equal(report.Inbound.RepliesChecked, report.Inbound.RepliesMovedClock);
        Assert.True(report.Goals.Single(g => g.Key == "replies_move_clock").Met);

        // The measurement is not vacuous: a message sent after its address's suppression is counted.
        await Db.ExecuteAsync("""
            insert into public.message_suppressions (tenant_id, channel, address, reason, suppressed_at)
            select m.tenant_id, 'email', pg_catalog.lower(m.destination), 'complaint', m.sent_at - interval '1 minute'
            from public.message_outbox m
            where m.status = 'sent' and not exists (select 1 from public.message_suppressions s where s.address = pg_catalog.lower(m.destination))
            order by m.sent_at desc limit 1
            """);
        Assert.Equal(1L, await EngagementStore.SentAfterSuppressionAsync(DataSource, CancellationToken.None));
    }
}
