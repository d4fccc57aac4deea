using System.Text.Json.Nodes;
using Hourglass.Policies;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Orders;

/// <summary>How an order processor claims.</summary>
public sealed record OrderProcessorOptions
{
    /// <summary>Written to claimed_by; unique per processor.</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}:orders";

    /// <summary>Orders claimed, loaded, decided and written together.</summary>
    public int BatchSize { get; init; } = 100;

    /// <summary>How long a claim hides an order from other processors; a crashed processor's orders return after it.</summary>
    public TimeSpan VisibilityTimeout { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>What one pass did.</summary>
public sealed record OrderPassResult(int Claimed, int Validated, int NeedsApproval, int Exceptions, int Fixes, int LostClaims);

/// <summary>
/// Processes the order queue in batches: claim (<c>claim_orders</c>: SKIP LOCKED, a visibility timeout, a claim
/// token), load everything the batch's orders need in a handful of queries, decide each in memory
/// (<see cref="OrderDecider"/>), then write the batch in one transaction: the queue entries first, fenced on their
/// claim (an entry whose claim lapsed and was taken over, or whose order changed meanwhile, is skipped whole), then
/// for the entries that were still ours the fixes (to the order and its lines, with before and after), the
/// exceptions with their review cards, approval cards, policy violations and warehouse events. Any number of
/// processors can share the queue; none processes an order twice at once. Docs: docs/orders.md.
/// </summary>
public sealed class OrderProcessor(NpgsqlDataSource dataSource, OrderProcessorOptions? options = null)
{
    private readonly OrderProcessorOptions _options = options ?? new OrderProcessorOptions();

    public string WorkerId => _options.WorkerId;

    /// <summary>Entries waiting on an approval a person has now decided go back to pending, to be decided again with it.</summary>
    public async Task<int> RequeueDecidedApprovalsAsync(Guid? tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            update public.order_processing_queue q set status = 'pending', updated_at = hourglass.now()
            where q.status = 'needs_approval' and ($1::uuid is null or q.tenant_id = $1)
              and exists (select 1 from public.cards k
                          where k.tenant_id = q.tenant_id and k.kind = 'approval' and k.status in ('done', 'dismissed')
                            and k.payload ->> 'action_key' = 'order-release/' || q.id::text and k.completed_at >= q.updated_at)
            """);
        command.Parameters.Add(new() { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Claims and processes one batch (of one tenant, or of any). Returns what it did; Claimed 0 means the queue is empty.</summary>
    public async Task<OrderPassResult> ProcessBatchAsync(Guid? tenantId, Guid? runId, CancellationToken cancellationToken)
    {
        var claims = await ClaimAsync(tenantId, cancellationToken);
        if (claims.Count == 0)
        {
            return new OrderPassResult(0, 0, 0, 0, 0, 0);
        }

        // Crash tests stop a real processor here, holding claims it will never write.
        await Cycles.Failpoints.HitAsync("orders.after_claim", cancellationToken);

        var snapshots = await LoadAsync(claims, cancellationToken);
        var now = await DatabaseNowAsync(cancellationToken);
        var outcomes = new List<OrderOutcome>(snapshots.Count);
        foreach (var (snapshot, policy, zone) in snapshots)
        {
            outcomes.Add(OrderDecider.Decide(snapshot, policy, zone, now));
        }

        var kept = await WriteAsync(outcomes, runId, now, cancellationToken);
        var written = outcomes.Where(o => kept.Contains(o.Final.QueueId)).ToList();
        return new OrderPassResult(claims.Count, written.Count(o => o.Status == "validated"), written.Count(o => o.Status == "needs_approval"),
            written.Count(o => o.Status == "exception"), written.Sum(o => o.Fixes.Count), outcomes.Count - written.Count);
    }

    /// <summary>
    /// Processes until the queue (of one tenant, or all) is empty or <paramref name="maxOrders"/> are done;
    /// <paramref name="progress"/> hears how many each batch claimed.
    /// </summary>
    public async Task<OrderPassResult> DrainAsync(Guid? tenantId, Guid? runId, int maxOrders, CancellationToken cancellationToken,
        IProgress<int>? progress = null)
    {
        await RequeueDecidedApprovalsAsync(tenantId, cancellationToken);
        var total = new OrderPassResult(0, 0, 0, 0, 0, 0);
        while (total.Claimed < maxOrders)
        {
            var pass = await ProcessBatchAsync(tenantId, runId, cancellationToken);
            if (pass.Claimed == 0)
            {
                break;
            }

            total = new OrderPassResult(total.Claimed + pass.Claimed, total.Validated + pass.Validated, total.NeedsApproval + pass.NeedsApproval,
                total.Exceptions + pass.Exceptions, total.Fixes + pass.Fixes, total.LostClaims + pass.LostClaims);
            progress?.Report(pass.Claimed);
        }

        return total;
    }

    private sealed record Claim(Guid QueueId, Guid TenantId, Guid OrderId, long Token, int Attempts, int MaxAttempts, string? OverrideBy, string? OverrideReason);

    private async Task<List<Claim>> ClaimAsync(Guid? tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select * from public.claim_orders($1, $2, $3, $4)");
        command.Parameters.Add(new() { Value = _options.WorkerId });
        command.Parameters.Add(new() { Value = _options.BatchSize });
        command.Parameters.Add(new() { Value = (int)Math.Ceiling(_options.VisibilityTimeout.TotalSeconds) });
        command.Parameters.Add(new() { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        var claims = new List<Claim>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            claims.Add(new Claim(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetInt64(3), reader.GetInt32(4), reader.GetInt32(5),
                reader.IsDBNull(6) ? null : reader.GetString(6), reader.IsDBNull(7) ? null : reader.GetString(7)));
        }

        return claims;
    }

    private async Task<DateTimeOffset> DatabaseNowAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select hourglass.now()");
        return new DateTimeOffset((DateTime)(await command.ExecuteScalarAsync(cancellationToken))!, TimeSpan.Zero);
    }

    private async Task<List<(OrderSnapshot Snapshot, PolicyVersion Policy, TimeZoneInfo Zone)>> LoadAsync(List<Claim> claims, CancellationToken cancellationToken)
    {
        var queueIds = claims.Select(c => c.QueueId).ToArray();
        var orderIds = claims.Select(c => c.OrderId).ToArray();
        var tenantIds = claims.Select(c => c.TenantId).Distinct().ToArray();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);

        var lines = new Dictionary<Guid, List<OrderLineData>>();
        await using (var command = new NpgsqlCommand("""
            select order_id, id, product_id, quantity, unit_price, discount_pct from public.order_lines
            where tenant_id = any($1) and order_id = any($2) order by order_id, created_at, id
            """, connection))
        {
            command.Parameters.Add(new() { Value = tenantIds });
            command.Parameters.Add(new() { Value = orderIds });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var orderId = reader.GetGuid(0);
                if (!lines.TryGetValue(orderId, out var list))
                {
                    lines[orderId] = list = [];
                }

                list.Add(new OrderLineData(reader.GetGuid(1), reader.IsDBNull(2) ? null : reader.GetGuid(2), reader.GetDecimal(3), reader.GetDecimal(4), reader.GetDecimal(5)));
            }
        }

        var productIds = lines.Values.SelectMany(l => l).Select(l => l.ProductId).OfType<Guid>().Distinct().ToArray();
        var products = new Dictionary<Guid, ProductData>();
        var rules = new Dictionary<Guid, List<PriceRule>>();
        await using (var command = new NpgsqlCommand("""
            select id, sku, name, list_price, unit_cost, active from public.products where tenant_id = any($1) and id = any($2)
            """, connection))
        {
            command.Parameters.Add(new() { Value = tenantIds });
            command.Parameters.Add(new() { Value = productIds });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                products[reader.GetGuid(0)] = new ProductData(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetDecimal(3),
                    reader.IsDBNull(4) ? null : reader.GetDecimal(4), reader.GetBoolean(5));
            }
        }

        await using (var command = new NpgsqlCommand("""
            select tenant_id, id, name, product_id, account_id, tier, currency, min_quantity, unit_price, discount_pct, valid_from, valid_to, priority
            from public.price_rules where tenant_id = any($1) and active and (product_id is null or product_id = any($2))
            """, connection))
        {
            command.Parameters.Add(new() { Value = tenantIds });
            command.Parameters.Add(new() { Value = productIds });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var tenant = reader.GetGuid(0);
                if (!rules.TryGetValue(tenant, out var list))
                {
                    rules[tenant] = list = [];
                }

                list.Add(new PriceRule(reader.GetGuid(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetGuid(3),
                    reader.IsDBNull(4) ? null : reader.GetGuid(4), reader.IsDBNull(5) ? null : reader.GetString(5), reader.GetString(6), reader.GetDecimal(7),
                    reader.IsDBNull(8) ? null : reader.GetDecimal(8), reader.IsDBNull(9) ? null : reader.GetDecimal(9),
                    reader.IsDBNull(10) ? null : reader.GetFieldValue<DateOnly>(10), reader.IsDBNull(11) ? null : reader.GetFieldValue<DateOnly>(11),
                    reader.GetInt32(12)));
            }
        }

        var requirements = new Dictionary<Guid, List<RequirementRule>>();
        await using (var command = new NpgsqlCommand("""
            select tenant_id, rule_key, description, condition::text, severity from public.order_requirement_rules
            where tenant_id = any($1) and active order by rule_key
            """, connection))
        {
            command.Parameters.Add(new() { Value = tenantIds });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var tenant = reader.GetGuid(0);
                if (!requirements.TryGetValue(tenant, out var list))
                {
                    requirements[tenant] = list = [];
                }

                list.Add(new RequirementRule(reader.GetString(1), reader.GetString(2), JsonNode.Parse(reader.GetString(3))!.AsObject(), reader.GetString(4)));
            }
        }

        var policies = new Dictionary<Guid, PolicyVersion>();
        foreach (var tenant in tenantIds)
        {
            policies[tenant] = await PolicyStore.ReadAsync(connection, null, tenant, null, cancellationToken) ?? PolicyStore.BuiltIn;
        }

        var claimsById = claims.ToDictionary(c => c.QueueId);
        var snapshots = new List<(OrderSnapshot, PolicyVersion, TimeZoneInfo)>(claims.Count);
        await using (var command = new NpgsqlCommand("""
            select q.id, o.status, o.currency, o.po_number, o.ship_to::text, o.requested_ship_date,
                   (coalesce(o.placed_at, o.created_at) at time zone t.timezone)::date, o.subtotal, o.total, o.shipping_amount, o.tax_amount,
                   a.id, a.name, a.tier, a.credit_limit, a.requires_po, a.default_ship_to::text, a.open_balance, a.credit_hold,
                   t.settings::text, t.timezone,
                   coalesce((select sum(x.total) from public.orders x
                             where x.tenant_id = o.tenant_id and x.account_id = o.account_id and x.id <> o.id
                               and x.status in ('placed', 'validated', 'on_hold')), 0),
                   ap.decision, ap.decided_by
            from unnest($1::uuid[]) c(id)
            join public.order_processing_queue q on q.id = c.id
            join public.orders o on o.tenant_id = q.tenant_id and o.id = q.order_id
            join public.accounts a on a.tenant_id = o.tenant_id and a.id = o.account_id
            join public.tenants t on t.id = q.tenant_id
            left join lateral (
              select k.payload -> 'approval' ->> 'decision' as decision, k.completed_by as decided_by from public.cards k
              where k.tenant_id = q.tenant_id and k.kind = 'approval' and k.status in ('done', 'dismissed')
                and k.payload ->> 'action_key' = 'order-release/' || q.id::text
              order by k.completed_at desc limit 1) ap on true
            """, connection))
        {
            command.Parameters.Add(new() { Value = queueIds });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
                var claim = claimsById[reader.GetGuid(0)];
                var zone = TimeZoneInfo.TryFindSystemTimeZoneById(reader.GetString(20), out var z) ? z : TimeZoneInfo.Utc;
                var account = new AccountData(reader.GetGuid(11), reader.GetString(12), Text(13), reader.IsDBNull(14) ? null : reader.GetDecimal(14),
                    reader.GetBoolean(15), Text(16) is { } ship ? JsonNode.Parse(ship) as JsonObject : null, reader.GetDecimal(17), reader.GetBoolean(18));
                var snapshot = new OrderSnapshot(
                    claim.QueueId, claim.TenantId, claim.OrderId, claim.Token, claim.Attempts, claim.MaxAttempts,
                    reader.GetString(1), reader.GetString(2), Text(3), Text(4) is { } shipTo ? JsonNode.Parse(shipTo) as JsonObject : null,
                    reader.IsDBNull(5) ? null : reader.GetFieldValue<DateOnly>(5), reader.GetFieldValue<DateOnly>(6),
                    reader.GetDecimal(7), reader.GetDecimal(8), reader.GetDecimal(9), reader.GetDecimal(10),
                    account,
                    lines.TryGetValue(claim.OrderId, out var orderLines) ? orderLines : [],
                    products,
                    rules.TryGetValue(claim.TenantId, out var tenantRules) ? tenantRules : [],
                    requirements.TryGetValue(claim.TenantId, out var tenantRequirements) ? tenantRequirements : [],
                    OrderSettings.From(JsonNode.Parse(reader.GetString(19)) as JsonObject),
                    reader.GetDecimal(21),
                    claim.OverrideBy, claim.OverrideReason, Text(22), Text(23));
                snapshots.Add((snapshot, policies[claim.TenantId], zone));
            }
        }

        return snapshots;
    }

    // One transaction: the fenced queue update decides which outcomes are still ours; everything else is written for those only.
    private async Task<HashSet<Guid>> WriteAsync(List<OrderOutcome> outcomes, Guid? runId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var guard = new NpgsqlCommand("select set_config('hourglass.order_processor', 'on', true)", connection, transaction))
        {
            await guard.ExecuteNonQueryAsync(cancellationToken);
        }

        var kept = new HashSet<Guid>();
        await using (var update = new NpgsqlCommand("""
            update public.order_processing_queue q
            set status = r.status, pricing_status = r.pricing, credit_status = r.credit, requirements_status = r.requirements,
                auto_fix_attempts = r.attempts, validation_results = r.results::jsonb, processed_at = $3, updated_at = $3,
                claimed_by = null, claimed_until = null
            from unnest($1::uuid[], $2::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::integer[], $9::text[])
                 as r(id, token, status, pricing, credit, requirements, attempts, results)
            where q.id = r.id and q.status = 'processing' and q.claimed_by = $10 and q.claim_token = r.token
            returning q.id
            """, connection, transaction))
        {
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Final.QueueId).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Final.ClaimToken).ToArray() });
            update.Parameters.Add(new() { Value = now });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Status).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.PricingStatus).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.CreditStatus).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.RequirementsStatus).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Attempts).ToArray() });
            update.Parameters.Add(new() { Value = outcomes.Select(o => o.Results.ToJsonString()).ToArray() });
            update.Parameters.Add(new() { Value = _options.WorkerId });
            await using var reader = await update.ExecuteReaderAsync(cancellationToken);
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
