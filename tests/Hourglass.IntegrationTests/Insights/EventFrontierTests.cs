using Hourglass.Insights;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Insights;

/// <summary>
/// The event frontier passes a gap only once every transaction that could still fill it has ended — however long that
/// takes.
/// </summary>
public sealed class EventFrontierTests : DatabaseTest
{
    private static readonly DateTimeOffset s_now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_now);
    }

    [Fact]
    public async Task Frontier_WriterHoldsItsNumberPastTheTimeout_NotPassedUntilItCommits_ThenItsEventIsRead()
    {
        var (tenant, account) = await TenantAsync("slow writer");
        var engine = new InsightsEngine(DataSource);
        var start = await AdvanceAsync(TimeSpan.FromSeconds(30));

        // An ingestion holds a number below a committed event; with a timeout of zero the old rule passed the gap at once.
        await using var slow = await DataSource.OpenConnectionAsync();
        await using var open = await slow.BeginTransactionAsync();
        var held = (long)(await TestDb.ScalarAsync(slow, open, """
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, occurred_at)
            values ($1, 'order_placed', 'account', $2, '{"total": 5}', $3) returning seq
            """, tenant, account, s_now.AddDays(-20)))!;
        await Db.ExecuteAsync("""
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, occurred_at)
            values ($1, 'order_placed', 'account', $2, '{"total": 5}', $3)
            """, tenant, account, s_now.AddDays(-10));

        var whileHeld = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            whileHeld.Add(await AdvanceAsync(TimeSpan.Zero));
        }

        var before = await engine.RunAsync(tenant);
        await open.CommitAsync();
        var after = await engine.RunAsync(tenant);

        Assert.Equal(start, held - 1);
        Assert.All(whileHeld, seq => Assert.Equal(held - 1, seq));
        Assert.Equal(0, before.EventsProcessed);
        Assert.Equal(2, after.EventsProcessed);
        Assert.Equal(held + 1, after.Frontier);
        Assert.Equal(10.0, (double)(decimal)(await Db.ScalarAsync(
            "select (pattern_data ->> 'mean_interval_days')::numeric from public.client_patterns where tenant_id = $1 and pattern_type = 'reorder_cadence'", tenant))!, 3);
    }

    [Fact]
    public async Task Frontier_NumbersOfARolledBackWriter_PassedAsSoonAsItEnds_WithoutWaitingOutTheTimeout()
    {
        var (tenant, account) = await TenantAsync("rollback");
        await AdvanceAsync(TimeSpan.FromSeconds(30));
        await using (var failed = await DataSource.OpenConnectionAsync())
        await using (var transaction = await failed.BeginTransactionAsync())
        {
            await TestDb.ExecuteAsync(failed, transaction, """
                insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, occurred_at) values ($1, 'order_placed', 'account', $2, $3)
                """, tenant, account, s_now.AddDays(-3));
            await transaction.RollbackAsync();
        }

        var last = (long)(await Db.ScalarAsync("""
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, occurred_at)
            values ($1, 'order_placed', 'account', $2, $3) returning seq
            """, tenant, account, s_now.AddDays(-2)))!;

        // The burned number's gap is seconds old, far inside the 30-second timeout: the frontier passes it because no
        // one who could fill it is writing.
        Assert.Equal(last, await AdvanceAsync(TimeSpan.FromSeconds(30)));
    }

    // The frontier where calls of advance_event_frontier with this timeout leave it (each call reads a bounded number
    // of events: called until it stops moving).
    private async Task<long> AdvanceAsync(TimeSpan timeout)
    {
        var previous = -1L;
        while (true)
        {
            var seq = (long)(await Db.ScalarAsync("select hourglass.advance_event_frontier($1)", timeout))!;
            if (seq == previous)
            {
                return seq;
            }

            previous = seq;
        }
    }

    private async Task<(Guid Tenant, Guid Account)> TenantAsync(string name)
    {
        var tenant = await Db.CreateTenantAsync(name);
        return (tenant, await Db.CreateAccountAsync(tenant, $"{name} account"));
    }
}
