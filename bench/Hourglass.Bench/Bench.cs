using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>One line of a results table: a variant and its repeated measurements.</summary>
internal sealed record Measurement(string Variant, string Unit, IReadOnlyList<double> Runs)
{
    /// <summary>A figure over all runs pooled (a percentile of every call, say), shown instead of the runs' median when set.</summary>
    public double? Overall { get; init; }

    /// <summary>What the table shows for this line: <see cref="Overall"/> when set, else the median of the runs.</summary>
    public double Value => Overall ?? Median;

    public double Median
    {
        get
        {
            var sorted = Runs.Order().ToArray();
            var middle = sorted.Length / 2;
            return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
        }
    }
}

/// <summary>A goal beyond a benchmark's main ratio: what was measured, its value as printed, the target, and whether it was met.</summary>
internal sealed record FurtherGoal(string Label, string Value, string Target, bool Met);

/// <summary>What a benchmark found: its table, the ratio against its baseline, the goal, and the checks it made.</summary>
internal sealed record BenchReport(
    string Name,
    string Setup,
    IReadOnlyList<Measurement> Measurements,
    string RatioLabel,
    double Ratio,
    string Goal,
    bool GoalMet,
    IReadOnlyList<string> Checks)
{
    /// <summary>Goals a benchmark has besides its ratio to the baseline (throughput, memory, scaling).</summary>
    public IReadOnlyList<FurtherGoal> FurtherGoals { get; init; } = [];

    /// <summary>False when no goal is set for the ratio: it is reported, and neither met nor missed.</summary>
    public bool HasGoal { get; init; } = true;

    /// <summary>The heading of the table's value column (what <see cref="Measurement.Value"/> is).</summary>
    public string ValueHeader { get; init; } = "Median";
}

/// <summary>Facts about where a run happened, printed with every result.</summary>
internal sealed record MachineFacts(int Processors, string Cpu, string Os, string PostgresVersion, string Durability, DateTimeOffset Date)
{
    /// <summary>The load averages around the benchmark: other work on the machine skews throughput.</summary>
    public string Load { get; init; } = "";

    /// <summary>/proc/loadavg's 1, 5 and 15 minute load averages, or "n/a" off Linux.</summary>
    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    public static async Task<MachineFacts> ReadAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            "select current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit'), current_setting('shared_buffers')",
            connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var durability = $"fsync={reader.GetString(1)}, synchronous_commit={reader.GetString(2)}, shared_buffers={reader.GetString(3)}";
        return new MachineFacts(
            Environment.ProcessorCount, await CpuModelAsync(cancellationToken), RuntimeInformation.OSDescription,
            reader.GetString(0), durability, DateTimeOffset.UtcNow);
    }

    private static async Task<string> CpuModelAsync(CancellationToken cancellationToken)
    {
        const string cpuInfo = "/proc/cpuinfo";
        if (!File.Exists(cpuInfo))
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }

        var line = (await File.ReadAllLinesAsync(cpuInfo, cancellationToken))
            .FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? RuntimeInformation.ProcessArchitecture.ToString() : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
    }
}

/// <summary>The plumbing every benchmark shares: the database, timing, and writing results.</summary>
internal static class Bench
{
    public const string UrlVariable = "HOURGLASS_BENCH_DATABASE_URL";

