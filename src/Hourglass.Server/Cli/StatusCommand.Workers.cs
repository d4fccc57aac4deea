using System.Globalization;
using Spectre.Console;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    private static void PrintGlobal(IAnsiConsole console, StatusSnapshot snapshot)
    {
        console.WriteLine();
        var control = snapshot.Control;
        if (control.Paused)
        {
            console.Write(new Text(
                string.Create(CultureInfo.InvariantCulture, $"Global kill switch: PAUSED since {Time(control.SetAt)} ({Ago(snapshot.Now, control.SetAt)}) by {control.SetBy ?? "?"}: {control.Reason}"),
                new Style(Color.Red, decoration: Decoration.Bold)));
            console.WriteLine();
            console.WriteLine("No worker claims a tenant or takes an action, no queued message is sent and no order is processed until 'hourglass resume'.");
        }
        else
        {
            console.WriteLine("Global kill switch: off (cycles run).");
        }

        console.WriteLine();
        console.WriteLine("Workers: cycles started in the last hour (dry runs aside), and the tenants each has claimed now");
        if (snapshot.Workers.Count == 0)
        {
            console.WriteLine("No cycle started in the last hour, and no tenant is claimed.");
            return;
        }

        var table = NewTable("worker", ">runs", ">completed", ">partial", ">failed", ">skipped", ">abandoned", ">running", ">claims now", "last run started");
        foreach (var worker in snapshot.Workers)
        {
            AddRow(table, worker.WorkerId.Length == 0 ? "(none)" : worker.WorkerId, N(worker.Runs), N(worker.Completed), N(worker.Partial), N(worker.Failed),
                N(worker.Skipped), N(worker.Abandoned), N(worker.Running), N(worker.Claims),
                worker.LastStartedAt is { } last ? $"{Time(last)} ({Ago(snapshot.Now, last)})" : "-");
        }

        console.Write(table);
    }
}
