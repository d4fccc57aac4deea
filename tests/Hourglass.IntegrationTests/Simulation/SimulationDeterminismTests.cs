using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Simulation;

namespace Hourglass.IntegrationTests.Simulation;

/// <summary>The same seed gives the same report, each run in a database of its own; another seed gives another.</summary>
public sealed class SimulationDeterminismTests : IAsyncLifetime
{
    private static readonly SimulationOptions s_world = SimulationTests.SmallWorld with { Tenants = 2, ContactsPerTenant = 120, Days = 6 };
    private readonly DatabaseFixture _first = new();
    private readonly DatabaseFixture _second = new();
    private readonly DatabaseFixture _third = new();

    public async Task InitializeAsync()
    {
        await _first.InitializeAsync();
        await _second.InitializeAsync();
        await _third.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        await _first.DisposeAsync();
        await _second.DisposeAsync();
        await _third.DisposeAsync();
    }

    [Fact]
    public async Task Run_SameSeedTwice_SameReport_OtherSeed_OtherReport()
    {
        var first = await new Simulator(s_world, _first.DataSource).RunAsync();
        var second = await new Simulator(s_world, _second.DataSource).RunAsync();
        var other = await new Simulator(s_world with { Seed = s_world.Seed + 1 }, _third.DataSource).RunAsync();

        Assert.True(first.Days.Sum(d => d.Messages) > 0 && first.Days.Sum(d => d.Replies) > 0, "the run must have done something to compare");
        Assert.Equal(first.DeterministicJson(), second.DeterministicJson());
        Assert.NotEqual(first.DeterministicJson(), other.DeterministicJson());
        Assert.NotNull(first.Timing);
    }
}
