using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement;

/// <summary>
/// One line of a touch file: the touch as JSON, or why the line could not be read. LineNumber is 1-based, in the
/// file (for CSV, the line the record starts on).
/// </summary>
public sealed record TouchLine(int LineNumber, JsonObject? Touch, string? Error);

/// <summary>What happened to one touch: <c>recorded</c>, <c>duplicate</c> (its idempotency key was already used for it) or <c>rejected</c>.</summary>
public sealed record TouchOutcome(int LineNumber, string Outcome, string? EntityType, Guid? EntityId, string? IdempotencyKey, string? Error);

/// <summary>What a caller does with bad lines: refuse the whole batch (the default) or record the valid rest.</summary>
public enum TouchErrorMode
{
    Refuse,
    Skip,
}

/// <summary>A batch was refused: nothing was recorded. <see cref="Rejected"/> names every bad line and why.</summary>
public sealed class TouchBatchRefusedException(IReadOnlyList<TouchOutcome> rejected, int total)
    : HourglassException(Describe(rejected, total))
{
    public IReadOnlyList<TouchOutcome> Rejected { get; } = rejected;

    private static string Describe(IReadOnlyList<TouchOutcome> rejected, int total)
    {
        var shown = string.Join("; ", rejected.Take(10).Select(r => $"line {r.LineNumber}: {r.Error}"));
        return $"{rejected.Count} of {total} touches rejected, nothing recorded: {shown}{(rejected.Count > 10 ? "; …" : "")}";
    }
}

/// <summary>
/// Touches from outside systems, in batches: read from NDJSON or CSV (bad lines reported by line number) and
/// recorded through <c>public.record_touches</c>, which checks every line against the tenant's data, honours
/// idempotency keys and each touch's own time, and writes set-based. See docs/engagement.md.
/// </summary>
public static class TouchBatch
{
    /// <summary>The most touches one <c>record_touches</c> call takes.</summary>
    public const int MaxBatchSize = 10_000;

    /// <summary>The columns a CSV file may have (a header line names them, in any order); entity_type, entity_id and touch_type are required.</summary>
    public static readonly IReadOnlyList<string> CsvColumns = ["entity_type", "entity_id", "touch_type", "touch_by", "occurred_at", "idempotency_key", "source"];

