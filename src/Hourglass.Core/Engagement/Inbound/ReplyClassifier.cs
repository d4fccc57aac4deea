namespace Hourglass.Engagement.Inbound;

/// <summary>Labels a reply (docs/inbound.md, "Reading a reply"): rules, with an optional model.</summary>
internal sealed class ReplyClassifier
{
    /// <summary>The reply with its label, confidence, evidence and (out of office) return date filled in.</summary>
    public Task<InboundReply> ClassifyAsync(InboundReply reply, DateTimeOffset receivedAt, CancellationToken cancellationToken) =>
        throw new NotImplementedException("the classifier lands with part 5 of issue 17");
}
