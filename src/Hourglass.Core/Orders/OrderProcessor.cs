using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Hourglass.Policies;
using Hourglass.Storage;
using Hourglass.Tenancy;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Orders;

/// <summary>How an order processor claims.</summary>
internal sealed record OrderProcessorOptions
{
    /// <summary>Written to claimed_by; unique per processor.</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}:orders";

    /// <summary>Orders claimed, loaded, decided and written together.</summary>
    public int BatchSize { get; init; } = 100;

    /// <summary>How long a claim hides an order from other processors; a crashed processor's orders return after it.</summary>
    public TimeSpan VisibilityTimeout { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>What one pass did.</summary>
/// <remarks>
/// <see cref="Held"/>: entries claimed before their tenant was paused (or the global pause came on) and released
/// unwritten at the write, which reads the kill switches again.
/// </remarks>
internal sealed record OrderPassResult(int Claimed, int Validated, int NeedsApproval, int Exceptions, int Fixes, int LostClaims, int Held = 0);

/// <summary>
/// Processes the order queue in batches, on one connection and three round trips a batch: the claim
/// (<c>claim_orders</c>: SKIP LOCKED, a visibility timeout, a claim token; with the database clock), then what the
/// batch's orders need in one <see cref="NpgsqlBatch"/> (tenants, policies, requirement rules, the lines with their
/// products, the orders with their accounts, and the price rules), then — after each order is decided in memory
/// (<see cref="OrderDecider"/>) — the write, one statement in one implicit transaction (<see cref="OrderWriter"/>):
/// the queue entries fenced on their claim (an entry whose claim lapsed and was taken over, or whose order changed
/// meanwhile, is skipped whole), and joined on the entries that were still ours the fixes (to the order and its
/// lines, with before and after), the exceptions with their review cards, approval cards, policy violations and
/// warehouse events. Statements are prepared (once per physical connection). Any number of processors can share the
/// queue; none processes an order twice at once. Docs: docs/orders.md.
/// </summary>
internal sealed class OrderProcessor(NpgsqlDataSource dataSource, OrderProcessorOptions? options = null)
{
    // Tenants' settings and time zones, parsed once while their text stays the same.
    private readonly ConcurrentDictionary<Guid, TenantFacts> _tenants = new();

    private readonly OrderProcessorOptions _options = options ?? new OrderProcessorOptions();

    public string WorkerId => _options.WorkerId;

    /// <summary>Entries waiting on an approval a person has now decided go back to pending, to be decided again with it.</summary>
    public async Task<int> RequeueDecidedApprovalsAsync(Guid? tenantId, CancellationToken cancellationToken)
    {
        return await OrderStore.RequeueDecidedApprovalsAsync(dataSource, tenantId, cancellationToken);
    }

    /// <summary>Claims and processes one batch (of one tenant, or of any). Returns what it did; Claimed 0 means the queue is empty.</summary>
    public async Task<OrderPassResult> ProcessBatchAsync(Guid? tenantId, Guid? runId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var (claims, now) = await ClaimAsync(connection, tenantId, cancellationToken);
        if (claims.Count == 0)
        {
            return new OrderPassResult(0, 0, 0, 0, 0, 0);
        }

        // Crash tests stop a real processor here, holding claims it will never write.
        await Cycles.Failpoints.HitAsync("orders.after_claim", cancellationToken);

        var snapshots = await LoadAsync(connection, claims, cancellationToken);
        var outcomes = new List<OrderOutcome>(snapshots.Count);
        foreach (var (snapshot, policy, zone) in snapshots)
        {
            outcomes.Add(OrderDecider.Decide(snapshot, policy, zone, now));
        }

        var held = new HashSet<Guid>();
        var kept = await OrderWriter.WriteAsync(connection, outcomes, _options.WorkerId, runId, now, cancellationToken, held);
        int validated = 0, needsApproval = 0, exceptions = 0, fixes = 0;
        foreach (var outcome in outcomes)
        {
            if (!kept.Contains(outcome.Final.QueueId))
            {
                continue;
            }

            fixes += outcome.Fixes.Count;
            switch (outcome.Status)
            {
                case "validated":
                    validated++;
                    break;
                case "needs_approval":
                    needsApproval++;
                    break;
                default:
                    exceptions++;
                    break;
            }
        }

        return new OrderPassResult(claims.Count, validated, needsApproval, exceptions, fixes, outcomes.Count - kept.Count - held.Count, held.Count);
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
                total.Exceptions + pass.Exceptions, total.Fixes + pass.Fixes, total.LostClaims + pass.LostClaims, total.Held + pass.Held);
            progress?.Report(pass.Claimed);
        }

        return total;
    }

