using Hourglass.Storage;

namespace Hourglass.Server.Cli;

/// <summary>Prints a verification report in the shape of the customer's migration report.</summary>
internal static class VerificationPrinter
{
    public static void Print(VerificationReport report, TextWriter output)
    {
        output.WriteLine($"Verification of {report.Server}");
        foreach (var section in report.Checks.GroupBy(c => c.Section))
        {
            var passed = section.Count(c => c.Passed);
            output.WriteLine();
            output.WriteLine($"{section.Key} ({passed}/{section.Count()})");
            foreach (var check in section)
            {
                output.WriteLine($"  {(check.Passed ? "✅" : "❌")} {check.Subject,-58} {check.Detail}");
            }
        }

        output.WriteLine();
        if (report.Passed)
        {
            output.WriteLine($"PASS: all {report.Checks.Count} checks passed.");
            return;
        }

        var failures = report.Failures.ToList();
        output.WriteLine($"FAIL: {failures.Count} of {report.Checks.Count} checks failed:");
        foreach (var failure in failures)
        {
            output.WriteLine($"  - {failure.Section}: {failure.Subject}: {failure.Detail}");
        }
    }
}
