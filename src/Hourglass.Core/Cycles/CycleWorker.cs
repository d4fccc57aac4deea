using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Hourglass.Cycles;

/// <summary>Settings of a worker.</summary>
public sealed record CycleWorkerOptions
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

/// <summary>A claimed, due tenant.</summary>
internal sealed record DueTenant(Guid TenantId, string Cron, string TimeZone, DateTimeOffset NextDueAt);

/// <summary>
/// The worker loop: find due tenants, claim them with FOR UPDATE SKIP LOCKED (so N workers on N machines
/// share the tenants through PostgreSQL alone), and run each cycle under a fenced lease. It also applies the
/// scheduler's rules: catch-up after downtime, overlap skips, the kill switches, automatic pause after
/// repeated failures, and the reaping of runs left behind by dead workers.
/// </summary>
public sealed partial class CycleWorker
{
    private readonly CycleEngine _engine;
    private readonly CycleWorkerOptions _options;
    private readonly ILogger _logger;

    public CycleWorker(CycleEngine engine, CycleWorkerOptions? options = null, ILogger<CycleWorker>? logger = null)
    {
        _engine = engine;
        _options = options ?? new CycleWorkerOptions();
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    public string WorkerId => _options.WorkerId;

    /// <summary>When the last pass ended (the worker's heartbeat), or null before the first.</summary>
    public DateTimeOffset? LastPassAt { get; private set; }

    public TimeSpan PollInterval => _options.PollInterval;

    private NpgsqlDataSource DataSource => _engine.DataSource;

    private TimeProvider Time => _engine.Time;

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

            LastPassAt = Time.GetUtcNow();

            if (handled == 0)
            {
                try
                {
                    await Task.Delay(_options.PollInterval, Time, cancellationToken);
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
        await ReapAbandonedAsync(cancellationToken);
        var claimed = await ClaimDueAsync(cancellationToken);
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
        var scheduledFor = CycleSchedule.HourBucket(hour ?? Time.GetUtcNow());
        var request = new CycleRequest(tenantId, scheduledFor, CycleTrigger.Manual, WorkerId, DryRun: dryRun);
        if (dryRun)
        {
            return await _engine.RunAsync(request, null, cancellationToken);
        }

        // A kill switch refuses a real run outright, rather than recording a run whose every action is blocked. A pause
        // that lands after this check still blocks each remaining action before its side effect (CycleEngine's Act).
        if (await new TenantControl(DataSource, Time).ReadPauseAsync(tenantId, cancellationToken) is { } pause)
        {
            throw new TenantPausedException(tenantId, pause, "A manual run");
        }

        await using var lease = await TenantLease.TryAcquireAsync(DataSource, Time, tenantId, WorkerId, _options.LeaseMinutes, cancellationToken)
            ?? throw new HourglassException(
                $"tenant {tenantId} has a cycle running ({await TenantLease.DescribeHolderAsync(DataSource, tenantId, cancellationToken) ?? "lease held"}); try again when it ends");
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lease.Lost);
        return await _engine.RunAsync(request, lease.Token, linked.Token);
    }

    private async Task RunClaimedAsync(DueTenant due, CancellationToken cancellationToken)
    {
        var now = Time.GetUtcNow();
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

        var lease = await TenantLease.TryAcquireAsync(DataSource, Time, due.TenantId, WorkerId, _options.LeaseMinutes, cancellationToken);
        if (lease is null)
        {
            var holder = await TenantLease.DescribeHolderAsync(DataSource, due.TenantId, cancellationToken);
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
                await ReleaseClaimAsync(due.TenantId);
                throw;
            }
        }

        // Occurrences that came due while this cycle ran are skipped, and the skip is recorded.
        var finished = Time.GetUtcNow();
        foreach (var overlapped in schedule.Between(scheduledFor.AddTicks(1), finished, 24))
        {
            await RecordSkippedAsync(due.TenantId, overlapped, CycleTrigger.Schedule,
                $"overlap: the cycle for {scheduledFor:yyyy-MM-dd HH:mm}Z (run {result.RunId}) was still running", cancellationToken);
        }

        await CompleteClaimAsync(due.TenantId, scheduledFor, schedule.NextAfter(finished), result.Status == "failed", result.Error, cancellationToken);
    }