    private sealed record Claim(Guid QueueId, Guid TenantId, Guid OrderId, long Token, int Attempts, int MaxAttempts, string? OverrideBy, string? OverrideReason);

    private sealed record OrderRow(Guid QueueId, string Status, string Currency, string? PoNumber, string? ShipTo, DateOnly? RequestedShipDate,
        DateOnly OrderDate, decimal Subtotal, decimal Total, decimal ShippingAmount, decimal TaxAmount, AccountData Account, decimal OtherOpenExposure,
        string? ApprovalDecision, string? ApprovedBy);

    private sealed record TenantFacts(string SettingsText, string TimeZoneId, OrderSettings Settings, TimeZoneInfo Zone);

    // The statements live in their stores (docs/development.md, "Where SQL goes"); named here as the order benchmark's
    // same-work baseline sends them.
    internal const string ClaimSql = OrderStore.ClaimSql;

    // The clock comes with the claim: hourglass.now() in the same statement is the claim's own time (the frozen
    // clock in tests), and every timestamp the batch writes is that time.
    private async Task<(List<Claim> Claims, DateTimeOffset Now)> ClaimAsync(NpgsqlConnection connection, Guid? tenantId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(ClaimSql, connection);
        command.Parameters.Add(new() { Value = _options.WorkerId, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = _options.BatchSize, NpgsqlDbType = NpgsqlDbType.Integer });
        command.Parameters.Add(new() { Value = (int)Math.Ceiling(_options.VisibilityTimeout.TotalSeconds), NpgsqlDbType = NpgsqlDbType.Integer });
        command.Parameters.Add(new() { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        if (ProductDataSource.MayPrepare(connection))
        {
            await command.PrepareAsync(cancellationToken);
        }

        var claims = new List<Claim>(_options.BatchSize);
        var now = default(DateTimeOffset);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            claims.Add(new Claim(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetInt64(3), reader.GetInt32(4), reader.GetInt32(5),
                reader.IsDBNull(6) ? null : reader.GetString(6), reader.IsDBNull(7) ? null : reader.GetString(7)));
            now = reader.GetFieldValue<DateTimeOffset>(8);
        }

        return (claims, now);
    }

    // Everything the batch needs, in one round trip: six reads in one batch (the products come with the lines, the
    // price rules are those of the lines' products). Each statement reads its own snapshot (READ COMMITTED), as
    // separate queries would; all of them after the claim committed, so a change to an order after that re-queues it
    // and voids the claim (the write is fenced on it).
    internal const string TenantsSql = TenancyStore.TenantSettingsSql;

    internal const string PoliciesSql = PolicyStore.InForceBatchSql;

    internal const string RequirementsSql = OrderStore.RequirementsSql;

    internal const string LinesSql = OrderStore.LinesSql;

    internal const string PriceRulesSql = OrderStore.PriceRulesSql;

    internal const string OrdersSql = OrderStore.OrdersSql;

    private async Task<List<(OrderSnapshot Snapshot, PolicyVersion Policy, TimeZoneInfo Zone)>> LoadAsync(NpgsqlConnection connection, List<Claim> claims,
        CancellationToken cancellationToken)
    {
        var queueIds = new Guid[claims.Count];
        var orderIds = new Guid[claims.Count];
        for (var i = 0; i < claims.Count; i++)
        {
            queueIds[i] = claims[i].QueueId;
            orderIds[i] = claims[i].OrderId;
        }

        var tenantIds = claims.Select(c => c.TenantId).Distinct().ToArray();
        var orderTenants = claims.Select(c => c.TenantId).ToArray();
        // The load asks for a policy document's text only when a newer version is in force than the one parsed here.
        var database = PolicyStore.DatabaseOf(connection);
        var known = tenantIds.Select(t => PolicyStore.NewestParsed(database, t)).ToArray();

        await using var batch = new NpgsqlBatch(connection);
        Add(batch, TenantsSql, Uuids(tenantIds));
        Add(batch, PoliciesSql, Uuids(tenantIds), new NpgsqlParameter { Value = known, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
        Add(batch, RequirementsSql, Uuids(tenantIds));
        Add(batch, LinesSql, Uuids(orderTenants), Uuids(orderIds));
        Add(batch, OrdersSql, Uuids(queueIds));
        Add(batch, PriceRulesSql, Uuids(orderTenants), Uuids(orderIds), Uuids(tenantIds));
        if (ProductDataSource.MayPrepare(connection))
        {
            await batch.PrepareAsync(cancellationToken);
        }

        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);

        var tenants = new Dictionary<Guid, TenantFacts>(tenantIds.Length);
        while (await reader.ReadAsync(cancellationToken))
        {
            var tenant = reader.GetGuid(0);
            var settings = reader.GetString(1);
            var zone = reader.GetString(2);
            if (!_tenants.TryGetValue(tenant, out var facts) || facts.SettingsText != settings || facts.TimeZoneId != zone)
            {
                facts = new TenantFacts(settings, zone, OrderSettings.From(JsonNode.Parse(settings) as JsonObject),
                    TimeZoneInfo.TryFindSystemTimeZoneById(zone, out var z) ? z : TimeZoneInfo.Utc);
                _tenants[tenant] = facts;
            }

            tenants[tenant] = facts;
        }

        await reader.NextResultAsync(cancellationToken);
        var policies = new Dictionary<Guid, PolicyVersion>(tenantIds.Length);
        while (await reader.ReadAsync(cancellationToken))
        {
            var tenant = reader.GetGuid(0);
            var version = reader.GetInt32(1);
            if (reader.IsDBNull(4))
            {
                policies[tenant] = PolicyStore.Parsed(database, tenant, version);
                continue;
            }

            policies[tenant] = PolicyStore.Remember(database, tenant, version, reader.GetString(4), reader.GetString(2),
                reader.GetFieldValue<DateTimeOffset>(3));
        }

        await reader.NextResultAsync(cancellationToken);
        var requirements = new Dictionary<Guid, List<RequirementRule>>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var tenant = reader.GetGuid(0);
            if (!requirements.TryGetValue(tenant, out var list))
            {
                requirements[tenant] = list = [];
            }

            list.Add(new RequirementRule(reader.GetString(1), reader.GetString(2), JsonNode.Parse(reader.GetString(3))!.AsObject(), reader.GetString(4)));
        }

        await reader.NextResultAsync(cancellationToken);
        var lines = new Dictionary<Guid, List<OrderLineData>>(claims.Count);
        var products = new Dictionary<Guid, ProductData>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var orderId = reader.GetGuid(0);
            if (!lines.TryGetValue(orderId, out var list))
            {
                lines[orderId] = list = [];
            }

            var productId = reader.IsDBNull(2) ? (Guid?)null : reader.GetGuid(2);
            list.Add(new OrderLineData(reader.GetGuid(1), productId, reader.GetDecimal(3), reader.GetDecimal(4), reader.GetDecimal(5)));
            if (productId is { } product && !reader.IsDBNull(7) && !products.ContainsKey(product))
            {
                products[product] = new ProductData(product, reader.GetString(7), reader.GetString(8), reader.GetDecimal(9),
                    reader.IsDBNull(10) ? null : reader.GetDecimal(10), reader.GetBoolean(11));
            }
        }

        await reader.NextResultAsync(cancellationToken);
        var rows = new List<OrderRow>(claims.Count);
        while (await reader.ReadAsync(cancellationToken))
        {
            string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
            rows.Add(new OrderRow(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), Text(3), Text(4),
                reader.IsDBNull(5) ? null : reader.GetFieldValue<DateOnly>(5), reader.GetFieldValue<DateOnly>(6),
                reader.GetDecimal(7), reader.GetDecimal(8), reader.GetDecimal(9), reader.GetDecimal(10),
                new AccountData(reader.GetGuid(11), reader.GetString(12), Text(13), reader.IsDBNull(14) ? null : reader.GetDecimal(14),
                    reader.GetBoolean(15), Text(16) is { } ship ? JsonNode.Parse(ship) as JsonObject : null, reader.GetDecimal(17), reader.GetBoolean(18)),
                reader.GetDecimal(19), Text(20), Text(21)));
        }

