using System.Text.Json;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Insights;

/// <summary>
/// The one place that names the Insights part's tables in SQL (docs/development.md, docs/insights.md):
/// <c>warehouse_events</c> (read here; written by the import kinds through <c>ingest_events</c> and by the bulk path),
/// <c>hourglass.event_frontier</c> (through <c>hourglass.advance_event_frontier</c>), <c>insight_detector_state</c>,
/// <c>client_patterns</c>, <c>success_strategies</c> and <c>strategy_attributions</c>. The engine, the part, the CLI,
/// the API, the simulator and the benchmarks come here for them.
/// </summary>
internal static class InsightsStore
{
    // ---- warehouse_events and the frontier ----

    /// <summary>Moves the commit-safe frontier of event numbers and returns it (hourglass.advance_event_frontier).</summary>
    public const string AdvanceFrontierSql = "select hourglass.advance_event_frontier()";

    /// <summary>Moves the commit-safe frontier of event numbers and returns it.</summary>
    public static async Task<long> AdvanceFrontierAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var advance = dataSource.CreateCommand(AdvanceFrontierSql);
        return (long)(await advance.ExecuteScalarAsync(cancellationToken))!;
    }

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

    // ---- insight_detector_state ----

    /// <summary>A detector's watermark and last sweep ($1 tenant, $2 detector).</summary>
    internal const string WatermarkSql = "select watermark_seq, time_swept_at from public.insight_detector_state where tenant_id = $1 and detector = $2";

    /// <summary>Moves a detector's watermark forward ($1 tenant, $2 detector, $3 seq, $4 events folded, $5 now).</summary>
    internal const string AdvanceWatermarkSql = """
        insert into public.insight_detector_state as d (tenant_id, detector, watermark_seq, events_processed, last_run_at, updated_at)
        values ($1, $2, $3, $4, $5, $5)
        on conflict (tenant_id, detector) do update set
          watermark_seq = greatest(d.watermark_seq, excluded.watermark_seq), events_processed = d.events_processed + excluded.events_processed,
          last_run_at = excluded.last_run_at, updated_at = excluded.updated_at
        """;

    /// <summary>A detector's watermark (the last event number folded) and when its time-dependent patterns were last swept.</summary>
    public static async Task<(long Watermark, DateTimeOffset? SweptAt)> ReadWatermarkAsync(NpgsqlDataSource dataSource, Guid tenantId, string detector,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(WatermarkSql);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = detector });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? (reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetFieldValue<DateTimeOffset>(1))
            : (0, null);
    }

    /// <summary>Moves a detector's watermark forward (never back) and counts the events it folded, in the caller's transaction.</summary>
    public static async Task AdvanceWatermarkAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string detector, long seq,
        long events, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var mark = new NpgsqlCommand(AdvanceWatermarkSql, connection, transaction);
        mark.Parameters.Add(new() { Value = tenantId });
        mark.Parameters.Add(new() { Value = detector });
        mark.Parameters.Add(new() { Value = seq });
        mark.Parameters.Add(new() { Value = events });
        mark.Parameters.Add(new() { Value = now });
        await mark.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Records when a detector's time-dependent patterns were swept, in the caller's transaction.</summary>
    public static async Task MarkSweptAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string detector, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        await using var sweptMark = new NpgsqlCommand("""
            insert into public.insight_detector_state as d (tenant_id, detector, time_swept_at, updated_at) values ($1, $2, $3, $3)
            on conflict (tenant_id, detector) do update set time_swept_at = excluded.time_swept_at, updated_at = excluded.updated_at
            """, connection, transaction);
        sweptMark.Parameters.Add(new() { Value = tenantId });
        sweptMark.Parameters.Add(new() { Value = detector });
        sweptMark.Parameters.Add(new() { Value = now });
        await sweptMark.ExecuteNonQueryAsync(cancellationToken);
    }

    // ---- client_patterns ----

    /// <summary>
    /// The stored detector states (<c>pattern_data.state</c> of the state pattern) of the given entities, or (entities
    /// null) of every entity with one but the excluded; each handed to <paramref name="read"/> with its entity.
    /// </summary>
    public static async Task ReadStatesAsync(NpgsqlDataSource dataSource, Guid tenantId, string statePattern, string entityType, Guid[]? entities,
        Guid[]? excluded, Action<Guid, JsonElement> read, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select entity_id, (pattern_data -> 'state')::text from public.client_patterns
            where tenant_id = $1 and pattern_type = $2 and entity_type = $3 and pattern_data ? 'state'
              and ($4::uuid[] is null or entity_id = any($4)) and ($5::uuid[] is null or entity_id <> all($5))
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = statePattern });
        command.Parameters.Add(new() { Value = entityType });
        command.Parameters.Add(new() { Value = (object?)entities ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = (object?)excluded ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            read(reader.GetGuid(0), JsonElement.Parse(reader.GetString(1)));
        }
    }

    /// <summary>Writes detected patterns (their <c>pattern_data</c> as JSON text) in one statement, in the caller's transaction.</summary>
    public static async Task UpsertPatternsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string entityType,
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
        upsert.Parameters.Add(new() { Value = entityType });
        upsert.Parameters.Add(new() { Value = now });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Entity).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Pattern.PatternType).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Data).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Pattern.Confidence).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Pattern.Evidence).ToArray() });
        upsert.Parameters.Add(new() { Value = rows.Select(r => r.Pattern.Active).ToArray() });
        await upsert.ExecuteNonQueryAsync(cancellationToken);
    }

    // ---- reads for the cycle's reaction and measures (InsightsPart) ----

    /// <summary>
    /// The tenant's five strongest active patterns confirmed since $2, each with its entity's name and the ids of the
    /// entity's three latest events (the hypothesis' evidence).
    /// </summary>
    internal const string ConfirmedPatternsSql = """
        select p.id, p.entity_type, p.entity_id, p.pattern_type, p.pattern_data::text, p.confidence, p.evidence_count,
               coalesce(k.name, a.name, p.entity_id::text),
               array(select e.id::text from public.warehouse_events e
                     where e.tenant_id = p.tenant_id and e.entity_id = p.entity_id order by e.occurred_at desc limit 3)
        from public.client_patterns p
        left join public.contacts k on p.entity_type = 'contact' and k.tenant_id = p.tenant_id and k.id = p.entity_id
        left join public.accounts a on p.entity_type = 'account' and a.tenant_id = p.tenant_id and a.id = p.entity_id
        where p.tenant_id = $1 and p.is_active and p.last_confirmed_at >= $2
        order by p.confidence desc, p.id
        limit 5
        """;

    /// <summary>The tenant's active patterns, and its strategies' judged uses and successes.</summary>
    internal const string MeasuresSql = """
        select (select count(*) from public.client_patterns where tenant_id = $1 and is_active),
               coalesce(sum(s.usage_count), 0)::bigint, coalesce(sum(s.success_count), 0)::bigint
        from public.success_strategies s where s.tenant_id = $1
        """;

    // ---- success_strategies ----

    /// <summary>The tenant's active strategies that make touch tasks or messages (TouchTaskPart picks among them).</summary>
    internal const string ActiveTouchStrategiesSql = """
        select strategy_key, name, applies_to::text, action_template::text, usage_count, success_count
        from public.success_strategies
        where tenant_id = $1 and is_active and action_template ->> 'kind' in ('touch_task', 'send_message')
        order by strategy_key
        """;

    /// <summary>A new strategy ($1 tenant, $2 key, $3 name, $4 action template), applying everywhere, at an even prior.</summary>
    internal const string InsertStrategySql = """
        insert into public.success_strategies (tenant_id, strategy_key, name, applies_to, action_template, effectiveness_score)
        values ($1, $2, $3, '{}', $4::jsonb, 0.5)
        """;

    /// <summary>Every tenant's strategy estimates, in order (the simulator's record).</summary>
    internal const string StrategyEstimatesSql = """
        select tenant_id, strategy_key, usage_count, success_count, effectiveness_score from public.success_strategies order by tenant_id, strategy_key
        """;

    // ---- the API's reads (run as the member, under row-level security) ----

    /// <summary>The patterns page's rows ($1 tenant, $4 the pattern type or null), without the detectors' state.</summary>
    internal const string PatternsPageSql = """
        select id, entity_type, entity_id, pattern_type, pattern_data - 'state' as pattern_data, confidence, evidence_count, is_active,
               first_detected_at, last_confirmed_at, created_at
        from public.client_patterns where tenant_id = $1 and ($4::text is null or pattern_type = $4)
        """;

    /// <summary>The tenant's strategies as one JSON array, best first.</summary>
    internal const string StrategiesJsonSql = """
        select coalesce(json_agg(x order by x.effectiveness_score desc, x.strategy_key), '[]')::text from (
          select id, strategy_key, name, description, applies_to, action_template, effectiveness_score, effectiveness_lower,
                 usage_count, success_count, is_active, updated_at
          from public.success_strategies where tenant_id = $1) x
        """;

    // ---- for the benchmarks: the raw-SQL baselines write the events' table as the product would ----

    /// <summary>The events' table, for a baseline's COPY.</summary>
    internal const string EventsTable = "public.warehouse_events";

    /// <summary>Empties the events' table (a benchmark's fresh start).</summary>
    internal const string TruncateEventsSql = "truncate public.warehouse_events";

    /// <summary>A tenant's events ($1).</summary>
    internal const string CountEventsSql = "select count(*) from public.warehouse_events where tenant_id = $1";

    /// <summary>A tenant's events ($1), those whose key is like $2.</summary>
    internal const string CountEventsByKeySql = "select count(*) from public.warehouse_events where tenant_id = $1 and idempotency_key like $2";

    /// <summary>
    /// A tenant's events ($1) as one digest of their keys, types, entities, payloads, sources and times: the same rows,
    /// whoever wrote them (ids and created_at do not count).
    /// </summary>
    internal const string EventsFingerprintSql = """
        select pg_catalog.md5(pg_catalog.string_agg(pg_catalog.concat_ws('|', w.idempotency_key, w.event_type, w.entity_type, w.entity_id, w.payload::text,
                 w.source, w.occurred_at), ',' order by w.idempotency_key))
        from public.warehouse_events w where w.tenant_id = $1
        """;

    /// <summary>
    /// The plain baseline insert of events for tenant $1 from arrays of their columns ($2 types, $3 entity types, $4
    /// entity ids, $5 payloads, $6 keys, $7 times) with source $8.
    /// </summary>
    internal const string InsertEventArraysSql = """
        insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
        select $1, e.event_type, e.entity_type, e.entity_id, e.payload::jsonb, $8, e.idempotency_key, e.occurred_at
        from unnest($2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::timestamptz[])
          as e(event_type, entity_type, entity_id, payload, idempotency_key, occurred_at)
        """;

    /// <summary>Events for tenant $1 from an array of their JSON objects ($2), as they are, no checks (a benchmark's seed).</summary>
    internal const string InsertEventObjectsSql = """
        insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
        select $1, e.event_type, e.entity_type, e.entity_id, e.payload, e.source, e.idempotency_key, e.occurred_at
        from unnest($2::jsonb[]) j
        cross join lateral jsonb_to_record(j) as e(event_type text, entity_type text, entity_id uuid, payload jsonb, source text,
          idempotency_key text, occurred_at timestamptz)
        """;

    // Seeding and inspection (benchmarks): one method per statement, on the caller's connection and transaction

    /// <summary>
    /// A synthetic event log, set-based: events <paramref name="from"/> … + <paramref name="count"/> - 1 (g, 0-based) of one of
    /// <paramref name="total"/>. Event g is the tenant g mod (the tenants' count)'s i-th (i = g div tenants); by i mod 10 an
    /// order_placed on an account (1 in 10: payload total and order_id), a reply from a contact (2 in 10) or a touch of a
    /// contact (7 in 10: email, call or meeting). Accounts (of 200) and contacts (of <paramref name="contactsPerTenant"/>) by a hash
    /// of i, their ids as <see cref="Tenancy.TenancyStore.InsertKeyedAccountsAsync"/> makes them from <paramref name="key"/>; every
    /// tenth account stops ordering after 80% of <paramref name="fullLog"/> events (its orders go to the next), every seventh's
    /// totals grow with g. Times rise with g, evenly over <paramref name="span"/> from <paramref name="start"/> for
    /// <paramref name="total"/> events counted from <paramref name="origin"/>: all tenants interleaved, each entity's in time order.
    /// </summary>
    public static Task<int> InsertSyntheticEventsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, long from, long count,
        long origin, long total, DateTime start, TimeSpan span, int contactsPerTenant, long fullLog, string key, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at, created_at)
            select ($1::uuid[])[1 + x.n], x.kind, case x.kind when 'order_placed' then 'account' else 'contact' end,
                   case x.kind when 'order_placed' then pg_catalog.md5(pg_catalog.format('%s-%s-a-%s', $10, x.n, x.account))::uuid
                        else pg_catalog.md5(pg_catalog.format('%s-%s-c-%s', $10, x.n, x.contact))::uuid end,
                   case x.kind
                     when 'order_placed' then pg_catalog.jsonb_build_object(
                       'order_id', pg_catalog.md5($10 || '-order-' || x.g)::uuid,
                       'total', pg_catalog.round((50 + pg_catalog.abs(pg_catalog.hashint8(x.i * 5 + 2)) % 500)
                                                 * case when x.account % 7 = 0 then 1 + x.g::numeric / $9 else 1 end, 2))
                     when 'reply' then pg_catalog.jsonb_build_object('channel', 'email')
                     else pg_catalog.jsonb_build_object('touch_type', (array['email', 'email', 'email', 'call', 'meeting'])[1 + pg_catalog.abs(pg_catalog.hashint8(x.i * 3 + 2)) % 5],
                                                        'touch_by', 'agent')
                   end,
                   'bench', $4::timestamptz + (x.g - $7) * ($3::interval / $5), pg_catalog.now()
            from (
              select g, g % $11::integer as n, g / $11::integer as i,
                     case when (g / $11::integer) % 10 = 0 then 'order_placed'
                          when (g / $11::integer) % 10 < 3 then 'reply' else 'touch' end as kind,
                     case when a.a % 10 = 0 and g > 0.8 * $9 then a.a + 1 else a.a end as account,
                     pg_catalog.abs(pg_catalog.hashint8(g / $11::integer * 3 + 1)) % $6 as contact
              from generate_series($2::bigint, $2::bigint + $8 - 1) as g
              cross join lateral (select pg_catalog.abs(pg_catalog.hashint8(g / $11::integer)) % 200 as a) a
            ) x
            order by x.g
            """, cancellationToken, tenants, from, span, start, total, contactsPerTenant, origin, count, fullLog, key, tenants.Length);

    /// <summary>The events' secondary indexes (all but the primary key), by name: (name, definition), to drop before a bulk load and build after.</summary>
    public static Task<IReadOnlyList<(string Name, string Definition)>> EventIndexesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction,
        CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.Command(connection, transaction, """
            select indexname, indexdef from pg_catalog.pg_indexes
            where schemaname = 'public' and tablename = 'warehouse_events' and indexname <> 'warehouse_events_pkey' order by indexname
            """), r => (r.GetString(0), r.GetString(1)), cancellationToken);

    /// <summary>Drops the events' primary key (before a bulk load; <see cref="AddEventsPrimaryKeyAsync"/> puts it back).</summary>
    public static Task<int> DropEventsPrimaryKeyAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "alter table public.warehouse_events drop constraint warehouse_events_pkey", cancellationToken);

    /// <summary>The events' primary key, as the migrations made it.</summary>
    public static Task<int> AddEventsPrimaryKeyAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "alter table public.warehouse_events add constraint warehouse_events_pkey primary key (id)",
            cancellationToken);

    /// <summary>Every event of every tenant.</summary>
    public static async Task<long> CountAllEventsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction, "select count(*) from public.warehouse_events", cancellationToken);

    /// <summary>The last event's seq (0 when there is none).</summary>
    public static async Task<long> MaxEventSeqAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction, "select max(seq) from public.warehouse_events", cancellationToken);

    /// <summary>A tenant's events of the types <paramref name="types"/>.</summary>
    public static async Task<long> CountEventsOfTypesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, string[] types,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction,
            "select count(*) from public.warehouse_events where tenant_id = $1 and event_type = any($2)", cancellationToken, tenantId, types);

    /// <summary>A tenant's touch events whose key is like <paramref name="keyLike"/>.</summary>
    public static async Task<long> CountTouchEventsByKeyAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, string keyLike,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction,
            "select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'touch' and idempotency_key like $2",
            cancellationToken, tenantId, keyLike);

    /// <summary>
    /// <paramref name="perContact"/> past email touches of every contact of the tenants, one every 3 days back from 2 hours before
    /// <paramref name="now"/>, keyed <c>history-&lt;contact name&gt;-h</c>; rows by age, then tenant and contact.
    /// </summary>
    public static Task<int> InsertTouchHistoryAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, DateTime now,
        int perContact, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
            select c.tenant_id, 'touch', 'contact', c.id, pg_catalog.jsonb_build_object('touch_type', 'email', 'touch_by', 'email-sync'),
                   'email-sync', pg_catalog.format('history-%s-%s', c.name, h), $2 - h * interval '3 days' - interval '2 hours'
            from public.contacts c cross join generate_series(1, $3) as h
            where c.tenant_id = any ($1)
            order by h, c.tenant_id, c.name
            """, cancellationToken, tenants, now, perContact);

    /// <summary>The detectors' watermarks that have moved (past seq 0).</summary>
    public static async Task<long> MovedWatermarksAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction, "select count(*) from public.insight_detector_state where watermark_seq > 0",
            cancellationToken);

    /// <summary>The events the detectors' watermarks count as processed, in all.</summary>
    public static async Task<long> EventsProcessedAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction,
            "select coalesce(sum(events_processed), 0)::bigint from public.insight_detector_state", cancellationToken);

    /// <summary>The detectors' watermarks that stand before their tenant's last event of the types the detector reads.</summary>
    public static async Task<long> WatermarksBehindAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction, """
            select count(*) from public.insight_detector_state d
            where d.watermark_seq < (select max(w.seq) from public.warehouse_events w where w.tenant_id = d.tenant_id
                                       and w.event_type = any (case d.detector when 'orders' then array['order_placed', 'order_validated']
                                                                               else array['touch', 'reply'] end))
            """, cancellationToken);

    /// <summary>The patterns of each type: (type, all, active), by type.</summary>
    public static Task<IReadOnlyList<(string Type, long Count, long Active)>> PatternCountsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction,
        CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.Command(connection, transaction, """
            select pattern_type, count(*), count(*) filter (where is_active) from public.client_patterns group by 1 order by 1
            """), r => (r.GetString(0), r.GetInt64(1), r.GetInt64(2)), cancellationToken);

    /// <summary>A churn_risk pattern (3 pieces of evidence, confidence 0.3 to 0.9) for every 25th account of the tenants, by id.</summary>
    public static Task<int> InsertChurnRiskPatternsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.client_patterns (tenant_id, entity_type, entity_id, pattern_type, confidence, evidence_count)
            select x.tenant_id, 'account', x.id, 'churn_risk', 0.3 + (x.k / 25 % 7) / 10.0, 3
            from (select a.tenant_id, a.id, pg_catalog.row_number() over (partition by a.tenant_id order by a.id) as k
                  from public.accounts a where a.tenant_id = any ($1)) x
            where x.k % 25 = 0
            """, cancellationToken, tenants);

    // Seeding (simulator, demo, benchmarks): the benchmarks' synthetic events and their frontier.

    /// <summary>
    /// A day of <paramref name="perDay"/> events per tenant, evenly spaced back from now: five types in turn, each on a new
    /// contact, keyed <c>bench-n-e</c> (n the tenant's place in <paramref name="tenants"/>), source <c>bench</c>.
    /// </summary>
    public static Task<int> GenerateEventsAsync(NpgsqlConnection connection, Guid[] tenants, int perDay, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
            select t.id,
                   (array['order_placed', 'order_shipped', 'contact_touched', 'invoice_paid', 'quote_viewed'])[1 + e % 5],
                   'contact', gen_random_uuid(), pg_catalog.jsonb_build_object('sequence', e, 'amount', e % 97),
                   'bench', pg_catalog.format('bench-%s-%s', t.n, e), now() - e * interval '1 day' / $2
            from unnest($1::uuid[]) with ordinality as t (id, n) cross join generate_series(1, $2) as e
            order by t.n, e
            """, cancellationToken, tenants, perDay);

    /// <summary>The last event's sequence number (0 when there is none).</summary>
    public static async Task<long> LastEventSeqAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, null, "select coalesce(max(seq), 0) from public.warehouse_events", cancellationToken);

    // The part's own functions: event ingestion (the import pipeline), strategy attribution (the cycle), retention (the CLI).

    /// <summary>
    /// Records a batch of events (<c>ingest_events</c>, a JSON array; duplicates skipped) in the caller's transaction: per
    /// line (1-based, in the array's order) its outcome, the event's id, its idempotency key and the error.
    /// </summary>
    public static async Task<IReadOnlyList<(int Line, string Outcome, Guid? EventId, string? IdempotencyKey, string? Error)>> IngestEventsAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string eventsJson, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "select line, outcome, event_id, idempotency_key, error from public.ingest_events($1, $2, 'skip')", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = eventsJson, NpgsqlDbType = NpgsqlDbType.Jsonb });
        var rows = new List<(int, string, Guid?, string?, string?)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add((reader.GetInt32(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetGuid(2),
                reader.IsDBNull(3) ? null : reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetString(4)));
        }

        return rows;
    }

    /// <summary>Credits the tenant's strategies with the outcomes since their last attribution (<c>attribute_strategy_outcomes</c>).</summary>
    public static async Task AttributeStrategyOutcomesAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var attribute = dataSource.CreateCommand(AttributeStrategyOutcomesSql);
        attribute.Parameters.Add(new() { Value = tenantId });
        await attribute.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// <c>apply_retention</c> for tenant $1 (the service role's alone) with the retention it applied: events deleted, runs
    /// deleted, the events' and the runs' retention in days.
    /// </summary>
    internal const string ApplyRetentionSql = """
        select r.events_deleted, r.runs_deleted,
               hourglass.tenant_setting_int($1, 'retention_events_days', 730), hourglass.tenant_setting_int($1, 'retention_runs_days', 90)
        from public.apply_retention($1) r
        """;

    // The part's functions as the simulator and the benchmarks call them.

    /// <summary><c>attribute_strategy_outcomes</c> of tenant $1 (the cycle's, and the cycles benchmark's baseline).</summary>
    internal const string AttributeStrategyOutcomesSql = "select * from public.attribute_strategy_outcomes($1)";

    /// <summary>
    /// Records a batch of events (<c>ingest_events</c>, a JSON array as text) in the caller's transaction, refusing the whole
    /// batch (an error) on any line it cannot record: the simulator's replies arriving.
    /// </summary>
    public static Task IngestEventsOrRefuseAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, string eventsJson,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "select count(*) from public.ingest_events($1, $2::jsonb, 'refuse')", cancellationToken,
            tenantId, eventsJson);

    /// <summary>
    /// How many events of tenant $1's batch $2 (a JSON array; duplicates skipped) <c>ingest_events</c> recorded, one row: the
    /// ingest benchmark's member path, one call per batch.
    /// </summary>
    internal const string IngestEventsRecordedCountSql =
        "select count(*) filter (where outcome = 'recorded')::integer from public.ingest_events($1, $2, 'skip')";
}
