using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Hourglass.Cycles;

public sealed record ActionFact(string Kind, string? TargetType, Guid? TargetId, string Reason, string Status);

public sealed record BlockedFact(string Kind, Guid? TargetId, string Status, string Why, IReadOnlyList<string> Rules);

public sealed record DeferredFact(string Kind, Guid? TargetId, string Reason, string DeferredBecause);

/// <summary>
/// The structured facts of an hour's reflection: what we did, what moved, what got blocked and why, what we
/// will try next, and hypotheses with their evidence. They are always stored; the summary is written from them.
/// </summary>
public sealed record ReflectionFacts(
    DateTimeOffset HourBucket,
    IReadOnlyList<ActionFact> WhatWeDid,
    JsonObject WhatMoved,
    IReadOnlyList<BlockedFact> WhatGotBlocked,
    IReadOnlyList<DeferredFact> WhatWeWillTryNext,
    IReadOnlyList<Hypothesis> Hypotheses,
    bool DryRun);

/// <summary>Turns the reflection's facts into the readable summary.</summary>
public interface ISummaryWriter
{
    Task<string> WriteAsync(ReflectionFacts facts, CancellationToken cancellationToken);
}

/// <summary>The default: a summary from templates, no network, same facts in, same words out.</summary>
public sealed class TemplateSummaryWriter : ISummaryWriter
{
    public Task<string> WriteAsync(ReflectionFacts facts, CancellationToken cancellationToken) => Task.FromResult(Write(facts));

    public static string Write(ReflectionFacts facts)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{(facts.DryRun ? "Dry run for" : "Hour")} {facts.HourBucket.UtcDateTime:yyyy-MM-dd HH}:00 UTC. ");
        if (facts.WhatWeDid.Count == 0)
        {
            text.Append("No actions taken. ");
        }
        else
        {
            var byKind = facts.WhatWeDid.GroupBy(a => a.Kind).Select(g => $"{g.Count()} {g.Key.Replace('_', ' ')}");
            text.Append(CultureInfo.InvariantCulture, $"{(facts.DryRun ? "Would take" : "Took")} {facts.WhatWeDid.Count} action{Plural(facts.WhatWeDid.Count)} ({string.Join(", ", byKind)}). ");
        }

        var moved = facts.WhatMoved
            .Where(m => m.Value?["delta"] is JsonValue d && d.TryGetValue<decimal>(out var delta) && delta != 0)
            .Select(m => $"{m.Key} {Signed(m.Value!["delta"]!.GetValue<decimal>())} to {m.Value["after"]}")
            .ToList();
        if (moved.Count > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"Moved: {string.Join("; ", moved)}. ");
        }

        if (facts.WhatGotBlocked.Count > 0)
        {
            var reasons = facts.WhatGotBlocked.GroupBy(b => b.Why).Select(g => $"{g.Count()} × {g.Key}");
            text.Append(CultureInfo.InvariantCulture, $"Blocked or failed: {facts.WhatGotBlocked.Count} ({string.Join("; ", reasons)}). ");
        }

        if (facts.WhatWeWillTryNext.Count > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"Next: {facts.WhatWeWillTryNext.Count} deferred action{Plural(facts.WhatWeWillTryNext.Count)}. ");
        }

        foreach (var hypothesis in facts.Hypotheses.Take(3))
        {
            text.Append(CultureInfo.InvariantCulture, $"Hypothesis ({Math.Round(hypothesis.Confidence * 100)}%): {hypothesis.Statement}. ");
        }

        return text.ToString().TrimEnd();
    }

    private static string Plural(int count) => count == 1 ? "" : "s";

    private static string Signed(decimal value) => value > 0 ? "+" + value.ToString(CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture);
}
