using System.CommandLine;
using System.Globalization;
using Hourglass.Simulation;
using Hourglass.Storage;
using Microsoft.Extensions.Logging;
using Npgsql;
using Spectre.Console;

namespace Hourglass.Server.Cli;

/// <summary>
/// <c>hourglass simulate</c>: a seeded synthetic world driven through the real cycle engine and a real (throwaway)
/// PostgreSQL with a simulated clock; writes the report as JSON and HTML and prints its summary. Exits 0 when every
/// goal is met, 4 when one is missed, 1 on bad options (checked before anything starts).
/// </summary>
internal static class SimulateCommand
{
    public const int GoalsMissedExitCode = 4;

    public static Command Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var defaults = new SimulationOptions();
        var seed = new Option<long>("--seed") { Description = "Seeds the whole world; the same seed gives the same report.", DefaultValueFactory = _ => defaults.Seed };
        var tenants = new Option<int>("--tenants") { Description = "Tenants in the world.", DefaultValueFactory = _ => defaults.Tenants };
        var contacts = new Option<int>("--contacts") { Description = "Contacts per tenant.", DefaultValueFactory = _ => defaults.ContactsPerTenant };
        var perAccount = new Option<int>("--contacts-per-account") { Description = "Contacts per account.", DefaultValueFactory = _ => defaults.ContactsPerAccount };
        var days = new Option<int>("--days") { Description = "Simulated days.", DefaultValueFactory = _ => defaults.Days };
        var start = new Option<string?>("--start") { Description = "The first simulated hour, ISO-8601 UTC (default 2026-01-05T00:00:00Z, a Monday)." };
        var owners = new Option<int>("--owners") { Description = "Sales people (account owners) per tenant.", DefaultValueFactory = _ => defaults.OwnersPerTenant };
        var dueSoon = new Option<int>("--due-soon-days")
        {
            Description = "The tenants' due_soon_days: how many days before a clock is due the agent starts on it.",
            DefaultValueFactory = _ => defaults.DueSoonDays,
        };
        var levelAhead = new Option<int>("--level-ahead-days")
        {
            Description = "The tenants' level_ahead_days: how far ahead the agent looks for a wave the email cap cannot let through on time (0: off).",
            DefaultValueFactory = _ => defaults.LevelAheadDays,
        };
        var emailCap = new Option<int>("--email-daily-cap") { Description = "Policy: the most messages per tenant in any 24 hours.", DefaultValueFactory = _ => defaults.EmailDailyCap };
        var contactCap = new Option<int>("--contact-weekly-cap") { Description = "Policy: the most touches of one contact in any 7 days.", DefaultValueFactory = _ => defaults.ContactWeeklyCap };
        var approvals = new Option<int>("--approval-every")
        {
            Description = "Every n-th tenant has every message approved by a person first (0: none).",
            DefaultValueFactory = _ => defaults.ApprovalEveryNthTenant,
        };
        var fixable = new Option<double>("--fixable-share") { Description = "Share of orders with a defect an auto-fix may repair.", DefaultValueFactory = _ => defaults.FixableShare };
        var unfixable = new Option<double>("--unfixable-share") { Description = "Share of orders with a defect no auto-fix may repair.", DefaultValueFactory = _ => defaults.UnfixableShare };
        var orderGap = new Option<double>("--mean-days-between-orders") { Description = "Mean days between two orders of an account.", DefaultValueFactory = _ => defaults.MeanDaysBetweenOrders };
        var manual = new Option<double>("--manual-touch-rate")
        {
            Description = "Chance per working day that an owner touches a contact without being asked.",
            DefaultValueFactory = _ => defaults.ManualTouchesPerContactDay,
        };
        var dead = new Option<double>("--dead-address-share") { Description = "Share of contacts whose address is dead: the first email bounces hard.", DefaultValueFactory = _ => defaults.DeadAddressShare };
        var softBounce = new Option<double>("--soft-bounce-rate") { Description = "Chance that a delivery bounces soft (the retry gets through).", DefaultValueFactory = _ => defaults.SoftBounceRate };
        var complaint = new Option<double>("--complaint-rate") { Description = "Chance that a delivered email is reported as spam.", DefaultValueFactory = _ => defaults.ComplaintRate };
        var unsubscribes = new Option<double>("--unsubscribe-rate") { Description = "Chance that a delivered email's recipient unsubscribes.", DefaultValueFactory = _ => defaults.UnsubscribeRate };
        var outOfOffice = new Option<double>("--out-of-office-share")
        {
            Description = "Share of contacts who take one out-of-office spell (1-2 weeks); an email then gets an auto-reply with the return date.",
            DefaultValueFactory = _ => defaults.OutOfOfficeShare,
        };
        var concurrency = new Option<int>("--concurrency")
        {
            Description = "Cycles run at once (default 4). 1 makes the report exactly reproducible; with more, tenants' detectors may see another tenant's events an hour apart.",
            DefaultValueFactory = _ => defaults.Concurrency,
        };
        var output = new Option<string>("--out") { Description = "Folder for simulation-report.json and simulation-report.html.", DefaultValueFactory = _ => "simulation" };

