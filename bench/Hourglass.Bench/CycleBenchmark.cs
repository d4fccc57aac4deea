using System.Diagnostics;
using System.Globalization;
using Hourglass.Cycles;
using Hourglass.Storage;
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
    // 200 standard tenants in slices of 25: a slice is the unit of interleaving (see MeasureAsync).
    private const int StandardTenants = 200;
    private const int SliceSize = 25;
    private const int Rounds = 4;
    private const int LeaseMinutes = 2;
    private const double CyclesPerSecondGoal = 20;
    private const double RatioGoal = 3;
    private const double ScalingGoal = 1.2;
    private const double MemoryGoalMegabytes = 250;
    private static readonly TimeSpan s_sampleEvery = TimeSpan.FromMilliseconds(100);

    private enum Variant
    {
        Baseline,
        WorkerOne,
        WorkerFour,
        WorkerOneNoReset,
    }

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var inStep = await CycleBaseline.CheckInStepAsync(Bench.RepositoryRoot(), cancellationToken);
        await using var thousand = await Scale.CreateAsync(dataSource, "hourglass_bench_cycles_1k", 1_000, cancellationToken);
        await using var tenThousand = await Scale.CreateAsync(dataSource, "hourglass_bench_cycles_10k", 10_000, cancellationToken);
        Scale[] scales = [thousand, tenThousand];
        foreach (var scale in scales)
        {
            await scale.WarmUpAsync(cancellationToken);
        }

        await MeasureAsync(dataSource, scales, cancellationToken);
        var breakdown = await thousand.EnginePhasesAsync("bench-cycles-w1-%", cancellationToken);
        await thousand.DisposeAsync();
        var memory = await MeasureMemoryAsync(tenThousand, cancellationToken);
        return Report(thousand, tenThousand, memory, breakdown, inStep);
    }

    // Rounds of interleaved slices. In a round, slice k of the standard tenants is run by variant (k + round) mod 4
    // in both databases, one right after the other (alternating which goes first): every variant meets the same
    // load from the rest of the machine within a second or two of the others, and the 1,000- and 10,000-tenant
    // databases are compared step by step rather than minutes apart. A round's figure for a variant is its
    // cycles over its time summed over its slices.
    private static async Task MeasureAsync(NpgsqlDataSource admin, Scale[] scales, CancellationToken cancellationToken)
    {
        var variants = Enum.GetValues<Variant>();
        var slices = StandardTenants / SliceSize;
        for (var round = 0; round < Rounds; round++)
        {
            foreach (var scale in scales)
            {
                await scale.PrepareRoundAsync(scale.Standard, cancellationToken);
            }

            await using (var connection = await admin.OpenConnectionAsync(cancellationToken))
            {
                await Bench.ExecuteAsync(connection, "checkpoint", cancellationToken);
            }

            var totals = scales.ToDictionary(s => s, _ => variants.ToDictionary(v => v, _ => (Cycles: 0L, Seconds: 0.0)));
            for (var k = 0; k < slices; k++)
            {
                var variant = variants[(k + round) % variants.Length];
                for (var i = 0; i < scales.Length; i++)
                {
                    var scale = scales[(i + k + round) % scales.Length];
                    var slice = scale.Standard.Skip(k * SliceSize).Take(SliceSize).ToArray();
                    var (cycles, seconds) = await scale.RunSliceAsync(variant, $"bench-cycles-{Tag(variant)}-r{round + 1}-s{k + 1}", slice, cancellationToken);
                    var total = totals[scale][variant];
                    totals[scale][variant] = (total.Cycles + cycles, total.Seconds + seconds);
                }
            }

            foreach (var scale in scales)
            {
                foreach (var variant in variants)
                {
                    var (cycles, seconds) = totals[scale][variant];
                    scale.Runs[variant].Add(cycles / seconds);
                    Console.WriteLine($"  cycles {scale.Tenants,6:#,0} tenants, round {round + 1}/{Rounds}: {Label(variant),-62} {cycles / seconds,7:0.0} cycles/s");
                }
            }
        }
    }

    private sealed record MemoryResult(
        int Tenants, long Cycles, double Seconds, double PeakWorkingSet, double PeakManaged, double StartWorkingSet, double EndWorkingSet,
        double ManagedBefore, double ManagedAfter, double ProcessPeakWorkingSet, int Samples);

    // The worker with its default options over every tenant of the 10,000-tenant database once, with this
    // process's working set and managed heap sampled while it runs.
    private static async Task<MemoryResult> MeasureMemoryAsync(Scale scale, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  cycles: one worker over all {scale.All.Length:#,0} tenants, sampling memory…");
        await scale.PrepareRoundAsync(scale.All, cancellationToken);
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

        var worker = new CycleWorker(scale.Engine, new CycleWorkerOptions { WorkerId = workerId });
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

    private sealed record EnginePhases(long Runs, double Plan, double Act, double React, double Reflect, double RunRecord);

    private static BenchReport Report(Scale thousand, Scale tenThousand, MemoryResult memory, EnginePhases phases, int inStep)
    {
        var variants = Enum.GetValues<Variant>();
        var measurements = new List<Measurement>();
        foreach (var scale in new[] { thousand, tenThousand })
        {
            measurements.AddRange(variants.Select(v => new Measurement($"{Label(v)}, {scale.Tenants:#,0} tenants", "cycles/s", scale.Runs[v])));
        }

        measurements.Add(new Measurement($"(e) CycleWorker, default options, all {memory.Tenants:#,0} tenants once (1 run)", "cycles/s", [memory.Cycles / memory.Seconds]));
        measurements.Add(new Measurement("(e) peak working set while (e) ran (sampled every 100 ms)", "MB", [memory.PeakWorkingSet]));
        measurements.Add(new Measurement("(e) peak managed heap while (e) ran (GC.GetTotalMemory)", "MB", [memory.PeakManaged]));

        static double Median(Scale s, Variant v) => new Measurement("", "", s.Runs[v]).Median;
        static double Ms(Scale s, Variant v) => 1000 / Median(s, v);
        static string F(double value, string format = "0.00") => value.ToString(format, CultureInfo.InvariantCulture);
        var ratio = Median(thousand, Variant.Baseline) / Median(thousand, Variant.WorkerOne);
        var scaling = Median(thousand, Variant.WorkerOne) / Median(tenThousand, Variant.WorkerOne);
        var best = Math.Max(Median(thousand, Variant.WorkerOne), Median(thousand, Variant.WorkerFour));
        var scalings = string.Join(", ", variants.Select(v => $"{Letter(v)} {F(Median(thousand, v) / Median(tenThousand, v))}"));

        var perStatement = thousand.Baseline!.PerCycle();
        var statements = string.Join("; ", perStatement.Select(s => $"{s.Statement} {F(s.Milliseconds)}"));
        var outside = Ms(thousand, Variant.WorkerOne) - phases.RunRecord;
        var loads = $"{F(thousand.LoadSeconds, "0")} s and {F(tenThousand.LoadSeconds, "0")} s";

        return new BenchReport(
            "cycles",
            $"Two scratch databases on the benchmark's server, each migrated, hold {thousand.Tenants:#,0} and {tenThousand.Tenants:#,0} tenants. " +
            $"Both have the same {StandardTenants} standard tenants: {CycleBenchData.StandardAccounts} accounts x " +
            $"{CycleBenchData.StandardContactsPerAccount} contacts = {CycleBenchData.StandardContacts:#,0} contacts, each with an engagement clock " +
            "(due dates spread over one 21-day cycle, 2 days overdue to 19 ahead), " +
            $"{CycleBenchData.StandardOrders} orders with {CycleBenchData.LinesPerOrder} lines each, all queued in order_processing_queue, and one " +
            $"day of warehouse_events ({CycleBenchData.StandardEventsPerDay}). The other tenants are small ({CycleBenchData.SmallContacts} contacts " +
            $"and clocks) and not due. Every tenant has {CycleBenchData.HistoryHours} hours of history (completed runs and reflections). " +
            $"Loaded set-based (`insert … select generate_series`), then VACUUM ANALYZE: {loads}. " +
            "Before every round, untimed, the standard tenants' clocks are put back as an hourly refresh an hour earlier left them (so a " +
            "cycle's refresh has an hour's changes to write), this hour's reflections are removed (so the reflection is inserted, as in a " +
            "new hour), and the server checkpoints. A round runs each standard tenant once per database, in slices of " +
            $"{SliceSize}: a slice is made due at the top of the current hour and run to the end by one variant, the variants taking " +
            "turns slice by slice and the two databases step by step, so both meet the same load from the rest of the machine; every run " +
            "must end 'completed'. cycles/s = cycles / wall time. (a) sends a cycle's statements as plain SQL on one held connection, " +
            "tenants in sequence (per pass: reap, claim 2; per tenant: acquire_tenant_lease, load tenant, 7 fenced transactions — insert " +
            "run, plan, act, refresh_engagement_compliance, react, reflection, finish — with the reads between them, release_tenant_lock, " +
            "complete claim); (b), (c) and (d) are `CycleComposition.CreateEngine` + `CycleWorker.RunOnceAsync` until it returns 0; (d) " +
            "is a what-if, the worker on a data source with `No Reset On Close=true`. " +
            $"{Rounds} rounds; median reported. (e) then makes all {memory.Tenants:#,0} tenants of the larger database due and runs one " +
            "worker with default options (MaxConcurrentCycles 4, lease 2 min) over them, sampling this process's working set; the process " +
            "also holds the loader, which keeps nothing once loaded.",
            measurements,
            $"(b)/(a) time per cycle, {thousand.Tenants:#,0} tenants",
            ratio,
            $"<= {F(RatioGoal, "0")}",
            ratio <= RatioGoal,
            [
                "every slice ran each of its tenants and every run ended 'completed' (checked in agent_autonomous_runs by worker id)",
                $"the baseline is in step with the code: its {inStep} SQL texts each appear, whitespace aside, in the file they were copied from",
                $"time per cycle, {thousand.Tenants:#,0} tenants: " + string.Join(", ", variants.Select(v => $"{Letter(v)} {F(Ms(thousand, v))} ms")) +
                " (wall time / cycles: (c) runs 4 at once)",
                $"(a) per cycle by statement, ms ({F(perStatement.Sum(s => s.Milliseconds))} in all, {thousand.Tenants:#,0} tenants): {statements}",
                $"(b) per cycle as the engine times itself ({phases.Runs:#,0} runs, {thousand.Tenants:#,0} tenants): plan {F(phases.Plan)} ms, " +
                $"act {F(phases.Act)}, react {F(phases.React)}, reflect {F(phases.Reflect)}; run insert to finish {F(phases.RunRecord)} ms; " +
                $"outside it (claim, lease, load tenant, release, complete claim, pass) {F(outside)} ms",
                $"time per cycle at {tenThousand.Tenants:#,0} / at {thousand.Tenants:#,0} tenants: {scalings}",
                $"(e) {memory.Cycles:#,0} cycles in {F(memory.Seconds, "0.0")} s; working set {F(memory.StartWorkingSet, "0")} MB at the start, " +
                $"{F(memory.EndWorkingSet, "0")} MB at the end, peak {F(memory.PeakWorkingSet, "0")} MB over {memory.Samples:#,0} samples; managed heap " +
                $"after a full GC {F(memory.ManagedBefore, "0.0")} MB before and {F(memory.ManagedAfter, "0.0")} MB after; the process's lifetime " +
                $"peak (loader included) {F(memory.ProcessPeakWorkingSet, "0")} MB",
            ])
        {
            FurtherGoals =
            [
                new FurtherGoal($"one worker's cycles/s, {thousand.Tenants:#,0} tenants, best of (b) and (c)", F(best, "0.0"),
                    $">= {F(CyclesPerSecondGoal, "0")}", best >= CyclesPerSecondGoal),
                new FurtherGoal($"(b) time per cycle at {tenThousand.Tenants:#,0} / at {thousand.Tenants:#,0} tenants", F(scaling),
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
        _ => "w1-noreset",
    };

    private static string Letter(Variant variant) => Label(variant)[..3];

    private static string Label(Variant variant) => variant switch
    {
        Variant.Baseline => "(a) baseline: the cycle's SQL, one connection",
        Variant.WorkerOne => "(b) CycleWorker, MaxConcurrentCycles 1",
        Variant.WorkerFour => "(c) CycleWorker, MaxConcurrentCycles 4",
        _ => "(d) what-if: (b) with No Reset On Close=true",
    };

    /// <summary>One database of the comparison: its tenants, its worker's engines, and what was measured on it.</summary>
    private sealed class Scale : IAsyncDisposable
    {
        private readonly NpgsqlDataSource _admin;
        private readonly string _database;
        private readonly NpgsqlDataSource _noReset;
        private bool _disposed;

        private Scale(NpgsqlDataSource admin, string database, NpgsqlDataSource dataSource, NpgsqlDataSource noReset)
        {
            _admin = admin;
            _database = database;
            DataSource = dataSource;
            _noReset = noReset;
            Engine = CycleComposition.CreateEngine(dataSource);
            NoResetEngine = CycleComposition.CreateEngine(noReset);
        }

        public NpgsqlDataSource DataSource { get; }

        public CycleEngine Engine { get; }

        public CycleEngine NoResetEngine { get; }

        public int Tenants { get; private set; }

        public Guid[] Standard { get; private set; } = [];

        public Guid[] All { get; private set; } = [];

        public double LoadSeconds { get; private set; }

        public CycleBaseline? Baseline { get; private set; }

        public Dictionary<Variant, List<double>> Runs { get; } = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<double>());

        /// <summary>Creates, migrates and loads a scratch database of <paramref name="tenants"/> tenants.</summary>
        public static async Task<Scale> CreateAsync(NpgsqlDataSource admin, string database, int tenants, CancellationToken cancellationToken)
        {
            // The names are constants of this class, never input.
            await using (var connection = await admin.OpenConnectionAsync(cancellationToken))
            {
                await Bench.ExecuteAsync(connection, $"drop database if exists {database} with (force)", cancellationToken);
                await Bench.ExecuteAsync(connection, $"create database {database}", cancellationToken);
            }

            var builder = new NpgsqlConnectionStringBuilder(admin.ConnectionString) { Database = database };
            var dataSource = new NpgsqlDataSourceBuilder(builder.ConnectionString) { Name = database }.Build();
            var noReset = new NpgsqlDataSourceBuilder(new NpgsqlConnectionStringBuilder(builder.ConnectionString) { NoResetOnClose = true }.ConnectionString)
            {
                Name = database + "-noreset",
            }.Build();
            var scale = new Scale(admin, database, dataSource, noReset);
            try
            {
                await new Migrator(dataSource).MigrateAsync(MigrationSource.Embedded(), cancellationToken);
                await scale.LoadAsync(tenants, cancellationToken);
                return scale;
            }
            catch
            {
                await scale.DisposeAsync();
                throw;
            }
        }

        private async Task LoadAsync(int tenants, CancellationToken cancellationToken)
        {
            Console.WriteLine($"  cycles: loading {tenants:#,0} tenants ({StandardTenants} standard) into {_database}…");
            var watch = Stopwatch.StartNew();
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            Standard = await CycleBenchData.LoadStandardAsync(connection, StandardTenants, cancellationToken);
            var small = await CycleBenchData.LoadSmallAsync(connection, tenants - StandardTenants, 1, cancellationToken);
            await CycleBenchData.SettleAsync(connection, cancellationToken);
            All = [.. Standard, .. small];
            Tenants = (int)await Bench.ScalarAsync<long>(connection, "select count(*) from public.tenants", cancellationToken);
            LoadSeconds = watch.Elapsed.TotalSeconds;
            Console.WriteLine($"  cycles: {Tenants:#,0} tenants loaded in {LoadSeconds:0} s");
        }

        // Untimed: JIT, caches, and one real run whose JSON the baseline then sends.
        public async Task WarmUpAsync(CancellationToken cancellationToken)
        {
            await PrepareRoundAsync(Standard, cancellationToken);
            await MakeDueAsync(Standard, cancellationToken);
            await RunWorkerAsync(new CycleWorker(Engine, new CycleWorkerOptions { WorkerId = "bench-cycles-warm-up", LeaseMinutes = LeaseMinutes }), cancellationToken);
            await VerifyAsync("bench-cycles-warm-up", Standard.Length, cancellationToken);
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            var run = await Bench.ScalarAsync<Guid>(connection,
                "select id from public.agent_autonomous_runs where worker_id = 'bench-cycles-warm-up' limit 1", cancellationToken);
            Baseline = new CycleBaseline(await CycleDocuments.ReadAsync(connection, run, cancellationToken), LeaseMinutes, claimLimit: 2);
        }

        // Untimed, before a round: the tenants' clocks as an hourly refresh an hour ago left them (so the round's
        // refresh changes an hour's worth, about 16 of a standard tenant's 2,000), and no reflection yet for this
        // hour (so the upsert inserts, as in a new hour).
        public async Task PrepareRoundAsync(Guid[] tenants, CancellationToken cancellationToken)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await Bench.ExecuteAsync(connection, "select hourglass.freeze_time(now() - interval '1 hour')", cancellationToken);
            try
            {
                await Bench.ExecuteAsync(connection, "select sum(public.refresh_engagement_compliance(t)) from unnest($1::uuid[]) t", cancellationToken, tenants);
            }
            finally
            {
                await Bench.ExecuteAsync(connection, "select hourglass.thaw_time()", CancellationToken.None);
            }

            await Bench.ExecuteAsync(connection, """
                delete from public.agent_hourly_reflections where tenant_id = any ($1) and hour_bucket >= pg_catalog.date_trunc('hour', now(), 'UTC')
                """, cancellationToken, tenants);
        }

        // Due at the top of the current hour: an hourly cron's occurrence. (next_due_at = now() would find no
        // occurrence between it and now, and the worker would only move the schedule on, running no cycle.)
        public async Task MakeDueAsync(Guid[] tenants, CancellationToken cancellationToken)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await Bench.ExecuteAsync(connection,
                "update public.agent_tenant_schedules set next_due_at = pg_catalog.date_trunc('hour', now(), 'UTC') where tenant_id = any ($1)",
                cancellationToken, tenants);
        }

        public async Task<(long Cycles, double Seconds)> RunSliceAsync(Variant variant, string workerId, Guid[] slice, CancellationToken cancellationToken)
        {
            await MakeDueAsync(slice, cancellationToken);
            var seconds = variant switch
            {
                Variant.Baseline => await Bench.TimeAsync(() => Baseline!.RunRoundAsync(DataSource, workerId, cancellationToken)),
                Variant.WorkerOne => await RunWorkerAsync(Worker(Engine, workerId, 1), cancellationToken),
                Variant.WorkerFour => await RunWorkerAsync(Worker(Engine, workerId, 4), cancellationToken),
                _ => await RunWorkerAsync(Worker(NoResetEngine, workerId, 1), cancellationToken),
            };
            var cycles = await VerifyAsync(workerId, slice.Length, cancellationToken);

            // Out of the way until the next round, even if the hour turns.
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await Bench.ExecuteAsync(connection,
                "update public.agent_tenant_schedules set next_due_at = now() + interval '1 year' where tenant_id = any ($1)", cancellationToken, slice);
            return (cycles, seconds);
        }

        private static CycleWorker Worker(CycleEngine engine, string workerId, int maxConcurrentCycles) =>
            new(engine, new CycleWorkerOptions { WorkerId = workerId, MaxConcurrentCycles = maxConcurrentCycles, LeaseMinutes = LeaseMinutes });

        // Every tenant ran and every run completed. (An hour turning during a run makes finished tenants due
        // again; their second cycles are real cycles and are counted.) Returns the cycles run.
        public async Task<long> VerifyAsync(string workerId, int expected, CancellationToken cancellationToken)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand("""
                select count(*) filter (where status = 'completed'), count(*) filter (where status <> 'completed'), count(distinct tenant_id),
                       pg_catalog.string_agg(distinct status || coalesce(': ' || error, ''), '; ') filter (where status <> 'completed')
                from public.agent_autonomous_runs where worker_id = $1
                """, connection);
            command.Parameters.Add(new() { Value = workerId });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            var (completed, other, tenants) = (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
            if (other > 0 || tenants != expected || completed < expected)
            {
                throw new HourglassException(
                    $"cycles: {workerId} in {_database} ran {tenants} of {expected} tenants: {completed} runs completed, {other} did not " +
                    $"({(reader.IsDBNull(3) ? "none" : reader.GetString(3))}); the numbers are not valid.");
            }

            return completed;
        }

        // The engine's own timing of its phases (stored in cycle_metrics) and of the run from its insert to its finish.
        public async Task<EnginePhases> EnginePhasesAsync(string workerIdPattern, CancellationToken cancellationToken)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand("""
                select count(*),
                       avg((cycle_metrics -> 'phases' -> 'plan' ->> 'ms')::float8), avg((cycle_metrics -> 'phases' -> 'act' ->> 'ms')::float8),
                       avg((cycle_metrics -> 'phases' -> 'react' ->> 'ms')::float8), avg((cycle_metrics -> 'phases' -> 'reflect' ->> 'ms')::float8),
                       avg(extract(epoch from completed_at - started_at) * 1000)::float8
                from public.agent_autonomous_runs where worker_id like $1
                """, connection);
            command.Parameters.Add(new() { Value = workerIdPattern });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            return new EnginePhases(reader.GetInt64(0), reader.GetDouble(1), reader.GetDouble(2), reader.GetDouble(3), reader.GetDouble(4), reader.GetDouble(5));
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
