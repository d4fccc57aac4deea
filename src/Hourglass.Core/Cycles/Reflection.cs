using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Npgsql;

namespace Hourglass.Cycles;

internal sealed record ActionFact(string Kind, string? TargetType, Guid? TargetId, string Reason, string Status);

internal sealed record BlockedFact(string Kind, Guid? TargetId, string Status, string Why, IReadOnlyList<string> Rules);

internal sealed record DeferredFact(string Kind, Guid? TargetId, string Reason, string DeferredBecause);

/// <summary>
/// The structured facts of an hour's reflection: what we did, what moved, what got blocked and why, what we
/// will try next, and hypotheses with their evidence. They are always stored; the summary is written from them.
/// </summary>
internal sealed record ReflectionFacts(
    DateTimeOffset HourBucket,
    IReadOnlyList<ActionFact> WhatWeDid,
    JsonObject WhatMoved,
    IReadOnlyList<BlockedFact> WhatGotBlocked,
    IReadOnlyList<DeferredFact> WhatWeWillTryNext,
    IReadOnlyList<Hypothesis> Hypotheses,
    bool DryRun);

/// <summary>Turns the reflection's facts into the readable summary.</summary>
internal interface ISummaryWriter
{
    Task<string> WriteAsync(ReflectionFacts facts, CancellationToken cancellationToken);
}

/// <summary>The default: a summary from templates, no network, same facts in, same words out.</summary>
internal sealed class TemplateSummaryWriter : ISummaryWriter
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

/// <summary>
/// The Reflect phase, whole: the parts' numbers now against the last hour's, the facts of what the cycle did, was
/// blocked from and deferred, the summary written from them, and the run's entry in its hour's reflection
/// (<see cref="HourlyReflections"/>). The engine hands it the other phases' results and stores what it returns.
/// </summary>
internal sealed class Reflector(NpgsqlDataSource dataSource, IReadOnlyList<ICyclePart> parts, ISummaryWriter summaries)
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public async Task<JsonObject> ReflectAsync(CycleContext context, CycleEngine.PlanResult plan, CycleEngine.ActResult act,
        CycleEngine.ReactResult react, IReadOnlyList<string> partErrors, CancellationToken cancellationToken)
    {
        var now = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var part in parts)
        {
            foreach (var (name, value) in await part.MeasureAsync(context, cancellationToken))
            {
                now[$"{part.Name}.{name}"] = value;
            }
        }

        var before = await HourlyReflections.PreviousMetricsAsync(dataSource, context.TenantId, context.HourBucket, cancellationToken);
        var moved = WhatMoved(before, now);
        var facts = Facts(context, plan, act, react, partErrors, moved);
        var reflection = JsonSerializer.SerializeToNode(facts, s_json)!.AsObject();
        reflection["summary"] = await summaries.WriteAsync(facts, cancellationToken);

        // A dry run writes no reflection: the hour's record holds what runs did, not what they would have done.
        if (!context.DryRun)
        {
            await context.Database.ExecuteAsync(
                HourlyReflections.AddRun(context.TenantId, context.RunId, context.HourBucket, HourEntry(context, reflection, moved, react.Output["parts"])),
                cancellationToken);
        }

        return reflection;
    }

    /// <summary>Each number now, with its value in the last reflection and the change (null when it is new).</summary>
    internal static JsonObject WhatMoved(IReadOnlyDictionary<string, decimal> before, IReadOnlyDictionary<string, decimal> now)
    {
        var moved = new JsonObject();
        foreach (var (name, value) in now.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var had = before.TryGetValue(name, out var b) ? b : (decimal?)null;
            moved[name] = new JsonObject { ["before"] = had, ["after"] = value, ["delta"] = had is null ? null : value - had };
        }

        return moved;
    }

    internal static ReflectionFacts Facts(CycleContext context, CycleEngine.PlanResult plan, CycleEngine.ActResult act,
        CycleEngine.ReactResult react, IReadOnlyList<string> partErrors, JsonObject moved) => new(
        context.HourBucket,
        act.Outcomes.Where(o => o.Status is ActionStatus.Succeeded or ActionStatus.AlreadyDone or ActionStatus.WouldRun)
            .Select(o => new ActionFact(o.Action.Kind, o.Action.TargetType, o.Action.TargetId, o.Action.Reason, o.Status.Name())).ToList(),
        moved,
        act.Outcomes.Where(o => o.Status is ActionStatus.Blocked or ActionStatus.Failed)
            .Select(o => new BlockedFact(o.Action.Kind, o.Action.TargetId, o.Status.Name(), o.Error ?? "", o.Decision?.DeterminingRules ?? [])).ToList()
            .Concat(partErrors.Select(e => new BlockedFact("part", null, ActionStatus.Failed.Name(), e, []))).ToList(),
        plan.Deferred.Select(d => new DeferredFact(d.Action.Kind, d.Action.TargetId, d.Action.Reason, d.Reason))
            .Concat(act.Outcomes.Where(o => o.Status == ActionStatus.Failed)
                .Select(o => new DeferredFact(o.Action.Kind, o.Action.TargetId, o.Action.Reason, "retry after failure: " + o.Error)))
            .ToList(),
        react.Hypotheses,
        context.DryRun);

    /// <summary>
    /// A run's own reflection as its hour keeps it: who and when (run_id, trigger, started_at), the reflection's lists
    /// (each entry tagged with the run's id, so the hour's concatenated lists say which run did what), numbers and
    /// summary, and the parts' observations (insights).
    /// </summary>
    internal static JsonObject HourEntry(CycleContext context, JsonObject reflection, JsonObject moved, JsonNode? insights)
    {
        var runId = context.RunId.ToString();
        return new JsonObject
        {
            ["run_id"] = runId,
            ["trigger"] = context.Trigger.Name(),
            ["started_at"] = context.Now.ToUniversalTime().ToString("O"),
            ["what_we_did"] = Tagged(reflection["what_we_did"], runId),
            ["what_moved"] = moved.DeepClone(),
            ["what_got_blocked"] = Tagged(reflection["what_got_blocked"], runId),
            ["what_we_will_try_next"] = Tagged(reflection["what_we_will_try_next"], runId),
            ["hypotheses"] = Tagged(reflection["hypotheses"], runId),
            ["insights"] = insights?.DeepClone(),
            ["summary"] = reflection["summary"]?.DeepClone(),
        };
    }

    private static JsonArray Tagged(JsonNode? list, string runId)
    {
        var tagged = new JsonArray();
        foreach (var item in list as JsonArray ?? [])
        {
            var copy = item?.DeepClone();
            if (copy is JsonObject entry)
            {
                entry["run_id"] = runId;
            }

            tagged.Add(copy);
        }

        return tagged;
    }
}
