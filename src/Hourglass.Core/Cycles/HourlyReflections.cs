using System.Text.Json.Nodes;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Cycles;

/// <summary>
/// The hour's reflection (<c>agent_hourly_reflections</c>, one row per tenant and hour). Each run adds its own reflection
/// to its hour's row under its run id (<c>runs</c>), and the database rolls the hour's runs up into the row's columns
/// (migration 20251229400000_hourly_reflection_rollup): a second run in an hour adds to the hour, never replaces it.
/// </summary>
internal static class HourlyReflections
{
    // One statement, no read in C#: ON CONFLICT DO UPDATE merges into the row as it stands once the statement holds its
    // lock ("an atomic INSERT or UPDATE outcome", PostgreSQL docs, INSERT), so two runs of an hour writing at once both
    // land. A run already in the row (a retried or replayed write) matches no row to update, so it counts once.
    public const string AddRunSql = """
        insert into public.agent_hourly_reflections as r (tenant_id, run_id, hour_bucket, runs)
        values ($1, $2, $3, jsonb_build_object($2::text, $4::jsonb))
        on conflict (tenant_id, hour_bucket) do update set runs = r.runs || excluded.runs
        where not r.runs ? $2::text
        """;

    /// <summary>The statement that adds <paramref name="runId"/>'s reflection (<paramref name="entry"/>) to its hour.</summary>
    public static NpgsqlBatchCommand AddRun(Guid tenantId, Guid runId, DateTimeOffset hour, JsonObject entry)
    {
        var command = new NpgsqlBatchCommand(AddRunSql);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = runId });
        command.Parameters.Add(new() { Value = hour });
        command.Parameters.Add(new() { Value = entry.ToJsonString(), NpgsqlDbType = NpgsqlDbType.Jsonb });
        return command;
    }

    /// <summary>
    /// A run's own reflection as its hour keeps it: who and when (run_id, trigger, started_at), the reflection's lists
    /// (each entry tagged with the run's id, so the hour's concatenated lists say which run did what), numbers and
    /// summary, and the parts' observations (insights).
    /// </summary>
    public static JsonObject Entry(CycleContext context, JsonObject reflection, JsonObject moved, JsonNode? insights)
    {
        var runId = context.RunId.ToString();
        return new JsonObject
        {
            ["run_id"] = runId,
            ["trigger"] = CycleEngine.TriggerName(context.Trigger),
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
