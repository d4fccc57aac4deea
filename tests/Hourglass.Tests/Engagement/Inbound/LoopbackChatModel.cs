using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Hourglass.Tests.Engagement.Inbound;

/// <summary>
/// An OpenAI-compatible chat completions endpoint on 127.0.0.1 (a real HTTP listener): each request is recorded and
/// answered with the assistant text the test's responder gives, or with the status it gives instead.
/// </summary>
internal sealed class LoopbackChatModel : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;

    public LoopbackChatModel(Func<JsonNode, Task<(HttpStatusCode Status, string Content)>> respond)
    {
        // HttpListener cannot bind port 0: a free port is probed first.
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        BaseUrl = new Uri($"http://127.0.0.1:{port}/v1");
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _loop = Task.Run(async () =>
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                _ = Task.Run(() => AnswerAsync(context, respond));
            }
        });
    }

    public Uri BaseUrl { get; }

    public ConcurrentQueue<(string Path, JsonNode Body)> Requests { get; } = new();

    private async Task AnswerAsync(HttpListenerContext context, Func<JsonNode, Task<(HttpStatusCode Status, string Content)>> respond)
    {
        try
        {
            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            var body = JsonNode.Parse(await reader.ReadToEndAsync())!;
            Requests.Enqueue((context.Request.Url!.AbsolutePath, body));
            var (status, content) = await respond(body);
            var payload = status == HttpStatusCode.OK
                ? new JsonObject
                {
                    ["id"] = "chatcmpl-test",
                    ["object"] = "chat.completion",
                    ["created"] = 1_764_000_000,
                    ["model"] = (string?)body["model"],
                    ["choices"] = new JsonArray(new JsonObject
                    {
                        ["index"] = 0,
                        ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = content },
                        ["finish_reason"] = "stop",
                    }),
                    ["usage"] = new JsonObject { ["prompt_tokens"] = 10, ["completion_tokens"] = 10, ["total_tokens"] = 20 },
                }
                : new JsonObject { ["error"] = new JsonObject { ["message"] = content, ["type"] = "invalid_request_error" } };
            context.Response.StatusCode = (int)status;
            context.Response.ContentType = "application/json";
            var bytes = Encoding.UTF8.GetBytes(payload.ToJsonString());
            await context.Response.OutputStream.WriteAsync(bytes);
            context.Response.Close();
        }
        catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or IOException)
        {
            // The client gave up (the classifier's timeout): nothing to answer.
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
