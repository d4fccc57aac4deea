using System.Text.Json.Nodes;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Orders;
using Hourglass.Policies;

namespace Hourglass.IntegrationTests.Orders;

/// <summary>
/// The processor's single write statement on a real database: an entry whose claim is no longer ours is skipped
/// whole inside the same statement that writes the others, and the processor's own writes do not queue orders again.
/// </summary>
public sealed class OrderWriterTests : DatabaseTest
{
    private OrderWorld _w = null!;

    protected override async Task SeedAsync()
    {
        _w = await new OrderWorld(Db, Database).CreateAsync();
    }

    // Claims the tenant's pending entries as a processor named 'writer' would.
    private async Task<List<(Guid Queue, Guid Order, long Token)>> ClaimAsync()
    {
        var claims = new List<(Guid Queue, Guid Order, long Token)>();
        await using var claim = Db.DataSource.CreateCommand("select queue_id, order_id, claim_token from public.claim_orders('writer', 10, 300, $1)");
        claim.Parameters.Add(new() { Value = _w.Tenant });
        await using var reader = await claim.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            claims.Add((reader.GetGuid(0), reader.GetGuid(1), reader.GetInt64(2)));
        }

        return claims;
    }

    [Fact]
    public async Task WriteAsync_OneOrderChangedAfterTheClaim_ItIsSkippedWholeAndTheOtherWritten()
    {
        var changed = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], total: 99m);
        var kept = await _w.PlaceAsync([(_w.Widget, 2m, 10m, 0m)], total: 99m, po: null);
        await Db.ExecuteAsync("update public.accounts set requires_po = true where id = $1", _w.Account);
        await Db.ExecuteAsync("update public.order_processing_queue set status = 'pending' where tenant_id = $1", _w.Tenant);
        var claims = await ClaimAsync();

        // Decided as the processor would: both get their totals fixed; the second also lacks its PO number.
        var outcomes = new List<OrderOutcome>();
        foreach (var (queue, order, token) in claims)
        {
            var quantity = order == changed ? 1m : 2m;
            var snapshot = Snapshot(queue, order, token, quantity, order == kept ? null : "PO-1");
            outcomes.Add(OrderDecider.Decide(snapshot, PolicyStore.BuiltIn, TimeZoneInfo.Utc, OrderWorld.Now));
        }

        Assert.All(outcomes, o => Assert.Single(o.Fixes));
        // Someone edits the first order after the claim: its entry goes back to pending, the claim is void.
        await Db.ExecuteAsync("update public.order_lines set quantity = 3 where order_id = $1", changed);

        await using var connection = await Db.DataSource.OpenConnectionAsync();
        var written = await OrderWriter.WriteAsync(connection, outcomes, "writer", null, OrderWorld.Now, default);

        Assert.Equal([claims.Single(c => c.Order == kept).Queue], written);
        // Nothing of the changed order: no fix, no event, no exception, its totals and status as the host left them.
        Assert.Equal("pending", (await _w.QueueAsync(changed)).Status);
        Assert.Empty(await _w.FixesAsync(changed));
        Assert.Empty(await _w.EventsAsync(changed));
        Assert.Empty(await _w.ExceptionsAsync(changed));
        Assert.Equal((99m, "placed"), ((decimal)(await Db.ScalarAsync("select total from public.orders where id = $1", changed))!,
            (string)(await Db.ScalarAsync("select status from public.orders where id = $1", changed))!));
        // All of the other: the fix with before and after, the exception with its card, the events, the host status;
        // and the fix did not queue it again.
        Assert.Equal("exception", (await _w.QueueAsync(kept)).Status);
        var fix = Assert.Single(await _w.FixesAsync(kept));
        Assert.Equal(("recompute_totals", 99m, 20m), (fix.Type, fix.Before["total"]!.GetValue<decimal>(), fix.After["total"]!.GetValue<decimal>()));
        Assert.Equal(20m, await Db.ScalarAsync("select total from public.orders where id = $1", kept));
        Assert.Equal("on_hold", await Db.ScalarAsync("select status from public.orders where id = $1", kept));
        var exception = Assert.Single(await _w.ExceptionsAsync(kept));
        Assert.Equal(("missing_po", "open"), (exception.Type, exception.Status));
        Assert.Equal(1L, await Db.ScalarAsync(
            "select count(*) from public.cards where kind = 'exception_review' and payload ->> 'exception_id' = $1", exception.Id.ToString()));
        Assert.Equal(["order_exception", "order_exception", "order_fixed"], (await _w.EventsAsync(kept)).Order(StringComparer.Ordinal));
        Assert.Equal(true, await Db.ScalarAsync("""
            select payload ->> 'fix' = 'recompute_totals' and (payload ->> 'attempt')::integer = 1
                   and (payload -> 'before' ->> 'total')::numeric = 99 and (payload -> 'after' ->> 'total')::numeric = 20
            from public.warehouse_events where entity_id = $1 and event_type = 'order_fixed'
            """, kept));
    }

    [Fact]
    public async Task WriteAsync_OneOfItsWritesFails_NothingOfTheBatchIsWritten()
    {
        var first = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], total: 99m);
        var second = await _w.PlaceAsync([(_w.Widget, 2m, 10m, 0m)], total: 99m);
        await Db.ExecuteAsync("update public.order_processing_queue set status = 'pending' where tenant_id = $1", _w.Tenant);
        var claims = await ClaimAsync();

        var outcomes = claims.Select(c => OrderDecider.Decide(Snapshot(c.Queue, c.Order, c.Token, c.Order == first ? 1m : 2m, "PO-1"),
            PolicyStore.BuiltIn, TimeZoneInfo.Utc, OrderWorld.Now)).ToList();
        var set = OrderWriter.Build(outcomes);
        // The second order's fix row breaks a check constraint: the statement fails after its queue update, its order
        // update and both orders' events were written.
        set.FixTypes[set.FixQueueIds.IndexOf(claims.Single(c => c.Order == second).Queue)] = "not_a_fix";

        await using var connection = await Db.DataSource.OpenConnectionAsync();
        await Assert.ThrowsAsync<Npgsql.PostgresException>(() => OrderWriter.WriteAsync(connection, set, "writer", null, OrderWorld.Now, default));

        // Nothing of either order: both entries still claimed, no fix, no event, the totals and status as placed; and
        // the connection is usable again (the implicit transaction was rolled back, not left open).
        foreach (var order in new[] { first, second })
        {
            Assert.Equal("processing", (await _w.QueueAsync(order)).Status);
            Assert.Empty(await _w.FixesAsync(order));
            Assert.Empty(await _w.EventsAsync(order));
            Assert.Equal((99m, "placed"), ((decimal)(await Db.ScalarAsync("select total from public.orders where id = $1", order))!,
                (string)(await Db.ScalarAsync("select status from public.orders where id = $1", order))!));
        }

        set.FixTypes[set.FixTypes.IndexOf("not_a_fix")] = "recompute_totals";
        var written = await OrderWriter.WriteAsync(connection, set, "writer", null, OrderWorld.Now, default);
        Assert.Equal(claims.Select(c => c.Queue).ToHashSet(), written);
        Assert.Equal("validated", (await _w.QueueAsync(second)).Status);
        Assert.Equal(20m, await Db.ScalarAsync("select total from public.orders where id = $1", second));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WriteAsync_TenantPausedAfterTheClaim_NothingWrittenEntriesReleasedAsTheyWere(bool global)
    {
        var first = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], total: 99m);
        var second = await _w.PlaceAsync([(_w.Widget, 2m, 10m, 0m)], total: 99m);
        await Db.ExecuteAsync("update public.order_processing_queue set status = 'pending' where tenant_id = $1", _w.Tenant);
        var claims = await ClaimAsync();
        var outcomes = claims.Select(c => OrderDecider.Decide(Snapshot(c.Queue, c.Order, c.Token, c.Order == first ? 1m : 2m, "PO-1"),
            PolicyStore.BuiltIn, TimeZoneInfo.Utc, OrderWorld.Now)).ToList();
        Assert.All(outcomes, o => Assert.Single(o.Fixes));

        // The pause lands between the claim and the write (the processor decided in memory meanwhile).
        var control = new Hourglass.Cycles.TenantControl(Db.DataSource, TimeProvider.System);
        if (global)
        {
            await control.PauseAllAsync("incident 42", "ops", default);
        }
        else
        {
            await control.PauseTenantAsync(_w.Tenant, "quarter close", "ops", default);
        }

        await using var connection = await Db.DataSource.OpenConnectionAsync();
        var held = new HashSet<Guid>();
        var written = await OrderWriter.WriteAsync(connection, outcomes, "writer", null, OrderWorld.Now, default, held);

        Assert.Empty(written);
        Assert.Equal(claims.Select(c => c.Queue).ToHashSet(), held);
        foreach (var order in new[] { first, second })
        {
            // No fix, event, exception or card; the order as the host left it; the entry pending again, unclaimed, its
            // attempts as they were — to be validated afresh after the resume.
            Assert.Equal(("pending", "pending", "pending", "pending", 0), await _w.QueueAsync(order));
            Assert.Empty(await _w.FixesAsync(order));
            Assert.Empty(await _w.EventsAsync(order));
            Assert.Empty(await _w.ExceptionsAsync(order));
            Assert.Equal((99m, "placed"), ((decimal)(await Db.ScalarAsync("select total from public.orders where id = $1", order))!,
                (string)(await Db.ScalarAsync("select status from public.orders where id = $1", order))!));
        }

        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.order_processing_queue where claimed_by is not null and tenant_id = $1", _w.Tenant));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.cards where tenant_id = $1", _w.Tenant));
        // Nor can anyone claim them while the pause holds.
        Assert.Empty(await ClaimAsync());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClaimOrders_Paused_ReturnsNothingAndLeavesTheQueue_OtherTenantsStillClaimed(bool global)
    {
        var order = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)]);
        var other = await new OrderWorld(Db, Database).CreateAsync();
        var otherOrder = await other.PlaceAsync([(other.Widget, 1m, 10m, 0m)]);
        // One entry whose processor died holding it: a lapsed claim is claimable again, but not under the pause.
        await Db.ExecuteAsProductAsync("update public.order_processing_queue set status = 'processing', claimed_by = 'dead', claimed_until = hourglass.now() - interval '1 hour' where order_id = $1", order);
        var control = new Hourglass.Cycles.TenantControl(Db.DataSource, TimeProvider.System);
        if (global)
        {
            await control.PauseAllAsync("incident 42", "ops", default);
        }
        else
        {
            await control.PauseTenantAsync(_w.Tenant, "quarter close", "ops", default);
        }

        var before = await Db.ScalarAsync("select string_agg(concat_ws('|', id, status, claimed_by, claimed_until, claim_token, updated_at), ',' order by id) from public.order_processing_queue where tenant_id = $1", _w.Tenant);
        var mine = await ClaimAsync();
        var all = (long)(await Db.ScalarAsync("select count(*) from public.claim_orders('anyone', 100, 300, null)"))!;

        Assert.Empty(mine);
        Assert.Equal(before, await Db.ScalarAsync("select string_agg(concat_ws('|', id, status, claimed_by, claimed_until, claim_token, updated_at), ',' order by id) from public.order_processing_queue where tenant_id = $1", _w.Tenant));
        // The global pause holds every tenant; a tenant's pause only its own.
        Assert.Equal(global ? 0L : 1L, all);
        Assert.Equal(global ? "pending" : "processing", (await other.QueueAsync(otherOrder)).Status);

        await (global ? control.ResumeAllAsync("ops", default) : control.ResumeTenantAsync(_w.Tenant, default));
        Assert.Equal([order], (await ClaimAsync()).Select(c => c.Order));
    }

    private OrderSnapshot Snapshot(Guid queue, Guid order, long token, decimal quantity, string? po) => new(
        queue, _w.Tenant, order, token, 0, 3, "placed", "USD", po, JsonNode.Parse(OrderWorld.ShipTo)!.AsObject(),
        DateOnly.FromDateTime(OrderWorld.Now.UtcDateTime).AddDays(10), DateOnly.FromDateTime(OrderWorld.Now.UtcDateTime),
        10m * quantity, 99m, 0m, 0m,
        new AccountData(_w.Account, "Globex", "growth", null, po is null, null, 0m, false),
        [new OrderLineData(Guid.NewGuid(), _w.Widget, quantity, 10m, 0m)],
        new Dictionary<Guid, ProductData> { [_w.Widget] = new(_w.Widget, "W-1", "W-1", 10m, 6m, true) },
        [], [], OrderSettings.From(null), 0m, null, null, null, null);
}
