using System.Text.Json.Nodes;
using Hourglass.Policies;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Orders;

/// <summary>
/// Writes a decided batch in one transaction and three round trips: the guard with the fenced queue update, which
/// says which entries are still ours; then, for those only, everything else in one batch; then the commit.
/// </summary>
internal static class OrderWriter
{
    // The processor's own writes must not queue the orders again (hourglass.enqueue_order returns on it); local to
    // the transaction.
    private const string GuardSql = "select set_config('hourglass.order_processor', 'on', true)";

    // An entry is still ours only while it is 'processing' under our worker id and our claim token: one whose claim
    // lapsed and was taken over, or whose order changed (the trigger put it back to pending), is left alone, and
    // nothing else of it is written. (status, claimed_by) is compared as a row, not as two equalities (neither is
    // ever null, so the test is the same): the statement is prepared, and a generic plan would otherwise read every
    // 'processing' entry through idx_order_processing_claimed — statistics taken between batches see almost none —
    // and compare each with every row of r; this way each entry is looked up by its id.
    private const string FencedUpdateSql = """
        update public.order_processing_queue q
        set status = r.status, pricing_status = r.pricing, credit_status = r.credit, requirements_status = r.requirements,
            auto_fix_attempts = r.attempts, validation_results = r.results::jsonb, processed_at = $3, updated_at = $3,
            claimed_by = null, claimed_until = null
        from unnest($1::uuid[], $2::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::integer[], $9::text[])
             as r(id, token, status, pricing, credit, requirements, attempts, results)
        where q.id = r.id and q.claim_token = r.token and (q.status, q.claimed_by) is not distinct from ('processing', $10)
        returning q.id
        """;

