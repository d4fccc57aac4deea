using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Insights;

/// <summary>
/// Events from outside systems, in batches, into <c>warehouse_events</c>: read from NDJSON or CSV (bad lines named by
/// line number) and written by one of two paths with the same rules (docs/insights.md):
/// <list type="bullet">
/// <item><see cref="RecordAsync"/>: through <c>public.ingest_events</c>, under the caller's role and row-level
/// security — the path of a member's session and of the API.</item>
/// <item><see cref="BulkAsync(NpgsqlConnection, NpgsqlTransaction, Guid, IReadOnlyList{EventLine}, EventErrorMode, CancellationToken)"/>: the trusted path for the service role or the database owner. PostgreSQL refuses COPY
/// into a table with row-level security to roles that do not bypass it, so this path checks every line here, sets
/// <c>tenant_id</c> itself from its argument, and writes with binary COPY.</item>
/// </list>
/// </summary>
public static class EventIngestion
{
    /// <summary>The most events one <c>ingest_events</c> call takes.</summary>
    public const int MaxBatchSize = 10_000;

    /// <summary>The fields an event may have; any other is refused by name (a line cannot name its tenant).</summary>
    public static readonly IReadOnlyList<string> Fields = EventFields.Names;

    /// <summary>The columns a CSV file may have (a header line names them, in any order); only event_type is required.</summary>
    public static readonly IReadOnlyList<string> CsvColumns = ["event_type", "entity_type", "entity_id", "occurred_at", "idempotency_key", "source", "payload"];


    /// <summary>
    /// Reads newline-delimited JSON: one event object per line, numbered as in the file; blank lines are skipped. Each
    /// line's JSON is checked when it is recorded (on the bulk path, while the lines before are written).
    /// </summary>
    public static async Task<IReadOnlyList<EventLine>> ReadNdjsonAsync(TextReader reader, CancellationToken cancellationToken = default)
    {
        var lines = new List<EventLine>();
        await foreach (var line in StreamNdjsonAsync(reader, cancellationToken))
        {
            lines.Add(line);
        }

        return lines;
    }

