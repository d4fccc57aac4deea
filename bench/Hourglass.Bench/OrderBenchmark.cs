using System.Diagnostics;
using System.Globalization;
using Hourglass.Orders;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Bench;

/// <summary>
/// The order processor's throughput: orders per second that <see cref="OrderProcessor.DrainAsync"/> validates,
/// fixes and writes with one processor and with four side by side, against a trivial claim-and-complete loop on
/// the same queue (<c>claim_orders</c>, then one fenced UPDATE marking the claimed entries validated) in the same
/// run, variants interleaved in rounds.
/// </summary>
internal static class OrderBenchmark
{
    private const string DatabaseName = "hourglass_bench_orders";
    private const int OrdersPerRun = 20_000;
    private const int WarmUpOrders = 2_000;
    private const int ProfileOneOrders = 10_000;
    private const int Rounds = 3;
    private const int BatchSize = 100;
    private const int Parallel = 4;
    private const int VisibilitySeconds = 300;
    private const double ThroughputGoal = 2_000;
    private const double RatioGoal = 0.5;

    // The trivial loop's write: the claimed entries marked validated, fenced on the claim as the processor's is.
    private const string CompleteSql = """
        update public.order_processing_queue q
        set status = 'validated', claimed_by = null, claimed_until = null, processed_at = pg_catalog.now(), updated_at = pg_catalog.now()
        from unnest($1::uuid[], $2::bigint[]) as r (id, token)
        where q.id = r.id and q.status = 'processing' and q.claimed_by = $3 and q.claim_token = r.token
        """;

    private enum Variant
    {
        ProcessorOne,
        ProcessorFour,
        TrivialOne,
        TrivialFour,
        WhatIfProcessorFour,
        WhatIfTrivialFour,
    }

    // Warm-up: the processor's and the trivial loop's code paths, with 4 of each so the pool opens its connections.
    private static readonly Variant[] s_warmUp = [Variant.ProcessorFour, Variant.TrivialFour];

    // What-ifs for the migration, created before a what-if run is timed and dropped after it: (1) the claim across
    // tenants reads pending entries in claim order instead of sorting them all; (2) the credit exposure reads an
    // account's open orders only, not its whole history; (3) closing exceptions that no longer apply finds a batch's
    // open exceptions by queue entry instead of scanning every open exception of every tenant.
    private static readonly string[] WhatIfIndexes =
    [
        "create index bench_whatif_queue_claim on public.order_processing_queue (priority desc, created_at) where status = 'pending'",
        "create index bench_whatif_orders_open on public.orders (tenant_id, account_id) include (id, total) where status in ('placed', 'validated', 'on_hold')",
        "create index bench_whatif_exceptions_open on public.order_processing_exceptions (queue_id) where resolution_status in ('open', 'in_review')",
    ];

    private static string Label(Variant variant) => variant switch
    {
        Variant.ProcessorOne => "(a) OrderProcessor.DrainAsync, 1 processor",
        Variant.ProcessorFour => $"(b) OrderProcessor.DrainAsync, {Parallel} processors",
        Variant.TrivialOne => "(c) baseline: claim_orders + one fenced UPDATE to validated, 1 processor",
        Variant.TrivialFour => $"(d) baseline: claim_orders + one fenced UPDATE to validated, {Parallel} processors",
        Variant.WhatIfProcessorFour => "(e) what-if: (b) with the three proposed indexes",
        _ => "(f) what-if: (d) with the three proposed indexes",
    };

    private static string Tag(Variant variant) => ((char)('a' + (int)variant)).ToString();

    private static int Processors(Variant variant) => variant is Variant.ProcessorOne or Variant.TrivialOne ? 1 : Parallel;

    private static bool IsProcessor(Variant variant) => variant is Variant.ProcessorOne or Variant.ProcessorFour or Variant.WhatIfProcessorFour;

    private static bool IsWhatIf(Variant variant) => variant is Variant.WhatIfProcessorFour or Variant.WhatIfTrivialFour;

