using System.Globalization;
using Spectre.Console;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    private static void PrintSummary(IAnsiConsole console, StatusSnapshot snapshot)
    {
        console.WriteLine();
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Tenants: {snapshot.Tenants.Count:N0}, {snapshot.Tenants.Count(t => t.Paused):N0} paused. Taken and blocked: the last run's actions; orders queued: pending or processing; exceptions: open or in review. 'hourglass status --tenant T' for one in detail."));
        if (snapshot.Tenants.Count == 0)
        {
            console.WriteLine("No tenants yet.");
            return;
        }

        var table = NewTable("tenant", "state", "last run", "ago", ">taken", ">blocked", ">clocks", ">overdue", ">due soon", ">compliance %",
            ">approvals", ">violations 24h", ">orders queued", ">exceptions", ">messages queued");
        foreach (var tenant in snapshot.Tenants)
        {
            var run = snapshot.LastRuns.GetValueOrDefault(tenant.Id);
            var engagement = snapshot.Engagement.GetValueOrDefault(tenant.Id) ?? EngagementCounts.None;
            var queue = snapshot.Queue.GetValueOrDefault(tenant.Id);
            table.AddRow(
                new Text(tenant.Name),
                tenant.Paused ? new Text(Truncate($"paused: {tenant.PausedReason}", 40), new Style(Color.Red)) : new Text("active"),
                run is null ? new Text("-") : StatusText(run.Status),
                new Text(run is null ? "-" : Ago(snapshot.Now, run.StartedAt)),
                new Text(run is null ? "-" : N(run.Taken)),
                new Text(run is null ? "-" : N(run.Blocked)),
                new Text(N(engagement.Clocks)),
                new Text(N(engagement.Overdue)),
                new Text(N(engagement.DueSoon)),
                new Text(Percent(engagement.CompliancePct)),
                new Text(N(snapshot.Approvals.GetValueOrDefault(tenant.Id)?.Open ?? 0)),
                new Text(N(snapshot.Violations.GetValueOrDefault(tenant.Id)?.Sum(v => v.Value.Count) ?? 0)),
                new Text(N((queue?.GetValueOrDefault("pending") ?? 0) + (queue?.GetValueOrDefault("processing") ?? 0))),
                new Text(N(snapshot.Exceptions.GetValueOrDefault(tenant.Id)?.Sum(e => e.Open + e.InReview) ?? 0)),
                new Text(N(snapshot.Messages.GetValueOrDefault(tenant.Id)?.Where(m => m.Key is "pending" or "sending").Sum(m => m.Value.Count) ?? 0)));
        }

        console.Write(table);
    }

    private static void PrintTenant(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine($"Tenant {tenant.Name} ({tenant.Id}), time zone {tenant.Timezone}");
        if (tenant.Paused)
        {
            console.Write(new Text(
                string.Create(CultureInfo.InvariantCulture, $"State: PAUSED since {Time(tenant.PausedAt)} ({Ago(snapshot.Now, tenant.PausedAt)}) by {tenant.PausedBy ?? "?"}: {tenant.PausedReason}"),
                new Style(Color.Red, decoration: Decoration.Bold)));
            console.WriteLine();
            console.WriteLine($"Resume with 'hourglass resume --tenant {tenant.Id}'.");
        }
        else
        {
            console.WriteLine(snapshot.Control.Paused ? "State: active, but held by the global kill switch." : "State: active.");
        }

        var claim = tenant.ClaimedBy is { } claimedBy ? $"; claimed by {claimedBy}" : "";
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Schedule: '{tenant.Cron}' in {tenant.ScheduleZone ?? tenant.Timezone}; next cycle due {Time(tenant.NextDueAt)} ({Ago(snapshot.Now, tenant.NextDueAt)}); {tenant.ConsecutiveFailures} consecutive failure(s) (auto-pause after {tenant.AutoPauseAfter}){claim}."));

        PrintRuns(console, snapshot, tenant);
        PrintReflection(console, snapshot);
        PrintEngagement(console, snapshot, tenant);
        PrintApprovals(console, snapshot, tenant);
        PrintViolations(console, snapshot, tenant);
        PrintQueue(console, snapshot, tenant);
        PrintOutbox(console, snapshot, tenant);
        PrintInbound(console, snapshot, tenant);
        PrintExceptions(console, snapshot, tenant);
    }
}
