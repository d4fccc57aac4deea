using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Hourglass.Cycles;

/// <summary>Settings of a worker.</summary>
internal sealed record CycleWorkerOptions
{
    /// <summary>This worker's name in locks, claims and run records. Default: host:pid:random.</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>How long a lease (and a claim) lasts without renewal; renewed every third of it.</summary>
    public int LeaseMinutes { get; init; } = 2;

    /// <summary>How long an idle worker waits before looking for due tenants again.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Cycles one worker runs at once.</summary>
    public int MaxConcurrentCycles { get; init; } = 4;

    /// <summary>
    /// How many due tenants one pass claims (default twice <see cref="MaxConcurrentCycles"/>, so another worker gets a
    /// share). A lone worker may claim more: its cycles then run back to back, <see cref="MaxConcurrentCycles"/> at a time,
    /// instead of the pass waiting for its slowest cycle before it claims again.
    /// </summary>
    public int? MaxClaimedPerPass { get; init; }

    /// <summary>The most missed occurrences a catch-up run lists (it covers all of them regardless).</summary>
    public int MaxListedCatchUpHours { get; init; } = 168;
}

/// <summary>
/// The worker loop: find due tenants, claim them with FOR UPDATE SKIP LOCKED (so N workers on N machines
/// share the tenants through PostgreSQL alone), and run each cycle under a fenced lease. It also applies the
/// scheduler's rules: catch-up after downtime, overlap skips, the kill switches, automatic pause after
/// repeated failures; each pass starts with the <see cref="AbandonedRunReaper"/>. Claims go through
/// <see cref="ScheduleStore"/>, skips through <see cref="RunsStore"/>, the cycle itself through the engine.
/// </summary>
internal sealed partial class CycleWorker
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly TimeProvider _time;
    private readonly CycleEngine _engine;
    private readonly CycleWorkerOptions _options;
    private readonly ScheduleStore _schedules;
    private readonly RunsStore _runs;
    private readonly TenantControl _control;
    private readonly AbandonedRunReaper _reaper;
    private readonly ILogger _logger;

    /// <param name="dataSource">Where the worker claims tenants and takes leases (the engine may be given the same).</param>
    /// <param name="time">The worker's clock: waits, lease renewals and the times it records.</param>
    /// <param name="engine">Runs each claimed cycle.</param>
    /// <param name="options">Worker id, lease length, concurrency.</param>
    /// <param name="logger">Where the worker logs.</param>
    public CycleWorker(NpgsqlDataSource dataSource, TimeProvider time, CycleEngine engine, CycleWorkerOptions? options = null,
        ILogger<CycleWorker>? logger = null)
    {
        _dataSource = dataSource;
        _time = time;
        _engine = engine;
        _options = options ?? new CycleWorkerOptions();
        _schedules = new ScheduleStore(dataSource);
        _runs = new RunsStore(dataSource);
        _control = new TenantControl(dataSource, time);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _reaper = new AbandonedRunReaper(dataSource, time, _logger);
    }

    public string WorkerId => _options.WorkerId;

    /// <summary>When the last pass ended (the worker's heartbeat), or null before the first.</summary>
    public DateTimeOffset? LastPassAt { get; private set; }

    public TimeSpan PollInterval => _options.PollInterval;

    /// <summary>Runs until cancelled: each pass reaps, claims and runs; an idle pass waits a poll interval.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        LogWorkerStarted(_logger, WorkerId);
        while (!cancellationToken.IsCancellationRequested)
        {
            int handled;
            try
            {
                handled = await RunOnceAsync(cancellationToken);
            }
            catch (NpgsqlException ex) when (!cancellationToken.IsCancellationRequested)
            {
                // The database is unreachable: nothing can be claimed or written. Try again later.
                LogPassFailed(_logger, ex);
                handled = 0;
            }

            LastPassAt = _time.GetUtcNow();

            if (handled == 0)
            {
                try
                {
                    await Task.Delay(_options.PollInterval, _time, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        LogWorkerStopped(_logger, WorkerId);
    }

    /// <summary>One pass: reap abandoned runs, claim due tenants, run their cycles. Returns how many were handled.</summary>
    public async Task<int> RunOnceAsync(CancellationToken cancellationToken)
    {
        await _reaper.ReapAsync(cancellationToken);
        var claimed = await _schedules.ClaimDueAsync(WorkerId, Math.Max(1, _options.MaxClaimedPerPass ?? _options.MaxConcurrentCycles * 2),
            _options.LeaseMinutes, cancellationToken);
        await Parallel.ForEachAsync(claimed, new ParallelOptions
        {
            MaxDegreeOfParallelism = _options.MaxConcurrentCycles,
            CancellationToken = cancellationToken,
        }, async (due, token) => await RunClaimedAsync(due, token));
        return claimed.Count;
    }

    /// <summary>
    /// Runs a cycle now (<c>hourglass run --tenant</c>), or a dry run that records the plan and the policy
    /// decisions without side effects, for this hour or a past one under the current policies.
    /// </summary>
    /// <exception cref="TenantPausedException">A real run of a tenant held by a kill switch (its own or the global one).</exception>
    public async Task<CycleResult> RunManualAsync(Guid tenantId, bool dryRun, DateTimeOffset? hour, CancellationToken cancellationToken)
    {
        var scheduledFor = CycleSchedule.HourBucket(hour ?? _time.GetUtcNow());
        var request = new CycleRequest(tenantId, scheduledFor, CycleTrigger.Manual, WorkerId, DryRun: dryRun);
        if (dryRun)
        {
            return await _engine.RunAsync(request, null, cancellationToken);
        }

        // A kill switch refuses a real run outright, rather than recording a run whose every action is blocked. A pause
        // that lands after this check still blocks each remaining action before its side effect (CycleEngine's Act).
        if (await _control.ReadPauseAsync(tenantId, cancellationToken) is { } pause)
        {
            throw new TenantPausedException(tenantId, pause, "A manual run");
        }

        await using var lease = await TenantLease.TryAcquireAsync(_dataSource, _time, tenantId, WorkerId, _options.LeaseMinutes, cancellationToken)
            ?? throw new HourglassException(
                $"tenant {tenantId} has a cycle running ({await TenantLease.DescribeHolderAsync(_dataSource, tenantId, cancellationToken) ?? "lease held"}); try again when it ends");
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lease.Lost);
        return await _engine.RunAsync(request, lease.Token, linked.Token);
    }

    private async Task RunClaimedAsync(DueTenant due, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        CycleSchedule schedule;
        try
        {
            schedule = CycleSchedule.Parse(due.Cron, due.TimeZone);
        }
        catch (InvalidScheduleException ex)
        {
            // A bad schedule already stored: this tenant skips, with the reason, and is looked at again in an hour.
            await RecordSkippedAsync(due.TenantId, due.NextDueAt, CycleTrigger.Schedule, $"invalid schedule: {ex.Message}", cancellationToken);
            await CompleteClaimAsync(due.TenantId, due.NextDueAt, now.AddHours(1), failed: false, null, cancellationToken);
            return;
        }

        var missed = schedule.Between(due.NextDueAt, now, _options.MaxListedCatchUpHours + 1);
        if (missed.Count == 0)
        {
            await CompleteClaimAsync(due.TenantId, null, schedule.NextAfter(now), failed: false, null, cancellationToken);
            return;
        }

        // Missed occurrences (downtime, a pause of workers) collapse into one catch-up run for the latest.
        var scheduledFor = missed.Count > _options.MaxListedCatchUpHours ? schedule.Between(now.AddDays(-1), now).LastOrDefault(missed[^1]) : missed[^1];
        var trigger = missed.Count > 1 ? CycleTrigger.CatchUp : CycleTrigger.Schedule;
        var request = new CycleRequest(due.TenantId, scheduledFor, trigger, WorkerId, missed.Take(_options.MaxListedCatchUpHours).ToList());

        var lease = await TenantLease.TryAcquireAsync(_dataSource, _time, due.TenantId, WorkerId, _options.LeaseMinutes, cancellationToken);
        if (lease is null)
        {
            var holder = await TenantLease.DescribeHolderAsync(_dataSource, due.TenantId, cancellationToken);
            await RecordSkippedAsync(due.TenantId, scheduledFor, trigger, $"overlap: a cycle is still running ({holder ?? "lease held"})", cancellationToken);
            await CompleteClaimAsync(due.TenantId, scheduledFor, schedule.NextAfter(now), failed: false, null, cancellationToken);
            return;
        }

        CycleResult? result = null;
        await using (lease)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lease.Lost);
            try
            {
                result = await _engine.RunAsync(request, lease.Token, linked.Token);
            }
            catch (LeaseLostException)
            {
                return;
            }
            catch (OperationCanceledException) when (lease.Lost.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                LogLeaseLost(_logger, due.TenantId);
                return;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Shutting down mid-cycle: give the tenant back at once. The lease is released below, so the
                // next worker's reaper marks the interrupted run abandoned and runs the hour again.
                await _schedules.ReleaseClaimAsync(due.TenantId, WorkerId, CancellationToken.None);
                throw;
            }
        }

        // Occurrences that came due while this cycle ran are skipped, and the skip is recorded.
        var finished = _time.GetUtcNow();
        foreach (var overlapped in schedule.Between(scheduledFor.AddTicks(1), finished, 24))
        {
            await RecordSkippedAsync(due.TenantId, overlapped, CycleTrigger.Schedule,
                $"overlap: the cycle for {scheduledFor:yyyy-MM-dd HH:mm}Z (run {result.RunId}) was still running", cancellationToken);
        }

        await CompleteClaimAsync(due.TenantId, scheduledFor, schedule.NextAfter(finished), result.RunStatus == RunStatus.Failed, result.Error, cancellationToken);
    }

    // Advances the schedule past this cycle and releases the claim. Failures count towards the automatic
    // pause; the claim guard keeps a worker that lost its claim from overwriting its successor's state.
    private async Task CompleteClaimAsync(Guid tenantId, DateTimeOffset? scheduledFor, DateTimeOffset nextDue, bool failed, string? error, CancellationToken cancellationToken)
    {
        if (await _schedules.CompleteClaimAsync(tenantId, WorkerId, scheduledFor, nextDue, failed, error, _time.GetUtcNow(), cancellationToken) is { } reason)
        {
            LogTenantPaused(_logger, tenantId, reason);
        }
    }

    private async Task RecordSkippedAsync(Guid tenantId, DateTimeOffset scheduledFor, CycleTrigger trigger, string reason, CancellationToken cancellationToken)
    {
        await _runs.RecordSkippedAsync(tenantId, scheduledFor, trigger, WorkerId, reason, _time.GetUtcNow(), cancellationToken);
        CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", "skipped"));
        LogSkipped(_logger, tenantId, reason);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {WorkerId} started")]
    private static partial void LogWorkerStarted(ILogger logger, string workerId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {WorkerId} stopped")]
    private static partial void LogWorkerStopped(ILogger logger, string workerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Worker pass failed; retrying after the poll interval")]
    private static partial void LogPassFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lost the lease on tenant {TenantId}; the cycle stopped")]
    private static partial void LogLeaseLost(ILogger logger, Guid tenantId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Skipped tenant {TenantId}: {Reason}")]
    private static partial void LogSkipped(ILogger logger, Guid tenantId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Tenant {TenantId} paused: {Reason}")]
    private static partial void LogTenantPaused(ILogger logger, Guid tenantId, string reason);
}
