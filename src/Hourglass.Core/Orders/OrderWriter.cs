using System.Text.Json.Nodes;
using Hourglass.Policies;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Orders;

/// <summary>
/// What a batch writes, as one array per column (the rows of <see cref="OrderStore.WriteSql"/>'s unnests): one row
/// per order (its queue entry, its host order, the exceptions it keeps open), and rows keyed by queue id for the
/// repriced lines, fixes, exceptions raised, approval cards, policy violations and warehouse events. The processor
/// fills it from its decisions; the benchmark's same-work baseline from its plan.
/// </summary>
internal sealed class OrderWriteSet
{
    // One row per order.
    public readonly List<Guid> QueueIds = [];
    public readonly List<long> Tokens = [];
    public readonly List<string> Statuses = [];
    public readonly List<string> Pricing = [];
    public readonly List<string> Credit = [];
    public readonly List<string> Requirements = [];
    public readonly List<int> Attempts = [];
    public readonly List<string> Results = [];
    public readonly List<string> HostStatuses = [];
    public readonly List<decimal> Subtotals = [];
    public readonly List<decimal> Totals = [];
    public readonly List<string?> ShipTos = [];
    public readonly List<string> OpenTypes = [];

    // Repriced lines.
    public readonly List<Guid> LineQueueIds = [];
    public readonly List<Guid> LineIds = [];
    public readonly List<decimal> LinePrices = [];
    public readonly List<decimal> LineDiscounts = [];

    // Fixes, with before and after.
    public readonly List<Guid> FixQueueIds = [];
    public readonly List<int> FixAttempts = [];
    public readonly List<string> FixTypes = [];
    public readonly List<Guid?> FixLineIds = [];
    public readonly List<string> FixBefore = [];
    public readonly List<string> FixAfter = [];
    public readonly List<string> FixPolicyVersions = [];

    // Exceptions raised (each with its review card).
    public readonly List<Guid> ExceptionQueueIds = [];
    public readonly List<string> ExceptionTypes = [];
    public readonly List<string> ExceptionSeverities = [];
    public readonly List<string> ExceptionDetails = [];

    // Approval cards.
    public readonly List<Guid> ApprovalQueueIds = [];
    public readonly List<string> ApprovalReasons = [];

    // Policy violations.
    public readonly List<Guid> ViolationQueueIds = [];
    public readonly List<string> ViolationRules = [];
    public readonly List<string> ViolationKinds = [];
    public readonly List<string> ViolationActionTypes = [];
    public readonly List<string> ViolationActionKeys = [];
    public readonly List<string> ViolationDecisions = [];
    public readonly List<string> ViolationSeverities = [];
    public readonly List<bool> ViolationBlocked = [];
    public readonly List<string> ViolationMessages = [];
    public readonly List<string> ViolationVersions = [];

    // Warehouse events, in the order they are written.
    public readonly List<Guid> EventQueueIds = [];
    public readonly List<string> EventTypes = [];
    public readonly List<string> EventPayloads = [];

    public int Count => QueueIds.Count;

