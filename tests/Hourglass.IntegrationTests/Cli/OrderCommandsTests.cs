using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.IntegrationTests.Orders;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>The orders commands as a person runs them: process, queue, exceptions, review, resolve, override-credit.</summary>
public sealed class OrderCommandsTests : DatabaseTest
{
    private OrderWorld _w = null!;

    protected override async Task SeedAsync()
    {
        _w = await new OrderWorld(Db, Database).CreateAsync();
        await Db.ExecuteAsync("update public.tenants set name = 'Order Co' where id = $1", _w.Tenant);
    }

    [Fact]
    public async Task Cli_ProcessQueueExceptions_ThenReviewResolveAndOverride()
    {
        await Db.ExecuteAsync("update public.tenants set settings = '{\"credit_over_limit\": \"exception\"}' where id = $1", _w.Tenant);
        var tight = (Guid)(await Db.ScalarAsync("insert into public.accounts (tenant_id, name, credit_limit) values ($1, 'Tight', 15) returning id", _w.Tenant))!;
        var broken = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], po: "PO-9", shipDate: DateOnly.FromDateTime(OrderWorld.Now.UtcDateTime));
        var over = await _w.PlaceAsync([(_w.Widget, 2m, 10m, 0m)], account: tight);

        var process = await RunAsync("orders", "process", "--tenant", "Order Co", "--processors", "2");
        var queue = await RunAsync("orders", "queue", "--tenant", "Order Co");
        var exceptions = await RunAsync("orders", "exceptions", "--tenant", "Order Co");

        Assert.True(process.ExitCode == 0, process.StandardError);
        Assert.Contains("2 order(s) processed", process.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("2 exception(s)", process.StandardOutput, StringComparison.Ordinal);
        Assert.Contains(broken.ToString(), queue.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("lead_time (error)  [open]", exceptions.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("credit_limit (warning)  [open]", exceptions.StandardOutput, StringComparison.Ordinal);

        var leadTime = (await _w.ExceptionsAsync(broken)).Single(e => e.Type == "lead_time").Id;
        Assert.Equal(0, (await RunAsync("orders", "review", "--exception", leadTime.ToString(), "--by", "sam")).ExitCode);
        await Db.ExecuteAsync("update public.orders set requested_ship_date = requested_ship_date + 10 where id = $1", broken);
        var resolve = await RunAsync("orders", "resolve", "--exception", leadTime.ToString(), "--by", "sam", "--notes", "customer agreed to a later date");
        var overrideCredit = await RunAsync("orders", "override-credit", "--order", over.ToString(), "--by", "cfo", "--reason", "prepaid");
        var again = await RunAsync("orders", "process", "--tenant", "Order Co");

        Assert.True(resolve.ExitCode == 0, resolve.StandardError);
        Assert.True(overrideCredit.ExitCode == 0, overrideCredit.StandardError);
        Assert.Contains("2 order(s) processed in", again.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("validated", (await _w.QueueAsync(broken)).Status);
        Assert.Equal("validated", (await _w.QueueAsync(over)).Status);
    }

    [Theory]
    [InlineData(new[] { "orders", "process", "--processors", "0" }, "--processors must be between 1 and 32")]
    [InlineData(new[] { "orders", "process", "--batch-size", "5000" }, "--batch-size must be between 1 and 1000")]
    [InlineData(new[] { "orders", "resolve", "--exception", "6d3c1f4e-0000-4000-8000-000000000000", "--by", "x", "--notes", "n" }, "not found")]
    [InlineData(new[] { "orders", "queue", "--tenant", "Order Co", "--status", "lost" }, "lost")]
    [InlineData(new[] { "orders", "override-credit", "--order", "6d3c1f4e-0000-4000-8000-000000000000", "--by", "x", "--reason", "r" }, "is not in the processing queue")]
    public async Task Cli_BadInput_OneLineError(string[] arguments, string expected)
    {
        var result = await RunAsync(arguments);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }

    private Task<HourglassProcess.Result> RunAsync(params string[] arguments) =>
        HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);
}
