using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Insights;

/// <summary>
/// One line of an event file: the event's JSON text, or why the line could not be read. LineNumber is 1-based, in
/// the file (for CSV, the line the record starts on). The JSON is checked when the line is recorded — an unreadable
/// one comes back rejected with its number — or at once with <see cref="Parse"/>.
/// </summary>
public sealed record EventLine(int LineNumber, string? Json, string? Error)
{
    /// <summary>
    /// Checks one event's JSON text now: an object with the fields of <see cref="EventIngestion.Fields"/>. Text that is
    /// not a JSON object, repeats a property, or holds what PostgreSQL cannot store (U+0000, an unpaired surrogate)
    /// comes back with <see cref="Error"/> set.
    /// </summary>
    public static EventLine Parse(int lineNumber, string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var error = EventFields.Read(json).Error;
        return error is null ? new EventLine(lineNumber, json, null) : new EventLine(lineNumber, null, error);
    }

    /// <summary>An event built in code, checked as <see cref="Parse"/> checks a line.</summary>
    public static EventLine FromObject(int lineNumber, JsonObject value)
    {
        ArgumentNullException.ThrowIfNull(value);
        string json;
        try
        {
            json = value.ToJsonString();
        }
        catch (InvalidOperationException)
        {
            return new EventLine(lineNumber, null, "not valid JSON (a string with an unpaired surrogate)");
        }

        return Parse(lineNumber, json);
    }
}

/// <summary>
/// What happened to one event: <c>recorded</c>, <c>duplicate</c> (its idempotency key was already used for the same
/// event, whose id <see cref="EventId"/> is) or <c>rejected</c> (with <see cref="Error"/>).
/// </summary>
public sealed record EventOutcome(int LineNumber, string Outcome, Guid? EventId, string? IdempotencyKey, string? Error);

/// <summary>What a caller does with bad lines: refuse the whole batch (the default) or record the valid rest.</summary>
public enum EventErrorMode
{
    Refuse,
    Skip,
}

/// <summary>A batch of events was refused: nothing was recorded. <see cref="Rejected"/> names every bad line and why.</summary>
public sealed class EventBatchRefusedException(IReadOnlyList<EventOutcome> rejected, int total)
    : HourglassException(Describe(rejected, total))
{
    public IReadOnlyList<EventOutcome> Rejected { get; } = rejected;

    private static string Describe(IReadOnlyList<EventOutcome> rejected, int total)
    {
        var shown = string.Join("; ", rejected.Take(20).Select(r => string.Create(CultureInfo.InvariantCulture, $"line {r.LineNumber}: {r.Error}")));
        return string.Create(CultureInfo.InvariantCulture,
            $"{rejected.Count} of {total} events rejected, nothing recorded: {shown}{(rejected.Count > 20 ? "; …" : "")}");
    }
}

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

/// <summary>
/// One run of <c>EventIngestion.BulkAsync</c>. The lines go through in chunks: while the database writes one chunk, the
/// next is read (from the file, when streamed) and checked on another thread, so reading and checking cost almost no
/// time of their own. For each chunk, in line order: its entities are looked up in the tenant (one query, on the
/// caller's connection and transaction, so it sees what the caller sees), keys repeated in the batch are resolved
/// against the first valid line with the key, and the valid new rows are written — straight into warehouse_events by
/// binary COPY when a probe of the chunk's keys finds none taken, else (or when the COPY meets the unique index after
/// all) through a temporary table and INSERT … ON CONFLICT DO NOTHING. In refuse mode the first bad line stops the
/// writing, the rest is still checked so that every bad line is named, and everything is rolled back to the savepoint
/// taken at the start.
/// </summary>
internal sealed class EventBulkBatch
{
    /// <summary>Lines per chunk.</summary>
    internal const int ChunkSize = 50_000;

    private const int ProbeSample = 1_000;

    // A temporary table (in pg_temp, named without it where created): unlogged, private to the session, gone at commit.
    private const string StagingName = "hourglass_event_batch";
    private const string Staging = "pg_temp." + StagingName;
    private const string Columns = "id, tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at";

    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;
    private readonly Guid _tenantId;
    private readonly EventErrorMode _mode;
    private readonly DateTime _now;
    private readonly int _skewSeconds;
    private readonly List<EventOutcome> _outcomes = [];

    // Each key's first valid line: its row (to compare a later line with) and its place in _outcomes.
    private readonly Dictionary<string, (EventRow Row, int Outcome)> _firstWithKey = new(StringComparer.Ordinal);
    private int _idsMade;
    private bool _refused;

    private EventBulkBatch(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, EventErrorMode mode, DateTime now, int skewSeconds) =>
        (_connection, _transaction, _tenantId, _mode, _now, _skewSeconds) = (connection, transaction, tenantId, mode, now, skewSeconds);

    /// <summary>
    /// One chunk's lines and, by position, what became of each. Two are used in turn (one read while the other is
    /// written), so a million lines do not allocate twenty sets of arrays on the large object heap.
    /// </summary>
    private sealed class Chunk
    {
        public EventLine[] Lines { get; } = new EventLine[ChunkSize];

