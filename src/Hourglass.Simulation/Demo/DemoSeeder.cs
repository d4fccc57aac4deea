using Hourglass.Engagement;
using Hourglass.Orders;
using Hourglass.Storage;
using Hourglass.Tenancy;
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
            if (!await TenancyStore.LockTenantAsync(connection, transaction, TenantId, cancellationToken))
            {
                await SeedTenantAsync(connection, transaction, cancellationToken);
                created = true;
            }

            await transaction.CommitAsync(cancellationToken);
        }

        var changed = await EngagementStore.RefreshComplianceAsync(connection, null, TenantId, cancellationToken);

        // What the tenant holds, read in one snapshot.
        await using var snapshot = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        var (accounts, contacts) = await TenancyStore.CrmCountsAsync(connection, snapshot, TenantId, cancellationToken);
        var (products, orders, queued) = await OrderStore.CatalogCountsAsync(connection, snapshot, TenantId, cancellationToken);
        var clocks = await EngagementStore.ComplianceCountsAsync(connection, snapshot, TenantId, cancellationToken);
        var (_, total, compliant, dueSoon, overdue) = clocks.Count == 0 ? (TenantId, 0L, 0L, 0L, 0L) : clocks[0];
        await snapshot.CommitAsync(cancellationToken);
        return new DemoSummary(TenantId, TenantName, created, accounts, contacts, products, orders, queued, total, compliant, dueSoon, overdue, changed);
    }

    // The tenant's rows are drawn first, in the order the seed's random stream has always drawn them (so the demo is the
    // same on every machine and as before), then loaded table by table through the owning stores' bulk loads.
    private static async Task SeedTenantAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        // Deterministic: the same demo on every machine.
        var random = new Random(20251217);

        // The order's dates as the database clock (hourglass.now(), which a frozen clock moves) and the session's time zone give them.
        DateTimeOffset placedAt;
        DateOnly requestedShipDate;
        await using (var clock = new NpgsqlCommand("select hourglass.now() - interval '2 hours', (hourglass.now() + interval '10 days')::date", connection, transaction))
        await using (var reader = await clock.ExecuteReaderAsync(cancellationToken))
        {
            await reader.ReadAsync(cancellationToken);
            placedAt = reader.GetFieldValue<DateTimeOffset>(0);
            requestedShipDate = reader.GetFieldValue<DateOnly>(1);
        }

        var productIds = new List<(Guid Id, decimal Price)>();
        var products = new List<OrderStore.ProductLoad>();
        foreach (var (sku, name, price, cost) in s_products)
        {
            var id = DeterministicGuid(random);
            productIds.Add((id, price));
            products.Add(new(id, TenantId, sku, name, price, cost));
        }

        var accounts = new List<TenancyStore.AccountLoad>();
        var contacts = new List<TenancyStore.ContactLoad>();
        var touches = new List<(string EntityType, Guid EntityId, string TouchType)>();
        var daysAgo = new List<int>();
        var orders = new List<OrderStore.OrderLoad>();
        var lines = new List<OrderStore.OrderLineLoad>();
        var priorities = new List<(Guid OrderId, int Priority)>();
        var tiers = new[] { "strategic", "growth", "standard" };
        var zones = new[] { "America/Chicago", "America/New_York", "America/Los_Angeles", "Europe/London" };
        for (var a = 0; a < s_accountNames.Length; a++)
        {
            var accountId = DeterministicGuid(random);
            var tier = tiers[a % tiers.Length];
            // One recent order per account; a few carry defects: a stale price, a missing PO (the account requires one), a zero quantity.
            var defect = a % 4;
            accounts.Add(new(accountId, TenantId, s_accountNames[a], tier, a % 2 == 0 ? "manufacturing" : "retail", OwnerUserId,
                tier == "strategic" ? 50000m : tier == "growth" ? 20000m : 5000m, 30, zones[a % zones.Length], RequiresPo: defect == 1));

            var contactIds = new List<Guid>();
            for (var c = 0; c < 3 + (a % 3); c++)
            {
                var contactId = DeterministicGuid(random);
                contactIds.Add(contactId);
                var first = s_firstNames[random.Next(s_firstNames.Length)];
                var last = s_lastNames[random.Next(s_lastNames.Length)];
                contacts.Add(new(contactId, TenantId, accountId, $"{first} {last}",
                    $"{first.ToLowerInvariant()}.{last.ToLowerInvariant()}@{s_accountNames[a].Split(' ')[0].ToLowerInvariant().Replace("'", "", StringComparison.Ordinal)}.example",
                    $"+1-555-01{a:D2}-{c:D2}", zones[(a + c) % zones.Length]));
            }

            // Touch history: each contact and the account were last touched 0–30 days ago, so with a 21-day
            // cadence about a third are due soon or overdue.
            foreach (var (entityType, entityId) in contactIds.Select(id => ("contact", id)).Append(("account", accountId)))
            {
                touches.Add((entityType, entityId, random.Next(3) == 0 ? "call" : "email"));
                daysAgo.Add(random.Next(0, 31));
            }

            var orderId = DeterministicGuid(random);
            var subtotal = 0m;
            for (var l = 0; l < 2 + (a % 3); l++)
            {
                var (productId, price) = productIds[random.Next(productIds.Count)];
                var quantity = defect == 3 && l == 0 ? 0 : random.Next(1, 20);
                var unitPrice = defect == 2 && l == 0 ? Math.Round(price * 0.8m, 2) : price;
                subtotal += quantity * unitPrice;
                lines.Add(new(TenantId, orderId, productId, quantity, unitPrice, 0m));
            }

            orders.Add(new(orderId, TenantId, accountId, contactIds[0], "placed", defect == 1 ? null : $"PO-{4100 + a}",
                "{\"line1\": \"100 Commerce Way\", \"city\": \"Springfield\", \"postal_code\": \"62701\", \"country\": \"US\"}",
                requestedShipDate, "USD", placedAt, subtotal, subtotal));
            // Strategic accounts' orders go first.
            priorities.Add((orderId, tier == "strategic" ? 10 : 0));
        }

        await TenancyStore.LoadTenantsAsync(connection,
            [new(TenantId, TenantName, "America/Chicago", """{"touch_frequency_days": 21, "due_soon_days": 3}""")], cancellationToken);
        await TenancyStore.LoadMembersAsync(connection, [new(TenantId, OwnerUserId, "owner")], cancellationToken);
        await OrderStore.LoadProductsAsync(connection, products, cancellationToken);
        await TenancyStore.LoadAccountsAsync(connection, accounts, cancellationToken);
        await TenancyStore.LoadContactsAsync(connection, contacts, cancellationToken);

        // Touches in the order drawn (a contact's touch is also its account's), then each moved back by its days. Moving a
        // recorded touch back in time writes the clocks' touch record, which only the product may (docs/schema.md): the
        // demo's import is the product's.
        await using (var allow = new NpgsqlCommand(DerivedColumns.AllowProductWriteSql, connection, transaction))
        {
            await allow.ExecuteNonQueryAsync(cancellationToken);
        }

        await EngagementStore.RecordTouchesAsync(connection, transaction, TenantId, touches, "demo-import", cancellationToken);
        await EngagementStore.MoveTouchesBackAsync(connection, transaction, TenantId, touches.Select(t => t.EntityType).ToArray(),
            touches.Select(t => t.EntityId).ToArray(), daysAgo.ToArray(), cancellationToken);

        // Placing an order queues it (a trigger), and so does adding a line.
        await OrderStore.LoadOrdersAsync(connection, orders, cancellationToken);
        await OrderStore.LoadOrderLinesAsync(connection, lines, cancellationToken);
        await OrderStore.SetQueuePrioritiesAsync(connection, transaction, TenantId, priorities.Select(p => p.OrderId).ToArray(),
            priorities.Select(p => p.Priority).ToArray(), cancellationToken);
    }

    private static Guid DeterministicGuid(Random random)
    {
        Span<byte> bytes = stackalloc byte[16];
        random.NextBytes(bytes);
        bytes[7] = (byte)((bytes[7] & 0x0F) | 0x40); // version 4 layout
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes);
    }
}
