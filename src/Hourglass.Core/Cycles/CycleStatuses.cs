namespace Hourglass.Cycles;

/// <summary>Where a run stands (agent_autonomous_runs.status, a checked text column).</summary>
internal enum RunStatus
{
    Running,
    Completed,
    Partial,
    Failed,
    Abandoned,
    Skipped,
}

/// <summary>What became of one planned action (the Act output and, for the first three, agent_actions.status).</summary>
internal enum ActionStatus
{
    Succeeded,
    Failed,
    Blocked,

    /// <summary>The idempotency key was already recorded as succeeded: a retried, resumed or replayed hour.</summary>
    AlreadyDone,

    /// <summary>A dry run's permitted action: nothing was done.</summary>
    WouldRun,
}

/// <summary>
/// The one mapping between the cycle's enums and the text the database keeps (and checks, see the migrations'
/// status check constraints); every reader and writer of a status goes through here.
/// </summary>
internal static class CycleStatuses
{
    public static string Name(this RunStatus status) => status switch
    {
        RunStatus.Running => "running",
        RunStatus.Completed => "completed",
        RunStatus.Partial => "partial",
        RunStatus.Failed => "failed",
        RunStatus.Abandoned => "abandoned",
        RunStatus.Skipped => "skipped",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, null),
    };

    public static string Name(this ActionStatus status) => status switch
    {
        ActionStatus.Succeeded => "succeeded",
        ActionStatus.Failed => "failed",
        ActionStatus.Blocked => "blocked",
        ActionStatus.AlreadyDone => "already_done",
        ActionStatus.WouldRun => "would_run",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, null),
    };

    public static string Name(this CycleTrigger trigger) => trigger switch
    {
        CycleTrigger.Manual => "manual",
        CycleTrigger.CatchUp => "catch_up",
        CycleTrigger.Schedule => "schedule",
        _ => throw new ArgumentOutOfRangeException(nameof(trigger), trigger, null),
    };

    /// <summary>The run status stored as <paramref name="name"/>; throws naming the value when it is none of them.</summary>
    public static RunStatus ParseRunStatus(string name) =>
        Enum.GetValues<RunStatus>().FirstOrDefault(s => s.Name() == name, (RunStatus)(-1)) is var status && status >= 0
            ? status
            : throw new HourglassException($"'{name}' is not a run status (one of: {string.Join(", ", Enum.GetValues<RunStatus>().Select(s => s.Name()))})");

    /// <summary>The action status stored as <paramref name="name"/>; throws naming the value when it is none of them.</summary>
    public static ActionStatus ParseActionStatus(string name) =>
        Enum.GetValues<ActionStatus>().FirstOrDefault(s => s.Name() == name, (ActionStatus)(-1)) is var status && status >= 0
            ? status
            : throw new HourglassException($"'{name}' is not an action status (one of: {string.Join(", ", Enum.GetValues<ActionStatus>().Select(s => s.Name()))})");
}
