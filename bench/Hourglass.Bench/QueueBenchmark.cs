using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Hourglass.Engagement;
using Hourglass.Insights;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// Latency of <c>public.engagement_queue(tenant, 50)</c> for one 10,000-clock tenant among 1,000,000 clocks,
/// called as the app calls it (Npgsql, parameterized, one connection), against the bare indexed query on
/// <c>idx_engagement_clocks_tenant_queue</c> in the same run; with the plans the server chose.
/// </summary>
internal static class QueueBenchmark
{
    private const string DatabaseName = "hourglass_bench_queue";
    private const int Tenants = 100;
    private const int AccountsPerTenant = 500;
    private const int ContactsPerAccount = 19;
    private const int ClocksPerTenant = AccountsPerTenant * (1 + ContactsPerAccount);
    private const int Limit = 50;
    private const int WarmUpCalls = 200;
    private const int Rounds = 10;
    private const int CallsPerRound = 200;
    private const double GoalP99Milliseconds = 2.0;

    // Where a clock's due date falls, by a fraction f of the tenant that is the same for every tenant (clock k of
    // 10,000 takes f = (k * 7919 mod 10,000) / 10,000, a permutation): 3% overdue by up to 10 days, 7% due within
    // the 3-day window, 90% compliant and due over the rest of the 21-day cycle — a tenant whose agent keeps up.
    private const double OverdueShare = 0.03;
    private const double DueSoonShare = 0.07;

    private enum Variant
    {
        Function,
        Bare,
        FunctionSql,
        FunctionUnprepared,
    }

    private static string Label(Variant variant) => variant switch
    {
        Variant.Function => "(a) engagement_queue($1, 50), prepared",
        Variant.Bare => "(b) baseline: bare indexed query, prepared",
        Variant.FunctionSql => "(c) the function's query as plain SQL, prepared",
        _ => "(d) engagement_queue($1, 50), unprepared (as `hourglass queue` sends it)",
    };

    // (d) differs from (a) in text (the alias `q`, as in `hourglass queue`) so that Npgsql never reuses (a)'s prepared statement.
    private static string Sql(Variant variant) => variant switch
    {
        Variant.Function => EngagementStore.QueueSql,
        Variant.Bare => QueueBaseline.BareSql,
        Variant.FunctionSql => QueueBaseline.FunctionBodySql,
        _ => EngagementStore.QueueSql + " q",
    };

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  queue: creating {DatabaseName}…");
        await using var database = await ScratchDatabase.CreateAsync(dataSource, DatabaseName, cancellationToken);
        var load = await LoadAsync(database.DataSource, cancellationToken);
        var tenant = load.Tenants[Tenants / 2];

        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
        var queued = await EngagementStore.NotCompliantClocksAsync(connection, null, tenant, cancellationToken);
        var sameAnswer = await CheckSameAnswerAsync(connection, tenant, cancellationToken);

