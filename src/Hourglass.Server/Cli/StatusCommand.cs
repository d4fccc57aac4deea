using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Hourglass.Server.Cli;

/// <summary>
/// <c>hourglass status [--tenant T]</c>: where the agent stands, read from one snapshot of the database — the kill
/// switch and the workers' last hour, then one summary row per tenant, or one tenant in detail (its last runs,
/// engagement compliance, open approvals, policy violations of the last 24 hours, the order queue and its open
/// exceptions, the outbox with its held and suppressed messages, and whether and why it is paused).
/// </summary>
/// <remarks>
/// A file per responsibility: the command's option and entry (this file); the console and the formats
/// (<c>StatusCommand.Console.cs</c>); the kill switch and the workers (<c>.Workers.cs</c>); the tenants' summary and one
/// tenant's header (<c>.Tenants.cs</c>); one tenant's sections — runs and reflection (<c>.Runs.cs</c>), engagement
/// compliance and approvals (<c>.Compliance.cs</c>), policy violations (<c>.Policies.cs</c>), the order queue and
/// exceptions (<c>.Orders.cs</c>), the outbox (<c>.Outbox.cs</c>); and what it reads, in one snapshot
/// (<c>.Snapshot.cs</c>).
/// </remarks>
internal static partial class StatusCommand
{
    public static Command Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string?>("--tenant") { Description = "One tenant in detail (its id, or its exact name); without it, one summary row per tenant." };
        var command = new Command("status",
            "Where the agent stands: the kill switch, the workers' last hour, and each tenant's last run, engagement compliance, approvals, " +
            "policy violations (24 h), order queue and exceptions; --tenant for one tenant in detail.")
        {
            tenant,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            Guid? tenantId = parse.GetValue(tenant) is { } name ? await CycleCommands.ResolveTenantAsync(target.DataSource, name, cancellationToken) : null;
            var snapshot = await StatusSnapshot.ReadAsync(target.DataSource, tenantId, cancellationToken);
            var console = CreateConsole();
            console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Hourglass status at {snapshot.Now:yyyy-MM-dd HH:mm:ss} UTC (database clock); database {target.Description}."));
            PrintGlobal(console, snapshot);
            if (tenantId is { } id)
            {
                PrintTenant(console, snapshot, snapshot.Tenants.SingleOrDefault(t => t.Id == id)
                    ?? throw new HourglassException($"--tenant: tenant {id} was deleted while its status was being read"));
            }
            else
            {
                PrintSummary(console, snapshot);
            }

            console.Profile.Out.Writer.Flush();
            return 0;
        });
        return command;
    }
}
