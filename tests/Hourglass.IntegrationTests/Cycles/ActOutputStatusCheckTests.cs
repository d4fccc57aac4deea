using Hourglass.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Cycles;

/// <summary>
/// agent_autonomous_runs_act_output_status_check (20251231000100_agent_autonomous_runs_act_output_statuses_checked): an
/// action status a run writes into act_output is one of ActionStatus's names, as CycleStatuses maps them; anything else
/// is refused with 23514 naming the constraint.
/// </summary>
public sealed class ActOutputStatusCheckTests(DatabaseFixture fixture) : IClassFixture<DatabaseFixture>
{
    private TestDb Db => fixture.Db;

    [Fact]
    public async Task ActOutput_EveryActionStatusName_IsAccepted()
    {
        var tenant = await TenantAsync();
        var actions = string.Join(", ", Enum.GetValues<ActionStatus>().Select(s => $$"""{"kind": "touch_task", "status": "{{s.Name()}}"}"""));

        await RunAsync(tenant, $$"""{"dry_run": false, "actions": [{{actions}}]}""");
        await RunAsync(tenant, """{"dry_run": false, "actions": []}""");
        await RunAsync(tenant, """{"dry_run": false}""");
        await RunAsync(tenant, null);

        Assert.Equal(4L, await Db.ScalarAsync("select count(*) from public.agent_autonomous_runs where tenant_id = $1", tenant));
    }

    [Theory]
    [InlineData("""{"actions": [{"kind": "touch_task", "status": "succeeded"}, {"kind": "touch_task", "status": "done"}]}""")]
    [InlineData("""{"actions": [{"kind": "touch_task", "status": "Succeeded"}]}""")]
    [InlineData("""{"actions": [{"kind": "touch_task"}]}""")]
    [InlineData("""{"actions": [{"kind": "touch_task", "status": null}]}""")]
    [InlineData("""{"actions": [{"kind": "touch_task", "status": 1}]}""")]
    [InlineData("""{"actions": [{"kind": "touch_task", "status": ["succeeded"]}]}""")]
    public async Task ActOutput_StatusNoActionHas_IsRefused(string actOutput)
    {
        var tenant = await TenantAsync();

        var ex = await Assert.ThrowsAsync<PostgresException>(() => RunAsync(tenant, actOutput));

        Assert.Equal(PostgresErrorCodes.CheckViolation, ex.SqlState);
        Assert.Equal("agent_autonomous_runs_act_output_status_check", ex.ConstraintName);
    }

    [Fact]
    public async Task ActOutput_UpdatedToAnUnknownStatus_IsRefused()
    {
        var tenant = await TenantAsync();
        await RunAsync(tenant, """{"actions": [{"kind": "touch_task", "status": "would_run"}]}""");

        var ex = await Assert.ThrowsAsync<PostgresException>(() => Db.ExecuteAsync(
            """update public.agent_autonomous_runs set act_output = '{"actions": [{"status": "skipped"}]}' where tenant_id = $1""", tenant));

        Assert.Equal("agent_autonomous_runs_act_output_status_check", ex.ConstraintName);
    }

    private async Task<Guid> TenantAsync() =>
        (Guid)(await Db.ScalarAsync("insert into public.tenants (name, timezone) values ($1, 'UTC') returning id", $"act-output-{Guid.NewGuid():N}"))!;

    private Task RunAsync(Guid tenant, string? actOutput) => Db.ExecuteAsync("""
        insert into public.agent_autonomous_runs (tenant_id, status, trigger, completed_at, act_output)
        values ($1, 'completed', 'manual', now(), $2::jsonb)
        """, tenant, (object?)actOutput ?? DBNull.Value);
}
