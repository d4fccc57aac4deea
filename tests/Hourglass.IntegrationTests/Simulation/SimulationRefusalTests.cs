using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Simulation;

namespace Hourglass.IntegrationTests.Simulation;

/// <summary>
/// Simulated people meet refusals as real ones do: a manager deciding an approval whose card expired meanwhile gets the
/// database's "is expired, not open" (SQLSTATE 55000), which is recorded and counted, and the run goes on.
/// </summary>
public sealed class SimulationRefusalTests : DatabaseTest
{
    [Fact]
    public async Task Run_ApprovalCardsExpireBeforeTheManagerDecides_RefusalsCountedAndTheRunContinues()
    {
        // One tenant (New York) approving every message, three days: its manager works 14:00–22:00 UTC on weekdays.
        var world = SimulationTests.SmallWorld with { Tenants = 1, ContactsPerTenant = 120, Days = 3, ApprovalEveryNthTenant = 1 };
        var expired = 0;
        var simulator = new Simulator(world, DataSource)
        {
            // In the first working hours, every open approval expires just before the manager looks at the cards.
            BeforePeopleAct = async (hour, _, _) =>
            {
                if (hour is >= 14 and < 17)
                {
                    expired += await Db.ExecuteAsync(
                        "update public.cards set due_at = hourglass.now() - interval '1 minute' where kind = 'approval' and status = 'open'");
                }
            },
        };

        var report = await simulator.RunAsync();

        // The run reached its end, and the manager met refusals (about half the expired cards are looked at each hour).
        Assert.True(expired > 0, "approval cards were expected to be open in the first working hours");
        Assert.Equal(world.Tenants * world.Hours, report.Cycles.Runs.GetValueOrDefault("completed"));
        var refused = report.Cycles.RefusedDecisions.GetValueOrDefault("decide_approval: expired");
        Assert.InRange(refused, 1, expired);
        Assert.Equal(["decide_approval: expired"], report.Cycles.RefusedDecisions.Keys);

        // A refused decision is not counted as a decision: the report's approvals are exactly the database's decided cards,
        // and later approvals (not expired) were still decided.
        var decided = (long)(await Db.ScalarAsync("select count(*) from public.cards where kind = 'approval' and payload ? 'approval'"))!;
        Assert.Equal(decided, report.Cycles.ApprovalsGranted + report.Cycles.ApprovalsRejected);
        Assert.True(decided > 0, "approvals after the expiring hours should have been decided");
        var expiredCards = (long)(await Db.ScalarAsync("select count(*) from public.cards where kind = 'approval' and status = 'expired'"))!;
        Assert.True(expiredCards >= refused, $"{expiredCards} expired cards, {refused} refusals");
    }
}
