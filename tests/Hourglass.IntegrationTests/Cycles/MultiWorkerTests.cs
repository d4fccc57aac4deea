using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cycles;

/// <summary>Several workers share the tenants through PostgreSQL alone: every hour once, never twice at once.</summary>
public sealed class MultiWorkerTests : DatabaseTest
{
    private static readonly DateTimeOffset s_start = new(2026, 9, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task ThreeWorkers_200Tenants_24Hours_EachTenantExactly24RunsNeverConcurrent()
    {
        await CycleHarness.EnsureSideEffectTableAsync(Db);
        var h = new CycleHarness(Database, s_start);
        await h.SetTimeAsync(s_start);
        await Db.ExecuteAsync("""
            insert into public.tenants (name) select 'tenant ' || n from generate_series(1, 200) n;
            update public.agent_tenant_schedules set next_due_at = $1;
            """.Replace("$1", "'2026-09-01 01:00:00+00'", StringComparison.Ordinal));
        var tenants = (Guid[])(await Db.ScalarAsync("select array_agg(id) from public.tenants"))!;
        foreach (var tenant in tenants)
        {
            h.Part.Targets[tenant] = [tenant];
        }

        var workers = new[] { h.Worker("w1"), h.Worker("w2"), h.Worker("w3") };
        for (var hour = 1; hour <= 24; hour++)
        {
            await h.SetTimeAsync(s_start.AddHours(hour).AddSeconds(1));
            // Each worker keeps passing until it finds nothing due; all three race for the same tenants.
            await Task.WhenAll(workers.Select(w => Task.Run(async () =>
            {
                while (await w.RunOnceAsync(default) > 0)
                {
                }
            })));
        }

        Assert.Equal(1, h.Handler.MaxConcurrentPerTenant);
        var perTenant = await CountsAsync("""
            select count(*) filter (where status = 'completed' and trigger = 'schedule'), count(*), count(distinct scheduled_for)
            from public.agent_autonomous_runs group by tenant_id
            """);
        Assert.Equal(200, perTenant.Count);
        Assert.All(perTenant, c => Assert.Equal((24L, 24L, 24L), c));
        Assert.Equal(200L * 24, await Db.ScalarAsync("select count(*) from public.test_side_effects"));
        Assert.Equal(200L * 24, await Db.ScalarAsync("select count(*) from public.agent_hourly_reflections"));
        var byWorker = (long[])(await Db.ScalarAsync(
            "select array_agg(n order by worker_id) from (select worker_id, count(*) n from public.agent_autonomous_runs group by worker_id) w"))!;
        Assert.Equal(3, byWorker.Length);
        Assert.All(byWorker, n => Assert.True(n > 0));
    }

    private async Task<List<(long, long, long)>> CountsAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<(long, long, long)>();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2)));
        }

        return rows;
    }
}