        var commands = new Dictionary<Variant, NpgsqlCommand>();
        try
        {
            foreach (var variant in Enum.GetValues<Variant>())
            {
                var command = new NpgsqlCommand(Sql(variant), connection);
                command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenant });
                command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = Limit });
                if (variant != Variant.FunctionUnprepared)
                {
                    await command.PrepareAsync(cancellationToken);
                }

                commands[variant] = command;
            }

            Console.WriteLine($"  queue: warm-up, {WarmUpCalls} calls per variant…");
            foreach (var variant in Enum.GetValues<Variant>())
            {
                await TimeCallsAsync(commands[variant], WarmUpCalls, cancellationToken);
            }

            var calls = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<double>());
            var rounds = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<double[]>());
            var variants = Enum.GetValues<Variant>();
            for (var round = 0; round < Rounds; round++)
            {
                // The variants take turns call by call, each turn starting with the next variant: a burst of other work
                // on the machine lands on all of them alike, and none always follows the same one.
                var latencies = variants.ToDictionary(v => v, _ => new double[CallsPerRound]);
                for (var call = 0; call < CallsPerRound; call++)
                {
                    for (var i = 0; i < variants.Length; i++)
                    {
                        var variant = variants[(call + i) % variants.Length];
                        latencies[variant][call] = (await TimeCallsAsync(commands[variant], 1, cancellationToken))[0];
                    }
                }

                foreach (var variant in variants)
                {
                    calls[variant].AddRange(latencies[variant]);
                    rounds[variant].Add(latencies[variant]);
                }

                Console.WriteLine($"  queue round {round + 1}/{Rounds}: p99 " + string.Join(", ",
                    variants.Select(v => $"({Tag(v)}) {Percentile(rounds[v][^1], 0.99).ToString("0.000", CultureInfo.InvariantCulture)} ms")));
            }

            var plans = await PlansAsync(database.DataSource, tenant, cancellationToken);
            return Report(load, queued, sameAnswer, calls, rounds, plans);
        }
        finally
        {
            foreach (var command in commands.Values)
            {
                await command.DisposeAsync();
            }
        }
    }

    private static string Tag(Variant variant) => ((char)('a' + (int)variant)).ToString();

    private sealed record Load(Guid[] Tenants, long Clocks, long NonCompliant, long Overdue, long DueSoon, long WithChurn, long Refreshed, double Seconds);

    private sealed record Plans(string Custom, string Generic, string InFunction, string Bare);

    private static BenchReport Report(Load load, long queued, string sameAnswer, Dictionary<Variant, List<double>> calls,
        Dictionary<Variant, List<double[]>> rounds, Plans plans)
    {
        var measurements = new List<Measurement>();
        void Add(Variant variant, string statistic, Func<IReadOnlyList<double>, double> compute) =>
            measurements.Add(new Measurement($"{Label(variant)}: {statistic}", "ms", rounds[variant].Select(r => compute(r)).ToList())
            {
                Overall = compute(calls[variant]),
            });

        foreach (var variant in new[] { Variant.Function, Variant.Bare })
        {
            Add(variant, "p50", l => Percentile(l, 0.50));
            Add(variant, "p99", l => Percentile(l, 0.99));
            Add(variant, "mean", l => l.Average());
            Add(variant, "max", l => l.Max());
        }

        foreach (var variant in new[] { Variant.FunctionSql, Variant.FunctionUnprepared })
        {
            Add(variant, "p50", l => Percentile(l, 0.50));
            Add(variant, "p99", l => Percentile(l, 0.99));
        }

        double P(Variant v, double q) => Percentile(calls[v], q);
        string Ms(double value) => value.ToString("0.000", CultureInfo.InvariantCulture);
        string X(double value) => value.ToString("0.0", CultureInfo.InvariantCulture);
        var p99 = P(Variant.Function, 0.99);
        var total = Rounds * CallsPerRound;
        return new BenchReport(
            "queue",
            $"A scratch database (`{DatabaseName}`) with {Tenants} tenants x ({AccountsPerTenant} accounts + " +
            $"{AccountsPerTenant * ContactsPerAccount:#,0} contacts, {ContactsPerAccount} per account) = {load.Clocks:#,0} engagement clocks, one per " +
            "contact and account. Accounts have tiers (10% strategic, 30% growth, 60% standard) and owners (25 per tenant); 4% of accounts " +
            "carry an Insights churn risk (confidence 0.3-0.9). Loaded set-based (`insert … select generate_series`; accounts and contacts with " +
            "`session_replication_role = replica`, then their clocks in one INSERT, as the creation trigger would have made them; through " +
            "the trigger, one plpgsql call per row, the contacts alone took about 100 s on this machine). " +
            $"Due dates by a fixed permutation of each tenant's clocks: {OverdueShare:0%} overdue by up to 10 days, " +
            $"{DueSoonShare:0%} due within the 3-day window, the rest compliant; then `refresh_engagement_compliance` for every tenant " +
            $"(status, days overdue, priority with tier and churn, reason) and VACUUM ANALYZE: {load.Seconds:0} s in all. " +
            $"Measured on one tenant's queue ({queued:#,0} not-compliant clocks of its {ClocksPerTenant:#,0}), on one connection, each call " +
            "timed in the client from execute to the last row read (all columns). (a), (b) and (c) are prepared (`NpgsqlCommand.Prepare`), " +
            $"(d) is sent unprepared with its parameters. {WarmUpCalls} warm-up calls per variant, then {total:#,0} calls each, the variants " +
            "taking turns call by call (each turn starting with the next), so that other work on the machine meets all of them alike. " +
            $"Value: the statistic over all {total:#,0} calls; Runs: the same statistic for each tenth of the run ({CallsPerRound} calls each).",
            measurements,
            "(a)/(b) at p99",
            p99 / P(Variant.Bare, 0.99),
            "no goal set for the ratio (the issue's goal is on (a)'s p99, below)",
            true,
            [
                $"(a)/(b): p50 {X(P(Variant.Function, 0.5) / P(Variant.Bare, 0.5))}x, p99 {X(p99 / P(Variant.Bare, 0.99))}x; " +
                $"(c)/(b): p50 {X(P(Variant.FunctionSql, 0.5) / P(Variant.Bare, 0.5))}x; (a) - (c), the function call around its query: " +
                $"p50 {Ms(P(Variant.Function, 0.5) - P(Variant.FunctionSql, 0.5))} ms",
                $"other work on the machine, gauged by (b)'s tail: (b) p99 / p50 = {X(P(Variant.Bare, 0.99) / P(Variant.Bare, 0.5))} " +
                "(the bare query has almost no tail of its own, so a high figure means the run shared the CPUs)",
                $"the data: {load.Clocks:#,0} clocks in {Tenants} tenants, {load.NonCompliant:#,0} not compliant ({load.Overdue:#,0} overdue, " +
                $"{load.DueSoon:#,0} due soon), {load.WithChurn:#,0} with a churn risk; the refresh wrote {load.Refreshed:#,0}",
                sameAnswer,
                $"plan of (c) with its parameters (custom plan): {plans.Custom}",
                $"plan of (c) as a generic plan (`plan_cache_mode = force_generic_plan`; what a plpgsql function may settle on after 5 calls): {plans.Generic}",
                $"plan the function ran, by auto_explain (nested statements, after 20 calls on a new connection): {plans.InFunction}",
                $"plan of (b): {plans.Bare}",
            ])
        {
            HasGoal = false,
            ValueHeader = $"Over all {total:#,0} calls",
            FurtherGoals = [new FurtherGoal("(a) engagement_queue p99", $"{Ms(p99)} ms", $"<= {GoalP99Milliseconds:0.0} ms", p99 <= GoalP99Milliseconds)],
        };
    }

    private static async Task<Load> LoadAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  queue: loading {Tenants} tenants x {ClocksPerTenant:#,0} clocks…");
        var watch = Stopwatch.StartNew();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var ids = await TenancyStore.InsertNumberedTenantsAsync(connection, null, "bench-queue-", Tenants, 1, cancellationToken);
        // The rows are consistent by construction, so the per-row triggers (the clock each would get, the foreign key
        // checks) are skipped; the clocks are written below in one statement.
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            await Bench.ExecuteAsync(connection, "set local session_replication_role = replica", cancellationToken);
            await TenancyStore.InsertTieredAccountsInterleavedAsync(connection, transaction, ids, AccountsPerTenant, cancellationToken);
            await TenancyStore.InsertContactsPerAccountAsync(connection, transaction, ids, ContactsPerAccount, ContactLayout.Interleaved, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        // Clock k of a tenant (by id, so at random) gets fraction f; rows go in interleaved across tenants, as
        // clocks created over time would lie.
        await EngagementStore.InsertSteadyStateClocksAsync(connection, null, ids, ClocksPerTenant, OverdueShare, DueSoonShare, cancellationToken);
        await InsightsStore.InsertChurnRiskPatternsAsync(connection, null, ids, cancellationToken);
        await VacuumAnalyzeAsync(connection, cancellationToken);

        var refreshed = 0L;
        await using (var refresh = new NpgsqlCommand(EngagementStore.RefreshComplianceSql, connection))
        {
            var parameter = new NpgsqlParameter<Guid>();
            refresh.Parameters.Add(parameter);
            foreach (var id in ids)
            {
                parameter.TypedValue = id;
                refreshed += (int)(await refresh.ExecuteScalarAsync(cancellationToken))!;
            }
        }

        await VacuumAnalyzeAsync(connection, cancellationToken);
        var seconds = watch.Elapsed.TotalSeconds;

        var census = await EngagementStore.ClockCensusAsync(connection, null, cancellationToken);
        var load = new Load(ids, census.Clocks, census.NotCompliant, census.Overdue, census.DueSoon, census.ChurnRisk, refreshed, seconds);
        var entities = census.Entities;
        var unranked = census.Unranked;
        const long expected = (long)Tenants * ClocksPerTenant;
        if (load.Clocks != expected || entities != expected)
        {
            throw new HourglassException($"queue: {load.Clocks:#,0} clocks for {entities:#,0} contacts and accounts, expected {expected:#,0} of each.");
        }

        var share = (double)load.NonCompliant / load.Clocks;
        if (share < 0.099 || share > 0.105 || unranked > 0 || load.WithChurn == 0)
        {
            throw new HourglassException(
                $"queue: after the refresh {share:P1} of the clocks are not compliant (expected ~10%), {unranked} of them have no priority, " +
                $"{load.WithChurn} carry a churn risk; the setup is wrong.");
        }

        Console.WriteLine($"  queue: loaded in {seconds:0} s ({load.NonCompliant:#,0} not compliant)");
        return load;
    }

    private static async Task VacuumAnalyzeAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        foreach (var table in new[] { "tenants", "accounts", "contacts", "engagement_clocks", "client_patterns" })
        {
            await Bench.ExecuteAsync(connection, $"vacuum analyze public.{table}", cancellationToken);
        }
    }

    // Before anything is timed: the function and its query as plain SQL return the same rows in the same order,
    // and the bare query the same priorities (it breaks ties among equal priorities in no particular order).
    private static async Task<string> CheckSameAnswerAsync(NpgsqlConnection connection, Guid tenant, CancellationToken cancellationToken)
    {
        async Task<List<(Guid Id, decimal Priority)>> RowsAsync(string sql, int priorityColumn)
        {
            await using var command = new NpgsqlCommand(sql, connection);
            command.Parameters.Add(new() { Value = tenant });
            command.Parameters.Add(new() { Value = Limit });
            var rows = new List<(Guid, decimal)>();
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                rows.Add((reader.GetGuid(0), reader.GetDecimal(priorityColumn)));
            }

            return rows;
        }

        var function = await RowsAsync(Sql(Variant.Function), 8);
        var plain = await RowsAsync(QueueBaseline.FunctionBodySql, 8);
        var bare = await RowsAsync(QueueBaseline.BareSql, 6);
        if (function.Count != Limit || !function.SequenceEqual(plain) || !function.Select(r => r.Priority).SequenceEqual(bare.Select(r => r.Priority)))
        {
            throw new HourglassException(
                $"queue: the variants disagree: the function returned {function.Count} rows, its query as SQL {plain.Count} " +
                $"({(function.SequenceEqual(plain) ? "the same" : "different")}), the bare query {bare.Count}; the comparison is not valid.");
        }

        var top = function[0].Priority;
        var last = function[^1].Priority;
        return $"before timing: (a) and (c) returned the same {Limit} clocks in the same order, and (b) the same priorities " +
               $"({top.ToString("0.##", CultureInfo.InvariantCulture)} down to {last.ToString("0.##", CultureInfo.InvariantCulture)})";
    }

    private static async Task<double[]> TimeCallsAsync(NpgsqlCommand command, int count, CancellationToken cancellationToken)
    {
        var latencies = new double[count];
        var values = new object[16];
        for (var i = 0; i < count; i++)
        {
            var rows = 0;
            var start = Stopwatch.GetTimestamp();
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    reader.GetValues(values);
                    rows++;
                }
            }

            latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (rows != Limit)
            {
                throw new HourglassException($"queue: a call returned {rows} rows, expected {Limit}.");
            }
        }

        return latencies;
    }

    /// <summary>The nearest-rank percentile: the smallest value with at least <paramref name="q"/> of the values at or below it.</summary>
    private static double Percentile(IReadOnlyList<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        var rank = (int)Math.Ceiling(q * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    private static async Task<Plans> PlansAsync(NpgsqlDataSource dataSource, Guid tenant, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var custom = await ExplainAsync(connection, $"explain (analyze, buffers, format json) {QueueBaseline.FunctionBodySql}", tenant, cancellationToken);
        var bare = await ExplainAsync(connection, $"explain (analyze, buffers, format json) {QueueBaseline.BareSql}", tenant, cancellationToken);

        // The tenant id is a Guid of ours, not input: safe to inline where PREPARE / EXECUTE cannot take parameters.
        await Bench.ExecuteAsync(connection, $"prepare bench_queue_generic (uuid, integer) as {QueueBaseline.FunctionBodySql}", cancellationToken);
        await Bench.ExecuteAsync(connection, "set plan_cache_mode = force_generic_plan", cancellationToken);
        var generic = await ExplainAsync(connection,
            $"explain (analyze, buffers, format json) execute bench_queue_generic ('{tenant}', {Limit})", null, cancellationToken);
        await Bench.ExecuteAsync(connection, "reset plan_cache_mode", cancellationToken);
        await Bench.ExecuteAsync(connection, "deallocate bench_queue_generic", cancellationToken);

        // The plan the function itself runs: auto_explain, sent to this client as notices, once the function's
        // plan cache has settled.
        await using var call = new NpgsqlCommand(Sql(Variant.Function), connection);
        call.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenant });
        call.Parameters.Add(new NpgsqlParameter<int> { TypedValue = Limit });
        for (var i = 0; i < 20; i++)
        {
            await using var reader = await call.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
            }
        }

        var notices = new List<string>();
        void OnNotice(object? sender, NpgsqlNoticeEventArgs e) => notices.Add(e.Notice.MessageText);
        connection.Notice += OnNotice;
        string inFunction;
        try
        {
            foreach (var setting in new[]
            {
                "load 'auto_explain'", "set auto_explain.log_min_duration = 0", "set auto_explain.log_nested_statements = on",
                "set auto_explain.log_analyze = on", "set auto_explain.log_buffers = on", "set auto_explain.log_format = json",
                "set auto_explain.log_level = notice", "set client_min_messages = notice",
            })
            {
                await Bench.ExecuteAsync(connection, setting, cancellationToken);
            }

            await using (var reader = await call.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                }
            }

            await Bench.ExecuteAsync(connection, "set auto_explain.log_min_duration = -1", cancellationToken);
            var nested = notices.Select(ParseAutoExplain).FirstOrDefault(p => p is { } plan && plan.Query.Contains(QueueBaseline.FunctionBodyMarker, StringComparison.Ordinal));
            inFunction = nested is { } found ? $"{found.Shape}; {found.Duration}" : $"not captured ({notices.Count} notices)";
        }
        finally
        {
            connection.Notice -= OnNotice;
        }

        return new Plans(custom, generic, inFunction, bare);
    }

    private static async Task<string> ExplainAsync(NpgsqlConnection connection, string sql, Guid? tenant, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        if (tenant is { } id)
        {
            command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = Limit });
        }

        var json = (string)(await command.ExecuteScalarAsync(cancellationToken))!;
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement[0];
        var plan = root.GetProperty("Plan");
        return $"{Shape(plan)}; shared hit={Blocks(plan, "Shared Hit Blocks")} read={Blocks(plan, "Shared Read Blocks")}; " +
               $"execution {root.GetProperty("Execution Time").GetDouble().ToString("0.000", CultureInfo.InvariantCulture)} ms";
    }

    private static (string Query, string Shape, string Duration)? ParseAutoExplain(string message)
    {
        var start = message.IndexOf('{', StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(message[start..]);
            var root = document.RootElement;
            var plan = root.GetProperty("Plan");
            var duration = message[..start].Replace("plan:", "", StringComparison.Ordinal).Trim().TrimEnd(',');
            return (root.GetProperty("Query Text").GetString() ?? "",
                    $"{Shape(plan)}; shared hit={Blocks(plan, "Shared Hit Blocks")} read={Blocks(plan, "Shared Read Blocks")}",
                    duration + " (instrumented)");
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static long Blocks(JsonElement plan, string name) => plan.TryGetProperty(name, out var value) ? value.GetInt64() : 0;

    // A plan in one line, outermost node first: "Limit ← Incremental Sort ← Nested Loop (Left) ← (…; …)", each
    // node with its index or table and its actual rows (per loop) and loops.
    private static string Shape(JsonElement node)
    {
        var text = new StringBuilder(node.GetProperty("Node Type").GetString());
        if (node.TryGetProperty("Join Type", out var join) && join.GetString() is { } joinType && joinType != "Inner")
        {
            text.Append(CultureInfo.InvariantCulture, $" ({joinType})");
        }

        if (node.TryGetProperty("Index Name", out var index))
        {
            text.Append(CultureInfo.InvariantCulture, $" using {index.GetString()}");
        }
        else if (node.TryGetProperty("Relation Name", out var relation))
        {
            text.Append(CultureInfo.InvariantCulture, $" on {relation.GetString()}");
        }

        if (node.TryGetProperty("Presorted Key", out var presorted))
        {
            text.Append(CultureInfo.InvariantCulture, $" (presorted on {string.Join(", ", presorted.EnumerateArray().Select(k => k.GetString()))})");
        }

        if (node.TryGetProperty("Actual Rows", out var rows))
        {
            var loops = node.TryGetProperty("Actual Loops", out var l) ? l.GetInt64() : 1;
            if (loops > 1)
            {
                text.Append(CultureInfo.InvariantCulture, $" [{rows.GetDouble():0} rows x {loops} loops]");
            }
            else
            {
                text.Append(CultureInfo.InvariantCulture, $" [{rows.GetDouble():0} rows]");
            }
        }

        if (node.TryGetProperty("Plans", out var children))
        {
            var shapes = children.EnumerateArray().Select(Shape).ToList();
            text.Append(shapes.Count == 1 ? $" ← {shapes[0]}" : $" ← ({string.Join("; ", shapes)})");
        }

        return text.ToString();
    }
}
