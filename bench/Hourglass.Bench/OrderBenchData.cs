using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Orders;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// The order benchmark's data: tenants with accounts, products and price rules, and sets of orders ("runs"), each
/// with a known mix of defects, loaded as drafts ahead of time and placed one run at a time. What every order
/// should come to (its status, its fixes, its exception) is planned with it in <c>bench.order_plan</c>, so a run
/// can be checked order by order. All of it lives in the benchmark's own scratch database.
/// </summary>
internal static class OrderBenchData
{
    public const int Tenants = 10;
    public const int AccountsPerTenant = 200;
    public const int ProductsPerTenant = 500;

    /// <summary>The defect mix, out of every 100 consecutive orders of a run (order n has kind by (n x 37) mod 100).</summary>
    public static readonly (string Kind, int Share, string Expected, int Fixes, string? FixTypes, string? ExceptionType)[] Kinds =
    [
        ("clean", 70, "validated", 0, null, null),
        ("wrong totals", 5, "validated", 1, "recompute_totals", null),
        ("price within 10% of the rule's", 5, "validated", 2, "apply_rule_price,recompute_totals", null),
        ("missing ship-to, account has a default", 5, "validated", 1, "fill_ship_to", null),
        ("missing PO number", 4, "exception", 0, null, "missing_po"),
        ("zero quantity", 4, "exception", 0, null, "non_positive_quantity"),
        ("price 30% under the rule's", 4, "exception", 0, null, "price_mismatch"),
        ("ship date inside the lead time", 3, "exception", 0, null, "lead_time"),
    ];

    private static string KindCase()
    {
        var parts = new List<string>();
        var upTo = 0;
        for (var i = 0; i < Kinds.Length; i++)
        {
            upTo += Kinds[i].Share;
            parts.Add($"when x.c < {upTo} then {i}");
        }

        return $"case {string.Join(' ', parts)} end";
    }

    private static string Expected(Func<(string Kind, int Share, string Expected, int Fixes, string? FixTypes, string? ExceptionType), string?> field) =>
        $"(array[{string.Join(", ", Kinds.Select(k => field(k) is { } value ? $"'{value}'" : "null"))}]::text[])[k.kind + 1]";

    /// <summary>Creates the bench schema and loads tenants, accounts, products and price rules. Returns the tenants' ids.</summary>
    public static async Task<Guid[]> LoadCatalogAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        foreach (var sql in new[]
        {
            "create schema bench",
            "create table bench.tenants (t integer primary key, id uuid not null)",
            "create table bench.accounts (tenant_id uuid not null, j integer not null, id uuid not null, tier text, primary key (tenant_id, j))",
            "create table bench.products (tenant_id uuid not null, j integer not null, id uuid not null, list_price numeric not null, primary key (tenant_id, j))",
            """
            create table bench.order_plan (order_id uuid primary key, run integer not null, n integer not null, tenant_id uuid not null,
              account_id uuid not null, account_j integer not null, kind integer not null, lines integer not null, expected_status text not null,
              fixes integer not null, fix_types text, exception_type text)
            """,
            "create index on bench.order_plan (run)",
            """
            create table bench.rule_plan (n integer generated always as identity primary key, tenant_id uuid not null, name text not null, product_id uuid,
              account_id uuid, tier text, min_quantity numeric not null, unit_price numeric, discount_pct numeric, valid_from date, valid_to date,
              priority integer not null)
            """,
            // As public.price_rules is indexed (idx_price_rules_tenant_product, idx_price_rules_tenant_account): the line plan looks rules up here.
            "create index on bench.rule_plan (tenant_id, product_id)",
            "create index on bench.rule_plan (tenant_id, account_id)",
            """
            create unlogged table bench.line_plan (order_id uuid not null, line integer not null, tenant_id uuid not null, product_id uuid not null,
              quantity numeric not null, unit_price numeric not null, discount_pct numeric not null, expected_price numeric not null,
              primary key (order_id, line))
            """,
            // A stable pseudo-random number per (run, order, salt): the data is the same in every run of the benchmark.
            """
            create function bench.h(p_run integer, p_n integer, p_salt integer) returns bigint language sql immutable
            as $$ select pg_catalog.hashtextextended(p_run::text || ':' || p_n::text, p_salt) & 2147483647 $$
            """,
        })
        {
            await Bench.ExecuteAsync(connection, sql, cancellationToken);
        }