    /// <summary>Reads newline-delimited JSON: one touch object per line; blank lines are skipped.</summary>
    public static async Task<IReadOnlyList<TouchLine>> ReadNdjsonAsync(TextReader reader, CancellationToken cancellationToken = default)
    {
        var lines = new List<TouchLine>();
        var number = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } text)
        {
            number++;
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            try
            {
                // Text PostgreSQL cannot store (U+0000) is this line's error here: sent on, its jsonb would refuse the batch.
                using var document = JsonDocument.Parse(text);
                var root = document.RootElement;
                lines.Add(root.ValueKind != JsonValueKind.Object ? new TouchLine(number, null, "not a JSON object")
                    : StorableText.Find(root) is var (path, problem) ? new TouchLine(number, null, $"{path}: {problem}")
                    : new TouchLine(number, JsonObject.Create(root.Clone())!, null));
            }
            catch (JsonException ex)
            {
                lines.Add(new TouchLine(number, null, $"not valid JSON ({ex.Message.Split(" LineNumber", 2)[0].TrimEnd('.')})"));
            }
        }

        return lines;
    }

    /// <summary>Reads CSV (RFC 4180: quoted fields may hold commas, quotes and line breaks) with a header naming <see cref="CsvColumns"/>.</summary>
    public static async Task<IReadOnlyList<TouchLine>> ReadCsvAsync(TextReader reader, CancellationToken cancellationToken = default)
    {
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

        foreach (var required in new[] { "entity_type", "entity_id", "touch_type" }.Where(r => !columns.Contains(r)))
        {
            throw new HourglassException($"line {headerLine}: the header has no '{required}' column");
        }

        var duplicated = columns.GroupBy(c => c).FirstOrDefault(g => g.Count() > 1);
        if (duplicated is not null)
        {
            throw new HourglassException($"line {headerLine}: the column '{duplicated.Key}' appears twice");
        }

        var lines = new List<TouchLine>();
        foreach (var (line, fields, error) in records.Skip(1))
        {
            if (error is not null)
            {
                lines.Add(new TouchLine(line, null, error));
            }
            else if (fields.Count == 1 && fields[0].Length == 0)
            {
                continue; // a blank line
            }
            else if (fields.Count != columns.Count)
            {
                lines.Add(new TouchLine(line, null, $"{fields.Count} field(s), but the header has {columns.Count}"));
            }
            else if (fields.Select((f, i) => (Column: columns[i], Problem: StorableText.Problem(f))).FirstOrDefault(f => f.Problem is not null) is { Problem: { } problem } bad)
            {
                lines.Add(new TouchLine(line, null, $"{bad.Column}: {problem}"));
            }
            else
            {
                var touch = new JsonObject();
                for (var i = 0; i < columns.Count; i++)
                {
                    // An empty optional field means "not given" (the default applies); an empty required one stays, to be named.
                    if (fields[i].Length > 0 || columns[i] is "entity_type" or "entity_id" or "touch_type")
                    {
                        touch[columns[i]] = fields[i];
                    }
                }

                lines.Add(new TouchLine(line, touch, null));
            }
        }

        return lines;
    }

    /// <summary>
    /// Records <paramref name="lines"/> for a tenant in the caller's transaction, in batches of at most
    /// <paramref name="batchSize"/>. In <see cref="TouchErrorMode.Refuse"/> mode any bad line — unreadable here or
    /// rejected by the database — throws <see cref="TouchBatchRefusedException"/> before anything is written (the
    /// caller rolls back). In <see cref="TouchErrorMode.Skip"/> mode the valid lines are recorded and every bad one
    /// comes back as rejected, with its line number and reason.
    /// </summary>
    public static async Task<IReadOnlyList<TouchOutcome>> RecordAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        IReadOnlyList<TouchLine> lines, TouchErrorMode mode, int batchSize = 1_000, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batchSize, MaxBatchSize);
        var unreadable = lines.Where(l => l.Touch is null)
            .Select(l => new TouchOutcome(l.LineNumber, "rejected", null, null, null, l.Error ?? "unreadable")).ToList();
        var outcomes = new List<TouchOutcome>(lines.Count);
        outcomes.AddRange(unreadable);
        // Refuse: every batch is written in 'skip' mode inside one savepoint; a bad line anywhere (unreadable, or in the
        // last batch as in the first) rolls all of them back, and every bad line is reported. One pass, no separate
        // validation round.
        if (mode == TouchErrorMode.Refuse)
        {
            await transaction.SaveAsync("touch_batch", cancellationToken);
        }

        foreach (var chunk in lines.Where(l => l.Touch is not null).Chunk(batchSize))
        {
            outcomes.AddRange(await CallAsync(connection, transaction, tenantId, chunk, cancellationToken));
        }

        if (mode == TouchErrorMode.Refuse)
        {
            var rejected = outcomes.Where(o => o.Outcome == "rejected").OrderBy(o => o.LineNumber).ToList();
            if (rejected.Count > 0)
            {
                await transaction.RollbackAsync("touch_batch", cancellationToken);
                throw new TouchBatchRefusedException(rejected, lines.Count);
            }

            await transaction.ReleaseAsync("touch_batch", cancellationToken);
        }

        return [.. outcomes.OrderBy(o => o.LineNumber)];
    }

    private static async Task<IReadOnlyList<TouchOutcome>> CallAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        TouchLine[] chunk, CancellationToken cancellationToken)
    {
        var array = new JsonArray(chunk.Select(l => (JsonNode)l.Touch!.DeepClone()).ToArray());
        await using var command = new NpgsqlCommand(
            "select line, outcome, entity_type, entity_id, idempotency_key, error from public.record_touches($1, $2, 'skip')", connection, transaction);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = array.ToJsonString(), NpgsqlDbType = NpgsqlDbType.Jsonb });
        var outcomes = new List<TouchOutcome>(chunk.Length);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var source = chunk[reader.GetInt32(0) - 1];
            outcomes.Add(new TouchOutcome(source.LineNumber, reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetGuid(3), reader.IsDBNull(4) ? null : reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5)));
        }

        return outcomes;
    }
}
