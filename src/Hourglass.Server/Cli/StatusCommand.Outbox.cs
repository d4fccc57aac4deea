using System.Globalization;
using Spectre.Console;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    private static readonly string[] s_messageStatuses = ["pending", "sending", "sent", "failed", "cancelled", "suppressed"];

    // The tenant's messages by status; those held (by a kill switch, or until their send window opens); and those
    // suppressed at the moment of sending, by reason (docs/outbox.md).
    private static void PrintOutbox(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine("Outbox");
        var messages = snapshot.Messages.GetValueOrDefault(tenant.Id) ?? [];
        var table = NewTable("message status", ">messages", ">held for the send window");
        foreach (var status in s_messageStatuses)
        {
            var count = messages.GetValueOrDefault(status);
            AddRow(table, status, N(count.Count), status == "pending" ? N(count.Held) : "");
        }

        console.Write(table);
        var queued = messages.Where(m => m.Key is "pending" or "sending").Sum(m => m.Value.Count);
        if (queued > 0 && (tenant.Paused || snapshot.Control.Paused))
        {
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{queued:N0} queued message(s) held by the kill switch: neither sent nor failed, their attempts untouched; they go out after the resume if still allowed."));
        }

        var suppressed = snapshot.Suppressed.GetValueOrDefault(tenant.Id) ?? [];
        if (suppressed.Count == 0)
        {
            return;
        }

        console.WriteLine();
        console.WriteLine("Suppressed at the moment of sending, by reason");
        var reasons = NewTable("reason", ">messages", "last", "last reason");
        foreach (var reason in suppressed)
        {
            AddRow(reasons, reason.Code, N(reason.Count), $"{Time(reason.LastAt)} ({Ago(snapshot.Now, reason.LastAt)})", Truncate(reason.LastReason, 80));
        }

        console.Write(reasons);
    }
}
