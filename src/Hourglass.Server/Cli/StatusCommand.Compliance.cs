using Spectre.Console;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    // Engagement compliance as the last refresh left it.
    private static void PrintEngagement(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine("Engagement (as of the last compliance refresh)");
        var engagement = snapshot.Engagement.GetValueOrDefault(tenant.Id) ?? EngagementCounts.None;
        var clocks = NewTable(">clocks", ">compliant", ">due soon", ">overdue", ">compliance %");
        AddRow(clocks, N(engagement.Clocks), N(engagement.Compliant), N(engagement.DueSoon), N(engagement.Overdue), Percent(engagement.CompliancePct));
        console.Write(clocks);
    }

    // Open approval cards, those past due and the next due.
    private static void PrintApprovals(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine("Approvals");
        var approvals = snapshot.Approvals.GetValueOrDefault(tenant.Id) ?? new ApprovalCounts(0, 0, null);
        var approvalTable = NewTable(">open", ">past due", "next due");
        AddRow(approvalTable, N(approvals.Open), N(approvals.PastDue),
            approvals.NextDueAt is { } next ? $"{Time(next)} ({Ago(snapshot.Now, next)})" : "-");
        console.Write(approvalTable);
    }
}
