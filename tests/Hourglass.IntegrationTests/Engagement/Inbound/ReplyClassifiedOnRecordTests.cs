using System.Text.Json.Nodes;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Engagement.Outbox;

namespace Hourglass.IntegrationTests.Engagement.Inbound;

/// <summary>
/// A reply that arrives without a label is read by the recorder's classifier (rules alone here) before it is recorded:
/// its label, confidence, evidence, who decided and (out of office) return date are stored on the delivery event, and the
/// effect follows the label — an unsubscribe request in words opts the contact out, an absence holds the next touch.
/// </summary>
public sealed class ReplyClassifiedOnRecordTests() : FrozenClockTest(s_t0)
{
    // Monday 7 December 2026, 10:00 UTC.
    private static readonly DateTimeOffset s_t0 = new(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);
    private const string Address = "pat@client.example";

    private Guid _tenant;
    private Guid _contact;
    private Guid _message;

    protected override async Task SeedAsync()
    {
        await base.SeedAsync();
        _tenant = await Db.CreateTenantAsync();
        var owner = await Db.AddMemberAsync(_tenant);
        var account = (Guid)(await Db.ScalarAsync("insert into public.accounts (tenant_id, name, owner_user_id) values ($1, 'Client Co', $2) returning id",
            _tenant, owner))!;
        _contact = (Guid)(await Db.ScalarAsync("insert into public.contacts (tenant_id, account_id, name, email) values ($1, $2, 'Pat Client', $3) returning id",
            _tenant, account, Address))!;
        _message = (await Db.EnqueueMessageAsync(new NewMessage(_tenant, "k-1", MessageChannel.Email, Address, "Renewal", "hello",
            new JsonObject { ["target_type"] = "contact", ["target_id"] = _contact.ToString(), ["strategy_key"] = "checkin-email" })))!.Value;
    }

    private InboundRecorder Recorder => new(DataSource, new ReplyClassifier());

    [Fact]
    public async Task UnlabelledReplyAskingToStop_ClassifiedAndStored_ContactOptedOut()
    {
        var outcome = await Recorder.RecordAsync(_tenant, Reply("r-1", "Interested in general, but please remove me from this list.\n\n" +
            "On Mon, 7 Dec 2026 at 09:00, Agent <agent@acme.example> wrote:\n> Sounds good? Let's talk."), default);

        Assert.Equal("opted_out", outcome.Effect);
        Assert.Equal("unsubscribe_request|0.95|\"remove me\"|rules",
            await Db.ScalarAsync("select reply_label || '|' || reply_confidence || '|' || reply_evidence || '|' || reply_classified_by from public.message_delivery_events where tenant_id = $1",
                _tenant));
        Assert.Equal("reply:imap", await Db.ScalarAsync("select opted_out_source from public.contacts where id = $1", _contact));
    }

    [Fact]
    public async Task UnlabelledGermanAutoReply_ReturnDateReadAndStored_NextTouchWaits()
    {
        var outcome = await Recorder.RecordAsync(_tenant, Reply("r-2", "Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich 11.12. nicht im Büro " +
            "und ab dem 14.12. wieder erreichbar.", "Abwesenheitsnotiz: Renewal", new Dictionary<string, string> { ["Auto-Submitted"] = "auto-replied" }), default);

        Assert.Equal("waiting_until_return", outcome.Effect);
        Assert.Equal("out_of_office|2026-12-14|rules",
            await Db.ScalarAsync("select reply_label || '|' || return_on || '|' || reply_classified_by from public.message_delivery_events where tenant_id = $1", _tenant));
        Assert.Equal("2026-12-14 00:00", await Db.ScalarAsync("""
            select to_char(waiting_until at time zone 'UTC', 'YYYY-MM-DD HH24:MI') from public.engagement_clocks
            where tenant_id = $1 and entity_type = 'contact' and entity_id = $2
            """, _tenant, _contact));
    }

    private DeliveryEvent Reply(string id, string text, string subject = "Re: Renewal", IReadOnlyDictionary<string, string>? headers = null) =>
        new(InboundSourceKind.Imap, id, DeliveryEventType.Reply, s_t0, new MessageReference(_message), Address,
            Reply: new InboundReply(Address, subject, text, Headers: headers));
}