        // Lead time 2 days (the default, stated); credit limits by tier, standard accounts from the tenant's tier map.
        string[] zones = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles"];
        var tenants = Enumerable.Range(0, Tenants).Select(t => new TenancyStore.TenantLoad(Guid.NewGuid(), $"bench-orders-{t}", zones[t % zones.Length],
            """{"currency": "USD", "lead_time_days": 2, "credit_limits_by_tier": {"standard": 500000}}""")).ToArray();
        await TenancyStore.LoadTenantsAsync(connection, tenants, cancellationToken);
        await Bench.ExecuteAsync(connection, "insert into bench.tenants select x.t, x.id from unnest($1::integer[], $2::uuid[]) x (t, id)", cancellationToken,
            Enumerable.Range(0, Tenants).ToArray(), tenants.Select(t => t.Id).ToArray());

        // 10% strategic, 30% growth, 60% standard; 30% require a PO; 90% have a complete default ship-to.
        var accounts = new List<TenancyStore.AccountLoad>();
        for (var j = 0; j < AccountsPerTenant; j++)
        {
            var tier = j % 10 == 0 ? "strategic" : j % 10 is 1 or 2 or 3 ? "growth" : "standard";
            foreach (var tenant in tenants)
            {
                accounts.Add(new(Guid.NewGuid(), tenant.Id, $"Account {j:D3}", tier, CreditLimit: tier switch { "strategic" => 2000000m, "growth" => 1000000m, _ => null },
                    RequiresPo: j % 10 is 0 or 3 or 6,
                    DefaultShipTo: j % 10 == 9 ? null : new JsonObject
                    {
                        ["line1"] = $"{j + 1} Industrial Way", ["city"] = "Springfield",
                        ["postal_code"] = (10000 + j).ToString("D5", CultureInfo.InvariantCulture), ["country"] = "US",
                    }.ToJsonString(),
                    OpenBalance: j * 137 % 50000));
            }
        }

        await TenancyStore.LoadAccountsAsync(connection, accounts, cancellationToken);
        await Bench.ExecuteAsync(connection, "insert into bench.accounts select * from unnest($1::uuid[], $2::integer[], $3::uuid[], $4::text[])", cancellationToken,
            accounts.Select(a => a.TenantId).ToArray(), accounts.Select(a => int.Parse(a.Name[8..], CultureInfo.InvariantCulture)).ToArray(),
            accounts.Select(a => a.Id).ToArray(), accounts.Select(a => a.Tier!).ToArray());

        // List prices 5.00-299.99, cost 45-70% of list (numeric's round(…, 2): two decimals, half away from zero).
        var products = new List<(OrderStore.ProductLoad Product, int J)>();
        for (var j = 0; j < ProductsPerTenant; j++)
        {
            var price = Math.Round(5m + j * 7919 % 29500 / 100m, 2, MidpointRounding.AwayFromZero) + 0.00m;
            var cost = Math.Round(price * (0.45m + j % 26 / 100m), 2, MidpointRounding.AwayFromZero) + 0.00m;
            products.AddRange(tenants.Select(t => (new OrderStore.ProductLoad(Guid.NewGuid(), t.Id, $"SKU-{j:D4}", $"Product {j}", price, cost), j)));
        }

