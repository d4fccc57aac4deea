using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Api;

/// <summary>
/// The inbound webhook (<c>POST /inbound/{tenant}/{source}</c>; docs/inbound.md) against a real <c>hourglass serve</c>:
/// the sources configured with the real <c>hourglass inbound set</c>, their secrets in the server's environment. Every
/// bad request — unsigned, wrongly signed, stale, not JSON, an unknown event type, another tenant's secret, an unknown
/// tenant or source, a disabled source, a secret the server lacks or cannot use — is a 4xx problem and writes nothing,
/// for any tenant; provider events Hourglass does not record are answered as skipped, each with its reason.
/// </summary>
public sealed class InboundWebhookTests : DatabaseTest
{
    private const string SecretA = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==";
    private const string SecretB = "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQg==";
    private const string ResendSecretA = "whsec_UmVzZW5kUmVzZW5kUmVzZW5kUmVzZW5kUmVz";

    private readonly ECDsa _sendGridKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private ApiServer? _server;
    private Guid _a;
    private Guid _b;

    private ApiServer Server => _server!;

    protected override async Task SeedAsync()
    {
        _a = await Db.CreateTenantAsync("Inbound A");
        _b = await Db.CreateTenantAsync("Inbound B");
        await InboundAsync("set", "--tenant", "Inbound A", "--source", "hourglass", "--secret-ref", "INBOUND_A_SECRET");
        await InboundAsync("set", "--tenant", "Inbound B", "--source", "hourglass", "--secret-ref", "INBOUND_B_SECRET");
        await InboundAsync("set", "--tenant", "Inbound A", "--source", "resend", "--secret-ref", "INBOUND_A_RESEND");
        await InboundAsync("set", "--tenant", "Inbound A", "--source", "sendgrid", "--secret-ref", "INBOUND_A_SENDGRID");
        // B's Resend secret is not in the server's environment; B's SendGrid key is not a key; B's Resend is then switched off.
        await InboundAsync("set", "--tenant", "Inbound B", "--source", "sendgrid", "--secret-ref", "INBOUND_B_SENDGRID");
        await InboundAsync("set", "--tenant", "Inbound B", "--source", "resend", "--secret-ref", "INBOUND_B_RESEND_UNSET");
        _server = await ApiServer.StartAsync(ConnectionString, new Dictionary<string, string?>
        {
            ["INBOUND_A_SECRET"] = SecretA,
            ["INBOUND_B_SECRET"] = SecretB,
            ["INBOUND_A_RESEND"] = ResendSecretA,
            ["INBOUND_A_SENDGRID"] = Convert.ToBase64String(_sendGridKey.ExportSubjectPublicKeyInfo()),
            ["INBOUND_B_SENDGRID"] = "not-a-public-key",
        });
    }