    // Whether a tenant is due and whether a claim or lease has expired is judged by the database's clock
    // (hourglass.now()): the one clock all workers share, whatever each machine's own clock says.
    private async Task<IReadOnlyList<DueTenant>> ClaimDueAsync(CancellationToken cancellationToken)
    {
        await using var command = DataSource.CreateCommand("""
            with due as (
              select s.tenant_id from public.agent_tenant_schedules s
              where s.next_due_at <= hourglass.now() and not s.paused
                and (s.claimed_until is null or s.claimed_until <= hourglass.now())
                and not (select c.paused from hourglass.agent_control c where c.singleton)
              order by s.next_due_at
              limit $2
              for update of s skip locked)
            update public.agent_tenant_schedules s
            set claimed_by = $1, claimed_until = hourglass.now() + make_interval(mins => $3), updated_at = hourglass.now()
            from due, public.tenants t
            where s.tenant_id = due.tenant_id and t.id = s.tenant_id
            returning s.tenant_id, s.cron, coalesce(s.timezone, t.timezone), s.next_due_at
            """);
        command.Parameters.Add(new() { Value = WorkerId });
        command.Parameters.Add(new() { Value = Math.Max(1, _options.MaxClaimedPerPass ?? _options.MaxConcurrentCycles * 2) });
        command.Parameters.Add(new() { Value = _options.LeaseMinutes });
        var claimed = new List<DueTenant>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            claimed.Add(new DueTenant(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3)));
        }

        return claimed;
    }

    // Advances the schedule past this cycle and releases the claim. Failures count towards the automatic
    // pause; the claim guard keeps a worker that lost its claim from overwriting its successor's state.
    private async Task CompleteClaimAsync(Guid tenantId, DateTimeOffset? scheduledFor, DateTimeOffset nextDue, bool failed, string? error, CancellationToken cancellationToken)
    {
        await using var command = DataSource.CreateCommand("""
            update public.agent_tenant_schedules s
            set last_scheduled_for = coalesce($3, s.last_scheduled_for),
                next_due_at = $4,
                claimed_by = null,
                claimed_until = null,
                consecutive_failures = case when $5 then s.consecutive_failures + 1 else 0 end,
                paused = s.paused or ($5 and s.consecutive_failures + 1 >= s.auto_pause_after_failures),
                paused_at = case when not s.paused and $5 and s.consecutive_failures + 1 >= s.auto_pause_after_failures then $6 else s.paused_at end,
                paused_by = case when not s.paused and $5 and s.consecutive_failures + 1 >= s.auto_pause_after_failures then 'hourglass' else s.paused_by end,
                paused_reason = case when not s.paused and $5 and s.consecutive_failures + 1 >= s.auto_pause_after_failures
                  then format('automatically paused after %s consecutive failed cycles; last error: %s', s.consecutive_failures + 1, coalesce($7, 'unknown'))
                  else s.paused_reason end,
                updated_at = $6
            where s.tenant_id = $1 and s.claimed_by = $2
            returning s.paused, s.paused_reason
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = WorkerId });
        command.Parameters.Add(new() { Value = (object?)scheduledFor ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new() { Value = nextDue });
        command.Parameters.Add(new() { Value = failed });
        command.Parameters.Add(new() { Value = Time.GetUtcNow() });
        command.Parameters.Add(new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (await reader.ReadAsync(cancellationToken) && reader.GetBoolean(0) && failed)
        {
            LogTenantPaused(_logger, tenantId, reader.IsDBNull(1) ? "" : reader.GetString(1));
        }
    }

    private async Task ReleaseClaimAsync(Guid tenantId)
    {
        await using var command = DataSource.CreateCommand(
            "update public.agent_tenant_schedules set claimed_by = null, claimed_until = null where tenant_id = $1 and claimed_by = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = WorkerId });
        await command.ExecuteNonQueryAsync(CancellationToken.None);
    }

    private async Task RecordSkippedAsync(Guid tenantId, DateTimeOffset scheduledFor, CycleTrigger trigger, string reason, CancellationToken cancellationToken)
    {
        await using var command = DataSource.CreateCommand("""
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, completed_at, worker_id, error, cycle_metrics)
            values ($1, 'skipped', $2, $3, $4, $4, $5, $6, $7)
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = CycleEngine.TriggerName(trigger) });
        command.Parameters.Add(new() { Value = scheduledFor });
        command.Parameters.Add(new() { Value = Time.GetUtcNow() });
        command.Parameters.Add(new() { Value = WorkerId });
        command.Parameters.Add(new() { Value = reason });
        command.Parameters.Add(CycleEngine.Json(new JsonObject
        {
            ["skip_reason"] = reason,
            ["hour_bucket"] = CycleSchedule.HourBucket(scheduledFor).ToString("O", CultureInfo.InvariantCulture),
        }));
        await command.ExecuteNonQueryAsync(cancellationToken);
        CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", "skipped"));
        LogSkipped(_logger, tenantId, reason);
    }

    /// <summary>
    /// Marks runs left 'running' by a dead worker 'abandoned' once their lease has expired, releases their
    /// claims so the tenants run again at once, and counts them as failures (a tenant that keeps killing
    /// workers gets paused).
    /// </summary>
    public async Task<int> ReapAbandonedAsync(CancellationToken cancellationToken)
    {
        await using var command = DataSource.CreateCommand("""
            with abandoned as (
              update public.agent_autonomous_runs r
              set status = 'abandoned', completed_at = $1,
                  error = format('abandoned: worker %s stopped renewing its lease (token %s) before the cycle finished', r.worker_id, r.lock_token)
              where r.status = 'running' and r.lock_token is not null
                and not exists (
                  select 1 from public.agent_tenant_locks l
                  where l.tenant_id = r.tenant_id and l.lock_type = 'autonomous_cycle' and l.lock_token = r.lock_token
                    and l.expires_at > hourglass.now())
              returning r.tenant_id, r.worker_id)
            update public.agent_tenant_schedules s
            set claimed_by = null, claimed_until = null, consecutive_failures = s.consecutive_failures + 1,
                paused = s.paused or s.consecutive_failures + 1 >= s.auto_pause_after_failures,
                paused_at = case when not s.paused and s.consecutive_failures + 1 >= s.auto_pause_after_failures then $1 else s.paused_at end,
                paused_by = case when not s.paused and s.consecutive_failures + 1 >= s.auto_pause_after_failures then 'hourglass' else s.paused_by end,
                paused_reason = case when not s.paused and s.consecutive_failures + 1 >= s.auto_pause_after_failures
                  then format('automatically paused after %s consecutive failed or abandoned cycles', s.consecutive_failures + 1)
                  else s.paused_reason end,
                updated_at = $1
            from abandoned a
            where s.tenant_id = a.tenant_id and (s.claimed_by is null or s.claimed_by = a.worker_id)
            returning s.tenant_id
            """);
        command.Parameters.Add(new() { Value = Time.GetUtcNow() });
        var reaped = 0;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            reaped++;
            CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", "abandoned"));
            LogReaped(_logger, reader.GetGuid(0));
        }

        return reaped;
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Marked an abandoned run of tenant {TenantId}; it runs again now")]
    private static partial void LogReaped(ILogger logger, Guid tenantId);
}
