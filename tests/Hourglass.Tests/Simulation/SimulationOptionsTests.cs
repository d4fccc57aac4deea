using Hourglass.Simulation;

namespace Hourglass.Tests.Simulation;

/// <summary>The simulator's options refuse an impossible world, naming each option and its range.</summary>
public sealed class SimulationOptionsTests
{
    [Theory]
    [InlineData("ContactsPerTenant", 0, "--contacts must be between 1 and 100000 (got 0)")]
    [InlineData("Tenants", 0, "--tenants must be between 1 and 100 (got 0)")]
    [InlineData("Days", 0, "--days must be between 1 and 366 (got 0)")]
    [InlineData("EmailDailyCap", -1, "--email-daily-cap must be between 0 and 1000000 (got -1)")]
    [InlineData("ContactWeeklyCap", -3, "--contact-weekly-cap must be between 0 and 1000 (got -3)")]
    [InlineData("Concurrency", 0, "--concurrency must be between 1 and 64 (got 0)")]
    public void Validate_ImpossibleWorld_RefusedNamingTheOption(string property, int value, string expected)
    {
        var options = property switch
        {
            "ContactsPerTenant" => new SimulationOptions { ContactsPerTenant = value },
            "Tenants" => new SimulationOptions { Tenants = value },
            "Days" => new SimulationOptions { Days = value },
            "EmailDailyCap" => new SimulationOptions { EmailDailyCap = value },
            "ContactWeeklyCap" => new SimulationOptions { ContactWeeklyCap = value },
            _ => new SimulationOptions { Concurrency = value },
        };

        var error = Assert.Throws<HourglassException>(options.Validate);

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.StartsWith("impossible world: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_SeveralProblems_EveryOneNamed()
    {
        var options = new SimulationOptions { FixableShare = 0.8, UnfixableShare = 0.5, Start = new DateTimeOffset(2026, 1, 5, 0, 30, 0, TimeSpan.Zero) };

        var problems = options.Problems();

        Assert.Contains(problems, p => p.StartsWith("--fixable-share + --unfixable-share must be at most 1", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("--start must be a whole hour in UTC", StringComparison.Ordinal));
        Assert.Throws<HourglassException>(() => new Simulator(options, null!));
    }

    [Fact]
    public void Validate_Defaults_Accepted() => Assert.Empty(new SimulationOptions().Problems());
}
