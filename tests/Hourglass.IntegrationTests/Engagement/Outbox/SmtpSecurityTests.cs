using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Hourglass.Engagement.Outbox;
using Hourglass.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// Email through a relay that speaks TLS (STARTTLS or TLS on connect) with a self-signed certificate and requires a
/// login, through the real dispatcher and the channel row: a pinned certificate and the right password deliver over an
/// encrypted, authenticated session; a wrong password is a recorded, retried failure; a certificate that is neither
/// trusted nor pinned is refused before the password or the message leaves.
/// </summary>
public sealed class SmtpSecurityTests : DatabaseTest
{
    private const string PasswordRef = "HG_TEST_SMTP_PASSWORD";
    private const string User = "agent";
    private const string Password = "correct horse battery staple";
    private const string From = "agent@acme.example";
    private static readonly DateTimeOffset s_t0 = new(2026, 11, 2, 9, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _clock = new(s_t0);
    private readonly HttpClient _http = new();
    private readonly Dictionary<string, string> _secrets = new() { [PasswordRef] = Password };
    private readonly X509Certificate2 _certificate = LoopbackSmtpServer.CreateSelfSignedCertificate();

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_t0);
    }

    protected override Task TearDownAsync()
    {
        _http.Dispose();
        _certificate.Dispose();
        return Task.CompletedTask;
    }

    [Theory]
    [InlineData("starttls")]
    [InlineData("auto")]
    public async Task StartTlsWithLogin_PinnedCertificate_DeliveredOverEncryptedAuthenticatedSession(string security)
    {
        using var smtp = new LoopbackSmtpServer(SmtpTlsMode.StartTls, _certificate, new NetworkCredential(User, Password));
        var tenant = await TenantWithEmailAsync(smtp.Port, security, LoopbackSmtpServer.Sha256Fingerprint(_certificate));
        var id = await EnqueueEmailAsync(tenant, $"k-starttls-{security}");

        Assert.Equal(1, await Dispatcher().DispatchOnceAsync(default));

        var received = Assert.Single(smtp.Sessions);
        Assert.True(received.Encrypted, "the session was not encrypted");
        Assert.True(received.Protocol is SslProtocols.Tls12 or SslProtocols.Tls13, $"negotiated {received.Protocol}");
        Assert.Equal(User, received.AuthenticatedUser);
        Assert.Equal(SmtpTransport.MessageIdFor(id, From), received.Message.MessageId);
        Assert.Equal([(User, true)], smtp.LoginAttempts);
        Assert.Equal(("sent", 1), await StateAsync(id));
        Assert.Equal([(1, "sent", (int?)250, (string?)null)], await AttemptsAsync(id));
    }

    [Fact]
    public async Task ImplicitTlsWithLogin_PinnedCertificate_Delivered()
    {
        using var smtp = new LoopbackSmtpServer(SmtpTlsMode.Implicit, _certificate, new NetworkCredential(User, Password));
        var tenant = await TenantWithEmailAsync(smtp.Port, "tls", LoopbackSmtpServer.Sha256Fingerprint(_certificate));
        var id = await EnqueueEmailAsync(tenant, "k-implicit");

        Assert.Equal(1, await Dispatcher().DispatchOnceAsync(default));

        var received = Assert.Single(smtp.Sessions);
        Assert.True(received.Encrypted, "the session was not encrypted");
        Assert.Equal(User, received.AuthenticatedUser);
        Assert.Equal(("sent", 1), await StateAsync(id));
    }

    [Fact]
    public async Task WrongPassword_FailedAttemptRecordedWith535AndRetried_DeliveredOncePasswordFixed()
    {
        using var smtp = new LoopbackSmtpServer(SmtpTlsMode.StartTls, _certificate, new NetworkCredential(User, Password));
        var tenant = await TenantWithEmailAsync(smtp.Port, "starttls", LoopbackSmtpServer.Sha256Fingerprint(_certificate));
        var id = await EnqueueEmailAsync(tenant, "k-wrong-password");
        _secrets[PasswordRef] = "not the password";

        Assert.Equal(1, await Dispatcher().DispatchOnceAsync(default));

        Assert.Empty(smtp.Accepted);
        // MailKit tries each mechanism the relay offers (PLAIN, then LOGIN); the relay refuses each.
        Assert.NotEmpty(smtp.LoginAttempts);
        Assert.All(smtp.LoginAttempts, a => Assert.Equal((User, false), a));
        // A refused login is the channel's problem, not the message's: transient (retried), though 535 is a 5xx.
        Assert.Equal(("pending", 1), await StateAsync(id));
        var attempt = Assert.Single(await AttemptsAsync(id));
        Assert.Equal((1, "transient_error", (int?)535), (attempt.Attempt, attempt.Outcome, attempt.ResponseCode));
        Assert.Contains($"SMTP login as '{User}' refused", attempt.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("not the password", attempt.Error, StringComparison.Ordinal);

        // The operator fixes the secret; the next attempt after the backoff delivers.
        _secrets[PasswordRef] = Password;
        await AdvanceAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(1, await Dispatcher().DispatchOnceAsync(default));
        Assert.Equal(("sent", 2), await StateAsync(id));
        Assert.Equal(User, Assert.Single(smtp.Sessions).AuthenticatedUser);
    }

    [Theory]
    [InlineData(SmtpTlsMode.StartTls, "starttls", false)]
    [InlineData(SmtpTlsMode.StartTls, "starttls", true)]
    [InlineData(SmtpTlsMode.Implicit, "tls", false)]
    [InlineData(SmtpTlsMode.Implicit, "tls", true)]
    public async Task UntrustedCertificate_RefusedBeforeLogin_TransientErrorNothingDelivered(SmtpTlsMode mode, string security, bool pinAnotherCertificate)
    {
        // Not pinned: validated normally, and a self-signed certificate is not trusted. Pinned to another certificate:
        // the relay's does not match.
        using var other = LoopbackSmtpServer.CreateSelfSignedCertificate("another-relay");
        using var smtp = new LoopbackSmtpServer(mode, _certificate, new NetworkCredential(User, Password));
        var tenant = await TenantWithEmailAsync(smtp.Port, security, pinAnotherCertificate ? LoopbackSmtpServer.Sha256Fingerprint(other) : null);
        var id = await EnqueueEmailAsync(tenant, "k-untrusted");

        Assert.Equal(1, await Dispatcher().DispatchOnceAsync(default));

        Assert.Empty(smtp.Accepted);
        Assert.Empty(smtp.LoginAttempts);
        Assert.Equal(("pending", 1), await StateAsync(id));
        var attempt = Assert.Single(await AttemptsAsync(id));
        Assert.Equal((1, "transient_error", (int?)null), (attempt.Attempt, attempt.Outcome, attempt.ResponseCode));
        Assert.StartsWith("TLS refused:", attempt.Error, StringComparison.Ordinal);
        if (pinAnotherCertificate)
        {
            Assert.Contains($"SHA-256 {LoopbackSmtpServer.Sha256Fingerprint(_certificate)}, not the pinned {LoopbackSmtpServer.Sha256Fingerprint(other)}",
                attempt.Error, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains("smtp_tls_pin_sha256", attempt.Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task PinnedCertificateWithAuto_RelayWithoutTls_RefusedNotSentInPlainText()
    {
        using var smtp = new LoopbackSmtpServer();
        var tenant = await TenantWithEmailAsync(smtp.Port, "auto", LoopbackSmtpServer.Sha256Fingerprint(_certificate), username: null);
        var id = await EnqueueEmailAsync(tenant, "k-pinned-plain");

        Assert.Equal(1, await Dispatcher().DispatchOnceAsync(default));

        Assert.Empty(smtp.Accepted);
        Assert.Equal(("pending", 1), await StateAsync(id));
        Assert.Contains("STARTTLS", Assert.Single(await AttemptsAsync(id)).Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("email", "none", "0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("email", "starttls", "not-hex")]
    [InlineData("email", "starttls", "abcd")]
    [InlineData("webhook", "auto", "0000000000000000000000000000000000000000000000000000000000000000")]
    public async Task Insert_BadPin_CheckConstraintRefuses(string channel, string security, string pin)
    {
        var tenant = await Db.CreateTenantAsync();

        var error = await Assert.ThrowsAsync<Npgsql.PostgresException>(() => Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, webhook_url, smtp_host, smtp_port, smtp_security, smtp_from, secret_ref, smtp_tls_pin_sha256)
            values ($1, $2, 'https://hooks.example/x', '127.0.0.1', 25, $3, 'agent@acme.example', 'REF', $4)
            """, tenant, channel, security, pin));

        Assert.Equal(Npgsql.PostgresErrorCodes.CheckViolation, error.SqlState);
    }

    private OutboxDispatcher Dispatcher()
    {
        var options = new OutboxDispatcherOptions
        {
            WorkerId = "smtp-security",
            BaseDelay = TimeSpan.FromMinutes(1),
            MaxDelay = TimeSpan.FromMinutes(10),
            VisibilityTimeout = TimeSpan.FromMinutes(2),
            SendTimeout = TimeSpan.FromSeconds(10),
        };
        return new OutboxDispatcher(DataSource, OutboxDispatcher.DefaultTransports(_http, options, _clock), _clock, options,
            name => _secrets.GetValueOrDefault(name), new Random(7));
    }

    private async Task AdvanceAsync(TimeSpan by)
    {
        _clock.Advance(by);
        await Db.FreezeTimeAsync(_clock.GetUtcNow());
    }

    private async Task<Guid> TenantWithEmailAsync(int port, string security, string? pin, string? username = User)
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_username, smtp_from, secret_ref, smtp_tls_pin_sha256)
            values ($1, 'email', '127.0.0.1', $2, $3, $4, $5, $6, $7)
            """, tenant, port, security, username, From, username is null ? null : PasswordRef, pin);
        return tenant;
    }

    private async Task<Guid> EnqueueEmailAsync(Guid tenant, string key)
    {
        await using var connection = await Db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var id = await OutboxWriter.EnqueueAsync(connection, transaction,
            new NewMessage(tenant, key, MessageChannel.Email, "pat@client.example", "Renewal", "hello"), default);
        await transaction.CommitAsync();
        return id!.Value;
    }

    private async Task<(string Status, int Attempts)> StateAsync(Guid id)
    {
        await using var command = Db.DataSource.CreateCommand("select status, attempts from public.message_outbox where id = $1");
        command.Parameters.Add(new() { Value = id });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetString(0), reader.GetInt32(1));
    }

    private async Task<List<(int Attempt, string Outcome, int? ResponseCode, string? Error)>> AttemptsAsync(Guid id)
    {
        await using var command = Db.DataSource.CreateCommand(
            "select attempt, outcome, response_code, error from public.message_outbox_attempts where message_id = $1 order by attempt, attempted_at");
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
