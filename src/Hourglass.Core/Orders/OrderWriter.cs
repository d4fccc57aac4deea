using System.Text.Json.Nodes;
using Hourglass.Policies;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Orders;

/// <summary>
/// What a batch writes, as one array per column (the rows of <see cref="OrderWriter.WriteSql"/>'s unnests): one row
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

    /// <summary>The parameters of <see cref="OrderWriter.WriteSql"/>, in order.</summary>
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

    // kept: an entry is still ours only while it is 'processing' under our worker id and our claim token. One whose
    // claim lapsed and was taken over, or whose order changed (the trigger put it back to pending), is not updated,
    // so it is not in kept, and every other write joins kept: nothing of such an entry is written. (status,
    // claimed_by) is compared as a row, not as two equalities (neither is ever null, so the test is the same): the
    // statement is prepared, and a generic plan would otherwise read every 'processing' entry through
    // idx_order_processing_claimed and compare each with every row of r; this way each entry is looked up by its id.
    // The order rows ride along in kept's RETURNING. An order is rewritten only when something of it changes.
    // The kill switches are read again here, in the statement that writes (docs/orders.md, "Under a pause"): an entry of
    // a tenant paused since its claim (or under the global pause) is not kept — none of its fixes, exceptions, cards or
    // events is written — and is released to pending as it was, to be validated afresh after the resume.
    // kept is estimated at one row, whatever it holds: every other write either hashes it or drives index lookups
    // from it. The exceptions to close are looked up per kept entry (LATERAL, kept from being flattened into a plain
    // join by OFFSET 0; uq_order_exceptions_open_type): joined plainly, the planner scanned every open exception once
    // per kept entry.
    public const string WriteSql = """
        with kept as (
          update public.order_processing_queue q
          set status = r.status, pricing_status = r.pricing, credit_status = r.credit, requirements_status = r.requirements,
              auto_fix_attempts = r.attempts, validation_results = r.results::jsonb, processed_at = $3, updated_at = $3,
              claimed_by = null, claimed_until = null
          from unnest($1::uuid[], $2::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::integer[], $9::text[],
                      $11::text[], $12::numeric[], $13::numeric[], $14::text[], $15::text[])
               as r(id, token, status, pricing, credit, requirements, attempts, results, host_status, subtotal, total, ship_to, open_types)
          where q.id = r.id and q.claim_token = r.token and (q.status, q.claimed_by) is not distinct from ('processing', $10)
            and not (select c.paused from hourglass.agent_control c where c.singleton)
            and not exists (select 1 from public.agent_tenant_schedules s where s.tenant_id = q.tenant_id and s.paused)
          returning q.id, q.tenant_id, q.order_id, r.host_status, r.subtotal, r.total, r.ship_to, r.open_types
        ), released as (
          update public.order_processing_queue q
          set status = 'pending', claimed_by = null, claimed_until = null, updated_at = $3
          from unnest($1::uuid[], $2::bigint[]) as r(id, token)
          where q.id = r.id and q.claim_token = r.token and (q.status, q.claimed_by) is not distinct from ('processing', $10)
            and ((select c.paused from hourglass.agent_control c where c.singleton)
                 or exists (select 1 from public.agent_tenant_schedules s where s.tenant_id = q.tenant_id and s.paused))
          returning q.id
        ), repriced as (
          update public.order_lines l set unit_price = r.unit_price, discount_pct = r.discount_pct
          from unnest($16::uuid[], $17::uuid[], $18::numeric[], $19::numeric[]) as r(queue_id, id, unit_price, discount_pct)
          join kept k on k.id = r.queue_id
          where l.tenant_id = k.tenant_id and l.id = r.id
        ), orders as (
          update public.orders o
          set status = case when o.status in ('placed', 'validated', 'on_hold') then k.host_status else o.status end,
              subtotal = k.subtotal, total = k.total, ship_to = coalesce(k.ship_to::jsonb, o.ship_to), updated_at = $3
          from kept k
          where o.tenant_id = k.tenant_id and o.id = k.order_id
            and ((o.status in ('placed', 'validated', 'on_hold') and o.status <> k.host_status) or o.subtotal <> k.subtotal or o.total <> k.total
                 or (k.ship_to is not null and o.ship_to is distinct from k.ship_to::jsonb))
        ), fixes as (
          insert into public.order_processing_fixes (tenant_id, queue_id, order_id, attempt, fix_type, order_line_id, before, after, policy_version, created_at)
          select k.tenant_id, k.id, k.order_id, r.attempt, r.fix_type, r.line_id, r.before::jsonb, r.after::jsonb, r.policy_version, $3
          from unnest($20::uuid[], $21::integer[], $22::text[], $23::uuid[], $24::text[], $25::text[], $26::text[])
               as r(queue_id, attempt, fix_type, line_id, before, after, policy_version)
          join kept k on k.id = r.queue_id
        ), closed as (
          update public.order_processing_exceptions e
          set resolution_status = 'resolved', resolved_by = 'hourglass', resolved_at = $3, updated_at = $3,
              resolution_notes = 'no longer applies: the order was validated again without it'
          from kept k
          cross join lateral (select x.id from public.order_processing_exceptions x
                              where x.tenant_id = k.tenant_id and x.queue_id = k.id and x.resolution_status in ('open', 'in_review')
                                and not (x.exception_type = any (string_to_array(k.open_types, ',')))
                              offset 0) c
          where e.id = c.id
        ), opened as (
          insert into public.order_processing_exceptions (tenant_id, queue_id, order_id, exception_type, severity, details, created_at, updated_at)
          select k.tenant_id, k.id, k.order_id, r.type, r.severity, r.details::jsonb, $3, $3
          from unnest($27::uuid[], $28::text[], $29::text[], $30::text[]) as r(queue_id, type, severity, details)
          join kept k on k.id = r.queue_id
          on conflict (tenant_id, queue_id, exception_type) where resolution_status in ('open', 'in_review') do nothing
          returning id, tenant_id, order_id, exception_type, details
        ), reviews as (
          insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, payload, created_at, updated_at)
          select x.tenant_id, 'exception_review', 'Order exception: ' || replace(x.exception_type, '_', ' '), x.details ->> 'message', 'order', x.order_id,
                 jsonb_build_object('exception_id', x.id, 'exception_type', x.exception_type), $3, $3
          from opened x
        ), approvals as (
          insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, due_at, payload, created_at, updated_at)
          select k.tenant_id, 'approval', 'Approve order release', r.reason, 'order', k.order_id,
                 $3 + make_interval(hours => hourglass.tenant_setting_int(k.tenant_id, 'approval_ttl_hours', 72)),
                 jsonb_build_object('action_key', 'order-release/' || k.id, 'order_approval', jsonb_build_object('queue_id', k.id, 'order_id', k.order_id)),
                 $3, $3
          from unnest($31::uuid[], $32::text[]) as r(queue_id, reason)
          join kept k on k.id = r.queue_id
          on conflict (tenant_id, (payload ->> 'action_key')) where kind = 'approval' and status = 'open' do nothing
        ), violations as (
          insert into public.agent_policy_violations (tenant_id, run_id, policy_key, rule_kind, action_type, action, action_key, decision, severity,
            blocked, message, policy_version, created_at)
          select k.tenant_id, $43, r.rule, r.kind, r.action_type, jsonb_build_object('order_id', k.order_id), r.action_key, r.decision, r.severity,
                 r.blocked, r.message, r.version, $3
          from unnest($33::uuid[], $34::text[], $35::text[], $36::text[], $37::text[], $38::text[], $39::text[], $40::boolean[], $41::text[], $42::text[])
               as r(queue_id, rule, kind, action_type, action_key, decision, severity, blocked, message, version)
          join kept k on k.id = r.queue_id
          on conflict (tenant_id, action_key, policy_key) where action_key is not null do nothing
        ), events as (
          insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
          select k.tenant_id, r.type, 'order', k.order_id, r.payload::jsonb, 'order_processor', $3
          from unnest($44::uuid[], $45::text[], $46::text[]) with ordinality as r(queue_id, type, payload, n)
          join kept k on k.id = r.queue_id
          order by r.n
        )
        select id, true from kept
        union all
        select id, false from released
        """;

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
        var write = new NpgsqlBatchCommand(WriteSql);
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
