using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Engagement;
using Hourglass.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Hourglass.Server.Cli;

/// <summary>The engagement engine's commands: record an outside touch, show the touch queue, complete a touch card.</summary>
internal static class EngagementCommands
{
    public static IEnumerable<Command> Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        yield return Touch(options, loggers);
        yield return ImportTouches(options, loggers);
        yield return Queue(options, loggers);
        yield return CompleteCard(options, loggers);
    }

    private static Command Touch(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };
        var contact = new Option<Guid?>("--contact") { Description = "The contact touched (its account's clock counts it too)." };
        var account = new Option<Guid?>("--account") { Description = "The account touched." };
        var type = new Option<string>("--type") { Description = "How: email, call, meeting, …", Required = true };
        var by = new Option<string>("--by") { Description = "Who or what made the touch (e.g. email-sync).", DefaultValueFactory = _ => "cli" };
        var at = new Option<string?>("--at") { Description = "When the touch happened (ISO-8601 with a UTC offset); default now." };
        var key = new Option<string?>("--key") { Description = "An idempotency key: the same touch sent again with it is recorded once." };
        var command = new Command("touch", "Record a touch made outside Hourglass (an email, a call): it resets the clock.") { tenant, contact, account, type, by, at, key };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var (entityType, entityId) = (parse.GetValue(contact), parse.GetValue(account)) switch
            {
                ({ } c, null) => ("contact", c),
                (null, { } a) => ("account", a),
                _ => throw new HourglassException("give exactly one of --contact or --account"),
            };
            var touch = new JsonObject
            {
                ["entity_type"] = entityType,
                ["entity_id"] = entityId.ToString(),
                ["touch_type"] = parse.GetValue(type),
                ["touch_by"] = parse.GetValue(by),
                ["source"] = "cli",
            };
            if (parse.GetValue(at) is { } when)
            {
                touch["occurred_at"] = when;
            }

            if (parse.GetValue(key) is { } idempotencyKey)
            {
                touch["idempotency_key"] = idempotencyKey;
            }

            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            var outcome = (await RecordAsync(target.DataSource, tenantId, [new TouchLine(1, touch, null)], TouchErrorMode.Refuse, 1, cancellationToken)).Single();
            Console.WriteLine(outcome.Outcome == "duplicate"
                ? $"Already recorded: the touch with key '{outcome.IdempotencyKey}' was recorded before; nothing changed."
                : $"Touch recorded on {entityType} {entityId}.");
            return 0;
        });
        return command;
    }

    private static Command ImportTouches(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };
        var file = new Option<FileInfo>("--file") { Description = "The touches: NDJSON (one JSON object per line) or CSV with a header; '-' reads standard input.", Required = true };
        var format = new Option<string?>("--format") { Description = "ndjson or csv (default: from the file's extension)." };
        format.AcceptOnlyFromAmong("ndjson", "csv");
        var onError = new Option<string>("--on-error") { Description = "refuse: any bad line refuses the whole file; skip: record the valid lines, report the bad.", DefaultValueFactory = _ => "refuse" };
        onError.AcceptOnlyFromAmong("refuse", "skip");
        var batchSize = new Option<int>("--batch-size") { Description = $"Touches per database call (1–{TouchBatch.MaxBatchSize}).", DefaultValueFactory = _ => 1_000 };
        var limits = new ImportFile();
        var import = new Command("import", "Record a file of touches made outside Hourglass (email sync, a phone system), each with its own time and idempotency key.")
        {
            tenant, file, format, onError, batchSize, limits.MaxFileBytes, limits.MaxLineBytes,
        };
        import.SetAction(async (parse, cancellationToken) =>
        {
            var size = parse.GetValue(batchSize);
            if (size is < 1 or > TouchBatch.MaxBatchSize)
            {
                throw new HourglassException($"--batch-size must be between 1 and {TouchBatch.MaxBatchSize} (got {size})");
            }

            var path = parse.GetValue(file)!;
            var kind = parse.GetValue(format) ?? (path.Extension.ToLowerInvariant() switch
            {
                ".csv" => "csv",
                ".ndjson" or ".jsonl" or ".json" => "ndjson",
                _ => throw new HourglassException($"--format is needed: cannot tell the format of '{path.Name}' from its extension (.ndjson, .jsonl or .csv)"),
            });
            IReadOnlyList<TouchLine> lines;
            using (var reader = limits.Open(parse, path))
            {
                lines = kind == "csv" ? await TouchBatch.ReadCsvAsync(reader, cancellationToken) : await TouchBatch.ReadNdjsonAsync(reader, cancellationToken);
            }

            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            var mode = parse.GetValue(onError) == "skip" ? TouchErrorMode.Skip : TouchErrorMode.Refuse;
            var outcomes = await RecordAsync(target.DataSource, tenantId, lines, mode, size, cancellationToken);
            var counts = outcomes.GroupBy(o => o.Outcome).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{lines.Count} touch(es) read: {counts.GetValueOrDefault("recorded")} recorded, {counts.GetValueOrDefault("duplicate")} duplicate(s) skipped, {counts.GetValueOrDefault("rejected")} rejected."));
            foreach (var rejected in outcomes.Where(o => o.Outcome == "rejected"))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  line {rejected.LineNumber}: {rejected.Error}"));
            }

            // Skipped bad lines are not silent: the exit code says some were not recorded.
            return counts.GetValueOrDefault("rejected") > 0 ? 3 : 0;
        });
        return new Command("touches", "Touches made outside Hourglass, in bulk.") { import };
    }

    // One transaction: a refused batch leaves nothing behind.
    private static async Task<IReadOnlyList<TouchOutcome>> RecordAsync(NpgsqlDataSource dataSource, Guid tenantId, IReadOnlyList<TouchLine> lines,
        TouchErrorMode mode, int batchSize, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var outcomes = await TouchBatch.RecordAsync(connection, transaction, tenantId, lines, mode, batchSize, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return outcomes;
    }

    private static Command Queue(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };
        var top = new Option<int>("--top") { Description = "How many (1–1000).", DefaultValueFactory = _ => 20 };
        var command = new Command("queue", "Show a tenant's touch queue, most urgent first, with the reason for each place.") { tenant, top };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            var queue = await TenancyStore.NamedEngagementQueueAsync(target.DataSource, tenantId, parse.GetValue(top), cancellationToken);
            Console.WriteLine($"{"#",3}  {"who",-32} {"status",-9} {"due",-17} {"priority",8}  why");
            var place = 0;
            foreach (var entry in queue)
            {
                var who = $"{entry.EntityType} {entry.Name ?? "?"}";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{++place,3}  {who,-32} {entry.ComplianceStatus,-9} {entry.NextTouchDue:yyyy-MM-dd HH:mm} {entry.PriorityScore,8:0.#}  {entry.PriorityReason}"));
            }

            if (place == 0)
            {
                Console.WriteLine("Nobody is due: every contact and account is within its cadence.");
            }

            return 0;
        });
        return command;
    }

    private static Command CompleteCard(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var card = new Option<Guid>("--card") { Description = "The touch card's id.", Required = true };
        var type = new Option<string>("--type") { Description = "How the touch was made.", DefaultValueFactory = _ => "call" };
        var notes = new Option<string?>("--notes") { Description = "What came of it." };
        var complete = new Command("complete", "Complete a touch card: records the touch on its contact or account.") { card, type, notes };
        complete.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            await using var command = target.DataSource.CreateCommand("select public.complete_touch_card($1, $2, $3)");
            command.Parameters.Add(new() { Value = parse.GetValue(card) });
            command.Parameters.Add(new() { Value = parse.GetValue(type)! });
            command.Parameters.Add(new() { Value = (object?)parse.GetValue(notes) ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            var clock = await command.ExecuteScalarAsync(cancellationToken);
            Console.WriteLine($"Card {parse.GetValue(card)} done; touch recorded (clock {clock}).");
            return 0;
        });
        return new Command("cards", "Work with cards (touch tasks, approvals, exception reviews).") { complete };
    }
}
