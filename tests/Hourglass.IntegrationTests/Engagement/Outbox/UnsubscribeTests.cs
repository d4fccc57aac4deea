using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Hourglass.Engagement.Outbox;
using Hourglass.Engagement.Unsubscribe;
using Hourglass.IntegrationTests.Api;
using Hourglass.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// One-click unsubscribe (RFC 8058; docs/unsubscribe.md) end to end: the dispatcher sends an email through a loopback
/// SMTP relay, the test reads the List-Unsubscribe and List-Unsubscribe-Post headers back and uses the link against a
/// real <c>hourglass serve</c>: a GET changes nothing, the one-click POST opts the contact out once (a second POST
/// changes nothing), a message queued before the unsubscribe is then suppressed, not sent; a forged, altered, expired
/// or wrong-tenant link is refused and writes nothing.
/// </summary>
public sealed class UnsubscribeTests() : FrozenClockTest(s_t0)
{
    private const string UnsubscribeSecret = "unsubscribe-integration-secret-0123456789abcdef";

    // A Tuesday, 10:00 UTC: inside the default policy's business hours, so the dispatcher sends at once.
    private static readonly DateTimeOffset s_t0 = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task OneClick_LinkFromSentEmail_OptsOutOnce_QueuedMessageThenSuppressed_BadLinksRefusedWritingNothing()
    {
        using var smtp = new LoopbackSmtpServer();
        await using var server = await ApiServer.StartAsync(ConnectionString, new Dictionary<string, string?>
        {
            [UnsubscribeTokens.SecretVariable] = UnsubscribeSecret,
            [UnsubscribeTokens.PublicUrlVariable] = "https://hourglass.example",
        });
        // The links point at the server the test started; the tokens are checked there with the same secret.
        var tokens = new UnsubscribeTokens(Encoding.UTF8.GetBytes(UnsubscribeSecret), new Uri(server.BaseUrl), TimeSpan.FromDays(90), TimeProvider.System);
        var tenant = await TenantAsync(smtp.Port);
        var other = await TenantAsync(smtp.Port);
        var pat = await ContactAsync(tenant, "pat@client.example");
        var kim = await ContactAsync(tenant, "kim@client.example");

        var first = await EnqueueAsync(Email(tenant, "k-first", "pat@client.example", pat));
        await DispatchAllAsync(tokens);
        var sent = Assert.Single(smtp.Accepted);
        var header = sent.Headers["List-Unsubscribe"] ?? "";
        Assert.Equal("List-Unsubscribe=One-Click", sent.Headers["List-Unsubscribe-Post"]);
        Assert.StartsWith($"<{server.BaseUrl}/unsubscribe/", header, StringComparison.Ordinal);
        Assert.EndsWith(">", header, StringComparison.Ordinal);
        var link = header[1..^1];
        var (claims, _) = await tokens.ValidateAsync(link[(link.LastIndexOf('/') + 1)..]);
        Assert.Equal(new UnsubscribeClaims(tenant, pat, first), claims);

        // Queued before the unsubscribe: the send-time check must stop it.
        var queued = await EnqueueAsync(Email(tenant, "k-queued", "pat@client.example", pat));

        // A GET (what a mail scanner's prefetch does) shows the button and changes nothing.
        var page = await server.SendAsync(HttpMethod.Get, link, token: null);
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Contains("method=\"post\"", page.Body, StringComparison.Ordinal);
        Assert.Equal("||False", await OptOutAsync(pat));

        var posted = await OneClickAsync(server, link);
        Assert.Equal(HttpStatusCode.OK, posted.Status);
        Assert.Contains("unsubscribed", posted.Body, StringComparison.Ordinal);
        var recorded = await OptOutAsync(pat);
        Assert.Equal($"{s_t0:yyyy-MM-dd HH:mm:ss}+00|one_click_unsubscribe|True", recorded);
        var updatedAt = await Db.ScalarAsync("select updated_at from public.contacts where id = $1", pat);

        var again = await OneClickAsync(server, link);
        Assert.Equal(HttpStatusCode.OK, again.Status);
        Assert.Equal(recorded, await OptOutAsync(pat));
        Assert.Equal(updatedAt, await Db.ScalarAsync("select updated_at from public.contacts where id = $1", pat));
        // One event in the event store, however many clicks.
        Assert.Equal($"contact|{pat}|one_click_unsubscribe|{first}", await Db.ScalarAsync("""
            select string_agg(concat_ws('|', entity_type, entity_id, source, payload->>'message_id'), ',')
            from public.warehouse_events where tenant_id = $1 and event_type = 'unsubscribe'
            """, tenant));
        // And once on the message's history, beside its bounces and replies (docs/inbound.md).
        Assert.Equal($"one_click|unsubscribe|{first}|opted_out|pat@client.example", await Db.ScalarAsync("""
            select string_agg(concat_ws('|', source, event_type, message_id, effect, recipient), ',')
            from public.message_delivery_events where tenant_id = $1
            """, tenant));

        await DispatchAllAsync(tokens);
        Assert.Single(smtp.Accepted);
        Assert.Equal("suppressed|contact_opted_out", await Db.ScalarAsync("select status || '|' || suppressed_code from public.message_outbox where id = $1", queued));

        // Bad links, all for kim: none may write anything.
        var forged = new UnsubscribeTokens(Encoding.UTF8.GetBytes("not-the-server-secret-0123456789abcdefghij"), new Uri(server.BaseUrl), TimeSpan.FromDays(90), TimeProvider.System);
        var expired = new UnsubscribeTokens(Encoding.UTF8.GetBytes(UnsubscribeSecret), new Uri(server.BaseUrl), TimeSpan.FromDays(90),
            new FakeTimeProvider(TimeProvider.System.GetUtcNow() - TimeSpan.FromDays(91)));
        var good = tokens.Create(new UnsubscribeClaims(tenant, kim, first));
        var parts = good.Split('.');
        // The payload of another contact's token, with kim's token's signature.
        var tampered = $"{parts[0]}.{tokens.Create(new UnsubscribeClaims(tenant, pat, first)).Split('.')[1]}.{parts[2]}";
        var refusals = new (string Link, HttpStatusCode Status, string Detail)[]
        {
            (forged.UrlFor(forged.Create(new UnsubscribeClaims(tenant, kim, first))).AbsoluteUri, HttpStatusCode.BadRequest, "signature is not valid"),
            (tokens.UrlFor(tampered).AbsoluteUri, HttpStatusCode.BadRequest, "signature is not valid"),
            (expired.UrlFor(expired.Create(new UnsubscribeClaims(tenant, kim, first))).AbsoluteUri, HttpStatusCode.BadRequest, "expired"),
            (tokens.UrlFor("garbage").AbsoluteUri, HttpStatusCode.BadRequest, "malformed"),
            // Signed, but for a tenant that has no such contact.
            (tokens.UrlFor(tokens.Create(new UnsubscribeClaims(other, kim, first))).AbsoluteUri, HttpStatusCode.NotFound, "contact its tenant does not have"),
        };
        foreach (var (bad, status, detail) in refusals)
        {
            var refused = await OneClickAsync(server, bad);
            Assert.True(refused.Status == status, $"{bad}: {refused}");
            Assert.Equal("application/problem+json", refused.ContentType);
            Assert.Contains(detail, refused.Body, StringComparison.Ordinal);
            Assert.Equal(status == HttpStatusCode.NotFound ? HttpStatusCode.OK : status,
                (await server.SendAsync(HttpMethod.Get, bad, token: null)).Status);
        }

        // A POST without the RFC 8058 body is not a one-click unsubscribe.
        var noBody = await server.SendAsync(HttpMethod.Post, tokens.UrlFor(good).AbsoluteUri, token: null);
        Assert.Equal(HttpStatusCode.BadRequest, noBody.Status);
        var brokenForm = await server.SendAsync(HttpMethod.Post, tokens.UrlFor(good).AbsoluteUri, token: null, configure: request =>
            request.Content = new StringContent("--x\r\nnot a part", Encoding.UTF8, "multipart/form-data"));
        Assert.True(brokenForm.Status == HttpStatusCode.BadRequest, brokenForm.ToString());

        Assert.Equal("||False", await OptOutAsync(kim));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.contacts where opted_out_at is not null or do_not_contact"));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.warehouse_events where event_type = 'unsubscribe'"));
    }

    [Fact]
    public async Task Send_NotConfiguredOrToAnAccount_NoUnsubscribeHeaders()
    {
        using var smtp = new LoopbackSmtpServer();
        var tokens = new UnsubscribeTokens(Encoding.UTF8.GetBytes(UnsubscribeSecret), new Uri("https://hourglass.example"), TimeSpan.FromDays(90), TimeProvider.System);
        var tenant = await TenantAsync(smtp.Port);
        var pat = await ContactAsync(tenant, "pat@client.example");
        var account = await Db.CreateAccountAsync(tenant, "Globex");

        await EnqueueAsync(Email(tenant, "k-unconfigured", "pat@client.example", pat));
        await DispatchAllAsync(unsubscribe: null);
        await EnqueueAsync(new NewMessage(tenant, "k-account", MessageChannel.Email, "billing@globex.example", "Renewal", "hello",
            new JsonObject { ["target_type"] = "account", ["target_id"] = account.ToString() }));
        await DispatchAllAsync(tokens);

        Assert.Equal(2, smtp.Accepted.Count);
        Assert.All(smtp.Accepted, m => Assert.False(m.Headers.Contains("List-Unsubscribe")));
    }

    private static async Task<ApiResponse> OneClickAsync(ApiServer server, string link) =>
        await server.SendAsync(HttpMethod.Post, link, token: null, configure: request =>
            request.Content = new FormUrlEncodedContent([new KeyValuePair<string, string>("List-Unsubscribe", "One-Click")]));

    private async Task DispatchAllAsync(UnsubscribeTokens? unsubscribe)
    {
        var options = new OutboxDispatcherOptions { WorkerId = "unsubscribe-test", SendTimeout = TimeSpan.FromSeconds(10) };
        var dispatcher = new OutboxDispatcher(Db.DataSource, OutboxDispatcher.DefaultTransports(Http, options, Clock, unsubscribe), Clock, options,
            _ => null, new Random(7));
        while (await dispatcher.DispatchOnceAsync(default) > 0)
        {
        }
    }

    private async Task<string> OptOutAsync(Guid contact) =>
        (string)(await Db.ScalarAsync("""
            select concat_ws('|', coalesce(to_char(opted_out_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00', ''), coalesce(opted_out_source, ''),
                             case when do_not_contact then 'True' else 'False' end)
            from public.contacts where id = $1
            """, contact))!;

    private async Task<Guid> TenantAsync(int smtpPort)
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', '127.0.0.1', $2, 'none', 'agent@acme.example')
            """, tenant, smtpPort);
        return tenant;
    }

    private async Task<Guid> ContactAsync(Guid tenant, string email) =>
        (Guid)(await Db.ScalarAsync("insert into public.contacts (tenant_id, name, email) values ($1, $2, $3) returning id", tenant, email, email))!;

    private static NewMessage Email(Guid tenant, string key, string to, Guid contact) =>
        new(tenant, key, MessageChannel.Email, to, "Renewal", "hello", new JsonObject { ["target_type"] = "contact", ["target_id"] = contact.ToString() });

    private async Task<Guid> EnqueueAsync(NewMessage message) => (await Db.EnqueueMessageAsync(message))!.Value;
}
