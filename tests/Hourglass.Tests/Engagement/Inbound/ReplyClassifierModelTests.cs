using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Hourglass.Engagement.Inbound;
using Hourglass.Server.Cli;
using Microsoft.Extensions.Logging;

namespace Hourglass.Tests.Engagement.Inbound;

/// <summary>The classifier with a model behind a real OpenAI-compatible HTTP endpoint on loopback.</summary>
public sealed class ReplyClassifierModelTests
{
    private static readonly DateTimeOffset s_received = ReplyCorpus.ReceivedAt;

    // The rules read this as "other" at 0.4: not certain, so the model is asked.
    private static readonly InboundReply s_unclear = new("amy@acme.test", "Re: Restock", "Hmm. What would that cost for the three stores?");

    private readonly Logged _log = new();

    private ReplyClassifier Classifier(LoopbackChatModel model, TimeSpan? timeout = null) =>
        new(Narrative.ChatClient(model.BaseUrl, "test-model", "test-key"), TimeProvider.System, timeout, _log);

    [Fact]
    public async Task ClassifyAsync_RulesUncertain_ModelsLabelUsedAndNamed()
    {
        using var model = new LoopbackChatModel(_ => Task.FromResult((HttpStatusCode.OK,
            """{"label": "interested", "confidence": 0.82, "evidence": "What would that cost", "return_on": null}""")));

        var reply = await Classifier(model).ClassifyAsync(s_unclear, s_received, default);

        Assert.Equal((ReplyLabel.Interested, 0.82m, "model:test-model", "\"What would that cost\""), (reply.Label, reply.Confidence, reply.ClassifiedBy, reply.Evidence));
        Assert.Null(reply.ReturnOn);
        var (path, body) = Assert.Single(model.Requests);
        Assert.Equal("/v1/chat/completions", path);
        Assert.Equal("test-model", (string?)body["model"]);
        Assert.Equal(ReplyClassifier.Instructions, (string?)body["messages"]![0]!["content"]);
        var question = JsonNode.Parse((string)body["messages"]![1]!["content"]!)!;
        Assert.Equal("Hmm. What would that cost for the three stores?", (string?)question["text"]);
        Assert.Equal("2026-12-07T10:00:00+00:00", (string?)question["received_at"]);
    }

    [Fact]
    public async Task ClassifyAsync_ModelReadsAbsence_ItsReturnDateKept()
    {
        using var model = new LoopbackChatModel(_ => Task.FromResult((HttpStatusCode.OK,
            "```json\n{\"label\": \"out_of_office\", \"confidence\": 0.9, \"evidence\": \"back after the fair\", \"return_on\": \"2026-12-16\"}\n```")));
        var reply = new InboundReply("ben@acme.test", "Re: Restock", "At the trade fair all week, back after the fair on the 16th.");

        var classified = await Classifier(model).ClassifyAsync(reply, s_received, default);

        Assert.Equal((ReplyLabel.OutOfOffice, new DateOnly(2026, 12, 16), "model:test-model"), (classified.Label, classified.ReturnOn, classified.ClassifiedBy));
    }

    [Fact]
    public async Task ClassifyAsync_RulesCertain_ModelNotAsked()
    {
        using var model = new LoopbackChatModel(_ => Task.FromResult((HttpStatusCode.OK,
            """{"label": "interested", "confidence": 0.99, "evidence": "interested", "return_on": null}""")));
        var reply = new InboundReply("wes@acme.test", "Re: Offer", "Interested in the product, but please take me off this list.");

        var classified = await Classifier(model).ClassifyAsync(reply, s_received, default);

        Assert.Equal((ReplyLabel.UnsubscribeRequest, ReplyClassifier.ByRules), (classified.Label, classified.ClassifiedBy));
        Assert.Empty(model.Requests);
    }

    [Theory]
    [InlineData("""{"label": "very_interested", "confidence": 0.9, "evidence": "cost", "return_on": null}""")]
    [InlineData("""{"label": "interested", "confidence": 1.5, "evidence": "cost", "return_on": null}""")]
    [InlineData("""{"label": "interested", "confidence": "high", "evidence": "cost", "return_on": null}""")]
    [InlineData("""{"label": "out_of_office", "confidence": 0.9, "evidence": "away", "return_on": "16/12/2026"}""")]
    [InlineData("""{"confidence": 0.9, "evidence": "cost"}""")]
    [InlineData("The reply seems interested.")]
    [InlineData("")]
    public async Task ClassifyAsync_ModelAnswerInvalid_RulesLabel(string answer)
    {
        using var model = new LoopbackChatModel(_ => Task.FromResult((HttpStatusCode.OK, answer)));

        var reply = await Classifier(model).ClassifyAsync(s_unclear, s_received, default);

        Assert.Equal((ReplyLabel.Other, 0.4m, ReplyClassifier.ByRules), (reply.Label, reply.Confidence, reply.ClassifiedBy));
        Assert.Single(model.Requests);
        Assert.Contains("was not valid", Assert.Single(_log.Messages), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClassifyAsync_ModelRefusesTheRequest_RulesLabel()
    {
        using var model = new LoopbackChatModel(_ => Task.FromResult((HttpStatusCode.BadRequest, "model not loaded")));

        var reply = await Classifier(model).ClassifyAsync(s_unclear, s_received, default);

        Assert.Equal((ReplyLabel.Other, ReplyClassifier.ByRules), (reply.Label, reply.ClassifiedBy));
        Assert.Single(model.Requests);
        Assert.Contains("could not label", Assert.Single(_log.Messages), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClassifyAsync_ModelTooSlow_RulesLabelWithoutWaitingForIt()
    {
        // The model answers only once the test lets it, after the classifier has returned: the answer cannot have been used.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var model = new LoopbackChatModel(async _ =>
        {
            await release.Task;
            return (HttpStatusCode.OK, """{"label": "interested", "confidence": 0.9, "evidence": "cost", "return_on": null}""");
        });

        var reply = await Classifier(model, TimeSpan.FromMilliseconds(300)).ClassifyAsync(s_unclear, s_received, default);
        release.SetResult();

        Assert.Equal((ReplyLabel.Other, ReplyClassifier.ByRules), (reply.Label, reply.ClassifiedBy));
        Assert.Single(model.Requests);
        Assert.Contains("within 0.3 s", Assert.Single(_log.Messages), StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ReturnDateBeforeTheReply_Dropped()
    {
        var verdict = ReplyClassifier.Validate("""{"label": "out_of_office", "confidence": 0.9, "evidence": "away", "return_on": "2026-12-01"}""",
            new DateOnly(2026, 12, 7));

        Assert.Equal((ReplyLabel.OutOfOffice, (DateOnly?)null), (verdict!.Label, verdict.ReturnOn));
    }

    private sealed class Logged : ILogger<ReplyClassifier>
    {
        public ConcurrentQueue<string> Messages { get; } = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Messages.Enqueue(formatter(state, exception));
    }
}
