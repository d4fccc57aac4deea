using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Bench;

/// <summary>
/// The order benchmark's two baselines, each draining the same queue as the processor. The trivial loop claims a
/// batch and marks it validated. The same-work loop is plain SQL doing what the processor does to the database per
/// batch — the claim, the same reads (tenants, policies, requirement rules, lines, products, price rules, the orders
/// with their accounts, open exposure and approvals), and the same writes (queue entries, orders, repriced lines,
/// fixes, exceptions with review cards, policy violations, warehouse events), in the same round trips — with no
/// validation: each order's outcome comes from the benchmark's plan (<c>bench.order_plan</c>), joined in the writes.
/// </summary>
internal static class OrderBaselines
{
    // The trivial loop's write: the claimed entries marked validated, fenced on the claim as the processor's is.
    private const string CompleteSql = """
        update public.order_processing_queue q
        set status = 'validated', claimed_by = null, claimed_until = null, processed_at = pg_catalog.now(), updated_at = pg_catalog.now()
        from unnest($1::uuid[], $2::bigint[]) as r (id, token)
        where q.id = r.id and q.status = 'processing' and q.claimed_by = $3 and q.claim_token = r.token
        """;

    /// <summary>The trivial baseline: claim a batch, mark it validated (fenced on the claim tokens), until nothing is left.</summary>
    public static async Task<(long Claimed, long Completed)> TrivialLoopAsync(NpgsqlDataSource dataSource, string worker, int batchSize, int visibilitySeconds,
        CancellationToken cancellationToken)
    {
        long claimed = 0;
        long completed = 0;
        var ids = new List<Guid>(batchSize);
        var tokens = new List<long>(batchSize);
        while (true)
        {
            ids.Clear();
            tokens.Clear();
            await using (var claim = dataSource.CreateCommand("select queue_id, claim_token from public.claim_orders($1, $2, $3, $4)"))
            {
                claim.Parameters.Add(new() { Value = worker });
                claim.Parameters.Add(new() { Value = batchSize });
                claim.Parameters.Add(new() { Value = visibilitySeconds });
                claim.Parameters.Add(new() { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
                await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    ids.Add(reader.GetGuid(0));
                    tokens.Add(reader.GetInt64(1));
                }
            }

            if (ids.Count == 0)
            {
                return (claimed, completed);
            }

            claimed += ids.Count;
            await using var complete = dataSource.CreateCommand(CompleteSql);
            complete.Parameters.Add(new() { Value = ids.ToArray() });
            complete.Parameters.Add(new() { Value = tokens.ToArray() });
            complete.Parameters.Add(new() { Value = worker });
            completed += await complete.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    private const string ClaimSql = """
        select c.queue_id, c.tenant_id, c.order_id, c.claim_token, c.auto_fix_attempts, c.max_auto_fix_attempts,
               c.credit_override_by, c.credit_override_reason, (select hourglass.now())
        from public.claim_orders($1, $2, $3, null) c
        """;

    // The reads: the same rows the processor reads for a batch, in the same two round trips.
    private static readonly string[] s_reads =
    [
        "select t.id, t.settings::text, t.timezone from public.tenants t where t.id = any($1)",
        """
        select k.tenant_id, d.version, d.created_by, d.created_at, d.document::text
        from unnest($1::uuid[]) as k(tenant_id)
        cross join lateral (select p.version, p.created_by, p.created_at, p.document from public.tenant_policy_documents p
                            where p.tenant_id = k.tenant_id order by p.version desc limit 1) d
        """,
        "select tenant_id, rule_key, description, condition::text, severity from public.order_requirement_rules where tenant_id = any($1) and active",
        """
        select q.id, o.status, o.currency, o.po_number, o.ship_to::text, o.requested_ship_date,
               (coalesce(o.placed_at, o.created_at) at time zone t.timezone)::date, o.subtotal, o.total, o.shipping_amount, o.tax_amount,
               a.id, a.name, a.tier, a.credit_limit, a.requires_po, a.default_ship_to::text, a.open_balance, a.credit_hold,
               coalesce((select sum(x.total) from public.orders x
                         where x.tenant_id = o.tenant_id and x.account_id = o.account_id and x.id <> o.id
                           and x.status in ('placed', 'validated', 'on_hold')), 0),
               ap.decision
        from unnest($2::uuid[]) c(id)
        join public.order_processing_queue q on q.id = c.id
        join public.orders o on o.tenant_id = q.tenant_id and o.id = q.order_id
        join public.accounts a on a.tenant_id = o.tenant_id and a.id = o.account_id
        join public.tenants t on t.id = q.tenant_id
        left join lateral (
          select k.payload -> 'approval' ->> 'decision' as decision from public.cards k
          where k.tenant_id = q.tenant_id and k.kind = 'approval' and k.status in ('done', 'dismissed')
            and k.payload ->> 'action_key' = 'order-release/' || q.id::text
          order by k.completed_at desc limit 1) ap on true
        where $1::uuid[] is not null
        """,
    ];

    private const string LinesSql = """
        select l.tenant_id, l.product_id, l.order_id, l.id, l.quantity, l.unit_price, l.discount_pct
        from unnest($1::uuid[], $2::uuid[]) as x(tenant_id, order_id)
        join public.order_lines l on l.tenant_id = x.tenant_id and l.order_id = x.order_id
        """;

    private static readonly string[] s_catalogReads =
    [
        """
        select p.id, p.sku, p.name, p.list_price, p.unit_cost, p.active
        from unnest($1::uuid[], $2::uuid[]) as b(tenant_id, product_id) join public.products p on p.tenant_id = b.tenant_id and p.id = b.product_id
        """,
        """
        select r.* from public.price_rules r where r.tenant_id = any($3) and r.product_id is null and r.active
        union all
        select r.* from unnest($1::uuid[], $2::uuid[]) as b(tenant_id, product_id)
        join public.price_rules r on r.tenant_id = b.tenant_id and r.product_id = b.product_id where r.active
        """,
    ];

    // The writes: the outcome each order has in the plan, written as the processor writes it — the fenced queue
    // update first (in the processor's shape), then for the entries it kept: the order's host status and totals (and
    // ship-to when the plan fills it), line 1 repriced, a fix row and an order_fixed event per planned fix, the planned
    // exception with its review card and event (a price 30% under its rule also leaves the auto-fix-ceiling violation
    // the processor records), and one outcome event. Each statement finds its orders from the kept entries and the plan.
    private const string FencedSql = """
        update public.order_processing_queue q
        set status = p.expected_status,
            pricing_status = case when p.exception_type = 'price_mismatch' then 'failed' when p.fix_types like '%recompute_totals%' then 'fixed' else 'passed' end,
            credit_status = 'passed',
            requirements_status = case when p.exception_type in ('missing_po', 'non_positive_quantity', 'lead_time') then 'failed'
                                       when p.fix_types like '%fill_ship_to%' then 'fixed' else 'passed' end,
            auto_fix_attempts = case when p.fixes > 0 then 1 else 0 end,
            validation_results = jsonb_build_object(
              'issues', case when p.exception_type is null then '[]'::jsonb
                             else jsonb_build_array(jsonb_build_object('type', p.exception_type, 'check', 'requirements', 'severity', 'error',
                                                                       'message', 'the planned exception: ' || p.exception_type, 'line_id', null)) end,
              'fixes', p.fixes, 'credit', 'exposure within the limit', 'approval', null, 'policy_version', 'default'),
            processed_at = $4, updated_at = $4, claimed_by = null, claimed_until = null
        from unnest($1::uuid[], $2::bigint[]) as r(id, token), bench.order_plan p
        where q.id = r.id and q.claim_token = r.token and (q.status, q.claimed_by) is not distinct from ('processing', $3) and p.order_id = q.order_id
        returning q.id, q.tenant_id
        """;

    private const string Kept = """
        unnest($1::uuid[]) as kept(id) join public.order_processing_queue q on q.id = kept.id join bench.order_plan p on p.order_id = q.order_id
        """;

    private static readonly string[] s_writes =
    [
        $"""
        update public.order_lines l set unit_price = l.unit_price, discount_pct = 0
        from {Kept}
        where p.fix_types like '%apply_rule_price%' and l.tenant_id = q.tenant_id
          and l.id = (select f.id from public.order_lines f where f.tenant_id = q.tenant_id and f.order_id = q.order_id order by f.created_at, f.id limit 1)
        """,
        $"""
        update public.orders o
        set status = case when p.expected_status = 'validated' then 'validated' else 'on_hold' end, subtotal = o.subtotal, total = o.total,
            ship_to = case when p.fix_types like '%fill_ship_to%' then (select a.default_ship_to from public.accounts a where a.tenant_id = o.tenant_id and a.id = o.account_id)
                           else o.ship_to end,
            updated_at = $2
        from {Kept}
        where o.tenant_id = q.tenant_id and o.id = q.order_id
        """,
        $"""
        insert into public.order_processing_fixes (tenant_id, queue_id, order_id, attempt, fix_type, before, after, policy_version, created_at)
        select q.tenant_id, q.id, q.order_id, 1, f.fix_type, jsonb_build_object('planned', 'before'), jsonb_build_object('planned', 'after'), 'default', $2
        from {Kept} cross join lateral unnest(string_to_array(p.fix_types, ',')) as f(fix_type)
        """,
        $"""
        update public.order_processing_exceptions e
        set resolution_status = 'resolved', resolved_by = 'hourglass', resolved_at = $2, updated_at = $2, resolution_notes = 'no longer applies'
        from unnest($1::uuid[], $3::uuid[]) as r(queue_id, tenant_id)
        where e.tenant_id = r.tenant_id and e.queue_id = r.queue_id and e.resolution_status in ('open', 'in_review')
          and e.exception_type is distinct from (select p.exception_type from public.order_processing_queue q join bench.order_plan p on p.order_id = q.order_id
                                                 where q.id = r.queue_id)
        """,
        $"""
        with opened as (
          insert into public.order_processing_exceptions (tenant_id, queue_id, order_id, exception_type, severity, details, created_at, updated_at)
          select q.tenant_id, q.id, q.order_id, p.exception_type, 'error',
                 jsonb_build_object('message', 'the planned exception: ' || p.exception_type, 'check', 'requirements', 'line_id', null), $2, $2
          from {Kept} where p.exception_type is not null
          on conflict (tenant_id, queue_id, exception_type) where resolution_status in ('open', 'in_review') do nothing
          returning id, tenant_id, order_id, exception_type, details
        )
        insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, payload, created_at, updated_at)
        select x.tenant_id, 'exception_review', 'Order exception: ' || replace(x.exception_type, '_', ' '), x.details ->> 'message', 'order', x.order_id,
               jsonb_build_object('exception_id', x.id, 'exception_type', x.exception_type), $2, $2
        from opened x
        """,
        $"""
        insert into public.agent_policy_violations (tenant_id, policy_key, rule_kind, action_type, action, action_key, decision, severity,
          blocked, message, policy_version, created_at)
        select q.tenant_id, 'auto-fix-ceiling', 'auto_fix_ceiling', 'order_auto_fix', jsonb_build_object('order_id', q.order_id),
               'order-fix/' || q.id || '/planned', 'deny', 'warning', true, 'the planned fix is beyond the ceiling', 'default', $2
        from {Kept} where p.exception_type = 'price_mismatch'
        on conflict (tenant_id, action_key, policy_key) where action_key is not null do nothing
        """,
        $"""
        insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, occurred_at)
        select e.tenant_id, e.event_type, 'order', e.order_id, e.payload, 'order_processor', $2
        from (
          select q.tenant_id, q.order_id, 'order_fixed' as event_type, jsonb_build_object('fix', f.fix_type, 'attempt', 1) as payload
          from {Kept} cross join lateral unnest(string_to_array(p.fix_types, ',')) as f(fix_type)
          union all
          select q.tenant_id, q.order_id, 'order_exception', jsonb_build_object('type', p.exception_type) from {Kept} where p.exception_type is not null
          union all
          select q.tenant_id, q.order_id, 'order_' || p.expected_status,
                 jsonb_build_object('pricing', 'passed', 'credit', 'passed', 'requirements', 'passed', 'fixes', 0, 'account_id', p.account_id)
          from {Kept}
        ) e
        """,
    ];

    /// <summary>The same-work baseline: claim, read, write as the processor does, with the outcomes from the plan, until nothing is left.</summary>
    public static async Task<(long Claimed, long Completed)> SameWorkLoopAsync(NpgsqlDataSource dataSource, string worker, int batchSize, int visibilitySeconds,
        CancellationToken cancellationToken)
    {
        long claimed = 0;
        long completed = 0;
        var queueIds = new List<Guid>(batchSize);
        var tenantIds = new HashSet<Guid>();
        var orderIds = new List<Guid>(batchSize);
        var tokens = new List<long>(batchSize);
        var orderTenants = new List<Guid>(batchSize);
        while (true)
        {
            queueIds.Clear();
            tenantIds.Clear();
            orderIds.Clear();
            tokens.Clear();
            orderTenants.Clear();
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            var now = default(DateTimeOffset);
            await using (var claim = new NpgsqlCommand(ClaimSql, connection))
            {
                claim.Parameters.Add(new() { Value = worker, NpgsqlDbType = NpgsqlDbType.Text });
                claim.Parameters.Add(new() { Value = batchSize, NpgsqlDbType = NpgsqlDbType.Integer });
                claim.Parameters.Add(new() { Value = visibilitySeconds, NpgsqlDbType = NpgsqlDbType.Integer });
                await claim.PrepareAsync(cancellationToken);
                await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    queueIds.Add(reader.GetGuid(0));
                    tenantIds.Add(reader.GetGuid(1));
                    orderTenants.Add(reader.GetGuid(1));
                    orderIds.Add(reader.GetGuid(2));
                    tokens.Add(reader.GetInt64(3));
                    now = reader.GetFieldValue<DateTimeOffset>(8);
                }
            }

            if (queueIds.Count == 0)
            {
                return (claimed, completed);
            }

            claimed += queueIds.Count;
            var tenants = tenantIds.ToArray();
            var catalogTenants = new List<Guid>();
            var catalogProducts = new List<Guid>();
            await using (var reads = new NpgsqlBatch(connection))
            {
                var lines = new NpgsqlBatchCommand(LinesSql);
                lines.Parameters.Add(Uuids(orderTenants.ToArray()));
                lines.Parameters.Add(Uuids(orderIds.ToArray()));
                reads.BatchCommands.Add(lines);
                foreach (var sql in s_reads)
                {
                    var read = new NpgsqlBatchCommand(sql);
                    read.Parameters.Add(Uuids(tenants));
                    if (sql.Contains("$2", StringComparison.Ordinal))
                    {
                        read.Parameters.Add(Uuids(queueIds.ToArray()));
                    }

                    reads.BatchCommands.Add(read);
                }

                await reads.PrepareAsync(cancellationToken);
                await using var reader = await reads.ExecuteReaderAsync(cancellationToken);
                var seen = new HashSet<(Guid, Guid)>();
                while (await reader.ReadAsync(cancellationToken))
                {
                    if (!reader.IsDBNull(1) && seen.Add((reader.GetGuid(0), reader.GetGuid(1))))
                    {
                        catalogTenants.Add(reader.GetGuid(0));
                        catalogProducts.Add(reader.GetGuid(1));
                    }
                }

                await ReadAllAsync(reader, cancellationToken);
            }

            await using (var reads = new NpgsqlBatch(connection))
            {
                foreach (var sql in s_catalogReads)
                {
                    var read = new NpgsqlBatchCommand(sql);
                    read.Parameters.Add(Uuids(catalogTenants.ToArray()));
                    read.Parameters.Add(Uuids(catalogProducts.ToArray()));
                    if (sql.Contains("$3", StringComparison.Ordinal))
                    {
                        read.Parameters.Add(Uuids(tenants));
                    }

                    reads.BatchCommands.Add(read);
                }

                await reads.PrepareAsync(cancellationToken);
                await using var reader = await reads.ExecuteReaderAsync(cancellationToken);
                do
                {
                    await ReadValuesAsync(reader, cancellationToken);
                }
                while (await reader.NextResultAsync(cancellationToken));
            }

            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var kept = new List<Guid>(queueIds.Count);
            var keptTenants = new List<Guid>(queueIds.Count);
            await using (var fenced = new NpgsqlBatch(connection, transaction))
            {
                fenced.BatchCommands.Add(new NpgsqlBatchCommand("select set_config('hourglass.order_processor', 'on', true)"));
                var update = new NpgsqlBatchCommand(FencedSql);
                update.Parameters.Add(Uuids(queueIds.ToArray()));
                update.Parameters.Add(new() { Value = tokens.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                update.Parameters.Add(new() { Value = worker, NpgsqlDbType = NpgsqlDbType.Text });
                update.Parameters.Add(new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                fenced.BatchCommands.Add(update);
                await fenced.PrepareAsync(cancellationToken);
                await using var reader = await fenced.ExecuteReaderAsync(cancellationToken);
                await reader.NextResultAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    kept.Add(reader.GetGuid(0));
                    keptTenants.Add(reader.GetGuid(1));
                }
            }

            if (kept.Count > 0)
            {
                await using var writes = new NpgsqlBatch(connection, transaction);
                foreach (var sql in s_writes)
                {
                    var write = new NpgsqlBatchCommand(sql);
                    write.Parameters.Add(Uuids(kept.ToArray()));
                    write.Parameters.Add(new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                    if (sql.Contains("$3", StringComparison.Ordinal))
                    {
                        write.Parameters.Add(Uuids(keptTenants.ToArray()));
                    }

                    writes.BatchCommands.Add(write);
                }

                await writes.PrepareAsync(cancellationToken);
                await writes.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            completed += kept.Count;
        }
    }

    private static NpgsqlParameter Uuids(Guid[] values) => new() { Value = values, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid };

    // Every value of every row, read as the processor reads it.
    private static async Task ReadValuesAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        var values = new object[reader.FieldCount];
        while (await reader.ReadAsync(cancellationToken))
        {
            reader.GetValues(values);
        }
    }

    private static async Task ReadAllAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        while (await reader.NextResultAsync(cancellationToken))
        {
            await ReadValuesAsync(reader, cancellationToken);
        }
    }
}
