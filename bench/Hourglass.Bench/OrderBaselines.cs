using Hourglass.Orders;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Bench;

/// <summary>
/// The order benchmark's two baselines, each draining the same queue as the processor. The trivial loop claims a
/// batch and marks it validated. The same-work loop is the processor's database work without the processor: its
/// claim, its reads and its one write statement, sent by a plain loop in the same round trips, with no validation —
/// each order's outcome comes from the benchmark's plan (<c>bench.order_plan</c>, read before the run), and the write
/// is driven by the same outcome arrays the processor sends.
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

    /// <summary>
    /// The same-work baseline: the processor's own statements (<see cref="OrderProcessor.ClaimSql"/>, the six reads of
    /// its load batch, <see cref="OrderStore.WriteSql"/>) in the same three round trips on one connection, prepared as
    /// the processor's are, until nothing is left. Every value read is read; no order is validated: each order's
    /// outcome is its kind in the plan (<paramref name="plan"/>, order id → kind, loaded before the run), and the write
    /// set — one array per column, as the processor's — is filled from it with the values just read (totals, the first
    /// line's price, the account's default ship-to): the same rows and about the same bytes as the processor writes.
    /// </summary>
    public static async Task<(long Claimed, long Completed)> SameWorkLoopAsync(NpgsqlDataSource dataSource, string worker, int batchSize, int visibilitySeconds,
        IReadOnlyDictionary<Guid, int> plan, CancellationToken cancellationToken)
    {
        long claimed = 0;
        long completed = 0;
        var claims = new List<(Guid Queue, Guid Tenant, Guid Order, long Token)>(batchSize);
        var orders = new Dictionary<Guid, (decimal Subtotal, decimal Total, Guid Account, string? DefaultShipTo)>(batchSize);
        var firstLines = new Dictionary<Guid, (Guid Id, decimal Price, decimal Discount)>(batchSize);
        var values = new object[32];
        while (true)
        {
            claims.Clear();
            orders.Clear();
            firstLines.Clear();
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            var now = default(DateTimeOffset);
            await using (var claim = new NpgsqlCommand(OrderProcessor.ClaimSql, connection))
            {
                claim.Parameters.Add(new() { Value = worker, NpgsqlDbType = NpgsqlDbType.Text });
                claim.Parameters.Add(new() { Value = batchSize, NpgsqlDbType = NpgsqlDbType.Integer });
                claim.Parameters.Add(new() { Value = visibilitySeconds, NpgsqlDbType = NpgsqlDbType.Integer });
                claim.Parameters.Add(new() { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
                await claim.PrepareAsync(cancellationToken);
                await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    reader.GetValues(values);
                    claims.Add((reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetInt64(3)));
                    now = reader.GetFieldValue<DateTimeOffset>(8);
                }
            }

            if (claims.Count == 0)
            {
                return (claimed, completed);
            }

            claimed += claims.Count;
            var queueIds = claims.Select(c => c.Queue).ToArray();
            var orderIds = claims.Select(c => c.Order).ToArray();
            var orderTenants = claims.Select(c => c.Tenant).ToArray();
            var tenants = orderTenants.Distinct().ToArray();
            await using (var reads = new NpgsqlBatch(connection))
            {
                Add(reads, OrderProcessor.TenantsSql, Uuids(tenants));
                Add(reads, OrderProcessor.PoliciesSql, Uuids(tenants),
                    new NpgsqlParameter { Value = new int[tenants.Length], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
                Add(reads, OrderProcessor.RequirementsSql, Uuids(tenants));
                Add(reads, OrderProcessor.LinesSql, Uuids(orderTenants), Uuids(orderIds));
                Add(reads, OrderProcessor.OrdersSql, Uuids(queueIds));
                Add(reads, OrderProcessor.PriceRulesSql, Uuids(orderTenants), Uuids(orderIds), Uuids(tenants));
                await reads.PrepareAsync(cancellationToken);
                await using var reader = await reads.ExecuteReaderAsync(cancellationToken);
                for (var result = 0; result < 6; result++)
                {
                    if (result > 0)
                    {
                        await reader.NextResultAsync(cancellationToken);
                    }

                    while (await reader.ReadAsync(cancellationToken))
                    {
                        reader.GetValues(values);
                        if (result == 3)
                        {
                            // Lines come in order: an order's first is its line 1, the one the plan's price defects are on.
                            firstLines.TryAdd(reader.GetGuid(0), (reader.GetGuid(1), reader.GetDecimal(4), reader.GetDecimal(5)));
                        }
                        else if (result == 4)
                        {
                            orders[reader.GetGuid(0)] = (reader.GetDecimal(7), reader.GetDecimal(8), reader.GetGuid(11),
                                reader.IsDBNull(16) ? null : reader.GetString(16));
                        }
                    }
                }
            }

            var set = new OrderWriteSet();
            foreach (var (queue, _, order, token) in claims)
            {
                AddPlanned(set, queue, token, OrderBenchData.Kinds[plan[order]], orders[queue], firstLines[order]);
            }

            completed += (await OrderWriter.WriteAsync(connection, set, worker, null, now, cancellationToken)).Count;
        }
    }

    // One order's planned outcome as the write set's rows, in the shapes the processor writes (statuses, results,
    // fixes with before and after, the exception with its details, the auto-fix ceiling's violation, the events).
    private static void AddPlanned(OrderWriteSet set, Guid queue, long token,
        (string Kind, int Share, string Expected, int Fixes, string? FixTypes, string? ExceptionType) plan,
        (decimal Subtotal, decimal Total, Guid Account, string? DefaultShipTo) order, (Guid Id, decimal Price, decimal Discount) line)
    {
        var fixTypes = plan.FixTypes?.Split(',') ?? [];
        var exception = plan.ExceptionType;
        var pricing = exception == "price_mismatch" ? "failed" : fixTypes.Length > 0 && plan.FixTypes!.Contains("total", StringComparison.Ordinal) ? "fixed" : "passed";
        var requirements = exception is "missing_po" or "non_positive_quantity" or "lead_time" ? "failed"
            : plan.FixTypes == "fill_ship_to" ? "fixed" : "passed";
        var issue = exception is null ? "" :
            $$"""{"type":"{{exception}}","check":"requirements","severity":"error","message":"the planned exception: {{exception}}","line_id":"{{line.Id}}"}""";
        set.QueueIds.Add(queue);
        set.Tokens.Add(token);
        set.Statuses.Add(plan.Expected);
        set.Pricing.Add(pricing);
        set.Credit.Add("passed");
        set.Requirements.Add(requirements);
        set.Attempts.Add(fixTypes.Length > 0 ? 1 : 0);
        set.Results.Add($$"""{"issues":[{{issue}}],"fixes":{{fixTypes.Length}},"credit":"exposure within the limit","approval":null,"policy_version":"default"}""");
        set.HostStatuses.Add(plan.Expected == "validated" ? "validated" : "on_hold");
        set.Subtotals.Add(order.Subtotal);
        set.Totals.Add(order.Total);
        set.ShipTos.Add(plan.FixTypes == "fill_ship_to" ? order.DefaultShipTo : null);
        set.OpenTypes.Add(exception ?? "");
        foreach (var type in fixTypes)
        {
            var onLine = type == "apply_rule_price";
            var (before, after) = type switch
            {
                "apply_rule_price" => ($$"""{"unit_price":{{line.Price}},"discount_pct":{{line.Discount}}}""",
                    $$"""{"unit_price":{{line.Price}},"discount_pct":{{line.Discount}},"rule":"planned"}"""),
                "recompute_totals" => ($$"""{"subtotal":{{order.Subtotal}},"total":{{order.Total}}}""", $$"""{"subtotal":{{order.Subtotal}},"total":{{order.Total}}}"""),
                _ => ("""{"ship_to":null}""", $$"""{"ship_to":{{order.DefaultShipTo ?? "null"}}}"""),
            };
            if (onLine)
            {
                set.LineQueueIds.Add(queue);
                set.LineIds.Add(line.Id);
                set.LinePrices.Add(line.Price);
                set.LineDiscounts.Add(line.Discount);
            }

            set.FixQueueIds.Add(queue);
            set.FixAttempts.Add(1);
            set.FixTypes.Add(type);
            set.FixLineIds.Add(onLine ? line.Id : null);
            set.FixBefore.Add(before);
            set.FixAfter.Add(after);
            set.FixPolicyVersions.Add("default");
            set.EventQueueIds.Add(queue);
            set.EventTypes.Add("order_fixed");
            set.EventPayloads.Add($$"""{"fix":"{{type}}","attempt":1,"before":{{before}},"after":{{after}}}""");
        }

        if (exception is not null)
        {
            set.ExceptionQueueIds.Add(queue);
            set.ExceptionTypes.Add(exception);
            set.ExceptionSeverities.Add("error");
            set.ExceptionDetails.Add($$"""{"message":"the planned exception: {{exception}}","check":"requirements","line_id":"{{line.Id}}"}""");
            set.EventQueueIds.Add(queue);
            set.EventTypes.Add("order_exception");
            set.EventPayloads.Add($$"""{"type":"{{exception}}","message":"the planned exception: {{exception}}"}""");
            if (exception == "price_mismatch")
            {
                // A price 30% under its rule: the fix that would correct it is beyond the auto-fix ceiling, and recorded.
                set.ViolationQueueIds.Add(queue);
                set.ViolationRules.Add("auto-fix-ceiling");
                set.ViolationKinds.Add("auto_fix_ceiling");
                set.ViolationActionTypes.Add("order_auto_fix");
                set.ViolationActionKeys.Add($"order-fix/{queue}/{token}/0/apply_rule_price/{line.Id}");
                set.ViolationDecisions.Add("deny");
                set.ViolationSeverities.Add("warning");
                set.ViolationBlocked.Add(true);
                set.ViolationMessages.Add("the planned fix is beyond the auto-fix ceiling");
                set.ViolationVersions.Add("default");
            }
        }

        set.EventQueueIds.Add(queue);
        set.EventTypes.Add($"order_{plan.Expected}");
        set.EventPayloads.Add($$"""{"pricing":"{{pricing}}","credit":"passed","requirements":"{{requirements}}","fixes":{{fixTypes.Length}},"total":{{order.Total}},"account_id":"{{order.Account}}"}""");
    }

    private static void Add(NpgsqlBatch batch, string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.AddRange(parameters);
        batch.BatchCommands.Add(command);
    }

    private static NpgsqlParameter Uuids(Guid[] values) => new() { Value = values, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid };
}