    /// <summary>The parameters of <see cref="OrderStore.WriteSql"/>, in order.</summary>
    public void AddParameters(NpgsqlParameterCollection p, string workerId, Guid? runId, DateTimeOffset now)
    {
        static NpgsqlParameter Array<T>(List<T> values, NpgsqlDbType type) => new() { Value = values.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | type };

        p.Add(Array(QueueIds, NpgsqlDbType.Uuid));                // $1
        p.Add(Array(Tokens, NpgsqlDbType.Bigint));                // $2
        p.Add(new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz }); // $3
        p.Add(Array(Statuses, NpgsqlDbType.Text));                // $4
        p.Add(Array(Pricing, NpgsqlDbType.Text));                 // $5
        p.Add(Array(Credit, NpgsqlDbType.Text));                  // $6
        p.Add(Array(Requirements, NpgsqlDbType.Text));            // $7
        p.Add(Array(Attempts, NpgsqlDbType.Integer));             // $8
        p.Add(Array(Results, NpgsqlDbType.Text));                 // $9
        p.Add(new() { Value = workerId, NpgsqlDbType = NpgsqlDbType.Text }); // $10
        p.Add(Array(HostStatuses, NpgsqlDbType.Text));            // $11
        p.Add(Array(Subtotals, NpgsqlDbType.Numeric));            // $12
        p.Add(Array(Totals, NpgsqlDbType.Numeric));               // $13
        p.Add(Array(ShipTos, NpgsqlDbType.Text));                 // $14
        p.Add(Array(OpenTypes, NpgsqlDbType.Text));               // $15
        p.Add(Array(LineQueueIds, NpgsqlDbType.Uuid));            // $16
        p.Add(Array(LineIds, NpgsqlDbType.Uuid));                 // $17
        p.Add(Array(LinePrices, NpgsqlDbType.Numeric));           // $18
        p.Add(Array(LineDiscounts, NpgsqlDbType.Numeric));        // $19
        p.Add(Array(FixQueueIds, NpgsqlDbType.Uuid));             // $20
        p.Add(Array(FixAttempts, NpgsqlDbType.Integer));          // $21
        p.Add(Array(FixTypes, NpgsqlDbType.Text));                // $22
        p.Add(Array(FixLineIds, NpgsqlDbType.Uuid));              // $23
        p.Add(Array(FixBefore, NpgsqlDbType.Text));               // $24
        p.Add(Array(FixAfter, NpgsqlDbType.Text));                // $25
        p.Add(Array(FixPolicyVersions, NpgsqlDbType.Text));       // $26
        p.Add(Array(ExceptionQueueIds, NpgsqlDbType.Uuid));       // $27
        p.Add(Array(ExceptionTypes, NpgsqlDbType.Text));          // $28
        p.Add(Array(ExceptionSeverities, NpgsqlDbType.Text));     // $29
        p.Add(Array(ExceptionDetails, NpgsqlDbType.Text));        // $30
        p.Add(Array(ApprovalQueueIds, NpgsqlDbType.Uuid));        // $31
        p.Add(Array(ApprovalReasons, NpgsqlDbType.Text));         // $32
        p.Add(Array(ViolationQueueIds, NpgsqlDbType.Uuid));       // $33
        p.Add(Array(ViolationRules, NpgsqlDbType.Text));          // $34
        p.Add(Array(ViolationKinds, NpgsqlDbType.Text));          // $35
        p.Add(Array(ViolationActionTypes, NpgsqlDbType.Text));    // $36
        p.Add(Array(ViolationActionKeys, NpgsqlDbType.Text));     // $37
        p.Add(Array(ViolationDecisions, NpgsqlDbType.Text));      // $38
        p.Add(Array(ViolationSeverities, NpgsqlDbType.Text));     // $39
        p.Add(Array(ViolationBlocked, NpgsqlDbType.Boolean));     // $40
        p.Add(Array(ViolationMessages, NpgsqlDbType.Text));       // $41
        p.Add(Array(ViolationVersions, NpgsqlDbType.Text));       // $42
        p.Add(new() { Value = (object?)runId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid }); // $43
        p.Add(Array(EventQueueIds, NpgsqlDbType.Uuid));           // $44
        p.Add(Array(EventTypes, NpgsqlDbType.Text));              // $45
        p.Add(Array(EventPayloads, NpgsqlDbType.Text));           // $46
    }
}

/// <summary>
/// Writes a decided batch in one round trip: the guard, then one statement that updates the queue entries fenced on
/// their claims and, joined on the entries it updated (and only those), writes everything else; the batch runs in
/// one implicit transaction that commits at its end (one Sync), so it is written whole or not at all.
/// </summary>
internal static class OrderWriter
{
    // The processor's own writes must not queue the orders again (hourglass.enqueue_order returns on it); local to
    // the transaction, which is the batch's implicit one.
    public const string GuardSql = "select set_config('hourglass.order_processor', 'on', true)";

    /// <summary>
    /// Writes the outcomes; returns the queue ids that were still ours (the others were skipped whole). Entries held by a
    /// pause (released to pending, nothing written) go to <paramref name="held"/> when it is given.
    /// </summary>
    public static Task<HashSet<Guid>> WriteAsync(NpgsqlConnection connection, List<OrderOutcome> outcomes, string workerId, Guid? runId,
        DateTimeOffset now, CancellationToken cancellationToken, HashSet<Guid>? held = null) =>
        WriteAsync(connection, Build(outcomes), workerId, runId, now, cancellationToken, held);