    /// <summary>Writes the outcomes; returns the queue ids that were still ours (the others were skipped whole).</summary>
    public static async Task<HashSet<Guid>> WriteAsync(NpgsqlConnection connection, List<OrderOutcome> outcomes, string workerId, Guid? runId,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var kept = new HashSet<Guid>();
        await using (var fenced = new NpgsqlBatch(connection, transaction))
        {
            fenced.BatchCommands.Add(new NpgsqlBatchCommand(GuardSql));
            var update = Command(fenced, FencedUpdateSql);
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Final.QueueId).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Final.ClaimToken).ToArray() });
            update.Parameters.Add(new() { Value = now });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Status).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.PricingStatus).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.CreditStatus).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.RequirementsStatus).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Attempts).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Results.ToJsonString()).ToArray() });
            update.Parameters.Add(new() { Value = workerId });
            await fenced.PrepareAsync(cancellationToken);
            await using var reader = await fenced.ExecuteReaderAsync(cancellationToken);
            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                kept.Add(reader.GetGuid(0));
            }
        }

        var ours = outcomes.Where(o => kept.Contains(o.Final.QueueId)).ToList();
        if (ours.Count > 0)
        {
            await using var batch = new NpgsqlBatch(connection, transaction);
            AddOrderWrites(batch, ours, now);
            AddFixes(batch, ours, now);
            AddExceptions(batch, ours, now);
            AddApprovals(batch, ours, now);
            AddViolations(batch, ours, runId, now);
            AddEvents(batch, ours, now);
            await batch.PrepareAsync(cancellationToken);
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return kept;
    }

    private static NpgsqlBatchCommand Command(NpgsqlBatch batch, string sql)
    {
        var command = new NpgsqlBatchCommand(sql);
        batch.BatchCommands.Add(command);
        return command;
    }

    private static void AddOrderWrites(NpgsqlBatch batch, List<OrderOutcome> ours, DateTimeOffset now)
    {
        var lineFixes = ours.SelectMany(o => o.Fixes.Where(f => f.Fix.Type == "apply_rule_price").Select(f => (o.Final.TenantId, f.Fix))).ToList();
        if (lineFixes.Count > 0)
        {
            var lines = Command(batch, """
                update public.order_lines l set unit_price = r.unit_price, discount_pct = r.discount_pct
                from unnest($1::uuid[], $2::uuid[], $3::numeric[], $4::numeric[]) as r(tenant_id, id, unit_price, discount_pct)
                where l.tenant_id = r.tenant_id and l.id = r.id
                """);
            lines.Parameters.Add(new() { Value = lineFixes.Select(f => f.TenantId).ToArray() });
            lines.Parameters.Add(new() { Value = lineFixes.Select(f => f.Fix.LineId!.Value).ToArray() });
            lines.Parameters.Add(new() { Value = lineFixes.Select(f => f.Fix.After["unit_price"]!.GetValue<decimal>()).ToArray() });
            lines.Parameters.Add(new() { Value = lineFixes.Select(f => f.Fix.After["discount_pct"]!.GetValue<decimal>()).ToArray() });
        }

        // Every processed order: its host status (validated, or on hold), and the fixed totals and address.
        var orders = Command(batch, """
            update public.orders o
            set status = case when o.status in ('placed', 'validated', 'on_hold') then r.status else o.status end,
                subtotal = r.subtotal, total = r.total, ship_to = coalesce(r.ship_to::jsonb, o.ship_to), updated_at = $6
            from unnest($1::uuid[], $2::uuid[], $3::text[], $4::numeric[], $5::numeric[], $7::text[]) as r(tenant_id, id, status, subtotal, total, ship_to)
            where o.tenant_id = r.tenant_id and o.id = r.id
            """);
        orders.Parameters.Add(new() { Value = ours.Select(o => o.Final.TenantId).ToArray() });
        orders.Parameters.Add(new() { Value = ours.Select(o => o.Final.OrderId).ToArray() });
        orders.Parameters.Add(new() { Value = ours.Select(o => o.Status == "validated" ? "validated" : "on_hold").ToArray() });
        orders.Parameters.Add(new() { Value = ours.Select(o => o.Final.Subtotal).ToArray() });
        orders.Parameters.Add(new() { Value = ours.Select(o => o.Final.Total).ToArray() });
        orders.Parameters.Add(new() { Value = now });
        orders.Parameters.Add(new()
        {
            Value = ours.Select(o => o.Fixes.Any(f => f.Fix.Type == "fill_ship_to") ? o.Final.ShipTo?.ToJsonString() : null).ToArray(),
            NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text,
        });
    }

    private static void AddFixes(NpgsqlBatch batch, List<OrderOutcome> ours, DateTimeOffset now)
    {
        var fixes = ours.SelectMany(o => o.Fixes.Select(f => (o.Final, f))).ToList();
        if (fixes.Count == 0)
        {
            return;
        }

        var command = Command(batch, """
            insert into public.order_processing_fixes (tenant_id, queue_id, order_id, attempt, fix_type, order_line_id, before, after, policy_version, created_at)
            select r.tenant_id, r.queue_id, r.order_id, r.attempt, r.fix_type, r.line_id, r.before::jsonb, r.after::jsonb, r.policy_version, $10
            from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::integer[], $5::text[], $6::uuid[], $7::text[], $8::text[], $9::text[])
                 as r(tenant_id, queue_id, order_id, attempt, fix_type, line_id, before, after, policy_version)
            """);
        command.Parameters.Add(new() { Value = fixes.Select(x => x.Final.TenantId).ToArray() });
        command.Parameters.Add(new() { Value = fixes.Select(x => x.Final.QueueId).ToArray() });
        command.Parameters.Add(new() { Value = fixes.Select(x => x.Final.OrderId).ToArray() });
        command.Parameters.Add(new() { Value = fixes.Select(x => x.f.Attempt).ToArray() });
        command.Parameters.Add(new() { Value = fixes.Select(x => x.f.Fix.Type).ToArray() });
        command.Parameters.Add(new() { Value = fixes.Select(x => x.f.Fix.LineId).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = fixes.Select(x => x.f.Fix.Before.ToJsonString()).ToArray() });
        command.Parameters.Add(new() { Value = fixes.Select(x => x.f.Fix.After.ToJsonString()).ToArray() });
        command.Parameters.Add(new() { Value = fixes.Select(x => x.f.PolicyVersion).ToArray() });
        command.Parameters.Add(new() { Value = now });
    }

    private static void AddExceptions(NpgsqlBatch batch, List<OrderOutcome> ours, DateTimeOffset now)
    {
        // Exceptions that no longer apply (the order was fixed or changed) close themselves.
        var close = Command(batch, """
            update public.order_processing_exceptions e
            set resolution_status = 'resolved', resolved_by = 'hourglass', resolved_at = $3, updated_at = $3,
                resolution_notes = 'no longer applies: the order was validated again without it'
            from unnest($1::uuid[], $2::text[], $4::uuid[]) as r(queue_id, open_types, tenant_id)
            where e.tenant_id = r.tenant_id and e.queue_id = r.queue_id and e.resolution_status in ('open', 'in_review')
              and not (e.exception_type = any (string_to_array(r.open_types, ',')))
            """);
        close.Parameters.Add(new() { Value = ours.Select(o => o.Final.QueueId).ToArray() });
        close.Parameters.Add(new() { Value = ours.Select(o => string.Join(',', o.Exceptions.Select(e => e.Type))).ToArray() });
        close.Parameters.Add(new() { Value = now });
        close.Parameters.Add(new() { Value = ours.Select(o => o.Final.TenantId).ToArray() });

        var exceptions = ours.SelectMany(o => o.Exceptions.Select(e => (o.Final, e))).ToList();
        if (exceptions.Count == 0)
        {
            return;
        }

        var insert = Command(batch, """
            with opened as (
              insert into public.order_processing_exceptions (tenant_id, queue_id, order_id, exception_type, severity, details, created_at, updated_at)
              select r.tenant_id, r.queue_id, r.order_id, r.type, r.severity, r.details::jsonb, $7, $7
              from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[]) as r(tenant_id, queue_id, order_id, type, severity, details)
              on conflict (tenant_id, queue_id, exception_type) where resolution_status in ('open', 'in_review') do nothing
              returning id, tenant_id, order_id, exception_type, details
            )
            insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, payload, created_at, updated_at)
            select x.tenant_id, 'exception_review', 'Order exception: ' || replace(x.exception_type, '_', ' '), x.details ->> 'message', 'order', x.order_id,
                   jsonb_build_object('exception_id', x.id, 'exception_type', x.exception_type), $7, $7
            from opened x
            """);
        insert.Parameters.Add(new() { Value = exceptions.Select(x => x.Final.TenantId).ToArray() });
        insert.Parameters.Add(new() { Value = exceptions.Select(x => x.Final.QueueId).ToArray() });
        insert.Parameters.Add(new() { Value = exceptions.Select(x => x.Final.OrderId).ToArray() });
        insert.Parameters.Add(new() { Value = exceptions.Select(x => x.e.Type).ToArray() });
        insert.Parameters.Add(new() { Value = exceptions.Select(x => Severity(x.e.Severity)).ToArray() });
        insert.Parameters.Add(new()
        {
            Value = exceptions.Select(x => new JsonObject
            {
                ["message"] = x.e.Message, ["check"] = x.e.Check.ToString().ToLowerInvariant(), ["line_id"] = x.e.LineId?.ToString(),
            }.ToJsonString()).ToArray(),
        });
        insert.Parameters.Add(new() { Value = now });
    }

    private static string Severity(string severity) => severity is "info" or "warning" or "error" or "critical" ? severity : "error";

    private static void AddApprovals(NpgsqlBatch batch, List<OrderOutcome> ours, DateTimeOffset now)
    {
        var waiting = ours.Where(o => o.Status == "needs_approval").ToList();
        if (waiting.Count == 0)
        {
            return;
        }

        var command = Command(batch, """
            insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, due_at, payload, created_at, updated_at)
            select r.tenant_id, 'approval', 'Approve order release', r.reason, 'order', r.order_id,
                   $5 + make_interval(hours => hourglass.tenant_setting_int(r.tenant_id, 'approval_ttl_hours', 72)),
                   jsonb_build_object('action_key', 'order-release/' || r.queue_id, 'order_approval', jsonb_build_object('queue_id', r.queue_id, 'order_id', r.order_id)),
                   $5, $5
            from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[]) as r(tenant_id, queue_id, order_id, reason)
            on conflict (tenant_id, (payload ->> 'action_key')) where kind = 'approval' and status = 'open' do nothing
            """);
        command.Parameters.Add(new() { Value = waiting.Select(o => o.Final.TenantId).ToArray() });
        command.Parameters.Add(new() { Value = waiting.Select(o => o.Final.QueueId).ToArray() });
        command.Parameters.Add(new() { Value = waiting.Select(o => o.Final.OrderId).ToArray() });
        command.Parameters.Add(new() { Value = waiting.Select(o => $"Needs approval: {o.ApprovalReason}").ToArray() });
        command.Parameters.Add(new() { Value = now });
    }

    private static void AddViolations(NpgsqlBatch batch, List<OrderOutcome> ours, Guid? runId, DateTimeOffset now)
    {
        var findings = ours.SelectMany(o => o.PolicyFindings.SelectMany(p => p.Decision.Findings.Select(f => (o.Final, p, f)))).ToList();
        if (findings.Count == 0)
        {
            return;
        }

        var command = Command(batch, """
            insert into public.agent_policy_violations (tenant_id, run_id, policy_key, rule_kind, action_type, action, action_key, decision, severity,
              blocked, message, policy_version, created_at)
            select r.tenant_id, $11, r.rule, r.kind, r.action_type, jsonb_build_object('order_id', r.order_id), r.action_key, r.decision, r.severity,
                   r.blocked, r.message, r.version, $12
            from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::boolean[], $10::text[], $13::text[])
                 as r(tenant_id, rule, kind, action_type, order_id, action_key, decision, severity, blocked, message, version)
            on conflict (tenant_id, action_key, policy_key) where action_key is not null do nothing
            """);
        command.Parameters.Add(new() { Value = findings.Select(x => x.Final.TenantId).ToArray() });
        command.Parameters.Add(new() { Value = findings.Select(x => x.f.RuleId).ToArray() });
        command.Parameters.Add(new() { Value = findings.Select(x => x.f.RuleKind).ToArray() });
        command.Parameters.Add(new() { Value = findings.Select(x => x.p.ActionKind).ToArray() });
        command.Parameters.Add(new() { Value = findings.Select(x => x.Final.OrderId).ToArray() });
        command.Parameters.Add(new() { Value = findings.Select(x => x.p.ActionKey).ToArray() });
        command.Parameters.Add(new() { Value = findings.Select(x => PolicyEvaluator.Name(x.f.Verdict)).ToArray() });
        command.Parameters.Add(new() { Value = findings.Select(x => x.f.SeverityName).ToArray() });
        command.Parameters.Add(new() { Value = findings.Select(x => !x.p.Decision.Permits).ToArray() });
        command.Parameters.Add(new() { Value = findings.Select(x => x.f.Message).ToArray() });
        command.Parameters.Add(new() { Value = (object?)runId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = now });
        command.Parameters.Add(new() { Value = findings.Select(x => x.p.Decision.PolicyVersion).ToArray() });
    }

    private static void AddEvents(NpgsqlBatch batch, List<OrderOutcome> ours, DateTimeOffset now)
    {
        var events = new List<(Guid Tenant, Guid Order, string Type, JsonObject Payload)>();
        foreach (var o in ours)
        {
            foreach (var fix in o.Fixes)
            {
                events.Add((o.Final.TenantId, o.Final.OrderId, "order_fixed",
                    new JsonObject { ["fix"] = fix.Fix.Type, ["attempt"] = fix.Attempt, ["before"] = fix.Fix.Before.DeepClone(), ["after"] = fix.Fix.After.DeepClone() }));
            }

            foreach (var exception in o.Exceptions)
            {
                events.Add((o.Final.TenantId, o.Final.OrderId, "order_exception", new JsonObject { ["type"] = exception.Type, ["message"] = exception.Message }));
            }

            events.Add((o.Final.TenantId, o.Final.OrderId, $"order_{o.Status}", new JsonObject
            {
                ["pricing"] = o.PricingStatus, ["credit"] = o.CreditStatus, ["requirements"] = o.RequirementsStatus, ["fixes"] = o.Fixes.Count,
                ["total"] = o.Final.Total, ["account_id"] = o.Final.Account.Id.ToString(),
            }));
        }

        var command = Command(batch, """
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
            select r.tenant_id, r.type, 'order', r.order_id, r.payload::jsonb, 'order_processor', $5
            from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) as r(tenant_id, order_id, type, payload)
            """);
        command.Parameters.Add(new() { Value = events.Select(e => e.Tenant).ToArray() });
        command.Parameters.Add(new() { Value = events.Select(e => e.Order).ToArray() });
        command.Parameters.Add(new() { Value = events.Select(e => e.Type).ToArray() });
        command.Parameters.Add(new() { Value = events.Select(e => e.Payload.ToJsonString()).ToArray() });
        command.Parameters.Add(new() { Value = now });
    }
}
