using Hourglass.Storage;
using Npgsql;

namespace Hourglass.Demo;

/// <summary>What the demo tenant holds after seeding.</summary>
internal sealed record DemoSummary(
    Guid TenantId, string TenantName, bool Created, long Accounts, long Contacts, long Products, long Orders,
    long QueuedOrders, long Clocks, long Compliant, long DueSoon, long Overdue, int ClocksChangedByRefresh);

/// <summary>
/// Seeds one realistic demo tenant: a distributor with accounts across tiers, their contacts, a product
/// catalogue, recent orders (some with the defects the order processor exists to catch) queued for
/// validation, and engagement clocks whose last touches are spread over the past weeks, so some are
/// compliant, some due soon and some overdue. Seeding is deterministic and runs once: a second run finds
/// the tenant and leaves it as it is.
/// </summary>
internal sealed class DemoSeeder
{
    /// <summary>The demo tenant's fixed id.</summary>
    public static readonly Guid TenantId = new("7e5f3a10-0000-4000-8000-00000000d3e0");

    /// <summary>The demo tenant's owner, a member who can sign in to the API and dashboard.</summary>
    public static readonly Guid OwnerUserId = new("7e5f3a10-0000-4000-8000-0000000000a1");

    private const string TenantName = "Northwind Supply (demo)";

    private static readonly string[] s_accountNames =
    [
        "Contoso Foods", "Fabrikam Hardware", "Adventure Works Cycles", "Tailspin Toys", "Wide World Importers",
        "Litware Labs", "Proseware Clinics", "Fourth Coffee", "Alpine Ski House", "Blue Yonder Airlines",
        "Coho Winery", "Margie's Travel",
    ];

    private static readonly string[] s_firstNames = ["Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jun"];

    private static readonly string[] s_lastNames = ["Okafor", "Lindqvist", "Moreau", "Patel", "Rossi", "Tanaka", "Nowak", "Silva"];

    private static readonly (string Sku, string Name, decimal Price, decimal Cost)[] s_products =
    [
        ("NW-1001", "Pallet wrap, 500 m", 24.90m, 14.10m),
        ("NW-1002", "Shipping cartons (50)", 39.00m, 21.50m),
        ("NW-1003", "Label printer ribbon", 12.50m, 5.80m),
        ("NW-2001", "Hand truck, steel", 189.00m, 118.00m),
        ("NW-2002", "Safety gloves (12 pairs)", 28.00m, 13.90m),
        ("NW-2003", "Barcode scanner", 249.00m, 171.00m),
        ("NW-3001", "Stretch film dispenser", 64.00m, 35.00m),
        ("NW-3002", "Packing tape (36 rolls)", 54.00m, 26.00m),
        ("NW-3003", "Void fill paper roll", 47.50m, 22.00m),
        ("NW-4001", "Warehouse shelving bay", 420.00m, 301.00m),
    ];

    private readonly NpgsqlDataSource _dataSource;

    public DemoSeeder(NpgsqlDataSource dataSource) => _dataSource = dataSource;

    /// <summary>Seeds the demo tenant if absent, refreshes its compliance, and returns what it holds.</summary>
    public async Task<DemoSummary> SeedAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        var created = false;
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            await using var exists = new NpgsqlCommand("select 1 from public.tenants where id = $1 for update", connection, transaction)
            {
                Parameters = { new() { Value = TenantId } },
            };
            if (await exists.ExecuteScalarAsync(cancellationToken) is null)
            {
                await SeedTenantAsync(connection, transaction, cancellationToken);
                created = true;
            }

