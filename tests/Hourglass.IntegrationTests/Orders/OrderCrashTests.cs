using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Orders;

/// <summary>A real order processor killed holding claims loses nothing: the claims lapse and another processor does the orders, once.</summary>
public sealed class OrderCrashTests : DatabaseTest
{
    [Fact]
    public async Task ProcessorKilledAfterClaiming_ClaimsLapse_SuccessorProcessesEachOrderOnce()
    {
        var world = await new OrderWorld(Db, Database).CreateAsync();
        var db = Db;
        for (var i = 0; i < 30; i++)
        {
            await world.PlaceAsync([(world.Widget, 1m + i, 10m, 0m)], total: i % 2 == 0 ? 1m : null);
        }

        // Processor A claims a batch, then stalls (a failpoint) and is killed with SIGKILL.
        using var doomed = HourglassProcess.Start(new Dictionary<string, string?> { ["HOURGLASS_FAILPOINTS"] = "orders.after_claim=600000" },
            "orders", "process", "--batch-size", "10", "--database", ConnectionString);
        try
        {
            await WaitForAsync(db, "select count(*) from public.order_processing_queue where status = 'processing'", 10);
        }
        finally
        {
            doomed.Kill(entireProcessTree: true);
            await doomed.WaitForExitAsync();
        }

        Assert.Equal(10L, await db.ScalarAsync("select count(*) from public.order_processing_queue where status = 'processing'"));
        Assert.Equal(0L, await db.ScalarAsync("select count(*) from public.warehouse_events where entity_type = 'order'"));

        // Before the claims lapse, B leaves them alone and does the other 20.
        var early = await HourglassProcess.RunAsync("orders", "process", "--database", ConnectionString);
        Assert.True(early.ExitCode == 0, early.StandardError);
        Assert.Contains("20 order(s) processed", early.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(10L, await db.ScalarAsync("select count(*) from public.order_processing_queue where status = 'processing'"));

        // After the visibility timeout (5 minutes by the database clock) they are due again.
        await db.FreezeTimeAsync(OrderWorld.Now.AddMinutes(6));
        var late = await HourglassProcess.RunAsync("orders", "process", "--database", ConnectionString);

        Assert.True(late.ExitCode == 0, late.StandardError);
        Assert.Contains("10 order(s) processed", late.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(30L, await db.ScalarAsync("select count(*) from public.order_processing_queue where status = 'validated'"));
        Assert.Equal(30L, await db.ScalarAsync("select count(*) from public.warehouse_events where event_type = 'order_validated'"));
        Assert.Equal(15L, await db.ScalarAsync("select count(*) from public.order_processing_fixes"));
    }

    private static async Task WaitForAsync(TestDb db, string countSql, long atLeast)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while ((long)(await db.ScalarAsync(countSql))! < atLeast)
        {
            await Task.Delay(100, timeout.Token);
        }
    }
}