    /// <summary>
    /// Runs <paramref name="body"/> against the database in HOURGLASS_BENCH_DATABASE_URL, or else against a
    /// throwaway durable cluster (fsync and synchronous commit on, as in production), migrated first.
    /// </summary>
    public static async Task<T> WithDatabaseAsync<T>(Func<NpgsqlDataSource, string, Task<T>> body, CancellationToken cancellationToken)
    {
        var url = Environment.GetEnvironmentVariable(UrlVariable);
        EmbeddedPostgres? cluster = null;
        try
        {
            string connectionString;
            string description;
            if (!string.IsNullOrWhiteSpace(url))
            {
                connectionString = DatabaseUrl.ToConnectionString(url);
                description = $"{DatabaseUrl.Describe(connectionString)} (from {UrlVariable})";
            }
            else
            {
                Console.WriteLine("Starting a throwaway durable PostgreSQL cluster…");
                cluster = await EmbeddedPostgres.StartThrowawayAsync(durable: true, cancellationToken: cancellationToken);
                connectionString = cluster.ConnectionString;
                description = $"throwaway durable PostgreSQL {cluster.Binaries.MajorVersion} ({cluster.Binaries.BinDirectory})";
            }

            // Commands run for as long as they need (the 1M-row load, VACUUM); the run is bounded by Ctrl+C.
            // Persist Security Info keeps the password in the data source's connection string, so a benchmark
            // can open data sources on scratch databases of its own on the same server (`cycles` does).
            // The loaders and the raw-SQL baselines write clocks, queue entries and strategies as the product's functions
            // do, so their sessions write under the product's setting (docs/schema.md, "Derived columns"): the guards'
            // triggers then skip them exactly as they skip the product's own writes.
            var builder = new NpgsqlConnectionStringBuilder(connectionString) { CommandTimeout = 0, MaxPoolSize = 32, PersistSecurityInfo = true };
            builder.Options = $"{builder.Options} -c {DerivedColumns.ProductWriteSetting}=on".Trim();
            await using var dataSource = new NpgsqlDataSourceBuilder(builder.ConnectionString) { Name = "hourglass-bench" }.Build();
            var migrated = await new Migrator(dataSource).MigrateAsync(MigrationSource.Embedded(), cancellationToken);
            Console.WriteLine($"Database: {description}; {migrated.Applied.Count} migrations applied, {migrated.AlreadyApplied.Count} already there.");
            return await body(dataSource, description);
        }
        finally
        {
            if (cluster is not null)
            {
                await cluster.DisposeAsync();
            }
        }
    }

    /// <summary>Runs <paramref name="action"/> once and returns how long it took, in seconds.</summary>
    public static async Task<double> TimeAsync(Func<Task> action)
    {
        var stopwatch = Stopwatch.StartNew();
        await action();
        return stopwatch.Elapsed.TotalSeconds;
    }

