using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Engagement.Outbox;

namespace Hourglass.IntegrationTests.Api;

/// <summary>
/// Events posted to a real <c>hourglass serve</c> and recorded end to end (docs/inbound.md): a hard bounce in Hourglass's
/// own format suppresses the address and the same post again is a duplicate; an event naming another tenant's message is
/// skipped and changes nothing of that tenant; a batch with one event the recorder refuses records none of it. An email
/// sent through a real SMTP server carries the SendGrid unique argument naming its outbox message, and a signed SendGrid
/// batch built from what was sent is recorded once however often it is posted.
/// </summary>
public sealed class InboundWebhookRecordTests() : FrozenClockTest(s_t0)
{
    // A Tuesday, 10:00 UTC: inside the default business hours, so the dispatcher sends at once.
    private static readonly DateTimeOffset s_t0 = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);
    private const string SecretA = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==";
    private const string SecretB = "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQg==";

    private readonly ECDsa _sendGridKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private ApiServer? _server;
    private Guid _a;
    private Guid _b;
    private Guid _patContact;
    private Guid _kimContact;

    protected override async Task SeedAsync()
    {
        await base.SeedAsync();
        _a = await Db.CreateTenantAsync("Record A");
        _b = await Db.CreateTenantAsync("Record B");
        _patContact = await ContactAsync(_a, "pat@client.example");
        _kimContact = await ContactAsync(_b, "kim@other.example");
        await InboundStore.SetWebhookSourceAsync(DataSource, _a, InboundSourceKind.Hourglass, "RECORD_A_SECRET", true, default);
        await InboundStore.SetWebhookSourceAsync(DataSource, _b, InboundSourceKind.Hourglass, "RECORD_B_SECRET", true, default);
        await InboundStore.SetWebhookSourceAsync(DataSource, _a, InboundSourceKind.SendGrid, "RECORD_A_SENDGRID", true, default);
        _server = await ApiServer.StartAsync(ConnectionString, new Dictionary<string, string?>
        {
            ["RECORD_A_SECRET"] = SecretA,
            ["RECORD_B_SECRET"] = SecretB,
            ["RECORD_A_SENDGRID"] = Convert.ToBase64String(_sendGridKey.ExportSubjectPublicKeyInfo()),
        });
    }

    protected override async Task TearDownAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _sendGridKey.Dispose();
        await base.TearDownAsync();
    }

    [Fact]
    public async Task HourglassFormat_HardBounceRecordedAndSuppressed_RetryDuplicate_OtherTenantsMessageSkipped_RefusedBatchRecordsNothing()
    {
        var pat = await EnqueueAsync(_a, "k-pat", "pat@client.example", _patContact);
        var kim = await EnqueueAsync(_b, "k-kim", "kim@other.example", _kimContact);
        var tenantB = await DigestAsync(_b);
        var bounce = Batch(Event("evt-1", "bounce_hard", pat, "pat@client.example", s_t0.AddMinutes(-5)));

        var first = await PostHourglassAsync(_a, bounce, SecretA);

        Assert.True(first.Status == HttpStatusCode.OK, first.ToString());
        Assert.Equal($"recorded|evt-1|bounce_hard|address_suppressed|{pat}|", Outcomes(first.Body).Single());
        Assert.Equal((1, 0, 0), Counts(first.Body));
        Assert.Equal($"hourglass|evt-1|bounce_hard|{pat}|pat@client.example|address_suppressed", await Db.ScalarAsync("""
            select concat_ws('|', source, source_event_id, event_type, message_id, recipient, effect) from public.message_delivery_events where tenant_id = $1
            """, _a));
        Assert.Equal("pat@client.example|hard_bounce", await Db.ScalarAsync(
            "select address || '|' || reason from public.message_suppressions where tenant_id = $1", _a));
        var recorded = await DigestAsync(_a);

        // The sender retries (a timeout on its side): nothing is written twice.
        var again = await PostHourglassAsync(_a, bounce, SecretA);
        Assert.True(again.Status == HttpStatusCode.OK, again.ToString());
        Assert.Equal($"duplicate|evt-1|bounce_hard|address_suppressed|{pat}|", Outcomes(again.Body).Single());
        Assert.Equal((0, 1, 0), Counts(again.Body));
        Assert.Equal(recorded, await DigestAsync(_a));

        // A's own signed post naming B's message: skipped in A with its reason; B is untouched.
        var foreign = await PostHourglassAsync(_a, Batch(Event("evt-2", "complaint", kim, "kim@other.example", s_t0.AddMinutes(-4))), SecretA);
        Assert.True(foreign.Status == HttpStatusCode.OK, foreign.ToString());
        Assert.Equal($"skipped|evt-2|complaint|skipped||no message of this tenant matches outbox id {kim}", Outcomes(foreign.Body).Single());
        Assert.Equal(tenantB, await DigestAsync(_b));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.contacts where opted_out_at is not null"));

        // One event the recorder refuses (it claims to come from the future) refuses its whole batch.
        var before = await DigestAsync(_a);
        var mixed = await PostHourglassAsync(_a, Batch(Event("evt-3", "delivered", pat, "pat@client.example", s_t0.AddMinutes(-3)),
            Event("evt-4", "bounce_soft", pat, "pat@client.example", s_t0.AddHours(2))), SecretA);
        Assert.True(mixed.Status == HttpStatusCode.BadRequest, mixed.ToString());
        Assert.Contains("events[1].occurred_at: ", mixed.Body, StringComparison.Ordinal);
        Assert.Contains("is in the future", mixed.Body, StringComparison.Ordinal);
        Assert.Contains("nothing was recorded", mixed.Body, StringComparison.Ordinal);
        Assert.Equal(before, await DigestAsync(_a));
        Assert.Equal(tenantB, await DigestAsync(_b));
    }

    [Fact]
    public async Task SendGrid_EmailSentThroughSmtpCarriesItsOutboxId_SignedBatchFromItRecordedOnce()
    {
        using var smtp = new LoopbackSmtpServer();
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', '127.0.0.1', $2, 'none', 'agent@acme.example')
            """, _a, smtp.Port);
        var pat = await EnqueueAsync(_a, "k-sent", "pat@client.example", _patContact);
        var dispatcher = new OutboxDispatcher(DataSource, OutboxDispatcher.DefaultTransports(Http, Options, Clock), Clock, Options, _ => null, new Random(7));
        await dispatcher.DispatchOnceAsync(default);
        var sent = Assert.Single(smtp.Accepted);

        // What SendGrid reads from the SMTP API header and echoes back in every event about this email.
        var uniqueArgs = JsonNode.Parse(sent.Headers[SmtpTransport.SendGridApiHeader]!)!["unique_args"]!;
        Assert.Equal(pat.ToString("D"), (string?)uniqueArgs[SmtpTransport.SendGridOutboxArgument]);
        Assert.Equal(pat.ToString("D"), sent.Headers[SmtpTransport.PostmarkMetadataHeaderPrefix + SmtpTransport.PostmarkOutboxMetadata]);

        var batch = new JsonArray(
            new JsonObject
            {
                ["email"] = "pat@client.example", ["timestamp"] = s_t0.AddMinutes(1).ToUnixTimeSeconds(), ["smtp-id"] = $"<{sent.MessageId}>",
                ["event"] = "delivered", ["sg_event_id"] = "sg-delivered", ["sg_message_id"] = "14c5d75ce93.filter0001.16648.0",
                [SmtpTransport.SendGridOutboxArgument] = (string?)uniqueArgs[SmtpTransport.SendGridOutboxArgument],
            },
            new JsonObject
            {
                ["email"] = "pat@client.example", ["timestamp"] = s_t0.AddMinutes(2).ToUnixTimeSeconds(), ["smtp-id"] = $"<{sent.MessageId}>",
                ["event"] = "open", ["sg_event_id"] = "sg-open",
            }).ToJsonString();

        var first = await PostSendGridAsync(batch);
        var retry = await PostSendGridAsync(batch);

        Assert.True(first.Status == HttpStatusCode.OK, first.ToString());
        Assert.Equal([$"recorded|sg-delivered|delivered|none|{pat}|", "skipped|sg-open||skipped||'open' is not a delivery event Hourglass records"],
            Outcomes(first.Body));
        Assert.True(retry.Status == HttpStatusCode.OK, retry.ToString());
        Assert.Equal((0, 1, 1), Counts(retry.Body));
        Assert.Equal("sendgrid|sg-delivered|delivered", await Db.ScalarAsync(
            "select string_agg(concat_ws('|', source, source_event_id, event_type), ',') from public.message_delivery_events where tenant_id = $1 and message_id = $2",
            _a, pat));
    }

    private static OutboxDispatcherOptions Options => new() { WorkerId = "inbound-webhook-test", SendTimeout = TimeSpan.FromSeconds(10) };

    private async Task<string> DigestAsync(Guid tenant)
    {
        var parts = new List<string>();
        foreach (var table in new[] { "message_delivery_events", "message_suppressions", "message_outbox", "contacts", "cards", "warehouse_events", "engagement_clocks" })
        {
            parts.Add(table + ":" + ((string?)await Db.ScalarAsync(
                $"select string_agg(to_jsonb(t)::text, ',' order by to_jsonb(t)::text) from public.{table} t where tenant_id = $1", tenant) ?? ""));
        }

        return string.Join('\n', parts);
    }

    private async Task<Guid> ContactAsync(Guid tenant, string email) =>
        (Guid)(await Db.ScalarAsync("insert into public.contacts (tenant_id, name, email) values ($1, $2, $3) returning id", tenant, email, email))!;

    private async Task<Guid> EnqueueAsync(Guid tenant, string key, string to, Guid contact) =>
        (await Db.EnqueueMessageAsync(new NewMessage(tenant, key, MessageChannel.Email, to, "Renewal", "hello",
            new JsonObject { ["target_type"] = "contact", ["target_id"] = contact.ToString() })))!.Value;

    private static JsonObject Event(string id, string type, Guid message, string recipient, DateTimeOffset at) => new()
    {
        ["id"] = id,
        ["type"] = type,
        ["occurred_at"] = at.ToString("O", CultureInfo.InvariantCulture),
        ["message"] = new JsonObject { ["outbox_id"] = message.ToString("D") },
        ["recipient"] = recipient,
    };

    private static string Batch(params JsonObject[] events) => new JsonObject { ["events"] = new JsonArray(events) }.ToJsonString();

    private Task<ApiResponse> PostHourglassAsync(Guid tenant, string body, string secret)
    {
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        return PostAsync($"/inbound/{tenant}/hourglass", body, new Dictionary<string, string>
        {
            ["webhook-id"] = "msg-1",
            ["webhook-timestamp"] = timestamp.ToString(CultureInfo.InvariantCulture),
            ["webhook-signature"] = StandardWebhooks.Sign(secret, "msg-1", timestamp, body),
        });
    }

    private Task<ApiResponse> PostSendGridAsync(string body)
    {
        var stamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var signature = _sendGridKey.SignData(Encoding.UTF8.GetBytes(stamp + body), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        return PostAsync($"/inbound/{_a}/sendgrid", body, new Dictionary<string, string>
        {
            ["X-Twilio-Email-Event-Webhook-Signature"] = Convert.ToBase64String(signature),
            ["X-Twilio-Email-Event-Webhook-Timestamp"] = stamp,
        });
    }

    private Task<ApiResponse> PostAsync(string path, string body, IReadOnlyDictionary<string, string> headers) =>
        _server!.SendAsync(HttpMethod.Post, path, token: null, configure: request =>
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
            foreach (var (name, value) in headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        });

    private static List<string> Outcomes(string body) =>
        [.. JsonNode.Parse(body)!["events"]!.AsArray().Select(e => $"{e!["status"]}|{e["id"]}|{e["type"]}|{e["effect"]}|{e["message_id"]}|{e["reason"]}")];

    private static (int Recorded, int Duplicates, int Skipped) Counts(string body)
    {
        var json = JsonNode.Parse(body)!;
        return ((int)json["recorded"]!, (int)json["duplicates"]!, (int)json["skipped"]!);
    }
}
