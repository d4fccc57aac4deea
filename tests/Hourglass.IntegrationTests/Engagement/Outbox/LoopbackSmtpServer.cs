using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MimeKit;
using SmtpServer;
using SmtpServer.Authentication;
using SmtpServer.Net;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>How the loopback relay speaks TLS.</summary>
public enum SmtpTlsMode
{
    /// <summary>Plain SMTP only.</summary>
    None,

    /// <summary>Plain SMTP that offers STARTTLS (port 587 style).</summary>
    StartTls,

    /// <summary>TLS from the first byte (port 465 style).</summary>
    Implicit,
}

/// <summary>
/// An SMTP server on 127.0.0.1 (the SmtpServer package) that keeps each message it accepts, by Message-Id. Optionally
/// it offers STARTTLS or speaks implicit TLS with a given certificate, and requires AUTH (PLAIN or LOGIN) with one user
/// and password — AUTH is then offered only on an encrypted session, as real relays do.
/// </summary>
internal sealed class LoopbackSmtpServer : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly SmtpServer.SmtpServer _server;
    private readonly Task _running;
    private int _count;

    /// <summary>A message the server accepted, with what it knew about the session that delivered it.</summary>
    public sealed record Received(MimeMessage Message, bool Encrypted, SslProtocols Protocol, string? AuthenticatedUser);

    public LoopbackSmtpServer(SmtpTlsMode tls = SmtpTlsMode.None, X509Certificate2? certificate = null, NetworkCredential? requiredLogin = null)
    {
        if (tls != SmtpTlsMode.None && certificate is null)
        {
            throw new ArgumentException("TLS needs a certificate", nameof(certificate));
        }

        var options = new SmtpServerOptionsBuilder()
            .ServerName("localhost")
            .Endpoint(e =>
            {
                // Port 0: the OS picks a free port as it binds, and the listener reports it (no probe-then-bind race with
                // the other tests' sockets).
                e.Endpoint(new IPEndPoint(IPAddress.Loopback, 0));
                if (tls != SmtpTlsMode.None)
                {
                    // With a certificate and IsSecure false the server offers STARTTLS; with IsSecure true it is TLS on connect.
                    e.Certificate(certificate!).IsSecure(tls == SmtpTlsMode.Implicit);
                }

                if (requiredLogin is not null)
                {
                    e.AuthenticationRequired(true).AllowUnsecureAuthentication(false);
                }
            })
            .Build();
        var services = new SmtpServer.ComponentModel.ServiceProvider();
        var listeners = new EndpointListenerFactory();
        var bound = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        listeners.EndpointStarted += (_, e) => bound.TrySetResult(((IPEndPoint)e.LocalEndPoint).Port);
        services.Add(listeners);
        services.Add(new Store(this));
        if (requiredLogin is not null)
        {
            services.Add(new DelegatingUserAuthenticator((user, password) =>
            {
                var accepted = user == requiredLogin.UserName && password == requiredLogin.Password;
                LoginAttempts.Enqueue((user, accepted));
                return accepted;
            }));
        }

        _server = new SmtpServer.SmtpServer(options, services);
        _running = _server.StartAsync(_stop.Token);
        if (Task.WhenAny(bound.Task, _running).Wait(TimeSpan.FromSeconds(10)) && bound.Task.IsCompletedSuccessfully)
        {
            Port = bound.Task.Result;
        }
        else
        {
            throw new InvalidOperationException("the loopback SMTP server did not start listening", _running.Exception);
        }
    }

    public int Port { get; }

    /// <summary>Given the 1-based number of the message, the reply to its DATA (null: accept).</summary>
    public Func<int, SmtpResponse?> Reject { get; set; } = _ => null;

    public ConcurrentQueue<MimeMessage> Accepted { get; } = new();

    /// <summary>Every accepted message with its session's encryption and login.</summary>
    public ConcurrentQueue<Received> Sessions { get; } = new();

    /// <summary>Every AUTH the server checked: the user given and whether the password matched.</summary>
    public ConcurrentQueue<(string User, bool Accepted)> LoginAttempts { get; } = new();

    public Dictionary<string, int> AcceptedByMessageId() => Accepted.GroupBy(m => m.MessageId ?? "").ToDictionary(g => g.Key, g => g.Count());

    /// <summary>
    /// A self-signed server certificate for 127.0.0.1 and localhost, valid for a day: no system trust store knows it,
    /// so a client validating certificates normally refuses it.
    /// </summary>
    public static X509Certificate2 CreateSelfSignedCertificate(string commonName = "hourglass-test-relay")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        // A round trip through PKCS#12 gives the private key a form every platform's TLS stack can use.
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>The SHA-256 fingerprint of a certificate's DER bytes, lower-case hex: what smtp_tls_pin_sha256 holds.</summary>
    public static string Sha256Fingerprint(X509Certificate2 certificate) => Convert.ToHexStringLower(certificate.GetCertHash(HashAlgorithmName.SHA256));

    public void Dispose()
    {
        _stop.Cancel();
        _server.Shutdown();
        try
        {
            _running.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // Cancelled on purpose.
        }

        _stop.Dispose();
    }

    private sealed class Store(LoopbackSmtpServer owner) : MessageStore
    {
        public override async Task<SmtpResponse> SaveAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer,
            CancellationToken cancellationToken)
        {
            if (owner.Reject(Interlocked.Increment(ref owner._count)) is { } refusal)
            {
                return refusal;
            }

            using var stream = new MemoryStream(buffer.ToArray());
            var message = await MimeMessage.LoadAsync(stream, cancellationToken);
            owner.Accepted.Enqueue(message);
            owner.Sessions.Enqueue(new Received(message, context.Pipe.IsSecure, context.Pipe.IsSecure ? context.Pipe.SslProtocol : SslProtocols.None,
                context.Authentication.IsAuthenticated ? context.Authentication.User : null));
            return SmtpResponse.Ok;
        }
    }
}
