using System.Globalization;
using Spectre.Console;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    // The tenant's last runs.
    private static void PrintRuns(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine("Last runs");
        var runs = snapshot.RecentRuns.Where(r => r.TenantId == tenant.Id).ToList();
        if (runs.Count == 0)
        {
            console.WriteLine("No runs yet.");
        }
        else
        {
            var table = NewTable("started", "ago", "status", "trigger", ">planned", ">taken", ">blocked", ">took", "worker", "note");
            foreach (var run in runs)
            {
                table.AddRow(new Text(Time(run.StartedAt)), new Text(Ago(snapshot.Now, run.StartedAt)), StatusText(run.Status), new Text(run.Trigger),
                    new Text(N(run.Planned)), new Text(N(run.Taken)), new Text(N(run.Blocked)),
                    new Text(run.CompletedAt is { } done ? Duration(done - run.StartedAt) : "-"), new Text(run.WorkerId ?? "-"),
                    new Text(Truncate(string.Join("; ", new[] { run.DryRun ? "dry run" : null, run.Error }.OfType<string>()), 80)));
            }

            console.Write(table);
        }
    }

    // The tenant's latest hourly reflection.
    private static void PrintReflection(IAnsiConsole console, StatusSnapshot snapshot)
    {
        console.WriteLine();
        if (snapshot.LastReflection is { } reflection)
        {
            // The hour's reflection rolls up every run of the hour (each run's own is in its run record).
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Last reflection: hour {Time(reflection.Hour)} UTC, {reflection.Runs} run{(reflection.Runs == 1 ? "" : "s")}"));
            console.Write(new Text(reflection.Summary ?? "(no summary written)"));
            console.WriteLine();
        }
        else
        {
            console.WriteLine("Last reflection: none yet.");
        }
    }
}