        public int Count { get; private set; }

        public EventRow?[] Rows { get; } = new EventRow?[ChunkSize];

        public string?[] Errors { get; } = new string?[ChunkSize];

        public string?[] TimeErrors { get; } = new string?[ChunkSize];

        public string?[] Keys { get; } = new string?[ChunkSize];

        public EventOutcome?[] Outcomes { get; } = new EventOutcome?[ChunkSize];

        public void Reset(int count)
        {
            Count = count;
            Array.Clear(Rows);
            Array.Clear(Errors);
            Array.Clear(TimeErrors);
            Array.Clear(Keys);
            Array.Clear(Outcomes);
        }

        public EventOutcome Rejected(int i, string error) => new(Lines[i].LineNumber, "rejected", null, Keys[i], error);
    }

    // The tenant check ingest_events makes, the database clock and the tenant's skew, in one round trip; and the role
    // check: only a role that bypasses RLS may COPY into warehouse_events, and only such a role is trusted to set
    // tenant_id itself.
    public static async Task<EventBulkBatch> StartAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        EventErrorMode mode, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            select hourglass.caller_bypasses_rls(), hourglass.now(),
                   greatest(hourglass.tenant_setting_int($1, 'event_future_skew_seconds', 300), 0),
                   -- Only a trusted role gets as far as the tenant check; anyone else is refused below, in words.
                   case when hourglass.caller_bypasses_rls() then (select true from hourglass.assert_tenant_access($1, 'ingest_events (bulk)')) end
            """, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        if (!reader.GetBoolean(0))
        {
            throw new HourglassException(
                "the bulk path writes as a trusted role: run it as the service role or the database owner (a member's session records events through ingest_events)");
        }

        return new EventBulkBatch(connection, transaction, tenantId, mode, reader.GetFieldValue<DateTime>(1), reader.GetInt32(2));
    }

    /// <summary>Runs the batch over <paramref name="fill"/>, which puts the next lines in the array it is given and returns how many (fewer than its length only at the end).</summary>
    public async Task<IReadOnlyList<EventOutcome>> RunAsync(Func<EventLine[], CancellationToken, ValueTask<int>> fill, CancellationToken cancellationToken)
    {
        await _transaction.SaveAsync("event_bulk", cancellationToken);
        Chunk[] chunks = [new(), new()];
        var turn = 0;
        var reading = ReadAsync(chunks[turn], fill, cancellationToken);
        try
        {
            while (await reading is { } chunk)
            {
                // The next chunk is read while this one is written.
                turn ^= 1;
                reading = chunk.Count == ChunkSize ? ReadAsync(chunks[turn], fill, cancellationToken) : Task.FromResult<Chunk?>(null);
                await WriteChunkAsync(chunk, cancellationToken);
            }
        }
        finally
        {
            // Not left running behind a failure.
            await reading.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }

        if (_refused)
        {
            await _transaction.RollbackAsync("event_bulk", cancellationToken);
            throw new EventBatchRefusedException([.. _outcomes.Where(o => o.Outcome == "rejected")], _outcomes.Count);
        }

        await _transaction.ReleaseAsync("event_bulk", cancellationToken);
        return _outcomes;
    }

    // Takes the next lines and checks each: pure work on each line alone, on a thread of its own.
    private Task<Chunk?> ReadAsync(Chunk chunk, Func<EventLine[], CancellationToken, ValueTask<int>> fill, CancellationToken cancellationToken) =>
        Task.Run(async () =>
        {
            var count = await fill(chunk.Lines, cancellationToken);
            if (count == 0)
            {
                return null;
            }

            chunk.Reset(count);
            ReadLines(chunk);
            return chunk;
        }, cancellationToken);

    private void ReadLines(Chunk chunk)
    {
        // Repeated types and sources share one string.
        var shared = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < chunk.Count; i++)
        {
            var line = chunk.Lines[i];
            var (fields, readError) = line.Error is not null ? (null, line.Error)
                : line.Json is null ? (null, "unreadable")
                : EventFields.Read(line.Json);
            if (fields is null)
            {
                chunk.Errors[i] = readError;
                continue;
            }

            chunk.Keys[i] = fields.IdempotencyKey;
            (var row, chunk.Errors[i], chunk.TimeErrors[i]) = EventRules.Check(fields, _now, _skewSeconds);
            chunk.Rows[i] = row is { } valid ? valid with { EventType = Share(shared, valid.EventType), Source = Share(shared, valid.Source) } : null;
        }
    }

    private static string Share(Dictionary<string, string> shared, string value)
    {
        if (shared.TryGetValue(value, out var known))
        {
            return known;
        }

        if (shared.Count < 10_000)
        {
            shared[value] = value;
        }

        return value;
    }

    private async Task WriteChunkAsync(Chunk chunk, CancellationToken cancellationToken)
    {
        await CheckEntitiesAsync(chunk, cancellationToken);

        // Keys repeated within the batch: the first valid line with a key counts; a later one is its duplicate when it
        // is the same event, else rejected. Lines are numbered across the batch by their place in _outcomes.
        var start = _outcomes.Count;
        var duplicates = new List<(int Line, int First)>();
        var fresh = new List<int>(chunk.Count);
        for (var i = 0; i < chunk.Count; i++)
        {
            chunk.Errors[i] ??= chunk.TimeErrors[i];
            if (chunk.Errors[i] is not null)
            {
                chunk.Rows[i] = null;
                continue;
            }

            var row = chunk.Rows[i]!.Value;
            if (row.Key is not { } key)
            {
                fresh.Add(i);
            }
            else if (!_firstWithKey.TryGetValue(key, out var first))
            {
                // Kept with a payload of its own: the line it is cut from need not outlive its chunk.
                _firstWithKey[key] = (row with { Payload = row.Payload.ToString().AsMemory() }, start + i);
                fresh.Add(i);
            }
            else if (EventRules.SameEvent(first.Row, row))
            {
                duplicates.Add((i, first.Outcome));
            }
            else
            {
                chunk.Errors[i] = $"idempotency_key {EventRules.Literal(key)} appears earlier in the batch for a different event";
                chunk.Rows[i] = null;
            }
        }

        for (var i = 0; i < chunk.Count; i++)
        {
            if (chunk.Errors[i] is { } error)
            {
                chunk.Outcomes[i] = chunk.Rejected(i, error);
                _refused |= _mode == EventErrorMode.Refuse;
            }
        }

        // Once refused, nothing more is written; the keys are still compared, so that every bad line is named.
        var ids = EventIds.Create(fresh.Count, _now, _idsMade);
        _idsMade += fresh.Count;
        var taken = _refused ? await CompareAsync(chunk, fresh, ids, cancellationToken) : await InsertAsync(chunk, fresh, ids, cancellationToken);
        for (var n = 0; n < fresh.Count; n++)
        {
            var i = fresh[n];
            var key = chunk.Rows[i]!.Value.Key;
            chunk.Outcomes[i] = !taken.TryGetValue(i, out var existing) ? new EventOutcome(chunk.Lines[i].LineNumber, "recorded", ids[n], key, null)
                : existing.Same ? new EventOutcome(chunk.Lines[i].LineNumber, "duplicate", existing.Id, key, null)
                : chunk.Rejected(i, $"idempotency_key {EventRules.Literal(key!)} was already used for a different event");
        }

        // A duplicate shares its first line's fate: the same id, or the same rejection.
        foreach (var (line, first) in duplicates)
        {
            var outcome = first < start ? _outcomes[first] : chunk.Outcomes[first - start]!;
            chunk.Outcomes[line] = outcome.Outcome == "rejected"
                ? chunk.Rejected(line, outcome.Error!)
                : new EventOutcome(chunk.Lines[line].LineNumber, "duplicate", outcome.EventId, outcome.IdempotencyKey, null);
        }

        _refused |= _mode == EventErrorMode.Refuse && taken.Values.Any(t => !t.Same);
        for (var i = 0; i < chunk.Count; i++)
        {
            _outcomes.Add(chunk.Outcomes[i]!);
        }
    }

    // Every contact, account and order the chunk names, looked up in the tenant at once.
    private async Task CheckEntitiesAsync(Chunk chunk, CancellationToken cancellationToken)
    {
        var wanted = new Dictionary<string, HashSet<Guid>>(StringComparer.Ordinal) { ["contact"] = [], ["account"] = [], ["order"] = [] };
        for (var i = 0; i < chunk.Count; i++)
        {
            if (chunk.Rows[i] is { EntityType: { } type, EntityId: { } id } && wanted.TryGetValue(type, out var set))
            {
                set.Add(id);
            }
        }

        var found = new HashSet<(string, Guid)>();
        if (wanted.Values.Any(s => s.Count > 0))
        {
            await using var command = new NpgsqlCommand("""
                select 'contact', k.id from public.contacts k where k.tenant_id = $1 and k.id = any ($2)
                union all
                select 'account', a.id from public.accounts a where a.tenant_id = $1 and a.id = any ($3)
                union all
                select 'order', o.id from public.orders o where o.tenant_id = $1 and o.id = any ($4)
                """, _connection, _transaction);
            command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = _tenantId });
            command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. wanted["contact"]] });
            command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. wanted["account"]] });
            command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. wanted["order"]] });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                found.Add((reader.GetString(0), reader.GetGuid(1)));
            }
        }

        for (var i = 0; i < chunk.Count; i++)
        {
            if (chunk.Errors[i] is not null || chunk.Rows[i] is not { EntityType: { } type, EntityId: { } id })
            {
                continue;
            }

            if (type == "tenant" ? id != _tenantId : !found.Contains((type, id)))
            {
                chunk.Errors[i] = type == "tenant"
                    ? string.Create(CultureInfo.InvariantCulture, $"tenant {id} is not this tenant")
                    : string.Create(CultureInfo.InvariantCulture, $"{type} {id} does not exist in this tenant");
            }
        }
    }

    // Writes the chunk's new rows; returns, by line, the events already holding their keys (and whether each is the same event).
    private async Task<Dictionary<int, (Guid Id, bool Same)>> InsertAsync(Chunk chunk, List<int> fresh, Guid[] ids, CancellationToken cancellationToken)
    {
        if (fresh.Count == 0)
        {
            return [];
        }

        await _transaction.SaveAsync("event_chunk", cancellationToken);
        if (!await AnyKeyTakenAsync(chunk, fresh, cancellationToken))
        {
            // Optimistic: no key of the chunk was taken when probed, so COPY goes straight into the table. A key taken
            // after all (one the sample missed, or a concurrent batch's) fails it with unique_violation, and the chunk
            // goes the careful way instead.
            try
            {
                await CopyAsync(chunk, $"copy public.warehouse_events ({Columns}) from stdin (format binary)", fresh, ids, staging: false, cancellationToken);
                await _transaction.ReleaseAsync("event_chunk", cancellationToken);
                return [];
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                await _transaction.RollbackAsync("event_chunk", cancellationToken);
            }
        }

        await StageAsync(chunk, fresh, ids, cancellationToken);
        // tenant_id is the argument's, here as in the staged rows: nothing from the file decides it.
        var written = await EventIngestion.ExecuteAsync(_connection, _transaction, $"""
            insert into public.warehouse_events ({Columns})
            select s.id, $1, s.event_type, s.entity_type, s.entity_id, s.payload, s.source, s.idempotency_key, s.occurred_at
            from {Staging} s
            on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
            """, _tenantId, cancellationToken);
        // The rows not written: their key is held by another event (before this batch, or a concurrent batch's, which this
        // new statement sees).
        var taken = written < fresh.Count ? await TakenAsync(cancellationToken) : [];
        await EventIngestion.ExecuteAsync(_connection, _transaction, $"drop table {Staging}", tenantId: null, cancellationToken);
        await _transaction.ReleaseAsync("event_chunk", cancellationToken);
        return taken;
    }

    // After a refusal: nothing is written, but each new row's key is still compared with the event holding it, if any.
    private async Task<Dictionary<int, (Guid Id, bool Same)>> CompareAsync(Chunk chunk, List<int> fresh, Guid[] ids, CancellationToken cancellationToken)
    {
        if (!fresh.Any(i => chunk.Rows[i]!.Value.Key is not null))
        {
            return [];
        }

        await StageAsync(chunk, fresh, ids, cancellationToken);
        var taken = await TakenAsync(cancellationToken);
        await EventIngestion.ExecuteAsync(_connection, _transaction, $"drop table {Staging}", tenantId: null, cancellationToken);
        return taken;
    }

    private async Task StageAsync(Chunk chunk, List<int> fresh, Guid[] ids, CancellationToken cancellationToken)
    {
        await EventIngestion.ExecuteAsync(_connection, _transaction, $"""
            create temporary table {StagingName} (
              line integer not null, id uuid not null, tenant_id uuid not null, event_type text not null, entity_type text, entity_id uuid,
              payload jsonb not null, source text not null, idempotency_key text, occurred_at timestamptz not null, explicit_time boolean not null
            ) on commit drop
            """, tenantId: null, cancellationToken);
        await CopyAsync(chunk, $"copy {Staging} (line, {Columns}, explicit_time) from stdin (format binary)", fresh, ids, staging: true, cancellationToken);
    }

    // Staged rows whose key another event holds: the same event (type, entity, payload as jsonb compares it, and the
    // time when the line gave one) or not.
    private async Task<Dictionary<int, (Guid Id, bool Same)>> TakenAsync(CancellationToken cancellationToken)
    {
        var taken = new Dictionary<int, (Guid, bool)>();
        await using var command = new NpgsqlCommand($"""
            select s.line, w.id,
                   (w.event_type, w.entity_type, w.entity_id, w.payload) is not distinct from (s.event_type, s.entity_type, s.entity_id, s.payload)
                   and (not s.explicit_time or w.occurred_at = s.occurred_at)
            from {Staging} s
            join public.warehouse_events w on w.tenant_id = $1 and w.idempotency_key = s.idempotency_key
            where s.idempotency_key is not null and w.id <> s.id
            """, _connection, _transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = _tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            taken[reader.GetInt32(0)] = (reader.GetGuid(1), reader.GetBoolean(2));
        }

        return taken;
    }

    // Whether any key of the chunk is taken: all of them for up to 1,000 keys, else 1,000 spread evenly over it — a
    // resent file trips it at once. It only chooses the way; the unique index decides.
    private async Task<bool> AnyKeyTakenAsync(Chunk chunk, List<int> fresh, CancellationToken cancellationToken)
    {
        var keys = fresh.Select(i => chunk.Rows[i]!.Value.Key).OfType<string>().ToList();
        if (keys.Count == 0)
        {
            return false;
        }

        var probe = keys.Count <= ProbeSample
            ? keys
            : [.. Enumerable.Range(0, ProbeSample).Select(k => keys[(int)((long)k * (keys.Count - 1) / (ProbeSample - 1))])];
        await using var command = new NpgsqlCommand(
            "select exists (select 1 from public.warehouse_events w where w.tenant_id = $1 and w.idempotency_key = any ($2))", _connection, _transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = _tenantId });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. probe] });
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private async Task CopyAsync(Chunk chunk, string copy, List<int> fresh, Guid[] ids, bool staging, CancellationToken cancellationToken)
    {
        await using var writer = await _connection.BeginBinaryImportAsync(copy, cancellationToken);
        // The synchronous writes: they copy into Npgsql's buffer and block only when it is full and sent, and a million
        // rows of ten async calls each cost the client more than the server spends on them.
        for (var n = 0; n < fresh.Count; n++)
        {
            var row = chunk.Rows[fresh[n]]!.Value;
            writer.StartRow();
            if (staging)
            {
                writer.Write(fresh[n], NpgsqlDbType.Integer);
            }

            writer.Write(ids[n], NpgsqlDbType.Uuid);
            writer.Write(_tenantId, NpgsqlDbType.Uuid);
            writer.Write(row.EventType, NpgsqlDbType.Text);
            Write(writer, row.EntityType, NpgsqlDbType.Text);
            Write(writer, row.EntityId, NpgsqlDbType.Uuid);
            writer.Write(row.Payload, NpgsqlDbType.Jsonb);
            writer.Write(row.Source, NpgsqlDbType.Text);
            Write(writer, row.Key, NpgsqlDbType.Text);
            writer.Write(row.OccurredAt, NpgsqlDbType.TimestampTz);
            if (staging)
            {
                writer.Write(row.ExplicitTime, NpgsqlDbType.Boolean);
            }
        }

        await writer.CompleteAsync(cancellationToken);
    }

    private static void Write<T>(NpgsqlBinaryImporter writer, T? value, NpgsqlDbType type)
    {
        if (value is null)
        {
            writer.WriteNull();
        }
        else
        {
            writer.Write(value, type);
        }
    }
}

/// <summary>An event's fields as read from its JSON, before any rule is applied. Strings as given; the payload as its JSON text.</summary>
internal sealed class EventFields
{
    public static readonly string[] Names = ["event_type", "entity_type", "entity_id", "payload", "occurred_at", "idempotency_key", "source"];

    private const int Payload = 3;
    private const string NulError = "a string holds the character U+0000, which PostgreSQL cannot store";
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private static readonly byte[][] s_utf8Names = [.. Names.Select(Encoding.UTF8.GetBytes)];

    // The payload's property names, per open object (reused: a million lines must not mean a million sets). An object
    // with many properties gets a set, so a hostile payload costs linear time, not quadratic.
    [ThreadStatic]
    private static List<string>? t_names;

    [ThreadStatic]
    private static List<(int Start, HashSet<string>? Set)>? t_frames;

    private const int LinearScanLimit = 16;

    private readonly string?[] _strings = new string?[Names.Length];

    public string? EventType => _strings[0];

    public string? EntityType => _strings[1];

    public string? EntityId => _strings[2];

    public string? OccurredAt => _strings[4];

    public string? IdempotencyKey => _strings[5];

    public string? Source => _strings[6];

    /// <summary>
    /// The payload's JSON text when it is an object (null when absent or JSON null): a slice of the line itself when the
    /// line is ASCII (UTF-8 offsets are then character offsets), so a million rows do not hold a million more strings.
    /// </summary>
    public ReadOnlyMemory<char>? PayloadJson { get; private set; }

    /// <summary>What ingest_events would say first about the line's shape (unknown fields, a field of the wrong JSON type), or null.</summary>
    public string? ShapeError { get; private set; }

    /// <summary>Reads a line's JSON text: its fields, or why it cannot be read (not JSON, not an object, a repeated property, text PostgreSQL cannot store).</summary>
    public static (EventFields? Fields, string? Error) Read(string json)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(s_strictUtf8.GetMaxByteCount(json.Length));
        try
        {
            int length;
            try
            {
                length = s_strictUtf8.GetBytes(json, buffer);
            }
            catch (EncoderFallbackException)
            {
                return (null, "not valid text (an unpaired surrogate)");
            }

            try
            {
                // As many bytes as characters: all ASCII, so a byte range of the UTF-8 is the same range of the text.
                return Read(buffer.AsSpan(0, length), length == json.Length ? json : null);
            }
            catch (JsonException ex)
            {
                return (null, $"not valid JSON ({EventIngestion.JsonError(ex)})");
            }
            catch (InvalidOperationException)
            {
                // Utf8JsonReader.GetString on an escaped unpaired surrogate (\ud800).
                return (null, "not valid JSON (a string with an unpaired surrogate)");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static (EventFields?, string?) Read(ReadOnlySpan<byte> bytes, string? asciiText)
    {
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { MaxDepth = 64 });
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            EnsureEnd(ref reader);
            return (null, "not a JSON object");
        }

        var fields = new EventFields();
        Span<JsonTokenType> kinds = stackalloc JsonTokenType[Names.Length];
        var seen = 0;
        List<string>? unknown = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var index = FieldIndex(ref reader);
            var name = index >= 0 ? Names[index] : reader.GetString()!;
            if (index >= 0 ? (seen & (1 << index)) != 0 : unknown?.Contains(name, StringComparer.Ordinal) == true)
            {
                return (null, $"not valid JSON (the property {EventRules.Literal(name)} appears twice)");
            }

            reader.Read();
            if (index < 0)
            {
                (unknown ??= []).Add(name);
                reader.Skip();
                continue;
            }

            seen |= 1 << index;
            kinds[index] = reader.TokenType;
            if (index == Payload && reader.TokenType == JsonTokenType.StartObject)
            {
                var start = (int)reader.TokenStartIndex;
                if (CheckPayload(ref reader) is { } error)
                {
                    return (null, error);
                }

                var end = (int)reader.BytesConsumed;
                fields.PayloadJson = asciiText?.AsMemory(start, end - start) ?? Encoding.UTF8.GetString(bytes[start..end]).AsMemory();
            }
            else if (reader.TokenType == JsonTokenType.String)
            {
                var value = reader.GetString()!;
                if (reader.ValueIsEscaped && value.Contains('\0', StringComparison.Ordinal))
                {
                    return (null, NulError);
                }

                fields._strings[index] = value;
            }
            else
            {
                reader.Skip();
            }
        }

        EnsureEnd(ref reader);
        fields.ShapeError = ShapeErrorOf(unknown, kinds);
        return (fields, null);
    }

    // ingest_events' order: unknown fields, then the first field (in Names' order) of the wrong JSON type.
    private static string? ShapeErrorOf(List<string>? unknown, ReadOnlySpan<JsonTokenType> kinds)
    {
        if (unknown is not null)
        {
            return $"unknown field(s) {string.Join(", ", unknown.Order(StringComparer.Ordinal).Select(EventRules.Literal))} (the fields are {string.Join(", ", Names)})";
        }

        for (var i = 0; i < Names.Length; i++)
        {
            if (i != Payload && kinds[i] is not (JsonTokenType.None or JsonTokenType.String or JsonTokenType.Null))
            {
                return $"{Names[i]} must be a string (got {TypeName(kinds[i])})";
            }
        }

        return kinds[Payload] is JsonTokenType.None or JsonTokenType.StartObject or JsonTokenType.Null
            ? null
            : $"payload must be a JSON object (got {TypeName(kinds[Payload])})";
    }

    // jsonb_typeof's names.
    private static string TypeName(JsonTokenType kind) => kind switch
    {
        JsonTokenType.StartObject => "object",
        JsonTokenType.StartArray => "array",
        JsonTokenType.String => "string",
        JsonTokenType.Number => "number",
        JsonTokenType.True or JsonTokenType.False => "boolean",
        _ => "null",
    };

    private static int FieldIndex(ref Utf8JsonReader reader)
    {
        for (var i = 0; i < s_utf8Names.Length; i++)
        {
            if (reader.ValueTextEquals(s_utf8Names[i]))
            {
                return i;
            }
        }

        return -1;
    }

    // Walks the payload object to its end: every object's property names once each (jsonb would silently keep only the
    // last of a repeated one), and no U+0000 in any string.
    private static string? CheckPayload(ref Utf8JsonReader reader)
    {
        var names = t_names ??= [];
        var frames = t_frames ??= [];
        names.Clear();
        frames.Clear();
        var depth = reader.CurrentDepth;
        while (true)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    frames.Add((names.Count, null));
                    break;
                case JsonTokenType.EndObject:
                    names.RemoveRange(frames[^1].Start, names.Count - frames[^1].Start);
                    frames.RemoveAt(frames.Count - 1);
                    if (reader.CurrentDepth == depth)
                    {
                        return null;
                    }

                    break;
                case JsonTokenType.PropertyName:
                    var name = reader.GetString()!;
                    var (start, set) = frames[^1];
                    if (set is null && names.Count - start >= LinearScanLimit)
                    {
                        set = new HashSet<string>(names.Skip(start), StringComparer.Ordinal);
                        frames[^1] = (start, set);
                    }

                    if (set is null ? names.IndexOf(name, start) >= 0 : !set.Add(name))
                    {
                        return $"not valid JSON (the property {EventRules.Literal(name)} appears twice in payload)";
                    }

                    names.Add(name);
                    if (reader.ValueIsEscaped && name.Contains('\0', StringComparison.Ordinal))
                    {
                        return NulError;
                    }

                    break;
                case JsonTokenType.String when reader.ValueIsEscaped && reader.GetString()!.Contains('\0', StringComparison.Ordinal):
                    return NulError;
            }

            reader.Read();
        }
    }

    private static void EnsureEnd(ref Utf8JsonReader reader)
    {
        // Trailing text after the value: the reader throws for anything but whitespace.
        if (reader.Read())
        {
            throw new JsonException("more than one JSON value on the line");
        }
    }
}

/// <summary>
/// Ids for a batch of new events: version-7 uuids (RFC 9562) with the batch's time and a counter in the 32 bits after
/// it (method 1, "fixed bit-length dedicated counter"), the remaining 42 bits random. Increasing within the batch, so a
/// million new rows append to the primary key's index instead of splitting pages all over it; unique across batches by
/// the random bits. One call to the random source for the whole batch (Guid.CreateVersion7 makes one per id).
/// </summary>
internal static class EventIds
{
    public static Guid[] Create(int count, DateTime time, int firstCounter = 0)
    {
        var ids = new Guid[count];
        var random = new byte[count * 16];
        RandomNumberGenerator.Fill(random);
        var milliseconds = (ulong)new DateTimeOffset(time).ToUnixTimeMilliseconds();
        Span<byte> bytes = stackalloc byte[16];
        for (var i = 0; i < count; i++)
        {
            var counter = (uint)(firstCounter + i);
            random.AsSpan(i * 16, 16).CopyTo(bytes);
            BinaryPrimitives.WriteUInt64BigEndian(bytes, (milliseconds << 16) | 0x7000u | (counter >> 20));   // time, version 7, counter's top 12 bits
            bytes[8] = (byte)(0x80 | ((counter >> 14) & 0x3F));                                               // variant 10, the counter's next 6 bits
            bytes[9] = (byte)(counter >> 6);                                                                 // and its next 8
            bytes[10] = (byte)((counter << 2) | (bytes[10] & 0x03u));                                        // and its last 6; then random
            ids[i] = new Guid(bytes, bigEndian: true);
        }

        return ids;
    }
}

/// <summary>One event, checked, as the bulk path writes it.</summary>
internal readonly record struct EventRow(string EventType, string? EntityType, Guid? EntityId, ReadOnlyMemory<char> Payload, string Source,
    DateTime OccurredAt, bool ExplicitTime, string? Key);

/// <summary>
/// The rules of <c>public.ingest_events</c> (20251225000000_event_ingestion.sql), in C# for the bulk path: the same
/// checks in the same order, with the same messages. Pure: the database clock and the tenant's skew come in.
/// </summary>
internal static class EventRules
{
    private static readonly string[] s_entityTypes = ["contact", "account", "order", "tenant"];
    private static readonly long s_epochTicks = DateTime.UnixEpoch.Ticks;

    /// <summary>
    /// The row, or the line's error; and separately an error about its time, which ranks behind the entity checks
    /// the caller makes against the database.
    /// </summary>
    public static (EventRow? Row, string? Error, string? TimeError) Check(EventFields fields, DateTime now, int skewSeconds)
    {
        if (fields.ShapeError is { } shape)
        {
            return (null, shape, null);
        }

        var eventType = fields.EventType;
        if (eventType is null || IsBlank(eventType) || CodePoints(eventType) > 100)
        {
            return (null, "event_type is required (1-100 characters)", null);
        }

        // The shared instance of a known type: a million rows hold four strings, not a million.
        var entityType = fields.EntityType is { } givenType ? Array.Find(s_entityTypes, t => t == givenType) : null;
        if (fields.EntityType is not null && entityType is null)
        {
            return (null, $"entity_type must be 'contact', 'account', 'order' or 'tenant' (got {Literal(fields.EntityType)})", null);
        }

        if (entityType is null && fields.EntityId is not null)
        {
            return (null, "entity_id is given without an entity_type", null);
        }

        Guid? entityId = null;
        if (entityType is not null)
        {
            if (fields.EntityId is not { Length: 36 } text || !Guid.TryParseExact(text, "D", out var id))
            {
                return (null, $"entity_id must be a uuid (got {(fields.EntityId is null ? "nothing" : Literal(fields.EntityId))})", null);
            }

            entityId = id;
        }

        if (fields.Source is { } source && (IsBlank(source) || CodePoints(source) > 100))
        {
            return (null, "source must be 1-100 characters", null);
        }

        long ticks = 0;
        if (fields.OccurredAt is { } occurred && !TryParseTimestamp(occurred, out ticks))
        {
            return (null, $"occurred_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2025-12-01T09:30:00Z (got {Literal(occurred)})", null);
        }

        if (fields.IdempotencyKey is { } key && (IsBlank(key) || CodePoints(key) > 200))
        {
            return (null, "idempotency_key must be 1-200 characters", null);
        }

        string? timeError = null;
        var at = now;
        if (fields.OccurredAt is { } given)
        {
            if (ticks < s_epochTicks)
            {
                timeError = $"occurred_at {Literal(given)} is before 1970";
            }
            else if (ticks > now.Ticks + (skewSeconds * TimeSpan.TicksPerSecond))
            {
                timeError = string.Create(CultureInfo.InvariantCulture,
                    $"occurred_at {Literal(given)} is in the future (more than {skewSeconds} seconds ahead of the database clock)");
            }
            else
            {
                at = new DateTime(ticks, DateTimeKind.Utc);
            }
        }

        var row = new EventRow(eventType, entityType, entityId, fields.PayloadJson ?? "{}".AsMemory(), fields.Source ?? "api", at, fields.OccurredAt is not null,
            fields.IdempotencyKey);
        return (row, null, timeError);
    }

    /// <summary>
    /// Whether a later line with the same key is the same event as the first: type, entity and payload (as jsonb
    /// compares them), and the time when the later line gives one.
    /// </summary>
    public static bool SameEvent(EventRow first, EventRow later) =>
        first.EventType == later.EventType && first.EntityType == later.EntityType && first.EntityId == later.EntityId
        && (!later.ExplicitTime || first.OccurredAt == later.OccurredAt)
        && (first.Payload.Span.SequenceEqual(later.Payload.Span)
            || JsonNode.DeepEquals(JsonNode.Parse(first.Payload.ToString()), JsonNode.Parse(later.Payload.ToString())));

    /// <summary>PostgreSQL's quote_literal (format's %L): single quotes doubled; with a backslash, an E'' string with it doubled.</summary>
    public static string Literal(string value) =>
        value.Contains('\\', StringComparison.Ordinal)
            ? $"E'{value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal)}'"
            : $"'{value.Replace("'", "''", StringComparison.Ordinal)}'";

    // btrim's default trims spaces only.
    private static bool IsBlank(string value) => value.AsSpan().Trim(' ').IsEmpty;

    // length() counts characters, not UTF-16 units.
    private static int CodePoints(string value)
    {
        var count = value.Length;
        foreach (var c in value)
        {
            if (char.IsLowSurrogate(c))
            {
                count--;
            }
        }

        return count;
    }

    /// <summary>
    /// ISO-8601 with a UTC offset, as ingest_events' pattern accepts it —
    /// <c>YYYY-MM-DD[T ]hh:mm[:ss[.f{1,9}]](Z|z|±HH[[:]MM])</c>, a real date, offsets to ±15:59 — as UTC ticks,
    /// fractions rounded to microseconds as PostgreSQL rounds them. The ticks may fall outside DateTime's range.
    /// </summary>
    public static bool TryParseTimestamp(string text, out long utcTicks)
    {
        utcTicks = 0;
        var s = text.AsSpan();
        if (s.Length < 17 || !Digits(s, 0, 4, out var year) || s[4] != '-' || !Digits(s, 5, 2, out var month) || s[7] != '-'
            || !Digits(s, 8, 2, out var day) || s[10] is not ('T' or ' ') || !Digits(s, 11, 2, out var hour) || s[13] != ':'
            || !Digits(s, 14, 2, out var minute))
        {
            return false;
        }

        var position = 16;
        var second = 0;
        long micros = 0;
        if (s[position] == ':')
        {
            if (!Digits(s, position + 1, 2, out second))
            {
                return false;
            }

            position += 3;
            if (position < s.Length && s[position] == '.')
            {
                var end = position + 1;
                while (end < s.Length && char.IsAsciiDigit(s[end]))
                {
                    end++;
                }

                if (end - position - 1 is < 1 or > 9)
                {
                    return false;
                }

                // As PostgreSQL: the fraction as a double, times 10^6, rounded half to even (rint).
                micros = (long)Math.Round(double.Parse(s[position..end], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture) * 1_000_000,
                    MidpointRounding.ToEven);
                position = end;
            }
        }

        if (position >= s.Length)
        {
            return false;
        }

        if (!TryParseOffset(s[position..], out var offsetMinutes))
        {
            return false;
        }

        if (year == 0 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59)
        {
            return false;
        }

        utcTicks = new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc).Ticks + (micros * 10) - (offsetMinutes * TimeSpan.TicksPerMinute);
        return true;
    }

    // Z, z, ±HH, ±HHMM or ±HH:MM, up to ±15:59 (PostgreSQL's limit), as minutes east of UTC.
    private static bool TryParseOffset(ReadOnlySpan<char> zone, out int minutes)
    {
        minutes = 0;
        if (zone is "Z" or "z")
        {
            return true;
        }

        if (zone.Length < 3 || zone[0] is not ('+' or '-') || !Digits(zone, 1, 2, out var hours) || hours > 15)
        {
            return false;
        }

        var extra = 0;
        var valid = zone.Length switch
        {
            3 => true,
            5 => Digits(zone, 3, 2, out extra) && extra <= 59,
            6 => zone[3] == ':' && Digits(zone, 4, 2, out extra) && extra <= 59,
            _ => false,
        };
        minutes = (zone[0] == '-' ? -1 : 1) * ((hours * 60) + extra);
        return valid;
    }

    private static bool Digits(ReadOnlySpan<char> s, int start, int count, out int value)
    {
        value = 0;
        if (start + count > s.Length)
        {
            return false;
        }

        for (var i = start; i < start + count; i++)
        {
            if (!char.IsAsciiDigit(s[i]))
            {
                return false;
            }

            value = (value * 10) + (s[i] - '0');
        }

        return true;
    }
}
