using System.Diagnostics;
using System.Globalization;
using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Storage;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// The autonomous cycle end to end: tenant-cycles per second of one <see cref="CycleWorker"/> built by
/// <see cref="CycleComposition.CreateEngine"/>, against the same statements sent as plain SQL; whether a
/// cycle's time grows with the number of tenants in the database (1,000 against 10,000); and the worker's
/// memory while it cycles 10,000 tenants.
/// </summary>
internal static class CycleBenchmark
{
    // 200 standard tenants, in slices of 25 for the quiet hour's 4 variants and of 20 for the busy hour's 5: a
    // slice is the unit of interleaving (see MeasureAsync), and each variant gets two a round.
    private const int StandardTenants = 200;
    private const int QuietSlice = 25;
    private const int BusySlice = 20;
    private const int Rounds = 4;
    private const int LeaseMinutes = 2;
    private const double CyclesPerSecondGoal = 20;
    private const double RatioGoal = 3;
    private const double ScalingGoal = 1.2;
    private const double MemoryGoalMegabytes = 250;
    private static readonly TimeSpan s_sampleEvery = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// What an hour brings. Quiet: open touch cards exist for every clock that needed a touch an hour ago (the
    /// agent made them in earlier hours), so the cycle refreshes, plans, finds nothing new to propose, and
    /// records the hour. Busy: no open cards, so the cycle takes a full budget of touches (50 cards).
    /// </summary>
    private enum Workload
    {
        Quiet,
        Busy,
    }

    private enum Variant
    {
        Baseline,
        WorkerOne,
        WorkerFour,
        WorkerOneNoReset,
        BaselineOneActTransaction,
        WorkerFourNoReset,
    }

    private static readonly Variant[] s_quietVariants = [Variant.Baseline, Variant.WorkerOne, Variant.WorkerFour, Variant.WorkerOneNoReset];
    private static readonly Variant[] s_busyVariants =
        [Variant.Baseline, Variant.WorkerOne, Variant.WorkerFour, Variant.BaselineOneActTransaction, Variant.WorkerFourNoReset];

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var thousand = await Scale.CreateAsync(dataSource, "hourglass_bench_cycles_1k", null, 1_000, cancellationToken);
        await using var tenThousand = await Scale.CreateAsync(dataSource, "hourglass_bench_cycles_10k", thousand, 10_000, cancellationToken);

        Console.WriteLine("  cycles: warm-up; checking the baseline sends what the worker sends…");
        var traces = new List<string>
        {
            await thousand.WarmUpAsync(Workload.Quiet, cancellationToken),
            await tenThousand.WarmUpAsync(Workload.Quiet, cancellationToken),
            await thousand.WarmUpAsync(Workload.Busy, cancellationToken),
        };
        var starvation = await thousand.QuietStarvationAsync(cancellationToken);

