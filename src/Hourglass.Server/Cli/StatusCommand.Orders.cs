using Spectre.Console;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    private static readonly string[] s_queueStatuses = ["pending", "processing", "validated", "needs_approval", "exception", "cancelled"];

    // The order queue by status.
    private static void PrintQueue(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine("Order queue");
        var queue = snapshot.Queue.GetValueOrDefault(tenant.Id) ?? [];
        var queueTable = NewTable("status", ">orders");
        foreach (var status in s_queueStatuses)
        {
            AddRow(queueTable, status, N(queue.GetValueOrDefault(status)));
        }

        console.Write(queueTable);
    }

    // The open order exceptions by type (still open or in review).
    private static void PrintExceptions(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine("Open order exceptions");
        var exceptions = snapshot.Exceptions.GetValueOrDefault(tenant.Id) ?? [];
        if (exceptions.Count == 0)
        {
            console.WriteLine("None.");
            return;
        }

        var exceptionTable = NewTable("type", ">open", ">in review");
        foreach (var exception in exceptions)
        {
            AddRow(exceptionTable, exception.Type, N(exception.Open), N(exception.InReview));
        }

        AddRow(exceptionTable, "total", N(exceptions.Sum(e => e.Open)), N(exceptions.Sum(e => e.InReview)));
        console.Write(exceptionTable);
    }
}
