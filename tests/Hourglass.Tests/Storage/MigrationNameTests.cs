using System.Text.RegularExpressions;
using Hourglass.Storage;

namespace Hourglass.Tests.Storage;

/// <summary>
/// A migration is named after what it changes (<c>clock_keeps_latest_touch</c>), never after the work that made it
/// (<c>insights_speed</c>, <c>simulation_findings</c>): the name is how a reader finds where a table or function changed.
/// Migrations up to 20251229500100 keep their names (they are applied on deployed databases).
/// </summary>
public sealed partial class MigrationNameTests
{
    /// <summary>The last migration named before the rule; its name and its elders' stay.</summary>
    public const string LastUnruledVersion = "20251229500100";

    /// <summary>Words that name work, not a change of the schema.</summary>
    public static readonly IReadOnlyList<string> WorkWords =
    [
        "speed", "speedup", "perf", "performance", "faster", "optimise", "optimize", "optimisation", "optimization",
        "findings", "fix", "fixes", "bugfix", "hotfix", "misc", "wip", "followup", "cleanup", "tweak", "tweaks", "stuff", "todo",
    ];

    [Fact]
    public void NewMigrations_AreNamedAfterWhatTheyChange()
    {
        var offenders = MigrationSource.Embedded()
            .Where(m => string.CompareOrdinal(m.Version, LastUnruledVersion) > 0)
            .Select(m => (m.FileName, Words: WorkWordsIn(m.Name)))
            .Where(m => m.Words.Count > 0)
            .Select(m => $"{m.FileName} (\"{string.Join("\", \"", m.Words)}\")")
            .ToList();

        Assert.True(offenders.Count == 0,
            "migrations named after the work instead of what they change: " + string.Join(", ", offenders) +
            ". Rename each after the tables or functions it changes (e.g. <timestamp>_reflection_rollup_typed_run_array.sql); " +
            "see docs/development.md, 'Changing the schema'.");
    }

    [Theory]
    [InlineData("insights_speed", "speed")]
    [InlineData("simulation_findings", "findings")]
    [InlineData("order_fixes", "fixes")]
    [InlineData("misc_followup", "misc")]
    [InlineData("wip", "wip")]
    public void WorkWords_AreFound(string name, string word) => Assert.Contains(word, WorkWordsIn(name));

    [Theory]
    [InlineData("clock_keeps_latest_touch")]
    [InlineData("reflection_rollup_typed_run_array")]
    [InlineData("derived_column_guards_typed_empty_arrays")]
    [InlineData("event_frontier_unused_gap_timeout_marked")]
    [InlineData("outbox_suppression_and_order_claims_under_pause")]
    public void NamesOfChanges_Pass(string name) => Assert.Empty(WorkWordsIn(name));

    private static List<string> WorkWordsIn(string name) =>
        WordPattern().Split(name.ToLowerInvariant()).Where(w => WorkWords.Contains(w)).ToList();

    [GeneratedRegex("[^a-z0-9]+")]
    private static partial Regex WordPattern();
}
