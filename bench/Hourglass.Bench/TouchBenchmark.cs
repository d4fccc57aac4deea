using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Imports;
using Hourglass.Engagement;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Bench;

/// <summary>
/// Touches recorded per second through the batch path — <c>public.record_touches</c> called directly, and the
/// C# <see cref="ImportPipeline.RecordAsync"/> with <see cref="TouchImportKind"/> (as <c>hourglass touches import</c> uses it) — in batches of 1,000, against a plain batched INSERT of the touch log
/// plus UPDATE of the touched clocks in the same run.
/// </summary>
internal static class TouchBenchmark
{
    private const string DatabaseName = "hourglass_bench_touches";
    private const int Accounts = 1_000;
    private const int ContactsPerAccount = 10;
    private const int Contacts = Accounts * ContactsPerAccount;
    private const int Clocks = Accounts + Contacts;
    private const int HistoryPerContact = 2;
    private const int Touches = 100_000;
    private const int BatchSize = 1_000;
    private const int Batches = Touches / BatchSize;
    private const int Rounds = 5;
    private const int BatchesPerRound = Batches / Rounds;
    private const int WarmUpBatches = 3;
    private const string TouchBy = "email-sync";
    private const string Source = "bench";

    private enum Variant
    {
        Function,
        TouchBatchApi,
        Baseline,
    }

    private static string Label(Variant variant) => variant switch
    {
        Variant.Function => "(a) record_touches(tenant, jsonb, 'skip'), one call and commit per batch",
        Variant.TouchBatchApi => "(b) ImportPipeline.RecordAsync with TouchImportKind (C#), Skip mode, one transaction per batch",
        _ => "(c) baseline: one INSERT into warehouse_events + one UPDATE of engagement_clocks per batch",
    };

    private static string Tag(Variant variant) => ((char)('a' + (int)variant)).ToString();

    // "A newer touch": the batch's latest touch for the clock is later than its last touch (record_touches' n.newer).
    private const string Newer = "p.latest > coalesce(c.last_touch_at, '-infinity'::timestamptz)";
    private const string NewDue = "p.latest + pg_catalog.make_interval(days => c.touch_frequency_days)";

    // The least SQL that does what record_touches writes for valid, new touches of contacts: the touch log with its
    // idempotency keys (a key already taken is skipped), and each touched contact's and account's clock — the latest
    // touch moves it forward, an older one only counts; back within cadence it is compliant. No validation, no
    // per-line outcomes, no missing clocks or touch cards, no refresh of clocks still due; the due-soon window is
    // the default 3 days (the bench tenants set none).
    private const string BaselineSql = $"""
        with input as (
          select i.entity_id, i.occurred_at, i.idempotency_key, i.touch_type, i.line
          from unnest($2::uuid[], $3::timestamptz[], $4::text[], $5::text[]) with ordinality as i (entity_id, occurred_at, idempotency_key, touch_type, line)
        ), events as (
          insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
          select $1, 'touch', 'contact', i.entity_id, pg_catalog.jsonb_build_object('touch_type', i.touch_type, 'touch_by', $6::text),
                 $7, i.idempotency_key, i.occurred_at
          from input i
          on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
          returning idempotency_key
        ), per_clock as (
          select t.entity_type, t.entity_id, pg_catalog.count(*) as touches, pg_catalog.max(i.occurred_at) as latest,
                 (pg_catalog.array_agg(i.touch_type order by i.occurred_at desc, i.line desc))[1] as touch_type
          from input i
          join events e on e.idempotency_key = i.idempotency_key
          join public.contacts k on k.tenant_id = $1 and k.id = i.entity_id
          cross join lateral (values ('contact', i.entity_id), ('account', k.account_id)) t (entity_type, entity_id)
          where t.entity_id is not null
          group by t.entity_type, t.entity_id
        )
        update public.engagement_clocks c
        set last_touch_at = case when {Newer} then p.latest else c.last_touch_at end,
            last_touch_type = case when {Newer} then p.touch_type else c.last_touch_type end,
            last_touch_by = case when {Newer} then $6::text else c.last_touch_by end,
            last_card_id = case when {Newer} then null else c.last_card_id end,
            next_touch_due = case when {Newer} then {NewDue} else c.next_touch_due end,
            touch_count = c.touch_count + p.touches,
            compliance_status = case when {Newer} and {NewDue} > pg_catalog.now() + interval '3 days' then 'compliant' else c.compliance_status end,
            days_overdue = case when {Newer} and {NewDue} > pg_catalog.now() + interval '3 days' then 0 else c.days_overdue end,
            priority_score = case when {Newer} and {NewDue} > pg_catalog.now() + interval '3 days' then 0 else c.priority_score end,
            priority_reason = case when {Newer} and {NewDue} > pg_catalog.now() + interval '3 days' then null else c.priority_reason end,
            recovered_at = case when {Newer} and c.next_touch_due < pg_catalog.now() and {NewDue} >= pg_catalog.now()
                                then pg_catalog.now() else c.recovered_at end,
            updated_at = pg_catalog.now()
        from per_clock p
        where c.tenant_id = $1 and c.entity_type = p.entity_type and c.entity_id = p.entity_id
        """;

