using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Hourglass.Engagement;
using Hourglass.Policies;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Server.Cli;

/// <summary>Policies (show, set, history, explain, violations, trends) and approvals (list, approve, reject).</summary>
internal static class PolicyCommands
{
    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    public static IEnumerable<Command> Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        yield return new Command("policies", "A tenant's policy document: every action the agent takes is checked against it.")
        {
            Show(options, loggers), Set(options, loggers), History(options, loggers), Explain(options, loggers), Violations(options, loggers), Trends(options, loggers),
        };
        yield return new Command("approvals", "Actions the policy holds for a person's approval.")
        {
            ListApprovals(options, loggers), Decide(options, loggers, approve: true), Decide(options, loggers, approve: false),
        };
    }

    private static Option<string> TenantOption() => new("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };

    private static async Task<(DatabaseTarget Target, Guid Tenant)> OpenAsync(ParseResult parse, Func<ParseResult, GlobalOptions> options,
        ILoggerFactory loggerFactory, Option<string> tenant, CancellationToken cancellationToken)
    {
        var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
        try
        {
            return (target, await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken));
        }
        catch
        {
            await target.DisposeAsync();
            throw;
        }
    }

    private static Command Show(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var version = new Option<int?>("--version") { Description = "A saved version (default: the one in force)." };
        var command = new Command("show", "Print the policy document in force (or a saved version) as JSON.") { tenant, version };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            var (target, tenantId) = await OpenAsync(parse, options, loggerFactory, tenant, cancellationToken);
            await using var _ = target;
            PolicyVersion policy;
            if (parse.GetValue(version) is { } number)
            {
                await using var connection = await target.DataSource.OpenConnectionAsync(cancellationToken);
                policy = await PolicyStore.ReadAsync(connection, null, tenantId, number, cancellationToken)
                         ?? throw new HourglassException($"--version: the tenant has no policy version {number}");
            }
            else
            {
                policy = await PolicyStore.InForceAsync(target.DataSource, tenantId, cancellationToken);
            }

            Console.Error.WriteLine(policy.Number == 0
                ? "The tenant has no policy document of its own: the built-in default is in force."
                : $"Version {policy.Number}, saved {policy.CreatedAt:yyyy-MM-dd HH:mm} UTC by {policy.CreatedBy}.");
            Console.WriteLine(policy.Document.Source.ToJsonString(s_indented));
            return 0;
        });
        return command;
    }

    private static Command Set(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var file = new Option<FileInfo>("--file") { Description = "The policy document (JSON; schema in docs/policy.schema.json); '-' reads standard input.", Required = true };
        var expected = new Option<int?>("--expected-version") { Description = "Save only if this is the version in force (0: none saved yet), as an HTTP If-Match." };
        var comment = new Option<string?>("--comment") { Description = "Why it changed." };
        var by = new Option<string>("--by") { Description = "Who saves it (recorded with the version).", DefaultValueFactory = _ => "cli" };
        var command = new Command("set", "Validate and save a new version of the tenant's policy; a refused document changes nothing.") { tenant, file, expected, comment, by };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var path = parse.GetValue(file)!;
            string json;
            if (path.Name == "-")
            {
                json = await Console.In.ReadToEndAsync(cancellationToken);
            }
            else if (!path.Exists)
            {
                throw new HourglassException($"--file: '{path.FullName}' does not exist");
            }
            else
            {
                json = await File.ReadAllTextAsync(path.FullName, cancellationToken);
            }

            using var loggerFactory = loggers(parse);
            var (target, tenantId) = await OpenAsync(parse, options, loggerFactory, tenant, cancellationToken);
            await using var _ = target;
            var saved = await PolicyStore.SaveAsync(target.DataSource, tenantId, json, parse.GetValue(by)!, parse.GetValue(comment), parse.GetValue(expected), cancellationToken);
            Console.WriteLine($"Saved policy version {saved.Number} ({saved.Document.Rules.Count} rules); it is in force from the next decision.");
            return 0;
        });
        return command;
    }

    private static Command History(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var command = new Command("history", "List the saved versions of the tenant's policy, newest first.") { tenant };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            var (target, tenantId) = await OpenAsync(parse, options, loggerFactory, tenant, cancellationToken);
            await using var _ = target;
            var any = false;
            foreach (var v in await PolicyStore.HistoryAsync(target.DataSource, tenantId, cancellationToken))
            {
                any = true;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"v{v.Version,-4} {v.CreatedAt:yyyy-MM-dd HH:mm}  {v.CreatedBy,-20} {v.Rules,3} rules  {v.Comment}"));
            }

            if (!any)
            {
                Console.WriteLine("No versions saved: the built-in default is in force ('hourglass policies show' prints it).");
            }

            return 0;
        });
        return command;
    }

    private static Command Explain(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var kind = new Option<string>("--kind") { Description = "The action: touch_task, send_message, order_auto_fix, …", Required = true };
        var contact = new Option<Guid?>("--contact") { Description = "The contact it touches." };
        var account = new Option<Guid?>("--account") { Description = "The account it concerns." };
        var channel = new Option<string?>("--channel") { Description = "For a message: email or webhook (default email)." };
        var orderValue = new Option<decimal?>("--order-value") { Description = "For an order action: the order's total." };
        var priceChange = new Option<decimal?>("--price-change-pct") { Description = "For an auto-fix: the largest price change, in percent." };
        var discountChange = new Option<decimal?>("--discount-change-pct") { Description = "For an auto-fix: the largest discount change, in points." };
        var at = new Option<string?>("--at") { Description = "When (ISO-8601 with offset; default now)." };
        var command = new Command("explain", "Evaluate a hypothetical action against the tenant's policy and explain every rule's verdict.")
        {
            tenant, kind, contact, account, channel, orderValue, priceChange, discountChange, at,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var when = ProductClock.Time.GetUtcNow();
            if (parse.GetValue(at) is { } text && !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out when))
            {
                throw new HourglassException($"--at: '{text}' is not a timestamp (e.g. 2026-12-01T09:30:00Z)");
            }

            when = TimeBounds.Checked("--at", when);

            var actionKind = parse.GetValue(kind)!;
            var contactId = parse.GetValue(contact);
            var accountId = parse.GetValue(account);
            using var loggerFactory = loggers(parse);
            var (target, tenantId) = await OpenAsync(parse, options, loggerFactory, tenant, cancellationToken);
            await using var _ = target;
            await RequireAsync(target.DataSource, tenantId, "contacts", "--contact", contactId, cancellationToken);
            await RequireAsync(target.DataSource, tenantId, "accounts", "--account", accountId, cancellationToken);
            var action = new PolicyAction(
                actionKind,
                contactId ?? accountId,
                actionKind switch { "touch_task" => "task", "send_message" => parse.GetValue(channel) ?? "email", _ => parse.GetValue(channel) },
                contactId,
                accountId,
                parse.GetValue(orderValue),
                parse.GetValue(priceChange),
                parse.GetValue(discountChange));
            var explanation = await PolicyExplainer.ExplainAsync(target.DataSource, tenantId, action, when, cancellationToken);
            Console.WriteLine($"Decision: {explanation.Decision.VerdictName.ToUpperInvariant()} under policy {explanation.Policy.Version}" +
                              (explanation.Decision.DeterminingRules.Count > 0 ? $", decided by {string.Join(", ", explanation.Decision.DeterminingRules)}" : ""));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"At {when.ToUniversalTime():yyyy-MM-dd HH:mm} UTC; time zone {explanation.Facts.Zone.Id} ({explanation.Facts.ZoneSource})."));
            Console.WriteLine();
            Console.WriteLine($"{"rule",-24} {"kind",-22} {"verdict",-16} why");
            foreach (var rule in explanation.Trace)
            {
                Console.WriteLine($"{rule.RuleId,-24} {rule.RuleKind,-22} {rule.Outcome,-16} {rule.Detail}");
            }

            return 0;
        });
        return command;
    }

    private static Command Violations(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var since = new Option<string?>("--since") { Description = "From this moment (ISO-8601; default 7 days ago)." };
        var rule = new Option<string?>("--rule") { Description = "Only this rule's." };
        var severity = new Option<string?>("--severity") { Description = "Only this severity." };
        severity.AcceptOnlyFromAmong("info", "warning", "error", "critical");
        var decision = new Option<string?>("--decision") { Description = "Only this decision." };
        decision.AcceptOnlyFromAmong("deny", "require_approval", "warn");
        var limit = new Option<int>("--limit") { Description = "At most this many, newest first (1-1000).", DefaultValueFactory = _ => 50 };
        var command = new Command("violations", "List the tenant's policy violations (every deny, require_approval and warn), newest first.")
        {
            tenant, since, rule, severity, decision, limit,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var from = ProductClock.Time.GetUtcNow().AddDays(-7);
            if (parse.GetValue(since) is { } text && !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out from))
            {
                throw new HourglassException($"--since: '{text}' is not a date or timestamp (e.g. 2026-12-01)");
            }

            from = TimeBounds.Checked("--since", from);

            if (parse.GetValue(limit) is < 1 or > 1000)
            {
                throw new HourglassException($"--limit must be between 1 and 1000 (got {parse.GetValue(limit)})");
            }

            using var loggerFactory = loggers(parse);
            var (target, tenantId) = await OpenAsync(parse, options, loggerFactory, tenant, cancellationToken);
            await using var _ = target;
            var violations = await PolicyStore.ViolationsAsync(target.DataSource, tenantId, from, parse.GetValue(rule), parse.GetValue(severity),
                parse.GetValue(decision), parse.GetValue(limit), cancellationToken);
            var count = 0;
            foreach (var v in violations)
            {
                count++;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{v.CreatedAt:yyyy-MM-dd HH:mm}  {v.Severity,-8} {v.Decision,-16} {v.PolicyKey,-22} {v.ActionType,-14} {v.PolicyVersion,-8} {(v.Blocked ? "blocked" : "allowed")}  {v.Message}"));
            }

            if (count == 0)
            {
                Console.WriteLine("No violations match.");
            }

            return 0;
        });
        return command;
    }

    private static Command Trends(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var days = new Option<int>("--days") { Description = "How many days back (1-366).", DefaultValueFactory = _ => 30 };
        var command = new Command("trends", "Violations per day (in the tenant's time zone) by rule, severity and decision.") { tenant, days };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            var (target, tenantId) = await OpenAsync(parse, options, loggerFactory, tenant, cancellationToken);
            await using var _ = target;
            await using var query = target.DataSource.CreateCommand(PolicyStore.ViolationTrendsSql);
            query.Parameters.Add(new() { Value = tenantId });
            query.Parameters.Add(new() { Value = parse.GetValue(days) });
            await using var reader = await query.ExecuteReaderAsync(cancellationToken);
            Console.WriteLine($"{"day",-10}  {"rule",-22} {"severity",-8} {"decision",-16} {"count",5}");
            var rows = 0;
            while (await reader.ReadAsync(cancellationToken))
            {
                rows++;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{reader.GetFieldValue<DateOnly>(0):yyyy-MM-dd}  {reader.GetString(1),-22} {reader.GetString(2),-8} {reader.GetString(3),-16} {reader.GetInt64(4),5}"));
            }

            if (rows == 0)
            {
                Console.WriteLine("No violations in the period.");
            }

            return 0;
        });
        return command;
    }

    private static Command ListApprovals(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var all = new Option<bool>("--all") { Description = "Also decided and expired ones (the last 30 days)." };
        var command = new Command("list", "List the tenant's approvals: open ones first, with what they would do and why they wait.") { tenant, all };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            var (target, tenantId) = await OpenAsync(parse, options, loggerFactory, tenant, cancellationToken);
            await using var _ = target;
            var count = 0;
            foreach (var card in await EngagementStore.ApprovalCardsAsync(target.DataSource, tenantId, parse.GetValue(all), cancellationToken))
            {
                count++;
                var state = card.Status == "open"
                    ? string.Create(CultureInfo.InvariantCulture, $"open, expires {card.DueAt:yyyy-MM-dd HH:mm} UTC")
                    : $"{card.Status} {card.Decision} {card.CompletedBy}".TrimEnd();
                Console.WriteLine($"{card.Id}  {card.Title}  [{state}]");
                Console.WriteLine($"    {card.Body}");
            }

            if (count == 0)
            {
                Console.WriteLine("No approvals waiting.");
            }

            return 0;
        });
        return command;
    }

    private static Command Decide(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers, bool approve)
    {
        var card = new Option<Guid>("--card") { Description = "The approval card's id.", Required = true };
        var by = new Option<string>("--by") { Description = ActingPerson.Description, Required = true };
        var note = new Option<string?>(approve ? "--note" : "--reason") { Description = approve ? "A note." : "Why not (recorded).", Required = !approve };
        var command = new Command(approve ? "approve" : "reject",
            approve ? "Approve the action: it runs in the tenant's next cycle, after the policy is checked again then."
                    : "Reject the action: it does not run, and the agent does not ask about that contact again for 7 days.")
        {
            card, by, note,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var outcome = (string)(await ActingPerson.CallAsync(target.DataSource, parse.GetValue(by)!, ApprovalCardStore.DecideApprovalAsSql,
                [parse.GetValue(card), approve, new NpgsqlParameter { Value = (object?)parse.GetValue(note) ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text }],
                cancellationToken))!;
            Console.WriteLine(approve
                ? $"Card {parse.GetValue(card)} {outcome}: the action runs in the tenant's next cycle if the policy still allows it then ('hourglass run' runs one now)."
                : $"Card {parse.GetValue(card)} {outcome}.");
            return 0;
        });
        return command;
    }

    private static async Task RequireAsync(NpgsqlDataSource dataSource, Guid tenantId, string table, string option, Guid? id, CancellationToken cancellationToken)
    {
        if (id is null)
        {
            return;
        }

        await using var command = dataSource.CreateCommand($"select exists (select 1 from public.{table} where tenant_id = $1 and id = $2)");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = id.Value });
        if (await command.ExecuteScalarAsync(cancellationToken) is not true)
        {
            throw new HourglassException($"{option}: {id} does not exist in this tenant");
        }
    }
}