    protected override async Task TearDownAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _sendGridKey.Dispose();
    }

    [Fact]
    public async Task BadRequests_EachA4xxProblemNamingWhatIsWrong_NothingWrittenForAnyTenant()
    {
        var before = (await DigestAsync(_a), await DigestAsync(_b));
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var valid = Batch(("evt_1", "bounce_hard"));
        var cases = new (string Name, Func<Task<ApiResponse>> Send, HttpStatusCode Status, string Detail)[]
        {
            ("unsigned", () => PostAsync($"/inbound/{_a}/hourglass", valid), HttpStatusCode.Unauthorized,
                "unsigned: the headers webhook-id, webhook-timestamp and webhook-signature are all required"),
            ("wrongly signed", () => PostHourglassAsync(_a, valid, "whsec_" + Convert.ToBase64String(new byte[32]), now), HttpStatusCode.Unauthorized,
                "wrongly signed: no v1 signature in webhook-signature matches"),
            ("body changed after signing", () => PostAsync($"/inbound/{_a}/hourglass", valid.Replace("bounce_hard", "bounce_soft", StringComparison.Ordinal),
                StandardHeaders("webhook", "evt", now, SecretA, valid)), HttpStatusCode.Unauthorized, "wrongly signed"),
            ("stale", () => PostHourglassAsync(_a, valid, SecretA, now - 600), HttpStatusCode.Unauthorized, "stale: webhook-timestamp is 6"),
            ("from the future", () => PostHourglassAsync(_a, valid, SecretA, now + 600), HttpStatusCode.Unauthorized, "s ahead of the server's clock"),
            ("not JSON", () => PostHourglassAsync(_a, "events: bounce", SecretA, now), HttpStatusCode.BadRequest, "the body is not JSON"),
            ("unknown event type", () => PostHourglassAsync(_a, Batch(("evt_1", "bounce_hard"), ("evt_2", "opened")), SecretA, now), HttpStatusCode.BadRequest,
                "events[1].type: unknown event type 'opened'"),
            ("B's URL, signed with A's secret", () => PostHourglassAsync(_b, valid, SecretA, now), HttpStatusCode.Unauthorized, "wrongly signed"),
            ("A's URL, signed with B's secret", () => PostHourglassAsync(_a, valid, SecretB, now), HttpStatusCode.Unauthorized, "wrongly signed"),
            ("unknown tenant", () => PostHourglassAsync(Guid.NewGuid(), valid, SecretA, now), HttpStatusCode.NotFound, "no enabled hourglass source is set up at this address"),
            ("tenant not a uuid", () => PostHourglassAsync(null, valid, SecretA, now), HttpStatusCode.NotFound, "no enabled hourglass source"),
            ("unknown source", () => PostAsync($"/inbound/{_a}/mailgun", valid), HttpStatusCode.NotFound, "'mailgun' is not a webhook source; one of hourglass, resend, sendgrid"),
            ("imap is not posted to", () => PostAsync($"/inbound/{_a}/imap", valid), HttpStatusCode.NotFound, "is read from its mailbox"),
            ("source the tenant has not set up", () => PostAsync($"/inbound/{Guid.NewGuid()}/sendgrid", "[]"), HttpStatusCode.NotFound, "no enabled sendgrid source"),
            ("secret not in the server's environment", () => PostAsync($"/inbound/{_b}/resend", "{}"), HttpStatusCode.Forbidden,
                "the environment variable its secret_ref names is not set on the server"),
            ("verification key unusable", () => PostAsync($"/inbound/{_b}/sendgrid", "[]"), HttpStatusCode.Forbidden,
                "the configured verification key is not the base64 public key SendGrid shows"),
            ("SendGrid, unsigned", () => PostAsync($"/inbound/{_a}/sendgrid", SendGridBatch()), HttpStatusCode.Unauthorized,
                "unsigned: the headers X-Twilio-Email-Event-Webhook-Signature and X-Twilio-Email-Event-Webhook-Timestamp are both required"),
            ("SendGrid, signed by another key", () => PostSendGridAsync(SendGridBatch(), now, ECDsa.Create(ECCurve.NamedCurves.nistP256)), HttpStatusCode.Unauthorized,
                "does not verify with the configured key"),
            ("SendGrid, not a batch", () => PostSendGridAsync("{\"event\": \"bounce\"}", now), HttpStatusCode.BadRequest, "the body must be a JSON array of events"),
            ("Resend, signed with Hourglass's secret", () => PostAsync($"/inbound/{_a}/resend", ResendEvent("email.bounced"),
                StandardHeaders("svix", "msg_1", now, SecretA, ResendEvent("email.bounced"))), HttpStatusCode.Unauthorized, "wrongly signed"),
            ("Resend, with webhook- headers instead of svix-", () => PostAsync($"/inbound/{_a}/resend", ResendEvent("email.bounced"),
                StandardHeaders("webhook", "msg_1", now, ResendSecretA, ResendEvent("email.bounced"))), HttpStatusCode.Unauthorized, "unsigned: the headers svix-id"),
            ("body over the limit", () => PostHourglassAsync(_a, new string(' ', 4 * 1024 * 1024 + 1), SecretA, now), HttpStatusCode.RequestEntityTooLarge, "over 4 MiB"),
        };

        foreach (var (name, send, status, detail) in cases)
        {
            var response = await send();
            Assert.True(response.Status == status, $"{name}: expected {(int)status}, got {response}");
            Assert.True(response.ContentType == "application/problem+json", $"{name}: {response}");
            Assert.True(response.Body.Contains(detail, StringComparison.Ordinal), $"{name}: expected '{detail}' in {response}");
            Assert.DoesNotContain(SecretA, response.Body, StringComparison.Ordinal);
            Assert.DoesNotContain("INBOUND_B_RESEND_UNSET", response.Body, StringComparison.Ordinal);
        }

        // After B's Resend source is switched off, its URL answers as if it had never been set up.
        await InboundAsync("set", "--tenant", "Inbound B", "--source", "resend", "--disable");
        var disabled = await PostAsync($"/inbound/{_b}/resend", "{}");
        Assert.True(disabled.Status == HttpStatusCode.NotFound, disabled.ToString());
        Assert.Contains("no enabled resend source", disabled.Body, StringComparison.Ordinal);

        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_delivery_events"));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_suppressions"));
        Assert.Equal(before.Item1, await DigestAsync(_a));
        Assert.Equal(before.Item2 with { Sources = await SourcesAsync(_b) }, await DigestAsync(_b));
    }

    [Fact]
    public async Task ProviderEventsHourglassDoesNotRecord_AnsweredSkippedWithReasons_NothingWritten()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        var opened = await PostAsync($"/inbound/{_a}/resend", ResendEvent("email.opened"),
            StandardHeaders("svix", "msg_opened", now, ResendSecretA, ResendEvent("email.opened")));
        var delayed = await PostAsync($"/inbound/{_a}/resend", ResendEvent("email.delivery_delayed"),
            StandardHeaders("svix", "msg_delayed", now, ResendSecretA, ResendEvent("email.delivery_delayed")));
        var batch = await PostSendGridAsync(SendGridBatch(), now);

        Assert.True(opened.Status == HttpStatusCode.OK, opened.ToString());
        Assert.Equal("skipped|msg_opened|email.opened|'email.opened' is not a delivery event Hourglass records", Outcomes(opened.Body).Single());
        Assert.Equal("skipped|msg_delayed|email.delivery_delayed|delivery delayed: Resend is still retrying (email.bounced follows if it gives up)",
            Outcomes(delayed.Body).Single());
        Assert.True(batch.Status == HttpStatusCode.OK, batch.ToString());
        Assert.Equal(
            [
                "skipped|c2cx|processed|'processed' is not a delivery event Hourglass records",
                "skipped|c2cy|deferred|deferred: SendGrid is still retrying (bounce or delivered follows)",
                "skipped||bounce|no sg_event_id: without it a retry could not be told from a new event",
            ],
            Outcomes(batch.Body));
        Assert.Equal((0, 0, 3), Counts(batch.Body));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_delivery_events"));
    }

    [Fact]
    public async Task InboundList_ShowsIdsUrlsAndSignedHeaders_NeverTheSecret_AndSetRefusesASecretGivenAsItsName()
    {
        var list = await HourglassProcess.RunAsync(
            new Dictionary<string, string?> { ["INBOUND_A_SECRET"] = SecretA, ["HOURGLASS_PUBLIC_URL"] = "https://hourglass.acme.example/" },
            "inbound", "list", "--tenant", "Inbound A", "--database", ConnectionString);

        Assert.True(list.ExitCode == 0, list.StandardError);
        var lines = list.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(["source", "id", "enabled", "secret", "ref", "url", "signed", "with"], lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var ids = (string)(await Db.ScalarAsync(
            "select string_agg(source || '=' || id, ',' order by source) from public.inbound_sources where tenant_id = $1", _a))!;
        var id = ids.Split(',').ToDictionary(p => p.Split('=')[0], p => p.Split('=')[1]);
        Assert.Equal(
            [
                ["hourglass", id["hourglass"], "yes", "INBOUND_A_SECRET", $"https://hourglass.acme.example/inbound/{_a}/hourglass", "webhook-id,", "webhook-timestamp,", "webhook-signature"],
                ["resend", id["resend"], "yes", "INBOUND_A_RESEND", $"https://hourglass.acme.example/inbound/{_a}/resend", "svix-id,", "svix-timestamp,", "svix-signature"],
                ["sendgrid", id["sendgrid"], "yes", "INBOUND_A_SENDGRID", $"https://hourglass.acme.example/inbound/{_a}/sendgrid",
                    "X-Twilio-Email-Event-Webhook-Signature,", "X-Twilio-Email-Event-Webhook-Timestamp"],
            ],
            lines[1..].Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)));
        Assert.DoesNotContain(SecretA, list.StandardOutput, StringComparison.Ordinal);

        foreach (var (arguments, error) in new (string[] Arguments, string Error)[]
                 {
                     (["--source", "hourglass", "--secret-ref", SecretA], "give the NAME of the environment variable"),
                     (["--source", "hourglass", "--secret-ref", "ACME-SECRET"], "give the NAME of the environment variable"),
                     (["--source", "hourglass"], "--secret-ref: required"),
                     (["--source", "mailgun", "--secret-ref", "X"], "--source: must be one of hourglass, resend, sendgrid"),
                 })
        {
            var refused = await HourglassProcess.RunAsync(["inbound", "set", "--tenant", "Inbound A", .. arguments, "--database", ConnectionString]);
            Assert.True(refused.ExitCode != 0, string.Join(' ', arguments));
            Assert.Contains(error, refused.StandardError, StringComparison.Ordinal);
            Assert.DoesNotContain(SecretA, refused.StandardError, StringComparison.Ordinal);
        }

        Assert.Equal(ids, await Db.ScalarAsync(
            "select string_agg(source || '=' || id, ',' order by source) from public.inbound_sources where tenant_id = $1 and secret_ref like 'INBOUND_A_%'", _a));
    }

    private sealed record TenantDigest(string Events, string Suppressions, string Sources, string Outbox);

    private async Task<TenantDigest> DigestAsync(Guid tenant) => new(
        await RowsAsync("message_delivery_events", tenant), await RowsAsync("message_suppressions", tenant), await SourcesAsync(tenant),
        await RowsAsync("message_outbox", tenant));

    private Task<string> SourcesAsync(Guid tenant) => RowsAsync("inbound_sources", tenant);

    private async Task<string> RowsAsync(string table, Guid tenant) =>
        (string?)await Db.ScalarAsync($"select string_agg(to_jsonb(t)::text, ',' order by to_jsonb(t)::text) from public.{table} t where tenant_id = $1", tenant) ?? "";

    private async Task InboundAsync(params string[] arguments)
    {
        var result = await HourglassProcess.RunAsync(["inbound", .. arguments, "--database", ConnectionString]);
        Assert.True(result.ExitCode == 0, $"inbound {string.Join(' ', arguments)}: {result.StandardOutput}{result.StandardError}");
    }

    private static string Batch(params (string Id, string Type)[] events) => new JsonObject
    {
        ["events"] = new JsonArray(events.Select(e => (JsonNode)new JsonObject
        {
            ["id"] = e.Id,
            ["type"] = e.Type,
            ["occurred_at"] = "2026-12-07T10:15:00Z",
            ["message"] = new JsonObject { ["outbox_id"] = "0b5a7c3e-4d1f-4a8e-9c2b-6f0e1d2c3b4a" },
            ["recipient"] = "pat@client.example",
        }).ToArray()),
    }.ToJsonString();

    private static string ResendEvent(string type) => $$$"""
        {"type": "{{{type}}}", "created_at": "2026-12-07T10:15:02.126Z",
         "data": {"email_id": "56761188-7520-42d8-8898-ff6fc54ce618", "to": ["pat@client.example"], "subject": "Renewal"}}
        """;

    private static string SendGridBatch() => """
        [{"email": "pat@client.example", "timestamp": 1796638500, "event": "processed", "sg_event_id": "c2cx"},
         {"email": "pat@client.example", "timestamp": 1796638501, "event": "deferred", "response": "421 later", "sg_event_id": "c2cy"},
         {"email": "pat@client.example", "timestamp": 1796638502, "event": "bounce", "type": "bounce"}]
        """;

    private static Dictionary<string, string> StandardHeaders(string prefix, string id, long timestamp, string secret, string body) => new()
    {
        [$"{prefix}-id"] = id,
        [$"{prefix}-timestamp"] = timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture),
        [$"{prefix}-signature"] = StandardWebhooks.Sign(secret, id, timestamp, body),
    };

    private Task<ApiResponse> PostHourglassAsync(Guid? tenant, string body, string secret, long timestamp) =>
        PostAsync($"/inbound/{(tenant is { } id ? id.ToString() : "not-a-tenant")}/hourglass", body, StandardHeaders("webhook", "evt_batch", timestamp, secret, body));

    private Task<ApiResponse> PostSendGridAsync(string body, long timestamp, ECDsa? key = null)
    {
        var stamp = timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var signature = (key ?? _sendGridKey).SignData(Encoding.UTF8.GetBytes(stamp + body), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        return PostAsync($"/inbound/{_a}/sendgrid", body, new Dictionary<string, string>
        {
            ["X-Twilio-Email-Event-Webhook-Signature"] = Convert.ToBase64String(signature),
            ["X-Twilio-Email-Event-Webhook-Timestamp"] = stamp,
        });
    }

    [Fact]
    public async Task PublicRoutes_AFloodFromOneAddress_429WithRetryAfterBeforeAnySignatureWork_NothingWritten()
    {
        // A second server with a public limit of 2 a second (a bucket of 4): 30 forged posts at once from loopback.
        await using var limited = await ApiServer.StartAsync(ConnectionString, new Dictionary<string, string?>
        {
            ["INBOUND_A_SECRET"] = SecretA,
            ["HOURGLASS_PUBLIC_RATE_LIMIT"] = "2",
            ["HOURGLASS_UNSUBSCRIBE_SECRET"] = new string('u', 40),
            ["HOURGLASS_PUBLIC_URL"] = "http://127.0.0.1",
        });
        var burst = await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => limited.SendAsync(HttpMethod.Post, $"/inbound/{_a}/hourglass", token: null,
            configure: request => request.Content = new StringContent("""{"events": []}""", Encoding.UTF8, "application/json"))));
        var unsubscribe = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => limited.SendAsync(HttpMethod.Get, "/unsubscribe/forged", token: null)));

        // The first few reached the signature check (401); the rest were turned away, each saying which limit and when to retry.
        var codes = string.Join(", ", burst.Select(r => r.Code).Order());
        Assert.All(burst, r => Assert.True(r.Code is 401 or 429, codes));
        Assert.InRange(burst.Count(r => r.Code == 401), 1, 10);
        var refused = burst.Where(r => r.Code == 429).ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, r =>
        {
            Assert.Equal("1", r.Headers.RetryAfter?.ToString());
            Assert.Contains("requests a second from this address (HOURGLASS_PUBLIC_RATE_LIMIT)", r.Body, StringComparison.Ordinal);
        });
        // The unsubscribe page shares the address's bucket (a forged token is otherwise a 400); the first server still answers.
        Assert.All(unsubscribe, r => Assert.True(r.Code is 400 or 429, r.ToString()));
        Assert.Contains(unsubscribe, r => r.Code == 429 && r.Body.Contains("HOURGLASS_PUBLIC_RATE_LIMIT", StringComparison.Ordinal));
        Assert.Equal(401, (await PostAsync($"/inbound/{_a}/hourglass", """{"events": []}""")).Code);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_delivery_events"));
    }

    private Task<ApiResponse> PostAsync(string path, string body, IReadOnlyDictionary<string, string>? headers = null) =>
        Server.SendAsync(HttpMethod.Post, path, token: null, configure: request =>
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
            foreach (var (name, value) in headers ?? new Dictionary<string, string>())
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        });

    private static IEnumerable<string> Outcomes(string body) =>
        JsonNode.Parse(body)!["events"]!.AsArray().Select(e => $"{e!["status"]}|{e["id"]}|{e["source_type"]}|{e["reason"]}");

    private static (int Recorded, int Duplicates, int Skipped) Counts(string body)
    {
        var json = JsonNode.Parse(body)!;
        return ((int)json["recorded"]!, (int)json["duplicates"]!, (int)json["skipped"]!);
    }
}
