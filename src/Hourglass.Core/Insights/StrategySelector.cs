using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Hourglass.Insights;

/// <summary>An active success strategy as the planner sees it: what it does, where it applies, and its record.</summary>
internal sealed record Strategy(string Key, string Name, JsonObject AppliesTo, JsonObject ActionTemplate, int UsageCount, int SuccessCount)
{
    /// <summary>The Beta posterior's parameters from a uniform prior: successes + 1, failures + 1.</summary>
    public (double Alpha, double Beta) Posterior => (SuccessCount + 1.0, Math.Max(UsageCount - SuccessCount, 0) + 1.0);

    /// <summary>The posterior mean, the effectiveness score.</summary>
    public double PosteriorMean => Posterior.Alpha / (Posterior.Alpha + Posterior.Beta);

    /// <summary>
    /// Whether the strategy applies to a target. <c>applies_to</c> maps a facet (entity_type, tier, segment,
    /// compliance_status) to one value or an array of values; every facet it names must match, and an empty
    /// object applies everywhere.
    /// </summary>
    public bool Matches(IReadOnlyDictionary<string, string?> facts)
    {
        foreach (var (facet, wanted) in AppliesTo)
        {
            facts.TryGetValue(facet, out var actual);
            var matches = wanted switch
            {
                JsonArray values => values.Any(v => v is JsonValue value && value.TryGetValue<string>(out var s) && s == actual),
                JsonValue value => value.TryGetValue<string>(out var s) && s == actual,
                _ => false,
            };
            if (!matches)
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>The strategy chosen for one target, and why.</summary>
internal sealed record StrategyChoice(Strategy Strategy, double Draw, bool Explored)
{
    public string Reason => Explored
        ? $"strategy '{Strategy.Key}' ({Strategy.SuccessCount}/{Strategy.UsageCount} succeeded; chosen at random to explore)"
        : $"strategy '{Strategy.Key}' ({Strategy.SuccessCount}/{Strategy.UsageCount} succeeded, mean {Strategy.PosteriorMean:0.00}, drew {Draw:0.00})";
}

/// <summary>
/// Chooses among strategies by Thompson sampling: one draw from each strategy's Beta posterior, the highest
/// wins — so a strategy is chosen about as often as it is likely to be the best. With probability
/// <c>explorationFloor</c> a uniformly random strategy is chosen instead, so none starves. Seeded: the same seed
/// gives the same choice, so a cycle's choices can be replayed (<see cref="SeedFor"/>).
/// </summary>
internal static class StrategySelector
{
    public const double DefaultExplorationFloor = 0.05;

    public static StrategyChoice? Choose(IReadOnlyList<Strategy> strategies, Random random, double explorationFloor = DefaultExplorationFloor)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(explorationFloor);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(explorationFloor, 1.0);
        if (strategies.Count == 0)
        {
            return null;
        }

        if (random.NextDouble() < explorationFloor)
        {
            var pick = strategies[random.Next(strategies.Count)];
            return new StrategyChoice(pick, pick.PosteriorMean, Explored: true);
        }

        StrategyChoice? best = null;
        foreach (var strategy in strategies)
        {
            var (alpha, beta) = strategy.Posterior;
            var draw = SampleBeta(alpha, beta, random);
            if (best is null || draw > best.Draw)
            {
                best = new StrategyChoice(strategy, draw, Explored: false);
            }
        }

        return best;
    }

    /// <summary>A seed that depends only on its parts (not on the process, as string hashes do).</summary>
    public static int SeedFor(params object[] parts)
    {
        var text = string.Join('|', parts.Select(p => p switch
        {
            DateTimeOffset d => d.UtcTicks.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => Convert.ToString(p, System.Globalization.CultureInfo.InvariantCulture),
        }));
        return BinaryPrimitives.ReadInt32LittleEndian(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>Beta(α, β) as X / (X + Y) with X ~ Gamma(α), Y ~ Gamma(β).</summary>
    public static double SampleBeta(double alpha, double beta, Random random)
    {
        var x = SampleGamma(alpha, random);
        var y = SampleGamma(beta, random);
        return x + y == 0 ? 0.5 : x / (x + y);
    }

    // Marsaglia and Tsang (2000), "A simple method for generating gamma variables", for shape ≥ 1; shape < 1 by
    // the boost Gamma(a) = Gamma(a + 1) · U^(1/a).
    private static double SampleGamma(double shape, Random random)
    {
        if (shape < 1)
        {
            return SampleGamma(shape + 1, random) * Math.Pow(1 - random.NextDouble(), 1 / shape);
        }

        var d = shape - 1.0 / 3;
        var c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do
            {
                x = SampleNormal(random);
                v = 1 + c * x;
            }
            while (v <= 0);

            v = v * v * v;
            var u = 1 - random.NextDouble();
            if (u < 1 - 0.0331 * x * x * x * x || Math.Log(u) < 0.5 * x * x + d * (1 - v + Math.Log(v)))
            {
                return d * v;
            }
        }
    }

    // Box–Muller.
    private static double SampleNormal(Random random)
    {
        var u1 = 1 - random.NextDouble();
        var u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
