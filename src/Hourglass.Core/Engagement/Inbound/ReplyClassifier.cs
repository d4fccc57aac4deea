using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hourglass.Engagement.Inbound;

/// <summary>
/// Labels a reply (docs/inbound.md, "Reading a reply"): rules (<see cref="ReplyRules"/>), with an optional model. The
/// rules decide alone when they are certain (confidence at least <see cref="ReplyRules.Certain"/>) or when no model is
/// configured; otherwise the model is asked for a JSON answer, which is used only when it is valid (a known label, a
/// confidence in [0, 1], a readable date) and arrives within the timeout — a failing, slow or invalid model leaves the
/// rules' answer. <c>ClassifiedBy</c> says which: "rules" or "model:&lt;name&gt;".
/// </summary>
internal sealed partial class ReplyClassifier
{
    /// <summary>How long the model may take before the rules' answer is used.</summary>
    public static readonly TimeSpan DefaultModelTimeout = TimeSpan.FromSeconds(20);

    public const string ByRules = "rules";

    /// <summary>What a model is sent of a reply: its top, where what decides it is.</summary>
    public const int MaxModelChars = 4_000;

    internal const string Instructions =
        "You label replies to emails an account manager sent to business contacts. Choose exactly one label: " +
        "interested (wants to talk, meet, buy, get a quote or a call), " +
        "not_now (declines for now, or asks to be contacted later), " +
        "wrong_person (not the right contact, has left the company, or points to someone else), " +
        "unsubscribe_request (asks to stop receiving emails, to be removed from a list or not to be contacted), " +
        "out_of_office (an automatic or personal absence notice), " +
        "bounce_notice (a mail server reporting that delivery failed), " +
        "other (anything else). " +
        "A reply that asks to stop emails is unsubscribe_request even when it also shows interest. " +
        "Answer with one JSON object and nothing else: " +
        "{\"label\": the label, \"confidence\": a number from 0 to 1, \"evidence\": the few words of the reply that decided it, " +
        "\"return_on\": for out_of_office the date the sender is back as YYYY-MM-DD when the reply states one, otherwise null}.";

    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private readonly IChatClient? _model;
    private readonly TimeProvider? _time;
    private readonly TimeSpan _timeout;
    private readonly ILogger _logger;

    /// <summary>A classifier by rules alone.</summary>
    public ReplyClassifier()
    {
        _logger = NullLogger.Instance;
        ModelName = null;
    }

    /// <summary>A classifier that asks <paramref name="model"/> when the rules are not certain.</summary>
    /// <param name="model">Any chat client (the server's is an OpenAI-compatible endpoint, docs/operations.md).</param>
    /// <param name="time">The clock the model's timeout runs on.</param>
    /// <param name="timeout">How long to wait for the model; <see cref="DefaultModelTimeout"/> when null.</param>
    /// <param name="logger">Where a failing or invalid model is logged.</param>
    public ReplyClassifier(IChatClient model, TimeProvider time, TimeSpan? timeout = null, ILogger<ReplyClassifier>? logger = null)
    {
        _model = model;
        _time = time;
        _timeout = timeout ?? DefaultModelTimeout;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        ModelName = model.GetService<ChatClientMetadata>()?.DefaultModelId is { Length: > 0 } name ? name : "unnamed";
    }

    /// <summary>The model's name as <c>ClassifiedBy</c> shows it; null when the rules work alone.</summary>
    public string? ModelName { get; }

    /// <summary>The reply with its label, confidence, evidence and (out of office) return date filled in.</summary>
    public async Task<InboundReply> ClassifyAsync(InboundReply reply, DateTimeOffset receivedAt, CancellationToken cancellationToken)
    {
        var rules = ReplyRules.Classify(reply, receivedAt);
        if (_model is null || rules.Confidence >= ReplyRules.Certain)
        {
            return Filled(reply, rules, ByRules);
        }

        var answer = await AskAsync(_model, reply, receivedAt, cancellationToken);
        if (answer is null)
        {
            return Filled(reply, rules, ByRules);
        }

        // A model that reads an absence but no date leaves the date to the rules' reader.
        if (answer.Label == ReplyLabel.OutOfOffice && answer.ReturnOn is null)
        {
            answer = answer with { ReturnOn = ReturnDateReader.Read(ReplyText.Fresh(reply.Text), receivedAt) };
        }

        return Filled(reply, answer, $"model:{ModelName}");
    }