        var command = new Command("simulate",
            "Run a seeded synthetic world (tenants, contacts who answer by channel and hour, people, vacations, holidays, orders with known defects, " +
            "policies) through the real cycle engine and a throwaway PostgreSQL with a simulated clock; report compliance, caps, orders and strategies " +
            "against the goals. Exits 4 when a goal is missed.")
        {
            seed, tenants, contacts, perAccount, days, start, owners, dueSoon, levelAhead, emailCap, contactCap, approvals, fixable, unfixable, orderGap, manual, dead, softBounce, complaint, unsubscribes, outOfOffice, concurrency, output,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (options(parse).Database is not null)
            {
                throw new HourglassException(
                    "--database: simulate runs in a throwaway PostgreSQL of its own, because it moves the database clock; it never runs against a database you name");
            }

            var settings = new SimulationOptions
            {
                Seed = parse.GetValue(seed),
                Tenants = parse.GetValue(tenants),
                ContactsPerTenant = parse.GetValue(contacts),
                ContactsPerAccount = parse.GetValue(perAccount),
                Days = parse.GetValue(days),
                Start = ParseStart(parse.GetValue(start)) ?? defaults.Start,
                OwnersPerTenant = parse.GetValue(owners),
                DueSoonDays = parse.GetValue(dueSoon),
                LevelAheadDays = parse.GetValue(levelAhead),
                EmailDailyCap = parse.GetValue(emailCap),
                ContactWeeklyCap = parse.GetValue(contactCap),
                ApprovalEveryNthTenant = parse.GetValue(approvals),
                FixableShare = parse.GetValue(fixable),
                UnfixableShare = parse.GetValue(unfixable),
                MeanDaysBetweenOrders = parse.GetValue(orderGap),
                ManualTouchesPerContactDay = parse.GetValue(manual),
                DeadAddressShare = parse.GetValue(dead),
                SoftBounceRate = parse.GetValue(softBounce),
                ComplaintRate = parse.GetValue(complaint),
                UnsubscribeRate = parse.GetValue(unsubscribes),
                OutOfOfficeShare = parse.GetValue(outOfOffice),
                Concurrency = parse.GetValue(concurrency),
            };
            settings.Validate();
            var folder = Path.GetFullPath(parse.GetValue(output)!);
            Directory.CreateDirectory(folder);

            using var loggerFactory = loggers(parse);
            await using var cluster = await EmbeddedPostgres.StartThrowawayAsync(
                Environment.GetEnvironmentVariable("HOURGLASS_PG_BIN"), logger: loggerFactory.CreateLogger("Hourglass.EmbeddedPostgres"), cancellationToken: cancellationToken);
            await using var dataSource = ProductDataSource.Create(cluster.ConnectionString, direct: true);
            await new Migrator(dataSource, loggerFactory.CreateLogger<Migrator>()).MigrateAsync(MigrationSource.Embedded(), cancellationToken);

            var simulator = new Simulator(settings, dataSource, loggerFactory);
            var report = Console.IsOutputRedirected
                ? await simulator.RunAsync(new Progress<SimulationProgress>(ReportToStderr), cancellationToken)
                : await RunWithProgressAsync(simulator, cancellationToken);

            var json = Path.Combine(folder, "simulation-report.json");
            var html = Path.Combine(folder, "simulation-report.html");
            await File.WriteAllTextAsync(json, report.ToJson(), cancellationToken);
            await File.WriteAllTextAsync(html, SimulationHtml.Render(report), cancellationToken);
            Print(StatusCommand.CreateConsole(), report, json, html);
            return report.AllGoalsMet ? 0 : GoalsMissedExitCode;
        });
        return command;
    }

    private static DateTimeOffset? ParseStart(string? text)
    {
        if (text is null)
        {
            return null;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at)
            ? TimeBounds.Checked("--start", at)
            : throw new HourglassException($"--start must be an ISO-8601 time such as 2026-01-05T00:00:00Z (got '{text}')");
    }

    private static void ReportToStderr(SimulationProgress progress)
    {
        if (progress.Stage != "running" || progress.Hour % (24 * 10) == 0 || progress.Hour == progress.Hours)
        {
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"simulate: {progress.Stage}, day {progress.Hour / 24} of {progress.Hours / 24}"));
        }
    }

    private static async Task<SimulationReport> RunWithProgressAsync(Simulator simulator, CancellationToken cancellationToken) =>
        await AnsiConsole.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask("Seeding the world", maxValue: 1);
                var report = await simulator.RunAsync(new Progress<SimulationProgress>(p =>
                {
                    task.MaxValue = Math.Max(1, p.Hours);
                    task.Value = p.Hour;
                    task.Description = p.Stage == "running"
                        ? string.Create(CultureInfo.InvariantCulture, $"Simulated day {p.Hour / 24} of {p.Hours / 24}")
                        : p.Stage == "seeding" ? "Seeding the world" : "Reading the report";
                }), cancellationToken);
                task.Value = task.MaxValue;
                return report;
            });

    private static void Print(IAnsiConsole console, SimulationReport report, string json, string html)
    {
        var s = report.Settings;
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Simulated {s.Days} days of {s.Tenants} tenant(s) x {s.ContactsPerTenant:N0} contacts (seed {s.Seed}){(report.Timing is { } t ? $" in {t.TotalSeconds:N0} s" : "")}."));
        var goals = new Table().AddColumns("Goal", "Target", "Reached", "");
        foreach (var goal in report.Goals)
        {
            goals.AddRow(Markup.Escape(goal.Description), Markup.Escape(goal.Target), Markup.Escape(goal.Reached), goal.Met ? "[green]met[/]" : "[red]missed[/]");
        }

        console.Write(goals);
        var o = report.Orders;
        var c = report.Caps;
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Orders: {o.Clean + o.Fixable + o.Unfixable:N0} placed; fixable {o.FixableAutoResolved:N0}/{o.Fixable:N0} resolved automatically, unfixable {o.UnfixableExceptions:N0}/{o.Unfixable:N0} raised as exceptions, {o.UnfixableReleased:N0} released."));
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Caps: at most {c.EmailPeak24h} messages in 24 h in one tenant (cap {c.EmailDailyCap}); at most {c.ContactPeak7d} touches of one contact in 7 days (cap {c.ContactWeeklyCap}); {c.SentOutsideWindow} sent outside business hours."));
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Strategies from day {report.Strategies.FromDay}: {report.Strategies.ChosenToBestRatio:P1} of the best strategy's true rate; runs: {string.Join(", ", report.Cycles.Runs.Select(r => $"{r.Value:N0} {r.Key}"))}."));
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"People: {report.Cycles.ApprovalsGranted:N0} approvals granted, {report.Cycles.ApprovalsRejected:N0} rejected; refused decisions (card no longer open): {(report.Cycles.RefusedDecisions.Count == 0 ? "none" : string.Join(", ", report.Cycles.RefusedDecisions.Select(p => $"{p.Value:N0} {p.Key}")))}."));
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"The world answered: {(report.Inbound.Answers.Count == 0 ? "nothing" : string.Join(", ", report.Inbound.Answers.Select(p => $"{p.Value:N0} {p.Key}")))}; " +
            $"{report.Inbound.SentAfterSuppression} sent after a suppression or opt-out; {report.Inbound.RepliesMovedClock:N0} of {report.Inbound.RepliesChecked:N0} replies moved their clock within the hour."));
        if (report.Timing is { } timing)
        {
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Time: {timing.TotalSeconds:N0} s (seeding {timing.SeedSeconds:N0} s; {string.Join(", ", timing.StageSeconds.Select(p => $"{p.Key} {p.Value:N0} s"))}); {timing.CyclesPerSecond:N1} cycles/s."));
        }

        console.WriteLine($"Report: {json}");
        console.WriteLine($"        {html}");
    }
}
