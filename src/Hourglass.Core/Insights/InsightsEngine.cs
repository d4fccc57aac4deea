using System.Buffers;
using System.Text;
using System.Text.Json;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Insights;

/// <summary>What one detection run did for a tenant.</summary>
public sealed record InsightRunResult(long EventsProcessed, int PatternsWritten, long Frontier);

/// <summary>
/// Runs the pattern detectors for a tenant, incrementally: each reads only its event types past its watermark, up to
/// the commit-safe frontier (<c>hourglass.advance_event_frontier</c>), in pages (the next page read while the last is
/// folded); folds them into the per-entity states, typed and in memory for the run (loaded once, from the state
/// pattern's <c>pattern_data.state</c>); and writes every changed entity's patterns, its state serialized once, and the
/// new watermark in one transaction — at the end of the run, or every <c>checkpointEvents</c> events — so a crash
/// loses nothing and counts nothing twice (a crashed run's events are read again from the watermark). Detectors with
/// patterns that move with time (churn risk) also re-evaluate those patterns for every entity they know — at most once
/// per <c>timeSweepInterval</c> (default 6 hours; an entity with new events is re-evaluated at once): churn risk moves on
/// the scale of days, and rewriting every account's pattern every hour was most of a quiet cycle's time.
/// </summary>
public sealed class InsightsEngine(NpgsqlDataSource dataSource, IReadOnlyList<IPatternDetector>? detectors = null, int pageSize = 10_000,
    long checkpointEvents = 1_000_000, TimeSpan? timeSweepInterval = null)
{
    /// <summary>How often the patterns that move with time alone are re-evaluated for entities without new events.</summary>
    public static readonly TimeSpan DefaultTimeSweepInterval = TimeSpan.FromHours(6);

    private readonly TimeSpan _timeSweepInterval = timeSweepInterval ?? DefaultTimeSweepInterval;

    public static IReadOnlyList<IPatternDetector> DefaultDetectors { get; } = [new OrderPatternDetector(), new ContactEngagementDetector()];

    // Rows per upsert statement when a run writes many entities (all in the run's transaction).
    private const int WriteBatchEntities = 5_000;

    private readonly IReadOnlyList<IPatternDetector> _detectors = detectors ?? DefaultDetectors;

    /// <summary>An entity's state during a run, and whether events were folded into it since it was last written.</summary>
    private sealed class Tracked(IDetectorState state)
    {
        public IDetectorState State { get; } = state;

        public bool Dirty { get; set; }
    }

    /// <summary>Detects for one tenant, at most <paramref name="maxEvents"/> events per detector this run (the rest next run).</summary>
    public async Task<InsightRunResult> RunAsync(Guid tenantId, long maxEvents = 1_000_000, CancellationToken cancellationToken = default)
    {
        long frontier;
        await using (var advance = dataSource.CreateCommand("select hourglass.advance_event_frontier()"))
        {
            frontier = (long)(await advance.ExecuteScalarAsync(cancellationToken))!;
        }

        DateTimeOffset now;
        await using (var clock = dataSource.CreateCommand("select hourglass.now()"))
        {
            now = new DateTimeOffset((DateTime)(await clock.ExecuteScalarAsync(cancellationToken))!, TimeSpan.Zero);
        }

        var zones = await ZonesAsync(tenantId, cancellationToken);
        long processed = 0;
        var written = 0;
        foreach (var detector in _detectors)
        {
            var (events, patterns) = await DetectAsync(tenantId, detector, zones, frontier, now, maxEvents, cancellationToken);
            processed += events;
            written += patterns;
        }

        return new InsightRunResult(processed, written, frontier);
    }

    private async Task<(long Events, int Patterns)> DetectAsync(Guid tenantId, IPatternDetector detector, Zones zones, long frontier,
        DateTimeOffset now, long maxEvents, CancellationToken cancellationToken)
    {
        var states = new Dictionary<Guid, Tracked>();
        var (start, sweptAt) = await WatermarkAsync(tenantId, detector.Name, cancellationToken);
        var sweep = detector.TimeDependentPatterns.Count > 0 && (sweptAt is not { } swept || now - swept >= _timeSweepInterval);
        var watermark = start;
        long done = 0, unwritten = 0;
        var written = 0;

        // Pages are ranges of seq numbers, each sized to hold about a page of the detector's events (its share of the
        // log, as the last page found it), so that each page's query reads its range once, through the
        // (tenant_id, event_type, seq) index, whatever plan it gets; a LIMIT caps a range that holds more. A page that
        // found fewer events than its limit covered its whole range: the watermark moves to the range's end.
        long span = pageSize;
        Task<Page>? next = watermark < frontier && maxEvents > 0 ? Read(watermark) : null;
        Task<Page> Read(long after)
        {
            var upper = after + Math.Min(span, frontier - after);
            return ReadEventsAsync(tenantId, detector, after, upper, (int)Math.Min(pageSize, maxEvents - done), cancellationToken);
        }

        try
        {
            while (next is not null)
            {
                var page = await next;
                next = null;
                var events = page.Events;
                var through = events.Count == page.Limit ? events[^1].Seq : page.Upper;
                var covered = through - watermark;
                span = events.Count == 0 ? SafeMultiply(covered, 8) : Math.Clamp(SafeMultiply(covered, pageSize) / events.Count, 1, SafeMultiply(covered, 8));
                watermark = through;
                done += events.Count;
                unwritten += events.Count;

                // The next page is read (on another connection) while this one is folded.
                if (watermark < frontier && done < maxEvents)
                {
                    next = Read(watermark);
                }

                if (events.Count == 0)
                {
                    continue;
                }

                var missing = new HashSet<Guid>();
                foreach (var e in events)
                {
                    if (detector.EntityOf(e) is { } entity && !states.ContainsKey(entity))
                    {
                        missing.Add(entity);
                    }
                }

                if (missing.Count > 0)
                {
                    var loaded = await LoadStatesAsync(tenantId, detector, [.. missing], null, cancellationToken);
                    foreach (var entity in missing)
                    {
                        states[entity] = new Tracked(loaded.TryGetValue(entity, out var state) ? state : detector.NewState());
                    }
                }

                await zones.EnsureAsync(events.Where(e => e.EntityId is not null).Select(e => e.EntityId!.Value), cancellationToken);
                foreach (var e in events)
                {
                    if (detector.EntityOf(e) is { } entity)
                    {
                        var tracked = states[entity];
                        detector.Fold(tracked.State, e, zones);
                        tracked.Dirty = true;
                    }
                }

                if (unwritten >= checkpointEvents && next is not null)
                {
                    written += await WriteAsync(tenantId, detector, Changed(states), [], now, watermark, unwritten, false, cancellationToken);
                    unwritten = 0;
                }
            }
        }
        finally
        {
            // A failed run leaves no read behind it on a pooled connection.
            if (next is not null)
            {
                try
                {
                    await next;
                }
                catch (Exception)
                {
                    // The run's own failure is what the caller sees.
                }
            }
        }

        // Every other entity the detector knows, when some of its patterns move with time alone and they are due.
        var unchanged = new List<(Guid, IDetectorState)>();
        if (sweep)
        {
            unchanged.AddRange(states.Where(s => !s.Value.Dirty).Select(s => (s.Key, s.Value.State)));
            var others = await LoadStatesAsync(tenantId, detector, null, [.. states.Keys], cancellationToken);
            unchanged.AddRange(others.Select(o => (o.Key, o.Value)));
        }

        var changed = Changed(states);
        var moved = watermark > start;
        if (changed.Count > 0 || unchanged.Count > 0 || moved || sweep)
        {
            written += await WriteAsync(tenantId, detector, changed, unchanged, now, moved ? watermark : null, unwritten, sweep, cancellationToken);
        }

        return (done, written);
    }

    // The entities with events folded since they were written, marked clean (they are about to be written).
    private static List<(Guid Entity, IDetectorState State)> Changed(Dictionary<Guid, Tracked> states)
    {
        var changed = new List<(Guid, IDetectorState)>();
        foreach (var (entity, tracked) in states)
        {
            if (tracked.Dirty)
            {
                changed.Add((entity, tracked.State));
                tracked.Dirty = false;
            }
        }

        return changed;
    }

    // The zones of the entities the run's events are about, looked up as pages of events arrive (a quiet hour's run asks
    // for a few dozen; reading every contact's zone on every run was most of a run that had little to fold). A contact
    // lives in its own zone, else its account's; everyone else, and every entity not found, in the tenant's.
    private sealed class Zones(NpgsqlDataSource dataSource, Guid tenantId, TimeZoneInfo tenant) : IDetectorContext
    {
        private readonly Dictionary<Guid, TimeZoneInfo?> _byEntity = [];
        private readonly Dictionary<string, TimeZoneInfo> _cache = new(StringComparer.Ordinal);

        public TimeZoneInfo ZoneOf(Guid entityId) => _byEntity.TryGetValue(entityId, out var zone) && zone is not null ? zone : tenant;

        public async Task EnsureAsync(IEnumerable<Guid> entities, CancellationToken cancellationToken)
        {
            var unknown = entities.Where(e => !_byEntity.ContainsKey(e)).Distinct().ToArray();
            if (unknown.Length == 0)
            {
                return;
            }

            foreach (var entity in unknown)
            {
                _byEntity[entity] = null;
            }

            await using var command = dataSource.CreateCommand("""
                select k.id, coalesce(k.timezone, a.timezone)
                from public.contacts k
                left join public.accounts a on a.tenant_id = k.tenant_id and a.id = k.account_id
                where k.tenant_id = $1 and k.id = any($2) and coalesce(k.timezone, a.timezone) is not null
                """);
            command.Parameters.Add(new() { Value = tenantId });
            command.Parameters.Add(new() { Value = unknown });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                _byEntity[reader.GetGuid(0)] = Find(reader.GetString(1), _cache);
            }
        }
    }

    private async Task<Zones> ZonesAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select timezone from public.tenants where id = $1");
        command.Parameters.Add(new() { Value = tenantId });
        var zone = await command.ExecuteScalarAsync(cancellationToken) as string;
        return new Zones(dataSource, tenantId, zone is null ? TimeZoneInfo.Utc : Find(zone, []) ?? TimeZoneInfo.Utc);
    }

    private static TimeZoneInfo? Find(string id, Dictionary<string, TimeZoneInfo> cache)
    {
        if (!cache.TryGetValue(id, out var zone) && TimeZoneInfo.TryFindSystemTimeZoneById(id, out var found))
        {
            cache[id] = zone = found;
        }

        return zone;
    }

    private async Task<(long Watermark, DateTimeOffset? SweptAt)> WatermarkAsync(Guid tenantId, string detector, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "select watermark_seq, time_swept_at from public.insight_detector_state where tenant_id = $1 and detector = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = detector });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? (reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetFieldValue<DateTimeOffset>(1))
            : (0, null);
    }

    /// <summary>A page of events: those in (after, <see cref="Upper"/>], at most <see cref="Limit"/>, in seq order.</summary>
    private sealed record Page(List<InsightEvent> Events, long Upper, int Limit);

    // The detector's events in a range of seq numbers, in seq order: a bitmap scan of (tenant_id, event_type, seq) for
    // the range, then a sort of the page. It runs with plain index scans off (enable_indexscan, a planner method
    // setting: https://www.postgresql.org/docs/current/runtime-config-query.html#RUNTIME-CONFIG-QUERY-ENABLE): seeing
    // seq follow the table's physical order, the planner otherwise preferred to walk the seq index through every
    // tenant's events in the range and filter them — 20 rows read for each one kept with 20 tenants (more with more),
    // also with random_page_cost at 1.1. A bitmap scan is priced by the rows it reads, and the planner picks the index
    // that reads only the page's.
    internal const string PageSql = """
        select seq, id, event_type, entity_type, entity_id, occurred_at, payload::text
        from public.warehouse_events
        where tenant_id = $1 and seq > $2 and seq <= $3 and event_type = any($4)
        order by seq limit $5
        """;

    /// <summary>The setting <see cref="PageSql"/> runs with, in its own transaction.</summary>
    internal const string PageSettingSql = "set local enable_indexscan = off";

    private static long SafeMultiply(long value, long by) => value > long.MaxValue / by ? long.MaxValue : value * by;

    private async Task<Page> ReadEventsAsync(Guid tenantId, IPatternDetector detector, long after, long upper, int limit,
        CancellationToken cancellationToken) =>
        new(await ReadPageAsync(dataSource, tenantId, detector, after, upper, limit, cancellationToken), upper, limit);

    /// <summary>The detector's events of the tenant in (after, upper], at most <paramref name="limit"/>, in seq order.</summary>
    internal static async Task<List<InsightEvent>> ReadPageAsync(NpgsqlDataSource dataSource, Guid tenantId, IPatternDetector detector, long after,
        long upper, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var setting = new NpgsqlCommand(PageSettingSql, connection, transaction))
        {
            await setting.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var command = new NpgsqlCommand(PageSql, connection, transaction);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = after });
        command.Parameters.Add(new() { Value = upper });
        command.Parameters.Add(new() { Value = detector.EventTypes.ToArray() });
        command.Parameters.Add(new() { Value = limit });
        var events = new List<InsightEvent>(Math.Min(limit, 4096));
        // The types as the detector spells them, so that each event does not hold a string of its own.
        var types = detector.EventTypes;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var type = reader.GetString(2);
            foreach (var known in types)
            {
                if (string.Equals(known, type, StringComparison.Ordinal))
                {
                    type = known;
                    break;
                }
            }

            events.Add(new InsightEvent(reader.GetInt64(0), reader.GetGuid(1), type, reader.IsDBNull(3) ? null : EntityType(reader.GetString(3)),
                reader.IsDBNull(4) ? null : reader.GetGuid(4), reader.GetFieldValue<DateTimeOffset>(5), JsonElement.Parse(reader.GetString(6))));
        }

        await reader.CloseAsync();
        await transaction.CommitAsync(cancellationToken);
        return events;
    }

    private static string EntityType(string type) => type switch
    {
        "contact" => "contact",
        "account" => "account",
        "order" => "order",
        "tenant" => "tenant",
        _ => type,
    };

    // The stored states of the given entities, or (entities null) of every entity with one but the excluded.
    private async Task<Dictionary<Guid, IDetectorState>> LoadStatesAsync(Guid tenantId, IPatternDetector detector, Guid[]? entities, Guid[]? excluded,
        CancellationToken cancellationToken)
    {
        var states = new Dictionary<Guid, IDetectorState>();
        if (entities is { Length: 0 })
        {
            return states;
        }

        await using var command = dataSource.CreateCommand("""
            select entity_id, (pattern_data -> 'state')::text from public.client_patterns
            where tenant_id = $1 and pattern_type = $2 and entity_type = $3 and pattern_data ? 'state'
              and ($4::uuid[] is null or entity_id = any($4)) and ($5::uuid[] is null or entity_id <> all($5))
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = detector.StatePattern });
        command.Parameters.Add(new() { Value = detector.EntityType });
        command.Parameters.Add(new() { Value = (object?)entities ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = (object?)excluded ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            states[reader.GetGuid(0)] = detector.ReadState(JsonElement.Parse(reader.GetString(1)));
        }

        return states;
    }

    // Writes the changed entities' patterns (the state pattern with the state, serialized here once), the time-dependent
    // patterns of the unchanged ones, and the watermark, in one transaction.
    private async Task<int> WriteAsync(Guid tenantId, IPatternDetector detector, List<(Guid Entity, IDetectorState State)> changed,
        List<(Guid Entity, IDetectorState State)> unchanged, DateTimeOffset now, long? watermark, long events, bool swept, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        await using var json = new Utf8JsonWriter(buffer);
        var written = 0;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var all = changed.Select(c => (c.Entity, c.State, Changed: true)).Concat(unchanged.Select(u => (u.Entity, u.State, Changed: false)));
        foreach (var batch in all.Chunk(WriteBatchEntities))
        {
            var rows = new List<(Guid Entity, PatternResult Pattern, string Data)>(batch.Length * 3);
            foreach (var (entity, state, isChanged) in batch)
            {
                foreach (var pattern in detector.Evaluate(state, now))
                {
                    if (!isChanged && !detector.TimeDependentPatterns.Contains(pattern.PatternType))
                    {
                        continue;
                    }

                    rows.Add((entity, pattern, PatternJson(detector, pattern, state, buffer, json)));
                }
            }

            if (rows.Count > 0)
            {
                await UpsertAsync(connection, transaction, tenantId, detector, now, rows, cancellationToken);
                written += rows.Count;
            }
        }

        if (watermark is { } seq)
        {
            await using var mark = new NpgsqlCommand("""
                insert into public.insight_detector_state as d (tenant_id, detector, watermark_seq, events_processed, last_run_at, updated_at)
                values ($1, $2, $3, $4, $5, $5)
                on conflict (tenant_id, detector) do update set
                  watermark_seq = greatest(d.watermark_seq, excluded.watermark_seq), events_processed = d.events_processed + excluded.events_processed,
                  last_run_at = excluded.last_run_at, updated_at = excluded.updated_at
                """, connection, transaction);
            mark.Parameters.Add(new() { Value = tenantId });
            mark.Parameters.Add(new() { Value = detector.Name });
            mark.Parameters.Add(new() { Value = seq });
            mark.Parameters.Add(new() { Value = events });
            mark.Parameters.Add(new() { Value = now });
            await mark.ExecuteNonQueryAsync(cancellationToken);
        }

        if (swept)
        {
            await using var sweptMark = new NpgsqlCommand("""
                insert into public.insight_detector_state as d (tenant_id, detector, time_swept_at, updated_at) values ($1, $2, $3, $3)
                on conflict (tenant_id, detector) do update set time_swept_at = excluded.time_swept_at, updated_at = excluded.updated_at
                """, connection, transaction);
            sweptMark.Parameters.Add(new() { Value = tenantId });
            sweptMark.Parameters.Add(new() { Value = detector.Name });
            sweptMark.Parameters.Add(new() { Value = now });
            await sweptMark.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return written;
    }

    /// <summary>A pattern's <c>pattern_data</c>: its data and, for the state pattern, the entity's state.</summary>
    internal static string PatternJson(IPatternDetector detector, PatternResult pattern, IDetectorState state, ArrayBufferWriter<byte> buffer,
        Utf8JsonWriter json)
    {
        buffer.ResetWrittenCount();
        json.Reset();
        json.WriteStartObject();
        foreach (var (name, value) in pattern.Data)
        {
            json.WritePropertyName(name);
            if (value is null)
            {
                json.WriteNullValue();
            }
            else
            {
                value.WriteTo(json);
            }
        }

        if (pattern.PatternType == detector.StatePattern)
        {
            json.WritePropertyName("state");
            state.WriteTo(json);
        }

        json.WriteEndObject();
        json.Flush();
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static async Task UpsertAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, IPatternDetector detector,
        DateTimeOffset now, List<(Guid Entity, PatternResult Pattern, string Data)> rows, CancellationToken cancellationToken)
    {
        // Patterns are the detectors' findings: written directly by anyone else, they are refused (docs/schema.md).
        await using (var allow = new NpgsqlCommand(DerivedColumns.AllowProductWriteSql, connection, transaction))
        {
            await allow.ExecuteNonQueryAsync(cancellationToken);
        }

        // A pattern is re-confirmed when it holds on more evidence than before; its first detection is kept.
        await using var upsert = new NpgsqlCommand("""
            insert into public.client_patterns as p (tenant_id, entity_type, entity_id, pattern_type, pattern_data, confidence, evidence_count,
              is_active, first_detected_at, last_confirmed_at, updated_at)
            select $1, $2, r.entity_id, r.pattern_type, r.data::jsonb, round(r.confidence::numeric, 4), r.evidence, r.active, $3,
                   case when r.active then $3 end, $3
            from unnest($4::uuid[], $5::text[], $6::text[], $7::float8[], $8::integer[], $9::boolean[])
                 as r(entity_id, pattern_type, data, confidence, evidence, active)
            on conflict (tenant_id, entity_type, entity_id, pattern_type) do update set
              pattern_data = excluded.pattern_data, confidence = excluded.confidence, evidence_count = excluded.evidence_count,
              is_active = excluded.is_active, updated_at = excluded.updated_at,
              last_confirmed_at = case when excluded.is_active and excluded.evidence_count > p.evidence_count then excluded.updated_at
                                       else p.last_confirmed_at end
            where (p.pattern_data, p.confidence, p.evidence_count, p.is_active)
                  is distinct from (excluded.pattern_data, excluded.confidence, excluded.evidence_count, excluded.is_active)
            """, connection, transaction);
        upsert.Parameters.Add(new() { Value = tenantId });
        upsert.Parameters.Add(new() { Value = detector.EntityType });
        upsert.Parameters.Add(new() { Value = now });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Entity).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Pattern.PatternType).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Data).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Pattern.Confidence).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Pattern.Evidence).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Pattern.Active).ToArray() });
        await upsert.ExecuteNonQueryAsync(cancellationToken);
    }
}