    public static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new() { Value = parameter });
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new() { Value = parameter });
        }

        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public static string Format(double value, string unit) => unit switch
    {
        "s" or "ms" => value.ToString("0.000", CultureInfo.InvariantCulture),
        "cycles/s" => value.ToString("#,0.0", CultureInfo.InvariantCulture),
        _ => value.ToString("#,0", CultureInfo.InvariantCulture),
    };

    public static void Print(BenchReport report)
    {
        Console.WriteLine();
        Console.WriteLine($"== {report.Name} ==");
        var width = report.Measurements.Max(m => m.Variant.Length);
        foreach (var m in report.Measurements)
        {
            var runs = string.Join("  ", m.Runs.Select(r => Format(r, m.Unit)));
            Console.WriteLine($"  {m.Variant.PadRight(width)}  {report.ValueHeader.ToLowerInvariant()} {Format(m.Value, m.Unit),10} {m.Unit,-9} runs: {runs}");
        }

        var ratio = report.Ratio.ToString("0.00", CultureInfo.InvariantCulture);
        Console.WriteLine(report.HasGoal
            ? $"  {report.RatioLabel} = {ratio}  (goal {report.Goal}: {(report.GoalMet ? "met" : "MISSED")})"
            : $"  {report.RatioLabel} = {ratio}  ({report.Goal})");
        foreach (var goal in report.FurtherGoals)
        {
            Console.WriteLine($"  {goal.Label} = {goal.Value}  (goal {goal.Target}: {(goal.Met ? "met" : "MISSED")})");
        }

        foreach (var check in report.Checks)
        {
            Console.WriteLine($"  check: {check}");
        }
    }

    /// <summary>
    /// Replaces the benchmark's generated block in docs/benchmarks.md (between its begin/end markers), or
    /// appends a section for it. Text outside the markers, such as the interpretation, is left alone.
    /// </summary>
    public static async Task WriteToDocsAsync(BenchReport report, MachineFacts facts, string database, CancellationToken cancellationToken)
    {
        var path = Path.Combine(RepositoryRoot(), "docs", "benchmarks.md");
        var begin = $"<!-- bench:{report.Name}:begin (written by bench/Hourglass.Bench; edit outside these markers) -->";
        var end = $"<!-- bench:{report.Name}:end -->";
        var block = begin + "\n" + Markdown(report, facts, database) + end;

        var text = File.Exists(path)
            ? await File.ReadAllTextAsync(path, cancellationToken)
            : "# Benchmarks\n\nEvery benchmark runs next to its baseline in the same run. Run them all with\n" +
              "`dotnet run -c Release --project bench/Hourglass.Bench -- all`.\n";
        var start = text.IndexOf($"<!-- bench:{report.Name}:begin", StringComparison.Ordinal);
        var stop = text.IndexOf(end, StringComparison.Ordinal);
        text = start >= 0 && stop > start
            ? text[..start] + block + text[(stop + end.Length)..]
            : text.TrimEnd('\n') + $"\n\n## `{report.Name}`\n\n" + block + "\n";
        await File.WriteAllTextAsync(path, text, cancellationToken);
        Console.WriteLine($"  results written to {path}");
    }

    private static string Markdown(BenchReport report, MachineFacts facts, string database)
    {
        var md = new StringBuilder();
        md.Append(CultureInfo.InvariantCulture, $"Reproduce: `dotnet run -c Release --project bench/Hourglass.Bench -- {report.Name}`\n\n");
        md.Append(CultureInfo.InvariantCulture, $"Measured {facts.Date:yyyy-MM-dd HH:mm} UTC on `nproc` = {facts.Processors} ({facts.Cpu}), {facts.Os}; ");
        md.Append(CultureInfo.InvariantCulture, $"PostgreSQL {facts.PostgresVersion} ({facts.Durability}); database: {database}; ");
        md.Append(CultureInfo.InvariantCulture, $"load average (1/5/15 min) {facts.Load}.\n\n");
        md.Append(report.Setup).Append("\n\n");
        md.Append(CultureInfo.InvariantCulture, $"| Variant | {report.ValueHeader} | Unit | Runs |\n|---|---:|---|---|\n");
        foreach (var m in report.Measurements)
        {
            md.Append(CultureInfo.InvariantCulture,
                $"| {m.Variant} | {Format(m.Value, m.Unit)} | {m.Unit} | {string.Join(", ", m.Runs.Select(r => Format(r, m.Unit)))} |\n");
        }

        var ratio = report.Ratio.ToString("0.00", CultureInfo.InvariantCulture);
        if (report.HasGoal)
        {
            md.Append(CultureInfo.InvariantCulture, $"\n**{report.RatioLabel} = {ratio}**; goal {report.Goal}: **{(report.GoalMet ? "met" : "missed")}**.\n\n");
        }
        else
        {
            md.Append(CultureInfo.InvariantCulture, $"\n**{report.RatioLabel} = {ratio}**; {report.Goal}.\n\n");
        }
        foreach (var goal in report.FurtherGoals)
        {
            md.Append(CultureInfo.InvariantCulture, $"**{goal.Label} = {goal.Value}**; goal {goal.Target}: **{(goal.Met ? "met" : "missed")}**.\n\n");
        }

        foreach (var check in report.Checks)
        {
            md.Append(CultureInfo.InvariantCulture, $"- {check}\n");
        }

        return md.ToString();
    }

    // The folder holding Hourglass.slnx, found upwards from the build output so `dotnet run` works from anywhere.
    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Hourglass.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new HourglassException($"cannot find the repository root (Hourglass.slnx) above {AppContext.BaseDirectory}; run the benchmark from the source tree.");
    }
}