    // Every clock of a tenant as a string that does not depend on ids: equal for two tenants that ended in the same state.
    private const string FingerprintSql = """
        select pg_catalog.md5(pg_catalog.string_agg(pg_catalog.concat_ws('|', c.entity_type, coalesce(k.name, a.name), c.last_touch_at,
                 c.last_touch_type, c.last_touch_by, c.next_touch_due, c.touch_count, c.compliance_status, c.days_overdue, c.priority_score),
                 ',' order by c.entity_type, coalesce(k.name, a.name)))
        from public.engagement_clocks c
        left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
        left join public.accounts a on c.entity_type = 'account' and a.tenant_id = c.tenant_id and a.id = c.entity_id
        where c.tenant_id = $1
        """;

    /// <summary>One tenant's 100,000 touches in the three forms the variants send, batch by batch.</summary>
    private sealed class TouchStream
    {
        public required Guid Tenant { get; init; }

        public required string[] Json { get; init; }

        public required TouchLine[][] Lines { get; init; }

        public required (Guid[] Ids, DateTime[] At, string[] Keys, string[] Types)[] Arrays { get; init; }
    }

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  touches: creating {DatabaseName}…");
        await using var database = await ScratchDatabase.CreateAsync(dataSource, DatabaseName, cancellationToken);
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
        var watch = Stopwatch.StartNew();
        var names = new[] { "bench-touches-warmup", "bench-touches-a", "bench-touches-b", "bench-touches-c" };
        var tenants = await LoadAsync(connection, names, cancellationToken);
        var loadSeconds = watch.Elapsed.TotalSeconds;
        var before = await Bench.ScalarAsync<string>(connection, FingerprintSql, cancellationToken, tenants[1]);
        foreach (var tenant in tenants.Skip(2))
        {
            if (await Bench.ScalarAsync<string>(connection, FingerprintSql, cancellationToken, tenant) != before)
            {
                throw new HourglassException("touches: the measured tenants do not start in the same state; the comparison is not valid.");
            }
        }

