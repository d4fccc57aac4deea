using Hourglass.Cycles;

namespace Hourglass.Tests.Architecture;

/// <summary>
/// Core's namespaces form a DAG: the parts (Engagement, Orders, Insights, Policies) sit on Cycles, Cycles on Storage,
/// and Composition, Simulation and Demo on top of them all (issue 16). A failure names the type and the dependency.
/// </summary>
public sealed class NamespaceLayersTests
{
    private static readonly NamespaceLayers s_core = new(
        ["Hourglass.Storage"],
        // Shared by every part: the import pipeline and the host CRM's own tables (tenants, members, accounts, contacts).
        ["Hourglass.Imports", "Hourglass.Tenancy"],
        ["Hourglass.Cycles"],
        ["Hourglass.Engagement", "Hourglass.Orders", "Hourglass.Insights", "Hourglass.Policies"],
        ["Hourglass.Composition", "Hourglass.Simulation", "Hourglass.Demo"]);

    private static readonly System.Reflection.Assembly s_assembly = typeof(CycleEngine).Assembly;

    [Fact]
    public void CoreNamespaces_DependOnlyOnLowerLayers()
    {
        var found = s_core.UpwardDependencies(s_assembly);
        Assert.True(found.Count == 0,
            "A lower namespace depends on a higher one (move the type up, or give the lower layer an interface the higher one implements):\n"
            + string.Join("\n", found));
    }

    [Fact]
    public void Parts_DependOnEachOtherWithoutCycles()
    {
        var found = s_core.Cycles(s_assembly);
        Assert.True(found.Count == 0,
            "Namespaces of one layer depend on each other in a cycle (break it with an interface in Cycles, or move the shared type down):\n"
            + string.Join("\n", found));
    }

    [Fact]
    public void CoreNamespaces_AreAllInALayer()
    {
        var found = s_core.Unlayered(s_assembly, "Hourglass");
        Assert.True(found.Count == 0, "Namespaces in no layer (add each to NamespaceLayersTests' layers): " + string.Join(", ", found));
    }

    // The checks themselves, on this assembly's samples below: a type that depends upwards and a cycle are both named.

    [Fact]
    public void UpwardDependencies_SampleLowUsesHigh_NamesTheTypeAndTheNamespace()
    {
        var layers = new NamespaceLayers(["Hourglass.Tests.Architecture.Samples.Low"], ["Hourglass.Tests.Architecture.Samples.High"]);

        var found = layers.UpwardDependencies(typeof(NamespaceLayersTests).Assembly);

        var violation = Assert.Single(found);
        Assert.Contains("Hourglass.Tests.Architecture.Samples.Low.UsesHigh", violation, StringComparison.Ordinal);
        Assert.Contains("depends on Hourglass.Tests.Architecture.Samples.High", violation, StringComparison.Ordinal);
    }

    [Fact]
    public void Cycles_SamplePartsUseEachOther_NamesTheCycleAndItsTypes()
    {
        var layers = new NamespaceLayers(["Hourglass.Tests.Architecture.Samples.PartA", "Hourglass.Tests.Architecture.Samples.PartB",
            "Hourglass.Tests.Architecture.Samples.Low"]);

        var cycle = Assert.Single(layers.Cycles(typeof(NamespaceLayersTests).Assembly));

        Assert.Equal(
            "Hourglass.Tests.Architecture.Samples.PartA → Hourglass.Tests.Architecture.Samples.PartB (Hourglass.Tests.Architecture.Samples.PartA.UsesB), "
            + "Hourglass.Tests.Architecture.Samples.PartB → Hourglass.Tests.Architecture.Samples.PartA (Hourglass.Tests.Architecture.Samples.PartB.UsesA)",
            cycle);
    }

    [Fact]
    public void FindCycles_ChainWithoutBackEdge_FindsNone()
    {
        Assert.Empty(NamespaceLayers.FindCycles(["a", "b", "c"], [("a", "b"), ("b", "c"), ("a", "c")]));
        Assert.Single(NamespaceLayers.FindCycles(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")]));
    }
}
