using System.Text.Json.Nodes;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary><c>hourglass simulate</c> as a user runs it: impossible worlds refused before anything starts; a tiny world run end to end.</summary>
public sealed class SimulateCommandTests
{
    [Theory]
    [InlineData("--contacts", "0", "--contacts must be between 1 and 100000 (got 0)")]
    [InlineData("--email-daily-cap", "-5", "--email-daily-cap must be between 0 and 1000000 (got -5)")]
    [InlineData("--fixable-share", "1.5", "--fixable-share must be between 0 and 1 (got 1.5)")]
    [InlineData("--complaint-rate", "2", "--complaint-rate must be between 0 and 1 (got 2)")]
    [InlineData("--out-of-office-share", "-0.1", "--out-of-office-share must be between 0 and 1 (got -0.1)")]
    [InlineData("--start", "yesterday", "--start must be an ISO-8601 time")]
    [InlineData("--database", "postgresql://u@127.0.0.1/x", "simulate runs in a throwaway PostgreSQL of its own")]
    public async Task ImpossibleWorld_RefusedInOneLineBeforeAnythingRuns(string option, string value, string expected)
    {
        var output = Path.Combine(Path.GetTempPath(), $"hg-sim-{Guid.NewGuid():N}");

        var result = await HourglassProcess.RunAsync("simulate", option, value, "--out", output);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output), "nothing may be written for a refused world");
    }

    [Fact]
    public async Task UnknownOption_Refused()
    {
        var result = await HourglassProcess.RunAsync("simulate", "--tenant-count", "3");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--tenant-count", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TinyWorld_RunsEndToEnd_WritesJsonAndHtml()
    {
        var output = Path.Combine(Path.GetTempPath(), $"hg-sim-{Guid.NewGuid():N}");
        try
        {
            var result = await HourglassProcess.RunAsync("simulate", "--tenants", "1", "--contacts", "60", "--days", "3", "--out", output, "--concurrency", "1",
                "--dead-address-share", "0.2", "--soft-bounce-rate", "0.1", "--complaint-rate", "0.01", "--unsubscribe-rate", "0.02", "--out-of-office-share", "0.5");

            Assert.True(result.ExitCode is 0 or 4, $"exit {result.ExitCode}: {result.StandardError}");
            Assert.Contains("Simulated 3 days of 1 tenant(s) x 60 contacts (seed 42)", result.StandardOutput, StringComparison.Ordinal);
            var report = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(output, "simulation-report.json")))!;
            Assert.Equal(72, report["compliance"]!["hourly"]!.AsArray().Count);
            Assert.Equal(72L, (long)report["cycles"]!["runs"]!["completed"]!);
            // The world's answer rates are the flags given.
            var settings = report["settings"]!;
            Assert.Equal((0.2, 0.1, 0.01, 0.02, 0.5), ((double)settings["dead_address_share"]!, (double)settings["soft_bounce_rate"]!,
                (double)settings["complaint_rate"]!, (double)settings["unsubscribe_rate"]!, (double)settings["out_of_office_share"]!));
            var goalsMet = report["goals"]!.AsArray().All(g => (bool)g!["met"]!);
            Assert.Equal(goalsMet ? 0 : 4, result.ExitCode);
            Assert.Contains("<svg", await File.ReadAllTextAsync(Path.Combine(output, "simulation-report.html")), StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(output))
            {
                Directory.Delete(output, recursive: true);
            }
        }
    }
}
