using System.Text.Json.Nodes;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Simulation;

namespace Hourglass.IntegrationTests.Simulation;

/// <summary>
/// A small world through the real cycle engine, outbox and database: the goals' invariants hold (compliance after the
/// warm-up, no cap exceeded, fixable orders fixed and no unfixable one released, every cycle completed), what the
/// report says agrees with the database, and a run refuses a database that is not empty.
/// </summary>
public sealed class SimulationTests : DatabaseTest
{
    // Two tenants (the second approves every message), 28 days: vacations, two holidays each, and a compliance goal
    // from day 14.
    internal static readonly SimulationOptions SmallWorld = new()
    {
        Seed = 11, Tenants = 2, ContactsPerTenant = 240, ContactsPerAccount = 8, Days = 28, OwnersPerTenant = 4, EmailDailyCap = 40,
        ApprovalEveryNthTenant = 2, MeanDaysBetweenOrders = 8, Concurrency = 1,
    };

    [Fact]
    public async Task Run_SmallWorld_InvariantsOfTheGoalsHold()
    {
        var report = await new Simulator(SmallWorld, DataSource).RunAsync();

        // Compliance: the world starts with a backlog, which is gone by day 14 and stays gone.
        Assert.True(report.Compliance.StartShare > 0.05, $"the world should start with a backlog (got {report.Compliance.StartShare:P1})");
        Assert.Equal(14, report.Compliance.FromDay);
        Assert.True(report.Compliance.WorstShare <= 0.01, $"overdue share reached {report.Compliance.WorstShare:P2} after day 14 ({report.Compliance.OverdueClockHours})");
        Assert.Equal(0, report.Compliance.HoursOverGoal);
        Assert.Equal(SmallWorld.Hours, report.Compliance.Hourly.Count);

        // Caps: never exceeded, and the cap was really approached (the check is not vacuous), sends only in the window.
        Assert.InRange(report.Caps.EmailPeak24h, SmallWorld.EmailDailyCap / 2, SmallWorld.EmailDailyCap);
        Assert.InRange(report.Caps.ContactPeak7d, 1, SmallWorld.ContactWeeklyCap);
        Assert.Equal(0, report.Caps.SentOutsideWindow);

        // Orders: enough of each kind to mean something; every fixable one fixed, no unfixable one released.
        Assert.True(report.Orders.Fixable >= 20 && report.Orders.Unfixable >= 10, $"{report.Orders.Fixable} fixable, {report.Orders.Unfixable} unfixable");
        Assert.True(report.Orders.FixableAutoResolved >= 0.9 * report.Orders.Fixable, $"{report.Orders.FixableAutoResolved} of {report.Orders.Fixable}");
        Assert.Equal(0, report.Orders.UnfixableReleased);
        Assert.Equal(report.Orders.Unfixable, report.Orders.UnfixableExceptions + report.Orders.Unprocessed);

        // Cycles: one per tenant per hour, none failed; the approving tenant's messages were approved by people.
        Assert.Equal(SmallWorld.Tenants * SmallWorld.Hours, report.Cycles.Runs.Values.Sum());
        Assert.Equal(SmallWorld.Tenants * SmallWorld.Hours, report.Cycles.Runs.GetValueOrDefault("completed"));
        Assert.True(report.Cycles.ApprovalsGranted > 0, "the second tenant approves every message: approvals were expected");

        // Strategies: the agent learned — the chosen strategies' true rate is close to the best one's.
        Assert.True(report.Strategies.ChosenToBestRatio >= 0.85, $"chosen/best = {report.Strategies.ChosenToBestRatio:P1}");
        Assert.All(report.Goals.Where(g => g.Key != "strategies"), g => Assert.True(g.Met, $"{g.Key}: {g.Reached}"));

        // What the report says agrees with the database.
        var sent = (long)(await Db.ScalarAsync("select count(*) from public.message_outbox where status = 'sent'"))!;
        Assert.Equal(sent, report.Days.Sum(d => (long)d.Messages));
        var agentTouches = (long)(await Db.ScalarAsync("select count(*) from public.warehouse_events where event_type = 'touch' and source = 'agent'"))!;
        Assert.Equal(sent, agentTouches);
        Assert.Null(await Db.ScalarAsync("select frozen_at from hourglass.clock_override"));
    }

    [Fact]
    public async Task Run_DatabaseWithTenants_RefusedBeforeAnythingRuns()
    {
        await Db.CreateTenantAsync("someone else's");

        var error = await Assert.ThrowsAsync<HourglassException>(() => new Simulator(SmallWorld with { Days = 1 }, DataSource).RunAsync());

        Assert.Contains("simulate needs an empty database: this one has 1 tenant(s)", error.Message, StringComparison.Ordinal);
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.tenants"));
    }

    [Fact]
    public void Report_Html_HasEveryChartAndGoal()
    {
        var report = SimulationReportSamples.Tiny();

        var html = SimulationHtml.Render(report);

        Assert.Equal(2, CountOf(html, "<svg "));
        foreach (var goal in report.Goals)
        {
            Assert.Contains(goal.Description, html, StringComparison.Ordinal);
        }

        Assert.Contains("<td class=\"missed\">missed</td>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(report.Settings.Seed, (long)JsonNode.Parse(report.ToJson())!["settings"]!["seed"]!);
    }

    private static int CountOf(string text, string part) => (text.Length - text.Replace(part, "", StringComparison.Ordinal).Length) / part.Length;
}

/// <summary>A hand-made report, for the renderers.</summary>
internal static class SimulationReportSamples
{
    public static SimulationReport Tiny() => new(
        new SimulationSettings(5, 1, 10, 5, 2, new DateTimeOffset(2026, 1, 5, 0, 0, 0, TimeSpan.Zero), 1, 5, 10, 2, 0, 0.2, 0.1, 30, 0.004, 1),
        [new TenantSummary("T", "UTC", false, 2, 10, 3, ["2026-01-06"])],
        [new SimulationGoal("compliance", "overdue share", "<= 1%", "0.50 %", true), new SimulationGoal("caps", "caps", "<= 10", "12", false)],
        new ComplianceResult(1, 0.1, 0.005, 0.005, 0, new OverdueCauses(1, 0, 0, 0), [new HourPoint(0, 0.1, 0.1, 1), new HourPoint(1, 0.005, 0.005, 0)]),
        new CapResult(10, 12, 12, 2, 1, 0),
        [new DayPoint(0, 3, 1, 0, 1, 2), new DayPoint(1, 4, 0, 1, 2, 1)],
        new OrderResult(2, 2, 1, 1, 0, 0, 0, 0, 0, [new DefectRow("None", 2, 2, 0, 0, 0)]),
        new StrategyResult(1, 0.95, 0.3, 7, [new TenantStrategies("T", [new StrategyRow("idea-email", 0.3, 5, 3, 5, 2, 0.43m)], "idea-email", 0.3, 0.3, 1, 3, 0.33)]),
        new CycleOutcomes(new SortedDictionary<string, long> { ["completed"] = 48 }, 0, 0, new SortedDictionary<string, long>()),
        new InboundResult(new SortedDictionary<string, long> { ["reply"] = 3 }, new SortedDictionary<string, long> { ["reply: recorded, touch_recorded"] = 3 }, 0, 0, 3, 3),
        null);
}
