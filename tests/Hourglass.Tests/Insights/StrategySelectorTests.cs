using System.Text.Json.Nodes;
using Hourglass.Insights;

namespace Hourglass.Tests.Insights;

public sealed class StrategySelectorTests
{
    [Fact]
    public void Choose_SameSeed_SameChoice_DifferentSeeds_Vary()
    {
        var strategies = new[] { Make("a", 5, 2), Make("b", 5, 3), Make("c", 5, 2) };

        var first = Enumerable.Range(0, 50).Select(i => StrategySelector.Choose(strategies, new Random(i))!.Strategy.Key).ToList();
        var again = Enumerable.Range(0, 50).Select(i => StrategySelector.Choose(strategies, new Random(i))!.Strategy.Key).ToList();

        Assert.Equal(first, again);
        Assert.Equal(3, first.Distinct().Count());
    }

    [Fact]
    public void SeedFor_DependsOnPartsOnly()
    {
        var tenant = Guid.Parse("6d3c1f4e-0000-4000-8000-000000000001");
        var hour = new DateTimeOffset(2026, 1, 5, 9, 0, 0, TimeSpan.Zero);

        Assert.Equal(StrategySelector.SeedFor(tenant, hour, 7), StrategySelector.SeedFor(tenant, hour.ToOffset(TimeSpan.FromHours(2)), 7));
        Assert.NotEqual(StrategySelector.SeedFor(tenant, hour, 7), StrategySelector.SeedFor(tenant, hour.AddHours(1), 7));
    }

    [Theory]
    [InlineData(2.0, 5.0)]
    [InlineData(30.0, 10.0)]
    [InlineData(0.5, 0.5)]
    public void SampleBeta_MeanAndVarianceMatchTheDistribution(double alpha, double beta)
    {
        var random = new Random(11);
        var draws = Enumerable.Range(0, 40_000).Select(_ => StrategySelector.SampleBeta(alpha, beta, random)).ToArray();

        var mean = draws.Average();
        var variance = draws.Select(d => (d - mean) * (d - mean)).Average();
        var expectedMean = alpha / (alpha + beta);
        var expectedVariance = alpha * beta / ((alpha + beta) * (alpha + beta) * (alpha + beta + 1));
        Assert.InRange(mean, expectedMean - 0.01, expectedMean + 0.01);
        Assert.InRange(variance, expectedVariance * 0.9, expectedVariance * 1.1);
        Assert.All(draws, d => Assert.InRange(d, 0.0, 1.0));
    }

    [Fact]
    public void Simulation_ThreeArms_ConvergesToTheBest_ExplorationKeepsTheOthersAlive()
    {
        // True success rates; the bandit only sees outcomes.
        var rates = new Dictionary<string, double>(StringComparer.Ordinal) { ["call"] = 0.10, ["email"] = 0.25, ["linkedin"] = 0.18 };
        var counts = rates.Keys.ToDictionary(k => k, _ => (Usage: 0, Success: 0), StringComparer.Ordinal);
        var world = new Random(3);
        var lastThousand = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var round = 0; round < 5_000; round++)
        {
            var strategies = counts.Select(c => Make(c.Key, c.Value.Usage, c.Value.Success)).ToList();
            var key = StrategySelector.Choose(strategies, new Random(StrategySelector.SeedFor("sim", round)))!.Strategy.Key;
            var success = world.NextDouble() < rates[key];
            counts[key] = (counts[key].Usage + 1, counts[key].Success + (success ? 1 : 0));
            if (round >= 4_000)
            {
                lastThousand[key] = lastThousand.GetValueOrDefault(key) + 1;
            }
        }

        Assert.True(lastThousand["email"] >= 850, $"best arm chosen {lastThousand["email"]} of the last 1000");
        // The exploration floor: every arm is still tried now and then.
        Assert.All(rates.Keys, k => Assert.True(counts[k].Usage >= 50, $"{k} used {counts[k].Usage} times"));
    }

    [Fact]
    public void Choose_NoStrategies_Null() => Assert.Null(StrategySelector.Choose([], new Random(1)));

    [Fact]
    public void Matches_EveryNamedFacetMustMatch_ValueOrArray()
    {
        var strategy = Make("s", 0, 0, """{"entity_type": "contact", "tier": ["strategic", "growth"]}""");

        Assert.True(strategy.Matches(Facts("contact", "growth")));
        Assert.False(strategy.Matches(Facts("account", "growth")));
        Assert.False(strategy.Matches(Facts("contact", "smb")));
        Assert.False(strategy.Matches(Facts("contact", null)));
        Assert.True(Make("any", 0, 0).Matches(Facts("account", null)));
    }

    private static Dictionary<string, string?> Facts(string entityType, string? tier) =>
        new(StringComparer.Ordinal) { ["entity_type"] = entityType, ["tier"] = tier };

    private static Strategy Make(string key, int usage, int success, string appliesTo = "{}") =>
        new(key, key, JsonNode.Parse(appliesTo)!.AsObject(), new JsonObject { ["kind"] = "touch_task" }, usage, success);
}
