using System.CommandLine;
using System.Globalization;
using System.Text;
using Hourglass.Insights;
using Hourglass.Storage;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Hourglass.Server.Cli;

/// <summary>Events from outside systems into the warehouse, and their retention (docs/insights.md).</summary>
internal static class EventCommands
{
    public static IEnumerable<Command> Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        yield return new Command("events", "Events in the warehouse: import them from outside systems, prune old ones.")
        {
            Import(options, loggers),
            Prune(options, loggers),
        };
    }

    private static Command Import(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };
        var file = new Option<FileInfo>("--file") { Description = "The events: NDJSON (one JSON object per line) or CSV with a header; '-' reads standard input.", Required = true };
        var format = new Option<string?>("--format") { Description = "ndjson or csv (default: from the file's extension)." };
        format.AcceptOnlyFromAmong("ndjson", "csv");
        var onError = new Option<string>("--on-error") { Description = "refuse: any bad line refuses the whole file; skip: record the valid lines, report the bad.", DefaultValueFactory = _ => "refuse" };
        onError.AcceptOnlyFromAmong("refuse", "skip");
        var bulk = new Option<bool>("--bulk") { Description = "The trusted bulk path: checked here, written by binary COPY as the service role (large files)." };
        var batchSize = new Option<int>("--batch-size") { Description = $"Events per ingest_events call (1–{EventIngestion.MaxBatchSize}); not used with --bulk.", DefaultValueFactory = _ => 1_000 };
        var limits = new ImportFile();
        var import = new Command("import", "Record a file of events from an outside system, each with its own time and idempotency key.")
        {
            tenant, file, format, onError, bulk, batchSize, limits.MaxFileBytes, limits.MaxLineBytes,
        };
        import.SetAction(async (parse, cancellationToken) =>
        {
            var size = parse.GetValue(batchSize);
            if (size is < 1 or > EventIngestion.MaxBatchSize)
            {
                throw new HourglassException($"--batch-size must be between 1 and {EventIngestion.MaxBatchSize} (got {size})");
            }

            var path = parse.GetValue(file)!;
            var kind = parse.GetValue(format) ?? (path.Extension.ToLowerInvariant() switch
            {
                ".csv" => "csv",
                ".ndjson" or ".jsonl" or ".json" => "ndjson",
                _ => throw new HourglassException($"--format is needed: cannot tell the format of '{path.Name}' from its extension (.ndjson, .jsonl or .csv)"),
            });
            using var reader = limits.Open(parse, path);
            var bulkPath = parse.GetValue(bulk);
            // The bulk path reads NDJSON as it writes (the next lines are read while the ones before are written); the
            // others read the whole file first, so that a bad CSV header is refused before the database is opened.
            IReadOnlyList<EventLine>? lines = bulkPath && kind == "ndjson" ? null
                : kind == "csv" ? await EventIngestion.ReadCsvAsync(reader, cancellationToken) : await EventIngestion.ReadNdjsonAsync(reader, cancellationToken);

            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            var mode = parse.GetValue(onError) == "skip" ? EventErrorMode.Skip : EventErrorMode.Refuse;
            var outcomes = await RecordAsync(target.DataSource, bulkPath, (connection, transaction) => (bulkPath, lines) switch
            {
                (true, null) => EventIngestion.BulkAsync(connection, transaction, tenantId, EventIngestion.StreamNdjsonAsync(reader, cancellationToken), mode, cancellationToken),
                (true, _) => EventIngestion.BulkAsync(connection, transaction, tenantId, lines, mode, cancellationToken),
                _ => EventIngestion.RecordAsync(connection, transaction, tenantId, lines!, mode, size, cancellationToken),
            }, cancellationToken);
            var counts = outcomes.GroupBy(o => o.Outcome).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{outcomes.Count} event(s) read: {counts.GetValueOrDefault("recorded")} recorded, {counts.GetValueOrDefault("duplicate")} duplicate(s) skipped, {counts.GetValueOrDefault("rejected")} rejected."));
            foreach (var rejected in outcomes.Where(o => o.Outcome == "rejected"))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  line {rejected.LineNumber}: {rejected.Error}"));
            }

            // Skipped bad lines are not silent: the exit code says some were not recorded.
            return counts.GetValueOrDefault("rejected") > 0 ? 3 : 0;
        });
        return import;
    }

    // One transaction per file: a refused file leaves nothing behind. The bulk path runs as the service role, the role
    // it is written for (it bypasses RLS, as COPY into warehouse_events needs); the default path calls ingest_events
    // with the connection's own role.
    private static async Task<IReadOnlyList<EventOutcome>> RecordAsync(NpgsqlDataSource dataSource, bool asServiceRole,
        Func<NpgsqlConnection, NpgsqlTransaction, Task<IReadOnlyList<EventOutcome>>> record, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = asServiceRole
            ? await DbSession.BeginAsServiceRoleAsync(connection, cancellationToken)
            : await connection.BeginTransactionAsync(cancellationToken);
        var outcomes = await record(connection, transaction);
        await transaction.CommitAsync(cancellationToken);
        return outcomes;
    }

    private static Command Prune(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };
        var prune = new Command("prune",
            "Apply the tenant's retention: delete events older than retention_events_days (default 730) and finished runs older than retention_runs_days (default 90); reflections are kept.")
        {
            tenant,
        };
        prune.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            await using var connection = await target.DataSource.OpenConnectionAsync(cancellationToken);
            // apply_retention is the service role's alone.
            await using var transaction = await DbSession.BeginAsServiceRoleAsync(connection, cancellationToken);
            await using var command = new NpgsqlCommand("""
                select r.events_deleted, r.runs_deleted,
                       hourglass.tenant_setting_int($1, 'retention_events_days', 730), hourglass.tenant_setting_int($1, 'retention_runs_days', 90)
                from public.apply_retention($1) r
                """, connection, transaction);
            command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenantId });
            long events, runs;
            int eventDays, runDays;
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
            {
                await reader.ReadAsync(cancellationToken);
                (events, runs, eventDays, runDays) = (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt32(2), reader.GetInt32(3));
            }

            await transaction.CommitAsync(cancellationToken);
            static string Kept(int days) => days > 0 ? string.Create(CultureInfo.InvariantCulture, $"older than {days} days") : "none: kept forever";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Retention applied: {events} event(s) deleted ({Kept(eventDays)}), {runs} run(s) deleted ({Kept(runDays)}); hourly reflections kept."));
            return 0;
        });
        return prune;
    }
}
