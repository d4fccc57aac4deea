using System.Net;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>hourglass channels set / list / disable, run as an operator would: what is written, what is shown, what is refused.</summary>
public sealed class ChannelCommandsTests : DatabaseTest
{
    private const string Tenant = "Channel Co";
    private const string WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string SmtpPassword = "correct horse battery staple";

    private readonly HttpClient _http = new();
    private Guid _tenant;

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync(Tenant);
        // A weekday morning by the database clock: inside the default business hours the dispatcher checks before it sends.
        await Db.FreezeTimeAsync(new DateTimeOffset(2026, 11, 3, 10, 0, 0, TimeSpan.Zero));
    }

    protected override Task TearDownAsync()
    {
        _http.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task SetWebhookAndEmail_RowsWrittenAndListShowsThemWithoutSecrets()
    {
        await RunOkAsync("channels", "set", "--tenant", Tenant, "--channel", "webhook", "--url", "https://crm.acme.example/hooks/hourglass",
            "--secret-ref", "ACME_WEBHOOK_SECRET");
        var pin = string.Join(':', Enumerable.Range(0, 32).Select(i => (i * 7 % 256).ToString("X2", System.Globalization.CultureInfo.InvariantCulture)));
        await RunOkAsync("channels", "set", "--tenant", Tenant, "--channel", "email", "--smtp-host", "smtp.acme.example", "--smtp-port", "587",
            "--smtp-security", "starttls", "--smtp-username", "agent", "--smtp-from", "agent@acme.example", "--secret-ref", "ACME_SMTP_PASSWORD",
            "--smtp-tls-pin", pin);

        Assert.Equal("webhook|t|https://crm.acme.example/hooks/hourglass|||auto|||ACME_WEBHOOK_SECRET|", await RowAsync("webhook"));
        Assert.Equal($"email|t||smtp.acme.example|587|starttls|agent|agent@acme.example|ACME_SMTP_PASSWORD|{pin.Replace(":", "", StringComparison.Ordinal).ToLowerInvariant()}",
            await RowAsync("email"));

        // The secrets are in list's environment, as on a worker: list still shows only their names.
        var list = await HourglassProcess.RunAsync(
            new Dictionary<string, string?> { ["ACME_WEBHOOK_SECRET"] = WebhookSecret, ["ACME_SMTP_PASSWORD"] = SmtpPassword },
            "channels", "list", "--tenant", Tenant, "--database", ConnectionString);
        Assert.True(list.ExitCode == 0, list.StandardError);
        var lines = list.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(["channel", "enabled", "destination", "security", "secret", "ref"], lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["email", "yes", "smtp.acme.example:587,", "from", "agent@acme.example,", "login", "agent", "starttls,", "pinned",
                $"sha256:{pin.Replace(":", "", StringComparison.Ordinal).ToLowerInvariant()}", "ACME_SMTP_PASSWORD"],
            lines.Single(l => l.StartsWith("email", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["webhook", "yes", "https://crm.acme.example/hooks/hourglass", "https", "ACME_WEBHOOK_SECRET"],
            lines.Single(l => l.StartsWith("webhook", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain(WebhookSecret, list.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain(SmtpPassword, list.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Disable_ThenSetAgain_ChannelOffThenReplacedAndOnWithOneRow()
    {
        await RunOkAsync("channels", "set", "--tenant", Tenant, "--channel", "webhook", "--url", "https://old.acme.example/hooks", "--secret-ref", "OLD_SECRET");

        var disabled = await RunOkAsync("channels", "disable", "--tenant", Tenant, "--channel", "webhook");
        Assert.Contains("webhook channel disabled", disabled, StringComparison.Ordinal);
        Assert.Equal(false, await Db.ScalarAsync("select enabled from public.message_channels where tenant_id = $1 and channel = 'webhook'", _tenant));
        var list = await RunOkAsync("channels", "list", "--tenant", Tenant);
        Assert.Equal(["webhook", "no"], list.Split('\n').Single(l => l.StartsWith("webhook", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[..2]);

        await RunOkAsync("channels", "set", "--tenant", Tenant, "--channel", "webhook", "--url", "https://new.acme.example/hooks", "--secret-ref", "NEW_SECRET");
        Assert.Equal("webhook|t|https://new.acme.example/hooks|||auto|||NEW_SECRET|", await RowAsync("webhook"));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.message_channels where tenant_id = $1", _tenant));
    }

    [Fact]
    public async Task List_NoChannels_SaysHowToAddOne()
    {
        var output = await RunOkAsync("channels", "list", "--tenant", Tenant);

        Assert.Contains("has no channels; add one with 'hourglass channels set'", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SetWebhookOnLoopbackHttp_DispatcherDeliversThroughIt()
    {
        using var receiver = new WebhookReceiver(WebhookSecret);
        await RunOkAsync("channels", "set", "--tenant", Tenant, "--channel", "webhook", "--url", receiver.Url, "--secret-ref", "ACME_WEBHOOK_SECRET");
        var id = await EnqueueAsync(new NewMessage(_tenant, "k-cli-webhook", MessageChannel.Webhook, receiver.Url, "Renewal", "hello"));

        await Dispatcher(new() { ["ACME_WEBHOOK_SECRET"] = WebhookSecret }).DispatchOnceAsync(default);

        var delivery = Assert.Single(receiver.Deliveries);
        Assert.Equal(id.ToString(), delivery.Id);
        Assert.True(delivery.SignatureValid);
    }

    [Fact]
    public async Task SetEmailWithPinnedSelfSignedRelay_DispatcherDeliversOverTlsWithLogin()
    {
        using var certificate = LoopbackSmtpServer.CreateSelfSignedCertificate();
        using var smtp = new LoopbackSmtpServer(SmtpTlsMode.StartTls, certificate, new NetworkCredential("agent", SmtpPassword));
        // As openssl prints it: upper case, with colons.
        var pin = string.Join(':', Convert.FromHexString(LoopbackSmtpServer.Sha256Fingerprint(certificate)).Select(b => b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture)));
        await RunOkAsync("channels", "set", "--tenant", Tenant, "--channel", "email", "--smtp-host", "127.0.0.1", "--smtp-port",
            smtp.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--smtp-security", "starttls", "--smtp-username", "agent",
            "--smtp-from", "agent@acme.example", "--secret-ref", "ACME_SMTP_PASSWORD", "--smtp-tls-pin", pin);
        var id = await EnqueueAsync(new NewMessage(_tenant, "k-cli-email", MessageChannel.Email, "pat@client.example", "Renewal", "hello"));

        await Dispatcher(new() { ["ACME_SMTP_PASSWORD"] = SmtpPassword }).DispatchOnceAsync(default);

        var received = Assert.Single(smtp.Sessions);
        Assert.True(received.Encrypted);
        Assert.Equal("agent", received.AuthenticatedUser);
        Assert.Equal("sent", await Db.ScalarAsync("select status from public.message_outbox where id = $1", id));
    }

    public static TheoryData<string[], string> BadInput => new()
    {
        { ["--channel", "sms", "--url", "https://x.example/h", "--secret-ref", "S"], "--channel: must be 'webhook' or 'email' (got 'sms')" },
        { ["--channel", "webhook", "--url", "http://crm.acme.example/hooks", "--secret-ref", "S"], "--url: must be https; plain http only for a loopback host" },
        { ["--channel", "webhook", "--url", "ftp://crm.acme.example/hooks", "--secret-ref", "S"], "--url: 'ftp://crm.acme.example/hooks' is not an absolute https URL" },
        { ["--channel", "webhook", "--url", "crm.acme.example/hooks", "--secret-ref", "S"], "--url:" },
        { ["--channel", "webhook", "--url", "https://user:pw@crm.acme.example/hooks", "--secret-ref", "S"], "--url: must not carry a user name or password" },
        { ["--channel", "webhook", "--secret-ref", "S"], "--url: required for --channel webhook" },
        { ["--channel", "webhook", "--url", "https://crm.acme.example/hooks"], "--secret-ref: required for a webhook" },
        { ["--channel", "webhook", "--url", "https://crm.acme.example/hooks", "--secret-ref", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "--secret-ref: give the NAME" },
        { ["--channel", "webhook", "--url", "https://crm.acme.example/hooks", "--secret-ref", "my-secret"], "--secret-ref: give the NAME" },
        { ["--channel", "webhook", "--url", "https://crm.acme.example/hooks", "--secret-ref", "S", "--smtp-host", "smtp.acme.example"], "--smtp-host: only for --channel email" },
        { Email("--smtp-port", "0"), "--smtp-port: must be between 1 and 65535 (got 0)" },
        { Email("--smtp-port", "70000"), "--smtp-port: must be between 1 and 65535 (got 70000)" },
        { Email("--smtp-port", "submission"), "--smtp-port" },
        { Email("--smtp-from", "not-an-address"), "--smtp-from: 'not-an-address' is not a single email address" },
        { Email("--smtp-from", "Agent <agent@acme.example>"), "--smtp-from: 'Agent <agent@acme.example>' is not a single email address" },
        { Email("--smtp-host", "smtp acme example"), "--smtp-host: 'smtp acme example' is not a host name or IP address" },
        { Email("--smtp-security", "ssl"), "--smtp-security: must be one of auto, starttls, tls, none (got 'ssl')" },
        { Email("--smtp-tls-pin", "abcd"), "--smtp-tls-pin: must be a SHA-256 fingerprint" },
        { Email("--smtp-security", "none", "--smtp-tls-pin", new string('a', 64)), "--smtp-tls-pin: pins a TLS certificate; not with --smtp-security none" },
        { Email("--url", "https://crm.acme.example/hooks"), "--url: only for --channel webhook" },
        { ["--channel", "email", "--smtp-host", "smtp.acme.example", "--smtp-port", "587", "--smtp-from", "agent@acme.example", "--smtp-username", "agent"],
            "--secret-ref: required with --smtp-username" },
        { ["--channel", "email", "--smtp-port", "587", "--smtp-from", "agent@acme.example"], "--smtp-host: required for --channel email" },
    };

    [Theory]
    [MemberData(nameof(BadInput))]
    public async Task Set_BadInput_OneLineNamingTheOptionNothingWritten(string[] arguments, string expected)
    {
        // An existing channel must survive a refused replacement untouched.
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, webhook_url, secret_ref) values ($1, 'webhook', 'https://kept.acme.example/h', 'KEPT')
            on conflict (tenant_id, channel) do nothing
            """, _tenant);
        var before = await SnapshotAsync();

        var result = await HourglassProcess.RunAsync(["channels", "set", "--tenant", Tenant, .. arguments, "--database", ConnectionString]);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.StartsWith("hourglass: ", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(before, await SnapshotAsync());
    }

    [Theory]
    [InlineData(new[] { "channels", "set", "--tenant", "No Such Co", "--channel", "webhook", "--url", "https://x.example/h", "--secret-ref", "S" }, "--tenant: no tenant has the id or name 'No Such Co'")]
    [InlineData(new[] { "channels", "disable", "--tenant", Tenant, "--channel", "email" }, "--channel: tenant")]
    [InlineData(new[] { "channels", "disable", "--tenant", Tenant, "--channel", "fax" }, "--channel: must be 'webhook' or 'email' (got 'fax')")]
    public async Task OtherBadInput_OneLineNothingWritten(string[] arguments, string expected)
    {
        var result = await HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.message_channels"));
    }

    private static string[] Email(params string[] overrides)
    {
        var options = new Dictionary<string, string>
        {
            ["--channel"] = "email", ["--smtp-host"] = "smtp.acme.example", ["--smtp-port"] = "587", ["--smtp-from"] = "agent@acme.example",
        };
        for (var i = 0; i < overrides.Length; i += 2)
        {
            options[overrides[i]] = overrides[i + 1];
        }

        return [.. options.SelectMany(o => new[] { o.Key, o.Value })];
    }

    [Fact]
    public async Task SetAgain_WithoutThePinAndLogin_ReplacesAndSaysWhatItDropped()
    {
        var pin = string.Concat(Enumerable.Repeat("ab", 32));
        string[] email = ["channels", "set", "--tenant", Tenant, "--channel", "email", "--smtp-host", "smtp.acme.example", "--smtp-port", "587",
            "--smtp-security", "starttls", "--smtp-from", "agent@acme.example"];
        var first = await RunOkAsync([.. email, "--smtp-username", "agent", "--secret-ref", "ACME_SMTP_PASSWORD", "--smtp-tls-pin", pin]);
        Assert.DoesNotContain("no longer set", first, StringComparison.Ordinal);

        var second = await RunOkAsync(email);

        Assert.Contains($"This replaced the channel's previous settings: the TLS pin (sha256:{pin}), the login agent, the secret ref ACME_SMTP_PASSWORD " +
                        "no longer set (give it again to keep it).", second, StringComparison.Ordinal);
        Assert.Equal("email|t||smtp.acme.example|587|starttls||agent@acme.example||", await RowAsync("email"));
    }

    private async Task<string> RunOkAsync(params string[] arguments)
    {
        var result = await HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}: {result.StandardError}");
        return result.StandardOutput;
    }

    private async Task<string?> RowAsync(string channel) => (string?)await Db.ScalarAsync("""
        select concat_ws('|', channel, enabled, coalesce(webhook_url, ''), coalesce(smtp_host, ''), coalesce(smtp_port::text, ''), smtp_security,
                         coalesce(smtp_username, ''), coalesce(smtp_from, ''), coalesce(secret_ref, ''), coalesce(smtp_tls_pin_sha256, ''))
        from public.message_channels where tenant_id = $1 and channel = $2
        """, _tenant, channel);

    private async Task<string?> SnapshotAsync() => (string?)await Db.ScalarAsync(
        "select coalesce(jsonb_agg(to_jsonb(k) order by k.id)::text, '[]') from public.message_channels k");

    private OutboxDispatcher Dispatcher(Dictionary<string, string> secrets)
    {
        var options = new OutboxDispatcherOptions { WorkerId = "cli-test", SendTimeout = TimeSpan.FromSeconds(10) };
        return new OutboxDispatcher(DataSource, OutboxDispatcher.DefaultTransports(_http, options, TimeProvider.System), TimeProvider.System, options, name => secrets.GetValueOrDefault(name));
    }

    private async Task<Guid> EnqueueAsync(NewMessage message) => (await Db.EnqueueMessageAsync(message))!.Value;
}
