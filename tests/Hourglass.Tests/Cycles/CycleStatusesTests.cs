using Hourglass.Cycles;

namespace Hourglass.Tests.Cycles;

public sealed class CycleStatusesTests
{
    [Fact]
    public void RunStatus_Names_AreTheValuesTheDatabaseChecks()
    {
        // agent_autonomous_runs_status_check (migration 20251217000000_autonomous_agent_system).
        Assert.Equal(["running", "completed", "partial", "failed", "abandoned", "skipped"], Enum.GetValues<RunStatus>().Select(s => s.Name()));
    }

    [Fact]
    public void ActionStatus_Names_LedgerValuesAndTheActOutputsOwn()
    {
        // agent_actions_status_check holds the first three; already_done and would_run appear only in a run's act_output.
        Assert.Equal(["succeeded", "failed", "blocked", "already_done", "would_run"], Enum.GetValues<ActionStatus>().Select(s => s.Name()));
    }

    [Fact]
    public void Parse_EveryName_RoundTrips()
    {
        foreach (var status in Enum.GetValues<RunStatus>())
        {
            Assert.Equal(status, CycleStatuses.ParseRunStatus(status.Name()));
        }

        foreach (var status in Enum.GetValues<ActionStatus>())
        {
            Assert.Equal(status, CycleStatuses.ParseActionStatus(status.Name()));
        }
    }

    [Fact]
    public void Parse_UnknownName_NamesTheValueAndTheChoices()
    {
        var ex = Assert.Throws<HourglassException>(() => CycleStatuses.ParseRunStatus("done"));
        Assert.Equal("'done' is not a run status (one of: running, completed, partial, failed, abandoned, skipped)", ex.Message);
        Assert.Throws<HourglassException>(() => CycleStatuses.ParseActionStatus("Succeeded"));
    }

    [Fact]
    public void Trigger_Names_AreTheValuesTheDatabaseChecks()
    {
        Assert.Equal(["schedule", "manual", "catch_up"], Enum.GetValues<CycleTrigger>().Select(t => t.Name()));
    }
}
