using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// A webhook receiver on 127.0.0.1 that verifies each request's Standard Webhooks signature (computed here from the
/// spec, independently of the code under test) and counts deliveries by webhook-id. The status it answers comes from
/// <see cref="Respond"/>. (LoopbackHttpServer always answers 200; retries need 5xx and 4xx.)
/// </summary>
internal sealed class WebhookReceiver : IDisposable
{
    private readonly HttpListener _listener;
    private readonly Task _loop;
    private readonly byte[] _key;

    public sealed record Delivery(string Id, string Timestamp, string Signature, string Body, bool SignatureValid, int AnsweredWith);

    public WebhookReceiver(string secret, Func<int, int>? respond = null)
    {
        _key = Convert.FromBase64String(secret["whsec_".Length..]);
        Respond = respond ?? (_ => 200);
        // HttpListener cannot bind port 0, so a free port is probed first; another socket (a test's client connection)
        // may take it before we bind, so a few tries.
        for (var attempt = 1; ; attempt++)
        {
            int port;
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                port = ((IPEndPoint)probe.LocalEndpoint).Port;
            }

            var listener = new HttpListener();
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                listener.Start();
            }
            catch (HttpListenerException) when (attempt < 10)
            {
                listener.Close();
                continue;
            }

            _listener = listener;
            Url = $"http://127.0.0.1:{port}/hooks";
            break;
        }

        _loop = Task.Run(LoopAsync);
    }

    public string Url { get; }

    /// <summary>Given the 1-based number of the request, the status to answer.</summary>
    public Func<int, int> Respond { get; set; }

    public TimeSpan Delay { get; set; }

    public ConcurrentQueue<Delivery> Deliveries { get; } = new();

    /// <summary>Deliveries the receiver accepted (2xx), by webhook-id: what a deduping receiver acts on.</summary>
    public Dictionary<string, int> AcceptedById() =>
        Deliveries.Where(d => d.AnsweredWith is >= 200 and < 300).GroupBy(d => d.Id).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>
    /// How many messages a receiver that dedupes as Standard Webhooks asks would have acted on: deliveries it accepted
    /// with a valid signature, each webhook-id once. A redelivery with an id already seen is acknowledged and ignored.
    /// </summary>
    public int ActedOn => _actedOn;

    private readonly ConcurrentDictionary<string, bool> _seen = new(StringComparer.Ordinal);
    private int _count;
    private int _actedOn;

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
                var body = await reader.ReadToEndAsync();
                var id = context.Request.Headers["webhook-id"] ?? "";
                var timestamp = context.Request.Headers["webhook-timestamp"] ?? "";
                var signature = context.Request.Headers["webhook-signature"] ?? "";
                var expected = "v1," + Convert.ToBase64String(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}")));
                var status = Respond(Interlocked.Increment(ref _count));
                if (Delay > TimeSpan.Zero)
                {
                    await Task.Delay(Delay);
                }

                var valid = signature.Split(' ').Contains(expected);
                if (valid && status is >= 200 and < 300 && _seen.TryAdd(id, true))
                {
                    Interlocked.Increment(ref _actedOn);
                }

                Deliveries.Enqueue(new Delivery(id, timestamp, signature, body, valid, status));
                context.Response.StatusCode = status;
                context.Response.Close();
            });
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
