using System.CommandLine;
using System.Globalization;
using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.Server.Api;
using Hourglass.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Hourglass.Server.Cli;

/// <summary>The scheduler's commands: worker, run, pause, resume, schedule.</summary>
internal static class CycleCommands
{
    private static readonly Option<string> s_tenant = new("--tenant")
    {
        Description = "The tenant: its id, or its exact name.",
        Required = true,
    };

    private static readonly Option<string?> s_optionalTenant = new("--tenant")
    {
        Description = "One tenant (id or exact name); without it, all tenants.",
    };

    public static IEnumerable<Command> Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        yield return Worker(options, loggers);
        yield return Run(options, loggers);
        yield return Pause(options, loggers);
        yield return Resume(options, loggers);
        yield return Schedule(options, loggers);
    }

    private static Command Worker(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var lease = new Option<int>("--lease-minutes") { Description = "Lease length; renewed every third of it.", DefaultValueFactory = _ => 2 };
        var poll = new Option<int>("--poll-seconds") { Description = "Wait between looks for due tenants when idle.", DefaultValueFactory = _ => 10 };
        var concurrency = new Option<int>("--concurrency") { Description = "Cycles this worker runs at once.", DefaultValueFactory = _ => 4 };
        var command = new Command("worker", "Run the worker loop: claim due tenants and run their cycles until Ctrl+C. Run several, anywhere, against one database.")
        {
            lease, poll, concurrency,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var leaseMinutes = Positive(parse.GetValue(lease), "--lease-minutes");
            var pollSeconds = Positive(parse.GetValue(poll), "--poll-seconds");
            var maxConcurrent = Positive(parse.GetValue(concurrency), "--concurrency");
            var mailboxPoll = CycleComposition.MailboxPollInterval(Environment.GetEnvironmentVariable(CycleComposition.MailboxPollVariable));
            using var loggerFactory = loggers(parse);
            var unsubscribe = UnsubscribeEndpoints.FromEnvironment(ProductClock.Time, loggerFactory);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var worker = CycleComposition.CreateWorker(target.DataSource, ProductClock.Time,
                new CycleWorkerOptions { LeaseMinutes = leaseMinutes, PollInterval = TimeSpan.FromSeconds(pollSeconds), MaxConcurrentCycles = maxConcurrent },
                Narrative.FromEnvironment(loggerFactory), loggerFactory);
            Console.WriteLine($"Worker {worker.WorkerId} on {target.Description}; Ctrl+C stops it.");
            var dispatch = CycleComposition.CreateDispatcherLoop(target.DataSource, worker.WorkerId, ProductClock.Time, loggerFactory, unsubscribe);
            var mailboxes = CycleComposition.CreateMailboxLoop(target.DataSource, ProductClock.Time, mailboxPoll, loggerFactory,
                Narrative.ReplyClassifierFromEnvironment(ProductClock.Time, loggerFactory));
            await Task.WhenAll(worker.RunAsync(cancellationToken), dispatch(cancellationToken), mailboxes(cancellationToken));
            return 0;
        });
        return command;
    }

    private static Command Run(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Record the plan and the policy decisions only: no side effects." };
        var hour = new Option<string?>("--hour") { Description = "With --dry-run: the hour to plan for (ISO 8601, e.g. 2026-03-01T14:00Z), under today's policies." };
        var command = new Command("run", "Run one tenant's cycle now, or a dry run (a what-if, also for a past hour).") { s_tenant, dryRun, hour };
        command.SetAction(async (parse, cancellationToken) =>
        {
            DateTimeOffset? at = null;
            if (parse.GetValue(hour) is { } text)
            {
                if (!parse.GetValue(dryRun))
                {
                    throw new HourglassException("--hour: only a dry run can be for another hour (add --dry-run)");
                }

                at = DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed)
                    ? TimeBounds.Checked("--hour", parsed)
                    : throw new HourglassException($"--hour: '{text}' is not an ISO 8601 time (e.g. 2026-03-01T14:00Z)");
            }

            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenant = await ResolveTenantAsync(target.DataSource, parse.GetValue(s_tenant)!, cancellationToken);
            var worker = CycleComposition.CreateWorker(target.DataSource, ProductClock.Time, summaries: Narrative.FromEnvironment(loggerFactory), loggers: loggerFactory);
            var result = await worker.RunManualAsync(tenant, parse.GetValue(dryRun), at, cancellationToken);
            await PrintRunAsync(target.DataSource, result, cancellationToken);
            return result.Status == "failed" ? 1 : 0;
        });
        return command;
    }

    private static Command Pause(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var reason = new Option<string>("--reason") { Description = "Why: shown with the pause everywhere.", Required = true };
        var command = new Command("pause", "Kill switch: stop all tenants' cycles (or one tenant's) before their next side effect.") { s_optionalTenant, reason };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var control = new TenantControl(target.DataSource, ProductClock.Time);
            if (parse.GetValue(s_optionalTenant) is { } name)
            {
                var tenant = await ResolveTenantAsync(target.DataSource, name, cancellationToken);
                await control.PauseTenantAsync(tenant, parse.GetValue(reason)!, Operator, cancellationToken);
                Console.WriteLine($"Paused tenant {tenant}.");
            }
            else
            {
                await control.PauseAllAsync(parse.GetValue(reason)!, Operator, cancellationToken);
                Console.WriteLine("Paused all tenants.");
            }

            return 0;
        });
        return command;
    }

    private static Command Resume(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var command = new Command("resume", "Lift the kill switch for all tenants (or one tenant: also forgets its failures).") { s_optionalTenant };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var control = new TenantControl(target.DataSource, ProductClock.Time);
            if (parse.GetValue(s_optionalTenant) is { } name)
            {
                var tenant = await ResolveTenantAsync(target.DataSource, name, cancellationToken);
                await control.ResumeTenantAsync(tenant, cancellationToken);
                Console.WriteLine($"Resumed tenant {tenant}.");
            }
            else
            {
                await control.ResumeAllAsync(Operator, cancellationToken);
                Console.WriteLine("Resumed all tenants.");
            }

            return 0;
        });
        return command;
    }

    private static Command Schedule(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var cron = new Option<string>("--cron") { Description = "Five-field cron, e.g. '0 * * * *' (hourly) or '0 9-17 * * 1-5'.", Required = true };
        var zone = new Option<string?>("--timezone") { Description = "IANA zone the cron is read in; default: the tenant's." };
        var command = new Command("schedule", "Set when a tenant's cycles run.") { s_tenant, cron, zone };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenant = await ResolveTenantAsync(target.DataSource, parse.GetValue(s_tenant)!, cancellationToken);
            var next = await new TenantControl(target.DataSource, ProductClock.Time).SetScheduleAsync(tenant, parse.GetValue(cron)!, parse.GetValue(zone), cancellationToken);
            Console.WriteLine($"Tenant {tenant}: next cycle at {next:yyyy-MM-dd HH:mm} UTC.");
            return 0;
        });
        return command;
    }

    private static string Operator => $"cli:{Environment.UserName}";

    private static int Positive(int value, string flag) =>
        value > 0 ? value : throw new HourglassException($"{flag}: must be a positive number (got {value})");

    internal static async Task<Guid> ResolveTenantAsync(NpgsqlDataSource dataSource, string idOrName, CancellationToken cancellationToken)
    {
        var ids = await TenancyStore.TenantIdsByIdOrNameAsync(dataSource, idOrName.Trim(), cancellationToken);

        return ids.Count switch
        {
            0 => throw new HourglassException($"--tenant: no tenant has the id or name '{idOrName}'"),
            2 when ids[0].ToString() != idOrName.Trim() => throw new HourglassException($"--tenant: several tenants are named '{idOrName}'; give the id"),
            _ => ids[0],
        };
    }

    private static async Task PrintRunAsync(NpgsqlDataSource dataSource, CycleResult result, CancellationToken cancellationToken)
    {
        Console.WriteLine($"Run {result.RunId}: {result.Status}; {result.ActionsPlanned} planned, {result.ActionsTaken} taken, " +
                          $"{result.ActionsBlocked} blocked, {result.ActionsFailed} failed.");
        if (result.Error is not null)
        {
            Console.WriteLine($"  {result.Error}");
        }

        if (await new RunsStore(dataSource).SummaryAsync(result.RunId, cancellationToken) is { } summary)
        {
            Console.WriteLine($"  {summary}");
        }
    }
}