    private static InboundReply Filled(InboundReply reply, ReplyVerdict verdict, string by) => reply with
    {
        Label = verdict.Label,
        Confidence = verdict.Confidence,
        Evidence = verdict.Evidence,
        ClassifiedBy = by,
        ReturnOn = verdict.Label == ReplyLabel.OutOfOffice ? verdict.ReturnOn : null,
    };

    private async Task<ReplyVerdict?> AskAsync(IChatClient model, InboundReply reply, DateTimeOffset receivedAt, CancellationToken cancellationToken)
    {
        var fresh = ReplyText.Fresh(reply.Text);
        var question = JsonSerializer.Serialize(new
        {
            ReceivedAt = receivedAt.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture),
            reply.From,
            reply.Subject,
            Text = fresh.Length > MaxModelChars ? fresh[..MaxModelChars] : fresh,
        }, s_json);

        using var timeout = new CancellationTokenSource(_timeout, _time!);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            var response = await model.GetResponseAsync(
                [new ChatMessage(ChatRole.System, Instructions), new ChatMessage(ChatRole.User, question)],
                new ChatOptions { Temperature = 0f, MaxOutputTokens = 300, ResponseFormat = ChatResponseFormat.Json },
                linked.Token);
            var verdict = Validate(response.Text, DateOnly.FromDateTime(receivedAt.DateTime));
            if (verdict is null)
            {
                LogInvalid(_logger, Short(response.Text ?? ""));
            }

            return verdict;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            LogTimedOut(_logger, _timeout.TotalSeconds);
            return null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogFailed(_logger, ex);
            return null;
        }
    }

    /// <summary>
    /// The model's answer when it is valid: a JSON object (fenced in ``` or not) with a label of <see cref="ReplyLabel"/>,
    /// a numeric confidence in [0, 1], evidence as text (optional) and return_on as YYYY-MM-DD or null; a return date
    /// before the received day is dropped (null), as the rules drop one.
    /// </summary>
    internal static ReplyVerdict? Validate(string? text, DateOnly received)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var start = text.IndexOf('{', StringComparison.Ordinal);
        var end = text.LastIndexOf('}');
        if (start < 0 || end < start)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(text.AsMemory(start, end - start + 1));
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("label", out var labelElement) || labelElement.ValueKind != JsonValueKind.String
                || labelElement.GetString() is not { } label || !ReplyLabel.All.Contains(label)
                || !root.TryGetProperty("confidence", out var confidenceElement) || confidenceElement.ValueKind != JsonValueKind.Number
                || !confidenceElement.TryGetDecimal(out var confidence) || confidence is < 0m or > 1m)
            {
                return null;
            }

            var evidence = root.TryGetProperty("evidence", out var evidenceElement) && evidenceElement.ValueKind == JsonValueKind.String
                && evidenceElement.GetString() is { Length: > 0 } said
                ? $"\"{Short(said.Trim())}\""
                : "(the model gave no evidence)";

            DateOnly? returnOn = null;
            if (root.TryGetProperty("return_on", out var dateElement) && dateElement.ValueKind != JsonValueKind.Null)
            {
                if (dateElement.ValueKind != JsonValueKind.String
                    || !DateOnly.TryParseExact(dateElement.GetString(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
                {
                    return null;
                }

                returnOn = date >= received ? date : null;
            }

            return new ReplyVerdict(label, confidence, evidence, label == ReplyLabel.OutOfOffice ? returnOn : null);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Short(string text) => text.Length <= 120 ? text : text[..120] + "…";

    [LoggerMessage(Level = LogLevel.Warning, Message = "The language model's reply label was not valid ({Answer}); using the rules' label")]
    private static partial void LogInvalid(ILogger logger, string answer);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The language model did not label the reply within {Seconds} s; using the rules' label")]
    private static partial void LogTimedOut(ILogger logger, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The language model could not label the reply; using the rules' label")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
