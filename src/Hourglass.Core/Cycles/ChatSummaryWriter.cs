using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hourglass.Cycles;

/// <summary>
/// Writes the hour's summary with a language model (any <see cref="IChatClient"/>: an OpenAI-compatible
/// endpoint, Azure, a local model) from the same structured facts the template uses. The facts are stored
/// whatever the model says; if the model fails or answers nothing, the template's summary is used, so a
/// cycle never fails for its narrative.
/// </summary>
internal sealed partial class ChatSummaryWriter(IChatClient client, ILogger<ChatSummaryWriter>? logger = null) : ISummaryWriter
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private readonly ILogger _logger = (ILogger?)logger ?? NullLogger.Instance;

    internal const string Instructions =
        "You write the hourly note of an account-management agent for the sales and operations people it works for. " +
        "Use only the facts given as JSON. In at most five plain sentences say what was done, what moved (with numbers), " +
        "what got blocked and why, and what will be tried next. No greeting, no speculation beyond the hypotheses given.";

    public async Task<string> WriteAsync(ReflectionFacts facts, CancellationToken cancellationToken)
    {
        try
        {
            var response = await client.GetResponseAsync(
                [new ChatMessage(ChatRole.System, Instructions), new ChatMessage(ChatRole.User, JsonSerializer.Serialize(facts, s_json))],
                new ChatOptions { Temperature = 0.2f, MaxOutputTokens = 400 },
                cancellationToken);
            var text = response.Text?.Trim();
            if (!string.IsNullOrEmpty(text))
            {
                return text;
            }

            LogEmpty(_logger);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogFailed(_logger, ex);
        }

        return TemplateSummaryWriter.Write(facts);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The language model returned no summary; using the template")]
    private static partial void LogEmpty(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The language model could not write the summary; using the template")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
