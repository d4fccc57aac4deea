using System.CommandLine;
using System.Globalization;
using System.Text;
using Hourglass.Imports;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Hourglass.Server.Cli;

/// <summary>
/// The one option set of every <c>X import</c> command (docs/imports.md): <c>--tenant</c>, <c>--file</c>,
/// <c>--format</c>, <c>--on-error</c>, <c>--batch-size</c> and the file's limits (<see cref="ImportLimits"/>), read
/// and checked the same way for every kind, and the summary every import prints.
/// </summary>
internal sealed class ImportOptions
{
    private readonly int _maxBatchSize;

    public ImportOptions(string records, int maxBatchSize, string batchSizeDescription)
    {
        _maxBatchSize = maxBatchSize;
        File = new("--file") { Description = $"The {records}: NDJSON (one JSON object per line) or CSV with a header; '-' reads standard input.", Required = true };
        Format.AcceptOnlyFromAmong("ndjson", "csv");
        OnError.AcceptOnlyFromAmong("refuse", "skip");
        BatchSize = new("--batch-size") { Description = batchSizeDescription, DefaultValueFactory = _ => ImportPipeline.DefaultBatchSize };
    }

    public Option<string> Tenant { get; } = new("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };

    public Option<FileInfo> File { get; }

    public Option<string?> Format { get; } = new("--format") { Description = "ndjson or csv (default: from the file's extension)." };

    public Option<string> OnError { get; } = new("--on-error")
    {
        Description = "refuse: any bad line refuses the whole file; skip: record the valid lines, report the bad.",
        DefaultValueFactory = _ => "refuse",
    };

    public Option<int> BatchSize { get; }

    public Option<long> MaxFileBytes { get; } = new(ImportLimits.FileOption)
    {
        Description = $"Refuse a file larger than this many bytes (default {ImportLimits.DefaultMaxFileBytes}, 1 GiB).",
        DefaultValueFactory = _ => ImportLimits.DefaultMaxFileBytes,
    };

    public Option<int> MaxLineBytes { get; } = new(ImportLimits.LineOption)
    {
        Description = $"Refuse a line longer than this many bytes (default {ImportLimits.DefaultMaxLineBytes}, 1 MiB).",
        DefaultValueFactory = _ => ImportLimits.DefaultMaxLineBytes,
    };

    /// <summary>The <c>import</c> command with every shared option, then the kind's own.</summary>
    public Command Command(string description, params Option[] extra)
    {
        var import = new Command("import", description) { Tenant, File, Format, OnError };
        foreach (var option in extra)
        {
            import.Options.Add(option);
        }

        import.Options.Add(BatchSize);
        import.Options.Add(MaxFileBytes);
        import.Options.Add(MaxLineBytes);
        return import;
    }

    /// <summary>--batch-size, checked against the kind's limit.</summary>
    public int GetBatchSize(ParseResult parse)
    {
        var size = parse.GetValue(BatchSize);
        return size < 1 || size > _maxBatchSize
            ? throw new HourglassException(string.Create(CultureInfo.InvariantCulture, $"--batch-size must be between 1 and {_maxBatchSize} (got {size})"))
            : size;
    }

    /// <summary>"ndjson" or "csv": --format, else from the file's extension.</summary>
    public string GetFormat(ParseResult parse)
    {
        var path = parse.GetValue(File)!;
        return parse.GetValue(Format) ?? (path.Extension.ToLowerInvariant() switch
        {
            ".csv" => "csv",
            ".ndjson" or ".jsonl" or ".json" => "ndjson",
            _ => throw new HourglassException($"--format is needed: cannot tell the format of '{path.Name}' from its extension (.ndjson, .jsonl or .csv)"),
        });
    }

    public ImportErrorMode GetMode(ParseResult parse) => parse.GetValue(OnError) == "skip" ? ImportErrorMode.Skip : ImportErrorMode.Refuse;

    /// <summary>
    /// Opens --file ('-': standard input) as text within the limits given on the command line: a regular file over the
    /// size limit is refused before it is opened, and anything else — standard input, a pipe, <c>/dev/zero</c> — the
    /// moment it is read past a limit.
    /// </summary>
    public TextReader Open(ParseResult parse)
    {
        var path = parse.GetValue(File)!;
        var limits = new ImportLimits(parse.GetValue(MaxFileBytes), parse.GetValue(MaxLineBytes));
        if (limits.MaxFileBytes < 1)
        {
            throw new HourglassException($"{ImportLimits.FileOption} must be a positive number of bytes (got {limits.MaxFileBytes})");
        }

        if (limits.MaxLineBytes < 1)
        {
            throw new HourglassException($"{ImportLimits.LineOption} must be a positive number of bytes (got {limits.MaxLineBytes})");
        }

        if (path.Name == "-")
        {
            return new ImportReader(Console.In, limits);
        }

        if (!path.Exists)
        {
            throw new HourglassException($"--file: '{path.FullName}' does not exist");
        }

        // A device or a pipe reports no length (0): those are measured as they are read.
        if (path.Length > limits.MaxFileBytes)
        {
            throw new HourglassException(string.Create(CultureInfo.InvariantCulture,
                $"--file: '{path.FullName}' is {path.Length} bytes, larger than the limit of {limits.MaxFileBytes} ({ImportLimits.FileOption}); nothing was recorded"));
        }

        // A 64 KB buffer: a million-line file reads in about half the time of the default 4 KB.
        return new ImportReader(new StreamReader(path.FullName, Encoding.UTF8, true, 1 << 16), limits);
    }

    /// <summary>The whole file as the kind's lines, in the format given: a bad CSV header is refused before the database is opened.</summary>
    public async Task<IReadOnlyList<TLine>> ReadAsync<TLine, TOutcome>(IImportKind<TLine, TOutcome> kind, ParseResult parse, CancellationToken cancellationToken)
        where TOutcome : ImportOutcome
    {
        var format = GetFormat(parse);
        using var reader = Open(parse);
        return format == "csv"
            ? await ImportPipeline.ReadCsvAsync(kind, reader, cancellationToken)
            : await ImportPipeline.ReadNdjsonAsync(kind, reader, cancellationToken);
    }

    /// <summary>
    /// The plain import of a kind: the file read, then recorded through the pipeline in one transaction under the
    /// connection's own role (a refused file leaves nothing behind), and the summary printed.
    /// </summary>
    public static Command Build<TLine, TOutcome>(IImportKind<TLine, TOutcome> kind, string description,
        Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
        where TOutcome : ImportOutcome
    {
        var import = new ImportOptions(kind.Records, kind.MaxBatchSize,
            string.Create(CultureInfo.InvariantCulture, $"{char.ToUpperInvariant(kind.Records[0])}{kind.Records[1..]} per database call (1–{kind.MaxBatchSize})."));
        var command = import.Command(description);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var size = import.GetBatchSize(parse);
            var lines = await import.ReadAsync(kind, parse, cancellationToken);
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(import.Tenant)!, cancellationToken);
            var mode = import.GetMode(parse);
            var outcomes = await RecordAsync(target.DataSource, asServiceRole: false,
                (connection, transaction) => ImportPipeline.RecordAsync(kind, connection, transaction, tenantId, lines, mode, size, cancellationToken),
                cancellationToken);
            return Report(outcomes, kind.Counted);
        });
        return command;
    }

    /// <summary>
    /// One transaction per file: a refused file leaves nothing behind. <paramref name="asServiceRole"/>: for a trusted
    /// path that needs a role bypassing row-level security (the events' bulk path); else the connection's own role.
    /// </summary>
    public static async Task<IReadOnlyList<TOutcome>> RecordAsync<TOutcome>(NpgsqlDataSource dataSource, bool asServiceRole,
        Func<NpgsqlConnection, NpgsqlTransaction, Task<IReadOnlyList<TOutcome>>> record, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = asServiceRole
            ? await Storage.DbSession.BeginAsServiceRoleAsync(connection, cancellationToken)
            : await connection.BeginTransactionAsync(cancellationToken);
        var outcomes = await record(connection, transaction);
        await transaction.CommitAsync(cancellationToken);
        return outcomes;
    }

    /// <summary>Prints what became of the lines; the exit code is 3 when some were rejected (skipped bad lines are not silent).</summary>
    public static int Report(IReadOnlyList<ImportOutcome> outcomes, string counted)
    {
        var counts = outcomes.GroupBy(o => o.Outcome).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{outcomes.Count} {counted} read: {counts.GetValueOrDefault(ImportOutcome.Recorded)} recorded, {counts.GetValueOrDefault(ImportOutcome.Duplicate)} duplicate(s) skipped, {counts.GetValueOrDefault(ImportOutcome.Rejected)} rejected."));
        foreach (var rejected in outcomes.Where(o => o.Outcome == ImportOutcome.Rejected))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  line {rejected.LineNumber}: {rejected.Error}"));
        }

        return counts.GetValueOrDefault(ImportOutcome.Rejected) > 0 ? 3 : 0;
    }
}