        // The touches happened in the hour before this moment (to the millisecond, as JSON and the arrays carry it).
        var now = await Bench.ScalarAsync<DateTime>(connection, "select pg_catalog.now()", cancellationToken);
        var end = new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerMillisecond), DateTimeKind.Utc);

        Console.WriteLine("  touches: warm-up…");
        var warmUp = await StreamAsync(connection, tenants[0], end, "warm", cancellationToken);
        foreach (var variant in Enum.GetValues<Variant>())
        {
            for (var b = 0; b < WarmUpBatches; b++)
            {
                // Each variant its own batches of the warm-up stream: new keys every time.
                await RecordAsync(connection, variant, warmUp, (int)variant * WarmUpBatches + b, cancellationToken);
            }
        }

        var streams = new Dictionary<Variant, TouchStream>
        {
            [Variant.Function] = await StreamAsync(connection, tenants[1], end, "touch", cancellationToken),
            [Variant.TouchBatchApi] = await StreamAsync(connection, tenants[2], end, "touch", cancellationToken),
            [Variant.Baseline] = await StreamAsync(connection, tenants[3], end, "touch", cancellationToken),
        };
        var times = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<double>());
        var runs = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<double>());
        var variants = Enum.GetValues<Variant>();
        for (var round = 0; round < Rounds; round++)
        {
            await Bench.ExecuteAsync(connection, "checkpoint", cancellationToken);
            for (var i = 0; i < variants.Length; i++)
            {
                // Each variant takes the round's next 20 batches of its own tenant's stream; the order rotates.
                var variant = variants[(round + i) % variants.Length];
                var seconds = 0.0;
                for (var b = round * BatchesPerRound; b < (round + 1) * BatchesPerRound; b++)
                {
                    var start = Stopwatch.GetTimestamp();
                    await RecordAsync(connection, variant, streams[variant], b, cancellationToken);
                    var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
                    times[variant].Add(elapsed);
                    seconds += elapsed;
                }

                runs[variant].Add(BatchesPerRound * BatchSize / seconds);
                Console.WriteLine($"  touches round {round + 1}/{Rounds}: {Label(variant),-92} {BatchesPerRound * BatchSize / seconds,8:#,0} touches/s");
            }
        }

        var checks = await CheckAsync(connection, tenants, before, cancellationToken);
        var breakdown = await BreakdownAsync(connection, warmUp, cancellationToken);
        return Report(times, runs, checks, breakdown, loadSeconds);
    }

    private static BenchReport Report(Dictionary<Variant, List<double>> times, Dictionary<Variant, List<double>> runs,
        IReadOnlyList<string> checks, string breakdown, double loadSeconds)
    {
        var overall = times.ToDictionary(t => t.Key, t => Touches / t.Value.Sum());
        var measurements = Enum.GetValues<Variant>()
            .Select(v => new Measurement(Label(v), "touches/s", runs[v]) { Overall = overall[v] })
            .ToList();
        string Ms(IEnumerable<double> seconds) => (seconds.Average() * 1000).ToString("0.0", CultureInfo.InvariantCulture);
        string F2(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        var ratio = overall[Variant.Function] / overall[Variant.Baseline];
        return new BenchReport(
            "touches",
            $"A scratch database (`{DatabaseName}`) with four tenants of {Accounts:#,0} accounts x {ContactsPerAccount} contacts " +
            $"({Contacts:#,0} contacts, {Clocks:#,0} clocks, made by the schema's triggers): one for warm-up and one for each variant, " +
            "loaded identically (checked: the same clocks by name). Clocks by a fixed permutation: 3% overdue, 7% due soon, the rest " +
            $"compliant, refreshed; {HistoryPerContact * Contacts:#,0} earlier touches per tenant already in warehouse_events with their keys; " +
            $"VACUUM ANALYZE; {loadSeconds:0} s in all. Each variant records the same stream of {Touches:#,0} touches on its own tenant: touch i " +
            $"is contact (i x 7919 mod {Contacts:#,0}) (every contact 10 times, every account 100 times), its own idempotency key, " +
            "occurred_at spread over the hour before the run (out of order, so some touches are older than the clock's last), type " +
            $"email/call/meeting 7:2:1. Batches of {BatchSize:#,0}, each its own transaction, on one connection; {Rounds} rounds of " +
            $"{BatchesPerRound} batches per variant, variants in rotating order, CHECKPOINT before each round. (a) sends a prebuilt JSON array " +
            "as a jsonb parameter and reads the per-line outcomes; " +
            "(b) is the C# API `hourglass touches import` uses, from parsed lines " +
            "(its JSON building is timed; the command holds one transaction for the whole file, here each batch commits); " +
            "(c) sends four arrays (binary parameters) and one statement (data-modifying CTEs: the INSERT, " +
            "then the UPDATE of every touched contact's and account's clock from the rows the INSERT returned), without validation, " +
            "per-line outcomes, missing clocks, touch cards or a refresh. No touch cards are open, so no variant closes any. Value: " +
            $"{Touches:#,0} / the variant's total time; Runs: each round's {BatchesPerRound * BatchSize:#,0}.",
            measurements,
            "(a)/(c) touches/s",
            ratio,
            "no goal set in the issue",
            true,
            [
                .. checks,
                $"(b)/(c) = {F2(overall[Variant.TouchBatchApi] / overall[Variant.Baseline])}; (b)/(a) = {F2(overall[Variant.TouchBatchApi] / overall[Variant.Function])}",
                $"time per batch of {BatchSize:#,0}, ms: " + string.Join("; ", Enum.GetValues<Variant>().Select(v =>
                    $"({Tag(v)}) {Ms(times[v])} (batches 1-10 {Ms(times[v].Take(10))}, 91-100 {Ms(times[v].Skip(Batches - 10))})")),
                breakdown,
            ])
        {
            HasGoal = false,
            ValueHeader = $"All {Touches:#,0}",
        };
    }

    private static async Task<Guid[]> LoadAsync(NpgsqlConnection connection, string[] names, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  touches: loading {names.Length} tenants x {Contacts:#,0} contacts…");
        var tenants = new List<Guid>();
        foreach (var name in names)
        {
            tenants.Add(await Bench.ScalarAsync<Guid>(connection, "insert into public.tenants (name) values ($1) returning id", cancellationToken, name));
        }

        var ids = tenants.ToArray();
        var t0 = await Bench.ScalarAsync<DateTime>(connection, "select pg_catalog.now()", cancellationToken);
        await Bench.ExecuteAsync(connection, """
            insert into public.accounts (tenant_id, name, tier, segment, owner_user_id)
            select t.id, pg_catalog.format('Account %s', a),
                   case when a % 10 = 0 then 'strategic' when a % 10 in (1, 4, 7) then 'growth' else 'standard' end,
                   case when a % 4 = 0 then 'enterprise' else 'smb' end, pg_catalog.md5((a % 25)::text)::uuid
            from unnest($1::uuid[]) with ordinality as t (id, n) cross join generate_series(1, $2) as a
            order by t.n, a
            """, cancellationToken, ids, Accounts);
        await Bench.ExecuteAsync(connection, """
            insert into public.contacts (tenant_id, account_id, name, email)
            select a.tenant_id, a.id, pg_catalog.format('%s person %s', a.name, c), pg_catalog.format('p%s@example.com', c)
            from public.accounts a cross join generate_series(1, $2) as c
            where a.tenant_id = any ($1)
            order by a.tenant_id, a.name, c
            """, cancellationToken, ids, ContactsPerAccount);

        // The clocks the triggers made, moved to where a tenant in steady state has them: clock k (by entity name, so the
        // same in every tenant) takes fraction f = k x 7919 mod 11,000 / 11,000 of the cycle.
        await Bench.ExecuteAsync(connection, """
            update public.engagement_clocks c
            set next_touch_due = d.due, last_touch_at = d.due - interval '21 days', last_touch_type = 'email', last_touch_by = 'bench',
                touch_count = 1 + x.k % 12, created_at = $2 - interval '400 days', updated_at = $2 - interval '1 day'
            from (
              select c.id, pg_catalog.row_number() over (partition by c.tenant_id order by c.entity_type, coalesce(k.name, a.name)) as k
              from public.engagement_clocks c
              left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
              left join public.accounts a on c.entity_type = 'account' and a.tenant_id = c.tenant_id and a.id = c.entity_id
              where c.tenant_id = any ($1)
            ) x
            cross join lateral (select ((x.k * 7919) % $3) / $3::float8 as f) p
            cross join lateral (select case
                when p.f < 0.03 then $2 - (p.f / 0.03) * interval '10 days'
                when p.f < 0.10 then $2 + ((p.f - 0.03) / 0.07) * interval '3 days'
                else $2 + interval '3 days' + ((p.f - 0.10) / 0.90) * interval '18 days'
              end as due) d
            where c.id = x.id
            """, cancellationToken, ids, t0, Clocks);
        await Bench.ExecuteAsync(connection, """
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at)
            select c.tenant_id, 'touch', 'contact', c.id, pg_catalog.jsonb_build_object('touch_type', 'email', 'touch_by', 'email-sync'),
                   'email-sync', pg_catalog.format('history-%s-%s', c.name, h), $2 - h * interval '3 days' - interval '2 hours'
            from public.contacts c cross join generate_series(1, $3) as h
            where c.tenant_id = any ($1)
            order by h, c.tenant_id, c.name
            """, cancellationToken, ids, t0, HistoryPerContact);
        foreach (var tenant in ids)
        {
            await Bench.ExecuteAsync(connection, "select public.refresh_engagement_compliance($1)", cancellationToken, tenant);
        }

        foreach (var table in new[] { "tenants", "accounts", "contacts", "engagement_clocks", "warehouse_events", "cards" })
        {
            await Bench.ExecuteAsync(connection, $"vacuum analyze public.{table}", cancellationToken);
        }

        return ids;
    }

    // Touch i of the stream: contact (i x 7919 mod 10,000) by name, key "<prefix>-i", occurred_at within the hour before end.
    private static async Task<TouchStream> StreamAsync(NpgsqlConnection connection, Guid tenant, DateTime end, string prefix, CancellationToken cancellationToken)
    {
        var contacts = new List<Guid>(Contacts);
        await using (var command = new NpgsqlCommand("select id from public.contacts where tenant_id = $1 order by name", connection))
        {
            command.Parameters.Add(new() { Value = tenant });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                contacts.Add(reader.GetGuid(0));
            }
        }

        var json = new string[Batches];
        var lines = new TouchLine[Batches][];
        var arrays = new (Guid[], DateTime[], string[], string[])[Batches];
        for (var b = 0; b < Batches; b++)
        {
            var ids = new Guid[BatchSize];
            var at = new DateTime[BatchSize];
            var keys = new string[BatchSize];
            var types = new string[BatchSize];
            var batchLines = new TouchLine[BatchSize];
            for (var j = 0; j < BatchSize; j++)
            {
                var i = (long)b * BatchSize + j;
                ids[j] = contacts[(int)(i * 7919 % Contacts)];
                at[j] = end.AddHours(-1).AddMilliseconds(i * 104_729 % 3_600_000);
                keys[j] = $"{prefix}-{i:D6}";
                types[j] = (i % 10) switch { < 7 => "email", < 9 => "call", _ => "meeting" };
                batchLines[j] = new TouchLine((int)i + 1, new JsonObject
                {
                    ["entity_type"] = "contact",
                    ["entity_id"] = ids[j].ToString(),
                    ["touch_type"] = types[j],
                    ["touch_by"] = TouchBy,
                    ["occurred_at"] = at[j].ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
                    ["idempotency_key"] = keys[j],
                    ["source"] = Source,
                }, null);
            }

            lines[b] = batchLines;
            json[b] = new JsonArray(batchLines.Select(l => (JsonNode)l.Touch!.DeepClone()).ToArray()).ToJsonString();
            arrays[b] = (ids, at, keys, types);
        }

        return new TouchStream { Tenant = tenant, Json = json, Lines = lines, Arrays = arrays };
    }

    private static async Task RecordAsync(NpgsqlConnection connection, Variant variant, TouchStream stream, int batch, CancellationToken cancellationToken)
    {
        switch (variant)
        {
            case Variant.Function:
            {
                await using var command = new NpgsqlCommand("select line, outcome, entity_type, entity_id, idempotency_key, error from public.record_touches($1, $2, 'skip')", connection);
                command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = stream.Tenant });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = stream.Json[batch], NpgsqlDbType = NpgsqlDbType.Jsonb });
                var recorded = 0;
                await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
                {
                    while (await reader.ReadAsync(cancellationToken))
                    {
                        recorded += reader.GetString(1) == "recorded" ? 1 : 0;
                    }
                }

                Expect(recorded, variant, batch);
                break;
            }

            case Variant.TouchBatchApi:
            {
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                var outcomes = await ImportPipeline.RecordAsync(TouchImportKind.Instance, connection, transaction, stream.Tenant, stream.Lines[batch], ImportErrorMode.Skip, BatchSize, cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                Expect(outcomes.Count(o => o.Outcome == "recorded"), variant, batch);
                break;
            }

            default:
            {
                var (ids, at, keys, types) = stream.Arrays[batch];
                await using var command = new NpgsqlCommand(BaselineSql, connection);
                command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = stream.Tenant });
                command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = ids });
                command.Parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = at, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys });
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = types });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = TouchBy });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Source });
                var clocks = await command.ExecuteNonQueryAsync(cancellationToken);
                if (clocks < BatchSize)
                {
                    throw new HourglassException($"touches: baseline batch {batch + 1} updated {clocks} clocks, fewer than its {BatchSize} distinct contacts.");
                }

                break;
            }
        }
    }

    private static void Expect(int recorded, Variant variant, int batch)
    {
        if (recorded != BatchSize)
        {
            throw new HourglassException($"touches: ({Tag(variant)}) batch {batch + 1} recorded {recorded} of {BatchSize} new touches; the numbers are not valid.");
        }
    }

    // After the rounds: every variant logged every touch once, counted every touch on its contact and account, and left
    // its tenant's clocks exactly as the others left theirs.
    private static async Task<IReadOnlyList<string>> CheckAsync(NpgsqlConnection connection, Guid[] tenants, string before, CancellationToken cancellationToken)
    {
        var fingerprints = new List<string>();
        foreach (var tenant in tenants.Skip(1))
        {
            var events = await Bench.ScalarAsync<long>(connection,
                "select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'touch' and idempotency_key like 'touch-%'",
                cancellationToken, tenant);
            var counted = await Bench.ScalarAsync<long>(connection,
                "select sum(touch_count)::bigint from public.engagement_clocks where tenant_id = $1", cancellationToken, tenant);
            var start = await Bench.ScalarAsync<long>(connection, """
                select sum(1 + k % 12)::bigint from generate_series(1, $1) as k
                """, cancellationToken, Clocks);
            var compliant = await Bench.ScalarAsync<long>(connection,
                "select count(*) from public.engagement_clocks where tenant_id = $1 and compliance_status = 'compliant'", cancellationToken, tenant);
            if (events != Touches || counted - start != 2L * Touches || compliant != Clocks)
            {
                throw new HourglassException(
                    $"touches: a tenant has {events:#,0} touch events (expected {Touches:#,0}), its clocks counted {counted - start:#,0} touches " +
                    $"(expected {2 * Touches:#,0}) and {compliant:#,0} of {Clocks:#,0} are compliant; the numbers are not valid.");
            }

            fingerprints.Add(await Bench.ScalarAsync<string>(connection, FingerprintSql, cancellationToken, tenant));
        }

        if (fingerprints.Distinct().Count() != 1 || fingerprints[0] == before)
        {
            throw new HourglassException("touches: the variants left their tenants' clocks in different states; the comparison is not valid.");
        }

        return
        [
            $"each variant logged {Touches:#,0} touch events with their keys, counted {2 * Touches:#,0} touches on the clocks (contact and " +
            $"account), and left all {Clocks:#,0} clocks compliant; every batch of (a) and (b) came back {BatchSize:#,0} x 'recorded'",
            "the three tenants' clocks ended identical (last touch, its type and author, next due, count, status, days overdue, " +
            "priority; compared by contact and account name)",
        ];
    }

    // Where record_touches spends a batch: auto_explain's duration of each statement the function runs, without
    // per-node instrumentation, over three more batches of the warm-up stream (median of each).
    private static async Task<string> BreakdownAsync(NpgsqlConnection connection, TouchStream warmUp, CancellationToken cancellationToken)
    {
        const int samples = 3;
        var notices = new List<string>();
        void OnNotice(object? sender, NpgsqlNoticeEventArgs e) => notices.Add(e.Notice.MessageText);
        var statements = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        var totals = new List<double>();
        connection.Notice += OnNotice;
        try
        {
            foreach (var setting in new[]
            {
                "load 'auto_explain'", "set auto_explain.log_min_duration = 2", "set auto_explain.log_nested_statements = on",
                "set auto_explain.log_analyze = off", "set auto_explain.log_format = json", "set auto_explain.log_level = notice",
                "set client_min_messages = notice",
            })
            {
                await Bench.ExecuteAsync(connection, setting, cancellationToken);
            }

            for (var sample = 0; sample < samples; sample++)
            {
                notices.Clear();
                var start = Stopwatch.GetTimestamp();
                await RecordAsync(connection, Variant.Function, warmUp, Enum.GetValues<Variant>().Length * WarmUpBatches + sample, cancellationToken);
                totals.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                foreach (var notice in notices)
                {
                    var brace = notice.IndexOf('{', StringComparison.Ordinal);
                    var duration = notice.IndexOf("duration: ", StringComparison.Ordinal);
                    if (brace < 0 || duration < 0)
                    {
                        continue;
                    }

                    using var document = JsonDocument.Parse(notice[brace..]);
                    var what = Describe(document.RootElement.GetProperty("Query Text").GetString() ?? "");
                    var ms = double.Parse(notice[(duration + 10)..].Split(' ', 2)[0], CultureInfo.InvariantCulture);
                    if (what is not null)
                    {
                        if (!statements.TryGetValue(what, out var list))
                        {
                            statements[what] = list = [];
                        }

                        list.Add(ms);
                    }
                }
            }

            await Bench.ExecuteAsync(connection, "set auto_explain.log_min_duration = -1", cancellationToken);
        }
        finally
        {
            connection.Notice -= OnNotice;
        }

        static double Median(List<double> values) => new Measurement("", "", values).Median;
        string Ms(double value) => value.ToString("0.0", CultureInfo.InvariantCulture);
        var parts = statements.Select(s => (s.Key, Ms: Median(s.Value))).ToList();
        var total = Median(totals);
        return $"where record_touches spends a batch of {BatchSize:#,0} (warm-up tenant; auto_explain durations, median of {samples} batches), " +
               $"ms: {string.Join("; ", parts.Select(p => $"{p.Key} {Ms(p.Ms)}"))}; the rest (smaller statements, JSON in and " +
               $"outcomes out, round trip and commit) {Ms(total - parts.Sum(p => p.Ms))}; in all {Ms(total)}";
    }

    // The function's three big statements; everything else (smaller, or nested inside these) is left out.
    private static string? Describe(string query)
    {
        var text = string.Join(' ', query.Split((char[])['\n', '\r', '\t', ' '], StringSplitOptions.RemoveEmptyEntries));
        return text switch
        {
            _ when text.Contains("from hourglass.touch_batch_lines", StringComparison.Ordinal) => "validation (touch_batch_lines)",
            _ when text.StartsWith("insert into public.engagement_clocks", StringComparison.Ordinal) =>
                "recreating missing clocks (INSERT … engagement_frequency(), which wrote no row)",
            _ when text.StartsWith("with events as", StringComparison.Ordinal) => "the write (events, clocks, cards)",
            _ => null,
        };
    }
}