    /// <summary>Writes a write set in one round trip; returns the queue ids that were still ours.</summary>
    public static async Task<HashSet<Guid>> WriteAsync(NpgsqlConnection connection, OrderWriteSet set, string workerId, Guid? runId,
        DateTimeOffset now, CancellationToken cancellationToken, HashSet<Guid>? held = null)
    {
        var kept = new HashSet<Guid>();
        if (set.Count == 0)
        {
            return kept;
        }

        // No NpgsqlTransaction: the batch is sent with one Sync, so its two statements are one implicit transaction,
        // committed when the last succeeds and rolled back whole if any fails (or the connection breaks first).
        await using var batch = new NpgsqlBatch(connection);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(GuardSql));
        var write = new NpgsqlBatchCommand(OrderStore.WriteSql);
        set.AddParameters(write.Parameters, workerId, runId, now);
        batch.BatchCommands.Add(write);
        if (ProductDataSource.MayPrepare(connection))
        {
            await batch.PrepareAsync(cancellationToken);
        }

        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (reader.GetBoolean(1))
            {
                kept.Add(reader.GetGuid(0));
            }
            else
            {
                held?.Add(reader.GetGuid(0));
            }
        }

        return kept;
    }

    /// <summary>The write set of decided outcomes.</summary>
    public static OrderWriteSet Build(List<OrderOutcome> outcomes)
    {
        var set = new OrderWriteSet();
        foreach (var o in outcomes)
        {
            var final = o.Final;
            var queue = final.QueueId;
            set.QueueIds.Add(queue);
            set.Tokens.Add(final.ClaimToken);
            set.Statuses.Add(o.Status);
            set.Pricing.Add(o.PricingStatus);
            set.Credit.Add(o.CreditStatus);
            set.Requirements.Add(o.RequirementsStatus);
            set.Attempts.Add(o.Attempts);
            set.Results.Add(o.Results.ToJsonString());
            // The host status (validated, or on hold), and the fixed totals and address.
            set.HostStatuses.Add(o.Status == "validated" ? "validated" : "on_hold");
            set.Subtotals.Add(final.Subtotal);
            set.Totals.Add(final.Total);
            var fillsShipTo = false;
            foreach (var fix in o.Fixes)
            {
                fillsShipTo |= fix.Fix.Type == "fill_ship_to";
                if (fix.Fix.Type == "apply_rule_price")
                {
                    set.LineQueueIds.Add(queue);
                    set.LineIds.Add(fix.Fix.LineId!.Value);
                    set.LinePrices.Add(fix.Fix.After["unit_price"]!.GetValue<decimal>());
                    set.LineDiscounts.Add(fix.Fix.After["discount_pct"]!.GetValue<decimal>());
                }

                set.FixQueueIds.Add(queue);
                set.FixAttempts.Add(fix.Attempt);
                set.FixTypes.Add(fix.Fix.Type);
                set.FixLineIds.Add(fix.Fix.LineId);
                var before = fix.Fix.Before.ToJsonString();
                var after = fix.Fix.After.ToJsonString();
                set.FixBefore.Add(before);
                set.FixAfter.Add(after);
                set.FixPolicyVersions.Add(fix.PolicyVersion);
                set.EventQueueIds.Add(queue);
                set.EventTypes.Add("order_fixed");
                set.EventPayloads.Add($$"""{"fix":{{JsonValue.Create(fix.Fix.Type).ToJsonString()}},"attempt":{{fix.Attempt}},"before":{{before}},"after":{{after}}}""");
            }

            set.ShipTos.Add(fillsShipTo ? final.ShipTo?.ToJsonString() : null);
            // Exceptions that no longer apply (the order was fixed or changed) close themselves.
            set.OpenTypes.Add(o.Exceptions.Count == 0 ? "" : string.Join(',', o.Exceptions.Select(e => e.Type)));
            foreach (var exception in o.Exceptions)
            {
                set.ExceptionQueueIds.Add(queue);
                set.ExceptionTypes.Add(exception.Type);
                set.ExceptionSeverities.Add(Severity(exception.Severity));
                set.ExceptionDetails.Add(new JsonObject
                {
                    ["message"] = exception.Message, ["check"] = exception.Check.ToString().ToLowerInvariant(), ["line_id"] = exception.LineId?.ToString(),
                }.ToJsonString());
                set.EventQueueIds.Add(queue);
                set.EventTypes.Add("order_exception");
                set.EventPayloads.Add(new JsonObject { ["type"] = exception.Type, ["message"] = exception.Message }.ToJsonString());
            }

            if (o.Status == "needs_approval")
            {
                set.ApprovalQueueIds.Add(queue);
                set.ApprovalReasons.Add($"Needs approval: {o.ApprovalReason}");
            }

            foreach (var finding in o.PolicyFindings)
            {
                foreach (var f in finding.Decision.Findings)
                {
                    set.ViolationQueueIds.Add(queue);
                    set.ViolationRules.Add(f.RuleId);
                    set.ViolationKinds.Add(f.RuleKind);
                    set.ViolationActionTypes.Add(finding.ActionKind);
                    set.ViolationActionKeys.Add(finding.ActionKey);
                    set.ViolationDecisions.Add(PolicyEvaluator.Name(f.Verdict));
                    set.ViolationSeverities.Add(f.SeverityName);
                    set.ViolationBlocked.Add(!finding.Decision.Permits);
                    set.ViolationMessages.Add(f.Message);
                    set.ViolationVersions.Add(finding.Decision.PolicyVersion);
                }
            }

            set.EventQueueIds.Add(queue);
            set.EventTypes.Add($"order_{o.Status}");
            set.EventPayloads.Add(new JsonObject
            {
                ["pricing"] = o.PricingStatus, ["credit"] = o.CreditStatus, ["requirements"] = o.RequirementsStatus, ["fixes"] = o.Fixes.Count,
                ["total"] = final.Total, ["account_id"] = final.Account.Id.ToString(),
            }.ToJsonString());
        }

        return set;
    }

    private static string Severity(string severity) => severity is "info" or "warning" or "error" or "critical" ? severity : "error";
}
