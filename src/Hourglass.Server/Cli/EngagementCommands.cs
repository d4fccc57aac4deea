using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Hourglass.Server.Cli;

/// <summary>The engagement engine's commands: record an outside touch, show the touch queue, complete a touch card.</summary>
internal static class EngagementCommands
{
    public static IEnumerable<Command> Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        yield return Touch(options, loggers);
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
        var command = new Command("touch", "Record a touch made outside Hourglass (an email, a call): it resets the clock.") { tenant, contact, account, type, by };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var (entityType, entityId) = (parse.GetValue(contact), parse.GetValue(account)) switch
            {
                ({ } c, null) => ("contact", c),
                (null, { } a) => ("account", a),
                _ => throw new HourglassException("give exactly one of --contact or --account"),
            };
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            await using var touch = target.DataSource.CreateCommand("select public.update_engagement_clock($1, $2, $3, $4, $5)");
            touch.Parameters.Add(new() { Value = tenantId });
            touch.Parameters.Add(new() { Value = entityType });
            touch.Parameters.Add(new() { Value = entityId });
            touch.Parameters.Add(new() { Value = parse.GetValue(type)! });
            touch.Parameters.Add(new() { Value = parse.GetValue(by)! });
            var clock = await touch.ExecuteScalarAsync(cancellationToken);
            Console.WriteLine($"Touch recorded on {entityType} {entityId} (clock {clock}).");
            return 0;
        });
        return command;
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
            await using var query = target.DataSource.CreateCommand("""
                select q.entity_type, coalesce(k.name, a.name), q.compliance_status, q.next_touch_due, q.priority_score, coalesce(q.priority_reason, '')
                from public.engagement_queue($1, $2) q
                left join public.contacts k on q.entity_type = 'contact' and k.tenant_id = $1 and k.id = q.entity_id
                left join public.accounts a on q.entity_type = 'account' and a.tenant_id = $1 and a.id = q.entity_id
                """);
            query.Parameters.Add(new() { Value = tenantId });
            query.Parameters.Add(new() { Value = parse.GetValue(top) });
            await using var reader = await query.ExecuteReaderAsync(cancellationToken);
            Console.WriteLine($"{"#",3}  {"who",-32} {"status",-9} {"due",-17} {"priority",8}  why");
            var place = 0;
            while (await reader.ReadAsync(cancellationToken))
            {
                var who = $"{reader.GetString(0)} {(reader.IsDBNull(1) ? "?" : reader.GetString(1))}";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{++place,3}  {who,-32} {reader.GetString(2),-9} {reader.GetFieldValue<DateTimeOffset>(3):yyyy-MM-dd HH:mm} {reader.GetDecimal(4),8:0.#}  {reader.GetString(5)}"));
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
