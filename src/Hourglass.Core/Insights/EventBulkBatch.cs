using System.Globalization;
using Hourglass.Imports;
using Hourglass.Tenancy;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Insights;

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
    private readonly ImportErrorMode _mode;
    private readonly DateTime _now;
    private readonly int _skewSeconds;
    private readonly List<EventOutcome> _outcomes = [];

    // Each key's first valid line: its row (to compare a later line with) and its place in _outcomes.
    private readonly Dictionary<string, (EventRow Row, int Outcome)> _firstWithKey = new(StringComparer.Ordinal);
    private int _idsMade;
    private bool _refused;

    private EventBulkBatch(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, ImportErrorMode mode, DateTime now, int skewSeconds) =>
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
        ImportErrorMode mode, CancellationToken cancellationToken)
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
            throw new ImportRefusedException("events", [.. _outcomes.Where(o => o.Outcome == "rejected")], _outcomes.Count);
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
                _refused |= _mode == ImportErrorMode.Refuse;
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

        _refused |= _mode == ImportErrorMode.Refuse && taken.Values.Any(t => !t.Same);
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
            found = await TenancyStore.ExistingEntitiesAsync(_connection, _transaction, _tenantId, [.. wanted["contact"]], [.. wanted["account"]],
                [.. wanted["order"]], cancellationToken);
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
