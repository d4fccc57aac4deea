using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Microsoft.Extensions.AI;

namespace Hourglass.Tests.Cycles;

public sealed class SummaryWriterTests
{
    private static readonly ReflectionFacts s_facts = new(
        new DateTimeOffset(2026, 5, 4, 13, 0, 0, TimeSpan.Zero),
        [new ActionFact("touch_task", "contact", Guid.Parse("11111111-1111-4111-8111-111111111111"), "overdue 4 days", "succeeded")],
        new JsonObject { ["engagement.overdue"] = new JsonObject { ["before"] = 5m, ["after"] = 4m, ["delta"] = -1m } },
        [new BlockedFact("send_email", null, "blocked", "outside the send window", ["send_window"])],
        [new DeferredFact("touch_task", null, "due soon", "budget: at most 1 actions per cycle")],
        [new Hypothesis("Tuesday mornings get replies", 0.7m, ["evt-1", "evt-2"])],
        DryRun: false);

    [Fact]
    public void Template_AllFacts_InOneReadableParagraph()
    {
        var text = TemplateSummaryWriter.Write(s_facts);

        Assert.Equal(
            "Hour 2026-05-04 13:00 UTC. Took 1 action (1 touch task). Moved: engagement.overdue -1 to 4. " +
            "Blocked or failed: 1 (1 × outside the send window). Next: 1 deferred action. " +
            "Hypothesis (70%): Tuesday mornings get replies.",
            text);
    }

    [Fact]
    public async Task Chat_ModelAnswers_ItsTextFromTheFactsAsJson()
    {
        var client = new FakeChatClient(_ => "Overdue contacts fell to 4.");

        var text = await new ChatSummaryWriter(client).WriteAsync(s_facts, default);

        Assert.Equal("Overdue contacts fell to 4.", text);
        var sent = Assert.Single(client.Requests);
        Assert.Equal(ChatRole.System, sent[0].Role);
        var facts = JsonNode.Parse(sent[1].Text)!;
        Assert.Equal("touch_task", (string?)facts["what_we_did"]![0]!["kind"]);
        Assert.Equal(-1m, (decimal)facts["what_moved"]!["engagement.overdue"]!["delta"]!);
        Assert.Equal("evt-2", (string?)facts["hypotheses"]![0]!["evidence_ids"]![1]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Chat_ModelFailsOrSaysNothing_TemplateSummary(bool throws)
    {
        var client = new FakeChatClient(_ => throws ? throw new HttpRequestException("503 from the model") : "  ");

        var text = await new ChatSummaryWriter(client).WriteAsync(s_facts, default);

        Assert.Equal(TemplateSummaryWriter.Write(s_facts), text);
    }

    private sealed class FakeChatClient(Func<IReadOnlyList<ChatMessage>, string> answer) : IChatClient
    {
        public List<IReadOnlyList<ChatMessage>> Requests { get; } = [];

        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            var list = messages.ToList();
            Requests.Add(list);
            return Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, answer(list))));
        }

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            CancellationToken cancellationToken = default) => throw new NotSupportedException("the summary writer does not stream");

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose()
        {
        }
    }
}
