using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Hourglass.Cycles;

namespace Hourglass.Insights;

/// <summary>
/// Insights in the cycle. First thing in Plan: the detectors process the tenant's new events (so churn risk and best
/// times are fresh when the engagement part ranks the queue), and the actions that used a strategy are judged
/// (<c>attribute_strategy_outcomes</c>). In React: hypotheses for the reflection from the patterns confirmed since the
/// last cycle, each with its evidence — the pattern's id and the latest events behind it. For "what moved": active
/// patterns and the strategies' judged uses.
/// </summary>
internal sealed class InsightsPart(long maxEventsPerCycle = 500_000) : ICyclePart
{
    private readonly ConditionalWeakTable<CycleContext, InsightRunResult> _runs = [];

    public string Name => "insights";

    public async Task<IReadOnlyList<ProposedAction>> ProposeAsync(CycleContext context, CancellationToken cancellationToken)
    {
        if (context.DryRun)
        {
            return [];
        }

        var result = await new InsightsEngine(context.Database.DataSource).RunAsync(context.TenantId, maxEventsPerCycle, cancellationToken);
        _runs.AddOrUpdate(context, result);
        await InsightsStore.AttributeStrategyOutcomesAsync(context.Database.DataSource, context.TenantId, cancellationToken);
        return [];
    }

    public async Task<PartReaction?> ReactAsync(CycleContext context, DateTimeOffset? since, CancellationToken cancellationToken)
    {
        await using var command = context.Database.DataSource.CreateCommand(InsightsStore.ConfirmedPatternsSql);
        command.Parameters.Add(new() { Value = context.TenantId });
        command.Parameters.Add(new() { Value = since ?? context.Now.AddHours(-1) });
        var hypotheses = new List<Hypothesis>();
        var observed = new JsonArray();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var id = reader.GetGuid(0);
            var data = JsonNode.Parse(reader.GetString(4)) as JsonObject ?? [];
            var statement = Statement(reader.GetString(3), reader.GetString(7), data);
            if (statement is null)
            {
                continue;
            }

            var evidence = new List<string> { $"client_patterns:{id}" };
            evidence.AddRange(reader.GetFieldValue<string[]>(8).Select(e => $"warehouse_events:{e}"));
            hypotheses.Add(new Hypothesis(statement, Math.Round(reader.GetDecimal(5), 2), evidence));
            observed.Add(new JsonObject { ["pattern_id"] = id.ToString(), ["type"] = reader.GetString(3), ["evidence_count"] = reader.GetInt32(6) });
        }

        var run = _runs.TryGetValue(context, out var r) ? r : null;
        return new PartReaction(new JsonObject
        {
            ["patterns_confirmed"] = observed,
            ["events_processed"] = run?.EventsProcessed,
            ["patterns_written"] = run?.PatternsWritten,
        }, hypotheses);
    }

    public async Task<IReadOnlyDictionary<string, decimal>> MeasureAsync(CycleContext context, CancellationToken cancellationToken)
    {
        await using var command = context.Database.DataSource.CreateCommand(InsightsStore.MeasuresSql);
        command.Parameters.Add(new() { Value = context.TenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new Dictionary<string, decimal>(StringComparer.Ordinal)
        {
            ["active_patterns"] = reader.GetInt64(0),
            ["strategy_uses_judged"] = reader.GetInt64(1),
            ["strategy_successes"] = reader.GetInt64(2),
        };
    }

    /// <summary>The hypothesis a pattern suggests, in words; null for a pattern that suggests none.</summary>
    public static string? Statement(string patternType, string who, JsonObject data)
    {
        string Num(string key) => data[key] is JsonValue v && v.TryGetValue<double>(out var d) ? d.ToString("0.##", CultureInfo.InvariantCulture) : "?";
        return patternType switch
        {
            "reorder_cadence" => $"{who} reorders about every {Num("mean_interval_days")} days; the next order is expected around {Date(data["next_order_expected_at"])}",
            "churn_risk" => $"{who} may have stopped ordering: {Num("days_since_last_order")} days since the last order against a {Num("mean_interval_days")}-day rhythm (risk {Num("risk")})",
            "best_time" => data["best_slots"] is JsonArray { Count: > 0 } slots
                ? $"{who} replies best {SlotName((int)slots[0]!)} (their time; reply rate {Num("overall_reply_rate")} overall)"
                : null,
            "preferred_channel" => $"{who} answers {(string?)data["channel"]} best (reply rate {Num("reply_rate")})",
            "engagement_decay" => $"{who} is replying less: {Num("replies_last_30_days")} replies in the last 30 days against {Num("replies_per_30_days_before")} a month before",
            "order_size_trend" => $"{who}'s orders are trending {(string?)data["direction"]} ({Num("change_per_30_days_pct")}% a month)",
            _ => null,
        };
    }

    private static string Date(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<string>(out var s) && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var t)
            ? t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)
            : "?";

    private static string SlotName(int slot) =>
        string.Create(CultureInfo.InvariantCulture, $"on {CultureInfo.InvariantCulture.DateTimeFormat.GetAbbreviatedDayName((DayOfWeek)((slot / 24 + 1) % 7))} {slot % 24:00}:00-{slot % 24 + 1:00}:00");
}
