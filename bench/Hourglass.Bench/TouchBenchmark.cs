using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Imports;
using Hourglass.Engagement;
using Hourglass.Insights;
using Hourglass.Tenancy;
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
        _ => TouchBaseline.Label,
    };

    private static string Tag(Variant variant) => ((char)('a' + (int)variant)).ToString();

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
        var before = await EngagementStore.ClocksFingerprintAsync(connection, null, tenants[1], cancellationToken);
        foreach (var tenant in tenants.Skip(2))
        {
            if (await EngagementStore.ClocksFingerprintAsync(connection, null, tenant, cancellationToken) != before)
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
            tenants.Add(await TenancyStore.InsertTenantAsync(connection, null, name, cancellationToken));
        }

        var ids = tenants.ToArray();
        var t0 = await Bench.ScalarAsync<DateTime>(connection, "select pg_catalog.now()", cancellationToken);
        await TenancyStore.InsertTieredAccountsAsync(connection, null, ids, Accounts, cancellationToken);
        await TenancyStore.InsertContactsPerAccountAsync(connection, null, ids, ContactsPerAccount, ContactLayout.ByAccountName, cancellationToken);

        // The clocks the triggers made, moved to where a tenant in steady state has them: clock k (by entity name, so the
        // same in every tenant) takes fraction f = k x 7919 mod 11,000 / 11,000 of the cycle.
        await EngagementStore.SpreadClocksByNameAsync(connection, null, ids, t0, Clocks, cancellationToken);
        await InsightsStore.InsertTouchHistoryAsync(connection, null, ids, t0, HistoryPerContact, cancellationToken);
        foreach (var tenant in ids)
        {
            await EngagementStore.RefreshComplianceAsync(connection, null, tenant, cancellationToken);
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
        var contacts = await TenancyStore.ContactIdsByNameAsync(connection, null, tenant, cancellationToken);

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
                await using var command = new NpgsqlCommand(EngagementStore.RecordTouchesSql, connection);
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
                await using var command = new NpgsqlCommand(TouchBaseline.BaselineSql, connection);
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
            var events = await InsightsStore.CountTouchEventsByKeyAsync(connection, null, tenant, "touch-%", cancellationToken);
            var counted = await EngagementStore.TouchesCountedAsync(connection, null, tenant, cancellationToken);
            var start = await Bench.ScalarAsync<long>(connection, """
                select sum(1 + k % 12)::bigint from generate_series(1, $1) as k
                """, cancellationToken, Clocks);
            var compliant = await EngagementStore.CompliantClocksAsync(connection, null, tenant, cancellationToken);
            if (events != Touches || counted - start != 2L * Touches || compliant != Clocks)
            {
                throw new HourglassException(
                    $"touches: a tenant has {events:#,0} touch events (expected {Touches:#,0}), its clocks counted {counted - start:#,0} touches " +
                    $"(expected {2 * Touches:#,0}) and {compliant:#,0} of {Clocks:#,0} are compliant; the numbers are not valid.");
            }

            fingerprints.Add(await EngagementStore.ClocksFingerprintAsync(connection, null, tenant, cancellationToken));
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
            _ when text.StartsWith(TouchBaseline.MissingClocksMarker, StringComparison.Ordinal) =>
                "recreating missing clocks (INSERT … engagement_frequency(), which wrote no row)",
            _ when text.StartsWith("with events as", StringComparison.Ordinal) => "the write (events, clocks, cards)",
            _ => null,
        };
    }
}
