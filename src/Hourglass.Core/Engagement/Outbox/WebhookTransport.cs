using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Hourglass.Engagement.Outbox;

/// <summary>
/// POSTs a message as JSON to its destination URL, signed per Standard Webhooks. The outbox id is the
/// <c>webhook-id</c> on every attempt, so a receiver that dedupes on it sees each message once however often it
/// is delivered. 2xx is sent; 408, 429, 5xx, timeouts and network errors are retried; any other status (other
/// 4xx, and 3xx: redirects are not followed) is permanent.
/// </summary>
internal sealed class WebhookTransport(HttpClient http, TimeProvider time, TimeSpan timeout) : IMessageTransport
{
    public string Channel => MessageChannel.Webhook;

    public async Task<DeliveryResult> SendAsync(OutboxMessage message, string? secret, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(secret))
        {
            return DeliveryResult.Transient("the tenant's webhook signing secret is not available to this worker (message_channels.secret_ref)");
        }

        var id = message.Id.ToString();
        var body = Body(message);
        var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, message.Destination)
        {
            Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        request.Headers.Add(StandardWebhooks.IdHeader, id);
        request.Headers.Add(StandardWebhooks.TimestampHeader, timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.Add(StandardWebhooks.SignatureHeader, StandardWebhooks.Sign(secret, id, timestamp, body));

        // A network deadline in real time, not the injected clock: a simulated clock must not time out a real socket.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            return Classify(response.StatusCode, response.Headers.TryGetValues("x-request-id", out var ids) ? ids.FirstOrDefault() : null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return DeliveryResult.Transient($"no response within {timeout.TotalSeconds:0.#} s");
        }
        catch (HttpRequestException ex)
        {
            return DeliveryResult.Transient($"{ex.HttpRequestError}: {ex.Message}");
        }
    }

    internal static DeliveryResult Classify(HttpStatusCode status, string? providerMessageId = null)
    {
        var code = (int)status;
        return code switch
        {
            >= 200 and < 300 => DeliveryResult.Success(code, providerMessageId),
            408 or 429 or >= 500 => DeliveryResult.Transient($"HTTP {code} {status}", code),
            _ => DeliveryResult.PermanentFailure($"HTTP {code} {status}: the receiver refused the message", code),
        };
    }

    // The same bytes on every attempt (created_at, not the send time), so a receiver may also dedupe on content.
    internal static string Body(OutboxMessage message) => new JsonObject
    {
        ["type"] = "hourglass.message",
        ["timestamp"] = message.CreatedAt.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture),
        ["data"] = new JsonObject
        {
            ["id"] = message.Id.ToString(),
            ["tenant_id"] = message.TenantId.ToString(),
            ["idempotency_key"] = message.IdempotencyKey,
            ["subject"] = message.Subject,
            ["body"] = message.Body,
            ["payload"] = message.Payload.DeepClone(),
        },
    }.ToJsonString();
}
