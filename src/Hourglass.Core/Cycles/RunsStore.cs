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
    /// <summary>Inserts a running run and returns its id (a fenced batch).</summary>
    internal const string StartSql = """
        insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, worker_id, lock_token, cycle_metrics)
        values ($1, 'running', $2, $3, $4, $5, $6, $7) returning id
        """;

    /// <summary>Saves Plan's output and the phase timings ($1 run, $2 output, $3 phases).</summary>
    internal const string SavePlanSql =
        "update public.agent_autonomous_runs set plan_output = $2, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $3::jsonb) where id = $1";

    /// <summary>Saves Act's output and the phase timings.</summary>
    internal const string SaveActSql =
        "update public.agent_autonomous_runs set act_output = $2, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $3::jsonb) where id = $1";

    /// <summary>Saves React's output and the phase timings.</summary>
    internal const string SaveReactSql =
        "update public.agent_autonomous_runs set react_output = $2, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $3::jsonb) where id = $1";

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
        var command = new NpgsqlBatchCommand(StartSql);
        command.Parameters.Add(new() { Value = request.TenantId });
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
            RunPhase.Plan => SavePlanSql,
            RunPhase.Act => SaveActSql,
            RunPhase.React => SaveReactSql,
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
        var command = new NpgsqlBatchCommand(FinishSql);
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

    /// <summary>Ends a running run: status, error, reflection, counts, phase timings (a fenced batch).</summary>
    internal const string FinishSql = """
        update public.agent_autonomous_runs
        set status = $2, error = $3, reflect_output = $4, completed_at = $5, actions_planned = $6, actions_taken = $7,
            actions_blocked = $8, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $9::jsonb)
        where id = $1 and status = 'running'
        """;

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
        await using var command = dataSource.CreateCommand(LastFinishedStartSql);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = exceptRunId });
        return await command.ExecuteScalarAsync(cancellationToken) is DateTime last ? new DateTimeOffset(last) : null;
    }

    /// <summary>React's "since": when the tenant's last real, finished run other than $2 started ($1 tenant).</summary>
    internal const string LastFinishedStartSql = """
        select started_at from public.agent_autonomous_runs
        where tenant_id = $1 and id <> $2 and status in ('completed', 'partial') and not dry_run
        order by started_at desc
        limit 1
        """;

    /// <summary>
    /// Marks runs left 'running' whose lease has expired (or passed on) 'abandoned', releases their tenants' claims so
    /// they run again at once, and counts each as a failure towards the automatic pause; one statement, judged by the
    /// database's clock (hourglass.now()).
    /// </summary>
    public async Task<IReadOnlyList<ReapedRun>> ReapAbandonedAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ReapSql);
        command.Parameters.Add(new() { Value = now });
        var reaped = new List<ReapedRun>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            reaped.Add(new ReapedRun(reader.GetGuid(0)));
        }

        return reaped;
    }

    /// <summary>Marks abandoned runs and gives their tenants back ($1 now); returns the tenants.</summary>
    internal const string ReapSql = """
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
        """;

    /// <summary>The summary of a run's reflection, if it has one.</summary>
    public async Task<string?> SummaryAsync(Guid runId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select reflect_output ->> 'summary' from public.agent_autonomous_runs where id = $1");
        command.Parameters.Add(new() { Value = runId });
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    /// <summary>The runs' table, for statements over many tables (ANALYZE) that name it.</summary>
    internal const string Table = "public.agent_autonomous_runs";

    /// <summary>How many runs (all tenants) are in each status.</summary>
    public async Task<SortedDictionary<string, long>> CountByStatusAsync(CancellationToken cancellationToken)
    {
        var runs = new SortedDictionary<string, long>(StringComparer.Ordinal);
        await using var command = dataSource.CreateCommand("select status, count(*) from public.agent_autonomous_runs group by status");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            runs[reader.GetString(0)] = reader.GetInt64(1);
        }

        return runs;
    }

    /// <summary>The runs' mean time per phase (plan, act, react, reflect), per part of Plan, and for policy in Act, in milliseconds.</summary>
    public async Task<Dictionary<string, double>> MeanPhaseMillisecondsAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select p.key, avg((p.value ->> 'ms')::double precision)
            from public.agent_autonomous_runs r, jsonb_each(r.cycle_metrics -> 'phases') p
            where jsonb_typeof(r.cycle_metrics -> 'phases') = 'object'
            group by p.key
            union all
            select 'plan: ' || p.key, avg(p.value::text::double precision)
            from public.agent_autonomous_runs r, jsonb_each(r.plan_output -> 'part_ms') p
            where jsonb_typeof(r.plan_output -> 'part_ms') = 'object'
            group by p.key
            union all
            select 'act: policy', avg((r.act_output ->> 'policy_ms')::double precision)
            from public.agent_autonomous_runs r where r.act_output ? 'policy_ms'
            order by 1
            """);
        var phases = new Dictionary<string, double>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            phases[reader.GetString(0)] = reader.IsDBNull(1) ? 0 : Math.Round(reader.GetDouble(1), 1);
        }

        return phases;
    }

    // Reads run in the caller's session (the API's role and row-level security, the status command's one snapshot), so
    // they are kept here as statements; $n are documented on each.

    /// <summary>A tenant's runs as the API lists them ($1 tenant); the caller adds paging on (created_at, id).</summary>
    internal const string ApiListSql = """
        select id, status, trigger, scheduled_for, started_at, completed_at, actions_planned, actions_taken, actions_blocked, error,
               reflect_output ->> 'summary' as summary, created_at
        from public.agent_autonomous_runs where tenant_id = $1
        """;

    /// <summary>One run, whole, as JSON text ($1 tenant, $2 run).</summary>
    internal const string ApiGetSql = "select to_json(r)::text from public.agent_autonomous_runs r where r.tenant_id = $1 and r.id = $2";

    /// <summary>
    /// Per worker: cycles started in the last hour before $3 (dry runs left out) by status ($2 every status, so each tenant
    /// and status is an index probe on idx_autonomous_runs_tenant_status), the claims it holds at $3, and its last start.
    /// Columns: worker, runs, completed, partial, failed, skipped, abandoned, running, claims, last_started_at.
    /// </summary>
    internal const string WorkerActivitySql = """
        with runs as (
          select r.worker_id, r.status, r.started_at
          from public.tenants t
          cross join pg_catalog.unnest($2::text[]) s(status)
          cross join lateral (
            select x.worker_id, x.status, x.started_at from public.agent_autonomous_runs x
            where x.tenant_id = t.id and x.status = s.status and x.started_at > $3 - interval '1 hour' and not x.dry_run) r
        ), claims as (
          select c.claimed_by as worker_id, count(*) as claims from public.agent_tenant_schedules c
          where c.claimed_by is not null and c.claimed_until > $3 group by c.claimed_by
        ), activity as (
          select coalesce(r.worker_id, '') as worker_id, count(*) as runs,
                 count(*) filter (where r.status = 'completed') as completed, count(*) filter (where r.status = 'partial') as partial,
                 count(*) filter (where r.status = 'failed') as failed, count(*) filter (where r.status = 'skipped') as skipped,
                 count(*) filter (where r.status = 'abandoned') as abandoned, count(*) filter (where r.status = 'running') as running,
                 max(r.started_at) as last_started_at
          from runs r group by coalesce(r.worker_id, '')
        )
        select coalesce(a.worker_id, c.worker_id), coalesce(a.runs, 0), coalesce(a.completed, 0), coalesce(a.partial, 0), coalesce(a.failed, 0),
               coalesce(a.skipped, 0), coalesce(a.abandoned, 0), coalesce(a.running, 0), coalesce(c.claims, 0), a.last_started_at
        from activity a full join claims c on c.worker_id = a.worker_id
        order by a.last_started_at desc nulls last, 1
        """;

    /// <summary>The columns of a run summary: tenant, status, trigger, started, completed, planned, taken, blocked, error, dry run, worker.</summary>
    private const string SummaryColumns = "x.tenant_id, x.status, x.trigger, x.started_at, x.completed_at, x.actions_planned, x.actions_taken, " +
                                          "x.actions_blocked, x.error, x.dry_run, x.worker_id";

    /// <summary>
    /// Each tenant's last real run (dry runs are what-ifs, not cycles): the newest of its newest run in each status ($2 every
    /// status), for one tenant ($1) or all ($1 null). Columns: <see cref="SummaryColumns"/>.
    /// </summary>
    internal const string LastRunPerTenantSql = $"""
        select {SummaryColumns}
        from public.tenants t
        cross join lateral (
          select l.* from pg_catalog.unnest($2::text[]) s(status)
          cross join lateral (
            select * from public.agent_autonomous_runs r
            where r.tenant_id = t.id and r.status = s.status and not r.dry_run
            order by r.started_at desc limit 1) l
          order by l.started_at desc limit 1) x
        where ($1::uuid is null or t.id = $1)
        """;

    /// <summary>A tenant's ten newest runs ($1 tenant), dry runs included. Columns: <see cref="SummaryColumns"/>.</summary>
    internal const string RecentRunsSql = $"""
        select {SummaryColumns} from public.agent_autonomous_runs x where x.tenant_id = $1 order by x.started_at desc limit 10
        """;

    internal static NpgsqlParameter Json(JsonNode? node) => JsonbParameter.From(node);

    // Seeding and inspection (benchmarks): one method per statement, on the caller's connection and transaction

    /// <summary>The tenants' scheduled runs completed in [<paramref name="from"/>, <paramref name="to"/>).</summary>
    public static async Task<long> CountCompletedScheduledAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, DateTime from,
        DateTime to, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction, """
            select count(*) from public.agent_autonomous_runs
            where tenant_id = any ($1) and status = 'completed' and trigger = 'schedule' and completed_at >= $2 and completed_at < $3
            """, cancellationToken, tenants, from, to);

    /// <summary><paramref name="count"/> completed hourly runs of the tenant, one an hour back from now (10 actions taken, 2 blocked each).</summary>
    public static Task<int> InsertCompletedHistoryAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int count,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, completed_at, actions_planned, actions_taken,
                                                      actions_blocked, worker_id, reflect_output, created_at)
            select $1, 'completed', 'schedule', pg_catalog.date_trunc('hour', now()) - g * interval '1 hour', now() - g * interval '1 hour',
                   now() - g * interval '1 hour' + interval '2 seconds', 12, 10, 2, 'bench-worker',
                   pg_catalog.jsonb_build_object('summary', 'Took 10 actions; 2 blocked.'), now() - g * interval '1 hour'
            from pg_catalog.generate_series(1, $2) g
            """, cancellationToken, tenantId, count);

    /// <summary>The targets of the actions a run's Act phase recorded, in order (null when the run has none).</summary>
    public static async Task<Guid[]?> ActTargetsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid runId,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<Guid[]>(connection, transaction,
            "select array_agg((a ->> 'target_id')::uuid) from public.agent_autonomous_runs r, jsonb_array_elements(r.act_output -> 'actions') a where r.id = $1",
            cancellationToken, runId);

    /// <summary>The runs of one worker: id, tenant, start, hour, the Act phase's output and the cycle's phases (JSON), counts and status.</summary>
    public static Task<IReadOnlyList<(Guid Id, Guid Tenant, DateTimeOffset Started, DateTimeOffset Hour, string Act, string Phases, int Planned, int Taken,
        int Blocked, string Status)>> RunsOfWorkerAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string workerId,
        CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.Command(connection, transaction, """
            select id, tenant_id, started_at, scheduled_for, act_output::text, (cycle_metrics -> 'phases')::text, actions_planned, actions_taken,
                   actions_blocked, status
            from public.agent_autonomous_runs where worker_id = $1
            """, workerId), r => (r.GetGuid(0), r.GetGuid(1), r.GetFieldValue<DateTimeOffset>(2), r.GetFieldValue<DateTimeOffset>(3), r.GetString(4),
            r.GetString(5), r.GetInt32(6), r.GetInt32(7), r.GetInt32(8), r.GetString(9)), cancellationToken);

    // Seeding (simulator, demo, benchmarks): the benchmarks' history and what they read of their workers' runs.

    /// <summary>
    /// A day of hourly history per tenant: <paramref name="hours"/> completed runs (worker <c>bench-history</c>, one per past
    /// hour) with the given phase outputs and <paramref name="whatMoved"/>, each phase timed as a quiet hour's.
    /// </summary>
    public static Task<int> GenerateHistoryAsync(NpgsqlConnection connection, Guid[] tenants, int hours, string planOutput, string actOutput,
        string reactOutput, string whatMoved, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, completed_at,
              plan_output, act_output, react_output, reflect_output, cycle_metrics, worker_id, lock_token)
            select t.id, 'completed', 'schedule', h.hour, h.hour + interval '1 second', h.hour + interval '1.05 seconds',
                   $3::jsonb, $4::jsonb, $5::jsonb,
                   pg_catalog.jsonb_build_object('what_moved', $6::jsonb, 'what_we_did', '[]'::jsonb, 'summary', 'No actions taken.'),
                   pg_catalog.jsonb_build_object('dry_run', false, 'hour_bucket', h.hour, 'covered_hours', pg_catalog.jsonb_build_array(h.hour),
                     'phases', '{"plan": {"ms": 1.2}, "act": {"ms": 0.1}, "react": {"ms": 4.5}, "reflect": {"ms": 2.3}}'::jsonb),
                   'bench-history', 0
            from unnest($1::uuid[]) with ordinality as t (id, n)
            cross join lateral (select pg_catalog.date_trunc('hour', now(), 'UTC') - pg_catalog.make_interval(hours => g) as hour
                                from generate_series(1, $2) g) as h
            order by t.n, h.hour
            """, cancellationToken, tenants, hours, planOutput, actOutput, reactOutput, whatMoved);

    /// <summary>The worker's run that took the most actions.</summary>
    public static async Task<Guid> BusiestRunAsync(NpgsqlConnection connection, string workerId, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<Guid>(connection, null,
            "select id from public.agent_autonomous_runs where worker_id = $1 order by actions_taken desc limit 1", cancellationToken, workerId);

    /// <summary>How many touches the worker's runs proposed (their plans' proposals).</summary>
    public static async Task<long> ProposalCountAsync(NpgsqlConnection connection, string workerId, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, null, """
            select coalesce(sum(pg_catalog.jsonb_array_length(plan_output -> 'proposals')), 0)::bigint from public.agent_autonomous_runs
            where worker_id = $1
            """, cancellationToken, workerId);

    /// <summary>The worker's runs: how many completed, how many did not, over how many tenants, and the others' statuses and errors.</summary>
    public static async Task<(long Completed, long Other, long Tenants, string? Failures)> WorkerOutcomeAsync(NpgsqlConnection connection, string workerId,
        CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, null, """
            select count(*) filter (where status = 'completed'), count(*) filter (where status <> 'completed'), count(distinct tenant_id),
                   pg_catalog.string_agg(distinct status || coalesce(': ' || error, ''), '; ') filter (where status <> 'completed')
            from public.agent_autonomous_runs where worker_id = $1
            """, workerId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetString(3));
    }

    /// <summary>
    /// Over the runs of the workers whose id is <c>like</c> <paramref name="workerPattern"/>: how many, their mean actions, the
    /// engine's mean time per phase (plan, act, react, reflect) and from start to finish, in milliseconds.
    /// </summary>
    public static async Task<(long Runs, double Actions, double Plan, double Act, double React, double Reflect, double Total)> WorkersPhaseMeansAsync(
        NpgsqlConnection connection, string workerPattern, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, null, """
            select count(*), avg(actions_taken)::float8,
                   avg((cycle_metrics -> 'phases' -> 'plan' ->> 'ms')::float8), avg((cycle_metrics -> 'phases' -> 'act' ->> 'ms')::float8),
                   avg((cycle_metrics -> 'phases' -> 'react' ->> 'ms')::float8), avg((cycle_metrics -> 'phases' -> 'reflect' ->> 'ms')::float8),
                   avg(extract(epoch from completed_at - started_at) * 1000)::float8
            from public.agent_autonomous_runs where worker_id like $1
            """, workerPattern);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetDouble(1), reader.GetDouble(2), reader.GetDouble(3), reader.GetDouble(4), reader.GetDouble(5),
            reader.GetDouble(6));
    }

    // The parts' reads of the runs (a statement moved from the engagement part).

    /// <summary>
    /// The engagement part's flows since the tenant's previous run other than <paramref name="runId"/> began (an hour ago
    /// when there is none): clocks newly overdue and clocks recovered, by <c>engagement_movement</c> (Engagement's function).
    /// The statement's one table is this store's runs, so it lives here (docs/development.md, "Where SQL goes").
    /// </summary>
    public static async Task<(long NewlyOverdue, long Recovered)> EngagementMovementSincePreviousRunAsync(NpgsqlDataSource dataSource, Guid tenantId,
        Guid runId, CancellationToken cancellationToken)
    {
        await using var movement = dataSource.CreateCommand("""
            select m.newly_overdue, m.recovered
            from public.engagement_movement($1, coalesce(
              (select r.started_at from public.agent_autonomous_runs r
               where r.tenant_id = $1 and r.id <> $2 and r.status in ('completed', 'partial', 'failed')
               order by r.started_at desc limit 1),
              hourglass.now() - interval '1 hour')) m
            """);
        movement.Parameters.Add(new() { Value = tenantId });
        movement.Parameters.Add(new() { Value = runId });
        await using var moved = await movement.ExecuteReaderAsync(cancellationToken);
        await moved.ReadAsync(cancellationToken);
        return (moved.GetInt64(0), moved.GetInt64(1));
    }
}

/// <summary>A finished run's action counts.</summary>
internal readonly record struct RunCounts(int Planned, int Taken, int Blocked);
