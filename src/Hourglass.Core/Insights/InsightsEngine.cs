using System.Text.Json.Nodes;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Insights;

/// <summary>What one detection run did for a tenant.</summary>
public sealed record InsightRunResult(long EventsProcessed, int PatternsWritten, long Frontier);

/// <summary>
/// Runs the pattern detectors for a tenant, incrementally: each reads only its event types past its watermark, up to
/// the commit-safe frontier (<c>hourglass.advance_event_frontier</c>), in pages; folds them into the per-entity states
/// (kept in the state pattern's <c>pattern_data.state</c>); and writes every changed entity's patterns and the new
/// watermark in one transaction per page — so a crash loses nothing and repeats nothing. Detectors whose patterns
/// move with time (churn risk) also re-evaluate every entity they know each run.
/// </summary>
public sealed class InsightsEngine(NpgsqlDataSource dataSource, IReadOnlyList<IPatternDetector>? detectors = null, int pageSize = 50_000)
{
    public static IReadOnlyList<IPatternDetector> DefaultDetectors { get; } = [new OrderPatternDetector(), new ContactEngagementDetector()];

    private readonly IReadOnlyList<IPatternDetector> _detectors = detectors ?? DefaultDetectors;

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
            var states = new Dictionary<Guid, JsonObject>();
            var watermark = await WatermarkAsync(tenantId, detector.Name, cancellationToken);
            long done = 0;
            while (done < maxEvents)
            {
                var page = await ReadEventsAsync(tenantId, detector, watermark, frontier, (int)Math.Min(pageSize, maxEvents - done), cancellationToken);
                if (page.Count == 0)
                {
                    break;
                }

                var entities = page.Select(detector.EntityOf).OfType<Guid>().Distinct().Where(e => !states.ContainsKey(e)).ToArray();
                foreach (var (entity, state) in await LoadStatesAsync(tenantId, detector, entities, cancellationToken))
                {
                    states[entity] = state;
                }

                var dirty = new HashSet<Guid>();
                foreach (var e in page)
                {
                    if (detector.EntityOf(e) is not { } entity)
                    {
                        continue;
                    }

                    if (!states.TryGetValue(entity, out var state))
                    {
                        states[entity] = state = [];
                    }

                    detector.Fold(state, e, zones);
                    dirty.Add(entity);
                }

                watermark = page[^1].Seq;
                done += page.Count;
                written += await WriteAsync(tenantId, detector, dirty.Select(d => (d, states[d])).ToList(), now, watermark, page.Count, cancellationToken);
            }

            processed += done;
            if (detector.TimeDependent)
            {
                // Every known entity, as time has moved: churn risk grows without new events.
                var all = await LoadStatesAsync(tenantId, detector, null, cancellationToken);
                written += await WriteAsync(tenantId, detector, all.Select(a => (a.Key, a.Value)).ToList(), now, null, 0, cancellationToken);
            }
        }

        return new InsightRunResult(processed, written, frontier);
    }

    private sealed class Zones(TimeZoneInfo tenant, Dictionary<Guid, TimeZoneInfo> byEntity) : IDetectorContext
    {
        public TimeZoneInfo ZoneOf(Guid entityId) => byEntity.TryGetValue(entityId, out var zone) ? zone : tenant;
    }

    // Contacts with a zone of their own or their account's; everyone else lives in the tenant's.
    private async Task<Zones> ZonesAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select t.timezone, k.id, coalesce(k.timezone, a.timezone)
            from public.tenants t
            left join public.contacts k on k.tenant_id = t.id
            left join public.accounts a on a.tenant_id = k.tenant_id and a.id = k.account_id
            where t.id = $1 and (k.id is null or coalesce(k.timezone, a.timezone) is not null)
            """);
        command.Parameters.Add(new() { Value = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var tenant = TimeZoneInfo.Utc;
        var byEntity = new Dictionary<Guid, TimeZoneInfo>();
        var cache = new Dictionary<string, TimeZoneInfo>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
        {
            tenant = Find(reader.GetString(0), cache) ?? TimeZoneInfo.Utc;
            if (!reader.IsDBNull(1) && Find(reader.GetString(2), cache) is { } zone)
            {
                byEntity[reader.GetGuid(1)] = zone;
            }
        }

        return new Zones(tenant, byEntity);
    }

    private static TimeZoneInfo? Find(string id, Dictionary<string, TimeZoneInfo> cache)
    {
        if (!cache.TryGetValue(id, out var zone) && TimeZoneInfo.TryFindSystemTimeZoneById(id, out var found))
        {
            cache[id] = zone = found;
        }

        return zone;
    }

    private async Task<long> WatermarkAsync(Guid tenantId, string detector, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "select watermark_seq from public.insight_detector_state where tenant_id = $1 and detector = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = detector });
        return await command.ExecuteScalarAsync(cancellationToken) is long watermark ? watermark : 0;
    }

    private async Task<List<InsightEvent>> ReadEventsAsync(Guid tenantId, IPatternDetector detector, long after, long upTo, int limit,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select seq, id, event_type, entity_type, entity_id, occurred_at, payload::text
            from public.warehouse_events
            where tenant_id = $1 and seq > $2 and seq <= $3 and event_type = any($4)
            order by seq limit $5
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = after });
        command.Parameters.Add(new() { Value = upTo });
        command.Parameters.Add(new() { Value = detector.EventTypes.ToArray() });
        command.Parameters.Add(new() { Value = limit });
        var events = new List<InsightEvent>(limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            events.Add(new InsightEvent(reader.GetInt64(0), reader.GetGuid(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetGuid(4), reader.GetFieldValue<DateTimeOffset>(5),
                JsonNode.Parse(reader.GetString(6)) as JsonObject ?? []));
        }

        return events;
    }

    // The states of the given entities (null: every entity with a state pattern).
    private async Task<Dictionary<Guid, JsonObject>> LoadStatesAsync(Guid tenantId, IPatternDetector detector, Guid[]? entities,
        CancellationToken cancellationToken)
    {
        var states = new Dictionary<Guid, JsonObject>();
        if (entities is { Length: 0 })
        {
            return states;
        }

        await using var command = dataSource.CreateCommand("""
            select entity_id, (pattern_data -> 'state')::text from public.client_patterns
            where tenant_id = $1 and pattern_type = $2 and entity_type = $3 and ($4::uuid[] is null or entity_id = any($4)) and pattern_data ? 'state'
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = detector.StatePattern });
        command.Parameters.Add(new() { Value = detector.EntityType });
        command.Parameters.Add(new() { Value = (object?)entities ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            states[reader.GetGuid(0)] = JsonNode.Parse(reader.GetString(1)) as JsonObject ?? [];
        }

        return states;
    }

    private async Task<int> WriteAsync(Guid tenantId, IPatternDetector detector, List<(Guid Entity, JsonObject State)> changed, DateTimeOffset now,
        long? watermark, int events, CancellationToken cancellationToken)
    {
        var rows = new List<(Guid Entity, PatternResult Pattern, string Data)>();
        foreach (var (entity, state) in changed)
        {
            foreach (var pattern in detector.Evaluate(state, now))
            {
                var data = pattern.Data.DeepClone().AsObject();
                if (pattern.PatternType == detector.StatePattern)
                {
                    data["state"] = state.DeepClone();
                }

                rows.Add((entity, pattern, data.ToJsonString()));
            }
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        if (rows.Count > 0)
        {
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
            mark.Parameters.Add(new() { Value = (long)events });
            mark.Parameters.Add(new() { Value = now });
            await mark.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return rows.Count;
    }
}
