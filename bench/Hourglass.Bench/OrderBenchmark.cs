using System.Diagnostics;
using System.Globalization;
using Hourglass.Orders;
using Hourglass.Policies;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Bench;

/// <summary>
/// The order processor's throughput: orders per second that <see cref="OrderProcessor.DrainAsync"/> validates,
/// fixes and writes with one processor and with four side by side, against two baselines on the same queue in the
/// same run, variants interleaved in rounds (<see cref="OrderBaselines"/>): a trivial claim-and-complete loop
/// (<c>claim_orders</c>, then one fenced UPDATE marking the claimed entries validated), and plain SQL doing the
/// processor's reads and writes with the outcomes taken from the plan instead of validated.
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

    // The ratio goal restated against the same database work in plain SQL (docs/benchmarks.md, "orders": even that work,
    // with no validation at all, runs at about a quarter of the trivial loop).
    private const double SameWorkGoal = 0.8;

    private enum Variant
    {
        ProcessorOne,
        ProcessorFour,
        TrivialOne,
        TrivialFour,
        SameWorkOne,
        SameWorkFour,
    }

    // Warm-up: each code path, with 4 of each so the pool opens its connections.
    private static readonly Variant[] s_warmUp = [Variant.ProcessorFour, Variant.TrivialFour, Variant.SameWorkFour];

    private static string Label(Variant variant) => variant switch
    {
        Variant.ProcessorOne => "(a) OrderProcessor.DrainAsync, 1 processor",
        Variant.ProcessorFour => $"(b) OrderProcessor.DrainAsync, {Parallel} processors",
        Variant.TrivialOne => "(c) baseline: claim_orders + one fenced UPDATE to validated, 1 processor",
        Variant.TrivialFour => $"(d) baseline: claim_orders + one fenced UPDATE to validated, {Parallel} processors",
        Variant.SameWorkOne => "(e) baseline: the same reads and writes in plain SQL, outcomes from the plan, 1 processor",
        _ => $"(f) baseline: the same reads and writes in plain SQL, outcomes from the plan, {Parallel} processors",
    };

    private static string Tag(Variant variant) => ((char)('a' + (int)variant)).ToString();

    private static int Processors(Variant variant) => variant is Variant.ProcessorOne or Variant.TrivialOne or Variant.SameWorkOne ? 1 : Parallel;

    private static bool IsProcessor(Variant variant) => variant is Variant.ProcessorOne or Variant.ProcessorFour;

    private static bool IsTrivial(Variant variant) => variant is Variant.TrivialOne or Variant.TrivialFour;

    /// <summary>One timed run: a variant draining a freshly placed set of orders.</summary>
    private sealed record RunResult(Variant Variant, int Round, int Orders, double Seconds, double PlaceSeconds, double ClientCpuSeconds,
        long Validated, long Exceptions, long Fixes, long Violations)
    {
        /// <summary>The untimed rest of the run: VACUUM and CHECKPOINT before it; checks and retiring after.</summary>
        public double UntimedSeconds { get; init; }

        public double OrdersPerSecond => Orders / Seconds;
    }

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  orders: creating {DatabaseName}…");
        await using var database = await ScratchDatabase.CreateAsync(dataSource, DatabaseName, cancellationToken);
        // The data source as the product opens the embedded cluster (ProductDataSource): no reset on close, so plpgsql keeps
        // its plans, and statements prepared.
        await using var productSource = ProductDataSource.Create(database.DataSource.ConnectionString, direct: true, name: "hourglass-bench-orders");
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);

        var variants = Enum.GetValues<Variant>();
        var watch = Stopwatch.StartNew();
        Console.WriteLine($"  orders: loading {OrderBenchData.Tenants} tenants x ({OrderBenchData.AccountsPerTenant} accounts, {OrderBenchData.ProductsPerTenant} products)…");
        await OrderBenchData.LoadCatalogAsync(connection, cancellationToken);
        var rules = await OrderStore.PriceRuleCountAsync(connection, cancellationToken);

        // Runs 2, 4 and 6 warm up; run 10 + 6 x round + slot is the round's slot-th run; runs 90, 91 and 95 are profiled.
        var runs = new List<(int Run, int Orders)>();
        runs.AddRange(s_warmUp.Select(v => (WarmUpRun(v), WarmUpOrders)));
        for (var round = 0; round < Rounds; round++)
        {
            runs.AddRange(variants.Select((_, slot) => (MeasuredRun(round, slot), OrdersPerRun)));
        }

        runs.Add((ProfileRun(Variant.ProcessorOne), ProfileOneOrders));
        runs.Add((ProfileRun(Variant.ProcessorFour), OrdersPerRun));
        runs.Add((ProfileRun(Variant.SameWorkFour), OrdersPerRun));
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
        return Report(results, profiles, decide, rules, data, loadSeconds);
    }

    private static int WarmUpRun(Variant variant) => 1 + (int)variant;

    private static int MeasuredRun(int round, int slot) => 10 + Enum.GetValues<Variant>().Length * round + slot;

    private static int ProfileRun(Variant variant) => 90 + (int)variant;

    // How much history the exposure sum reads: orders on record per account (drafts of later runs included).
    private static async Task<string> DataFactsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var (orders, lines, mean, most) = await OrderStore.OrderHistorySizeAsync(connection, cancellationToken);
        return string.Create(CultureInfo.InvariantCulture,
            $"{orders:#,0} orders, {lines:#,0} lines; {mean:0} orders on record per account on average, {most:#,0} at most");
    }

    // Places the run's orders (the trigger queues them); vacuums and checkpoints; then times the variant draining
    // the queue; checks the outcome order by order and retires the orders, all untimed. before and after run just
    // around the timed part.
    private static async Task<RunResult> RunOnceAsync(NpgsqlDataSource productSource, NpgsqlConnection connection, Variant variant, int round, int run, int orders,
        CancellationToken cancellationToken, Func<Task>? before = null, Func<Task>? after = null)
    {
        var placeSeconds = await OrderBenchData.PlaceAsync(connection, run, orders, cancellationToken);
        var untimed = Stopwatch.StartNew();
        foreach (var table in new[] { "public.order_processing_queue", "public.orders", "public.order_processing_exceptions" })
        {
            await Bench.ExecuteAsync(connection, $"vacuum analyze {table}", cancellationToken);
        }

        await Bench.ExecuteAsync(connection, "checkpoint", cancellationToken);
        var plan = IsProcessor(variant) || IsTrivial(variant) ? null : await OrderBenchData.LoadPlanAsync(connection, run, cancellationToken);
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
            var loops = await Task.WhenAll(workers.Select(worker => IsTrivial(variant)
                ? OrderBaselines.TrivialLoopAsync(productSource, worker, BatchSize, VisibilitySeconds, cancellationToken)
                : OrderBaselines.SameWorkLoopAsync(productSource, worker, BatchSize, VisibilitySeconds, plan!, cancellationToken)));
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

        // The processor and the same-work baseline must leave the same rows: both are checked against the plan.
        (long Validated, long Exceptions, long Fixes) outcome = (0, 0, 0);
        long violations = 0;
        if (IsTrivial(variant))
        {
            await OrderBenchData.CheckTrivialAsync(connection, run, orders, label, cancellationToken);
        }
        else
        {
            outcome = await OrderBenchData.CheckProcessedAsync(connection, run, orders, label, cancellationToken);
            violations = await PolicyStore.OrderViolationCountAsync(connection, (await OrderBenchData.RunOrdersAsync(connection, run, cancellationToken)).OrderIds,
                cancellationToken);
        }

        await OrderBenchData.RetireAsync(connection, run, cancellationToken);
        return new RunResult(variant, round, orders, seconds, placeSeconds, cpuSeconds, outcome.Validated, outcome.Exceptions, outcome.Fixes, violations)
        {
            UntimedSeconds = untimed.Elapsed.TotalSeconds,
        };
    }

    /// <summary>An untimed, traced run: statement times by phase, and the server's function statistics.</summary>
    private sealed record Profile(Variant Variant, RunResult Result, IReadOnlyDictionary<string, (long Count, double Milliseconds)> Statements,
        IReadOnlyList<(string Name, long Calls, double Total, double Self)> Functions);

    // (a), (b) and (f) once more each on a fresh run, with Npgsql's trace on and the server counting time in plpgsql
    // functions (track_functions = pl, for these runs' connections only).
    private static async Task<List<Profile>> ProfileAsync(NpgsqlDataSource productSource, NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await Bench.ExecuteAsync(connection, $"alter database {DatabaseName} set track_functions = 'pl'", cancellationToken);
        productSource.Clear();
        var profiles = new List<Profile>();
        try
        {
            foreach (var variant in s_profiled)
            {
                OrderTrace? trace = null;
                async Task BeforeAsync()
                {
                    await Bench.ExecuteAsync(connection, """
                        select pg_catalog.pg_stat_reset_single_function_counters(p.oid)
                        from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                        where n.nspname in ('public', 'hourglass')
                        """, cancellationToken);
                    trace = new OrderTrace();
                }

                Task AfterAsync()
                {
                    trace!.Dispose();
                    return Task.CompletedTask;
                }

                var orders = variant == Variant.ProcessorOne ? ProfileOneOrders : OrdersPerRun;
                var result = await RunOnceAsync(productSource, connection, variant, -1, ProfileRun(variant), orders, cancellationToken, BeforeAsync, AfterAsync);
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

                profiles.Add(new Profile(variant, result, trace!.Statements, functions));
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

    private static readonly Variant[] s_profiled = [Variant.ProcessorOne, Variant.ProcessorFour, Variant.SameWorkFour];

    private static IEnumerable<string> ProfileLines(Profile profile)
    {
        string Ms(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        var batches = (double)profile.Result.Orders / BatchSize;
        var processors = Processors(profile.Variant);
        var phases = OrderTrace.Phases.Select(p => (Phase: p, Ms: profile.Statements.TryGetValue(p, out var s) ? s.Milliseconds / batches : 0)).ToList();
        var statements = phases.Sum(p => p.Ms);
        var wall = profile.Result.Seconds * 1000 * processors / batches;
        var others = profile.Statements.Where(s => !OrderTrace.Phases.Contains(s.Key))
            .Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Key} ({s.Value.Count:#,0} times, {Ms(s.Value.Milliseconds)} ms in all)"));
        yield return string.Create(CultureInfo.InvariantCulture,
            $"where a batch of {BatchSize} goes, ({Tag(profile.Variant)}) with the trace on ({profile.Result.OrdersPerSecond:#,0} orders/s, untimed), " +
            $"client-side ms per batch{(processors > 1 ? " and processor" : "")}, from sending to the last row read: ") +
            string.Join("; ", phases.Select(p => $"{p.Phase} {Ms(p.Ms)}")) +
            $"; statements in all {Ms(statements)}; the rest (deciding in C#, building the write, pooled connection opens) {Ms(wall - statements)}; " +
            $"wall time per batch{(processors > 1 ? $" x {processors} processors" : "")} {Ms(wall)}" +
            (others.Any() ? $"; besides: {string.Join(", ", others)}" : "");
        if (profile.Functions.Count > 0)
        {
            yield return $"({Tag(profile.Variant)}) server time in plpgsql over the run (track_functions = pl; total includes the queries a function runs): " +
                         string.Join("; ", profile.Functions.Take(6).Select(f => string.Create(CultureInfo.InvariantCulture,
                             $"{f.Name} {f.Calls:#,0} calls, {Ms(f.Total / batches)} ms per batch ({Ms(f.Total / f.Calls)} ms a call, self {Ms(f.Self / f.Calls)})")));
        }
    }

    private static BenchReport Report(List<RunResult> results, List<Profile> profiles, (double Clean, double Fixable) decide, long rules, string data,
        double loadSeconds)
    {
        var variants = Enum.GetValues<Variant>();
        var measurements = variants
            .Select(v => new Measurement(Label(v), "orders/s", results.Where(r => r.Variant == v).OrderBy(r => r.Round).Select(r => r.OrdersPerSecond).ToList()))
            .ToList();
        var median = variants.ToDictionary(v => v, v => measurements[(int)v].Median);
        var ratio = median[Variant.ProcessorFour] / median[Variant.TrivialFour];
        var sameWork = median[Variant.ProcessorFour] / median[Variant.SameWorkFour];
        string F2(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        string Us(double value) => value.ToString("#,0", CultureInfo.InvariantCulture);
        var processed = results.Where(r => IsProcessor(r.Variant)).ToList();
        var first = processed[0];
        var planned = results.Where(r => r.Variant is Variant.SameWorkOne or Variant.SameWorkFour).ToList();
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
            "and then one UPDATE marking the claimed entries validated, fenced on claim_token, until the queue is empty (the goal's baseline, unchanged). " +
            "(e) and (f) are the processor's database work without the processor: a plain loop sending the processor's own statements in its " +
            "three round trips on one connection, prepared as the processor's are — the claim (with the clock); one batch of the six reads " +
            "(tenants, policies, requirement rules, the lines with their products, the orders with accounts, open exposure and approvals, the " +
            "price rules of the lines' products), every value read; and the write: the guard and one statement, the fenced queue update and, " +
            "joined on the entries it kept, orders, the repriced line, fix rows, exceptions closed and raised with review cards, the auto-fix " +
            "violations and warehouse events, committed with it — driven by the same outcome arrays the processor sends, filled from each " +
            "order's kind in the benchmark's plan (read before the run, untimed) and the values just read, instead of from validation. Their runs pass the same " +
            "order-by-order check as the processor's. After every run its orders are marked fulfilled and its open exceptions dismissed, with " +
            "triggers off, so neither the open credit exposure nor the open exceptions grow from run to run. " +
            $"A warm-up run of {WarmUpOrders:#,0} orders for (b), (d) and (f), then {Rounds} rounds, the variants in rotating order; median reported. " +
            $"Last, untimed: (a) ({ProfileOneOrders:#,0} orders), (b) and (f) once more with Npgsql's trace and the server's function statistics on.",
            measurements,
            "(b)/(d) orders/s, against the trivial loop",
            ratio,
            $">= {RatioGoal.ToString("0.0", CultureInfo.InvariantCulture)}",
            ratio >= RatioGoal,
            [
                $"(a)/(e) = {F2(median[Variant.ProcessorOne] / median[Variant.SameWorkOne])}, the processor against plain SQL doing the same reads and " +
                "writes with 1 each",
                "every processor and same-work run checked order by order against its plan: each order claimed and written once (claims = orders, no lost " +
                "claims), no entry left pending or processing, queue status and host status (validated / on_hold) as planned, the planned fixes (count and " +
                "types), the planned exception type, and exactly one outcome event (order_validated or order_exception) and one order_fixed event per fix; " +
                "the trivial loop's entries all validated by it",
                $"outcome of every processor run: {first.Validated:#,0} validated ({(double)first.Validated / OrdersPerRun:P0}: {clean:#,0} clean and " +
                $"{fixable:#,0} fixed), {first.Exceptions:#,0} exceptions ({(double)first.Exceptions / OrdersPerRun:P0}), {first.Fixes:#,0} fixes (planned " +
                $"{fixes:#,0}), {first.Violations:#,0} policy violations; the same in every run: " +
                $"{(processed.All(r => r.Validated == first.Validated && r.Exceptions == first.Exceptions && r.Fixes == first.Fixes && r.Violations == first.Violations) ? "yes" : "no")}; " +
                $"the same rows from the same-work baseline in every run: " +
                $"{(planned.All(r => r.Validated == first.Validated && r.Exceptions == first.Exceptions && r.Fixes == first.Fixes && r.Violations == first.Violations) ? "yes" : "no")}",
                $"(a)/(c) = {F2(median[Variant.ProcessorOne] / median[Variant.TrivialOne])}; (b)/(a) = {F2(median[Variant.ProcessorFour] / median[Variant.ProcessorOne])}; " +
                $"(d)/(c) = {F2(median[Variant.TrivialFour] / median[Variant.TrivialOne])}; (f)/(e) = {F2(median[Variant.SameWorkFour] / median[Variant.SameWorkOne])}; " +
                $"(f)/(d) = {F2(median[Variant.SameWorkFour] / median[Variant.TrivialFour])}",
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
                new FurtherGoal("(b)/(f), against plain SQL doing the same reads and writes (the ratio goal restated)", F2(sameWork),
                    $">= {SameWorkGoal.ToString("0.0", CultureInfo.InvariantCulture)}", sameWork >= SameWorkGoal),
            ],
        };
    }
}
