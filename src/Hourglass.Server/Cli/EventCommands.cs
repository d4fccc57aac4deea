using System.CommandLine;
using System.Globalization;
using Hourglass.Imports;
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
        var kind = EventImportKind.Instance;
        var import = new ImportOptions(kind.Records, kind.MaxBatchSize,
            $"Events per ingest_events call (1–{EventIngestion.MaxBatchSize}); not used with --bulk.");
        var bulk = new Option<bool>("--bulk") { Description = "The trusted bulk path: checked here, written by binary COPY as the service role (large files)." };
        var command = import.Command("Record a file of events from an outside system, each with its own time and idempotency key.", bulk);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var size = import.GetBatchSize(parse);
            var format = import.GetFormat(parse);
            var bulkPath = parse.GetValue(bulk);
            // The bulk path reads NDJSON as it writes (the next lines are read while the ones before are written); the
            // others read the whole file first, so that a bad CSV header is refused before the database is opened.
            using var reader = import.Open(parse);
            IReadOnlyList<EventLine>? lines = bulkPath && format == "ndjson" ? null
                : format == "csv" ? await ImportPipeline.ReadCsvAsync(kind, reader, cancellationToken) : await ImportPipeline.ReadNdjsonAsync(kind, reader, cancellationToken);

            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(import.Tenant)!, cancellationToken);
            var mode = import.GetMode(parse);
            // The bulk path runs as the service role, the role it is written for (it bypasses RLS, as COPY into the
            // events' table needs); the default path calls ingest_events with the connection's own role.
            var outcomes = await ImportOptions.RecordAsync(target.DataSource, bulkPath, (connection, transaction) => (bulkPath, lines) switch
            {
                (true, null) => EventIngestion.BulkAsync(connection, transaction, tenantId, ImportPipeline.StreamNdjsonAsync(kind, reader, cancellationToken), mode, cancellationToken),
                (true, _) => EventIngestion.BulkAsync(connection, transaction, tenantId, lines, mode, cancellationToken),
                _ => ImportPipeline.RecordAsync(kind, connection, transaction, tenantId, lines!, mode, size, cancellationToken),
            }, cancellationToken);
            return ImportOptions.Report(outcomes, kind.Counted);
        });
        return command;
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
            await using var command = new NpgsqlCommand(InsightsStore.ApplyRetentionSql, connection, transaction);
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
