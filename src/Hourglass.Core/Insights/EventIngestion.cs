using System.Text.Json;
using Hourglass.Imports;
using Npgsql;

namespace Hourglass.Insights;

/// <summary>
/// Events from outside systems, in batches, into <c>warehouse_events</c>, by one of two paths with the same rules
/// (docs/insights.md, docs/imports.md):
/// <list type="bullet">
/// <item>the import pipeline with <see cref="EventImportKind"/>: through <c>public.ingest_events</c>, under the
/// caller's role and row-level security — the path of a member's session and of the API.</item>
/// <item><see cref="BulkAsync(NpgsqlConnection, NpgsqlTransaction, Guid, IReadOnlyList{EventLine}, ImportErrorMode, CancellationToken)"/>: the trusted path for the service role or the database owner. PostgreSQL refuses COPY
/// into a table with row-level security to roles that do not bypass it, so this path checks every line here, sets
/// <c>tenant_id</c> itself from its argument, and writes with binary COPY.</item>
/// </list>
/// </summary>
internal static class EventIngestion
{
    /// <summary>The most events one <c>ingest_events</c> call takes.</summary>
    public const int MaxBatchSize = 10_000;

    /// <summary>The fields an event may have; any other is refused by name (a line cannot name its tenant).</summary>
    public static readonly IReadOnlyList<string> Fields = EventFields.Names;

    /// <summary>The columns a CSV file may have (a header line names them, in any order); only event_type is required.</summary>
    public static readonly IReadOnlyList<string> CsvColumns = ["event_type", "entity_type", "entity_id", "occurred_at", "idempotency_key", "source", "payload"];

    /// <summary>
    /// The trusted bulk path: records <paramref name="lines"/> for a tenant in the caller's transaction, which must run
    /// as a role that bypasses row-level security (the service role, the database owner). Every line is checked here
    /// by the rules <c>ingest_events</c> applies (entities looked up set-based in the tenant), <c>tenant_id</c> is
    /// <paramref name="tenantId"/> on every row, and the rows go in by binary COPY: straight into
    /// <c>warehouse_events</c> when none of their keys is taken, else through a temporary table and one
    /// <c>INSERT … ON CONFLICT DO NOTHING</c>. Refuse and skip as in <see cref="ImportPipeline.RecordAsync"/>; in refuse mode nothing
    /// is written when a line is bad.
    /// </summary>
    public static async Task<IReadOnlyList<EventOutcome>> BulkAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        IReadOnlyList<EventLine> lines, ImportErrorMode mode, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(lines);
        var batch = await EventBulkBatch.StartAsync(connection, transaction, tenantId, mode, cancellationToken);
        var taken = 0;
        return await batch.RunAsync((buffer, _) =>
        {
            var count = Math.Min(buffer.Length, lines.Count - taken);
            for (var i = 0; i < count; i++)
            {
                buffer[i] = lines[taken + i];
            }

            taken += count;
            return ValueTask.FromResult(count);
        }, cancellationToken);
    }

    /// <summary>
    /// <see cref="BulkAsync(NpgsqlConnection, NpgsqlTransaction, Guid, IReadOnlyList{EventLine}, ImportErrorMode, CancellationToken)"/>
    /// over lines as they are read (<see cref="ImportPipeline.StreamNdjsonAsync"/>): a file is read while the lines before are written.
    /// </summary>
    public static async Task<IReadOnlyList<EventOutcome>> BulkAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        IAsyncEnumerable<EventLine> lines, ImportErrorMode mode, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(lines);
        var batch = await EventBulkBatch.StartAsync(connection, transaction, tenantId, mode, cancellationToken);
        await using var enumerator = lines.GetAsyncEnumerator(cancellationToken);
        return await batch.RunAsync(async (buffer, _) =>
        {
            var count = 0;
            while (count < buffer.Length && await enumerator.MoveNextAsync())
            {
                buffer[count++] = enumerator.Current;
            }

            return count;
        }, cancellationToken);
    }

    internal static async Task<int> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, Guid? tenantId,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        if (tenantId is { } tenant)
        {
            command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenant });
        }

        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    internal static string JsonError(JsonException ex) => ex.Message.Split(" LineNumber", 2)[0].TrimEnd('.');
}