        await OrderStore.LoadProductsAsync(connection, products.Select(p => p.Product), cancellationToken);
        await Bench.ExecuteAsync(connection, "insert into bench.products select * from unnest($1::uuid[], $2::integer[], $3::uuid[], $4::numeric[])", cancellationToken,
            products.Select(p => p.Product.TenantId).ToArray(), products.Select(p => p.J).ToArray(), products.Select(p => p.Product.Id).ToArray(),
            products.Select(p => p.Product.ListPrice).ToArray());

        // Per tenant: 2 tier discounts, 150 quantity breaks, 200 account prices (one per account, on the account's
        // contract product), 46 promotions of which a third expired, a third not yet valid, a third current.
        await Bench.ExecuteAsync(connection, """
            insert into bench.rule_plan (tenant_id, name, product_id, account_id, tier, min_quantity, unit_price, discount_pct, valid_from, valid_to, priority)
            select t.id, 'strategic tier', null::uuid, null::uuid, 'strategic', 0, null::numeric, 12, null::date, null::date, 0 from bench.tenants t
            union all
            select t.id, 'growth tier', null, null, 'growth', 0, null, 5, null, null, 0 from bench.tenants t
            union all
            select p.tenant_id, pg_catalog.format('10+ of %s', p.j), p.id, null, null, 10, null, 8, null, null, 0 from bench.products p where p.j % 5 = 0
            union all
            select p.tenant_id, pg_catalog.format('20+ of %s', p.j), p.id, null, null, 20, null, 10, null, null, 0 from bench.products p where p.j % 10 = 0
            union all
            select a.tenant_id, pg_catalog.format('contract %s', a.j), p.id, a.id, null, 0, pg_catalog.round(p.list_price * 0.9, 2), null, null, null, 10
            from bench.accounts a join bench.products p on p.tenant_id = a.tenant_id and p.j = (a.j * 7) % 500
            union all
            select p.tenant_id, pg_catalog.format('promotion %s', p.j), p.id, null, null, 0, null, case when p.j % 3 = 2 then 15 else 30 end,
                   current_date + case p.j % 3 when 0 then -90 when 1 then 30 else -10 end,
                   current_date + case p.j % 3 when 0 then -30 when 1 then 90 else 60 end,
                   case when p.j % 3 = 2 then 5 else 20 end
            from bench.products p where p.j % 11 = 1
            """, cancellationToken);
        var rules = new List<OrderStore.PriceRuleLoad>();
        await using (var command = new NpgsqlCommand("""
            select tenant_id, name, product_id, account_id, tier, min_quantity, unit_price, discount_pct, valid_from, valid_to, priority
            from bench.rule_plan order by n
            """, connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                rules.Add(new(reader.GetGuid(0), reader.GetString(1), NullableGuid(reader, 2), NullableGuid(reader, 3), reader.IsDBNull(4) ? null : reader.GetString(4),
                    reader.GetDecimal(5), NullableDecimal(reader, 6), NullableDecimal(reader, 7), NullableDate(reader, 8), NullableDate(reader, 9),
                    reader.GetInt32(10)));
            }
        }

        await OrderStore.LoadPriceRulesAsync(connection, rules, cancellationToken);

        foreach (var table in new[] { "public.tenants", "public.accounts", "public.products", "public.price_rules", "bench.tenants", "bench.accounts", "bench.products", "bench.rule_plan" })
        {
            await Bench.ExecuteAsync(connection, $"vacuum analyze {table}", cancellationToken);
        }

