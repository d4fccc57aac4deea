using System.Text;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Inbound.Providers;

namespace Hourglass.Tests.Engagement.Inbound;

public sealed class InboundParsersTests
{
    private static readonly Guid s_outbox = Guid.Parse("0b5a7c3e-4d1f-4a8e-9c2b-6f0e1d2c3b4a");

    // ---- Hourglass's own format -------------------------------------------------------------------------------------

    [Fact]
    public void Hourglass_DocumentedExample_ParsesEveryField()
    {
        var items = HourglassEventFormat.Parse(Bytes($$$"""
            {"events": [
              {"id": "evt_1", "type": "bounce_hard", "occurred_at": "2026-12-07T10:15:00Z",
               "message": {"outbox_id": "{{{s_outbox}}}"}, "recipient": "pat@client.example", "reason": "550 5.1.1 user unknown"},
              {"id": "evt_2", "type": "reply", "occurred_at": "2026-12-07T11:00:00+01:00",
               "message": {"message_id_header": "<0b5a7c3e4d1f4a8e9c2b6f0e1d2c3b4a.outbox@acme.example>", "provider_message_id": "re_123"},
               "recipient": "kim@client.example",
               "reply": {"from": "Kim <kim@client.example>", "subject": "Re: Renewal", "text": "Yes, call me Thursday."}}
            ]}
            """));

        Assert.Equal(2, items.Count);
        var bounce = items[0].Event!;
        Assert.Equal(new DeliveryEvent(InboundSourceKind.Hourglass, "evt_1", DeliveryEventType.HardBounce, new DateTimeOffset(2026, 12, 7, 10, 15, 0, TimeSpan.Zero),
            bounce.Message, "pat@client.example", "550 5.1.1 user unknown"), bounce);
        Assert.Equal(s_outbox, bounce.Message.OutboxId);
        var reply = items[1].Event!;
        Assert.Equal((DeliveryEventType.Reply, new DateTimeOffset(2026, 12, 7, 10, 0, 0, TimeSpan.Zero)), (reply.Type, reply.OccurredAt));
        Assert.Equal("re_123", reply.Message.ProviderMessageId);
        Assert.Equal(["<0b5a7c3e4d1f4a8e9c2b6f0e1d2c3b4a.outbox@acme.example>"], reply.Message.HeaderMessageIds!);
        Assert.Equal(new InboundReply("Kim <kim@client.example>", "Re: Renewal", "Yes, call me Thursday."), reply.Reply);
        Assert.Equal([0, 1], items.Select(i => i.Index));
    }

