using System.Text.Json.Nodes;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Orders;

namespace Hourglass.IntegrationTests.Orders;

/// <summary>A tenant with an account, products and price rules, and helpers to place orders and read what processing did.</summary>
internal sealed class OrderWorld(TestDb db, DatabaseFixture database)
{
    public static readonly DateTimeOffset Now = new(2026, 10, 5, 10, 0, 0, TimeSpan.Zero);
    public const string ShipTo = """{"line1": "1 Main St", "city": "Springfield", "postal_code": "62701", "country": "US"}""";

    public Guid Tenant { get; private set; }
    public Guid Account { get; private set; }
    public Guid Widget { get; private set; }   // list 10.00, cost 6.00
    public Guid Gadget { get; private set; }   // list 100.00, cost 80.00

    public TestDb Db => db;

    public async Task<OrderWorld> CreateAsync(string settings = "{}", string? tier = "growth", decimal? creditLimit = null)
    {
        await db.FreezeTimeAsync(Now);
        Tenant = await db.CreateTenantAsync(settingsJson: settings);
        Account = (Guid)(await db.ScalarAsync("insert into public.accounts (tenant_id, name, tier, credit_limit) values ($1, 'Globex', $2, $3) returning id",
            Tenant, (object?)tier ?? DBNull.Value, (object?)creditLimit ?? DBNull.Value))!;
        Widget = await ProductAsync("W-1", 10m, 6m);
        Gadget = await ProductAsync("G-1", 100m, 80m);
        return this;
    }

    public async Task<Guid> ProductAsync(string sku, decimal list, decimal? cost, bool active = true) =>
        (Guid)(await db.ScalarAsync("insert into public.products (tenant_id, sku, name, list_price, unit_cost, active) values ($1, $2, $2, $3, $4, $5) returning id",
            Tenant, sku, list, (object?)cost ?? DBNull.Value, active))!;

    /// <summary>Places an order (a trigger queues it). Lines: (product, quantity, unit price, discount). Totals as given, or right.</summary>
    public async Task<Guid> PlaceAsync(IEnumerable<(Guid? Product, decimal Quantity, decimal Price, decimal Discount)> lines, string? po = "PO-1",
        string? shipTo = ShipTo, string currency = "USD", DateOnly? shipDate = null, decimal? total = null, Guid? account = null, string status = "placed")
    {
        var order = (Guid)(await db.ScalarAsync("""
            insert into public.orders (tenant_id, account_id, status, po_number, ship_to, requested_ship_date, currency, placed_at)
            values ($1, $2, 'draft', $3, $4::jsonb, $5, $6, $7) returning id
            """, Tenant, account ?? Account, (object?)po ?? DBNull.Value, (object?)shipTo ?? DBNull.Value,
            shipDate ?? DateOnly.FromDateTime(Now.UtcDateTime).AddDays(10), currency, Now))!;
        var sum = 0m;
        foreach (var (product, quantity, price, discount) in lines)
        {
            await db.ExecuteAsync("insert into public.order_lines (tenant_id, order_id, product_id, quantity, unit_price, discount_pct) values ($1, $2, $3, $4, $5, $6)",
                Tenant, order, (object?)product ?? DBNull.Value, quantity, price, discount);
            sum += Math.Round(quantity * price * (1 - discount / 100m), 2);
        }

        await db.ExecuteAsync("update public.orders set subtotal = $3, total = $4, status = $5 where tenant_id = $1 and id = $2",
            Tenant, order, sum, total ?? sum, status);
        return order;
    }

    public Task<Guid> PlaceAsync(params (Guid? Product, decimal Quantity, decimal Price, decimal Discount)[] lines) => PlaceAsync(lines, "PO-1");

    public async Task<OrderPassResult> ProcessAsync(string worker = "test-processor") =>
        await new OrderProcessor(database.DataSource, new OrderProcessorOptions { WorkerId = worker }).DrainAsync(Tenant, null, 10_000, default);

    public async Task<(string Status, string Pricing, string Credit, string Requirements, int Attempts)> QueueAsync(Guid order)
    {
        await using var command = db.DataSource.CreateCommand(
            "select status, pricing_status, credit_status, requirements_status, auto_fix_attempts from public.order_processing_queue where order_id = $1");
        command.Parameters.Add(new() { Value = order });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), "the order has no queue entry");
        return (reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4));
    }

    public async Task<List<(Guid Id, string Type, string Status, string Message)>> ExceptionsAsync(Guid order)
    {
        await using var command = db.DataSource.CreateCommand(
            "select id, exception_type, resolution_status, details ->> 'message' from public.order_processing_exceptions where order_id = $1 order by created_at, exception_type");
        command.Parameters.Add(new() { Value = order });
        await using var reader = await command.ExecuteReaderAsync();
        var list = new List<(Guid, string, string, string)>();
        while (await reader.ReadAsync())
        {
            list.Add((reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetString(3)));
        }

        return list;
    }

    public async Task<List<(string Type, JsonNode Before, JsonNode After)>> FixesAsync(Guid order)
    {
        await using var command = db.DataSource.CreateCommand(
            "select fix_type, before::text, after::text from public.order_processing_fixes where order_id = $1 order by attempt, created_at, fix_type");
        command.Parameters.Add(new() { Value = order });
        await using var reader = await command.ExecuteReaderAsync();
        var list = new List<(string, JsonNode, JsonNode)>();
        while (await reader.ReadAsync())
        {
            list.Add((reader.GetString(0), JsonNode.Parse(reader.GetString(1))!, JsonNode.Parse(reader.GetString(2))!));
        }

        return list;
    }

    public async Task<List<string>> EventsAsync(Guid order)
    {
        await using var command = db.DataSource.CreateCommand("select event_type from public.warehouse_events where entity_id = $1 order by created_at, event_type");
        command.Parameters.Add(new() { Value = order });
        await using var reader = await command.ExecuteReaderAsync();
        var list = new List<string>();
        while (await reader.ReadAsync())
        {
            list.Add(reader.GetString(0));
        }

        return list;
    }
}