    /// <summary><see cref="ReadNdjsonAsync"/>, line by line as the reader yields them (for the bulk path: a file is read while it is written).</summary>
    public static async IAsyncEnumerable<EventLine> StreamNdjsonAsync(TextReader reader, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var number = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } text)
        {
            number++;
            if (!string.IsNullOrWhiteSpace(text))
            {
                yield return new EventLine(number, text, null);
            }
        }
    }

    /// <summary>
    /// Reads CSV (RFC 4180: quoted fields may hold commas, quotes and line breaks) with a header naming
    /// <see cref="CsvColumns"/>. <c>payload</c> is a JSON object in a (quoted) field. An empty optional field means
    /// "not given".
    /// </summary>
    public static async Task<IReadOnlyList<EventLine>> ReadCsvAsync(TextReader reader, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var text = await reader.ReadToEndAsync(cancellationToken);
        var records = CsvText.Records(text).ToList();
        if (records.Count == 0)
        {
            return [];
        }

        var (headerLine, header, headerError) = records[0];
        if (headerError is not null)
        {
            throw new HourglassException($"line {headerLine}: {headerError}");
        }

        var columns = header.Select(h => h.Trim().ToLowerInvariant()).ToList();
        var unknown = columns.Where(c => !CsvColumns.Contains(c)).ToList();
        if (unknown.Count > 0)
        {
            throw new HourglassException($"line {headerLine}: unknown column(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}; the columns are {string.Join(", ", CsvColumns)}");
        }

        if (!columns.Contains("event_type"))
        {
            throw new HourglassException($"line {headerLine}: the header has no 'event_type' column");
        }

        var duplicated = columns.GroupBy(c => c).FirstOrDefault(g => g.Count() > 1);
        if (duplicated is not null)
        {
            throw new HourglassException($"line {headerLine}: the column '{duplicated.Key}' appears twice");
        }

        var lines = new List<EventLine>(records.Count - 1);
        foreach (var (line, fields, error) in records.Skip(1))
        {
            if (error is not null)
            {
                lines.Add(new EventLine(line, null, error));
            }
            else if (fields.Count == 1 && fields[0].Length == 0)
            {
                continue; // a blank line
            }
            else if (fields.Count != columns.Count)
            {
                lines.Add(new EventLine(line, null, string.Create(CultureInfo.InvariantCulture, $"{fields.Count} field(s), but the header has {columns.Count}")));
            }
            else
            {
                lines.Add(CsvLine(line, columns, fields));
            }
        }

        return lines;
    }

    // One CSV record as the JSON object the other paths read. An empty optional field is left out (the default
    // applies); an empty event_type stays, to be named. The payload goes in as the JSON it is, or the line is refused.
    private static EventLine CsvLine(int line, List<string> columns, List<string> fields)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            for (var i = 0; i < columns.Count; i++)
            {
                if (fields[i].Length == 0 && columns[i] != "event_type")
                {
                    continue;
                }

                if (columns[i] != "payload")
                {
                    writer.WriteString(columns[i], fields[i]);
                    continue;
                }

                try
                {
                    writer.WritePropertyName("payload");
                    writer.WriteRawValue(fields[i]);
                }
                catch (JsonException ex)
                {
                    return new EventLine(line, null, $"payload is not valid JSON ({JsonError(ex)})");
                }
            }

            writer.WriteEndObject();
        }

        return new EventLine(line, Encoding.UTF8.GetString(buffer.WrittenSpan), null);
    }

    /// <summary>
    /// Records <paramref name="lines"/> for a tenant through <c>public.ingest_events</c>, in the caller's transaction and
    /// under its role (row-level security applies), in batches of at most <paramref name="batchSize"/>. In
    /// <see cref="EventErrorMode.Refuse"/> mode any bad line — unreadable here or rejected by the database — throws
    /// <see cref="EventBatchRefusedException"/> and nothing is written (the batches already sent are rolled back to a
    /// savepoint). In <see cref="EventErrorMode.Skip"/> mode the valid lines are recorded and every bad one comes back
    /// as rejected, with its line number and reason.
    /// </summary>
    public static async Task<IReadOnlyList<EventOutcome>> RecordAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        IReadOnlyList<EventLine> lines, EventErrorMode mode, int batchSize = 1_000, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(lines);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batchSize, MaxBatchSize);
        var outcomes = new List<EventOutcome>(lines.Count);
        var readable = new List<EventLine>(lines.Count);
        foreach (var line in lines)
        {
            // Checked here: one unreadable line would make the whole batch's jsonb unreadable.
            var error = line.Error ?? (line.Json is null ? "unreadable" : EventFields.Read(line.Json).Error);
            if (error is null)
            {
                readable.Add(line);
            }
            else
            {
                outcomes.Add(new EventOutcome(line.LineNumber, "rejected", null, null, error));
            }
        }

        // Refuse: every batch is written in 'skip' mode inside one savepoint; a bad line anywhere (unreadable, or in the
        // last batch as in the first) rolls all of them back, and every bad line is reported. One pass, no separate
        // validation round.
        if (mode == EventErrorMode.Refuse)
        {
            await transaction.SaveAsync("event_batch", cancellationToken);
        }

        foreach (var chunk in readable.Chunk(batchSize))
        {
            outcomes.AddRange(await CallAsync(connection, transaction, tenantId, chunk, cancellationToken));
        }

        if (mode == EventErrorMode.Refuse)
        {
            var rejected = outcomes.Where(o => o.Outcome == "rejected").OrderBy(o => o.LineNumber).ToList();
            if (rejected.Count > 0)
            {
                await transaction.RollbackAsync("event_batch", cancellationToken);
                throw new EventBatchRefusedException(rejected, lines.Count);
            }

            await transaction.ReleaseAsync("event_batch", cancellationToken);
        }

        return [.. outcomes.OrderBy(o => o.LineNumber)];
    }

    private static async Task<IReadOnlyList<EventOutcome>> CallAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        EventLine[] chunk, CancellationToken cancellationToken)
    {
        // The lines' own JSON, joined: nothing is parsed or written again on the way.
        var array = new StringBuilder(chunk.Sum(l => l.Json!.Length + 1) + 2).Append('[');
        for (var i = 0; i < chunk.Length; i++)
        {
            array.Append(i == 0 ? "" : ",").Append(chunk[i].Json);
        }

        await using var command = new NpgsqlCommand(
            "select line, outcome, event_id, idempotency_key, error from public.ingest_events($1, $2, 'skip')", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = array.Append(']').ToString(), NpgsqlDbType = NpgsqlDbType.Jsonb });
        var outcomes = new List<EventOutcome>(chunk.Length);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            outcomes.Add(new EventOutcome(chunk[reader.GetInt32(0) - 1].LineNumber, reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetGuid(2),
                reader.IsDBNull(3) ? null : reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetString(4)));
        }

        return outcomes;
    }

    /// <summary>
    /// The trusted bulk path: records <paramref name="lines"/> for a tenant in the caller's transaction, which must run
    /// as a role that bypasses row-level security (the service role, the database owner). Every line is checked here
    /// by the rules <c>ingest_events</c> applies (entities looked up set-based in the tenant), <c>tenant_id</c> is
    /// <paramref name="tenantId"/> on every row, and the rows go in by binary COPY: straight into
    /// <c>warehouse_events</c> when none of their keys is taken, else through a temporary table and one
    /// <c>INSERT … ON CONFLICT DO NOTHING</c>. Refuse and skip as in <see cref="RecordAsync"/>; in refuse mode nothing
    /// is written when a line is bad.
    /// </summary>
    public static async Task<IReadOnlyList<EventOutcome>> BulkAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        IReadOnlyList<EventLine> lines, EventErrorMode mode, CancellationToken cancellationToken = default)
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
    /// <see cref="BulkAsync(NpgsqlConnection, NpgsqlTransaction, Guid, IReadOnlyList{EventLine}, EventErrorMode, CancellationToken)"/>
    /// over lines as they are read (<see cref="StreamNdjsonAsync"/>): a file is read while the lines before are written.
    /// </summary>
    public static async Task<IReadOnlyList<EventOutcome>> BulkAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        IAsyncEnumerable<EventLine> lines, EventErrorMode mode, CancellationToken cancellationToken = default)
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
