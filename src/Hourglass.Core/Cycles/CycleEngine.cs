using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Policies;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Cycles;

/// <summary>What to run: one tenant, one hour (or a catch-up over several), for real or as a dry run.</summary>
public sealed record CycleRequest(
    Guid TenantId,
    DateTimeOffset ScheduledFor,
    CycleTrigger Trigger,
    string WorkerId,
    IReadOnlyList<DateTimeOffset>? CoveredHours = null,
    bool DryRun = false);

/// <summary>How a cycle ended.</summary>
public sealed record CycleResult(Guid RunId, string Status, int ActionsPlanned, int ActionsTaken, int ActionsBlocked, int ActionsFailed, string? Error);

/// <summary>
/// Runs one tenant's cycle: Plan → Act → React → Reflect, each phase's output and timing stored in
/// agent_autonomous_runs as it completes, every write fenced by the lease token. The engine knows no part's
/// details: parts propose and measure, handlers act, the policy enforcer decides.
/// </summary>
public sealed partial class CycleEngine
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private readonly NpgsqlDataSource _dataSource;
    private readonly IReadOnlyList<ICyclePart> _parts;
    private readonly IReadOnlyDictionary<string, IActionHandler> _handlers;
    private readonly IPolicyEnforcer _policy;
    private readonly ISummaryWriter _summaries;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public CycleEngine(
        NpgsqlDataSource dataSource,
        IEnumerable<ICyclePart> parts,
        IEnumerable<IActionHandler> handlers,
        IPolicyEnforcer? policy = null,
        ISummaryWriter? summaries = null,
        TimeProvider? time = null,
        ILogger<CycleEngine>? logger = null)
    {
        _dataSource = dataSource;
        _parts = parts.ToList();
        _handlers = handlers.ToDictionary(h => h.Kind, StringComparer.Ordinal);
        _policy = policy ?? new AllowAllPolicyEnforcer();
        _summaries = summaries ?? new TemplateSummaryWriter();
        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    public NpgsqlDataSource DataSource => _dataSource;

    public TimeProvider Time => _time;

    /// <summary>Runs the cycle under <paramref name="leaseToken"/> (null only for dry runs).</summary>
    public async Task<CycleResult> RunAsync(CycleRequest request, long? leaseToken, CancellationToken cancellationToken)
    {
        if (leaseToken is null && !request.DryRun)
        {
            throw new ArgumentException("a real cycle needs a lease token", nameof(leaseToken));
        }

        using var activity = CycleTelemetry.Source.StartActivity("cycle");
        activity?.SetTag("hourglass.tenant_id", request.TenantId);
        activity?.SetTag("hourglass.trigger", TriggerName(request.Trigger));
        var database = new FencedDatabase(_dataSource, request.TenantId, leaseToken);
        var tenant = await LoadTenantAsync(request.TenantId, cancellationToken);
        var hour = CycleSchedule.HourBucket(request.ScheduledFor);
        var runId = await StartRunAsync(database, request, leaseToken, cancellationToken);
        var context = new CycleContext(request.TenantId, runId, hour, _time.GetUtcNow(), request.Trigger, request.DryRun, tenant.Zone, database);
        CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", "started"));
        LogCycleStarted(_logger, request.TenantId, runId, hour, TriggerName(request.Trigger), request.DryRun);

        var phases = new JsonObject();
        try
        {
            var plan = await TimedAsync(phases, "plan", request.TenantId, () => PlanAsync(context, tenant, cancellationToken));
            await SavePhaseAsync(database, runId, "plan_output", plan.Output, phases, cancellationToken);
            await Failpoints.HitAsync("cycle.after_plan", cancellationToken);

            var act = await TimedAsync(phases, "act", request.TenantId, () => ActAsync(context, plan.Selected, cancellationToken));
            await SavePhaseAsync(database, runId, "act_output", act.Output, phases, cancellationToken);

            var react = await TimedAsync(phases, "react", request.TenantId, () => ReactAsync(context, cancellationToken));
            await SavePhaseAsync(database, runId, "react_output", react.Output, phases, cancellationToken);

            var partErrors = plan.Errors.Concat(react.Errors).ToList();
            var reflect = await TimedAsync(phases, "reflect", request.TenantId,
                () => ReflectAsync(context, plan, act, react, partErrors, cancellationToken));

            var status = act.Failed > 0 || partErrors.Count > 0 ? "partial" : "completed";
            var error = status == "partial"
                ? string.Join("; ", act.Outcomes.Where(o => o.Status == "failed").Select(o => $"{o.Action.Kind} {o.Action.TargetId}: {o.Error}").Concat(partErrors))
                : null;
            await FinishRunAsync(database, runId, status, error, reflect, plan.Selected.Count, act.Taken, act.Blocked, phases, cancellationToken);
            CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", status));
            LogCycleFinished(_logger, request.TenantId, runId, status, act.Taken, act.Blocked, act.Failed);
            return new CycleResult(runId, status, plan.Selected.Count, act.Taken, act.Blocked, act.Failed, error);
        }
        catch (LeaseLostException)
        {
            // The run row is no longer ours to write: the successor's reaper marks it abandoned.
            CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", "lease_lost"));
            LogLeaseLost(_logger, request.TenantId, runId);
            throw;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogCycleFailed(_logger, request.TenantId, runId, ex);
            await FinishRunAsync(database, runId, "failed", $"{ex.GetType().Name}: {ex.Message}", null, 0, 0, 0, phases, CancellationToken.None);
            CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", "failed"));
            return new CycleResult(runId, "failed", 0, 0, 0, 0, ex.Message);
        }
    }

    // ------------------------------------------------------------------------------------------- Plan

    internal sealed record PlanResult(JsonObject Output, IReadOnlyList<ProposedAction> Selected, IReadOnlyList<(ProposedAction Action, string Reason)> Deferred, IReadOnlyList<string> Errors);

    private async Task<PlanResult> PlanAsync(CycleContext context, TenantInfo tenant, CancellationToken cancellationToken)
    {
        var proposals = new List<(ProposedAction Action, string Part)>();
        var errors = new List<string>();
        // How long each part took to propose: where a slow Plan spends its time, for operators (and the simulator's report).
        var partMs = new JsonObject();
        foreach (var part in _parts)
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                foreach (var action in await part.ProposeAsync(context, cancellationToken))
                {
                    proposals.Add((action, part.Name));
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException and not LeaseLostException)
            {
                errors.Add($"{part.Name} could not plan: {ex.Message}");
            }

            partMs[part.Name] = Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 3);
        }

        // One action per idempotency key: two parts proposing the same thing in one hour is one action.
        var ordered = proposals
            .GroupBy(p => p.Action.IdempotencyKey(context.HourBucket))
            .Select(g => g.OrderByDescending(p => p.Action.Priority).First())
            .OrderByDescending(p => p.Action.Priority)
            .ToList();

        var takenToday = await CountActionsTodayAsync(context, tenant.Zone, cancellationToken);
        var dayRemaining = Math.Max(0, tenant.MaxActionsPerDay - takenToday);
        var selected = new List<ProposedAction>();
        var deferred = new List<(ProposedAction, string)>();
        foreach (var (action, _) in ordered)
        {
            if (selected.Count >= tenant.MaxActionsPerCycle)
            {
                deferred.Add((action, $"budget: at most {tenant.MaxActionsPerCycle} actions per cycle"));
            }
            else if (selected.Count >= dayRemaining)
            {
                deferred.Add((action, $"budget: at most {tenant.MaxActionsPerDay} actions per day ({takenToday} taken today)"));
            }
            else
            {
                selected.Add(action);
            }
        }

        CycleTelemetry.Actions.Add(selected.Count, new KeyValuePair<string, object?>("outcome", "planned"));
        CycleTelemetry.Actions.Add(deferred.Count, new KeyValuePair<string, object?>("outcome", "deferred"));
        var output = new JsonObject
        {
            ["proposals"] = new JsonArray(ordered.Select(p => (JsonNode)Describe(p.Action, context.HourBucket, p.Part)).ToArray()),
            ["selected"] = new JsonArray(selected.Select(a => (JsonNode)a.IdempotencyKey(context.HourBucket)).ToArray()),
            ["deferred"] = new JsonArray(deferred.Select(d => (JsonNode)new JsonObject
            {
                ["key"] = d.Item1.IdempotencyKey(context.HourBucket),
                ["reason"] = d.Item2,
            }).ToArray()),
            ["budgets"] = new JsonObject
            {
                ["per_cycle"] = tenant.MaxActionsPerCycle,
                ["per_day"] = tenant.MaxActionsPerDay,
                ["taken_today"] = takenToday,
            },
            ["errors"] = new JsonArray(errors.Select(e => (JsonNode)e).ToArray()),
            ["part_ms"] = partMs,
        };
        return new PlanResult(output, selected, deferred, errors);
    }

    private async Task<int> CountActionsTodayAsync(CycleContext context, TimeZoneInfo zone, CancellationToken cancellationToken)
    {
        var local = TimeZoneInfo.ConvertTime(context.Now, zone);
        var midnight = new DateTimeOffset(local.Date, zone.GetUtcOffset(local.Date));
        await using var command = _dataSource.CreateCommand("""
            select count(*) from public.agent_actions
            where tenant_id = $1 and status = 'succeeded' and completed_at >= $2 and hour_bucket <> $3
            """);
        command.Parameters.Add(new() { Value = context.TenantId });
        command.Parameters.Add(new() { Value = midnight.ToUniversalTime() });
        command.Parameters.Add(new() { Value = context.HourBucket });
        return (int)(long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    // -------------------------------------------------------------------------------------------- Act

    internal sealed record ActionOutcome(ProposedAction Action, string Key, string Status, PolicyDecision? Decision, JsonObject? Result, string? Error);

    internal sealed record ActResult(JsonObject Output, IReadOnlyList<ActionOutcome> Outcomes)
    {
        public int Taken => Outcomes.Count(o => o.Status is "succeeded" or "already_done");

        public int Blocked => Outcomes.Count(o => o.Status == "blocked");

        public int Failed => Outcomes.Count(o => o.Status == "failed");
    }

    private async Task<ActResult> ActAsync(CycleContext context, IReadOnlyList<ProposedAction> selected, CancellationToken cancellationToken)
    {
        var outcomes = new List<ActionOutcome>();
        // Time spent deciding (loading the policy's facts and evaluating), reported with the Act output.
        var policyTime = System.Diagnostics.Stopwatch.StartNew();
        await _policy.PrepareAsync(context, selected, cancellationToken);
        policyTime.Stop();
        foreach (var action in selected)
        {
            var key = action.IdempotencyKey(context.HourBucket);

            // The kill switches are read before every side effect, so a pause takes effect mid-cycle.
            var pause = await ReadPauseAsync(context.TenantId, cancellationToken);
            if (pause is not null)
            {
                outcomes.Add(new ActionOutcome(action, key, "blocked", null, null, pause));
                continue;
            }

            policyTime.Start();
            var decision = await _policy.EvaluateAsync(context, action, cancellationToken);
            policyTime.Stop();
            if (context.DryRun)
            {
                outcomes.Add(new ActionOutcome(action, key, decision.Permits ? "would_run" : "blocked", decision, null, decision.Permits ? null : decision.Message));
                continue;
            }

            if (!decision.Permits)
            {
                await RecordLedgerAsync(context, action, key, decision, "blocked", null, decision.Message, cancellationToken);
                outcomes.Add(new ActionOutcome(action, key, "blocked", decision, null, decision.Message ?? decision.VerdictName));
                continue;
            }

            if (!_handlers.TryGetValue(action.Kind, out var handler))
            {
                var missing = $"no handler for actions of kind '{action.Kind}'";
                await RecordLedgerAsync(context, action, key, decision, "failed", null, missing, cancellationToken);
                outcomes.Add(new ActionOutcome(action, key, "failed", decision, null, missing));
                continue;
            }

            outcomes.Add(await ExecuteOnceAsync(context, action, key, decision, handler, cancellationToken));
        }

        CycleTelemetry.Actions.Add(outcomes.Count(o => o.Status == "succeeded"), new KeyValuePair<string, object?>("outcome", "taken"));
        CycleTelemetry.Actions.Add(outcomes.Count(o => o.Status == "blocked"), new KeyValuePair<string, object?>("outcome", "blocked"));
        CycleTelemetry.Actions.Add(outcomes.Count(o => o.Status == "failed"), new KeyValuePair<string, object?>("outcome", "failed"));
        var output = new JsonObject
        {
            ["dry_run"] = context.DryRun,
            ["policy_ms"] = Math.Round(policyTime.Elapsed.TotalMilliseconds, 3),
            ["actions"] = new JsonArray(outcomes.Select(o => (JsonNode)new JsonObject
            {
                ["key"] = o.Key,
                ["kind"] = o.Action.Kind,
                ["target_type"] = o.Action.TargetType,
                ["target_id"] = o.Action.TargetId?.ToString(),
                ["decision"] = o.Decision?.VerdictName,
                ["rules"] = o.Decision is null ? null : new JsonArray(o.Decision.DeterminingRules.Select(r => (JsonNode)r).ToArray()),
                ["policy_version"] = o.Decision?.PolicyVersion,
                ["status"] = o.Status,
                ["result"] = o.Result?.DeepClone(),
                ["error"] = o.Error,
            }).ToArray()),
        };
        return new ActResult(output, outcomes);
    }

    // The ledger row and the handler's effects commit in one fenced transaction: either both or neither.
    // A key already recorded as succeeded (a retried, resumed or replayed cycle) is not run again.
    private async Task<ActionOutcome> ExecuteOnceAsync(
        CycleContext context, ProposedAction action, string key, PolicyDecision decision, IActionHandler handler, CancellationToken cancellationToken)
    {
        try
        {
            return await context.Database.InTransactionAsync(async (connection, transaction) =>
            {
                await using (var existing = new NpgsqlCommand(
                    "select status from public.agent_actions where tenant_id = $1 and idempotency_key = $2 for update", connection, transaction))
                {
                    existing.Parameters.Add(new() { Value = context.TenantId });
                    existing.Parameters.Add(new() { Value = key });
                    if (await existing.ExecuteScalarAsync(cancellationToken) is "succeeded")
                    {
                        return new ActionOutcome(action, key, "already_done", decision, null, null);
                    }
                }

                var result = await handler.ExecuteAsync(context, action, connection, transaction, cancellationToken);
                await UpsertLedgerAsync(connection, transaction, context, action, key, decision, "succeeded", result, null, cancellationToken);
                return new ActionOutcome(action, key, "succeeded", decision, result, null);
            }, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not LeaseLostException)
        {
            // A handler that throws fails its action, not the cycle.
            var error = $"{ex.GetType().Name}: {ex.Message}";
            await RecordLedgerAsync(context, action, key, decision, "failed", null, error, cancellationToken);
            return new ActionOutcome(action, key, "failed", decision, null, error);
        }
    }

    private Task RecordLedgerAsync(CycleContext context, ProposedAction action, string key, PolicyDecision? decision, string status,
        JsonObject? result, string? error, CancellationToken cancellationToken) =>
        context.Database.InTransactionAsync(
            (connection, transaction) => UpsertLedgerAsync(connection, transaction, context, action, key, decision, status, result, error, cancellationToken),
            cancellationToken);

    private async Task UpsertLedgerAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CycleContext context, ProposedAction action,
        string key, PolicyDecision? decision, string status, JsonObject? result, string? error, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            insert into public.agent_actions as a (tenant_id, run_id, idempotency_key, hour_bucket, kind, target_type, target_id,
              priority, reason, payload, decision, status, result, error, completed_at)
            values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            on conflict (tenant_id, idempotency_key) do update set
              run_id = excluded.run_id, decision = excluded.decision, status = excluded.status, result = excluded.result,
              error = excluded.error, completed_at = excluded.completed_at, attempts = a.attempts + 1,
              previous_attempts = a.previous_attempts || jsonb_build_array(jsonb_build_object('run_id', a.run_id, 'status', a.status,
                'decision', a.decision, 'result', a.result, 'error', a.error, 'completed_at', a.completed_at))
            where a.status <> 'succeeded'
            """, connection, transaction);
        command.Parameters.Add(new() { Value = context.TenantId });
        command.Parameters.Add(new() { Value = context.RunId });
        command.Parameters.Add(new() { Value = key });
        command.Parameters.Add(new() { Value = context.HourBucket });
        command.Parameters.Add(new() { Value = action.Kind });
        command.Parameters.Add(new() { Value = (object?)action.TargetType ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = (object?)action.TargetId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = action.Priority });
        command.Parameters.Add(new() { Value = action.Reason });
        command.Parameters.Add(Json(action.Payload ?? []));
        command.Parameters.Add(new() { Value = (object?)decision?.VerdictName ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = status });
        command.Parameters.Add(Json(result));
        command.Parameters.Add(new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = _time.GetUtcNow() });
        await command.ExecuteNonQueryAsync(cancellationToken);
        if (decision is not null)
        {
            await PolicyRecords.WriteAsync(connection, transaction, context, action, key, decision, cancellationToken);
        }
    }

    private async Task<string?> ReadPauseAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
            select case
              when c.paused then 'paused: all tenants (' || coalesce(c.reason, 'no reason given') || ')'
              when s.paused then 'paused: this tenant (' || coalesce(s.paused_reason, 'no reason given') || ')'
            end
            from hourglass.agent_control c
            left join public.agent_tenant_schedules s on s.tenant_id = $1
            where c.singleton
            """);
        command.Parameters.Add(new() { Value = tenantId });
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    // ------------------------------------------------------------------------------------------ React

    internal sealed record ReactResult(JsonObject Output, IReadOnlyList<Hypothesis> Hypotheses, IReadOnlyList<string> Errors);

    private async Task<ReactResult> ReactAsync(CycleContext context, CancellationToken cancellationToken)
    {
        await using var previous = _dataSource.CreateCommand("""
            select started_at from public.agent_autonomous_runs
            where tenant_id = $1 and id <> $2 and status in ('completed', 'partial')
              and coalesce((cycle_metrics ->> 'dry_run')::boolean, false) = false
            order by started_at desc
            limit 1
            """);
        previous.Parameters.Add(new() { Value = context.TenantId });
        previous.Parameters.Add(new() { Value = context.RunId });
        var since = await previous.ExecuteScalarAsync(cancellationToken) is DateTime last ? new DateTimeOffset(last) : (DateTimeOffset?)null;

        var parts = new JsonObject();
        var hypotheses = new List<Hypothesis>();
        var errors = new List<string>();
        foreach (var part in _parts)
        {
            try
            {
                if (await part.ReactAsync(context, since, cancellationToken) is { } reaction)
                {
                    parts[part.Name] = reaction.Observations;
                    hypotheses.AddRange(reaction.Hypotheses);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException and not LeaseLostException)
            {
                errors.Add($"{part.Name} could not react: {ex.Message}");
            }
        }

        return new ReactResult(new JsonObject { ["since"] = since?.ToString("O"), ["parts"] = parts }, hypotheses, errors);
    }

    // ---------------------------------------------------------------------------------------- Reflect

    private async Task<JsonObject> ReflectAsync(CycleContext context, PlanResult plan, ActResult act, ReactResult react,
        IReadOnlyList<string> partErrors, CancellationToken cancellationToken)
    {
        var now = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var part in _parts)
        {
            foreach (var (name, value) in await part.MeasureAsync(context, cancellationToken))
            {
                now[$"{part.Name}.{name}"] = value;
            }
        }

        var before = await PreviousMetricsAsync(context, cancellationToken);
        var moved = new JsonObject();
        foreach (var (name, value) in now.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var had = before.TryGetValue(name, out var b) ? b : (decimal?)null;
            moved[name] = new JsonObject { ["before"] = had, ["after"] = value, ["delta"] = had is null ? null : value - had };
        }

        var facts = new ReflectionFacts(
            context.HourBucket,
            act.Outcomes.Where(o => o.Status is "succeeded" or "already_done" or "would_run")
                .Select(o => new ActionFact(o.Action.Kind, o.Action.TargetType, o.Action.TargetId, o.Action.Reason, o.Status)).ToList(),
            moved,
            act.Outcomes.Where(o => o.Status is "blocked" or "failed")
                .Select(o => new BlockedFact(o.Action.Kind, o.Action.TargetId, o.Status, o.Error ?? "", o.Decision?.DeterminingRules ?? [])).ToList()
                .Concat(partErrors.Select(e => new BlockedFact("part", null, "failed", e, []))).ToList(),
            plan.Deferred.Select(d => new DeferredFact(d.Action.Kind, d.Action.TargetId, d.Action.Reason, d.Reason))
                .Concat(act.Outcomes.Where(o => o.Status == "failed").Select(o => new DeferredFact(o.Action.Kind, o.Action.TargetId, o.Action.Reason, "retry after failure: " + o.Error)))
                .ToList(),
            react.Hypotheses,
            context.DryRun);

        var summary = await _summaries.WriteAsync(facts, cancellationToken);
        var reflection = JsonSerializer.SerializeToNode(facts, s_json)!.AsObject();
        reflection["summary"] = summary;
        // A dry run writes no reflection: the hour's record holds what runs did, not what they would have done.
        if (!context.DryRun)
        {
            await context.Database.ExecuteAsync(
                HourlyReflections.AddRun(context.TenantId, context.RunId, context.HourBucket, HourlyReflections.Entry(context, reflection, moved, react.Output["parts"])),
                cancellationToken);
        }

        return reflection;
    }

    private async Task<Dictionary<string, decimal>> PreviousMetricsAsync(CycleContext context, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
            select what_moved from public.agent_hourly_reflections
            where tenant_id = $1 and hour_bucket < $2 order by hour_bucket desc limit 1
            """);
        command.Parameters.Add(new() { Value = context.TenantId });
        command.Parameters.Add(new() { Value = context.HourBucket });
        var result = new Dictionary<string, decimal>(StringComparer.Ordinal);
        if (await command.ExecuteScalarAsync(cancellationToken) is string json && JsonNode.Parse(json) is JsonObject moved)
        {
            foreach (var (name, node) in moved)
            {
                if (node?["after"] is JsonValue after && after.TryGetValue<decimal>(out var value))
                {
                    result[name] = value;
                }
            }
        }

        return result;
    }

    // ------------------------------------------------------------------------------------- Run record

    private sealed record TenantInfo(TimeZoneInfo Zone, int MaxActionsPerCycle, int MaxActionsPerDay);

    private async Task<TenantInfo> LoadTenantAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
            select t.timezone, coalesce(s.max_actions_per_cycle, 50), coalesce(s.max_actions_per_day, 500)
            from public.tenants t left join public.agent_tenant_schedules s on s.tenant_id = t.id
            where t.id = $1
            """);
        command.Parameters.Add(new() { Value = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            throw new HourglassException($"tenant {tenantId} does not exist");
        }

        var zone = TimeZoneInfo.TryFindSystemTimeZoneById(reader.GetString(0), out var found) ? found : TimeZoneInfo.Utc;
        return new TenantInfo(zone, reader.GetInt32(1), reader.GetInt32(2));
    }

    private async Task<Guid> StartRunAsync(FencedDatabase database, CycleRequest request, long? leaseToken, CancellationToken cancellationToken)
    {
        var metrics = new JsonObject
        {
            ["dry_run"] = request.DryRun,
            ["hour_bucket"] = CycleSchedule.HourBucket(request.ScheduledFor).ToString("O"),
            ["covered_hours"] = new JsonArray((request.CoveredHours ?? [request.ScheduledFor]).Select(h => (JsonNode)h.ToUniversalTime().ToString("O")).ToArray()),
        };
        var command = new NpgsqlBatchCommand("""
            insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, worker_id, lock_token, cycle_metrics)
            values ($1, 'running', $2, $3, $4, $5, $6, $7) returning id
            """);
        command.Parameters.Add(new() { Value = request.TenantId });
        command.Parameters.Add(new() { Value = TriggerName(request.Trigger) });
        command.Parameters.Add(new() { Value = request.ScheduledFor });
        command.Parameters.Add(new() { Value = _time.GetUtcNow() });
        command.Parameters.Add(new() { Value = request.WorkerId });
        command.Parameters.Add(new() { Value = (object?)leaseToken ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(Json(metrics));
        return (Guid)(await database.ExecuteAsync(command, cancellationToken))!;
    }

    private async Task SavePhaseAsync(FencedDatabase database, Guid runId, string column, JsonObject output, JsonObject phases, CancellationToken cancellationToken)
    {
        // The column name comes from this class's constants, never from input.
        var command = new NpgsqlBatchCommand(
            $"update public.agent_autonomous_runs set {column} = $2, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $3::jsonb) where id = $1");
        command.Parameters.Add(new() { Value = runId });
        command.Parameters.Add(Json(output));
        command.Parameters.Add(Json(phases));
        await database.ExecuteAsync(command, cancellationToken);
    }

    private async Task FinishRunAsync(FencedDatabase database, Guid runId, string status, string? error, JsonObject? reflection,
        int planned, int taken, int blocked, JsonObject phases, CancellationToken cancellationToken)
    {
        try
        {
            var command = new NpgsqlBatchCommand("""
                update public.agent_autonomous_runs
                set status = $2, error = $3, reflect_output = $4, completed_at = $5, actions_planned = $6, actions_taken = $7,
                    actions_blocked = $8, cycle_metrics = cycle_metrics || jsonb_build_object('phases', $9::jsonb)
                where id = $1 and status = 'running'
                """);
            command.Parameters.Add(new() { Value = runId });
            command.Parameters.Add(new() { Value = status });
            command.Parameters.Add(new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            command.Parameters.Add(Json(reflection));
            command.Parameters.Add(new() { Value = _time.GetUtcNow() });
            command.Parameters.Add(new() { Value = planned });
            command.Parameters.Add(new() { Value = taken });
            command.Parameters.Add(new() { Value = blocked });
            command.Parameters.Add(Json(phases));
            await database.ExecuteAsync(command, cancellationToken);
        }
        catch (LeaseLostException)
        {
            throw;
        }
        catch (NpgsqlException ex) when (status == "failed")
        {
            // Recording the failure failed too (the database went away): the reaper marks the run abandoned.
            LogCycleFailed(_logger, database.TenantId, runId, ex);
        }
    }

    private async Task<T> TimedAsync<T>(JsonObject phases, string phase, Guid tenantId, Func<Task<T>> work)
    {
        using var activity = CycleTelemetry.Source.StartActivity(phase);
        activity?.SetTag("hourglass.tenant_id", tenantId);
        var started = _time.GetTimestamp();
        var result = await work();
        var elapsed = _time.GetElapsedTime(started);
        phases[phase] = new JsonObject { ["ms"] = Math.Round(elapsed.TotalMilliseconds, 3), ["completed_at"] = _time.GetUtcNow().ToString("O") };
        CycleTelemetry.PhaseDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("phase", phase));
        return result;
    }

    internal static string TriggerName(CycleTrigger trigger) => trigger switch
    {
        CycleTrigger.Manual => "manual",
        CycleTrigger.CatchUp => "catch_up",
        _ => "schedule",
    };

    private static JsonObject Describe(ProposedAction action, DateTimeOffset hour, string part) => new()
    {
        ["key"] = action.IdempotencyKey(hour),
        ["part"] = part,
        ["kind"] = action.Kind,
        ["target_type"] = action.TargetType,
        ["target_id"] = action.TargetId?.ToString(),
        ["priority"] = action.Priority,
        ["reason"] = action.Reason,
    };

    internal static NpgsqlParameter Json(JsonNode? node) =>
        new() { Value = node is null ? DBNull.Value : node.ToJsonString(), NpgsqlDbType = NpgsqlDbType.Jsonb };

    [LoggerMessage(Level = LogLevel.Information, Message = "Cycle started: tenant {TenantId}, run {RunId}, hour {Hour}, trigger {Trigger}, dry run {DryRun}")]
    private static partial void LogCycleStarted(ILogger logger, Guid tenantId, Guid runId, DateTimeOffset hour, string trigger, bool dryRun);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cycle {Status}: tenant {TenantId}, run {RunId}: {Taken} taken, {Blocked} blocked, {Failed} failed")]
    private static partial void LogCycleFinished(ILogger logger, Guid tenantId, Guid runId, string status, int taken, int blocked, int failed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cycle lost its lease: tenant {TenantId}, run {RunId}; stopping without further writes")]
    private static partial void LogLeaseLost(ILogger logger, Guid tenantId, Guid runId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Cycle failed: tenant {TenantId}, run {RunId}")]
    private static partial void LogCycleFailed(ILogger logger, Guid tenantId, Guid runId, Exception exception);
}
