using System.Text.Json.Nodes;
using Hourglass.Storage;
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
    /// The "after" of every number in the tenant's latest reflection before <paramref name="hour"/>: the "before" of this
    /// hour's what_moved.
    /// </summary>
    public static async Task<Dictionary<string, decimal>> PreviousMetricsAsync(NpgsqlDataSource dataSource, Guid tenantId, DateTimeOffset hour,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(PreviousMetricsSql);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = hour });
        var result = new Dictionary<string, decimal>(StringComparer.Ordinal);
        if (await command.ExecuteScalarAsync(cancellationToken) is string json && JsonNode.Parse(json) is JsonObject moved)
        {
            foreach (var (name, node) in moved)
            {
                if (node?["after"] is JsonValue after && after.TryGetValue<decimal>(out var value))
                {
                    result[name] = value;
                }
            }
        }

        return result;
    }

    /// <summary>The what_moved of tenant $1's latest hour before $2.</summary>
    internal const string PreviousMetricsSql = """
        select what_moved from public.agent_hourly_reflections
        where tenant_id = $1 and hour_bucket < $2 order by hour_bucket desc limit 1
        """;

    /// <summary>The summary of the tenant's latest hour, if it has one.</summary>
    public static async Task<string?> LatestSummaryAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "select summary from public.agent_hourly_reflections where tenant_id = $1 order by hour_bucket desc limit 1");
        command.Parameters.Add(new() { Value = tenantId });
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    /// <summary>A tenant's hourly reflections as the API lists them ($1 tenant), run in the API's session; the caller pages.</summary>
    internal const string ApiListSql = """
        select id, run_id, run_ids, hour_bucket, what_we_did, what_moved, what_got_blocked, what_we_will_try_next, hypotheses, summary, created_at
        from public.agent_hourly_reflections where tenant_id = $1
        """;

    /// <summary>The tenant's latest hour ($1 tenant): hour, how many runs it rolls up (at least one), summary.</summary>
    internal const string LatestSql = """
        select f.hour_bucket, greatest(pg_catalog.cardinality(f.run_ids), 1), f.summary
        from public.agent_hourly_reflections f where f.tenant_id = $1 order by f.hour_bucket desc limit 1
        """;

    // Seeding and inspection (benchmarks): one method per statement, on the caller's connection and transaction

    /// <summary>The tenants' reflections of the current hour (UTC) and later, removed.</summary>
    public static Task<int> DeleteThisHourAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants,
        CancellationToken cancellationToken) =>
        Storage.StoreReads.ExecuteAsync(connection, transaction,
            "delete from public.agent_hourly_reflections where tenant_id = any ($1) and hour_bucket >= pg_catalog.date_trunc('hour', now(), 'UTC')",
            cancellationToken, tenants);

    // Seeding (simulator, demo, benchmarks): the benchmarks' history and reset.

    /// <summary>A reflection for each of the tenants' <c>bench-history</c> runs, in its hour, saying no actions were taken.</summary>
    public static Task<int> GenerateHistoryAsync(NpgsqlConnection connection, Guid[] tenants, string whatMoved, string reactOutput,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.agent_hourly_reflections (tenant_id, run_id, hour_bucket, what_moved, insights, summary)
            select r.tenant_id, r.id, r.scheduled_for, $2::jsonb, ($3::jsonb) -> 'parts', 'Hour: no actions taken.'
            from public.agent_autonomous_runs r
            where r.tenant_id = any ($1) and r.worker_id = 'bench-history'
            """, cancellationToken, tenants, whatMoved, reactOutput);
}