            await transaction.CommitAsync(cancellationToken);
        }

        await using var refresh = new NpgsqlCommand("select public.refresh_engagement_compliance($1)", connection)
        {
            Parameters = { new() { Value = TenantId } },
        };
        var changed = (int)(await refresh.ExecuteScalarAsync(cancellationToken))!;

        await using var summary = new NpgsqlCommand("""
            select
              (select count(*) from public.accounts where tenant_id = $1),
              (select count(*) from public.contacts where tenant_id = $1),
              (select count(*) from public.products where tenant_id = $1),
              (select count(*) from public.orders where tenant_id = $1),
              (select count(*) from public.order_processing_queue where tenant_id = $1 and status = 'pending'),
              (select count(*) from public.engagement_clocks where tenant_id = $1),
              (select count(*) from public.engagement_clocks where tenant_id = $1 and compliance_status = 'compliant'),
              (select count(*) from public.engagement_clocks where tenant_id = $1 and compliance_status = 'due_soon'),
              (select count(*) from public.engagement_clocks where tenant_id = $1 and compliance_status = 'overdue')
            """, connection)
        {
            Parameters = { new() { Value = TenantId } },
        };
        await using var reader = await summary.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new DemoSummary(TenantId, TenantName, created,
            reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4),
            reader.GetInt64(5), reader.GetInt64(6), reader.GetInt64(7), reader.GetInt64(8), changed);
    }

    private static async Task SeedTenantAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        // Deterministic: the same demo on every machine.
        var random = new Random(20251217);

        await ExecuteAsync(connection, transaction,
            "insert into public.tenants (id, name, timezone, settings) values ($1, $2, 'America/Chicago', '{\"touch_frequency_days\": 21, \"due_soon_days\": 3}')",
            cancellationToken, TenantId, TenantName);
        await ExecuteAsync(connection, transaction,
            "insert into public.tenant_members (tenant_id, user_id, role) values ($1, $2, 'owner')",
            cancellationToken, TenantId, OwnerUserId);

        var productIds = new List<(Guid Id, decimal Price)>();
        foreach (var (sku, name, price, cost) in s_products)
        {
            var id = DeterministicGuid(random);
            productIds.Add((id, price));
            await ExecuteAsync(connection, transaction,
                "insert into public.products (id, tenant_id, sku, name, list_price, unit_cost) values ($1, $2, $3, $4, $5, $6)",
                cancellationToken, id, TenantId, sku, name, price, cost);
        }

        var tiers = new[] { "strategic", "growth", "standard" };
        var zones = new[] { "America/Chicago", "America/New_York", "America/Los_Angeles", "Europe/London" };
        for (var a = 0; a < s_accountNames.Length; a++)
        {
            var accountId = DeterministicGuid(random);
            var tier = tiers[a % tiers.Length];
            await ExecuteAsync(connection, transaction, """
                insert into public.accounts (id, tenant_id, name, tier, segment, owner_user_id, credit_limit, payment_terms_days, timezone)
                values ($1, $2, $3, $4, $5, $6, $7, 30, $8)
                """, cancellationToken, accountId, TenantId, s_accountNames[a], tier, a % 2 == 0 ? "manufacturing" : "retail",
                OwnerUserId, tier == "strategic" ? 50000m : tier == "growth" ? 20000m : 5000m, zones[a % zones.Length]);

            var contactIds = new List<Guid>();
            for (var c = 0; c < 3 + (a % 3); c++)
            {
                var contactId = DeterministicGuid(random);
                contactIds.Add(contactId);
                var first = s_firstNames[random.Next(s_firstNames.Length)];
                var last = s_lastNames[random.Next(s_lastNames.Length)];
                await ExecuteAsync(connection, transaction, """
                    insert into public.contacts (id, tenant_id, account_id, name, email, phone, timezone)
                    values ($1, $2, $3, $4, $5, $6, $7)
                    """, cancellationToken, contactId, TenantId, accountId, $"{first} {last}",
                    $"{first.ToLowerInvariant()}.{last.ToLowerInvariant()}@{s_accountNames[a].Split(' ')[0].ToLowerInvariant().Replace("'", "", StringComparison.Ordinal)}.example",
                    $"+1-555-01{a:D2}-{c:D2}", zones[(a + c) % zones.Length]);
            }

            // Touch history: each contact and the account were last touched 0–30 days ago, so with a 21-day
            // cadence about a third are due soon or overdue. Moving a recorded touch back in time writes the clocks'
            // touch record, which only the product may (docs/schema.md): the demo's import is the product's.
            await ExecuteAsync(connection, transaction, DerivedColumns.AllowProductWriteSql, cancellationToken);
            foreach (var (entityType, entityId) in contactIds.Select(id => ("contact", id)).Append(("account", accountId)))
            {
                await ExecuteAsync(connection, transaction,
                    "select public.update_engagement_clock($1, $2, $3, $4, $5)",
                    cancellationToken, TenantId, entityType, entityId, random.Next(3) == 0 ? "call" : "email", "demo-import");
                var daysAgo = random.Next(0, 31);
                await ExecuteAsync(connection, transaction, """
                    update public.engagement_clocks
                    set last_touch_at = last_touch_at - make_interval(days => $4),
                        next_touch_due = next_touch_due - make_interval(days => $4)
                    where tenant_id = $1 and entity_type = $2 and entity_id = $3
                    """, cancellationToken, TenantId, entityType, entityId, daysAgo);
            }

            // One recent order per account; a few carry defects: a stale price, a missing PO, a zero quantity.
            var orderId = DeterministicGuid(random);
            var defect = a % 4;
            await ExecuteAsync(connection, transaction, """
                insert into public.orders (id, tenant_id, account_id, contact_id, status, po_number, ship_to, requested_ship_date, currency, placed_at)
                values ($1, $2, $3, $4, 'placed', $5, $6::jsonb, (hourglass.now() + interval '10 days')::date, 'USD', hourglass.now() - interval '2 hours')
                """, cancellationToken, orderId, TenantId, accountId, contactIds[0],
                defect == 1 ? (object)DBNull.Value : $"PO-{4100 + a}",
                "{\"line1\": \"100 Commerce Way\", \"city\": \"Springfield\", \"postal_code\": \"62701\", \"country\": \"US\"}");
            var subtotal = 0m;
            for (var l = 0; l < 2 + (a % 3); l++)
            {
                var (productId, price) = productIds[random.Next(productIds.Count)];
                var quantity = defect == 3 && l == 0 ? 0 : random.Next(1, 20);
                var unitPrice = defect == 2 && l == 0 ? Math.Round(price * 0.8m, 2) : price;
                subtotal += quantity * unitPrice;
                await ExecuteAsync(connection, transaction,
                    "insert into public.order_lines (tenant_id, order_id, product_id, quantity, unit_price) values ($1, $2, $3, $4, $5)",
                    cancellationToken, TenantId, orderId, productId, (decimal)quantity, unitPrice);
            }

            await ExecuteAsync(connection, transaction,
                "update public.orders set subtotal = $3, total = $3 where tenant_id = $1 and id = $2",
                cancellationToken, TenantId, orderId, subtotal);
            // Placing the order queued it (a trigger); strategic accounts' orders go first.
            await ExecuteAsync(connection, transaction,
                "update public.order_processing_queue set priority = $3 where tenant_id = $1 and order_id = $2",
                cancellationToken, TenantId, orderId, tier == "strategic" ? 10 : 0);
            if (defect == 1)
            {
                // The account requires a PO number, and this order has none.
                await ExecuteAsync(connection, transaction, "update public.accounts set requires_po = true where tenant_id = $1 and id = $2",
                    cancellationToken, TenantId, accountId);
            }
        }
    }

    private static Guid DeterministicGuid(Random random)
    {
        Span<byte> bytes = stackalloc byte[16];
        random.NextBytes(bytes);
        bytes[7] = (byte)((bytes[7] & 0x0F) | 0x40); // version 4 layout
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes);
    }

    private static async Task ExecuteAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new() { Value = parameter });
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
