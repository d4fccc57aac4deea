using Hourglass;
using Hourglass.Bench;
using Npgsql;

// Throughput benchmarks of the database code, each next to its baseline in the same run:
//   dotnet run -c Release --project bench/Hourglass.Bench -- <locks|refresh|cycles|queue|touches|orders|api|policies|detection|ingest|fairness|all>
// Results are printed and written to docs/benchmarks.md. Exit codes: 0 done, 1 failed, 2 bad command line.
var benchmarks = new Dictionary<string, Func<NpgsqlDataSource, CancellationToken, Task<BenchReport>>>(StringComparer.Ordinal)
{
    ["locks"] = LockBenchmark.RunAsync,
    ["refresh"] = RefreshBenchmark.RunAsync,
    ["cycles"] = CycleBenchmark.RunAsync,
    ["queue"] = QueueBenchmark.RunAsync,
    ["touches"] = TouchBenchmark.RunAsync,
    ["orders"] = OrderBenchmark.RunAsync,
    ["api"] = ApiBenchmark.RunAsync,
    ["policies"] = PolicyBenchmark.RunAsync,
    ["detection"] = DetectionBenchmark.RunAsync,
    ["ingest"] = IngestBenchmark.RunAsync,
    ["fairness"] = FairnessBenchmark.RunAsync,
};

var name = args.Length == 1 ? args[0] : "";
if (name != "all" && !benchmarks.ContainsKey(name))
{
    Console.Error.WriteLine($"usage: dotnet run -c Release --project bench/Hourglass.Bench -- <{string.Join('|', benchmarks.Keys)}|all>");
    return 2;
}

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};

try
{
    var selected = name == "all" ? benchmarks.Keys.ToList() : [name];
    await Bench.WithDatabaseAsync(async (dataSource, database) =>
    {
        var facts = await MachineFacts.ReadAsync(dataSource, cancellation.Token);
        foreach (var benchmark in selected)
        {
            Console.WriteLine($"Running {benchmark}…");
            var loadBefore = MachineFacts.LoadAverage();
            var report = await benchmarks[benchmark](dataSource, cancellation.Token);
            Bench.Print(report);
            var load = $"{loadBefore} before, {MachineFacts.LoadAverage()} after";
            Console.WriteLine($"  load average (1/5/15 min): {load}");
            await Bench.WriteToDocsAsync(report, facts with { Load = load, Date = DateTimeOffset.UtcNow }, database, cancellation.Token);
        }

        return 0;
    }, cancellation.Token);
    return 0;
}
catch (HourglassException ex)
{
    Console.Error.WriteLine($"bench: {ex.Message}");
    return 1;
}
catch (PostgresException ex)
{
    Console.Error.WriteLine($"bench: database error {ex.SqlState}: {ex.MessageText}");
    return 1;
}
catch (NpgsqlException ex)
{
    Console.Error.WriteLine($"bench: database connection failed: {ex.InnerException?.Message ?? ex.Message}");
    return 1;
}
catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
{
    Console.Error.WriteLine("bench: cancelled");
    return 130;
}
