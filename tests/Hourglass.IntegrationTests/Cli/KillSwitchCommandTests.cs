using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.IntegrationTests.Orders;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>
/// The kill switches as an operator meets them on the command line: <c>hourglass orders process</c> under a pause
/// processes nothing of the paused tenants and says so (which tenant, since when, by whom, why, how to resume), and
/// <c>hourglass run --tenant</c> refuses a paused tenant with the same, exit code 1, recording no run — while a dry
/// run, which has no side effects, still works.
/// </summary>
public sealed class KillSwitchCommandTests : DatabaseTest
{
    private OrderWorld _w = null!;

    protected override async Task SeedAsync()
    {
        _w = await new OrderWorld(Db, Database).CreateAsync();
    }

    [Fact]
    public async Task OrdersProcess_TenantPaused_ProcessesNothingAndSaysSo()
    {
        var order = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], total: 99m);
        Assert.Equal(0, (await RunAsync("pause", "--tenant", _w.Tenant.ToString(), "--reason", "quarter close")).ExitCode);

        var result = await RunAsync("orders", "process", "--tenant", _w.Tenant.ToString());

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Matches($@"^Nothing processed: tenant {_w.Tenant} is paused since \d{{4}}-\d\d-\d\d \d\d:\d\d UTC by cli:[^:]+: quarter close\. " +
                       $"The orders wait, untouched, until 'hourglass resume --tenant {_w.Tenant}'\\.", result.StandardOutput);
        Assert.Equal(("pending", "pending", "pending", "pending", 0), await _w.QueueAsync(order));
        Assert.Empty(await _w.FixesAsync(order));
        Assert.Empty(await _w.EventsAsync(order));
    }

    [Fact]
    public async Task OrdersProcess_GlobalPause_ProcessesNothingAndSaysSo()
    {
        var order = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], total: 99m);
        Assert.Equal(0, (await RunAsync("pause", "--reason", "incident 42")).ExitCode);

        var result = await RunAsync("orders", "process");

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Matches(@"^Nothing processed: all tenants are paused \(the global kill switch\) since [^:]+:\d\d UTC by cli:[^:]+: incident 42\. " +
                       @"The orders wait, untouched, until 'hourglass resume'\.", result.StandardOutput);
        Assert.Equal("pending", (await _w.QueueAsync(order)).Status);
        Assert.Empty(await _w.FixesAsync(order));
    }

    [Fact]
    public async Task OrdersProcess_OneTenantPaused_OthersProcessed_HeldTenantNamedWithItsOrders()
    {
        var held = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], total: 99m);
        await _w.PlaceAsync([(_w.Widget, 2m, 10m, 0m)], total: 99m);
        var other = await new OrderWorld(Db, Database).CreateAsync();
        var processed = await other.PlaceAsync([(other.Widget, 1m, 10m, 0m)], total: 99m);
        var name = (string)(await Db.ScalarAsync("select name from public.tenants where id = $1", _w.Tenant))!;
        Assert.Equal(0, (await RunAsync("pause", "--tenant", _w.Tenant.ToString(), "--reason", "quarter close")).ExitCode);

        var result = await RunAsync("orders", "process");

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Contains("1 order(s) processed", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"Held: 2 order(s) of {name}: tenant {_w.Tenant} is paused since ", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($": quarter close; they wait until 'hourglass resume --tenant {_w.Tenant}'.", result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("validated", (await other.QueueAsync(processed)).Status);
        Assert.Equal("pending", (await _w.QueueAsync(held)).Status);
        Assert.Empty(await _w.FixesAsync(held));
    }

    [Fact]
    public async Task Run_TenantPaused_RefusedSayingSinceWhyAndHowToResume_NoRunRecorded_DryRunStillWorks()
    {
        Assert.Equal(0, (await RunAsync("pause", "--tenant", _w.Tenant.ToString(), "--reason", "customer asked us to stop")).ExitCode);

        var refused = await RunAsync("run", "--tenant", _w.Tenant.ToString());
        var dry = await RunAsync("run", "--tenant", _w.Tenant.ToString(), "--dry-run");

        Assert.Equal(1, refused.ExitCode);
        Assert.Matches($@"^hourglass: tenant {_w.Tenant} is paused since \d{{4}}-\d\d-\d\d \d\d:\d\d UTC by cli:[^:]+: customer asked us to stop\. " +
                       $"A manual run would act while the kill switch is on; resume with 'hourglass resume --tenant {_w.Tenant}' " +
                       @"\(a dry run, which has no side effects, still works\)\s*$", refused.StandardError);
        Assert.DoesNotContain("   at ", refused.StandardError, StringComparison.Ordinal);
        Assert.True(dry.ExitCode == 0, dry.StandardError);
        Assert.Equal((0L, 1L), ((long)(await Db.ScalarAsync(
                "select count(*) from public.agent_autonomous_runs where tenant_id = $1 and not coalesce((cycle_metrics ->> 'dry_run')::boolean, false)", _w.Tenant))!,
            (long)(await Db.ScalarAsync(
                "select count(*) from public.agent_autonomous_runs where tenant_id = $1 and (cycle_metrics ->> 'dry_run')::boolean", _w.Tenant))!));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.agent_tenant_locks where tenant_id = $1", _w.Tenant));
    }

    [Fact]
    public async Task Run_GlobalPause_RefusedNamingTheGlobalSwitch_ResumedRuns()
    {
        Assert.Equal(0, (await RunAsync("pause", "--reason", "incident 42")).ExitCode);

        var refused = await RunAsync("run", "--tenant", _w.Tenant.ToString());
        Assert.Equal(0, (await RunAsync("resume")).ExitCode);
        var resumed = await RunAsync("run", "--tenant", _w.Tenant.ToString());

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("hourglass: all tenants are paused (the global kill switch) since ", refused.StandardError, StringComparison.Ordinal);
        Assert.Contains(": incident 42. A manual run would act while the kill switch is on; resume with 'hourglass resume' ", refused.StandardError, StringComparison.Ordinal);
        Assert.True(resumed.ExitCode == 0, resumed.StandardError);
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.agent_autonomous_runs where tenant_id = $1", _w.Tenant));
    }

    private Task<HourglassProcess.Result> RunAsync(params string[] arguments) =>
        HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);
}
