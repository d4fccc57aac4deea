using System.ClientModel;
using Hourglass.Cycles;
using Hourglass.Engagement.Inbound;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using OpenAI;

namespace Hourglass.Server.Cli;

/// <summary>
/// The language model from configuration, for the reflection's summary writer and the reply classifier alike: none
/// unless HOURGLASS_LLM_ENDPOINT names an OpenAI-compatible endpoint (with HOURGLASS_LLM_MODEL, and HOURGLASS_LLM_API_KEY
/// if it needs one). No network call is made unless it is configured.
/// </summary>
internal static class Narrative
{
    /// <summary>The summary writer with the configured model; null (the template) when none is configured.</summary>
    public static ISummaryWriter? FromEnvironment(ILoggerFactory loggers) =>
        ChatFromEnvironment() is { } client ? new ChatSummaryWriter(client, loggers.CreateLogger<ChatSummaryWriter>()) : null;

    /// <summary>
    /// The reply classifier (docs/inbound.md, "Reading a reply"): rules, asking the configured model when they are not
    /// certain; rules alone when no model is configured.
    /// </summary>
    public static ReplyClassifier ReplyClassifierFromEnvironment(TimeProvider time, ILoggerFactory loggers) =>
        ChatFromEnvironment() is { } client
            ? new ReplyClassifier(client, time, logger: loggers.CreateLogger<ReplyClassifier>())
            : new ReplyClassifier();

    /// <summary>The configured model's chat client, or null when HOURGLASS_LLM_ENDPOINT is not set.</summary>
    public static IChatClient? ChatFromEnvironment()
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

        return ChatClient(uri, model, Environment.GetEnvironmentVariable("HOURGLASS_LLM_API_KEY"));
    }

    /// <summary>A chat client for an OpenAI-compatible endpoint (its base URL, e.g. https://host/v1).</summary>
    public static IChatClient ChatClient(Uri endpoint, string model, string? apiKey) =>
        new OpenAIClient(new ApiKeyCredential(string.IsNullOrEmpty(apiKey) ? "none" : apiKey), new OpenAIClientOptions { Endpoint = endpoint })
            .GetChatClient(model)
            .AsIChatClient();
}