    /// <summary>One timed run: a variant draining a freshly placed set of orders.</summary>
    private sealed record RunResult(Variant Variant, int Round, int Orders, double Seconds, double PlaceSeconds, double ClientCpuSeconds,
        long Validated, long Exceptions, long Fixes)
    {
        /// <summary>The untimed rest of the run: what-if indexes, VACUUM and CHECKPOINT before it; checks, dropping the indexes, retiring after.</summary>
        public double UntimedSeconds { get; init; }

        public double OrdersPerSecond => Orders / Seconds;
    }

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  orders: creating {DatabaseName}…");
        await using var database = await ScratchDatabase.CreateAsync(dataSource, DatabaseName, cancellationToken);
        // The data source as the product opens it (DatabaseTarget): no reset on close, so plpgsql keeps its plans.
        var product = new NpgsqlConnectionStringBuilder(database.DataSource.ConnectionString) { NoResetOnClose = true };
        await using var productSource = new NpgsqlDataSourceBuilder(product.ConnectionString) { Name = "hourglass-bench-orders" }.Build();
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);

        var variants = Enum.GetValues<Variant>();
        var watch = Stopwatch.StartNew();
        Console.WriteLine($"  orders: loading {OrderBenchData.Tenants} tenants x ({OrderBenchData.AccountsPerTenant} accounts, {OrderBenchData.ProductsPerTenant} products)…");
        await OrderBenchData.LoadCatalogAsync(connection, cancellationToken);
        var rules = await Bench.ScalarAsync<long>(connection, "select count(*) from public.price_rules", cancellationToken);

        // Runs 2 and 4 warm up; run 10 + 6 x round + slot is the round's slot-th run; runs 90, 91 and 94 are profiled.
        var runs = new List<(int Run, int Orders)>();
        runs.AddRange(s_warmUp.Select(v => (WarmUpRun(v), WarmUpOrders)));
        for (var round = 0; round < Rounds; round++)
        {
            runs.AddRange(variants.Select((_, slot) => (MeasuredRun(round, slot), OrdersPerRun)));
        }

        runs.Add((ProfileRun(Variant.ProcessorOne), ProfileOneOrders));
        runs.Add((ProfileRun(Variant.ProcessorFour), OrdersPerRun));
        runs.Add((ProfileRun(Variant.WhatIfProcessorFour), OrdersPerRun));
        Console.WriteLine($"  orders: loading {runs.Sum(r => r.Orders):#,0} orders as drafts…");
        await OrderBenchData.LoadOrdersAsync(connection, runs, cancellationToken);
        var loadSeconds = watch.Elapsed.TotalSeconds;
        var data = await DataFactsAsync(connection, cancellationToken);
        Console.WriteLine($"  orders: loaded in {loadSeconds:0} s ({data})");

        Console.WriteLine("  orders: warm-up…");
        foreach (var variant in s_warmUp)
        {
            await RunOnceAsync(productSource, connection, variant, -1, WarmUpRun(variant), WarmUpOrders, cancellationToken);
        }

        var results = new List<RunResult>();
        for (var round = 0; round < Rounds; round++)
        {
            for (var slot = 0; slot < variants.Length; slot++)
            {
                var variant = variants[(round + slot) % variants.Length];
                var result = await RunOnceAsync(productSource, connection, variant, round, MeasuredRun(round, slot), OrdersPerRun, cancellationToken);
                results.Add(result);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  orders round {round + 1}/{Rounds}: {Label(variant),-90} {result.OrdersPerSecond,8:#,0} orders/s ({result.Seconds:0.0} s; untimed: placing {result.PlaceSeconds:0.0} s, the rest {result.UntimedSeconds:0.0} s)"));
            }
        }

        Console.WriteLine("  orders: profile (untimed, traced)…");
        var profiles = await ProfileAsync(productSource, connection, cancellationToken);
        var decide = OrderDecideTiming.Measure();
        return Report(results, profiles, decide, rules, data, loadSeconds, runs.Sum(r => r.Orders));
    }

    private static int WarmUpRun(Variant variant) => 1 + (int)variant;

    private static int MeasuredRun(int round, int slot) => 10 + Enum.GetValues<Variant>().Length * round + slot;

    private static int ProfileRun(Variant variant) => 90 + (int)variant;

    // How much history the exposure sum reads: orders on record per account (drafts of later runs included).
    private static async Task<string> DataFactsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            select (select count(*) from public.orders), (select count(*) from public.order_lines), avg(c), max(c)
            from (select count(*) as c from public.orders group by tenant_id, account_id) x
            """, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return string.Create(CultureInfo.InvariantCulture,
            $"{reader.GetInt64(0):#,0} orders, {reader.GetInt64(1):#,0} lines; {reader.GetDecimal(2):0} orders on record per account on average, {reader.GetInt64(3):#,0} at most");
    }

    // Places the run's orders (the trigger queues them); for the what-if variants, creates the proposed indexes;
    // vacuums and checkpoints; then times the variant draining the queue; checks the outcome order by order, drops
    // the what-if indexes and retires the orders, all untimed. before and after run just around the timed part.
    private static async Task<RunResult> RunOnceAsync(NpgsqlDataSource productSource, NpgsqlConnection connection, Variant variant, int round, int run, int orders,
        CancellationToken cancellationToken, Func<Task>? before = null, Func<Task>? after = null)
    {
        var placeSeconds = await OrderBenchData.PlaceAsync(connection, run, orders, cancellationToken);
        var untimed = Stopwatch.StartNew();
        if (IsWhatIf(variant))
        {
            foreach (var sql in WhatIfIndexes)
            {
                await Bench.ExecuteAsync(connection, sql, cancellationToken);
            }
        }

        foreach (var table in new[] { "public.order_processing_queue", "public.orders", "public.order_processing_exceptions" })
        {
            await Bench.ExecuteAsync(connection, $"vacuum analyze {table}", cancellationToken);
        }

        await Bench.ExecuteAsync(connection, "checkpoint", cancellationToken);
        var label = round < 0 ? $"{Label(variant)}, untimed run" : $"{Label(variant)}, round {round + 1}";
        var workers = Enumerable.Range(0, Processors(variant)).Select(i => $"bench-orders-{Tag(variant)}-run{run}-{i}").ToArray();
        if (before is not null)
        {
            await before();
        }

        untimed.Stop();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        long claimed;
        long completed;
        if (IsProcessor(variant))
        {
            var passes = await Task.WhenAll(workers.Select(worker =>
                new OrderProcessor(productSource, new OrderProcessorOptions { WorkerId = worker, BatchSize = BatchSize })
                    .DrainAsync(null, null, int.MaxValue, cancellationToken)));
            claimed = passes.Sum(p => (long)p.Claimed);
            completed = claimed - passes.Sum(p => (long)p.LostClaims);
        }
        else
        {
            var loops = await Task.WhenAll(workers.Select(worker => TrivialLoopAsync(productSource, worker, cancellationToken)));
            claimed = loops.Sum(l => l.Claimed);
            completed = loops.Sum(l => l.Completed);
        }

        var seconds = watch.Elapsed.TotalSeconds;
        var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        untimed.Start();
        if (after is not null)
        {
            await after();
        }

        if (claimed != orders || completed != orders)
        {
            throw new HourglassException($"orders: {label} claimed {claimed:#,0} and completed {completed:#,0} entries of {orders:#,0}; every order must be processed once.");
        }

        (long Validated, long Exceptions, long Fixes) outcome = (0, 0, 0);
        if (IsProcessor(variant))
        {
            outcome = await OrderBenchData.CheckProcessedAsync(connection, run, orders, label, cancellationToken);
        }
        else
        {
            await OrderBenchData.CheckTrivialAsync(connection, run, orders, label, cancellationToken);
        }

        if (IsWhatIf(variant))
        {
            foreach (var sql in WhatIfIndexes)
            {
                await Bench.ExecuteAsync(connection, $"drop index public.{sql.Split(' ')[2]}", cancellationToken);
            }
        }

        await OrderBenchData.RetireAsync(connection, run, cancellationToken);
        return new RunResult(variant, round, orders, seconds, placeSeconds, cpuSeconds, outcome.Validated, outcome.Exceptions, outcome.Fixes)
        {
            UntimedSeconds = untimed.Elapsed.TotalSeconds,
        };
    }

    /// <summary>An untimed, traced run of the processor: statement times by phase, the server's function statistics, plans.</summary>
    private sealed record Profile(Variant Variant, RunResult Result, IReadOnlyDictionary<string, (long Count, double Milliseconds)> Statements,
        IReadOnlyList<(string Name, long Calls, double Total, double Self)> Functions, IReadOnlyList<string> Plans);

    // (a), (b) and (e) once more each on a fresh run, with Npgsql's trace on and the server counting time in plpgsql
    // functions (track_functions = pl, for these runs' connections only). Around (b)'s timed part, the heavy
    // statements are explained on the batch it claims first, with the texts (a)'s trace captured.
    private static async Task<List<Profile>> ProfileAsync(NpgsqlDataSource productSource, NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await Bench.ExecuteAsync(connection, $"alter database {DatabaseName} set track_functions = 'pl'", cancellationToken);
        productSource.Clear();
        var profiles = new List<Profile>();
        IReadOnlyDictionary<string, string> texts = new Dictionary<string, string>();
        try
        {
            foreach (var variant in new[] { Variant.ProcessorOne, Variant.ProcessorFour, Variant.WhatIfProcessorFour })
            {
                OrderTrace? trace = null;
                OrderPlans.SampleBatch? sample = null;
                var plans = new List<string>();
                async Task BeforeAsync()
                {
                    if (variant == Variant.ProcessorFour)
                    {
                        sample = await OrderPlans.NextBatchAsync(connection, BatchSize, cancellationToken);
                        plans.AddRange(await ExplainBeforeAsync(connection, texts, sample, cancellationToken));
                    }

                    await Bench.ExecuteAsync(connection, """
                        select pg_catalog.pg_stat_reset_single_function_counters(p.oid)
                        from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                        where n.nspname in ('public', 'hourglass')
                        """, cancellationToken);
                    trace = new OrderTrace();
                }

                async Task AfterAsync()
                {
                    trace!.Dispose();
                    if (sample is not null)
                    {
                        plans.AddRange(await ExplainAfterAsync(connection, texts, sample, cancellationToken));
                    }
                }

                var orders = variant == Variant.ProcessorOne ? ProfileOneOrders : OrdersPerRun;
                var result = await RunOnceAsync(productSource, connection, variant, -1, ProfileRun(variant), orders, cancellationToken, BeforeAsync, AfterAsync);
                texts = trace!.Texts;
                // The processors' sessions report their function statistics when they end.
                productSource.Clear();
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
                var functions = new List<(string, long, double, double)>();
                await Bench.ExecuteAsync(connection, "select pg_catalog.pg_stat_clear_snapshot()", cancellationToken);
                await using (var command = new NpgsqlCommand("""
                    select schemaname || '.' || funcname, calls, total_time, self_time from pg_catalog.pg_stat_user_functions
                    where schemaname in ('public', 'hourglass') and calls > 0 order by total_time desc
                    """, connection))
                await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
                {
                    while (await reader.ReadAsync(cancellationToken))
                    {
                        functions.Add((reader.GetString(0), reader.GetInt64(1), reader.GetDouble(2), reader.GetDouble(3)));
                    }
                }

                profiles.Add(new Profile(variant, result, trace.Statements, functions, plans));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  orders profile: {Label(variant)}: {result.OrdersPerSecond:#,0} orders/s under the trace"));
            }
        }
        finally
        {
            await Bench.ExecuteAsync(connection, $"alter database {DatabaseName} reset track_functions", cancellationToken);
            productSource.Clear();
        }

        return profiles;
    }

    // Before (b)'s run, with 20,000 entries pending: the claim and the load's main query as they are and with the
    // what-if index that serves them, and two statements of the write (with the batch all validated).
    private static async Task<List<string>> ExplainBeforeAsync(NpgsqlConnection connection, IReadOnlyDictionary<string, string> texts,
        OrderPlans.SampleBatch batch, CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        var write = texts[OrderTrace.Phases[10]];
        var load = texts[OrderTrace.Phases[7]];
        var claim = await OrderPlans.ExplainClaimAsync(connection, BatchSize, VisibilitySeconds, cancellationToken);
        var claimWhatIf = await OrderPlans.ExplainClaimAsync(connection, BatchSize, VisibilitySeconds, cancellationToken, WhatIfIndexes[0]);
        var main = await OrderPlans.ExplainAsync(connection, load, [batch.QueueIds], cancellationToken);
        var mainWhatIf = await OrderPlans.ExplainAsync(connection, load, [batch.QueueIds], cancellationToken, WhatIfIndexes[1]);
        var orders = await OrderPlans.ExplainAsync(connection, OrderPlans.Statement(write, "update public.orders o"),
            [batch.TenantIds, batch.OrderIds, batch.OrderIds.Select(_ => "validated").ToArray(), batch.Subtotals, batch.Totals, now,
             OrderPlans.Texts(new string?[batch.OrderIds.Length])], cancellationToken);
        var events = await OrderPlans.ExplainAsync(connection, OrderPlans.Statement(write, "insert into public.warehouse_events"),
            [batch.TenantIds, batch.OrderIds, batch.OrderIds.Select(_ => "order_validated").ToArray(),
             batch.OrderIds.Select(_ => """{"pricing": "passed", "credit": "passed", "requirements": "passed", "fixes": 0}""").ToArray(), now], cancellationToken);
        return
        [
            $"the claim in claim_orders (auto_explain, nested; {OrdersPerRun:#,0} pending): {claim}; with what-if index (1): {claimWhatIf}",
            $"load: orders, accounts, exposure (the first batch): {main}; with what-if index (2): {mainWhatIf}",
            $"write: the orders UPDATE (the first batch, all validated): {orders}",
            $"write: the warehouse_events INSERT (one outcome event for each order of the first batch): {events}",
        ];
    }

    // After (b)'s run, before its exceptions are dismissed: closing the exceptions that no longer apply, for the
    // first batch, with the run's open exceptions, and with 10 times as many (more inserted in the rolled-back
    // transaction, on entries of earlier runs); each as it is and with what-if index (3).
    private static async Task<List<string>> ExplainAfterAsync(NpgsqlConnection connection, IReadOnlyDictionary<string, string> texts,
        OrderPlans.SampleBatch batch, CancellationToken cancellationToken)
    {
        var close = OrderPlans.Statement(texts[OrderTrace.Phases[10]], "update public.order_processing_exceptions e");
        object[] parameters = [batch.QueueIds, batch.QueueIds.Select(_ => "").ToArray(), DateTime.UtcNow];
        var open = await Bench.ScalarAsync<long>(connection,
            "select count(*) from public.order_processing_exceptions where resolution_status in ('open', 'in_review')", cancellationToken);
        var more = $"""
            insert into public.order_processing_exceptions (tenant_id, queue_id, order_id, exception_type, details)
            select q.tenant_id, q.id, q.order_id, 'bench_scale', '{"{}"}'::jsonb
            from public.order_processing_queue q join bench.order_plan p on p.tenant_id = q.tenant_id and p.order_id = q.order_id
            where q.status = 'validated' and p.run < {ProfileRun(Variant.ProcessorOne)} limit {9 * open}
            """;
        // The proposed change to OrderProcessor instead of index (3): join on the tenant too, so that the existing
        // uq_order_exceptions_open_type (tenant_id, queue_id, exception_type) where open serves the lookup.
        const string join = "from unnest($1::uuid[], $2::text[]) as r(queue_id, open_types)\nwhere e.queue_id = r.queue_id";
        var withTenant = close.Contains(join, StringComparison.Ordinal)
            ? close.Replace(join, "from unnest($1::uuid[], $2::text[], $4::uuid[]) as r(queue_id, open_types, tenant_id)\nwhere e.tenant_id = r.tenant_id and e.queue_id = r.queue_id",
                StringComparison.Ordinal)
            : null;
        object[] tenantParameters = [.. parameters, batch.TenantIds];
        const string analyze = "analyze public.order_processing_exceptions";
        async Task<string> JoinedAsync(params string[] setup) => withTenant is null
            ? "not measured (the statement changed)"
            : (await OrderPlans.ExplainAsync(connection, withTenant, tenantParameters, cancellationToken, setup)).ToString();
        return
        [
            $"write: closing exceptions that no longer apply (the first batch; {open:#,0} open exceptions): " +
            $"{await OrderPlans.ExplainAsync(connection, close, parameters, cancellationToken)}; with what-if index (3): " +
            $"{await OrderPlans.ExplainAsync(connection, close, parameters, cancellationToken, WhatIfIndexes[2])}; " +
            $"instead, joined on the tenant too (a change to OrderProcessor): {await JoinedAsync()}",
            $"the same with {10 * open:#,0} open exceptions: " +
            $"{await OrderPlans.ExplainAsync(connection, close, parameters, cancellationToken, more, analyze)}; " +
            $"with what-if index (3): {await OrderPlans.ExplainAsync(connection, close, parameters, cancellationToken, more, WhatIfIndexes[2], analyze)}; " +
            $"joined on the tenant: {await JoinedAsync(more, analyze)}",
        ];
    }

    /// <summary>The baseline: claim a batch, mark it validated (fenced on the claim tokens), until nothing is left.</summary>
    private static async Task<(long Claimed, long Completed)> TrivialLoopAsync(NpgsqlDataSource dataSource, string worker, CancellationToken cancellationToken)
    {
        long claimed = 0;
        long completed = 0;
        var ids = new List<Guid>(BatchSize);
        var tokens = new List<long>(BatchSize);
        while (true)
        {
            ids.Clear();
            tokens.Clear();
            await using (var claim = dataSource.CreateCommand("select queue_id, claim_token from public.claim_orders($1, $2, $3, $4)"))
            {
                claim.Parameters.Add(new() { Value = worker });
                claim.Parameters.Add(new() { Value = BatchSize });
                claim.Parameters.Add(new() { Value = VisibilitySeconds });
                claim.Parameters.Add(new() { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
                await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    ids.Add(reader.GetGuid(0));
                    tokens.Add(reader.GetInt64(1));
                }
            }

            if (ids.Count == 0)
            {
                return (claimed, completed);
            }

            claimed += ids.Count;
            await using var complete = dataSource.CreateCommand(CompleteSql);
            complete.Parameters.Add(new() { Value = ids.ToArray() });
            complete.Parameters.Add(new() { Value = tokens.ToArray() });
            complete.Parameters.Add(new() { Value = worker });
            completed += await complete.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    private static IEnumerable<string> ProfileLines(Profile profile)
    {
        string Ms(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        var batches = (double)profile.Result.Orders / BatchSize;
        var processors = Processors(profile.Variant);
        var phases = OrderTrace.Phases.Select(p => (Phase: p, Ms: profile.Statements.TryGetValue(p, out var s) ? s.Milliseconds / batches : 0)).ToList();
        var statements = phases.Sum(p => p.Ms);
        var wall = profile.Result.Seconds * 1000 * processors / batches;
        yield return string.Create(CultureInfo.InvariantCulture,
            $"where a batch of {BatchSize} goes, ({Tag(profile.Variant)}) with the trace on ({profile.Result.OrdersPerSecond:#,0} orders/s, untimed), " +
            $"client-side ms per batch{(processors > 1 ? " and processor" : "")}: ") +
            string.Join("; ", phases.Select(p => $"{p.Phase} {Ms(p.Ms)}")) +
            $"; statements in all {Ms(statements)}; the rest (deciding in C#, commit, pooled connection opens) {Ms(wall - statements)}; " +
            $"wall time per batch{(processors > 1 ? $" x {processors} processors" : "")} {Ms(wall)}";
        if (profile.Functions.Count > 0)
        {
            yield return $"({Tag(profile.Variant)}) server time in plpgsql over the run (track_functions = pl; total includes the queries a function runs): " +
                         string.Join("; ", profile.Functions.Take(6).Select(f => string.Create(CultureInfo.InvariantCulture,
                             $"{f.Name} {f.Calls:#,0} calls, {Ms(f.Total / batches)} ms per batch ({Ms(f.Total / f.Calls)} ms a call, self {Ms(f.Self / f.Calls)})")));
        }

        foreach (var plan in profile.Plans)
        {
            yield return $"plan: {plan}";
        }
    }

    private static BenchReport Report(List<RunResult> results, List<Profile> profiles, (double Clean, double Fixable) decide, long rules, string data,
        double loadSeconds, int loadedOrders)
    {
        var variants = Enum.GetValues<Variant>();
        var measurements = variants
            .Select(v => new Measurement(Label(v), "orders/s", results.Where(r => r.Variant == v).OrderBy(r => r.Round).Select(r => r.OrdersPerSecond).ToList()))
            .ToList();
        var median = variants.ToDictionary(v => v, v => measurements[(int)v].Median);
        var ratio = median[Variant.ProcessorFour] / median[Variant.TrivialFour];
        string F2(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        string Us(double value) => value.ToString("#,0", CultureInfo.InvariantCulture);
        var processed = results.Where(r => IsProcessor(r.Variant)).ToList();
        var first = processed[0];
        var clean = OrderBenchData.Kinds[0].Share * OrdersPerRun / 100;
        var fixable = OrderBenchData.Kinds.Where(k => k.Expected == "validated" && k.Fixes > 0).Sum(k => k.Share) * OrdersPerRun / 100;
        var fixes = OrderBenchData.Kinds.Sum(k => k.Share * k.Fixes) * OrdersPerRun / 100;
        var kinds = string.Join(", ", OrderBenchData.Kinds.Select(k => $"{k.Kind} {k.Share}%"));
        return new BenchReport(
            "orders",
            $"A scratch database (`{DatabaseName}`) with {OrderBenchData.Tenants} tenants, each with {OrderBenchData.AccountsPerTenant} accounts " +
            "(10% strategic, 30% growth, 60% standard; credit limits by tier, never reached here; 30% require a PO; 90% have a default ship-to), " +
            $"{OrderBenchData.ProductsPerTenant} products (list 5-300, cost 45-70% of list) and {rules / OrderBenchData.Tenants:#,0} price rules " +
            "(tier discounts, quantity breaks at 10 and 20, a contract price for every account, promotions of which a third expired and a third not yet valid). " +
            $"A run is a fresh set of {OrdersPerRun:#,0} orders spread over all tenants, 1-5 lines each, priced by the rules (the price each line should " +
            "have computed independently, in SQL), with a known defect mix: " + kinds + ". " +
            $"All orders of all runs are loaded up front as drafts, set-based with triggers off ({data}; {loadSeconds:0} s with the catalog); " +
            "a run is placed just before it is timed, as a host places orders: one UPDATE from draft to placed, whose per-row trigger queues each " +
            $"order (`on_order_change` → `enqueue_order`; {Us(results.Average(r => r.PlaceSeconds) * 1e6 / OrdersPerRun)} µs an order, untimed). " +
            "Then VACUUM ANALYZE of the queue, the orders and the exceptions, and a CHECKPOINT; the variant drains the queue (every tenant's: " +
            $"`p_tenant_id` null) in batches of {BatchSize} on a data source opened as the product opens it (`No Reset On Close=true`); " +
            "orders/s = orders / wall time. (a) and (b) are `new OrderProcessor(dataSource, new OrderProcessorOptions { WorkerId = …, BatchSize = " +
            $"{BatchSize} }}).DrainAsync(null, null, …)`, (b) {Parallel} of them with distinct worker ids under `Task.WhenAll`, as " +
            $"`hourglass orders process --processors {Parallel}` runs them; (c) and (d) call `public.claim_orders(worker, {BatchSize}, {VisibilitySeconds}, null)` " +
            "and then one UPDATE marking the claimed entries validated, fenced on claim_token, until the queue is empty. (e) and (f) are what-ifs: (b) and " +
            "(d) with three indexes a migration could add, created before the run and dropped after it: (1) `order_processing_queue (priority desc, " +
            "created_at) where status = 'pending'`, (2) `orders (tenant_id, account_id) include (id, total) where status in ('placed', 'validated', " +
            "'on_hold')`, (3) `order_processing_exceptions (queue_id) where resolution_status in ('open', 'in_review')`. After every run its orders are " +
            "marked fulfilled and its open exceptions dismissed, with triggers off, so neither the open credit exposure nor the open exceptions grow from " +
            $"run to run. A warm-up run of {WarmUpOrders:#,0} orders for (b) and for (d), then {Rounds} rounds, the variants in rotating order; median reported. " +
            $"Last, untimed: (a) ({ProfileOneOrders:#,0} orders), (b) and (e) once more with Npgsql's trace and the server's function statistics on, and the heavy statements explained around (b).",
            measurements,
            "(b)/(d) orders/s",
            ratio,
            $">= {RatioGoal.ToString("0.0", CultureInfo.InvariantCulture)}",
            ratio >= RatioGoal,
            [
                "every run checked order by order against its plan: each order claimed and written once (claims = orders, no lost claims), no entry left " +
                "pending or processing, queue status and host status (validated / on_hold) as planned, the planned fixes (count and types), the planned " +
                "exception type, and exactly one outcome event (order_validated or order_exception) and one order_fixed event per fix; the trivial loop's " +
                "entries all validated by it",
                $"outcome of every processor run: {first.Validated:#,0} validated ({(double)first.Validated / OrdersPerRun:P0}: {clean:#,0} clean and " +
                $"{fixable:#,0} fixed), {first.Exceptions:#,0} exceptions ({(double)first.Exceptions / OrdersPerRun:P0}), {first.Fixes:#,0} fixes (planned " +
                $"{fixes:#,0}); the same in every run: {(processed.All(r => r.Validated == first.Validated && r.Exceptions == first.Exceptions && r.Fixes == first.Fixes) ? "yes" : "no")}",
                $"(a)/(c) = {F2(median[Variant.ProcessorOne] / median[Variant.TrivialOne])}; (b)/(a) = {F2(median[Variant.ProcessorFour] / median[Variant.ProcessorOne])}; " +
                $"(d)/(c) = {F2(median[Variant.TrivialFour] / median[Variant.TrivialOne])}; what-ifs: (e)/(f) = {F2(median[Variant.WhatIfProcessorFour] / median[Variant.WhatIfTrivialFour])}, " +
                $"(e)/(b) = {F2(median[Variant.WhatIfProcessorFour] / median[Variant.ProcessorFour])}, (f)/(d) = {F2(median[Variant.WhatIfTrivialFour] / median[Variant.TrivialFour])}",
                "this process's CPU per order (deciding, JSON, Npgsql; the server's is not counted), median of the runs, µs: " + string.Join("; ", variants.Select(v =>
                    $"({Tag(v)}) {Us(results.Where(r => r.Variant == v).Select(r => r.ClientCpuSeconds * 1e6 / r.Orders).Order().ElementAt(Rounds / 2))}")),
                $"deciding in memory (`OrderDecider.Decide`, no database, 400 price rules): {F2(decide.Clean)} µs for a clean 3-line order, " +
                $"{F2(decide.Fixable)} µs for one with a price to fix",
                .. profiles.SelectMany(ProfileLines),
            ])
        {
            FurtherGoals =
            [
                new FurtherGoal($"(b) {Parallel} processors, orders/s", Bench.Format(median[Variant.ProcessorFour], "orders/s"),
                    $">= {ThroughputGoal.ToString("#,0", CultureInfo.InvariantCulture)}", median[Variant.ProcessorFour] >= ThroughputGoal),
            ],
        };
    }
}