        await reader.NextResultAsync(cancellationToken);
        var rules = new Dictionary<Guid, List<PriceRule>>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var r = reader;
            var tenant = r.GetGuid(0);
            if (!rules.TryGetValue(tenant, out var list))
            {
                rules[tenant] = list = [];
            }

            list.Add(new PriceRule(r.GetGuid(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetGuid(3), r.IsDBNull(4) ? null : r.GetGuid(4),
                r.IsDBNull(5) ? null : r.GetString(5), r.GetString(6), r.GetDecimal(7), r.IsDBNull(8) ? null : r.GetDecimal(8),
                r.IsDBNull(9) ? null : r.GetDecimal(9), r.IsDBNull(10) ? null : r.GetFieldValue<DateOnly>(10),
                r.IsDBNull(11) ? null : r.GetFieldValue<DateOnly>(11), r.GetInt32(12)));
        }

        var claimsById = claims.ToDictionary(c => c.QueueId);
        var snapshots = new List<(OrderSnapshot, PolicyVersion, TimeZoneInfo)>(rows.Count);
        foreach (var row in rows)
        {
            var claim = claimsById[row.QueueId];
            var tenant = tenants[claim.TenantId];
            var snapshot = new OrderSnapshot(
                claim.QueueId, claim.TenantId, claim.OrderId, claim.Token, claim.Attempts, claim.MaxAttempts,
                row.Status, row.Currency, row.PoNumber, row.ShipTo is { } shipTo ? JsonNode.Parse(shipTo) as JsonObject : null,
                row.RequestedShipDate, row.OrderDate, row.Subtotal, row.Total, row.ShippingAmount, row.TaxAmount,
                row.Account,
                lines.TryGetValue(claim.OrderId, out var orderLines) ? orderLines : [],
                products,
                rules.TryGetValue(claim.TenantId, out var tenantRules) ? tenantRules : [],
                requirements.TryGetValue(claim.TenantId, out var tenantRequirements) ? tenantRequirements : [],
                tenant.Settings,
                row.OtherOpenExposure,
                claim.OverrideBy, claim.OverrideReason, row.ApprovalDecision, row.ApprovedBy);
            snapshots.Add((snapshot, policies.TryGetValue(claim.TenantId, out var policy) ? policy : PolicyStore.BuiltIn, tenant.Zone));
        }

        return snapshots;
    }

    private static void Add(NpgsqlBatch batch, string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.AddRange(parameters);
        batch.BatchCommands.Add(command);
    }

    private static NpgsqlParameter Uuids(Guid[] values) => new() { Value = values, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid };
}
