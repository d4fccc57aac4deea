using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Engagement;
using Hourglass.Imports;
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
            var outcome = (await ImportOptions.RecordAsync(target.DataSource, asServiceRole: false, (connection, transaction) =>
                ImportPipeline.RecordAsync(TouchImportKind.Instance, connection, transaction, tenantId, [new TouchLine(1, touch, null)], ImportErrorMode.Refuse, 1, cancellationToken),
                cancellationToken)).Single();
            Console.WriteLine(outcome.Outcome == "duplicate"
                ? $"Already recorded: the touch with key '{outcome.IdempotencyKey}' was recorded before; nothing changed."
                : $"Touch recorded on {entityType} {entityId}.");
            return 0;
        });
        return command;
    }

    private static Command ImportTouches(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers) =>
        new("touches", "Touches made outside Hourglass, in bulk.")
        {
            ImportOptions.Build(TouchImportKind.Instance,
                "Record a file of touches made outside Hourglass (email sync, a phone system), each with its own time and idempotency key.", options, loggers),
        };

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
            await using var command = target.DataSource.CreateCommand(EngagementStore.CompleteTouchCardSql);
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
