using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Cycles;

/// <summary>The phase outputs a run keeps, each in its own column of agent_autonomous_runs.</summary>
internal enum RunPhase
{
    Plan,
    Act,
    React,
}

/// <summary>A run left 'running' by a worker that stopped renewing its lease, now marked abandoned.</summary>
internal sealed record ReapedRun(Guid TenantId);

/// <summary>
/// The runs store: the one place that names <c>agent_autonomous_runs</c> in SQL. A run is started, its phases saved
/// and finished through the cycle's <see cref="FencedDatabase"/> (a write commits only while the lease is ours); a
/// skip is recorded and abandoned runs reaped without a lease, by the database's clock.
/// </summary>
internal sealed class RunsStore(NpgsqlDataSource dataSource)
{
    /// <summary>Inserts the run as 'running' under the lease and returns its id.</summary>
    public async Task<Guid> StartAsync(FencedDatabase database, CycleRequest request, long? leaseToken, DateTimeOffset startedAt,
        CancellationToken cancellationToken)
    {
        // dry_run stays in cycle_metrics, where readers and older rows have it; the dry_run column is generated from it
        // (migration 20251230100000_agent_autonomous_runs_dry_run).
        var metrics = new JsonObject
        {
            ["dry_run"] = request.DryRun,
            ["hour_bucket"] = CycleSchedule.HourBucket(request.ScheduledFor).ToString("O"),
            ["covered_hours"] = new JsonArray((request.CoveredHours ?? [request.ScheduledFor]).Select(h => (JsonNode)h.ToUniversalTime().ToString("O")).ToArray()),
        };
        var command = new NpgsqlBatchCommand("""
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, worker_id, lock_token, cycle_metrics)
            values ($1, $2, $3, $4, $5, $6, $7, $8) returning id
            """);
        command.Parameters.Add(new() { Value = request.TenantId });
        command.Parameters.Add(new() { Value = RunStatus.Running.Name() });
        command.Parameters.Add(new() { Value = request.Trigger.Name() });
        command.Parameters.Add(new() { Value = request.ScheduledFor });
        command.Parameters.Add(new() { Value = startedAt });
        command.Parameters.Add(new() { Value = request.WorkerId });
        command.Parameters.Add(new() { Value = (object?)leaseToken ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(Json(metrics));
        return (Guid)(await database.ExecuteAsync(command, cancellationToken))!;
    }

    /// <summary>Saves one phase's output and the phase timings so far.</summary>
    public async Task SavePhaseAsync(FencedDatabase database, Guid runId, RunPhase phase, JsonObject output, JsonObject phases,
        CancellationToken cancellationToken)
    {
        // One statement per column: the column is chosen here, never from input.
        var command = new NpgsqlBatchCommand(phase switch
        {
            RunPhase.Plan => "update public.agent_autonomous_runs set plan_output = $2, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $3::jsonb) where id = $1",
            RunPhase.Act => "update public.agent_autonomous_runs set act_output = $2, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $3::jsonb) where id = $1",
            RunPhase.React => "update public.agent_autonomous_runs set react_output = $2, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $3::jsonb) where id = $1",
            _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, null),
        });
        command.Parameters.Add(new() { Value = runId });
        command.Parameters.Add(Json(output));
        command.Parameters.Add(Json(phases));
        await database.ExecuteAsync(command, cancellationToken);
    }

    /// <summary>Ends a running run: its status, error, reflection, counts and phase timings.</summary>
    public async Task FinishAsync(FencedDatabase database, Guid runId, RunStatus status, string? error, JsonObject? reflection,
        RunCounts counts, JsonObject phases, DateTimeOffset completedAt, CancellationToken cancellationToken)
    {
        var command = new NpgsqlBatchCommand("""
            update public.agent_autonomous_runs
            set status = $2, error = $3, reflect_output = $4, completed_at = $5, actions_planned = $6, actions_taken = $7,
                actions_blocked = $8, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $9::jsonb)
            where id = $1 and status = 'running'
            """);
        command.Parameters.Add(new() { Value = runId });
        command.Parameters.Add(new() { Value = status.Name() });
        command.Parameters.Add(new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(Json(reflection));
        command.Parameters.Add(new() { Value = completedAt });
        command.Parameters.Add(new() { Value = counts.Planned });
        command.Parameters.Add(new() { Value = counts.Taken });
        command.Parameters.Add(new() { Value = counts.Blocked });
        command.Parameters.Add(Json(phases));
        await database.ExecuteAsync(command, cancellationToken);
    }

    /// <summary>Records an occurrence that did not run (an overlap, a bad schedule) as a 'skipped' run with the reason.</summary>
    public async Task RecordSkippedAsync(Guid tenantId, DateTimeOffset scheduledFor, CycleTrigger trigger, string workerId, string reason,
        DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, completed_at, worker_id, error, cycle_metrics)
            values ($1, $2, $3, $4, $5, $5, $6, $7, $8)
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = RunStatus.Skipped.Name() });
        command.Parameters.Add(new() { Value = trigger.Name() });
        command.Parameters.Add(new() { Value = scheduledFor });
        command.Parameters.Add(new() { Value = at });
        command.Parameters.Add(new() { Value = workerId });
        command.Parameters.Add(new() { Value = reason });
        command.Parameters.Add(Json(new JsonObject
        {
            ["skip_reason"] = reason,
            ["hour_bucket"] = CycleSchedule.HourBucket(scheduledFor).ToString("O", CultureInfo.InvariantCulture),
        }));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>When the tenant's last real, finished run (other than <paramref name="exceptRunId"/>) started: React's "since".</summary>
    public async Task<DateTimeOffset?> LastFinishedStartAsync(Guid tenantId, Guid exceptRunId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select started_at from public.agent_autonomous_runs
            where tenant_id = $1 and id <> $2 and status in ('completed', 'partial') and not dry_run
            order by started_at desc
            limit 1
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = exceptRunId });
        return await command.ExecuteScalarAsync(cancellationToken) is DateTime last ? new DateTimeOffset(last) : null;
    }

    /// <summary>
    /// Marks runs left 'running' whose lease has expired (or passed on) 'abandoned', releases their tenants' claims so
    /// they run again at once, and counts each as a failure towards the automatic pause; one statement, judged by the
    /// database's clock (hourglass.now()).
    /// </summary>
    public async Task<IReadOnlyList<ReapedRun>> ReapAbandonedAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
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
        command.Parameters.Add(new() { Value = now });
        var reaped = new List<ReapedRun>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            reaped.Add(new ReapedRun(reader.GetGuid(0)));
        }

        return reaped;
    }

    internal static NpgsqlParameter Json(JsonNode? node) => JsonbParameter.From(node);
}

/// <summary>A finished run's action counts.</summary>
internal readonly record struct RunCounts(int Planned, int Taken, int Blocked);
