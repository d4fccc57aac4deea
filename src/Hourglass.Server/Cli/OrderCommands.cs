using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Hourglass.Cycles;
using Hourglass.Orders;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Hourglass.Server.Cli;

/// <summary>The order processor's commands: process the queue, list it and its exceptions, and the exception workflow.</summary>
internal static class OrderCommands
{
    public static IEnumerable<Command> Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        yield return new Command("orders", "Order validation: the queue, auto-fixes, exceptions and their workflow.")
        {
            Process(options, loggers), Queue(options, loggers), Exceptions(options, loggers),
            Review(options, loggers), Resolve(options, loggers, "resolve"), Resolve(options, loggers, "dismiss"), OverrideCredit(options, loggers),
        };
    }

    private static Command Process(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant's orders (default: every tenant's)." };
        var processors = new Option<int>("--processors") { Description = "Processors working the queue side by side (1-32).", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch-size") { Description = "Orders claimed and written together (1-1000).", DefaultValueFactory = _ => 100 };
        var max = new Option<int>("--max") { Description = "Stop after this many orders (default: until the queue is empty).", DefaultValueFactory = _ => int.MaxValue };
        var command = new Command("process", "Drain the order queue now: validate, auto-fix within policy, raise exceptions. Safe beside running workers.")
        {
            tenant, processors, batch, max,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var count = parse.GetValue(processors);
            if (count is < 1 or > 32)
            {
                throw new HourglassException($"--processors must be between 1 and 32 (got {count})");
            }

            var size = parse.GetValue(batch);
            if (size is < 1 or > 1000)
            {
                throw new HourglassException($"--batch-size must be between 1 and 1000 (got {size})");
            }

            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            Guid? tenantId = parse.GetValue(tenant) is { } name ? await CycleCommands.ResolveTenantAsync(target.DataSource, name, cancellationToken) : null;

            // The kill switches hold the processor too (claim_orders skips paused tenants): say so instead of a bare "0 processed".
            var control = new TenantControl(target.DataSource, ProductClock.Time);
            var pause = tenantId is { } one ? await control.ReadPauseAsync(one, cancellationToken) : await control.ReadGlobalPauseAsync(cancellationToken);
            if (pause is not null)
            {
                Console.WriteLine($"Nothing processed: {pause.Describe(tenantId ?? Guid.Empty)}. The orders wait, untouched, until '{pause.ResumeCommand(tenantId ?? Guid.Empty)}'.");
                return 0;
            }

            var limit = parse.GetValue(max);
            var clock = Stopwatch.StartNew();
            var drainers = Enumerable.Range(0, count)
                .Select(i => new OrderProcessor(target.DataSource, new OrderProcessorOptions { WorkerId = $"{Environment.MachineName}:{Environment.ProcessId}:orders:{i}", BatchSize = size }))
                .ToList();
            var results = Console.IsOutputRedirected
                ? await Task.WhenAll(drainers.Select(p => p.DrainAsync(tenantId, null, Math.Max(1, limit / count), cancellationToken)))
                : await DrainWithProgressAsync(target, drainers, tenantId, limit, cancellationToken);
            var claimed = results.Sum(r => r.Claimed);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{claimed} order(s) processed in {clock.Elapsed.TotalSeconds:0.0} s: {results.Sum(r => r.Validated)} validated, {results.Sum(r => r.NeedsApproval)} need approval, {results.Sum(r => r.Exceptions)} exception(s); {results.Sum(r => r.Fixes)} fix(es) applied."));
            if (results.Sum(r => r.LostClaims) is > 0 and var lost)
            {
                Console.WriteLine($"{lost} claim(s) lapsed or their orders changed while being processed: they are processed again.");
            }

            if (results.Sum(r => r.Held) is > 0 and var held)
            {
                Console.WriteLine($"{held} order(s) were claimed before their tenant was paused: nothing of them was written, and they wait for the resume.");
            }

            await PrintPausedTenantsAsync(target, tenantId, cancellationToken);
            return 0;
        });
        return command;
    }

    // Paused tenants' orders are not claimed: name the tenants and how many orders of theirs wait.
    private static async Task PrintPausedTenantsAsync(DatabaseTarget target, Guid? tenantId, CancellationToken cancellationToken)
    {
        foreach (var held in await OrderStore.HeldByPauseAsync(target.DataSource, tenantId, cancellationToken))
        {
            var pause = new PauseState(false, held.PausedAt, held.PausedBy, held.PausedReason);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Held: {held.Orders} order(s) of {held.TenantName}: {pause.Describe(held.TenantId)}; they wait until '{pause.ResumeCommand(held.TenantId)}'."));
        }
    }

    // A terminal sees the orders processed so far against those claimable when processing began (more may arrive);
    // redirected output gets only the summary line.
    private static async Task<OrderPassResult[]> DrainWithProgressAsync(DatabaseTarget target, IReadOnlyList<OrderProcessor> processors, Guid? tenantId, int limit,
        CancellationToken cancellationToken)
    {
        var expected = Math.Min(await OrderStore.ClaimableCountAsync(target.DataSource, tenantId, cancellationToken), limit);
        var processed = 0L;
        return await AnsiConsole.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(Describe(0, expected), maxValue: Math.Max(1, expected));
                void Report(int batch)
                {
                    var done = Interlocked.Add(ref processed, batch);
                    task.MaxValue = Math.Max(task.MaxValue, done);
                    task.Value = done;
                    task.Description = Describe(done, Math.Max(expected, done));
                }

                var results = await Task.WhenAll(processors.Select(p => p.DrainAsync(tenantId, null, Math.Max(1, limit / processors.Count), cancellationToken, new Progress<int>(Report))));
                task.Value = task.MaxValue;
                return results;
            });

        static string Describe(long done, long of) => string.Create(CultureInfo.InvariantCulture, $"Orders processed: {done:N0} of {of:N0}");
    }

    private static Command Queue(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };
        var status = new Option<string?>("--status") { Description = "Only entries in this status." };
        status.AcceptOnlyFromAmong("pending", "processing", "validated", "needs_approval", "exception", "cancelled");
        var command = new Command("queue", "Show the tenant's order queue: each order's status and checks.") { tenant, status };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            Console.WriteLine($"{"order",-36}  {"po",-10} {"account",-20} {"total",12}  {"status",-14} {"pricing",-8} {"credit",-8} {"reqs",-8} fixes");
            var rows = 0;
            foreach (var q in await OrderStore.QueueAsync(target.DataSource, tenantId, parse.GetValue(status), 200, cancellationToken))
            {
                rows++;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{q.OrderId}  {q.PoNumber,-10} {Truncate(q.Account, 20),-20} {q.Total,9:0.00} {q.Currency}  {q.Status,-14} {q.PricingStatus,-8} {q.CreditStatus,-8} {q.RequirementsStatus,-8} {q.AutoFixAttempts}"));
            }

            if (rows == 0)
            {
                Console.WriteLine("The queue is empty.");
            }

            return 0;
        });
        return command;
    }

    private static Command Exceptions(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };
        var all = new Option<bool>("--all") { Description = "Also resolved and dismissed ones (the last 30 days)." };
        var command = new Command("exceptions", "List the tenant's order exceptions: open and in review first.") { tenant, all };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            var rows = 0;
            foreach (var e in await OrderStore.ExceptionsAsync(target.DataSource, tenantId, parse.GetValue(all), cancellationToken))
            {
                rows++;
                Console.WriteLine($"{e.Id}  order {e.OrderId}  {e.ExceptionType} ({e.Severity})  [{e.ResolutionStatus}{(e.ResolvedBy.Length > 0 ? $" by {e.ResolvedBy}: {e.ResolutionNotes}" : "")}]");
                Console.WriteLine($"    {e.Message}");
            }

            if (rows == 0)
            {
                Console.WriteLine("No open order exceptions.");
            }

            return 0;
        });
        return command;
    }

    private static Command Review(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var exception = new Option<Guid>("--exception") { Description = "The exception's id.", Required = true };
        var by = new Option<string>("--by") { Description = ActingPerson.Description, Required = true };
        var command = new Command("review", "Take an open exception into review.") { exception, by };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            await ActingPerson.CallAsync(target.DataSource, parse.GetValue(by)!, OrderStore.ReviewExceptionAsSql,
                [parse.GetValue(exception)], cancellationToken);
            Console.WriteLine($"Exception {parse.GetValue(exception)} is in review.");
            return 0;
        });
        return command;
    }

    private static Command Resolve(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers, string verb)
    {
        var exception = new Option<Guid>("--exception") { Description = "The exception's id.", Required = true };
        var by = new Option<string>("--by") { Description = ActingPerson.Description, Required = true };
        var notes = new Option<string>("--notes") { Description = "What was done, or why it is dismissed (recorded).", Required = true };
        var command = new Command(verb, verb == "resolve"
            ? "Resolve an exception: the order is validated again (the fix attempts start over)."
            : "Dismiss an exception: the order leaves automatic processing; a person handles it.")
        {
            exception, by, notes,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            await ActingPerson.CallAsync(target.DataSource, parse.GetValue(by)!, OrderStore.ResolveExceptionAsSql,
                [parse.GetValue(exception), verb == "resolve" ? "resolved" : "dismissed", parse.GetValue(notes)!], cancellationToken);
            Console.WriteLine(verb == "resolve"
                ? $"Exception {parse.GetValue(exception)} resolved; the order is queued to be validated again."
                : $"Exception {parse.GetValue(exception)} dismissed; the order is out of automatic processing.");
            return 0;
        });
        return command;
    }

    private static Command OverrideCredit(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var order = new Option<Guid>("--order") { Description = "The order's id.", Required = true };
        var by = new Option<string>("--by") { Description = ActingPerson.Description, Required = true };
        var reason = new Option<string>("--reason") { Description = "Why (recorded).", Required = true };
        var command = new Command("override-credit", "Override the credit check for an order, with a reason; it is validated again with the override.") { order, by, reason };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            await ActingPerson.CallAsync(target.DataSource, parse.GetValue(by)!, OrderStore.OverrideCreditAsSql,
                [parse.GetValue(order), parse.GetValue(reason)!], cancellationToken);
            Console.WriteLine($"Credit overridden for order {parse.GetValue(order)}; it is queued to be validated again.");
            return 0;
        });
        return command;
    }

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";
}