    [Theory]
    [InlineData("not json", "the body is not JSON")]
    [InlineData("[]", "the body must be a JSON object with an \"events\" array")]
    [InlineData("{\"events\": {}}", "the body must be a JSON object with an \"events\" array")]
    [InlineData("{\"events\": [1]}", "events[0]: must be an object")]
    [InlineData("{\"events\": [{\"type\": \"delivered\"}]}", "events[0].id: required")]
    [InlineData("{\"events\": [{\"id\": \"e\", \"type\": \"opened\", \"occurred_at\": \"2026-12-07T10:00:00Z\", \"message\": {\"outbox_id\": \"0b5a7c3e-4d1f-4a8e-9c2b-6f0e1d2c3b4a\"}}]}",
        "events[0].type: unknown event type 'opened' (one of delivered, bounce_hard, bounce_soft, complaint, unsubscribe, reply)")]
    [InlineData("{\"events\": [{\"id\": \"e\", \"type\": \"delivered\", \"occurred_at\": \"2026-12-07T10:00:00\", \"message\": {\"outbox_id\": \"0b5a7c3e-4d1f-4a8e-9c2b-6f0e1d2c3b4a\"}}]}",
        "events[0].occurred_at: must be an ISO 8601 time with its offset")]
    [InlineData("{\"events\": [{\"id\": \"e\", \"type\": \"delivered\", \"occurred_at\": \"2026-12-07T10:00:00Z\"}]}", "events[0].message: required")]
    [InlineData("{\"events\": [{\"id\": \"e\", \"type\": \"delivered\", \"occurred_at\": \"2026-12-07T10:00:00Z\", \"message\": {}}]}",
        "events[0].message: name the message by outbox_id, provider_message_id or message_id_header")]
    [InlineData("{\"events\": [{\"id\": \"e\", \"type\": \"delivered\", \"occurred_at\": \"2026-12-07T10:00:00Z\", \"message\": {\"outbox_id\": \"42\"}}]}",
        "events[0].message.outbox_id: '42' is not a uuid")]
    [InlineData("{\"events\": [{\"id\": \"e\", \"type\": \"reply\", \"occurred_at\": \"2026-12-07T10:00:00Z\", \"message\": {\"provider_message_id\": \"p\"}}]}",
        "events[0].reply: required for an event of type reply")]
    [InlineData("{\"events\": [{\"id\": \"e\", \"type\": \"delivered\", \"occurred_at\": \"2026-12-07T10:00:00Z\", \"message\": {\"provider_message_id\": \"p\"}, \"reply\": {\"text\": \"x\"}}]}",
        "events[0].reply: only for an event of type reply")]
    [InlineData("{\"events\": [{\"id\": 7, \"type\": \"delivered\"}]}", "events[0].id: must be a string")]
    [InlineData("{\"events\": [{\"id\": \"e\", \"typo\": \"delivered\"}]}", "events[0].typo: not a field of an event")]
    public void Hourglass_Malformed_RefusesTheWholeBatchNamingTheFault(string body, string expected)
    {
        var ex = Assert.Throws<InboundPayloadException>(() => HourglassEventFormat.Parse(Bytes(body)));

        Assert.StartsWith(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Hourglass_OneBadEventAfterGoodOnes_RefusesTheBatchNamingItsIndex()
    {
        var good = $$$"""{"id": "ok", "type": "delivered", "occurred_at": "2026-12-07T10:00:00Z", "message": {"outbox_id": "{{{s_outbox}}}"}}""";
        var body = $$$"""{"events": [{{{good}}}, {{{good}}}, {"id": "bad", "type": "bounced", "occurred_at": "2026-12-07T10:00:00Z", "message": {"outbox_id": "{{{s_outbox}}}"}}]}""";

        var ex = Assert.Throws<InboundPayloadException>(() => HourglassEventFormat.Parse(Bytes(body)));

        Assert.StartsWith("events[2].type: unknown event type 'bounced'", ex.Message, StringComparison.Ordinal);
    }

    // ---- Resend ----------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("email.delivered", null, DeliveryEventType.Delivered)]
    [InlineData("email.bounced", "Permanent", DeliveryEventType.HardBounce)]
    [InlineData("email.bounced", null, DeliveryEventType.HardBounce)]
    [InlineData("email.bounced", "Transient", DeliveryEventType.SoftBounce)]
    [InlineData("email.bounced", "Undetermined", DeliveryEventType.SoftBounce)]
    [InlineData("email.complained", null, DeliveryEventType.Complaint)]
    public void Resend_DeliveryEvents_MappedToTheVocabulary(string type, string? bounceType, string expected)
    {
        var bounce = bounceType is null ? "" : $$$""", "bounce": {"message": "The recipient's mail server rejected it.", "subType": "General", "type": "{{{bounceType}}}"}""";
        var body = $$$"""
            {"type": "{{{type}}}", "created_at": "2026-12-07T10:15:02.126Z",
             "data": {"created_at": "2026-12-07T10:14:00.000000+00:00", "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
                      "from": "Acme <agent@acme.example>", "to": ["pat@client.example"], "subject": "Renewal",
                      "tags": {"hourglass_outbox_id": "{{{s_outbox}}}"}{{{bounce}}}}}
            """;

        var item = Assert.Single(ResendEvents.Parse("msg_2a", Bytes(body)));

        var delivery = item.Event!;
        Assert.Equal((InboundSourceKind.Resend, "msg_2a", expected, "pat@client.example"), (delivery.Source, delivery.SourceEventId, delivery.Type, delivery.Recipient));
        Assert.Equal(new DateTimeOffset(2026, 12, 7, 10, 15, 2, 126, TimeSpan.Zero), delivery.OccurredAt);
        Assert.Equal((s_outbox, "56761188-7520-42d8-8898-ff6fc54ce618"), (delivery.Message.OutboxId, delivery.Message.ProviderMessageId));
        Assert.Equal(type, item.SourceType);
        if (bounceType is not null)
        {
            Assert.Equal($"{bounceType}: General: The recipient's mail server rejected it.", delivery.Reason);
        }
    }

    [Fact]
    public void Resend_TagsAsPairsAndMessageIdHeader_Read()
    {
        var body = $$$"""
            {"type": "email.delivered", "created_at": "2026-12-07T10:15:02Z",
             "data": {"email_id": "e1", "to": "pat@client.example",
                      "tags": [{"name": "hourglass_outbox_id", "value": "{{{s_outbox}}}"}],
                      "headers": [{"name": "Message-ID", "value": "<abc.outbox@acme.example>"}]}}
            """;

        var delivery = Assert.Single(ResendEvents.Parse("msg_1", Bytes(body))).Event!;

        Assert.Equal(s_outbox, delivery.Message.OutboxId);
        Assert.Equal(["<abc.outbox@acme.example>"], delivery.Message.HeaderMessageIds!);
        Assert.Equal("pat@client.example", delivery.Recipient);
    }

    [Theory]
    [InlineData("email.delivery_delayed", "delivery delayed: Resend is still retrying")]
    [InlineData("email.opened", "'email.opened' is not a delivery event Hourglass records")]
    [InlineData("contact.created", "'contact.created' is not a delivery event Hourglass records")]
    public void Resend_OtherTypes_SkippedWithTheReason(string type, string reason)
    {
        var item = Assert.Single(ResendEvents.Parse("msg_3", Bytes($$$"""{"type": "{{{type}}}", "created_at": "2026-12-07T10:15:02Z", "data": {"email_id": "e"}}""")));

        Assert.Null(item.Event);
        Assert.StartsWith(reason, item.SkipReason, StringComparison.Ordinal);
        Assert.Equal(("msg_3", type), (item.EventId, item.SourceType));
    }

    [Theory]
    [InlineData("""{"type": "email.bounced", "created_at": "2026-12-07T10:15:02Z", "data": {"to": ["a@b.example"]}}""", "no data.email_id")]
    [InlineData("""{"type": "email.bounced", "data": {"email_id": "e"}}""", "no created_at")]
    public void Resend_KnownTypeMissingWhatItNeeds_Skipped(string body, string reason)
    {
        var item = Assert.Single(ResendEvents.Parse("msg_4", Bytes(body)));

        Assert.Null(item.Event);
        Assert.StartsWith(reason, item.SkipReason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("<html>", "the body is not JSON")]
    [InlineData("[]", "the body must be a JSON object with a \"type\"")]
    [InlineData("{\"data\": {}}", "the body must be a JSON object with a \"type\"")]
    public void Resend_NotAnEvent_RefusedWhole(string body, string reason)
    {
        var ex = Assert.Throws<InboundPayloadException>(() => ResendEvents.Parse("msg_5", Bytes(body)));

        Assert.StartsWith(reason, ex.Message, StringComparison.Ordinal);
    }

    // ---- SendGrid --------------------------------------------------------------------------------------------------

    [Fact]
    public void SendGrid_Batch_EachEventMappedOrSkippedWithItsReason()
    {
        var body = $$$"""
            [
              {"email": "pat@client.example", "timestamp": 1796638500, "smtp-id": "<{{{s_outbox:N}}}.outbox@acme.example>", "event": "delivered",
               "sg_event_id": "ZGVsaXZlcmVk", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "response": "250 OK",
               "hourglass_outbox_id": "{{{s_outbox}}}"},
              {"email": "kim@client.example", "timestamp": 1796638501, "event": "bounce", "type": "bounce", "status": "5.1.1",
               "reason": "550 5.1.1 user unknown", "sg_event_id": "Ym91bmNl", "sg_message_id": "qNwBLgPQQjW6DJvKQwSAbw.filterdrecv-1"},
              {"email": "lee@client.example", "timestamp": 1796638502, "event": "bounce", "type": "blocked", "status": "4.0.0",
               "reason": "421 try later", "sg_event_id": "YmxvY2tlZA"},
              {"email": "dee@client.example", "timestamp": 1796638503, "event": "dropped", "reason": "Bounced Address", "sg_event_id": "ZHJvcHBlZA"},
              {"email": "dee@client.example", "timestamp": 1796638503, "event": "dropped", "reason": "Spam Content", "sg_event_id": "ZHJvcDI"},
              {"email": "ann@client.example", "timestamp": 1796638504, "event": "deferred", "response": "400 try again", "attempt": "5", "sg_event_id": "ZGVm"},
              {"email": "bo@client.example", "timestamp": 1796638505, "event": "spamreport", "sg_event_id": "c3BhbQ"},
              {"email": "cy@client.example", "timestamp": 1796638506, "event": "unsubscribe", "sg_event_id": "dW5zdWI"},
              {"email": "cy@client.example", "timestamp": 1796638507, "event": "group_unsubscribe", "asm_group_id": 1, "sg_event_id": "Z3JvdXA"},
              {"email": "cy@client.example", "timestamp": 1796638508, "event": "open", "sg_event_id": "b3Blbg"},
              {"email": "cy@client.example", "timestamp": 1796638509, "event": "delivered"},
              {"email": "cy@client.example", "event": "delivered", "sg_event_id": "bm90aW1l"},
              "not an object"
            ]
            """;

        var items = SendGridEvents.Parse(Bytes(body));

        Assert.Equal(
            [
                "0 ZGVsaXZlcmVk delivered", "1 Ym91bmNl bounce_hard", "2 YmxvY2tlZA bounce_soft", "3 ZHJvcHBlZA bounce_hard",
                "4 ZHJvcDI skipped: dropped by SendGrid (Spam Content): not about the address",
                "5 ZGVm skipped: deferred: SendGrid is still retrying (bounce or delivered follows)",
                "6 c3BhbQ complaint", "7 dW5zdWI unsubscribe", "8 Z3JvdXA unsubscribe",
                "9 b3Blbg skipped: 'open' is not a delivery event Hourglass records",
                "10  skipped: no sg_event_id: without it a retry could not be told from a new event",
                "11 bm90aW1l skipped: no timestamp: the event has no time",
                "12  skipped: not an event object",
            ],
            items.Select(i => $"{i.Index} {i.EventId} {(i.Event is { } e ? e.Type : "skipped: " + i.SkipReason)}"));
        var delivered = items[0].Event!;
        Assert.Equal(new DeliveryEvent(InboundSourceKind.SendGrid, "ZGVsaXZlcmVk", DeliveryEventType.Delivered, DateTimeOffset.FromUnixTimeSeconds(1796638500),
            delivered.Message, "pat@client.example"), delivered);
        Assert.Equal((s_outbox, "14c5d75ce93"), (delivered.Message.OutboxId, delivered.Message.ProviderMessageId));
        Assert.Equal([$"<{s_outbox:N}.outbox@acme.example>"], delivered.Message.HeaderMessageIds!);
        var bounce = items[1].Event!;
        Assert.Equal(("kim@client.example", "5.1.1 550 5.1.1 user unknown", "qNwBLgPQQjW6DJvKQwSAbw"),
            (bounce.Recipient, bounce.Reason, bounce.Message.ProviderMessageId));
        Assert.Null(bounce.Message.OutboxId);
    }

    [Theory]
    [InlineData("{", "the body is not JSON")]
    [InlineData("{\"event\": \"bounce\"}", "the body must be a JSON array of events")]
    public void SendGrid_NotABatch_RefusedWhole(string body, string reason)
    {
        var ex = Assert.Throws<InboundPayloadException>(() => SendGridEvents.Parse(Bytes(body)));

        Assert.StartsWith(reason, ex.Message, StringComparison.Ordinal);
    }

    // ---- Postmark --------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("Bounce", "HardBounce", "bounce:4323372036854775807", DeliveryEventType.HardBounce)]
    [InlineData("Bounce", "BadEmailAddress", "bounce:4323372036854775807", DeliveryEventType.HardBounce)]
    [InlineData("Bounce", "SoftBounce", "bounce:4323372036854775807", DeliveryEventType.SoftBounce)]
    [InlineData("Bounce", "Transient", "bounce:4323372036854775807", DeliveryEventType.SoftBounce)]
    [InlineData("SpamComplaint", "SpamComplaint", "bounce:4323372036854775807", DeliveryEventType.Complaint)]
    [InlineData("Delivery", null, "delivery:883953f4-6105-42a2-a16a-77a8eac79483:john@example.com", DeliveryEventType.Delivered)]
    public void Postmark_Records_MappedWithTheirIds(string recordType, string? bounceType, string id, string expected)
    {
        var type = bounceType is null ? "" : $"\"Type\": \"{bounceType}\", \"Name\": \"Hard bounce\", \"Description\": \"The server was unable to deliver your message\",";
        var body = $$$"""
            {"RecordType": "{{{recordType}}}", "ID": 4323372036854775807, {{{type}}} "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
             "Metadata": {"hourglass_outbox_id": "{{{s_outbox}}}"}, "ServerID": 23, "MessageStream": "outbound",
             "Email": "john@example.com", "Recipient": "john@example.com", "BouncedAt": "2026-12-07T16:33:54.9070259Z", "DeliveredAt": "2026-12-07T16:33:54.9070259Z"}
            """;

        var item = Assert.Single(PostmarkEvents.Parse(Bytes(body)));

        var delivery = item.Event!;
        Assert.Equal((InboundSourceKind.Postmark, id, expected, "john@example.com"), (delivery.Source, delivery.SourceEventId, delivery.Type, delivery.Recipient));
        Assert.Equal((s_outbox, "883953f4-6105-42a2-a16a-77a8eac79483"), (delivery.Message.OutboxId, delivery.Message.ProviderMessageId));
        Assert.Equal(new DateTimeOffset(2026, 12, 7, 16, 33, 54, TimeSpan.Zero), delivery.OccurredAt.AddTicks(-(delivery.OccurredAt.Ticks % TimeSpan.TicksPerSecond)));
    }

    [Theory]
    [InlineData("""{"RecordType": "Bounce", "Type": "AutoResponder", "ID": 1, "MessageID": "m", "Email": "a@b.example", "BouncedAt": "2026-12-07T16:33:54Z"}""",
        "a bounce of type 'AutoResponder' says nothing about the address")]
    [InlineData("""{"RecordType": "Open", "MessageID": "m"}""", "'Open' is not a delivery event Hourglass records")]
    [InlineData("""{"RecordType": "SubscriptionChange", "MessageID": "m", "Recipient": "a@b.example", "ChangedAt": "2026-12-07T16:33:54Z", "SuppressSending": false}""",
        "sending reactivated")]
    [InlineData("""{"RecordType": "Bounce", "Type": "HardBounce", "MessageID": "m", "Email": "a@b.example", "BouncedAt": "2026-12-07T16:33:54Z"}""",
        "no ID or MessageID")]
    public void Postmark_OtherRecords_SkippedWithTheReason(string body, string reason)
    {
        var item = Assert.Single(PostmarkEvents.Parse(Bytes(body)));

        Assert.Null(item.Event);
        Assert.StartsWith(reason, item.SkipReason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ManualSuppression", DeliveryEventType.Unsubscribe)]
    [InlineData("HardBounce", DeliveryEventType.HardBounce)]
    [InlineData("SpamComplaint", DeliveryEventType.Complaint)]
    public void Postmark_SubscriptionChangeSuppressing_MappedByReason(string reason, string expected)
    {
        var body = $$$"""
            {"RecordType": "SubscriptionChange", "MessageID": "m1", "Recipient": "a@b.example", "ChangedAt": "2026-12-07T16:33:54Z",
             "SuppressSending": true, "SuppressionReason": "{{{reason}}}", "Origin": "Recipient"}
            """;

        var delivery = Assert.Single(PostmarkEvents.Parse(Bytes(body))).Event!;

        Assert.Equal((expected, "subscription:m1:a@b.example:2026-12-07T16:33:54Z"), (delivery.Type, delivery.SourceEventId));
    }

    [Theory]
    [InlineData("Basic aG9vazpzM2NyZXQ=", "Valid")]
    [InlineData("basic aG9vazpzM2NyZXQ=", "Valid")]
    [InlineData("Basic aG9vazpzM2NyZXQh", "Refused")]
    [InlineData("Basic !!", "Refused")]
    [InlineData("Bearer aG9vazpzM2NyZXQ=", "Refused")]
    [InlineData(null, "Refused")]
    public void Postmark_BasicAuth_OnlyTheConfiguredCredentials(string? authorization, string expected)
    {
        // "hook:s3cret" in base64 is aG9vazpzM2NyZXQ=.
        Assert.Equal(expected, WebhookSignatures.VerifyBasic("hook:s3cret", name => name == "Authorization" ? authorization : null).Status.ToString());
        Assert.Equal(SignatureStatus.KeyUnusable, WebhookSignatures.VerifyBasic("no-colon", _ => authorization).Status);
    }

    [Fact]
    public void Providers_FindBySourceName_CaseInsensitive_ImapAndUnknownNotWebhooks()
    {
        Assert.Equal([InboundSourceKind.Hourglass, InboundSourceKind.Resend, InboundSourceKind.SendGrid, InboundSourceKind.Postmark],
            new[] { "hourglass", "Resend", "SENDGRID", "postmark" }.Select(s => InboundProviders.Find(s)!.Source));
        Assert.Null(InboundProviders.Find("imap"));
        Assert.Null(InboundProviders.Find("mailgun"));
    }

    private static ReadOnlyMemory<byte> Bytes(string text) => Encoding.UTF8.GetBytes(text);
}
