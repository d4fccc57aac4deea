using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>
/// Every time the command line takes is range-checked (TimeBounds: 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z): year 1
/// or 9999 is a one-line error naming the option and the range, before anything runs; a touch's own time before 1970
/// is that line's error.
/// </summary>
public sealed class TimeOptionTests : DatabaseTest
{
    private const string Range = "must be from 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z";

    private Guid _contact;

    protected override async Task SeedAsync()
    {
        var tenant = await Db.CreateTenantAsync("Timely Co");
        _contact = await Db.CreateContactAsync(tenant, await Db.CreateAccountAsync(tenant, "Initech"), "Pat Doe");
    }

    [Theory]
    [InlineData("--hour: " + Range + " (got 0001-01-01T00:00:00+00:00)", "run", "--tenant", "Timely Co", "--dry-run", "--hour", "0001-01-01T00:00Z")]
    [InlineData("--hour: " + Range + " (got 9999-12-31T23:00:00+00:00)", "run", "--tenant", "Timely Co", "--dry-run", "--hour", "9999-12-31T23:00Z")]
    [InlineData("--at: " + Range + " (got 9999-12-31T00:00:00+00:00)", "policies", "explain", "--tenant", "Timely Co", "--kind", "send_message", "--at", "9999-12-31T00:00:00Z")]
    [InlineData("--at: " + Range + " (got 1969-12-31T23:59:59+00:00)", "policies", "explain", "--tenant", "Timely Co", "--kind", "send_message", "--at", "1969-12-31T23:59:59Z")]
    [InlineData("--since: " + Range + " (got 0001-01-01T00:00:00+00:00)", "policies", "violations", "--tenant", "Timely Co", "--since", "0001-01-01")]
    public async Task TimeOutOfRange_OneLineNamingTheOptionAndTheRange_NothingRuns(string expected, params string[] arguments)
    {
        var result = await HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);

        Assert.True(result.ExitCode == 1, $"exit {result.ExitCode}: {result.StandardError}");
        Assert.Equal($"hourglass: {expected}", result.StandardError.Trim());
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.agent_autonomous_runs"));
    }

    [Fact]
    public async Task SimulateStartOutOfRange_OneLineBeforeAnyClusterStarts()
    {
        var result = await HourglassProcess.RunAsync("simulate", "--start", "1900-01-01T00:00:00Z", "--days", "1");

        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"hourglass: --start: {Range} (got 1900-01-01T00:00:00+00:00)", result.StandardError.Trim());
    }

    [Fact]
    public async Task ExplainAtTheBounds_Answers()
    {
        foreach (var at in new[] { "1970-01-01T00:00:00Z", "2999-12-31T23:59:59Z" })
        {
            var result = await HourglassProcess.RunAsync("policies", "explain", "--tenant", "Timely Co", "--kind", "send_message", "--contact", _contact.ToString(),
                "--at", at, "--database", ConnectionString);

            Assert.True(result.ExitCode == 0, $"--at {at}: exit {result.ExitCode}: {result.StandardError}");
        }
    }

    [Theory]
    [InlineData("0001-01-01T00:00:00Z", "is before 1970")]
    [InlineData("0000-06-01T00:00:00Z", "must be an ISO-8601 timestamp")]
    [InlineData("2025-02-30T09:00:00Z", "must be an ISO-8601 timestamp")]
    public async Task TouchAtOutOfRange_RefusedNamingTheLine_NothingRecorded(string at, string expected)
    {
        var result = await HourglassProcess.RunAsync("touch", "--tenant", "Timely Co", "--contact", _contact.ToString(), "--type", "call", "--at", at,
            "--database", ConnectionString);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("line 1: occurred_at", result.StandardError, StringComparison.Ordinal);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.warehouse_events"));
    }
}