        await MeasureAsync(dataSource, thousand, tenThousand, cancellationToken);
        var breakdown = await thousand.EnginePhasesAsync(cancellationToken);
        await thousand.DisposeAsync();
        var memory = await MeasureMemoryAsync(tenThousand, cancellationToken);
        return Report(thousand, tenThousand, memory, breakdown, traces, starvation);
    }

    // Rounds of interleaved slices. In a round, quiet slice k of the standard tenants is run by variant
    // (k + round) mod 4 in both databases, one right after the other (alternating which goes first), then busy
    // slice k by (k + round) mod 5 in the 1,000-tenant database: every variant meets the same load from the
    // rest of the machine within seconds of the others, and the two databases are compared step by step, not
    // minutes apart. A round's figure for a variant is its cycles over its time, summed over its slices.
    private static async Task MeasureAsync(NpgsqlDataSource admin, Scale thousand, Scale tenThousand, CancellationToken cancellationToken)
    {
        Scale[] scales = [thousand, tenThousand];
        for (var round = 0; round < Rounds; round++)
        {
            var totals = new Dictionary<(Scale, Workload, Variant), (long Cycles, double Seconds)>();
            async Task RunAsync(Scale scale, Workload workload, Variant variant, int k)
            {
                var size = workload == Workload.Quiet ? QuietSlice : BusySlice;
                var slice = scale.Standard.Skip(k * size).Take(size).ToArray();
                var workerId = $"bench-cycles-{workload.ToString().ToLowerInvariant()}-{Tag(variant)}-r{round + 1}-s{k + 1}";
                var (cycles, seconds) = await scale.RunSliceAsync(workload, variant, workerId, slice, cancellationToken);
                var total = totals.GetValueOrDefault((scale, workload, variant));
                totals[(scale, workload, variant)] = (total.Cycles + cycles, total.Seconds + seconds);
            }

            foreach (var scale in scales)
            {
                await scale.PrepareAsync(Workload.Quiet, scale.Standard, cancellationToken);
                await scale.VacuumAsync(cancellationToken);
            }

            await CheckpointAsync(admin, cancellationToken);
            for (var k = 0; k < StandardTenants / QuietSlice; k++)
            {
                for (var i = 0; i < scales.Length; i++)
                {
                    await RunAsync(scales[(i + k + round) % scales.Length], Workload.Quiet, s_quietVariants[(k + round) % s_quietVariants.Length], k);
                }
            }

            await thousand.PrepareAsync(Workload.Busy, thousand.Standard, cancellationToken);
            await thousand.VacuumAsync(cancellationToken);
            await CheckpointAsync(admin, cancellationToken);
            for (var k = 0; k < StandardTenants / BusySlice; k++)
            {
                await RunAsync(thousand, Workload.Busy, s_busyVariants[(k + round) % s_busyVariants.Length], k);
            }

            foreach (var ((scale, workload, variant), (cycles, seconds)) in totals.OrderBy(t => t.Key.Item2).ThenBy(t => t.Key.Item1.Tenants).ThenBy(t => t.Key.Item3))
            {
                scale.Runs[(workload, variant)].Add(cycles / seconds);
                var sum = scale.Totals.GetValueOrDefault((workload, variant));
                scale.Totals[(workload, variant)] = (sum.Cycles + cycles, sum.Seconds + seconds);
                Console.WriteLine(
                    $"  cycles {workload,-5} {scale.Tenants,6:#,0} tenants, round {round + 1}/{Rounds}: {Label(variant),-46} {cycles / seconds,7:0.0} cycles/s");
            }
        }
    }

    private static async Task CheckpointAsync(NpgsqlDataSource admin, CancellationToken cancellationToken)
    {
        await using var connection = await admin.OpenConnectionAsync(cancellationToken);
        await Bench.ExecuteAsync(connection, "checkpoint", cancellationToken);
    }

    private sealed record MemoryResult(
        int Tenants, long Cycles, double Seconds, double PeakWorkingSet, double PeakManaged, double StartWorkingSet, double EndWorkingSet,
        double ManagedBefore, double ManagedAfter, double ProcessPeakWorkingSet, int Samples);

    // The worker with its default options over every tenant of the 10,000-tenant database once (a quiet hour),
    // with this process's working set and managed heap sampled while it runs.
    private static async Task<MemoryResult> MeasureMemoryAsync(Scale scale, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  cycles: one worker over all {scale.All.Length:#,0} tenants, sampling memory…");
        await scale.PrepareAsync(Workload.Quiet, scale.All, cancellationToken);
        await scale.MakeDueAsync(scale.All, cancellationToken);
        const string workerId = "bench-cycles-memory";
        using var process = Process.GetCurrentProcess();
        var managedBefore = FullCollectMegabytes();
        process.Refresh();
        var startWorkingSet = Megabytes(process.WorkingSet64);

        using var stop = new CancellationTokenSource();
        var peakWorkingSet = startWorkingSet;
        var peakManaged = Megabytes(GC.GetTotalMemory(false));
        var samples = 0;
        var sampler = Task.Run(async () =>
        {
            using var sampling = Process.GetCurrentProcess();
            while (!stop.IsCancellationRequested)
            {
                sampling.Refresh();
                peakWorkingSet = Math.Max(peakWorkingSet, Megabytes(sampling.WorkingSet64));
                peakManaged = Math.Max(peakManaged, Megabytes(GC.GetTotalMemory(false)));
                samples++;
                try
                {
                    await Task.Delay(s_sampleEvery, stop.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }, CancellationToken.None);

        var worker = new CycleWorker(scale.DataSource, TimeProvider.System, scale.Engine, new CycleWorkerOptions { WorkerId = workerId });
        double seconds;
        try
        {
            seconds = await RunWorkerAsync(worker, cancellationToken);
        }
        finally
        {
            await stop.CancelAsync();
            await sampler;
        }

        process.Refresh();
        var endWorkingSet = Megabytes(process.WorkingSet64);
        var cycles = await scale.VerifyAsync(workerId, scale.All.Length, cancellationToken);
        var managedAfter = FullCollectMegabytes();
        process.Refresh();
        Console.WriteLine($"  cycles: {cycles:#,0} cycles in {seconds:0.0} s; peak working set {peakWorkingSet:0} MB, peak managed heap {peakManaged:0} MB");
        return new MemoryResult(scale.All.Length, cycles, seconds, peakWorkingSet, peakManaged, startWorkingSet, endWorkingSet,
            managedBefore, managedAfter, Megabytes(process.PeakWorkingSet64), samples);
    }

    // Passes until nothing is due: what CycleWorker.RunAsync does between polls.
    private static Task<double> RunWorkerAsync(CycleWorker worker, CancellationToken cancellationToken) =>
        Bench.TimeAsync(async () =>
        {
            while (await worker.RunOnceAsync(cancellationToken) > 0)
            {
            }
        });

    private static double FullCollectMegabytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Megabytes(GC.GetTotalMemory(true));
    }

    private static double Megabytes(long bytes) => bytes / (1024.0 * 1024.0);

    private sealed record EnginePhases(long Runs, double Actions, double Plan, double Act, double React, double Reflect, double RunRecord);

    private static BenchReport Report(Scale thousand, Scale tenThousand, MemoryResult memory, IReadOnlyDictionary<Workload, EnginePhases> phases,
        IReadOnlyList<string> traces, string starvation)
    {
        var measurements = new List<Measurement>();
        measurements.AddRange(s_quietVariants.Select(v => new Measurement($"quiet hour: {Label(v)}, {thousand.Tenants:#,0} tenants", "cycles/s", thousand.Runs[(Workload.Quiet, v)])));
        measurements.AddRange(s_quietVariants.Select(v => new Measurement($"quiet hour: {Label(v)}, {tenThousand.Tenants:#,0} tenants", "cycles/s", tenThousand.Runs[(Workload.Quiet, v)])));
        measurements.AddRange(s_busyVariants.Select(v => new Measurement($"busy hour: {Label(v)}, {thousand.Tenants:#,0} tenants", "cycles/s", thousand.Runs[(Workload.Busy, v)])));
        measurements.Add(new Measurement($"(e) CycleWorker, default options, all {memory.Tenants:#,0} tenants once, quiet (1 run)", "cycles/s", [memory.Cycles / memory.Seconds]));
        measurements.Add(new Measurement("(e) peak working set while (e) ran (sampled every 100 ms)", "MB", [memory.PeakWorkingSet]));
        measurements.Add(new Measurement("(e) peak managed heap while (e) ran (GC.GetTotalMemory)", "MB", [memory.PeakManaged]));

        static double Median(Scale s, Workload w, Variant v) => new Measurement("", "", s.Runs[(w, v)]).Median;
        static string F(double value, string format = "0.00") => value.ToString(format, CultureInfo.InvariantCulture);
        string Times(Workload w, Variant[] variants) =>
            string.Join(", ", variants.Select(v => $"{Letter(v)} {F(1000 / Median(thousand, w, v), "0.0")} ms"));
        static string PerStatement(CycleBaseline baseline) => string.Join("; ", baseline.PerCycle()
            .Where(s => s.Executions > 0)
            .Select(s => $"{s.Statement} {(Math.Abs(s.Executions - 1) < 0.005 ? "" : $"x{F(s.Executions, "0.##")} ")}{F(s.Milliseconds)}"));
        string Phases(Workload w) =>
            $"{F(phases[w].Actions, "0.#")} actions; plan {F(phases[w].Plan)} ms, act {F(phases[w].Act)}, react {F(phases[w].React)}, " +
            $"reflect {F(phases[w].Reflect)}; run insert to finish {F(phases[w].RunRecord)} ms, outside it (claim, lease, load tenant, release, " +
            $"complete claim, pass) {F(MeanMs(w) - phases[w].RunRecord)} ms of the {F(MeanMs(w))} ms mean";
        double MeanMs(Workload w) => thousand.Totals[(w, Variant.WorkerOne)].Seconds * 1000 / thousand.Totals[(w, Variant.WorkerOne)].Cycles;

        var ratio = Median(thousand, Workload.Quiet, Variant.Baseline) / Median(thousand, Workload.Quiet, Variant.WorkerOne);
        var busyRatio = Median(thousand, Workload.Busy, Variant.Baseline) / Median(thousand, Workload.Busy, Variant.WorkerOne);
        var scaling = Median(thousand, Workload.Quiet, Variant.WorkerOne) / Median(tenThousand, Workload.Quiet, Variant.WorkerOne);
        var bestQuiet = Math.Max(Median(thousand, Workload.Quiet, Variant.WorkerOne), Median(thousand, Workload.Quiet, Variant.WorkerFour));
        var bestBusy = Math.Max(Median(thousand, Workload.Busy, Variant.WorkerOne), Median(thousand, Workload.Busy, Variant.WorkerFour));
        var scalings = string.Join(", ", s_quietVariants.Select(v =>
            $"{Letter(v)} {F(Median(thousand, Workload.Quiet, v) / Median(tenThousand, Workload.Quiet, v))}"));

        return new BenchReport(
            "cycles",
            $"Two scratch databases on the benchmark's server hold {thousand.Tenants:#,0} and {tenThousand.Tenants:#,0} tenants: the first " +
            "migrated and loaded, the second a copy of it (`create database … template`) with more tenants added. Both have the same " +
            $"{StandardTenants} standard tenants: {CycleBenchData.StandardAccounts} accounts x {CycleBenchData.StandardContactsPerAccount} " +
            $"contacts = {CycleBenchData.StandardContacts:#,0} contacts; every contact and account has an engagement clock (the contacts' due dates " +
            $"spread over one 21-day cycle, 2 days overdue to 19 ahead: about 190 overdue and 290 due soon), {CycleBenchData.StandardOrders} orders with " +
            $"{CycleBenchData.LinesPerOrder} lines each, all queued in order_processing_queue, and one day of warehouse_events " +
            $"({CycleBenchData.StandardEventsPerDay}). The other tenants are small ({CycleBenchData.SmallContacts} contacts) and not due. Every " +
            $"tenant has {CycleBenchData.HistoryHours} hours of history (completed runs and reflections). Loaded set-based " +
            $"(`insert … select generate_series`, through the stores; the schema's trigger gives contacts their clocks); then, untimed, the standard tenants' backlog " +
            "is processed as their first cycles would: every queued order decided and written by the order processor, and the detectors run over " +
            "every event (which also makes their time sweep, due again after 6 hours); then VACUUM ANALYZE: " +
            $"{F(thousand.LoadSeconds, "0")} s, and {F(tenThousand.LoadSeconds, "0")} s for the copy and the extra tenants. The measured hours " +
            "bring no new orders and no new events: each cycle's Orders part finds an empty queue, its Insights part its watermarks at the event " +
            "frontier, and its approvals part nothing to expire or run; there are no success strategies, and the policy is the built-in default. " +
            "Before each round, untimed: the clocks are put back as a refresh an hour earlier left them (so a cycle's refresh has an " +
            "hour's changes to write), the hour's reflections, ledger rows and cycle-made cards are removed (so the cycle writes them " +
            "anew, as in a new hour), the tables the cycle writes are vacuumed, and the server checkpoints. A quiet hour: open touch cards exist for every clock that needed a " +
            "touch an hour ago, so the cycle refreshes, plans, proposes only the touches of clocks that came due within the hour (about 4) and records " +
            "the hour. A busy hour: no open cards, so " +
            "every cycle takes a full budget of 50 touches (a card and a ledger row each). A round runs each standard tenant once per " +
            $"database and workload, in slices ({QuietSlice} tenants quiet, {BusySlice} busy) made due at the top of the current hour and run to the end by one variant; " +
            "the variants take turns slice by slice and the two databases step by step, so all meet the same load from the rest of the " +
            "machine. Every run must end 'completed'; cycles/s = cycles / wall time. (a) sends a cycle's statements as plain SQL on one " +
            "held connection, tenants in sequence, in the worker's transactions and batches (a fenced single statement is one batch of " +
            "assert_lock_token and the statement); the statements it sends were checked against Npgsql's trace of the worker's, statement " +
            "for statement, both runs from the same state with the database clock frozen at the same instant. What (a) does not do is the " +
            "worker's in-memory work: it folds no events, decides no orders and evaluates no policy (every action is recorded as allowed, " +
            "as the default policy allowed every one here: a violation or approval card the worker wrote would fail the check); it stops " +
            "with an error if a page of events, a claimed order, a due time sweep, an approved action or an active strategy turns up. " +
            "(b), (c), (d) and (g) are `CycleComposition.CreateEngine` + `CycleWorker.RunOnceAsync` until it returns 0; (d) " +
            "and (g) are what-ifs: (b) and (c) on a data source with `No Reset On Close=true`; (f) is a what-if on (a): the Act phase in one fenced " +
            $"transaction with a savepoint per action, instead of one transaction and commit per action. {Rounds} rounds; median reported. (e) makes all " +
            $"{memory.Tenants:#,0} tenants of the larger database due for a quiet hour and runs one worker with default options " +
            "(MaxConcurrentCycles 4, lease 2 min) over them, sampling this process's working set; the process also holds the loader, " +
            "which keeps nothing once loaded.",
            measurements,
            $"quiet hour, (b)/(a) time per cycle, {thousand.Tenants:#,0} tenants",
            ratio,
            $"<= {F(RatioGoal, "0")}",
            ratio <= RatioGoal,
            [
                "every slice ran each of its tenants and every run ended 'completed' (checked in agent_autonomous_runs by worker id)",
                .. traces,
                $"quiet hour, time per cycle, {thousand.Tenants:#,0} tenants: {Times(Workload.Quiet, s_quietVariants)} (wall time / cycles: (c) runs 4 at once)",
                $"busy hour, time per cycle, {thousand.Tenants:#,0} tenants: {Times(Workload.Busy, s_busyVariants)}",
                $"quiet hour, (a) per cycle by statement, ms ({F(thousand.Baselines[Workload.Quiet]!.PerCycle().Sum(s => s.Milliseconds))} in all): {PerStatement(thousand.Baselines[Workload.Quiet]!)}",
                $"busy hour, (a) per cycle by statement, ms ({F(thousand.Baselines[Workload.Busy]!.PerCycle().Sum(s => s.Milliseconds))} in all): {PerStatement(thousand.Baselines[Workload.Busy]!)}",
                $"busy hour, (f) per cycle by statement, ms ({F(thousand.OneActTransaction!.PerCycle().Sum(s => s.Milliseconds))} in all): {PerStatement(thousand.OneActTransaction!)}",
                $"quiet hour, (b) as the engine times itself ({phases[Workload.Quiet].Runs:#,0} runs): {Phases(Workload.Quiet)}",
                $"busy hour, (b) as the engine times itself ({phases[Workload.Busy].Runs:#,0} runs): {Phases(Workload.Busy)}",
                $"quiet hour, time per cycle at {tenThousand.Tenants:#,0} / at {thousand.Tenants:#,0} tenants: {scalings}",
                starvation,
                $"(e) {memory.Cycles:#,0} cycles in {F(memory.Seconds, "0.0")} s; working set {F(memory.StartWorkingSet, "0")} MB at the start, " +
                $"{F(memory.EndWorkingSet, "0")} MB at the end, peak {F(memory.PeakWorkingSet, "0")} MB over {memory.Samples:#,0} samples; managed heap " +
                $"after a full GC {F(memory.ManagedBefore, "0.0")} MB before and {F(memory.ManagedAfter, "0.0")} MB after; the process's lifetime " +
                $"peak (loader included) {F(memory.ProcessPeakWorkingSet, "0")} MB",
            ])
        {
            FurtherGoals =
            [
                new FurtherGoal($"busy hour, (b)/(a) time per cycle, {thousand.Tenants:#,0} tenants", F(busyRatio), $"<= {F(RatioGoal, "0")}", busyRatio <= RatioGoal),
                new FurtherGoal($"quiet hour, one worker's cycles/s, {thousand.Tenants:#,0} tenants, best of (b) and (c)", F(bestQuiet, "0.0"),
                    $">= {F(CyclesPerSecondGoal, "0")}", bestQuiet >= CyclesPerSecondGoal),
                new FurtherGoal($"busy hour, one worker's cycles/s, {thousand.Tenants:#,0} tenants, best of (b) and (c)", F(bestBusy, "0.0"),
                    $">= {F(CyclesPerSecondGoal, "0")}", bestBusy >= CyclesPerSecondGoal),
                new FurtherGoal($"quiet hour, (b) time per cycle at {tenThousand.Tenants:#,0} / at {thousand.Tenants:#,0} tenants", F(scaling),
                    $"<= {F(ScalingGoal, "0.0")}", scaling <= ScalingGoal),
                new FurtherGoal($"peak working set while cycling {memory.Tenants:#,0} tenants", $"{F(memory.PeakWorkingSet, "0")} MB",
                    $"<= {F(MemoryGoalMegabytes, "0")} MB", memory.PeakWorkingSet <= MemoryGoalMegabytes),
            ],
        };
    }

    private static string Tag(Variant variant) => variant switch
    {
        Variant.Baseline => "sql",
        Variant.WorkerOne => "w1",
        Variant.WorkerFour => "w4",
        Variant.WorkerOneNoReset => "w1-noreset",
        Variant.WorkerFourNoReset => "w4-noreset",
        _ => "sql-one-act",
    };

    private static string Letter(Variant variant) => Label(variant)[..3];

    private static string Label(Variant variant) => variant switch
    {
        Variant.Baseline => "(a) baseline: the cycle's SQL, one connection",
        Variant.WorkerOne => "(b) CycleWorker, MaxConcurrentCycles 1",
        Variant.WorkerFour => "(c) CycleWorker, MaxConcurrentCycles 4",
        Variant.WorkerOneNoReset => "(d) what-if: (b), No Reset On Close=true",
        Variant.WorkerFourNoReset => "(g) what-if: (c), No Reset On Close=true",
        _ => "(f) what-if: (a), Act in one transaction",
    };

    /// <summary>One database of the comparison: its tenants, its workers' engines, and what was measured on it.</summary>
    private sealed class Scale : IAsyncDisposable
    {
        private readonly NpgsqlDataSource _admin;
        private readonly string _database;
        private readonly NpgsqlDataSource _noReset;
        private bool _disposed;

        private Scale(NpgsqlDataSource admin, string database)
        {
            _admin = admin;
            _database = database;
            var builder = new NpgsqlConnectionStringBuilder(admin.ConnectionString) { Database = database };
            DataSource = new NpgsqlDataSourceBuilder(builder.ConnectionString) { Name = database }.Build();
            builder.NoResetOnClose = true;
            _noReset = new NpgsqlDataSourceBuilder(builder.ConnectionString) { Name = database + "-noreset" }.Build();
            Engine = CycleComposition.CreateEngine(DataSource, TimeProvider.System);
            NoResetEngine = CycleComposition.CreateEngine(_noReset, TimeProvider.System);
        }

        public NpgsqlDataSource DataSource { get; }

        public CycleEngine Engine { get; }

        public CycleEngine NoResetEngine { get; }

        public int Tenants { get; private set; }

        public Guid[] Standard { get; private set; } = [];

        public Guid[] All { get; private set; } = [];

        public double LoadSeconds { get; private set; }

        public Dictionary<Workload, CycleBaseline?> Baselines { get; } = new() { [Workload.Quiet] = null, [Workload.Busy] = null };

        public CycleBaseline? OneActTransaction { get; private set; }

        /// <summary>Cycles and seconds over all rounds, for means that match the engine's own per-run means.</summary>
        public Dictionary<(Workload, Variant), (long Cycles, double Seconds)> Totals { get; } = [];

        public Dictionary<(Workload, Variant), List<double>> Runs { get; } =
            Enum.GetValues<Workload>().SelectMany(w => Enum.GetValues<Variant>().Select(v => (w, v))).ToDictionary(k => k, _ => new List<double>());

        /// <summary>
        /// A scratch database of <paramref name="tenants"/> tenants: migrated and loaded, or a copy of
        /// <paramref name="template"/> with small tenants added.
        /// </summary>
        public static async Task<Scale> CreateAsync(NpgsqlDataSource admin, string database, Scale? template, int tenants, CancellationToken cancellationToken)
        {
            Console.WriteLine($"  cycles: {(template is null ? "loading" : "copying and growing to")} {tenants:#,0} tenants in {database}…");
            var watch = Stopwatch.StartNew();
            await using (var connection = await admin.OpenConnectionAsync(cancellationToken))
            {
                // The names are constants of this class, never input. FILE_COPY: a file-level copy, much faster
                // than the WAL_LOG default for a database this size; the template must have no connections.
                await Bench.ExecuteAsync(connection, $"drop database if exists {database} with (force)", cancellationToken);
                if (template is null)
                {
                    await Bench.ExecuteAsync(connection, $"create database {database}", cancellationToken);
                }
                else
                {
                    template.DataSource.Clear();
                    template._noReset.Clear();
                    await Bench.ExecuteAsync(connection, $"create database {database} template {template._database} strategy file_copy", cancellationToken);
                }
            }

            var scale = new Scale(admin, database);
            try
            {
                await using var connection = await scale.DataSource.OpenConnectionAsync(cancellationToken);
                if (template is null)
                {
                    await new Migrator(scale.DataSource).MigrateAsync(MigrationSource.Embedded(), cancellationToken);
                    scale.Standard = await CycleBenchData.LoadStandardAsync(connection, StandardTenants, cancellationToken);
                    await CycleBenchData.ProcessBacklogAsync(scale.DataSource, scale.Standard, cancellationToken);
                    scale.All = [.. scale.Standard, .. await CycleBenchData.LoadSmallAsync(connection, tenants - StandardTenants, 1, cancellationToken)];
                }
                else
                {
                    scale.Standard = template.Standard;
                    scale.All = [.. template.All, .. await CycleBenchData.LoadSmallAsync(connection, tenants - template.All.Length, template.All.Length, cancellationToken)];
                }

                await CycleBenchData.SettleAsync(connection, cancellationToken);
                scale.Tenants = (int)await TenancyStore.TenantCountAsync(connection, null, cancellationToken);
                scale.LoadSeconds = watch.Elapsed.TotalSeconds;
                Console.WriteLine($"  cycles: {scale.Tenants:#,0} tenants in {database} after {scale.LoadSeconds:0} s");
                return scale;
            }
            catch
            {
                await scale.DisposeAsync();
                throw;
            }
        }

        /// <summary>
        /// Untimed: the worker (MaxConcurrentCycles 1) and then the baseline each run every standard tenant once
        /// from the same state, under Npgsql's trace. Fails unless both sent the same statements the same number
        /// of times; keeps the worker's JSON for the baseline to send. Returns what it checked.
        /// </summary>
        public async Task<string> WarmUpAsync(Workload workload, CancellationToken cancellationToken)
        {
            var name = workload.ToString().ToLowerInvariant();
            // Both runs see the database clock frozen at the same instant (and the clocks restored as of an hour
            // before it), so the same clocks come due in both: a clock that came due between the two runs would
            // otherwise add an action to the second.
            var at = DateTimeOffset.UtcNow;
            await PrepareAsync(workload, Standard, cancellationToken, at);
            var workerId = $"bench-cycles-{name}-warm-up";
            IReadOnlyDictionary<string, int> worker;
            await FreezeAsync(at, cancellationToken);
            try
            {
                await MakeDueAsync(Standard, cancellationToken);
                worker = await StatementTrace.RecordAsync(() =>
                    RunWorkerAsync(new CycleWorker(DataSource, TimeProvider.System, Engine, new CycleWorkerOptions { WorkerId = workerId, MaxConcurrentCycles = 1, LeaseMinutes = LeaseMinutes }), cancellationToken));
            }
            finally
            {
                await FreezeAsync(null, CancellationToken.None);
            }

            await VerifyAsync(workerId, Standard.Length, cancellationToken);

            await using (var connection = await DataSource.OpenConnectionAsync(cancellationToken))
            {
                var run = await RunsStore.BusiestRunAsync(connection, workerId, cancellationToken);
                var documents = await CycleDocuments.ReadAsync(connection, run, cancellationToken);
                Baselines[workload] = new CycleBaseline(documents, LeaseMinutes, claimLimit: 2);
                if (workload == Workload.Busy)
                {
                    OneActTransaction = new CycleBaseline(documents, LeaseMinutes, claimLimit: 2, actInOneTransaction: true);
                }
            }

            await PrepareAsync(workload, Standard, cancellationToken, at);
            var baselineId = $"bench-cycles-{name}-warm-up-sql";
            IReadOnlyDictionary<string, int> baseline;
            await FreezeAsync(at, cancellationToken);
            try
            {
                await MakeDueAsync(Standard, cancellationToken);
                baseline = await StatementTrace.RecordAsync(() => Baselines[workload]!.RunAsync(DataSource, baselineId, cancellationToken));
            }
            finally
            {
                await FreezeAsync(null, CancellationToken.None);
            }

            await VerifyAsync(baselineId, Standard.Length, cancellationToken);
            return StatementTrace.Compare($"{name} hour, {Tenants:#,0} tenants", worker, baseline, Standard.Length);
        }

        // The database clock (hourglass.now()) frozen at an instant, or (null) thawed.
        private async Task FreezeAsync(DateTimeOffset? at, CancellationToken cancellationToken)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            if (at is { } instant)
            {
                await TenantControl.FreezeTimeAsync(connection, null, instant, cancellationToken);
            }
            else
            {
                await TenantControl.ThawTimeAsync(connection, null, cancellationToken);
            }
        }

        /// <summary>What the quiet hour's cycles proposed, against the clocks that needed a touch and had no open card.</summary>
        public async Task<string> QuietStarvationAsync(CancellationToken cancellationToken)
        {
            await PrepareAsync(Workload.Quiet, Standard, cancellationToken);
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            // As the cycle's refresh would leave them now.
            await EngagementStore.RefreshComplianceOfAsync(connection, null, Standard, cancellationToken);
            var waiting = await EngagementStore.UncardedDueClockCountAsync(connection, Standard, cancellationToken);
            var proposed = await RunsStore.ProposalCountAsync(connection, "bench-cycles-quiet-warm-up", cancellationToken);
            return $"quiet hour: the {StandardTenants} cycles proposed {proposed:#,0} touches; after such a refresh {waiting:#,0} clocks need a touch " +
                "and have no open card (they came due soon this hour): every one of them is proposed, though the 200 most urgent all have open cards";
        }

        /// <summary>
        /// Untimed, before a round: the clocks as an hourly refresh an hour ago left them, none of the hour's
        /// reflections, ledger rows or cycle-made cards, and (quiet) an open card for every clock then needing a touch.
        /// </summary>
        public async Task PrepareAsync(Workload workload, Guid[] tenants, CancellationToken cancellationToken, DateTimeOffset? at = null)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await TenantControl.FreezeTimeAsync(connection, null, (at ?? DateTimeOffset.UtcNow) - TimeSpan.FromHours(1), cancellationToken);
            try
            {
                await EngagementStore.RefreshComplianceOfAsync(connection, null, tenants, cancellationToken);
            }
            finally
            {
                await TenantControl.ThawTimeAsync(connection, null, CancellationToken.None);
            }

            await HourlyReflections.DeleteThisHourAsync(connection, null, tenants, cancellationToken);
            await ActionLedger.DeleteAllAsync(connection, tenants, cancellationToken);
            await EngagementStore.DeleteTouchCardsAsync(connection, tenants, onlyCycleMade: workload != Workload.Busy, cancellationToken);
            if (workload == Workload.Quiet)
            {
                await EngagementStore.OpenEarlierTouchCardsAsync(connection, tenants, cancellationToken);
            }
        }

        // The rounds delete what the cycles wrote (cards, ledger rows, reflections) and the busy hour writes 10,000
        // cards a round: without a VACUUM the database that also runs the busy hour would carry more dead rows into
        // its quiet slices than the other. Autovacuum keeps up in production; here every round starts clean.
        public async Task VacuumAsync(CancellationToken cancellationToken)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await Bench.ExecuteAsync(connection,
                "vacuum analyze public.cards, public.agent_actions, public.agent_autonomous_runs, public.agent_hourly_reflections, public.engagement_clocks, public.agent_tenant_schedules, public.agent_tenant_locks",
                cancellationToken);
        }

        // Due at the top of the current hour (by the database clock, frozen or not): an hourly cron's occurrence. (next_due_at = now() would find no
        // occurrence between it and now, and the worker would only move the schedule on, running no cycle.)
        public async Task MakeDueAsync(Guid[] tenants, CancellationToken cancellationToken)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await ScheduleStore.MakeDueThisHourAsync(connection, null, tenants, cancellationToken);
        }

        public async Task<(long Cycles, double Seconds)> RunSliceAsync(Workload workload, Variant variant, string workerId, Guid[] slice,
            CancellationToken cancellationToken)
        {
            await MakeDueAsync(slice, cancellationToken);
            var seconds = variant switch
            {
                Variant.Baseline => await Bench.TimeAsync(() => Baselines[workload]!.RunAsync(DataSource, workerId, cancellationToken)),
                Variant.WorkerOne => await RunWorkerAsync(Worker(DataSource, Engine, workerId, 1), cancellationToken),
                Variant.WorkerFour => await RunWorkerAsync(Worker(DataSource, Engine, workerId, 4), cancellationToken),
                Variant.WorkerOneNoReset => await RunWorkerAsync(Worker(_noReset, NoResetEngine, workerId, 1), cancellationToken),
                Variant.WorkerFourNoReset => await RunWorkerAsync(Worker(_noReset, NoResetEngine, workerId, 4), cancellationToken),
                _ => await Bench.TimeAsync(() => OneActTransaction!.RunAsync(DataSource, workerId, cancellationToken)),
            };
            var cycles = await VerifyAsync(workerId, slice.Length, cancellationToken);

            // Out of the way until the next round, even if the hour turns.
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await ScheduleStore.PostponeAYearAsync(connection, null, slice, cancellationToken);
            return (cycles, seconds);
        }

        // The worker claims and leases on the same pool its engine runs on (the no-reset variants measure that pool).
        private static CycleWorker Worker(NpgsqlDataSource dataSource, CycleEngine engine, string workerId, int maxConcurrentCycles) =>
            new(dataSource, TimeProvider.System, engine, new CycleWorkerOptions { WorkerId = workerId, MaxConcurrentCycles = maxConcurrentCycles, LeaseMinutes = LeaseMinutes });

        // Every tenant ran and every run completed. (An hour turning during a run makes finished tenants due
        // again; their second cycles are real cycles and are counted.) Returns the cycles run.
        public async Task<long> VerifyAsync(string workerId, int expected, CancellationToken cancellationToken)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            var (completed, other, tenants, failures) = await RunsStore.WorkerOutcomeAsync(connection, workerId, cancellationToken);
            if (other > 0 || tenants != expected || completed < expected)
            {
                throw new HourglassException(
                    $"cycles: {workerId} in {_database} ran {tenants} of {expected} tenants: {completed} runs completed, {other} did not " +
                    $"({failures ?? "none"}); the numbers are not valid.");
            }

            return completed;
        }

        // The engine's own timing of its phases (stored in cycle_metrics) and of the run from its insert to its
        // finish, over the measured (b) runs of each workload.
        public async Task<IReadOnlyDictionary<Workload, EnginePhases>> EnginePhasesAsync(CancellationToken cancellationToken)
        {
            var result = new Dictionary<Workload, EnginePhases>();
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            foreach (var workload in Enum.GetValues<Workload>())
            {
                var (runs, actions, plan, act, react, reflect, total) = await RunsStore.WorkersPhaseMeansAsync(connection,
                    $"bench-cycles-{workload.ToString().ToLowerInvariant()}-w1-r%", cancellationToken);
                result[workload] = new EnginePhases(runs, actions, plan, act, react, reflect, total);
            }

            return result;
        }

        public async ValueTask DisposeAsync()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            await DataSource.DisposeAsync();
            await _noReset.DisposeAsync();
            await using var connection = await _admin.OpenConnectionAsync(CancellationToken.None);
            await Bench.ExecuteAsync(connection, $"drop database if exists {_database} with (force)", CancellationToken.None);
        }
    }
}
