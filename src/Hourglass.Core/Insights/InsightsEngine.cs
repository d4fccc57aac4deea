using System.Buffers;
using System.Text;
using System.Text.Json;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Insights;

/// <summary>What one detection run did for a tenant.</summary>
internal sealed record InsightRunResult(long EventsProcessed, int PatternsWritten, long Frontier);

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
internal sealed class InsightsEngine(NpgsqlDataSource dataSource, IReadOnlyList<IPatternDetector>? detectors = null, int pageSize = 10_000,
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
        var frontier = await InsightsStore.AdvanceFrontierAsync(dataSource, cancellationToken);

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
        var (start, sweptAt) = await InsightsStore.ReadWatermarkAsync(dataSource, tenantId, detector.Name, cancellationToken);
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

            foreach (var (id, zone) in await TenancyStore.ContactZonesAsync(dataSource, tenantId, unknown, cancellationToken))
            {
                _byEntity[id] = Find(zone, _cache);
            }
        }
    }

    private async Task<Zones> ZonesAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        var zone = await TenancyStore.TimezoneAsync(dataSource, tenantId, cancellationToken);
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

    /// <summary>A page of events: those in (after, <see cref="Upper"/>], at most <see cref="Limit"/>, in seq order.</summary>
    private sealed record Page(List<InsightEvent> Events, long Upper, int Limit);

    private static long SafeMultiply(long value, long by) => value > long.MaxValue / by ? long.MaxValue : value * by;

    private async Task<Page> ReadEventsAsync(Guid tenantId, IPatternDetector detector, long after, long upper, int limit,
        CancellationToken cancellationToken) =>
        new(await InsightsStore.ReadPageAsync(dataSource, tenantId, detector, after, upper, limit, cancellationToken), upper, limit);

    // The stored states of the given entities, or (entities null) of every entity with one but the excluded.
    private async Task<Dictionary<Guid, IDetectorState>> LoadStatesAsync(Guid tenantId, IPatternDetector detector, Guid[]? entities, Guid[]? excluded,
        CancellationToken cancellationToken)
    {
        var states = new Dictionary<Guid, IDetectorState>();
        if (entities is { Length: 0 })
        {
            return states;
        }

        await InsightsStore.ReadStatesAsync(dataSource, tenantId, detector.StatePattern, detector.EntityType, entities, excluded,
            (entity, state) => states[entity] = detector.ReadState(state), cancellationToken);
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
                await InsightsStore.UpsertPatternsAsync(connection, transaction, tenantId, detector.EntityType, now, rows, cancellationToken);
                written += rows.Count;
            }
        }

        if (watermark is { } seq)
        {
            await InsightsStore.AdvanceWatermarkAsync(connection, transaction, tenantId, detector.Name, seq, events, now, cancellationToken);
        }

        if (swept)
        {
            await InsightsStore.MarkSweptAsync(connection, transaction, tenantId, detector.Name, now, cancellationToken);
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
}
