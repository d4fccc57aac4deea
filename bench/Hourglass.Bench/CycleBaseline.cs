using System.Diagnostics;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Bench;

/// <summary>The JSON documents a quiet-hour cycle writes, copied from a real run so the baseline writes the same bytes.</summary>
internal sealed record CycleDocuments(
    string PlanOutput,
    string ActOutput,
    string ReactOutput,
    string ReflectOutput,
    string Phases,
    string WhatWeDid,
    string WhatMoved,
    string WhatGotBlocked,
    string WhatWeWillTryNext,
    string Hypotheses,
    string Insights,
    string Summary)
{
    public static async Task<CycleDocuments> ReadAsync(NpgsqlConnection connection, Guid runId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            select r.plan_output::text, r.act_output::text, r.react_output::text, r.reflect_output::text, (r.cycle_metrics -> 'phases')::text,
                   h.what_we_did::text, h.what_moved::text, h.what_got_blocked::text, h.what_we_will_try_next::text, h.hypotheses::text,
                   h.insights::text, h.summary
            from public.agent_autonomous_runs r
            join public.agent_hourly_reflections h on h.tenant_id = r.tenant_id and h.run_id = r.id
            where r.id = $1
            """, connection);
        command.Parameters.Add(new() { Value = runId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            throw new HourglassException($"cycles: run {runId} has no reflection to copy the baseline's documents from.");
        }

        return new CycleDocuments(
            reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5),
            reader.GetString(6), reader.GetString(7), reader.GetString(8), reader.GetString(9), reader.GetString(10), reader.GetString(11));
    }
}

/// <summary>
/// One worker's cycles as plain SQL: the statements <c>CycleWorker.RunOnceAsync</c> and <c>CycleEngine.RunAsync</c>
/// execute for a quiet hour of a tenant whose only part is <c>EngagementCompliancePart</c> (no action proposed),
/// in the same order, with the same parameters and the same transactions, on one connection held for the
/// whole round, tenants one after another. Each statement's time is summed by name, to show where a cycle's
/// time goes. Keep in step with CycleWorker.cs, CycleEngine.cs, TenantLease.cs, FencedDatabase.cs and
/// EngagementCompliancePart.cs: the SQL texts below are copied from them.
/// </summary>
internal sealed class CycleBaseline
{
    // CycleWorker.ReapAbandonedAsync, once per pass.
    private const string ReapSql = """
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

    // CycleWorker.ClaimDueAsync, once per pass.
    private const string ClaimSql = """
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
        """;

    // TenantLease.TryAcquireAsync.
    private const string AcquireSql = "select public.acquire_tenant_lease($1, $2, 'autonomous_cycle', $3)";

    // CycleEngine.LoadTenantAsync.
    private const string LoadTenantSql = """
        select t.timezone, coalesce(s.max_actions_per_cycle, 50), coalesce(s.max_actions_per_day, 500)
        from public.tenants t left join public.agent_tenant_schedules s on s.tenant_id = t.id
        where t.id = $1
        """;

    // FencedDatabase.InTransactionAsync, first in every write transaction.
    private const string AssertSql = "select public.assert_lock_token($1, $2)";

    // CycleEngine.StartRunAsync.
    private const string InsertRunSql = """
        insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, worker_id, lock_token, cycle_metrics)
        values ($1, 'running', $2, $3, $4, $5, $6, $7) returning id
        """;

    // CycleEngine.CountActionsTodayAsync (Plan).
    private const string CountActionsSql = """
        select count(*) from public.agent_actions
        where tenant_id = $1 and status = 'succeeded' and completed_at >= $2 and hour_bucket <> $3
        """;

    // CycleEngine.SavePhaseAsync, after Plan, Act and React.
    // The engine fills in the column from its own constants.
    private const string SavePhaseTemplate =
        "update public.agent_autonomous_runs set {column} = $2, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $3::jsonb) where id = $1";

    private static readonly string s_savePlanSql = SavePhaseTemplate.Replace("{column}", "plan_output", StringComparison.Ordinal);
    private static readonly string s_saveActSql = SavePhaseTemplate.Replace("{column}", "act_output", StringComparison.Ordinal);
    private static readonly string s_saveReactSql = SavePhaseTemplate.Replace("{column}", "react_output", StringComparison.Ordinal);

    // CycleEngine.ReactAsync: when the last real cycle started.
    private const string PreviousRunSql = """
        select max(started_at) from public.agent_autonomous_runs
        where tenant_id = $1 and id <> $2 and status in ('completed', 'partial')
          and coalesce((cycle_metrics ->> 'dry_run')::boolean, false) = false
        """;

    // EngagementCompliancePart.ReactAsync (fenced) and MeasureAsync.
    private const string RefreshSql = "select public.refresh_engagement_compliance($1)";

    private const string MeasureSql = """
        select count(*),
               count(*) filter (where compliance_status = 'compliant'),
               count(*) filter (where compliance_status = 'due_soon'),
               count(*) filter (where compliance_status = 'overdue')
        from public.engagement_clocks where tenant_id = $1
        """;

    // CycleEngine.PreviousMetricsAsync and ReflectAsync.
    private const string PreviousMetricsSql = """
        select what_moved from public.agent_hourly_reflections
        where tenant_id = $1 and hour_bucket < $2 order by hour_bucket desc limit 1
        """;

    private const string ReflectionSql = """
        insert into public.agent_hourly_reflections as r (tenant_id, run_id, hour_bucket, what_we_did, what_moved,
          what_got_blocked, what_we_will_try_next, hypotheses, insights, summary)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        on conflict (tenant_id, hour_bucket) do update set
          run_id = excluded.run_id, what_we_did = excluded.what_we_did, what_moved = excluded.what_moved,
          what_got_blocked = excluded.what_got_blocked, what_we_will_try_next = excluded.what_we_will_try_next,
          hypotheses = excluded.hypotheses, insights = excluded.insights, summary = excluded.summary
        """;

    // CycleEngine.FinishRunAsync.
    private const string FinishSql = """
        update public.agent_autonomous_runs
        set status = $2, error = $3, reflect_output = $4, completed_at = $5, actions_planned = $6, actions_taken = $7,
            actions_blocked = $8, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $9::jsonb)
        where id = $1 and status = 'running'
        """;

    // TenantLease.DisposeAsync and CycleWorker.CompleteClaimAsync.
    private const string ReleaseSql = "select public.release_tenant_lock($1, $2)";

    private const string CompleteSql = """
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
        """;

    /// <summary>The statements in the order a cycle runs them (per pass: reap, claim), for the per-statement table.</summary>
    public static readonly string[] StatementOrder =
    [
        "reap abandoned runs (per pass)", "claim due tenants (per pass)", "acquire_tenant_lease", "load tenant", "assert_lock_token (x7)",
        "insert run", "count actions today", "update run: plan/act/react output (x3)", "previous run", "refresh_engagement_compliance",
        "measure clocks", "previous metrics", "reflection upsert", "finish run", "commit (x7)", "release_tenant_lock", "complete claim",
    ];

    // Where each statement was copied from, to check that the baseline still sends what the code sends.
    private static readonly (string File, string Sql)[] s_sources =
    [
        ("src/Hourglass.Core/Cycles/CycleWorker.cs", ReapSql),
        ("src/Hourglass.Core/Cycles/CycleWorker.cs", ClaimSql),
        ("src/Hourglass.Core/Cycles/TenantLease.cs", AcquireSql),
        ("src/Hourglass.Core/Cycles/CycleEngine.cs", LoadTenantSql),
        ("src/Hourglass.Core/Cycles/FencedDatabase.cs", AssertSql),
        ("src/Hourglass.Core/Cycles/CycleEngine.cs", InsertRunSql),
        ("src/Hourglass.Core/Cycles/CycleEngine.cs", CountActionsSql),
        ("src/Hourglass.Core/Cycles/CycleEngine.cs", SavePhaseTemplate),
        ("src/Hourglass.Core/Cycles/CycleEngine.cs", PreviousRunSql),
        ("src/Hourglass.Core/Engagement/EngagementCompliancePart.cs", RefreshSql),
        ("src/Hourglass.Core/Engagement/EngagementCompliancePart.cs", MeasureSql),
        ("src/Hourglass.Core/Cycles/CycleEngine.cs", PreviousMetricsSql),
        ("src/Hourglass.Core/Cycles/CycleEngine.cs", ReflectionSql),
        ("src/Hourglass.Core/Cycles/CycleEngine.cs", FinishSql),
        ("src/Hourglass.Core/Cycles/TenantLease.cs", ReleaseSql),
        ("src/Hourglass.Core/Cycles/CycleWorker.cs", CompleteSql),
    ];

    private readonly CycleDocuments _documents;
    private readonly int _leaseMinutes;
    private readonly int _claimLimit;
    private readonly Dictionary<string, long> _ticks = new(StringComparer.Ordinal);
    private int _cycles;

    /// <param name="documents">The JSON a real run wrote, sent again by every baseline cycle.</param>
    /// <param name="leaseMinutes">As the worker's <c>LeaseMinutes</c>.</param>
    /// <param name="claimLimit">Tenants claimed per pass: the worker claims <c>MaxConcurrentCycles * 2</c>.</param>
    public CycleBaseline(CycleDocuments documents, int leaseMinutes, int claimLimit)
    {
        _documents = documents;
        _leaseMinutes = leaseMinutes;
        _claimLimit = claimLimit;
    }

    /// <summary>
    /// Fails unless every statement the baseline sends appears, whitespace aside, in the source file it was
    /// copied from: a baseline that no longer sends what the engine sends measures nothing.
    /// </summary>
    public static async Task<int> CheckInStepAsync(string repositoryRoot, CancellationToken cancellationToken)
    {
        var stale = new List<string>();
        foreach (var (file, sql) in s_sources)
        {
            var source = Normalize(await File.ReadAllTextAsync(Path.Combine(repositoryRoot, file), cancellationToken));
            if (!source.Contains(Normalize(sql), StringComparison.Ordinal))
            {
                stale.Add($"{file}: {Normalize(sql)[..Math.Min(80, Normalize(sql).Length)]}…");
            }
        }

        if (stale.Count > 0)
        {
            throw new HourglassException(
                $"cycles: the baseline's SQL is out of step with the code (update bench/Hourglass.Bench/CycleBaseline.cs): {string.Join("; ", stale)}");
        }

        return s_sources.Length;
    }

    private static string Normalize(string text) => string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    /// <summary>Mean time per cycle of each statement over all rounds so far, in milliseconds, in cycle order.</summary>
    public IReadOnlyList<(string Statement, double Milliseconds)> PerCycle() =>
        StatementOrder.Select(s => (s, _ticks.TryGetValue(s, out var t) ? t * 1000.0 / Stopwatch.Frequency / Math.Max(_cycles, 1) : 0)).ToList();

    /// <summary>Passes until nothing is due, as <c>while (await worker.RunOnceAsync(…) > 0)</c>; returns the cycles run.</summary>
    public async Task<int> RunRoundAsync(NpgsqlDataSource dataSource, string workerId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var cycles = 0;
        while (true)
        {
            await TimedAsync("reap abandoned runs (per pass)", () => ExecuteAsync(connection, null, ReapSql, cancellationToken, Now()));
            var claimed = await TimedAsync("claim due tenants (per pass)", () => ClaimAsync(connection, workerId, cancellationToken));
            if (claimed.Count == 0)
            {
                _cycles += cycles;
                return cycles;
            }

            foreach (var (tenant, nextDueAt) in claimed)
            {
                await CycleAsync(connection, workerId, tenant, nextDueAt, cancellationToken);
                cycles++;
            }
        }
    }

    private async Task<List<(Guid Tenant, DateTimeOffset NextDueAt)>> ClaimAsync(NpgsqlConnection connection, string workerId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(ClaimSql, connection);
        command.Parameters.Add(new() { Value = workerId });
        command.Parameters.Add(new() { Value = _claimLimit });
        command.Parameters.Add(new() { Value = _leaseMinutes });
        var claimed = new List<(Guid, DateTimeOffset)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            claimed.Add((reader.GetGuid(0), reader.GetFieldValue<DateTimeOffset>(3)));
        }

        return claimed;
    }

    // The bench tenants are hourly in UTC and made due at the top of the current hour, so the occurrence the
    // worker finds (CycleSchedule.Between) is next_due_at itself and the next one is an hour later.
    private async Task CycleAsync(NpgsqlConnection connection, string workerId, Guid tenant, DateTimeOffset nextDueAt, CancellationToken cancellationToken)
    {
        var scheduledFor = nextDueAt;
        var token = await TimedAsync("acquire_tenant_lease", async () =>
            await ScalarAsync(connection, null, AcquireSql, cancellationToken, tenant, workerId, _leaseMinutes) as long?
            ?? throw new HourglassException($"cycles: the baseline could not acquire the lease on tenant {tenant}."));

        await TimedAsync("load tenant", () => ReadRowAsync(connection, LoadTenantSql, cancellationToken, tenant));

        var metrics = $$"""{"dry_run":false,"hour_bucket":"{{scheduledFor:O}}","covered_hours":["{{scheduledFor:O}}"]}""";
        var runId = await FencedAsync(connection, tenant, token, "insert run", async transaction =>
            (Guid)(await ScalarAsync(connection, transaction, InsertRunSql, cancellationToken,
                tenant, "schedule", scheduledFor, Now(), workerId, token, Jsonb(metrics)))!, cancellationToken);

        var midnight = new DateTimeOffset(Now().UtcDateTime.Date, TimeSpan.Zero);
        await TimedAsync("count actions today", () => ScalarAsync(connection, null, CountActionsSql, cancellationToken, tenant, midnight, scheduledFor));
        await SavePhaseAsync(connection, tenant, token, s_savePlanSql, runId, _documents.PlanOutput, cancellationToken);
        await SavePhaseAsync(connection, tenant, token, s_saveActSql, runId, _documents.ActOutput, cancellationToken);

        await TimedAsync("previous run", () => ScalarAsync(connection, null, PreviousRunSql, cancellationToken, tenant, runId));
        await FencedAsync(connection, tenant, token, "refresh_engagement_compliance",
            transaction => ScalarAsync(connection, transaction, RefreshSql, cancellationToken, tenant), cancellationToken);
        await SavePhaseAsync(connection, tenant, token, s_saveReactSql, runId, _documents.ReactOutput, cancellationToken);

        await TimedAsync("measure clocks", () => ReadRowAsync(connection, MeasureSql, cancellationToken, tenant));
        await TimedAsync("previous metrics", () => ScalarAsync(connection, null, PreviousMetricsSql, cancellationToken, tenant, scheduledFor));
        await FencedAsync(connection, tenant, token, "reflection upsert", transaction => ExecuteAsync(connection, transaction, ReflectionSql, cancellationToken,
            tenant, runId, scheduledFor, Jsonb(_documents.WhatWeDid), Jsonb(_documents.WhatMoved), Jsonb(_documents.WhatGotBlocked),
            Jsonb(_documents.WhatWeWillTryNext), Jsonb(_documents.Hypotheses), Jsonb(_documents.Insights), _documents.Summary), cancellationToken);
        var finished = await FencedAsync(connection, tenant, token, "finish run", transaction => ExecuteAsync(connection, transaction, FinishSql, cancellationToken,
            runId, "completed", new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text }, Jsonb(_documents.ReflectOutput), Now(), 0, 0, 0,
            Jsonb(_documents.Phases)), cancellationToken);
        if (finished != 1)
        {
            throw new HourglassException($"cycles: the baseline's run {runId} was no longer running when it finished.");
        }

        await TimedAsync("release_tenant_lock", () => ScalarAsync(connection, null, ReleaseSql, cancellationToken, tenant, workerId));
        await TimedAsync("complete claim", () => ReadRowAsync(connection, CompleteSql, cancellationToken,
            tenant, workerId, scheduledFor, scheduledFor.AddHours(1), false, Now(), new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text }));
    }

    private Task SavePhaseAsync(NpgsqlConnection connection, Guid tenant, long token, string sql, Guid runId, string output, CancellationToken cancellationToken) =>
        FencedAsync(connection, tenant, token, "update run: plan/act/react output (x3)",
            transaction => ExecuteAsync(connection, transaction, sql, cancellationToken, runId, Jsonb(output), Jsonb(_documents.Phases)), cancellationToken);

    // As FencedDatabase.InTransactionAsync: BEGIN (sent by Npgsql with the first statement), the fence, the work, COMMIT.
    private async Task<T> FencedAsync<T>(NpgsqlConnection connection, Guid tenant, long token, string name,
        Func<NpgsqlTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await TimedAsync("assert_lock_token (x7)", () => ExecuteAsync(connection, transaction, AssertSql, cancellationToken, tenant, token));
        var result = await TimedAsync(name, () => work(transaction));
        await TimedAsync("commit (x7)", async () =>
        {
            await transaction.CommitAsync(cancellationToken);
            return 0;
        });
        return result;
    }

    private async Task<T> TimedAsync<T>(string name, Func<Task<T>> action)
    {
        var started = Stopwatch.GetTimestamp();
        var result = await action();
        var elapsed = Stopwatch.GetTimestamp() - started;
        _ticks[name] = _ticks.GetValueOrDefault(name) + elapsed;
        return result;
    }

    private static DateTimeOffset Now() => TimeProvider.System.GetUtcNow();

    private static NpgsqlParameter Jsonb(string json) => new() { Value = json, NpgsqlDbType = NpgsqlDbType.Jsonb };

    private static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, object[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(parameter as NpgsqlParameter ?? new NpgsqlParameter { Value = parameter });
        }

        return command;
    }

    private static async Task<int> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params object[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params object[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteScalarAsync(cancellationToken);
    }

    // Reads the first row's columns, as the engine does with its readers.
    private static async Task<int> ReadRowAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = Command(connection, null, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return 0;
        }

        var values = new object[reader.FieldCount];
        reader.GetValues(values);
        return 1;
    }
}
