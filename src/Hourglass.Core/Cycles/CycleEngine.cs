using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Hourglass.Cycles;

/// <summary>What to run: one tenant, one hour (or a catch-up over several), for real or as a dry run.</summary>
internal sealed record CycleRequest(
    Guid TenantId,
    DateTimeOffset ScheduledFor,
    CycleTrigger Trigger,
    string WorkerId,
    IReadOnlyList<DateTimeOffset>? CoveredHours = null,
    bool DryRun = false);

/// <summary>How a cycle ended.</summary>
internal sealed record CycleResult(Guid RunId, RunStatus RunStatus, int ActionsPlanned, int ActionsTaken, int ActionsBlocked, int ActionsFailed, string? Error)
{
    /// <summary>The status as the run record keeps it (<c>completed</c>, <c>partial</c>, <c>failed</c>).</summary>
    public string Status => RunStatus.Name();
}

/// <summary>
/// Runs one tenant's cycle: Plan → Act → React → Reflect, and nothing else. Each phase's output and timing goes to the
/// run record through <see cref="RunsStore"/> as it completes, each action to <see cref="ActionLedger"/>, the
/// reflection is built by <see cref="Reflector"/>; every write is fenced by the lease token. The engine knows no
/// part's details: parts propose and measure, handlers act, the <see cref="IActionPolicy"/> decides.
/// </summary>
internal sealed partial class CycleEngine
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly IReadOnlyList<ICyclePart> _parts;
    private readonly IReadOnlyDictionary<string, IActionHandler> _handlers;
    private readonly IActionPolicy _policy;
    private readonly RunsStore _runs;
    private readonly ActionLedger _ledger;
    private readonly ScheduleStore _schedules;
    private readonly TenantControl _control;
    private readonly Reflector _reflector;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public CycleEngine(
        NpgsqlDataSource dataSource,
        IEnumerable<ICyclePart> parts,
        IEnumerable<IActionHandler> handlers,
        TimeProvider time,
        IActionPolicy? policy = null,
        ISummaryWriter? summaries = null,
        ILogger<CycleEngine>? logger = null)
    {
        _dataSource = dataSource;
        _parts = parts.ToList();
        _handlers = handlers.ToDictionary(h => h.Kind, StringComparer.Ordinal);
        _policy = policy ?? new PermitEverything();
        _time = time;
        _runs = new RunsStore(dataSource);
        _ledger = new ActionLedger(dataSource);
        _schedules = new ScheduleStore(dataSource);
        _control = new TenantControl(dataSource, _time);
        _reflector = new Reflector(dataSource, _parts, summaries ?? new TemplateSummaryWriter());
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>Runs the cycle under <paramref name="leaseToken"/> (null only for dry runs).</summary>
    public async Task<CycleResult> RunAsync(CycleRequest request, long? leaseToken, CancellationToken cancellationToken)
    {
        if (leaseToken is null && !request.DryRun)
        {
            throw new ArgumentException("a real cycle needs a lease token", nameof(leaseToken));
        }

        using var activity = CycleTelemetry.Source.StartActivity("cycle");
        activity?.SetTag("hourglass.tenant_id", request.TenantId);
        activity?.SetTag("hourglass.trigger", request.Trigger.Name());
        var database = new FencedDatabase(_dataSource, request.TenantId, leaseToken);
        var tenant = await _schedules.LimitsAsync(request.TenantId, cancellationToken);
        var hour = CycleSchedule.HourBucket(request.ScheduledFor);
        var runId = await _runs.StartAsync(database, request, leaseToken, _time.GetUtcNow(), cancellationToken);
        var context = new CycleContext(request.TenantId, runId, hour, _time.GetUtcNow(), request.Trigger, request.DryRun, tenant.Zone, database);
        CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", "started"));
        LogCycleStarted(_logger, request.TenantId, runId, hour, request.Trigger.Name(), request.DryRun);

        var phases = new JsonObject();
        try
        {
            var plan = await TimedAsync(phases, "plan", request.TenantId, () => PlanAsync(context, tenant, cancellationToken));
            await _runs.SavePhaseAsync(database, runId, RunPhase.Plan, plan.Output, phases, cancellationToken);
            await Failpoints.HitAsync("cycle.after_plan", cancellationToken);

            var act = await TimedAsync(phases, "act", request.TenantId, () => ActAsync(context, plan.Selected, cancellationToken));
            await _runs.SavePhaseAsync(database, runId, RunPhase.Act, act.Output, phases, cancellationToken);

            var react = await TimedAsync(phases, "react", request.TenantId, () => ReactAsync(context, cancellationToken));
            await _runs.SavePhaseAsync(database, runId, RunPhase.React, react.Output, phases, cancellationToken);

            var partErrors = plan.Errors.Concat(react.Errors).ToList();
            var reflect = await TimedAsync(phases, "reflect", request.TenantId,
                () => _reflector.ReflectAsync(context, plan, act, react, partErrors, cancellationToken));

            var status = act.Failed > 0 || partErrors.Count > 0 ? RunStatus.Partial : RunStatus.Completed;
            var error = status == RunStatus.Partial
                ? string.Join("; ", act.Outcomes.Where(o => o.Status == ActionStatus.Failed).Select(o => $"{o.Action.Kind} {o.Action.TargetId}: {o.Error}").Concat(partErrors))
                : null;
            await FinishRunAsync(database, runId, status, error, reflect, new RunCounts(plan.Selected.Count, act.Taken, act.Blocked), phases, cancellationToken);
            CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", status.Name()));
            LogCycleFinished(_logger, request.TenantId, runId, status.Name(), act.Taken, act.Blocked, act.Failed);
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
            await FinishRunAsync(database, runId, RunStatus.Failed, $"{ex.GetType().Name}: {ex.Message}", null, default, phases, CancellationToken.None);
            CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", RunStatus.Failed.Name()));
            return new CycleResult(runId, RunStatus.Failed, 0, 0, 0, 0, ex.Message);
        }
    }

    // ------------------------------------------------------------------------------------------- Plan

    internal sealed record PlanResult(JsonObject Output, IReadOnlyList<ProposedAction> Selected, IReadOnlyList<(ProposedAction Action, string Reason)> Deferred, IReadOnlyList<string> Errors);

    private async Task<PlanResult> PlanAsync(CycleContext context, TenantLimits tenant, CancellationToken cancellationToken)
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

    private Task<int> CountActionsTodayAsync(CycleContext context, TimeZoneInfo zone, CancellationToken cancellationToken)
    {
        var local = TimeZoneInfo.ConvertTime(context.Now, zone);
        var midnight = new DateTimeOffset(local.Date, zone.GetUtcOffset(local.Date));
        return _ledger.CountSucceededSinceAsync(context.TenantId, midnight, context.HourBucket, cancellationToken);
    }

    // -------------------------------------------------------------------------------------------- Act

    internal sealed record ActionOutcome(ProposedAction Action, string Key, ActionStatus Status, IActionDecision? Decision, JsonObject? Result, string? Error);

    internal sealed record ActResult(JsonObject Output, IReadOnlyList<ActionOutcome> Outcomes)
    {
        public int Taken => Outcomes.Count(o => o.Status is ActionStatus.Succeeded or ActionStatus.AlreadyDone);

        public int Blocked => Outcomes.Count(o => o.Status == ActionStatus.Blocked);

        public int Failed => Outcomes.Count(o => o.Status == ActionStatus.Failed);
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
            if (await _control.ReadBlockReasonAsync(context.TenantId, cancellationToken) is { } pause)
            {
                outcomes.Add(new ActionOutcome(action, key, ActionStatus.Blocked, null, null, pause));
                continue;
            }

            policyTime.Start();
            var decision = await _policy.DecideAsync(context, action, cancellationToken);
            policyTime.Stop();
            if (context.DryRun)
            {
                outcomes.Add(new ActionOutcome(action, key, decision.Permits ? ActionStatus.WouldRun : ActionStatus.Blocked, decision, null, decision.Permits ? null : decision.Message));
                continue;
            }

            if (!decision.Permits)
            {
                await RecordLedgerAsync(context, action, key, decision, ActionStatus.Blocked, null, decision.Message, cancellationToken);
                outcomes.Add(new ActionOutcome(action, key, ActionStatus.Blocked, decision, null, decision.Message ?? decision.VerdictName));
                continue;
            }

            if (!_handlers.TryGetValue(action.Kind, out var handler))
            {
                var missing = $"no handler for actions of kind '{action.Kind}'";
                await RecordLedgerAsync(context, action, key, decision, ActionStatus.Failed, null, missing, cancellationToken);
                outcomes.Add(new ActionOutcome(action, key, ActionStatus.Failed, decision, null, missing));
                continue;
            }

            outcomes.Add(await ExecuteOnceAsync(context, action, key, decision, handler, cancellationToken));
        }

        CycleTelemetry.Actions.Add(outcomes.Count(o => o.Status == ActionStatus.Succeeded), new KeyValuePair<string, object?>("outcome", "taken"));
        CycleTelemetry.Actions.Add(outcomes.Count(o => o.Status == ActionStatus.Blocked), new KeyValuePair<string, object?>("outcome", "blocked"));
        CycleTelemetry.Actions.Add(outcomes.Count(o => o.Status == ActionStatus.Failed), new KeyValuePair<string, object?>("outcome", "failed"));
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
                ["status"] = o.Status.Name(),
                ["result"] = o.Result?.DeepClone(),
                ["error"] = o.Error,
            }).ToArray()),
        };
        return new ActResult(output, outcomes);
    }

    // The ledger row and the handler's effects commit in one fenced transaction: either both or neither.
    // A key already recorded as succeeded (a retried, resumed or replayed cycle) is not run again.
    private async Task<ActionOutcome> ExecuteOnceAsync(
        CycleContext context, ProposedAction action, string key, IActionDecision decision, IActionHandler handler, CancellationToken cancellationToken)
    {
        try
        {
            return await context.Database.InTransactionAsync(async (connection, transaction) =>
            {
                if (await ActionLedger.SucceededForUpdateAsync(connection, transaction, context.TenantId, key, cancellationToken))
                {
                    return new ActionOutcome(action, key, ActionStatus.AlreadyDone, decision, null, null);
                }

                var result = await handler.ExecuteAsync(context, action, connection, transaction, cancellationToken);
                await UpsertLedgerAsync(connection, transaction, context, action, key, decision, ActionStatus.Succeeded, result, null, cancellationToken);
                return new ActionOutcome(action, key, ActionStatus.Succeeded, decision, result, null);
            }, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not LeaseLostException)
        {
            // A handler that throws fails its action, not the cycle.
            var error = $"{ex.GetType().Name}: {ex.Message}";
            await RecordLedgerAsync(context, action, key, decision, ActionStatus.Failed, null, error, cancellationToken);
            return new ActionOutcome(action, key, ActionStatus.Failed, decision, null, error);
        }
    }

    private Task RecordLedgerAsync(CycleContext context, ProposedAction action, string key, IActionDecision? decision, ActionStatus status,
        JsonObject? result, string? error, CancellationToken cancellationToken) =>
        context.Database.InTransactionAsync(
            (connection, transaction) => UpsertLedgerAsync(connection, transaction, context, action, key, decision, status, result, error, cancellationToken),
            cancellationToken);

    // The ledger row and what the policy's decision leaves behind (violations, approvals, a pause) commit together.
    private async Task UpsertLedgerAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CycleContext context, ProposedAction action,
        string key, IActionDecision? decision, ActionStatus status, JsonObject? result, string? error, CancellationToken cancellationToken)
    {
        await ActionLedger.RecordAsync(connection, transaction, context, action, key, decision?.VerdictName, status, result, error, _time.GetUtcNow(),
            cancellationToken);
        if (decision is not null)
        {
            await _policy.RecordAsync(connection, transaction, context, action, key, decision, cancellationToken);
        }
    }

    // ------------------------------------------------------------------------------------------ React

    internal sealed record ReactResult(JsonObject Output, IReadOnlyList<Hypothesis> Hypotheses, IReadOnlyList<string> Errors);

    private async Task<ReactResult> ReactAsync(CycleContext context, CancellationToken cancellationToken)
    {
        var since = await _runs.LastFinishedStartAsync(context.TenantId, context.RunId, cancellationToken);

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

    // ------------------------------------------------------------------------------------- Run record

    private async Task FinishRunAsync(FencedDatabase database, Guid runId, RunStatus status, string? error, JsonObject? reflection,
        RunCounts counts, JsonObject phases, CancellationToken cancellationToken)
    {
        try
        {
            await _runs.FinishAsync(database, runId, status, error, reflection, counts, phases, _time.GetUtcNow(), cancellationToken);
        }
        catch (LeaseLostException)
        {
            throw;
        }
        catch (NpgsqlException ex) when (status == RunStatus.Failed)
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

    [LoggerMessage(Level = LogLevel.Information, Message = "Cycle started: tenant {TenantId}, run {RunId}, hour {Hour}, trigger {Trigger}, dry run {DryRun}")]
    private static partial void LogCycleStarted(ILogger logger, Guid tenantId, Guid runId, DateTimeOffset hour, string trigger, bool dryRun);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cycle {Status}: tenant {TenantId}, run {RunId}: {Taken} taken, {Blocked} blocked, {Failed} failed")]
    private static partial void LogCycleFinished(ILogger logger, Guid tenantId, Guid runId, string status, int taken, int blocked, int failed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cycle lost its lease: tenant {TenantId}, run {RunId}; stopping without further writes")]
    private static partial void LogLeaseLost(ILogger logger, Guid tenantId, Guid runId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Cycle failed: tenant {TenantId}, run {RunId}")]
    private static partial void LogCycleFailed(ILogger logger, Guid tenantId, Guid runId, Exception exception);
}
