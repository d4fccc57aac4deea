using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Orders;

/// <summary>One entry of a tenant's order queue, with the order's PO number, account and total.</summary>
internal sealed record OrderQueueRow(Guid OrderId, string PoNumber, string Account, decimal Total, string Currency, string Status,
    string PricingStatus, string CreditStatus, string RequirementsStatus, int AutoFixAttempts, string Approval);

/// <summary>One order exception: what went wrong, how bad, and how (and by whom) it was resolved.</summary>
internal sealed record OrderExceptionRow(Guid Id, Guid OrderId, string ExceptionType, string Severity, string ResolutionStatus, string Message,
    string ResolvedBy, string ResolutionNotes);

/// <summary>A paused tenant's orders waiting for the resume: the tenant, its pause (when, by whom, why) and how many.</summary>
internal sealed record HeldOrdersRow(Guid TenantId, string TenantName, DateTimeOffset? PausedAt, string? PausedBy, string? PausedReason, long Orders);

/// <summary>
/// The only code that names the order tables in SQL: <c>orders</c>, <c>order_lines</c>, the processing queue, its
/// exceptions and fixes, requirement and price rules, <c>products</c> and <c>monitoring_order_throughput</c>
/// (docs/development.md, "Where SQL goes").
/// </summary>
internal static class OrderStore
{
    /// <summary>How many queue entries a processor could claim now (pending, or processing with an expired claim).</summary>
    public static async Task<long> ClaimableCountAsync(NpgsqlDataSource dataSource, Guid? tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select count(*) from public.order_processing_queue
            where ($1::uuid is null or tenant_id = $1) and (status = 'pending' or (status = 'processing' and claimed_until < hourglass.now()))
            """);
        command.Parameters.Add(new() { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>A tenant's queue (optionally one status), by status, priority and age, at most <paramref name="limit"/> entries.</summary>
    public static async Task<IReadOnlyList<OrderQueueRow>> QueueAsync(NpgsqlDataSource dataSource, Guid tenantId, string? status, int limit,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select q.order_id, coalesce(o.po_number, '-'), a.name, o.total, o.currency, q.status, q.pricing_status, q.credit_status, q.requirements_status,
                   q.auto_fix_attempts, coalesce(q.validation_results ->> 'approval', '')
            from public.order_processing_queue q
            join public.orders o on o.tenant_id = q.tenant_id and o.id = q.order_id
            join public.accounts a on a.tenant_id = o.tenant_id and a.id = o.account_id
            where q.tenant_id = $1 and ($2::text is null or q.status = $2)
            order by q.status, q.priority desc, q.created_at limit $3
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = (object?)status ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = limit });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<OrderQueueRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetDecimal(3), reader.GetString(4), reader.GetString(5),
                reader.GetString(6), reader.GetString(7), reader.GetString(8), reader.GetInt32(9), reader.GetString(10)));
        }

        return rows;
    }

    /// <summary>A tenant's open and in-review exceptions (and with <paramref name="alsoClosed"/> those closed in the last 30 days), open first.</summary>
    public static async Task<IReadOnlyList<OrderExceptionRow>> ExceptionsAsync(NpgsqlDataSource dataSource, Guid tenantId, bool alsoClosed,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select e.id, e.order_id, e.exception_type, e.severity, e.resolution_status, coalesce(e.details ->> 'message', ''),
                   coalesce(e.resolved_by, ''), coalesce(e.resolution_notes, '')
            from public.order_processing_exceptions e
            where e.tenant_id = $1 and (e.resolution_status in ('open', 'in_review') or ($2 and e.updated_at > hourglass.now() - interval '30 days'))
            order by e.resolution_status not in ('open', 'in_review'), e.created_at
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = alsoClosed });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<OrderExceptionRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new(reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5),
                reader.GetString(6), reader.GetString(7)));
        }

        return rows;
    }

    /// <summary>Queue entries per tenant (or the one given) and status.</summary>
    public static Task<IReadOnlyList<(Guid TenantId, string Status, long Count)>> QueueCountsAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid? tenantId, CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.ForTenant(connection, transaction, """
            select q.tenant_id, q.status, count(*) from public.order_processing_queue q
            where ($1::uuid is null or q.tenant_id = $1) group by q.tenant_id, q.status
            """, tenantId), r => (r.GetGuid(0), r.GetString(1), r.GetInt64(2)), cancellationToken);

    /// <summary>Open and in-review exceptions per tenant and type, by tenant and type.</summary>
    public static Task<IReadOnlyList<(Guid TenantId, string Type, long Open, long InReview)>> OpenExceptionCountsAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid? tenantId, CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.ForTenant(connection, transaction, """
            select e.tenant_id, e.exception_type, count(*) filter (where e.resolution_status = 'open'), count(*) filter (where e.resolution_status = 'in_review')
            from public.order_processing_exceptions e
            where ($1::uuid is null or e.tenant_id = $1) and e.resolution_status in ('open', 'in_review')
            group by e.tenant_id, e.exception_type
            order by e.tenant_id, e.exception_type
            """, tenantId), r => (r.GetGuid(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3)), cancellationToken);

    /// <summary>A page of a tenant's queue, optionally in one status, with each order's checks.</summary>
    public static Task<JsonPage> QueuePageAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, PageRequest page, string? status,
        CancellationToken cancellationToken) =>
        StoreReads.PageAsync(connection, transaction, """
            select id, order_id, status, pricing_status, credit_status, requirements_status, auto_fix_attempts, validation_results, processed_at, created_at
            from public.order_processing_queue where tenant_id = $1 and ($4::text is null or status = $4)
            """, tenantId, page, cancellationToken, status);

    /// <summary>A page of a tenant's exceptions, optionally in one resolution status.</summary>
    public static Task<JsonPage> ExceptionsPageAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, PageRequest page,
        string? status, CancellationToken cancellationToken) =>
        StoreReads.PageAsync(connection, transaction, """
            select id, queue_id, order_id, exception_type, severity, details, resolution_status, resolved_by, resolved_at, resolution_notes, created_at
            from public.order_processing_exceptions where tenant_id = $1 and ($4::text is null or resolution_status = $4)
            """, tenantId, page, cancellationToken, status);

    /// <summary><c>review_order_exception</c> on the tenant's exception: the outcome, or null when the tenant has no such exception.</summary>
    public static Task<string?> ReviewExceptionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid exceptionId,
        CancellationToken cancellationToken) =>
        StoreReads.ScalarAsync<string>(connection, transaction,
            "select public.review_order_exception($1) where exists (select 1 from public.order_processing_exceptions where id = $1 and tenant_id = $2)",
            cancellationToken, exceptionId, tenantId);

    /// <summary>
    /// <c>resolve_order_exception</c> (<paramref name="resolution"/> resolved or dismissed) on the tenant's exception: the
    /// outcome, or null when the tenant has no such exception.
    /// </summary>
    public static Task<string?> ResolveExceptionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid exceptionId,
        string resolution, string? notes, CancellationToken cancellationToken) =>
        StoreReads.ScalarAsync<string>(connection, transaction,
            "select public.resolve_order_exception($1, $3, $4) where exists (select 1 from public.order_processing_exceptions where id = $1 and tenant_id = $2)",
            cancellationToken, exceptionId, tenantId, resolution, notes);

    /// <summary><c>override_order_credit</c> on the tenant's queued order: the outcome, or null when the tenant has no such queue entry.</summary>
    public static Task<string?> OverrideCreditAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid orderId, string? reason,
        CancellationToken cancellationToken) =>
        StoreReads.ScalarAsync<string>(connection, transaction,
            "select public.override_order_credit($1, $2) where exists (select 1 from public.order_processing_queue where order_id = $1 and tenant_id = $3)",
            cancellationToken, orderId, reason, tenantId);

    /// <summary>What a cycle measures of a tenant's orders: pending and waiting-for-approval entries, open and in-review exceptions.</summary>
    public static async Task<(long Pending, long NeedsApproval, long OpenExceptions)> CycleCountsAsync(NpgsqlDataSource dataSource, Guid tenantId,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select count(*) filter (where q.status = 'pending'),
                   count(*) filter (where q.status = 'needs_approval'),
                   (select count(*) from public.order_processing_exceptions e where e.tenant_id = $1 and e.resolution_status in ('open', 'in_review'))
            from public.order_processing_queue q where q.tenant_id = $1
            """);
        command.Parameters.Add(new() { Value = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }

    // The processor's statements (OrderProcessor: the claim, then one batch of reads); it prepares and runs them itself
    // in one round trip, so they are kept here as text.
    internal const string ClaimSql = """
        select c.queue_id, c.tenant_id, c.order_id, c.claim_token, c.auto_fix_attempts, c.max_auto_fix_attempts,
               c.credit_override_by, c.credit_override_reason, (select hourglass.now())
        from public.claim_orders($1, $2, $3, $4) c
        """;

    internal const string RequirementsSql = """
        select tenant_id, rule_key, description, condition::text, severity from public.order_requirement_rules
        where tenant_id = any($1) and active order by rule_key
        """;

    // The batch's lines with their products (an unknown product has none).
    internal const string LinesSql = """
        select l.order_id, l.id, l.product_id, l.quantity, l.unit_price, l.discount_pct, l.tenant_id,
               p.sku, p.name, p.list_price, p.unit_cost, p.active
        from unnest($1::uuid[], $2::uuid[]) as x(tenant_id, order_id)
        join public.order_lines l on l.tenant_id = x.tenant_id and l.order_id = x.order_id
        left join public.products p on p.tenant_id = l.tenant_id and p.id = l.product_id
        order by l.order_id, l.created_at, l.id
        """;

    // Rules for all products, then the rules of the products on the batch's lines, by (tenant, product) pairs: each
    // an index lookup (idx_price_rules_tenant_product), whatever the catalog's size (the statements are prepared,
    // and a generic plan knows nothing about the arrays' sizes).
    internal const string PriceRulesSql = """
        select r.tenant_id, r.id, r.name, r.product_id, r.account_id, r.tier, r.currency, r.min_quantity, r.unit_price, r.discount_pct,
               r.valid_from, r.valid_to, r.priority
        from public.price_rules r where r.tenant_id = any($3) and r.product_id is null and r.active
        union all
        select r.tenant_id, r.id, r.name, r.product_id, r.account_id, r.tier, r.currency, r.min_quantity, r.unit_price, r.discount_pct,
               r.valid_from, r.valid_to, r.priority
        from (select distinct l.tenant_id, l.product_id
              from unnest($1::uuid[], $2::uuid[]) as x(tenant_id, order_id)
              join public.order_lines l on l.tenant_id = x.tenant_id and l.order_id = x.order_id
              where l.product_id is not null) b
        join public.price_rules r on r.tenant_id = b.tenant_id and r.product_id = b.product_id
        where r.active
        """;

    // The orders with their accounts, the account's other open orders (idx_orders_tenant_account_open) and a decided approval.
    internal const string OrdersSql = """
        select q.id, o.status, o.currency, o.po_number, o.ship_to::text, o.requested_ship_date,
               (coalesce(o.placed_at, o.created_at) at time zone t.timezone)::date, o.subtotal, o.total, o.shipping_amount, o.tax_amount,
               a.id, a.name, a.tier, a.credit_limit, a.requires_po, a.default_ship_to::text, a.open_balance, a.credit_hold,
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
        """;

    /// <summary>Entries waiting on an approval a person has now decided go back to pending, to be decided again with it.</summary>
    public static async Task<int> RequeueDecidedApprovalsAsync(NpgsqlDataSource dataSource, Guid? tenantId, CancellationToken cancellationToken)
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

    // Seeding and inspection (benchmarks): one method per statement, on the caller's connection and transaction

    /// <summary>
    /// <paramref name="count"/> orders of one tenant numbered <c>po-000001</c> on, order o for account <c>account-</c>(1 + o mod
    /// <paramref name="accounts"/>) (<see cref="Tenancy.TenancyStore.InsertNamedAccountsAsync"/>).
    /// </summary>
    public static Task<int> InsertOrdersOfNamedAccountsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int count,
        int accounts, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.orders (tenant_id, account_id, po_number)
            select $1, (select a.id from public.accounts a where a.tenant_id = $1 and a.name = pg_catalog.format('account-%s', pg_catalog.lpad((1 + o % $3)::text, 5, '0'))),
                   pg_catalog.format('po-%s', pg_catalog.lpad(o::text, 6, '0'))
            from generate_series(1, $2) o
            """, cancellationToken, tenantId, count, accounts);

    /// <summary>A tenant's orders' ids, by PO number.</summary>
    public static Task<Guid[]> OrderIdsByPoNumberAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        CancellationToken cancellationToken) =>
        StoreReads.GuidsAsync(connection, transaction, "select id from public.orders where tenant_id = $1 order by po_number", cancellationToken, tenantId);

    // Seeding (simulator, demo, benchmarks): bulk loads. The COPY loads write their rows by one binary COPY on the
    // caller's connection, in its transaction; the tables' triggers derive what they derive from an insert (a placed
    // order's queue entry).

    /// <summary>A product to load.</summary>
    internal sealed record ProductLoad(Guid Id, Guid TenantId, string Sku, string Name, decimal ListPrice, decimal? UnitCost);

    /// <summary>A price rule to load: a discount for every product, for the accounts of one tier.</summary>
    internal sealed record TierDiscountLoad(Guid TenantId, string Name, string Tier, decimal DiscountPct);

    /// <summary>An order to load; what is null is left unset (SQL null).</summary>
    internal sealed record OrderLoad(Guid Id, Guid TenantId, Guid AccountId, Guid? ContactId, string Status, string? PoNumber, string? ShipTo,
        DateOnly? RequestedShipDate, string Currency, DateTimeOffset? PlacedAt, decimal Subtotal, decimal Total, decimal ShippingAmount = 0m,
        decimal TaxAmount = 0m);

    /// <summary>An order line to load.</summary>
    internal sealed record OrderLineLoad(Guid TenantId, Guid OrderId, Guid? ProductId, decimal Quantity, decimal UnitPrice, decimal DiscountPct);

    /// <summary>A price rule to load; what is null is left unset (SQL null).</summary>
    internal sealed record PriceRuleLoad(Guid TenantId, string Name, Guid? ProductId, Guid? AccountId, string? Tier, decimal MinQuantity, decimal? UnitPrice,
        decimal? DiscountPct, DateOnly? ValidFrom, DateOnly? ValidTo, int Priority);

    /// <summary>Loads products; returns how many.</summary>
    public static Task<ulong> LoadProductsAsync(NpgsqlConnection connection, IEnumerable<ProductLoad> products, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, "copy public.products (id, tenant_id, sku, name, list_price, unit_cost) from stdin (format binary)",
            [NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Numeric, NpgsqlDbType.Numeric],
            products, p => [p.Id, p.TenantId, p.Sku, p.Name, p.ListPrice, p.UnitCost], cancellationToken);

    /// <summary>Loads tier discounts (price rules for every product); returns how many.</summary>
    public static Task<ulong> LoadTierDiscountsAsync(NpgsqlConnection connection, IEnumerable<TierDiscountLoad> rules, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, "copy public.price_rules (tenant_id, name, tier, discount_pct) from stdin (format binary)",
            [NpgsqlDbType.Uuid, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Numeric], rules, r => [r.TenantId, r.Name, r.Tier, r.DiscountPct],
            cancellationToken);

    /// <summary>Loads orders (a placed one is queued by the schema's trigger); returns how many.</summary>
    public static Task<ulong> LoadOrdersAsync(NpgsqlConnection connection, IEnumerable<OrderLoad> orders, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, """
            copy public.orders (id, tenant_id, account_id, contact_id, status, po_number, ship_to, requested_ship_date, currency, placed_at, subtotal, total,
                                shipping_amount, tax_amount)
            from stdin (format binary)
            """, s_orderTypes, orders, OrderValues, cancellationToken);

    /// <summary>
    /// Loads orders as of <paramref name="at"/> (their created and updated times); returns how many. Under the caller's
    /// <c>session_replication_role = replica</c> the triggers do not fire (a bulk load of rows consistent by construction).
    /// </summary>
    public static Task<ulong> LoadOrdersAsOfAsync(NpgsqlConnection connection, IEnumerable<OrderLoad> orders, DateTimeOffset at,
        CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, """
            copy public.orders (id, tenant_id, account_id, contact_id, status, po_number, ship_to, requested_ship_date, currency, placed_at, subtotal, total,
                                shipping_amount, tax_amount, created_at, updated_at)
            from stdin (format binary)
            """, [.. s_orderTypes, NpgsqlDbType.TimestampTz, NpgsqlDbType.TimestampTz], orders, o => [.. OrderValues(o), at, at], cancellationToken);

    private static readonly NpgsqlDbType[] s_orderTypes =
    [
        NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Jsonb,
        NpgsqlDbType.Date, NpgsqlDbType.Text, NpgsqlDbType.TimestampTz, NpgsqlDbType.Numeric, NpgsqlDbType.Numeric, NpgsqlDbType.Numeric, NpgsqlDbType.Numeric,
    ];

    private static object?[] OrderValues(OrderLoad o) =>
        [o.Id, o.TenantId, o.AccountId, o.ContactId, o.Status, o.PoNumber, o.ShipTo, o.RequestedShipDate, o.Currency, o.PlacedAt, o.Subtotal, o.Total,
         o.ShippingAmount, o.TaxAmount];

    /// <summary>Loads price rules (active, in USD); returns how many.</summary>
    public static Task<ulong> LoadPriceRulesAsync(NpgsqlConnection connection, IEnumerable<PriceRuleLoad> rules, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, """
            copy public.price_rules (tenant_id, name, product_id, account_id, tier, min_quantity, unit_price, discount_pct, valid_from, valid_to, priority)
            from stdin (format binary)
            """,
            [NpgsqlDbType.Uuid, NpgsqlDbType.Text, NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Text, NpgsqlDbType.Numeric, NpgsqlDbType.Numeric,
             NpgsqlDbType.Numeric, NpgsqlDbType.Date, NpgsqlDbType.Date, NpgsqlDbType.Integer],
            rules, r => [r.TenantId, r.Name, r.ProductId, r.AccountId, r.Tier, r.MinQuantity, r.UnitPrice, r.DiscountPct, r.ValidFrom, r.ValidTo, r.Priority],
            cancellationToken);

    /// <summary>Loads order lines, each created at its own time; under the caller's <c>session_replication_role = replica</c> no trigger fires.</summary>
    public static Task<ulong> LoadOrderLinesAsOfAsync(NpgsqlConnection connection, IEnumerable<(OrderLineLoad Line, DateTimeOffset CreatedAt)> lines,
        CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection,
            "copy public.order_lines (tenant_id, order_id, product_id, quantity, unit_price, discount_pct, created_at) from stdin (format binary)",
            [NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Numeric, NpgsqlDbType.Numeric, NpgsqlDbType.Numeric, NpgsqlDbType.TimestampTz],
            lines, x => [x.Line.TenantId, x.Line.OrderId, x.Line.ProductId, x.Line.Quantity, x.Line.UnitPrice, x.Line.DiscountPct, x.CreatedAt],
            cancellationToken);

    /// <summary>Loads order lines (each queues its placed order again, by the schema's trigger); returns how many.</summary>
    public static Task<ulong> LoadOrderLinesAsync(NpgsqlConnection connection, IEnumerable<OrderLineLoad> lines, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, "copy public.order_lines (tenant_id, order_id, product_id, quantity, unit_price, discount_pct) from stdin (format binary)",
            [NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Numeric, NpgsqlDbType.Numeric, NpgsqlDbType.Numeric],
            lines, l => [l.TenantId, l.OrderId, l.ProductId, l.Quantity, l.UnitPrice, l.DiscountPct], cancellationToken);

    /// <summary>Sets the queue priority of each of a tenant's orders in <paramref name="orderIds"/> to the matching <paramref name="priorities"/>.</summary>
    public static async Task<int> SetQueuePrioritiesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid[] orderIds,
        int[] priorities, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            update public.order_processing_queue q set priority = x.priority
            from unnest($2::uuid[], $3::int[]) x(order_id, priority)
            where q.tenant_id = $1 and q.order_id = x.order_id
            """, tenantId, orderIds, priorities);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Inserts a tenant's orders as drafts (not queued yet), each asked to ship 14 days after it was placed (the date in
    /// the session's time zone); <see cref="PlaceOrdersAsync"/> places them once their lines are in.
    /// </summary>
    public static async Task InsertDraftOrdersAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid[] ids,
        Guid[] accountIds, Guid?[] contactIds, string?[] poNumbers, string?[] shipTos, DateTimeOffset[] placedAt, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            insert into public.orders (id, tenant_id, account_id, contact_id, status, po_number, ship_to, requested_ship_date, currency, placed_at)
            select o.id, $1, o.account_id, o.contact_id, 'draft', o.po, o.ship_to::jsonb, (o.placed_at + interval '14 days')::date, 'USD', o.placed_at
            from unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::timestamptz[]) o(id, account_id, contact_id, po, ship_to, placed_at)
            """, tenantId, ids, accountIds, contactIds, poNumbers, shipTos, placedAt);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Inserts a tenant's order lines, without discount.</summary>
    public static async Task InsertOrderLinesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid[] orderIds,
        Guid[] productIds, decimal[] quantities, decimal[] prices, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            insert into public.order_lines (tenant_id, order_id, product_id, quantity, unit_price, discount_pct)
            select $1, l.order_id, l.product_id, l.quantity, l.price, 0
            from unnest($2::uuid[], $3::uuid[], $4::numeric[], $5::numeric[]) l(order_id, product_id, quantity, price)
            """, tenantId, orderIds, productIds, quantities, prices);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Places a tenant's draft orders with their subtotals and totals (the schema's trigger queues them).</summary>
    public static async Task PlaceOrdersAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid[] ids, decimal[] subtotals,
        decimal[] totals, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            update public.orders o set status = 'placed', subtotal = x.subtotal, total = x.total
            from unnest($2::uuid[], $3::numeric[], $4::numeric[]) x(id, subtotal, total)
            where o.tenant_id = $1 and o.id = x.id
            """, tenantId, ids, subtotals, totals);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>A tenant's products, orders and pending queue entries: how many of each.</summary>
    public static async Task<(long Products, long Orders, long Pending)> CatalogCountsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction,
        Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            select (select count(*) from public.products where tenant_id = $1),
                   (select count(*) from public.orders where tenant_id = $1),
                   (select count(*) from public.order_processing_queue where tenant_id = $1 and status = 'pending')
            """, tenantId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }

    /// <summary>What became of every queued order: its status, whether it has an exception, and how many fixes were applied to it.</summary>
    public static Task<IReadOnlyList<(Guid OrderId, string Status, bool HasException, long Fixes)>> QueueOutcomesAsync(NpgsqlDataSource dataSource,
        CancellationToken cancellationToken) =>
        StoreReads.ListAsync(dataSource.CreateCommand("""
            select q.order_id, q.status,
                   exists (select 1 from public.order_processing_exceptions e where e.tenant_id = q.tenant_id and e.order_id = q.order_id),
                   (select count(*) from public.order_processing_fixes f where f.tenant_id = q.tenant_id and f.order_id = q.order_id)
            from public.order_processing_queue q
            """), r => (r.GetGuid(0), r.GetString(1), r.GetBoolean(2), r.GetInt64(3)), cancellationToken);

    /// <summary>How many price rules the database holds (every tenant's).</summary>
    public static async Task<long> PriceRuleCountAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, null, "select count(*) from public.price_rules", cancellationToken);

    /// <summary>Orders and lines on record (every tenant's), and orders per account: the mean and the most.</summary>
    public static async Task<(long Orders, long Lines, decimal MeanPerAccount, long MostPerAccount)> OrderHistorySizeAsync(NpgsqlConnection connection,
        CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, null, """
            select (select count(*) from public.orders), (select count(*) from public.order_lines), avg(c), max(c)
            from (select count(*) as c from public.orders group by tenant_id, account_id) x
            """);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetDecimal(2), reader.GetInt64(3));
    }

    // The benchmarks' synthetic rows, made in the database (generate_series), one statement each.

    /// <summary>Makes <paramref name="perTenant"/> products <c>SKU-n</c> (list 10 x n, cost 6 x n) in each tenant.</summary>
    public static Task<int> GenerateProductsAsync(NpgsqlConnection connection, Guid[] tenants, int perTenant, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.products (tenant_id, sku, name, list_price, unit_cost)
            select t.id, pg_catalog.format('SKU-%s', p), pg_catalog.format('Product %s', p), 10 * p, 6 * p
            from unnest($1::uuid[]) as t (id) cross join generate_series(1, $2) as p
            """, cancellationToken, tenants, perTenant);

    /// <summary>Places one order (300.00, PO from the account's name) for every account of the tenants, half an hour ago.</summary>
    public static Task<int> GenerateAccountOrdersAsync(NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.orders (tenant_id, account_id, status, po_number, placed_at, subtotal, total)
            select a.tenant_id, a.id, 'placed', 'PO-' || a.name, now() - interval '30 minutes', 300, 300
            from public.accounts a where a.tenant_id = any ($1)
            """, cancellationToken, tenants);

    /// <summary>Gives every order of the tenants lines 1 … <paramref name="lines"/>: line k is k of product <c>SKU-k</c> at its list price.</summary>
    public static Task<int> GenerateOrderLinesAsync(NpgsqlConnection connection, Guid[] tenants, int lines, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.order_lines (tenant_id, order_id, product_id, quantity, unit_price)
            select o.tenant_id, o.id, p.id, k, p.list_price
            from public.orders o cross join generate_series(1, $2) as k
            join public.products p on p.tenant_id = o.tenant_id and p.sku = 'SKU-' || k
            where o.tenant_id = any ($1)
            """, cancellationToken, tenants, lines);

    /// <summary>Queues every order of the tenants not queued yet, at priority 0.</summary>
    public static Task<int> QueueAllOrdersAsync(NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.order_processing_queue (tenant_id, order_id, priority)
            select o.tenant_id, o.id, 0 from public.orders o where o.tenant_id = any ($1)
            on conflict (tenant_id, order_id) do nothing
            """, cancellationToken, tenants);

    // The benchmarks' runs of orders: placed as a host would, checked, retired. Orders are named by (tenant, order) pairs.

    /// <summary>One order's outcome: its queue entry (status, unclaimed, processed), its own status, its fixes and exceptions, and its outcome events.</summary>
    internal sealed record OrderOutcome(Guid OrderId, string? QueueStatus, bool Unclaimed, bool Processed, string? OrderStatus, long Fixes, string? FixTypes,
        string? ExceptionTypes, long OutcomeEvents, long FixEvents);

    /// <summary>Places the draft orders as a host would: one update to placed (now), whose per-row trigger queues each; returns how many.</summary>
    public static Task<int> PlaceDraftsAsync(NpgsqlConnection connection, Guid[] tenantIds, Guid[] orderIds, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            update public.orders o set status = 'placed', placed_at = pg_catalog.now(), updated_at = pg_catalog.now()
            from unnest($1::uuid[], $2::uuid[]) p (tenant_id, order_id) where o.tenant_id = p.tenant_id and o.id = p.order_id
            """, cancellationToken, tenantIds, orderIds);

    /// <summary>How many of the orders have a queue entry in <paramref name="status"/>.</summary>
    public static async Task<long> QueuedInStatusCountAsync(NpgsqlConnection connection, Guid[] tenantIds, Guid[] orderIds, string status,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, null, """
            select count(*) from unnest($1::uuid[], $2::uuid[]) p (tenant_id, order_id)
            join public.order_processing_queue q on q.tenant_id = p.tenant_id and q.order_id = p.order_id
            where q.status = $3
            """, cancellationToken, tenantIds, orderIds, status);

    /// <summary>How many queue entries wait (pending or processing), every tenant's.</summary>
    public static async Task<long> WaitingCountAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, null,
            "select count(*) from public.order_processing_queue where status in ('pending', 'processing')", cancellationToken);

    /// <summary>Marks the orders fulfilled (shipped), in the caller's transaction.</summary>
    public static Task<int> FulfilAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid[] tenantIds, Guid[] orderIds,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            update public.orders o set status = 'fulfilled'
            from unnest($1::uuid[], $2::uuid[]) p (tenant_id, order_id) where o.tenant_id = p.tenant_id and o.id = p.order_id
            """, cancellationToken, tenantIds, orderIds);

    /// <summary>Dismisses the orders' open and in-review exceptions (now, by <paramref name="by"/>, with <paramref name="notes"/>), in the caller's transaction.</summary>
    public static Task<int> DismissOpenExceptionsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid[] tenantIds, Guid[] orderIds,
        string by, string notes, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            update public.order_processing_exceptions e
            set resolution_status = 'dismissed', resolved_by = $3, resolved_at = pg_catalog.now(), resolution_notes = $4
            from unnest($1::uuid[], $2::uuid[]) p (tenant_id, order_id)
            where e.tenant_id = p.tenant_id and e.order_id = p.order_id and e.resolution_status in ('open', 'in_review')
            """, cancellationToken, tenantIds, orderIds, by, notes);

    /// <summary>
    /// Each order's outcome: its queue entry, its status, its fixes (how many; their types by attempt, comma-separated), its
    /// exceptions' types, and its outcome events in <c>warehouse_events</c> (validated, needs approval, or an exception with
    /// pricing) and fix events.
    /// </summary>
    public static Task<IReadOnlyList<OrderOutcome>> OutcomesAsync(NpgsqlConnection connection, Guid[] tenantIds, Guid[] orderIds,
        CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.Command(connection, null, """
            select p.order_id, q.status, q.claimed_by is null, q.processed_at is not null, o.status, f.n, f.types, x.types, e.outcomes, e.fixed
            from unnest($1::uuid[], $2::uuid[]) p (tenant_id, order_id)
            left join public.order_processing_queue q on q.tenant_id = p.tenant_id and q.order_id = p.order_id
            left join public.orders o on o.tenant_id = p.tenant_id and o.id = p.order_id
            cross join lateral (select count(*) as n, pg_catalog.string_agg(z.fix_type, ',' order by z.attempt, z.fix_type) as types
                                from public.order_processing_fixes z where z.tenant_id = p.tenant_id and z.order_id = p.order_id) f
            cross join lateral (select pg_catalog.string_agg(z.exception_type, ',' order by z.exception_type) as types
                                from public.order_processing_exceptions z where z.tenant_id = p.tenant_id and z.order_id = p.order_id) x
            cross join lateral (select count(*) filter (where z.event_type in ('order_validated', 'order_needs_approval')
                                                          or (z.event_type = 'order_exception' and z.payload ? 'pricing')) as outcomes,
                                       count(*) filter (where z.event_type = 'order_fixed') as fixed
                                from public.warehouse_events z
                                where z.tenant_id = p.tenant_id and z.entity_type = 'order' and z.entity_id = p.order_id) e
            """, tenantIds, orderIds),
            r => new OrderOutcome(r.GetGuid(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) || r.GetBoolean(2), !r.IsDBNull(3) && r.GetBoolean(3),
                r.IsDBNull(4) ? null : r.GetString(4), r.GetInt64(5), r.IsDBNull(6) ? null : r.GetString(6), r.IsDBNull(7) ? null : r.GetString(7),
                r.GetInt64(8), r.GetInt64(9)), cancellationToken);

    // Order processor and CLI (statements moved from OrderWriter and OrderCommands).

    /// <summary>
    /// Per paused tenant (or the one given) with pending or processing entries: its name, when, by whom and why it was
    /// paused, and how many of its orders wait (paused tenants' orders are not claimed). By tenant name.
    /// </summary>
    public static async Task<IReadOnlyList<HeldOrdersRow>> HeldByPauseAsync(NpgsqlDataSource dataSource, Guid? tenantId, CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand("""
            select t.id, t.name, s.paused_at, s.paused_by, s.paused_reason, count(*)
            from public.order_processing_queue q
            join public.agent_tenant_schedules s on s.tenant_id = q.tenant_id and s.paused
            join public.tenants t on t.id = q.tenant_id
            where ($1::uuid is null or q.tenant_id = $1) and q.status in ('pending', 'processing')
            group by t.id, t.name, s.paused_at, s.paused_by, s.paused_reason
            order by t.name, t.id
            """);
        command.Parameters.Add(new() { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        return await StoreReads.ListAsync(command, r => new HeldOrdersRow(r.GetGuid(0), r.GetString(1),
            r.IsDBNull(2) ? null : r.GetFieldValue<DateTimeOffset>(2), r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4),
            r.GetInt64(5)), cancellationToken);
    }

    // The CLI's calls as the person it acts for (ActingPerson appends who, as the last parameter).

    /// <summary><c>review_order_exception</c> of exception $1 by the person $2 names.</summary>
    internal const string ReviewExceptionAsSql = "select public.review_order_exception($1, $2)";

    /// <summary><c>resolve_order_exception</c> of exception $1 ($2 resolved or dismissed, $3 notes) by the person $4 names.</summary>
    internal const string ResolveExceptionAsSql = "select public.resolve_order_exception($1, $2, $3, $4)";

    /// <summary><c>override_order_credit</c> of order $1 ($2 reason) by the person $3 names.</summary>
    internal const string OverrideCreditAsSql = "select public.override_order_credit($1, $2, $3)";

    // The order processor's batch write (OrderWriter: the guard, then this, in one round trip; the processor prepares and
    // runs it itself, so it is kept here as text). Writes the queue, orders, lines, fixes and exceptions, and with them
    // the review and approval cards, the policy violations and the warehouse events of the entries it kept.
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
    internal const string WriteSql = """
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
}
