using System.Text.Json.Nodes;
using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.IntegrationTests.Cycles;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Orders;

/// <summary>The order processor inside the tenant's cycle: a cycle processes its tenant's queue, a dry run nothing.</summary>
public sealed class OrderCycleTests : DatabaseTest
{
    private OrderWorld _w = null!;

    protected override async Task SeedAsync() => _w = await new OrderWorld(Db, Database).CreateAsync();

    [Fact]
    public async Task Cycle_ProcessesItsTenantsQueue_WhatMovedReportsIt_DryRunProcessesNothing()
    {
        var clean = await _w.PlaceAsync((_w.Widget, 2m, 10m, 0m));
        var fixable = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], total: 3m);
        var broken = await _w.PlaceAsync((_w.Widget, 0m, 10m, 0m));
        var harness = new CycleHarness(Database, OrderWorld.Now);
        var worker = CycleComposition.CreateWorker(DataSource, harness.Clock, new CycleWorkerOptions { WorkerId = "orders-cycle" });

        var dry = await worker.RunManualAsync(_w.Tenant, dryRun: true, hour: null, default);
        Assert.Equal("pending", (await _w.QueueAsync(clean)).Status);
        var run = await worker.RunManualAsync(_w.Tenant, dryRun: false, hour: null, default);

        Assert.Equal("completed", run.Status);
        Assert.Equal(["validated", "validated", "exception"], new[] { (await _w.QueueAsync(clean)).Status, (await _w.QueueAsync(fixable)).Status, (await _w.QueueAsync(broken)).Status });
        var moved = JsonNode.Parse((string)(await Db.ScalarAsync("select what_moved::text from public.agent_hourly_reflections where run_id = $1", run.RunId))!)!;
        Assert.Equal(2m, moved["orders.validated"]!["after"]!.GetValue<decimal>());
        Assert.Equal(1m, moved["orders.fixes"]!["after"]!.GetValue<decimal>());
        Assert.Equal(1m, moved["orders.open_exceptions"]!["after"]!.GetValue<decimal>());
        Assert.Equal(0m, moved["orders.pending"]!["after"]!.GetValue<decimal>());
        Assert.NotEqual(dry.RunId, run.RunId);
    }
}
