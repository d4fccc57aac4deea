using System.ClientModel;
using Hourglass.Cycles;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using OpenAI;

namespace Hourglass.Server.Cli;

/// <summary>
/// The reflection's summary writer from configuration: the template unless HOURGLASS_LLM_ENDPOINT names an
/// OpenAI-compatible endpoint (with HOURGLASS_LLM_MODEL, and HOURGLASS_LLM_API_KEY if it needs one). No
/// network call is made unless it is configured.
/// </summary>
internal static class Narrative
{
    public static ISummaryWriter? FromEnvironment(ILoggerFactory loggers)
    {
        var endpoint = Environment.GetEnvironmentVariable("HOURGLASS_LLM_ENDPOINT");
        if (string.IsNullOrWhiteSpace(endpoint))
        {
            return null;
        }

        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
        {
            throw new HourglassException($"HOURGLASS_LLM_ENDPOINT: '{endpoint}' is not an http(s) URL");
        }

        var model = Environment.GetEnvironmentVariable("HOURGLASS_LLM_MODEL");
        if (string.IsNullOrWhiteSpace(model))
        {
            throw new HourglassException("HOURGLASS_LLM_MODEL: set the model name to use with HOURGLASS_LLM_ENDPOINT");
        }

        var key = Environment.GetEnvironmentVariable("HOURGLASS_LLM_API_KEY");
        var client = new OpenAIClient(new ApiKeyCredential(string.IsNullOrEmpty(key) ? "none" : key), new OpenAIClientOptions { Endpoint = uri })
            .GetChatClient(model)
            .AsIChatClient();
        return new ChatSummaryWriter(client, loggers.CreateLogger<ChatSummaryWriter>());
    }
}
