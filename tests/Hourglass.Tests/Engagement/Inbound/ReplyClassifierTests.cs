using Hourglass.Engagement.Inbound;
using Xunit.Abstractions;

namespace Hourglass.Tests.Engagement.Inbound;

public sealed class ReplyClassifierTests(ITestOutputHelper output)
{
    public static TheoryData<string> CorpusIds()
    {
        var data = new TheoryData<string>();
        foreach (var item in ReplyCorpus.Cases.Concat(ReplyCorpus.Later))
        {
            data.Add(item.Id);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CorpusIds))]
    public async Task ClassifyAsync_CorpusReply_LabelAndReturnDateAsAPersonReadsThem(string id)
    {
        var item = ReplyCorpus.Cases.Concat(ReplyCorpus.Later).Single(c => c.Id == id);

        var reply = await new ReplyClassifier().ClassifyAsync(Reply(item), ReplyCorpus.ReceivedAt, default);

        Assert.Equal((item.Label, item.ReturnOn), (reply.Label, reply.ReturnOn?.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(ReplyClassifier.ByRules, reply.ClassifiedBy);
        Assert.InRange(reply.Confidence!.Value, 0m, 1m);
        Assert.False(string.IsNullOrWhiteSpace(reply.Evidence));
    }

    [Fact]
    public async Task ClassifyAsync_WholeCorpus_AccuracyOfTheRulesAlone()
    {
        Assert.True(ReplyCorpus.Cases.Count + ReplyCorpus.Later.Count >= 40, "the corpus holds at least 40 replies");
        foreach (var (name, cases) in new[] { ("first", ReplyCorpus.Cases), ("later", ReplyCorpus.Later) })
        {
            var (labels, dates, dated) = await MeasureAsync(cases);
            output.WriteLine($"{name}: labels {labels}/{cases.Count}, out-of-office return dates {dates}/{dated}");
            Assert.Equal(cases.Count, labels);
            Assert.Equal(dated, dates);
        }
    }

    private async Task<(int Labels, int Dates, int Dated)> MeasureAsync(IReadOnlyList<ReplyCorpus.Case> cases)
    {
        var classifier = new ReplyClassifier();
        var (labels, dates, dated) = (0, 0, 0);
        foreach (var item in cases)
        {
            var reply = await classifier.ClassifyAsync(Reply(item), ReplyCorpus.ReceivedAt, default);
            labels += reply.Label == item.Label ? 1 : 0;
            if (item.Label == ReplyLabel.OutOfOffice)
            {
                dated++;
                dates += reply.ReturnOn?.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) == item.ReturnOn ? 1 : 0;
            }

            output.WriteLine($"{item.Id}: {reply.Label} {reply.Confidence} {reply.Evidence} {reply.ReturnOn:yyyy-MM-dd}");
        }

        return (labels, dates, dated);
    }

    internal static InboundReply Reply(ReplyCorpus.Case item) => new(item.From, item.Subject, item.Text, Headers: Headers(item.Headers));

    private static Dictionary<string, string>? Headers(string? text) =>
        text?.Split('\n').Select(line => line.Split(':', 2)).ToDictionary(p => p[0].Trim(), p => p[1].Trim(), StringComparer.OrdinalIgnoreCase);
}
