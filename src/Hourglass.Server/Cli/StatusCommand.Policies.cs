using Spectre.Console;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    private static readonly string[] s_severities = ["info", "warning", "error", "critical"];

    // Policy violations of the last 24 hours by severity, and how many were blocked.
    private static void PrintViolations(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine("Policy violations, last 24 hours");
        var violations = snapshot.Violations.GetValueOrDefault(tenant.Id) ?? [];
        var violationTable = NewTable("severity", ">violations", ">blocked");
        foreach (var severity in s_severities)
        {
            var count = violations.GetValueOrDefault(severity);
            AddRow(violationTable, severity, N(count.Count), N(count.Blocked));
        }

        AddRow(violationTable, "total", N(violations.Sum(v => v.Value.Count)), N(violations.Sum(v => v.Value.Blocked)));
        console.Write(violationTable);
    }
}