        return tenants.Select(t => t.Id).ToArray();
    }

    /// <summary>
    /// Plans and loads the orders of the given runs as drafts, set-based. The rows are consistent by construction,
    /// so the per-row triggers are off while they load (for a draft, the enqueue trigger does nothing anyway).
    /// </summary>
    public static async Task LoadOrdersAsync(NpgsqlConnection connection, IReadOnlyList<(int Run, int Orders)> runs, CancellationToken cancellationToken)
    {
        var runIds = runs.Select(r => r.Run).ToArray();
        var counts = runs.Select(r => r.Orders).ToArray();
        // Order n of a run: its kind by (n x 37) mod 100 (every 100 consecutive orders hold the mix exactly), its
        // tenant and account at random; an order missing its PO goes to an account that requires one, and one
        // missing its ship-to to an account with a default address.
        await Bench.ExecuteAsync(connection, $"""
            insert into bench.order_plan (order_id, run, n, tenant_id, account_id, account_j, kind, lines, expected_status, fixes, fix_types, exception_type)
            select gen_random_uuid(), r.run, g, t.id, a.id, a.j, k.kind, 1 + bench.h(r.run, g, 1) % 5,
                   {Expected(k => k.Expected)}, (array[{string.Join(", ", Kinds.Select(k => k.Fixes))}])[k.kind + 1],
                   {Expected(k => k.FixTypes)}, {Expected(k => k.ExceptionType)}
            from unnest($1::integer[], $2::integer[]) r (run, size)
            cross join lateral generate_series(1, r.size) g
            cross join lateral (select (g * 37) % 100 as c) x
            cross join lateral (select {KindCase()} as kind) k
            join bench.tenants t on t.t = bench.h(r.run, g, 0) % {Tenants}
            join bench.accounts a on a.tenant_id = t.id and a.j = case k.kind
                when 4 then 10 * (bench.h(r.run, g, 2) % 20)::integer + (array[0, 3, 6])[1 + (bench.h(r.run, g, 3) % 3)::integer]
                when 3 then 10 * (bench.h(r.run, g, 2) % 20)::integer + (bench.h(r.run, g, 3) % 9)::integer
                else (bench.h(r.run, g, 2) % {AccountsPerTenant})::integer end
            """, cancellationToken, runIds, counts);

        // Lines: product at random (line 1 is the account's contract product one time in four), 1-24 units, priced
        // at what the price rules say (the rule that applies: highest priority, most specific, largest quantity break
        // reached; a discount rule is sent half the time as list price + discount). The defective line is line 1. The rules are
        // the catalogue's as planned (every one active, in USD).
        await Bench.ExecuteAsync(connection, """
            insert into bench.line_plan (order_id, line, tenant_id, product_id, quantity, unit_price, discount_pct, expected_price)
            select o.order_id, l, o.tenant_id, p.id, case when o.kind = 5 and l = 1 then 0 else q.quantity end,
                   case when l = 1 and o.kind = 2 then pg_catalog.round(e.price * (1 + (case when bench.h(o.run, o.n, 30) % 2 = 0 then 1 else -1 end)
                                                                                    * (2 + bench.h(o.run, o.n, 31) % 7) / 100.0), 4)
                        when l = 1 and o.kind = 6 then pg_catalog.round(e.price * 0.7, 4)
                        when as_discount then p.list_price
                        else e.price end,
                   case when as_discount then r.discount_pct else 0 end,
                   e.price
            from bench.order_plan o
            join bench.accounts a on a.tenant_id = o.tenant_id and a.j = o.account_j
            cross join lateral generate_series(1, o.lines) l
            cross join lateral (select case when l = 1 and bench.h(o.run, o.n, 10) % 4 = 0 then (o.account_j * 7) % 500
                                            else (bench.h(o.run, o.n, 10 + l) % 500)::integer end as j,
                                       1 + bench.h(o.run, o.n, 20 + l) % 24 as quantity) q
            join bench.products p on p.tenant_id = o.tenant_id and p.j = q.j
            left join lateral (
              select r.unit_price, r.discount_pct from bench.rule_plan r
              where r.tenant_id = o.tenant_id
                and (r.product_id is null or r.product_id = p.id) and (r.account_id is null or r.account_id = o.account_id)
                and (r.tier is null or r.tier = a.tier) and q.quantity >= r.min_quantity
                and (r.valid_from is null or r.valid_from <= current_date) and (r.valid_to is null or r.valid_to >= current_date)
              order by r.priority desc,
                       (case when r.account_id is not null then 4 when r.tier is not null then 2 else 0 end + case when r.product_id is not null then 1 else 0 end) desc,
                       r.min_quantity desc
              limit 1) r on true
            cross join lateral (select coalesce(r.unit_price, p.list_price * (1 - r.discount_pct / 100), p.list_price) as price) e
            cross join lateral (select r.discount_pct is not null and not (l = 1 and o.kind in (2, 6)) and bench.h(o.run, o.n, 40 + l) % 2 = 0 as as_discount) d
            where o.run = any ($1)
            """, cancellationToken, runIds);

        // Orders as the host sends them: totals from its lines (wrong by 10.00 for the wrong-totals kind), 8% tax,
        // shipping 15.00 on two orders in three; ship dates 5-29 days out (none on every fifth order).
        // Planned here, loaded through the order store's bulk loads.
        var orders = new List<OrderStore.OrderLoad>();
        await using (var command = new NpgsqlCommand("""
            select o.order_id, o.tenant_id, o.account_id,
                   case when o.kind = 4 then null else pg_catalog.format('PO-%s-%s', o.run, o.n) end,
                   (case when o.kind <> 3 then pg_catalog.jsonb_build_object('line1', pg_catalog.format('%s Commerce St', o.n), 'city', 'Springfield',
                                                                              'postal_code', '62701', 'country', 'US')
                         when o.n % 2 = 0 then null
                         else pg_catalog.jsonb_build_object('line1', pg_catalog.format('%s Commerce St', o.n), 'postal_code', '62701', 'country', 'US') end)::text,
                   case when o.kind = 7 then current_date - 1 when o.n % 5 = 0 then null else current_date + 5 + o.n % 25 end,
                   f.shipping::numeric, f.tax, s.subtotal, s.subtotal + f.shipping + f.tax + case when o.kind = 1 then 10 else 0 end
            from bench.order_plan o
            join (select lp.order_id, sum(pg_catalog.round(lp.quantity * lp.unit_price * (1 - lp.discount_pct / 100), 2)) as subtotal
                  from bench.line_plan lp group by lp.order_id) s on s.order_id = o.order_id
            cross join lateral (select case when o.n % 3 = 0 then 0 else 15 end as shipping, pg_catalog.round(s.subtotal * 0.08, 2) as tax) f
            where o.run = any ($1)
            order by o.run, o.n
            """, connection))
        {
            command.Parameters.Add(new() { Value = runIds });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                orders.Add(new(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), null, "draft", reader.IsDBNull(3) ? null : reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetString(4), NullableDate(reader, 5), "USD", null, reader.GetDecimal(8), reader.GetDecimal(9),
                    ShippingAmount: reader.GetDecimal(6), TaxAmount: reader.GetDecimal(7)));
            }
        }

        var lines = new List<(OrderStore.OrderLineLoad Line, int Number)>();
        await using (var command = new NpgsqlCommand("""
            select lp.tenant_id, lp.order_id, lp.product_id, lp.quantity, lp.unit_price, lp.discount_pct, lp.line
            from bench.line_plan lp join bench.order_plan o on o.order_id = lp.order_id
            where o.run = any ($1)
            order by o.run, o.n, lp.line
            """, connection))
        {
            command.Parameters.Add(new() { Value = runIds });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                lines.Add((new(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetDecimal(3), reader.GetDecimal(4), reader.GetDecimal(5)),
                    reader.GetInt32(6)));
            }
        }

        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            await Bench.ExecuteAsync(connection, "set local session_replication_role = replica", cancellationToken);
            var now = new DateTimeOffset(await Bench.ScalarAsync<DateTime>(connection, "select pg_catalog.now()", cancellationToken), TimeSpan.Zero);
            await OrderStore.LoadOrdersAsOfAsync(connection, orders, now, cancellationToken);
            await OrderStore.LoadOrderLinesAsOfAsync(connection, lines.Select(l => (l.Line, now.AddMilliseconds(l.Number))), cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        await Bench.ExecuteAsync(connection, "truncate bench.line_plan", cancellationToken);
        foreach (var table in new[] { "public.orders", "public.order_lines", "bench.order_plan" })
        {
            await Bench.ExecuteAsync(connection, $"vacuum analyze {table}", cancellationToken);
        }
    }

    /// <summary>
    /// Places a run's orders as a host would: one UPDATE from draft to placed, whose per-row trigger queues each
    /// order (<c>hourglass.on_order_change</c> → <c>enqueue_order</c>). Returns the seconds it took.
    /// </summary>
    public static async Task<double> PlaceAsync(NpgsqlConnection connection, int run, int orders, CancellationToken cancellationToken)
    {
        var (tenantIds, orderIds) = await RunOrdersAsync(connection, run, cancellationToken);
        var watch = Stopwatch.StartNew();
        var placed = await OrderStore.PlaceDraftsAsync(connection, tenantIds, orderIds, cancellationToken);
        if (placed != orders)
        {
            throw new HourglassException($"orders: placing run {run} changed {placed:#,0} orders, expected {orders:#,0}.");
        }

        var seconds = watch.Elapsed.TotalSeconds;
        var pending = await OrderStore.QueuedInStatusCountAsync(connection, tenantIds, orderIds, "pending", cancellationToken);
        var waiting = await OrderStore.WaitingCountAsync(connection, cancellationToken);
        if (pending != orders || waiting != orders)
        {
            throw new HourglassException($"orders: after placing run {run}, {pending:#,0} of its orders are queued and {waiting:#,0} entries wait in all; expected {orders:#,0}.");
        }

        return seconds;
    }

    /// <summary>A run's orders, as (tenant, order) pairs in two arrays.</summary>
    public static async Task<(Guid[] TenantIds, Guid[] OrderIds)> RunOrdersAsync(NpgsqlConnection connection, int run, CancellationToken cancellationToken)
    {
        var (tenants, ids) = (new List<Guid>(), new List<Guid>());
        await using var command = new NpgsqlCommand("select tenant_id, order_id from bench.order_plan where run = $1", connection);
        command.Parameters.Add(new() { Value = run });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            tenants.Add(reader.GetGuid(0));
            ids.Add(reader.GetGuid(1));
        }

        return ([.. tenants], [.. ids]);
    }

    /// <summary>A run's plan for the same-work baseline: each order's kind (an index into <see cref="Kinds"/>).</summary>
    public static async Task<Dictionary<Guid, int>> LoadPlanAsync(NpgsqlConnection connection, int run, CancellationToken cancellationToken)
    {
        var plan = new Dictionary<Guid, int>();
        await using var command = new NpgsqlCommand("select order_id, kind from bench.order_plan where run = $1", connection);
        command.Parameters.Add(new() { Value = run });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            plan[reader.GetGuid(0)] = reader.GetInt32(1);
        }

        return plan;
    }

    /// <summary>
    /// After a run: its orders are shipped (status fulfilled, so they no longer count towards their accounts' open
    /// credit exposure) and its open exceptions dismissed (as people work through them, so the number of open
    /// exceptions does not grow from run to run), quietly: triggers off, the change must not queue them again.
    /// </summary>
    public static async Task RetireAsync(NpgsqlConnection connection, int run, CancellationToken cancellationToken)
    {
        var (tenantIds, orderIds) = await RunOrdersAsync(connection, run, cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await Bench.ExecuteAsync(connection, "set local session_replication_role = replica", cancellationToken);
        await OrderStore.FulfilAsync(connection, transaction, tenantIds, orderIds, cancellationToken);
        await OrderStore.DismissOpenExceptionsAsync(connection, transaction, tenantIds, orderIds, "bench", "bench: run retired", cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// Checks a run the order processor drained, order by order, against the plan: the queue entry's status, the
    /// order's host status, its fixes (how many and of what type), its exception, and exactly one outcome event.
    /// Returns the counts by outcome; throws if anything differs.
    /// </summary>
    public static async Task<(long Validated, long Exceptions, long Fixes)> CheckProcessedAsync(NpgsqlConnection connection, int run, int orders, string label,
        CancellationToken cancellationToken)
    {
        var plan = new List<(Guid TenantId, Guid OrderId, string Expected, int Fixes, string? FixTypes, string? ExceptionType)>();
        await using (var command = new NpgsqlCommand(
            "select tenant_id, order_id, expected_status, fixes, fix_types, exception_type from bench.order_plan where run = $1", connection))
        {
            command.Parameters.Add(new() { Value = run });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                plan.Add((reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetInt32(3), reader.IsDBNull(4) ? null : reader.GetString(4),
                    reader.IsDBNull(5) ? null : reader.GetString(5)));
            }
        }

        var outcomes = (await OrderStore.OutcomesAsync(connection, plan.Select(p => p.TenantId).ToArray(), plan.Select(p => p.OrderId).ToArray(), cancellationToken))
            .ToDictionary(o => o.OrderId);
        var pairs = plan.Select(p => (Plan: p, Outcome: outcomes[p.OrderId])).ToList();
        long total = pairs.Count;
        long[] wrong =
        [
            pairs.Count(x => x.Outcome.QueueStatus != x.Plan.Expected),
            pairs.Count(x => x.Outcome.QueueStatus is null or "pending" or "processing"),
            pairs.Count(x => x.Outcome.OrderStatus != (x.Plan.Expected == "validated" ? "validated" : "on_hold")),
            pairs.Count(x => x.Outcome.Fixes != x.Plan.Fixes || x.Outcome.FixTypes != x.Plan.FixTypes),
            pairs.Count(x => x.Outcome.ExceptionTypes != x.Plan.ExceptionType),
            pairs.Count(x => x.Outcome.OutcomeEvents != 1 || x.Outcome.FixEvents != x.Plan.Fixes),
        ];
        if (total != orders || wrong.Any(w => w > 0))
        {
            throw new HourglassException(
                $"orders: {label} (run {run}) left {total:#,0} of {orders:#,0} orders planned; differing from the plan: queue status {wrong[0]}, " +
                $"not finished {wrong[1]}, order status {wrong[2]}, fixes {wrong[3]}, exceptions {wrong[4]}, outcome or fix events {wrong[5]}; the numbers are not valid.");
        }

        return (pairs.LongCount(x => x.Outcome.QueueStatus == "validated"), pairs.LongCount(x => x.Outcome.QueueStatus == "exception"),
            pairs.Sum(x => x.Outcome.Fixes));
    }

    /// <summary>Checks a run the trivial loop drained: every entry validated by it, none left waiting.</summary>
    public static async Task CheckTrivialAsync(NpgsqlConnection connection, int run, int orders, string label, CancellationToken cancellationToken)
    {
        var (tenantIds, orderIds) = await RunOrdersAsync(connection, run, cancellationToken);
        var outcomes = await OrderStore.OutcomesAsync(connection, tenantIds, orderIds, cancellationToken);
        var queued = outcomes.LongCount(o => o.QueueStatus is not null);
        var validated = outcomes.LongCount(o => o.QueueStatus == "validated" && o.Unclaimed && o.Processed);
        var waiting = await OrderStore.WaitingCountAsync(connection, cancellationToken);
        if (queued != orders || validated != orders || waiting != 0)
        {
            throw new HourglassException(
                $"orders: {label} (run {run}): {validated:#,0} of {queued:#,0} entries validated, {waiting:#,0} still waiting; expected {orders:#,0} and 0.");
        }
    }

    private static Guid? NullableGuid(NpgsqlDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetGuid(column);

    private static decimal? NullableDecimal(NpgsqlDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetDecimal(column);

    private static DateOnly? NullableDate(NpgsqlDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetFieldValue<DateOnly>(column);
}
