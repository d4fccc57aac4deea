using System.Diagnostics;
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
        await Bench.ExecuteAsync(connection, """
            with t as (
              insert into public.tenants (name, timezone, settings)
              select pg_catalog.format('bench-orders-%s', t), (array['UTC', 'America/New_York', 'Europe/Berlin', 'Asia/Tokyo', 'America/Los_Angeles'])[1 + t % 5],
                     '{"currency": "USD", "lead_time_days": 2, "credit_limits_by_tier": {"standard": 500000}}'::jsonb
              from generate_series(0, $1 - 1) t
              returning id, name
            )
            insert into bench.tenants select pg_catalog.split_part(t.name, '-', 3)::integer, t.id from t
            """, cancellationToken, Tenants);

        // 10% strategic, 30% growth, 60% standard; 30% require a PO; 90% have a complete default ship-to.
        await Bench.ExecuteAsync(connection, """
            with a as (
              insert into public.accounts (tenant_id, name, tier, credit_limit, requires_po, default_ship_to, open_balance)
              select t.id, pg_catalog.format('Account %s', pg_catalog.lpad(j::text, 3, '0')),
                     case when j % 10 = 0 then 'strategic' when j % 10 in (1, 2, 3) then 'growth' else 'standard' end,
                     case when j % 10 = 0 then 2000000 when j % 10 in (1, 2, 3) then 1000000 end,
                     j % 10 in (0, 3, 6),
                     case when j % 10 <> 9 then pg_catalog.jsonb_build_object('line1', pg_catalog.format('%s Industrial Way', j + 1), 'city', 'Springfield',
                                                                             'postal_code', pg_catalog.lpad((10000 + j)::text, 5, '0'), 'country', 'US') end,
                     (j * 137) % 50000
              from bench.tenants t cross join generate_series(0, $1 - 1) j
              order by j, t.t
              returning tenant_id, id, name, tier
            )
            insert into bench.accounts select a.tenant_id, pg_catalog.substr(a.name, 9)::integer, a.id, a.tier from a
            """, cancellationToken, AccountsPerTenant);

        // List prices 5.00-299.99, cost 45-70% of list.
        await Bench.ExecuteAsync(connection, """
            with p as (
              insert into public.products (tenant_id, sku, name, list_price, unit_cost)
              select t.id, pg_catalog.format('SKU-%s', pg_catalog.lpad(j::text, 4, '0')), pg_catalog.format('Product %s', j), l.price,
                     pg_catalog.round(l.price * (0.45 + (j % 26) / 100.0), 2)
              from bench.tenants t cross join generate_series(0, $1 - 1) j
              cross join lateral (select pg_catalog.round(5 + ((j * 7919) % 29500) / 100.0, 2) as price) l
              order by j, t.t
              returning tenant_id, id, sku, list_price
            )
            insert into bench.products select p.tenant_id, pg_catalog.substr(p.sku, 5)::integer, p.id, p.list_price from p
            """, cancellationToken, ProductsPerTenant);

        // Per tenant: 2 tier discounts, 150 quantity breaks, 200 account prices (one per account, on the account's
        // contract product), 46 promotions of which a third expired, a third not yet valid, a third current.
        await Bench.ExecuteAsync(connection, """
            insert into public.price_rules (tenant_id, name, product_id, account_id, tier, min_quantity, unit_price, discount_pct, valid_from, valid_to, priority)
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

        foreach (var table in new[] { "public.tenants", "public.accounts", "public.products", "public.price_rules", "bench.tenants", "bench.accounts", "bench.products" })
        {
            await Bench.ExecuteAsync(connection, $"vacuum analyze {table}", cancellationToken);
        }

        var ids = new List<Guid>();
        await using var command = new NpgsqlCommand("select id from bench.tenants order by t", connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            ids.Add(reader.GetGuid(0));
        }

        return ids.ToArray();
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
            from unnest($1::integer[], $2::integer[]) r (run, orders)
            cross join lateral generate_series(1, r.orders) g
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
        // reached; a discount rule is sent half the time as list price + discount). The defective line is line 1.
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
              select r.unit_price, r.discount_pct from public.price_rules r
              where r.tenant_id = o.tenant_id and r.active and r.currency = 'USD'
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
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            await Bench.ExecuteAsync(connection, "set local session_replication_role = replica", cancellationToken);
            await Bench.ExecuteAsync(connection, """
                insert into public.orders (id, tenant_id, account_id, status, po_number, ship_to, requested_ship_date, currency,
                                           shipping_amount, tax_amount, subtotal, total, created_at, updated_at)
                select o.order_id, o.tenant_id, o.account_id, 'draft',
                       case when o.kind = 4 then null else pg_catalog.format('PO-%s-%s', o.run, o.n) end,
                       case when o.kind <> 3 then pg_catalog.jsonb_build_object('line1', pg_catalog.format('%s Commerce St', o.n), 'city', 'Springfield',
                                                                                 'postal_code', '62701', 'country', 'US')
                            when o.n % 2 = 0 then null
                            else pg_catalog.jsonb_build_object('line1', pg_catalog.format('%s Commerce St', o.n), 'postal_code', '62701', 'country', 'US') end,
                       case when o.kind = 7 then current_date - 1 when o.n % 5 = 0 then null else current_date + 5 + o.n % 25 end,
                       'USD', f.shipping, f.tax, s.subtotal, s.subtotal + f.shipping + f.tax + case when o.kind = 1 then 10 else 0 end,
                       pg_catalog.now(), pg_catalog.now()
                from bench.order_plan o
                join (select lp.order_id, sum(pg_catalog.round(lp.quantity * lp.unit_price * (1 - lp.discount_pct / 100), 2)) as subtotal
                      from bench.line_plan lp group by lp.order_id) s on s.order_id = o.order_id
                cross join lateral (select case when o.n % 3 = 0 then 0 else 15 end as shipping, pg_catalog.round(s.subtotal * 0.08, 2) as tax) f
                where o.run = any ($1)
                order by o.run, o.n
                """, cancellationToken, runIds);
            await Bench.ExecuteAsync(connection, """
                insert into public.order_lines (tenant_id, order_id, product_id, quantity, unit_price, discount_pct, created_at)
                select lp.tenant_id, lp.order_id, lp.product_id, lp.quantity, lp.unit_price, lp.discount_pct, pg_catalog.now() + lp.line * interval '1 millisecond'
                from bench.line_plan lp join bench.order_plan o on o.order_id = lp.order_id
                where o.run = any ($1)
                order by o.run, o.n, lp.line
                """, cancellationToken, runIds);
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
        var watch = Stopwatch.StartNew();
        await using (var command = new NpgsqlCommand("""
            update public.orders o set status = 'placed', placed_at = pg_catalog.now(), updated_at = pg_catalog.now()
            from bench.order_plan p where p.run = $1 and o.tenant_id = p.tenant_id and o.id = p.order_id
            """, connection))
        {
            command.Parameters.Add(new() { Value = run });
            var placed = await command.ExecuteNonQueryAsync(cancellationToken);
            if (placed != orders)
            {
                throw new HourglassException($"orders: placing run {run} changed {placed:#,0} orders, expected {orders:#,0}.");
            }
        }

        var seconds = watch.Elapsed.TotalSeconds;
        var pending = await Bench.ScalarAsync<long>(connection, """
            select count(*) from bench.order_plan p
            join public.order_processing_queue q on q.tenant_id = p.tenant_id and q.order_id = p.order_id
            where p.run = $1 and q.status = 'pending'
            """, cancellationToken, run);
        var waiting = await Bench.ScalarAsync<long>(connection,
            "select count(*) from public.order_processing_queue where status in ('pending', 'processing')", cancellationToken);
        if (pending != orders || waiting != orders)
        {
            throw new HourglassException($"orders: after placing run {run}, {pending:#,0} of its orders are queued and {waiting:#,0} entries wait in all; expected {orders:#,0}.");
        }

        return seconds;
    }

    /// <summary>The ids of a run's orders.</summary>
    public static async Task<Guid[]> RunOrderIdsAsync(NpgsqlConnection connection, int run, CancellationToken cancellationToken)
    {
        var ids = new List<Guid>();
        await using var command = new NpgsqlCommand("select order_id from bench.order_plan where run = $1", connection);
        command.Parameters.Add(new() { Value = run });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            ids.Add(reader.GetGuid(0));
        }

        return [.. ids];
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
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await Bench.ExecuteAsync(connection, "set local session_replication_role = replica", cancellationToken);
        await Bench.ExecuteAsync(connection, """
            update public.orders o set status = 'fulfilled'
            from bench.order_plan p where p.run = $1 and o.tenant_id = p.tenant_id and o.id = p.order_id
            """, cancellationToken, run);
        await Bench.ExecuteAsync(connection, """
            update public.order_processing_exceptions e
            set resolution_status = 'dismissed', resolved_by = 'bench', resolved_at = pg_catalog.now(), resolution_notes = 'bench: run retired'
            from bench.order_plan p
            where p.run = $1 and e.tenant_id = p.tenant_id and e.order_id = p.order_id and e.resolution_status in ('open', 'in_review')
            """, cancellationToken, run);
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
        await using var command = new NpgsqlCommand("""
            select count(*),
                   count(*) filter (where q.status is distinct from p.expected_status),
                   count(*) filter (where q.status in ('pending', 'processing') or q.status is null),
                   count(*) filter (where o.status is distinct from case p.expected_status when 'validated' then 'validated' else 'on_hold' end),
                   count(*) filter (where f.n <> p.fixes or f.types is distinct from p.fix_types),
                   count(*) filter (where x.types is distinct from p.exception_type),
                   count(*) filter (where e.outcomes <> 1 or e.fixed <> p.fixes),
                   count(*) filter (where q.status = 'validated'),
                   count(*) filter (where q.status = 'exception'),
                   coalesce(sum(f.n), 0)::bigint,
                   count(*) filter (where q.status = 'needs_approval')
            from bench.order_plan p
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
            where p.run = $1
            """, connection);
        command.Parameters.Add(new() { Value = run });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var total = reader.GetInt64(0);
        long[] wrong = [reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6)];
        if (total != orders || wrong.Any(w => w > 0))
        {
            throw new HourglassException(
                $"orders: {label} (run {run}) left {total:#,0} of {orders:#,0} orders planned; differing from the plan: queue status {wrong[0]}, " +
                $"not finished {wrong[1]}, order status {wrong[2]}, fixes {wrong[3]}, exceptions {wrong[4]}, outcome or fix events {wrong[5]}; the numbers are not valid.");
        }

        return (reader.GetInt64(7), reader.GetInt64(8), reader.GetInt64(9));
    }

    /// <summary>Checks a run the trivial loop drained: every entry validated by it, none left waiting.</summary>
    public static async Task CheckTrivialAsync(NpgsqlConnection connection, int run, int orders, string label, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            select count(*), count(*) filter (where q.status = 'validated' and q.claimed_by is null and q.processed_at is not null),
                   (select count(*) from public.order_processing_queue where status in ('pending', 'processing'))
            from bench.order_plan p
            join public.order_processing_queue q on q.tenant_id = p.tenant_id and q.order_id = p.order_id
            where p.run = $1
            """, connection);
        command.Parameters.Add(new() { Value = run });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        if (reader.GetInt64(0) != orders || reader.GetInt64(1) != orders || reader.GetInt64(2) != 0)
        {
            throw new HourglassException(
                $"orders: {label} (run {run}): {reader.GetInt64(1):#,0} of {reader.GetInt64(0):#,0} entries validated, {reader.GetInt64(2):#,0} still waiting; expected {orders:#,0} and 0.");
        }
    }
}
