using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Insights;
using Hourglass.Policies;
using Hourglass.Tenancy;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Bench;

/// <summary>The JSON documents a cycle writes into its run and reflection, copied from a real run so the baseline writes the same bytes.</summary>
internal sealed record CycleDocuments(
    string PlanOutput,
    string ActOutput,
    string ReactOutput,
    string ReflectOutput,
    string Phases,
    string ReflectionEntry)
{
    public static async Task<CycleDocuments> ReadAsync(NpgsqlConnection connection, Guid runId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            select r.plan_output::text, r.act_output::text, r.react_output::text, r.reflect_output::text, (r.cycle_metrics -> 'phases')::text,
                   (h.runs -> r.id::text)::text
            from public.agent_autonomous_runs r
            join public.agent_hourly_reflections h on h.tenant_id = r.tenant_id and h.runs ? r.id::text
            where r.id = $1
            """, connection);
        command.Parameters.Add(new() { Value = runId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            throw new HourglassException($"cycles: run {runId} has no reflection to copy the baseline's documents from.");
        }

        return new CycleDocuments(
            reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5));
    }
}

/// <summary>
/// One worker's cycles as plain SQL: the statements <c>CycleWorker.RunOnceAsync</c> and <c>CycleEngine.RunAsync</c>
/// execute with the production composition (<c>CycleComposition.CreateEngine</c>: the parts Insights, Approvals,
/// Engagement, Touches and Orders, the touch handler, the document policy enforcer), in the same order, with the same
/// transactions and batches (a fenced single statement is one batch of the fence and the statement), on one
/// connection held for the whole run, tenants one after another. Each statement's time is summed by name, to show
/// where a cycle's time goes. The Cycles statements are the stores' own constants (RunsStore, ScheduleStore, ActionLedger,
/// HourlyReflections, TenantControl); the other parts' texts are copied from src/Hourglass.Core (Insights, Orders, Policies,
/// Engagement); the benchmark compares what this class sends with what the worker sends (Npgsql's trace) and fails
/// when they differ. What it does not do: fold events into detector states, decide orders, or evaluate policies in
/// memory. The benchmark's hours bring no new events and no new orders (the loader processed them), which this class
/// checks as it reads (it throws if a page of events, a claimed order or a due time sweep turns up); every action is
/// recorded as allowed, without findings, and the trace check would see a violation or approval the worker wrote.
/// </summary>
internal sealed class CycleBaseline
{
    // AbandonedRunReaper.ReapAsync, once per pass.
    private const string ReapSql = RunsStore.ReapSql;

    // ScheduleStore.ClaimDueAsync, once per pass.
    private const string ClaimSql = ScheduleStore.ClaimDueSql;

    // TenantLease.TryAcquireAsync.
    private const string AcquireSql = TenantLease.AcquireLeaseSql;

    // ScheduleStore.LimitsAsync.
    private const string LoadTenantSql = ScheduleStore.LimitsSql;

    // FencedDatabase: first in every fenced transaction, and first in every fenced single-statement batch.
    private const string AssertSql = "select public.assert_lock_token($1, $2)";

    // RunsStore.StartAsync (a fenced batch).
    private const string InsertRunSql = RunsStore.StartSql;

    // Plan, Insights: InsightsEngine.RunAsync (frontier, clock, tenant zone; per detector its watermark, its pages of
    // events, the watermark written when it moved), then InsightsPart's attribute_strategy_outcomes.
    private const string FrontierSql = InsightsStore.AdvanceFrontierSql;

    private const string ClockSql = "select hourglass.now()";

    private const string TenantZoneSql = "select timezone from public.tenants where id = $1";

    private const string WatermarkSql = InsightsStore.WatermarkSql;

    private const string PageSettingSql = InsightsStore.PageSettingSql;

    private const string PageSql = InsightsStore.PageSql;

    private const string MarkSql = InsightsStore.AdvanceWatermarkSql;

    private const string AttributeSql = InsightsStore.AttributeStrategyOutcomesSql;

    // InsightsEngine's defaults, as the part constructs it.
    private const int EventPageSize = 10_000;
    private const long MaxEventsPerCycle = 500_000;

    // Plan, Approvals: ApprovalPart.ProposeAsync (a fenced transaction, then the approved actions).
    private const string ExpireApprovalsSql = """
        update public.cards set status = 'expired', updated_at = hourglass.now()
        where tenant_id = $1 and kind = 'approval' and status = 'open' and due_at < hourglass.now()
        """;

    private const string ApprovedSql = ApprovalCardStore.ApprovedNotRunSql;

    // Plan, Engagement: EngagementCompliancePart.ProposeAsync (a fenced transaction).
    private const string RefreshSql = EngagementStore.RefreshComplianceSql;

    // Plan, Touches: TouchTaskPart.ProposeAsync (the strategies; none active here, so no policy, declines or caps read).
    private const string StrategiesSql = InsightsStore.ActiveTouchStrategiesSql;

    private const string QueueSql = """
        select q.entity_type, q.entity_id, q.account_id, q.owner_user_id, q.compliance_status, q.days_overdue, q.next_touch_due,
               q.priority_score, coalesce(q.priority_reason, q.compliance_status), coalesce(k.name, a.name), a.tier, a.segment, a.name,
               k.timezone, a.timezone
        from hourglass.touch_candidates($1, $2, true) q
        left join public.contacts k on q.entity_type = 'contact' and k.tenant_id = $1 and k.id = q.entity_id
        left join public.accounts a on a.tenant_id = $1 and a.id = q.account_id
        order by q.priority_score desc, q.next_touch_due, q.clock_id
        """;

    private const int QueueDepth = 200;

    // Plan, Orders: OrderProcessor.DrainAsync (approvals decided, then claims until the queue is empty).
    private const string RequeueSql = """
        update public.order_processing_queue q set status = 'pending', updated_at = hourglass.now()
        where q.status = 'needs_approval' and ($1::uuid is null or q.tenant_id = $1)
          and exists (select 1 from public.cards k
                      where k.tenant_id = q.tenant_id and k.kind = 'approval' and k.status in ('done', 'dismissed')
                        and k.payload ->> 'action_key' = 'order-release/' || q.id::text and k.completed_at >= q.updated_at)
        """;

    private const string ClaimOrdersSql = """
        select c.queue_id, c.tenant_id, c.order_id, c.claim_token, c.auto_fix_attempts, c.max_auto_fix_attempts,
               c.credit_override_by, c.credit_override_reason, (select hourglass.now())
        from public.claim_orders($1, $2, $3, $4) c
        """;

    // OrderProcessorOptions' defaults.
    private const int OrderBatchSize = 100;
    private const int OrderVisibilitySeconds = 300;

    private const string CountActionsSql = ActionLedger.CountSucceededSinceSql;

    // RunsStore.SavePhaseAsync after Plan, Act and React (a fenced batch).
    private static readonly string s_savePlanSql = RunsStore.SavePlanSql;
    private static readonly string s_saveActSql = RunsStore.SaveActSql;
    private static readonly string s_saveReactSql = RunsStore.SaveReactSql;

    // Act, once: DocumentPolicyEnforcer.PrepareAsync (the policy in force, the week's touches, the targets' facts).
    private const string PolicySql = """
        select version, document::text, created_by, created_at from public.tenant_policy_documents
        where tenant_id = $1 and ($2::integer is null or version = $2)
        order by version desc limit 1
        """;

    private const string PolicyHistorySql = ActionLedger.TouchHistorySql;

    private const string PolicyFactsSql = TenancyStore.SubjectFactsSql;

    // Act, per action: TenantControl.ReadBlockReasonAsync, then ExecuteOnceAsync's fenced transaction: the ledger row
    // locked, TouchTaskHandler's card, the ledger upsert.
    private const string PauseSql = TenantControl.BlockReasonSql;

    private const string LedgerLockSql = ActionLedger.SucceededForUpdateSql;

    private const string CardSql = """
        insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, run_id, assignee_user_id, due_at, payload)
        values ($1, 'touch_task', $2, $3, $4, $5, $6, $7, greatest($8, hourglass.now() + interval '1 day'), $9)
        on conflict (tenant_id, entity_type, entity_id) where kind = 'touch_task' and status = 'open' do nothing
        returning id
        """;

    private const string LedgerSql = ActionLedger.RecordSql;

    // React: RunsStore.LastFinishedStartAsync, then InsightsPart.ReactAsync (the only part that reacts).
    private const string PreviousRunSql = RunsStore.LastFinishedStartSql;

    private const string PatternsSql = InsightsStore.ConfirmedPatternsSql;

    // Reflect: the parts' MeasureAsync in the composition's order (Insights, Engagement and its movement, Orders),
    // CycleEngine.PreviousMetricsAsync, then the reflection (a fenced batch).
    private const string InsightsMeasureSql = InsightsStore.MeasuresSql;

    private const string MeasureSql = EngagementStore.ClockCountsSql;

    private const string MovementSql = """
        select m.newly_overdue, m.recovered
        from public.engagement_movement($1, coalesce(
          (select r.started_at from public.agent_autonomous_runs r
           where r.tenant_id = $1 and r.id <> $2 and r.status in ('completed', 'partial', 'failed')
           order by r.started_at desc limit 1),
          hourglass.now() - interval '1 hour')) m
        """;

    private const string OrdersMeasureSql = """
        select count(*) filter (where q.status = 'pending'),
               count(*) filter (where q.status = 'needs_approval'),
               (select count(*) from public.order_processing_exceptions e where e.tenant_id = $1 and e.resolution_status in ('open', 'in_review'))
        from public.order_processing_queue q where q.tenant_id = $1
        """;

    private const string PreviousMetricsSql = HourlyReflections.PreviousMetricsSql;

    private const string ReflectionSql = HourlyReflections.AddRunSql;

    // RunsStore.FinishAsync (a fenced batch).
    private const string FinishSql = RunsStore.FinishSql;

    // TenantLease.DisposeAsync and ScheduleStore.CompleteClaimAsync.
    private const string ReleaseSql = TenantLease.ReleaseLockSql;

    private const string CompleteSql = ScheduleStore.CompleteClaimSql;

    /// <summary>The statements in the order a cycle runs them (per pass: reap, claim), for the per-statement table.</summary>
    public static readonly string[] StatementOrder =
    [
        "reap (per pass)", "claim (per pass)", "acquire_tenant_lease", "load tenant", "assert_lock_token", "insert run",
        "insights: frontier, clock, zone", "insights: watermarks (per detector)", "insights: event pages", "insights: watermark write",
        "attribute_strategy_outcomes", "approvals: expire", "approvals: approved", "refresh_engagement_compliance", "strategies",
        "touch candidates", "orders: requeue decided", "orders: claim", "count actions today", "update run (plan, act, react)",
        "policy: document, history, facts", "pause check (per action)", "savepoint (per action)", "ledger lock (per action)",
        "card insert (per action)", "ledger upsert (per action)", "previous run", "insights: patterns (react)", "measure (insights, clocks, movement, orders)",
        "previous metrics", "reflection upsert", "finish run", "commit", "release_tenant_lock", "complete claim",
    ];

    private readonly CycleDocuments _documents;
    private readonly int _leaseMinutes;
    private readonly int _claimLimit;
    private readonly bool _actInOneTransaction;
    private readonly Dictionary<string, long> _ticks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _counts = new(StringComparer.Ordinal);
    private long _cycles;

    // Ticks counted by timed steps inside the one being timed, so each step counts only its own time.
    private long _nested;

    // Rows the last fenced batch's statement affected.
    private int _lastRecordsAffected;

    /// <param name="documents">The JSON a real run of the same workload wrote, sent again by every baseline cycle.</param>
    /// <param name="leaseMinutes">As the worker's <c>LeaseMinutes</c>.</param>
    /// <param name="claimLimit">Tenants claimed per pass: the worker claims <c>MaxConcurrentCycles * 2</c>.</param>
    /// <param name="actInOneTransaction">
    /// A what-if, not what the engine does: the Act phase in one fenced transaction with a savepoint per action,
    /// instead of a fenced transaction (and a commit) per action.
    /// </param>
    public CycleBaseline(CycleDocuments documents, int leaseMinutes, int claimLimit, bool actInOneTransaction = false)
    {
        _documents = documents;
        _leaseMinutes = leaseMinutes;
        _claimLimit = claimLimit;
        _actInOneTransaction = actInOneTransaction;
    }

    /// <summary>Per statement: mean executions and mean milliseconds per cycle over all runs so far, in cycle order.</summary>
    public IReadOnlyList<(string Statement, double Executions, double Milliseconds)> PerCycle() =>
        StatementOrder.Select(s => (s,
            _counts.GetValueOrDefault(s) / (double)Math.Max(_cycles, 1),
            _ticks.GetValueOrDefault(s) * 1000.0 / Stopwatch.Frequency / Math.Max(_cycles, 1))).ToList();

    /// <summary>Passes until nothing is due, as <c>while (await worker.RunOnceAsync(…) > 0)</c>; returns the cycles run.</summary>
    public async Task<int> RunAsync(NpgsqlDataSource dataSource, string workerId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var cycles = 0;
        while (true)
        {
            await TimedAsync("reap (per pass)", () => ExecuteAsync(connection, null, ReapSql, cancellationToken, Now()));
            var claimed = await TimedAsync("claim (per pass)", () => ClaimAsync(connection, workerId, cancellationToken));
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
        await using var command = Command(connection, null, ClaimSql, [workerId, _claimLimit, _leaseMinutes]);
        var claimed = new List<(Guid, DateTimeOffset)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            claimed.Add((reader.GetGuid(0), reader.GetFieldValue<DateTimeOffset>(3)));
        }

        return claimed;
    }

    private sealed record Touch(string EntityType, Guid EntityId, decimal Priority, string Reason, JsonObject Payload, string? Name, Guid? Owner, DateTimeOffset Due);

    // The bench tenants are hourly in UTC and made due at the top of the current hour, so the occurrence the
    // worker finds (CycleSchedule.Between) is next_due_at itself and the next one is an hour later.
    private async Task CycleAsync(NpgsqlConnection connection, string workerId, Guid tenant, DateTimeOffset nextDueAt, CancellationToken cancellationToken)
    {
        var hour = nextDueAt;
        var token = await TimedAsync("acquire_tenant_lease", async () =>
            await ScalarAsync(connection, null, AcquireSql, cancellationToken, tenant, workerId, _leaseMinutes) as long?
            ?? throw new HourglassException($"cycles: the baseline could not acquire the lease on tenant {tenant}."));

        var (perCycle, perDay) = await TimedAsync("load tenant", async () =>
        {
            await using var command = Command(connection, null, LoadTenantSql, [tenant]);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            return (reader.GetInt32(1), reader.GetInt32(2));
        });

        var metrics = $$"""{"dry_run":false,"hour_bucket":"{{hour:O}}","covered_hours":["{{hour:O}}"]}""";
        var runId = await FencedBatchAsync(connection, tenant, token, "insert run", InsertRunSql, cancellationToken,
            tenant, "schedule", hour, Now(), workerId, token, Jsonb(metrics)) as Guid?
            ?? throw new HourglassException("cycles: the baseline's run insert returned no id.");

        // Plan: Insights, Approvals, Engagement, Touches, Orders, in the composition's order.
        await InsightsAsync(connection, tenant, cancellationToken);
        await TimedAsync("attribute_strategy_outcomes", () => ExecuteAsync(connection, null, AttributeSql, cancellationToken, tenant));
        await FencedAsync(connection, tenant, token, "approvals: expire",
            transaction => ExecuteAsync(connection, transaction, ExpireApprovalsSql, cancellationToken, tenant), cancellationToken);
        var approved = await TimedAsync("approvals: approved", () => ReadAllAsync(connection, ApprovedSql, cancellationToken, tenant));
        if (approved > 0)
        {
            throw new HourglassException($"cycles: tenant {tenant} has approved actions to run; the baseline does not mirror them.");
        }

        await FencedAsync(connection, tenant, token, "refresh_engagement_compliance",
            transaction => ScalarAsync(connection, transaction, RefreshSql, cancellationToken, tenant), cancellationToken);
        if (await TimedAsync("strategies", () => ReadAllAsync(connection, StrategiesSql, cancellationToken, tenant)) > 0)
        {
            throw new HourglassException($"cycles: tenant {tenant} has active strategies; the baseline does not mirror choosing among them.");
        }

        var touches = await TimedAsync("touch candidates", () => QueueAsync(connection, tenant, cancellationToken));
        await TimedAsync("orders: requeue decided", () => ExecuteAsync(connection, null, RequeueSql, cancellationToken,
            new NpgsqlParameter { Value = tenant, NpgsqlDbType = NpgsqlDbType.Uuid }));
        var claimedOrders = await TimedAsync("orders: claim", () => ReadAllAsync(connection, ClaimOrdersSql, cancellationToken,
            new NpgsqlParameter { Value = $"cycle:{runId}", NpgsqlDbType = NpgsqlDbType.Text },
            new NpgsqlParameter { Value = OrderBatchSize, NpgsqlDbType = NpgsqlDbType.Integer },
            new NpgsqlParameter { Value = OrderVisibilitySeconds, NpgsqlDbType = NpgsqlDbType.Integer },
            new NpgsqlParameter { Value = tenant, NpgsqlDbType = NpgsqlDbType.Uuid }));
        if (claimedOrders > 0)
        {
            throw new HourglassException($"cycles: tenant {tenant} had {claimedOrders} orders queued; the baseline does not decide orders.");
        }

        var midnight = new DateTimeOffset(Now().UtcDateTime.Date, TimeSpan.Zero);
        var takenToday = (long)(await TimedAsync("count actions today",
            () => ScalarAsync(connection, null, CountActionsSql, cancellationToken, tenant, midnight, hour)))!;
        var selected = touches.OrderByDescending(t => t.Priority).Take((int)Math.Min(perCycle, Math.Max(0, perDay - takenToday))).ToList();
        await SavePhaseAsync(connection, tenant, token, s_savePlanSql, runId, _documents.PlanOutput, cancellationToken);

        // Act: the policy's document, the week's touches and the targets' facts once, then each action.
        var now = Now();
        await TimedAsync("policy: document, history, facts", async () =>
        {
            await ReadAllAsync(connection, PolicySql, cancellationToken, tenant, new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
            await ReadAllAsync(connection, PolicyHistorySql, cancellationToken, tenant, now,
                new NpgsqlParameter { Value = hour, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            if (selected.Count > 0)
            {
                await ReadAllAsync(connection, PolicyFactsSql, cancellationToken, tenant, selected.Select(t => t.EntityId).Distinct().ToArray());
            }

            return 0;
        });
        if (_actInOneTransaction && selected.Count > 0)
        {
            await ActInOneTransactionAsync(connection, tenant, token, runId, hour, selected, cancellationToken);
        }
        else
        {
            foreach (var touch in selected)
            {
                await TimedAsync("pause check (per action)", () => ScalarAsync(connection, null, PauseSql, cancellationToken, tenant));
                await FencedAsync(connection, tenant, token, "ledger lock (per action)",
                    transaction => ActAsync(connection, transaction, tenant, runId, hour, touch, cancellationToken), cancellationToken);
            }
        }

        await SavePhaseAsync(connection, tenant, token, s_saveActSql, runId, _documents.ActOutput, cancellationToken);

        // React.
        var since = await TimedAsync("previous run", () => ScalarAsync(connection, null, PreviousRunSql, cancellationToken, tenant, runId));
        await TimedAsync("insights: patterns (react)", () => ReadAllAsync(connection, PatternsSql, cancellationToken, tenant,
            since is DateTime last ? new DateTimeOffset(last) : now.AddHours(-1)));
        await SavePhaseAsync(connection, tenant, token, s_saveReactSql, runId, _documents.ReactOutput, cancellationToken);

        // Reflect.
        await TimedAsync("measure (insights, clocks, movement, orders)", async () =>
        {
            await ReadAllAsync(connection, InsightsMeasureSql, cancellationToken, tenant);
            await ReadAllAsync(connection, MeasureSql, cancellationToken, tenant);
            await ReadAllAsync(connection, MovementSql, cancellationToken, tenant, runId);
            await ReadAllAsync(connection, OrdersMeasureSql, cancellationToken, tenant);
            return 0;
        });
        await TimedAsync("previous metrics", () => ScalarAsync(connection, null, PreviousMetricsSql, cancellationToken, tenant, hour));
        // The run's own entry, as the engine writes it: the copied one, under this run's id.
        var entry = JsonNode.Parse(_documents.ReflectionEntry)!.AsObject();
        entry["run_id"] = runId.ToString();
        await FencedBatchAsync(connection, tenant, token, "reflection upsert", ReflectionSql, cancellationToken,
            tenant, runId, hour, Jsonb(entry.ToJsonString()));
        await FencedBatchAsync(connection, tenant, token, "finish run", FinishSql, cancellationToken,
            runId, "completed", Text(null), Jsonb(_documents.ReflectOutput), Now(), selected.Count, selected.Count, 0, Jsonb(_documents.Phases));
        if (_lastRecordsAffected != 1)
        {
            throw new HourglassException($"cycles: the baseline's run {runId} was no longer running when it finished.");
        }

        await TimedAsync("release_tenant_lock", () => ScalarAsync(connection, null, ReleaseSql, cancellationToken, tenant, workerId));
        await TimedAsync("complete claim", () => ReadRowAsync(connection, CompleteSql, cancellationToken,
            tenant, workerId, hour, hour.AddHours(1), false, Now(), Text(null)));
    }

    // InsightsEngine.RunAsync with the default detectors: the frontier, the clock, the tenant's zone; per detector its
    // watermark and, when the frontier is past it, its pages of events (sized as the engine sizes them) and the new
    // watermark. The benchmark's hours bring no new events for the standard tenants and their time sweep is not due
    // (the loader ran the detectors): anything else is folding the baseline does not do, and it says so.
    private async Task InsightsAsync(NpgsqlConnection connection, Guid tenant, CancellationToken cancellationToken)
    {
        var (frontier, now) = await TimedAsync("insights: frontier, clock, zone", async () =>
        {
            var f = (long)(await ScalarAsync(connection, null, FrontierSql, cancellationToken))!;
            var n = new DateTimeOffset((DateTime)(await ScalarAsync(connection, null, ClockSql, cancellationToken))!, TimeSpan.Zero);
            await ScalarAsync(connection, null, TenantZoneSql, cancellationToken, tenant);
            return (f, n);
        });
        foreach (var detector in InsightsEngine.DefaultDetectors)
        {
            var (start, sweptAt) = await TimedAsync("insights: watermarks (per detector)", async () =>
            {
                await using var command = Command(connection, null, WatermarkSql, [tenant, detector.Name]);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                return await reader.ReadAsync(cancellationToken)
                    ? (reader.GetInt64(0), reader.IsDBNull(1) ? (DateTimeOffset?)null : reader.GetFieldValue<DateTimeOffset>(1))
                    : (0L, null);
            });
            if (detector.TimeDependentPatterns.Count > 0 && (sweptAt is not { } swept || now - swept >= InsightsEngine.DefaultTimeSweepInterval))
            {
                throw new HourglassException($"cycles: the {detector.Name} time sweep is due for tenant {tenant}; the baseline does not evaluate patterns.");
            }

            var watermark = start;
            long span = EventPageSize;
            while (watermark < frontier)
            {
                var upper = watermark + Math.Min(span, frontier - watermark);
                var events = await TimedAsync("insights: event pages", async () =>
                {
                    await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                    await ExecuteAsync(connection, transaction, PageSettingSql, cancellationToken);
                    await using var command = Command(connection, transaction, PageSql,
                        [tenant, watermark, upper, detector.EventTypes.ToArray(), (int)Math.Min(EventPageSize, MaxEventsPerCycle)]);
                    var count = 0;
                    await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
                    {
                        while (await reader.ReadAsync(cancellationToken))
                        {
                            count++;
                        }
                    }

                    await transaction.CommitAsync(cancellationToken);
                    return count;
                });
                if (events > 0)
                {
                    throw new HourglassException($"cycles: tenant {tenant} has {events} new events for {detector.Name}; the baseline does not fold events.");
                }

                // As the engine: an empty page covered its whole range, and the next range is 8 times as wide.
                var covered = upper - watermark;
                span = covered > long.MaxValue / 8 ? long.MaxValue : covered * 8;
                watermark = upper;
            }

            if (watermark > start)
            {
                await TimedAsync("insights: watermark write", async () =>
                {
                    await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                    await ExecuteAsync(connection, transaction, MarkSql, cancellationToken, tenant, detector.Name, watermark, 0L, now);
                    await transaction.CommitAsync(cancellationToken);
                    return 0;
                });
            }
        }
    }

    private async Task<List<Touch>> QueueAsync(NpgsqlConnection connection, Guid tenant, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, null, QueueSql, [tenant, QueueDepth]);
        var touches = new List<Touch>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var due = reader.GetFieldValue<DateTimeOffset>(6);
            var name = reader.IsDBNull(9) ? null : reader.GetString(9);
            Guid? owner = reader.IsDBNull(3) ? null : reader.GetGuid(3);
            var payload = new JsonObject
            {
                ["account_id"] = reader.IsDBNull(2) ? null : reader.GetGuid(2).ToString(),
                ["owner_user_id"] = owner?.ToString(),
                ["compliance_status"] = reader.GetString(4),
                ["days_overdue"] = reader.GetInt32(5),
                ["next_touch_due"] = due.ToString("O"),
                ["name"] = name,
            };
            touches.Add(new Touch(reader.GetString(0), reader.GetGuid(1), reader.GetDecimal(7), reader.GetString(8), payload, name, owner, due));
        }

        return touches;
    }

    // ExecuteOnceAsync's work inside its transaction: the ledger row locked, TouchTaskHandler's card, the ledger upsert.
    private async Task<int> ActAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenant, Guid runId, DateTimeOffset hour, Touch touch,
        CancellationToken cancellationToken)
    {
        var key = $"{hour.UtcDateTime.ToString("yyyy-MM-ddTHH", CultureInfo.InvariantCulture)}Z/touch_task/{touch.EntityType}/{touch.EntityId}";
        await ScalarAsync(connection, transaction, LedgerLockSql, cancellationToken, tenant, key);
        var card = await TimedAsync("card insert (per action)", () => ScalarAsync(connection, transaction, CardSql, cancellationToken,
            tenant, $"Touch base with {touch.Name ?? touch.EntityType}", $"Why now: {touch.Reason}.", touch.EntityType, touch.EntityId, runId,
            new NpgsqlParameter { Value = (object?)touch.Owner ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid }, touch.Due, Jsonb(touch.Payload.ToJsonString())));
        var result = new JsonObject { ["card_id"] = card?.ToString(), ["already_open"] = card is null };
        return await TimedAsync("ledger upsert (per action)", () => ExecuteAsync(connection, transaction, LedgerSql, cancellationToken,
            tenant, runId, key, hour, "touch_task", Text(touch.EntityType), new NpgsqlParameter { Value = touch.EntityId, NpgsqlDbType = NpgsqlDbType.Uuid },
            touch.Priority, touch.Reason, Jsonb(touch.Payload.ToJsonString()), Text("allow"), "succeeded", Jsonb(result.ToJsonString()), Text(null), Now()));
    }

    // The what-if: one fence and one commit for the whole Act phase. A savepoint per action keeps a failing
    // handler's effects (and only its) out, as its own transaction does now; the pause is still read before
    // every action, inside the transaction (READ COMMITTED sees a pause committed meanwhile).
    private async Task ActInOneTransactionAsync(NpgsqlConnection connection, Guid tenant, long token, Guid runId, DateTimeOffset hour,
        IReadOnlyList<Touch> touches, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await TimedAsync("assert_lock_token", () => ExecuteAsync(connection, transaction, AssertSql, cancellationToken, tenant, token));
        foreach (var touch in touches)
        {
            await TimedAsync("pause check (per action)", () => ScalarAsync(connection, transaction, PauseSql, cancellationToken, tenant));
            await TimedAsync("savepoint (per action)", async () =>
            {
                await transaction.SaveAsync("action", cancellationToken);
                return 0;
            });
            await TimedAsync("ledger lock (per action)", () => ActAsync(connection, transaction, tenant, runId, hour, touch, cancellationToken));
            await TimedAsync("savepoint (per action)", async () =>
            {
                await transaction.ReleaseAsync("action", cancellationToken);
                return 0;
            });
        }

        await TimedAsync("commit", async () =>
        {
            await transaction.CommitAsync(cancellationToken);
            return 0;
        });
    }

    private Task<object?> SavePhaseAsync(NpgsqlConnection connection, Guid tenant, long token, string sql, Guid runId, string output, CancellationToken cancellationToken) =>
        FencedBatchAsync(connection, tenant, token, "update run (plan, act, react)", sql, cancellationToken, runId, Jsonb(output), Jsonb(_documents.Phases));

    // As FencedDatabase.ExecuteAsync: the fence and the statement as one batch (one implicit transaction, one round trip).
    // Returns the statement's first value; its rows affected are left in _lastRecordsAffected. The batch's time is
    // counted under name.
    private Task<object?> FencedBatchAsync(NpgsqlConnection connection, Guid tenant, long token, string name, string sql,
        CancellationToken cancellationToken, params object[] parameters) =>
        TimedAsync(name, async () =>
        {
            await using var batch = new NpgsqlBatch(connection);
            var fence = new NpgsqlBatchCommand(AssertSql);
            fence.Parameters.Add(new NpgsqlParameter { Value = tenant });
            fence.Parameters.Add(new NpgsqlParameter { Value = token });
            batch.BatchCommands.Add(fence);
            var statement = new NpgsqlBatchCommand(sql);
            foreach (var parameter in parameters)
            {
                statement.Parameters.Add(parameter as NpgsqlParameter ?? new NpgsqlParameter { Value = parameter });
            }

            batch.BatchCommands.Add(statement);
            object? value;
            await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
            {
                await reader.NextResultAsync(cancellationToken);
                value = await reader.ReadAsync(cancellationToken) && reader.FieldCount > 0 && !reader.IsDBNull(0) ? reader.GetValue(0) : null;
                while (await reader.NextResultAsync(cancellationToken))
                {
                }
            }

            _lastRecordsAffected = statement.RecordsAffected;
            return value;
        });

    // As FencedDatabase.InTransactionAsync: BEGIN (sent by Npgsql with the first statement), the fence, the work, COMMIT.
    // The work's time is counted under name, less what it counted under names of its own.
    private async Task<T> FencedAsync<T>(NpgsqlConnection connection, Guid tenant, long token, string name,
        Func<NpgsqlTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await TimedAsync("assert_lock_token", () => ExecuteAsync(connection, transaction, AssertSql, cancellationToken, tenant, token));
        var result = await TimedAsync(name, () => work(transaction));
        await TimedAsync("commit", async () =>
        {
            await transaction.CommitAsync(cancellationToken);
            return 0;
        });
        return result;
    }

    private async Task<T> TimedAsync<T>(string name, Func<Task<T>> action)
    {
        var nestedBefore = _nested;
        var started = Stopwatch.GetTimestamp();
        var result = await action();
        var elapsed = Stopwatch.GetTimestamp() - started;
        var own = elapsed - (_nested - nestedBefore);
        _ticks[name] = _ticks.GetValueOrDefault(name) + own;
        _counts[name] = _counts.GetValueOrDefault(name) + 1;
        _nested = nestedBefore + elapsed;
        return result;
    }

    private static DateTimeOffset Now() => TimeProvider.System.GetUtcNow();

    private static NpgsqlParameter Jsonb(string json) => new() { Value = json, NpgsqlDbType = NpgsqlDbType.Jsonb };

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

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
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is DBNull ? null : value;
    }

    // Reads every row's columns, as the parts do with their readers; returns the rows.
    private static async Task<int> ReadAllAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = Command(connection, null, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = 0;
        var values = new object[reader.FieldCount];
        while (await reader.ReadAsync(cancellationToken))
        {
            reader.GetValues(values);
            rows++;
        }

        return rows;
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
