using System.Reflection;
using Hourglass.Cycles;
using Hourglass.Server.Cli;
using Hourglass.Simulation;

namespace Hourglass.Tests.Architecture;

/// <summary>
/// The product's assemblies keep their types internal and sealed (issue 16, as Polly does): the executable, the
/// simulator, the benchmarks and the tests see Core's internals through InternalsVisibleTo, so nothing needs to be
/// public; a class nobody derives from is sealed. A failure names each type and what to do.
/// <c>tools/internal-sealed.py</c> makes a folder's declarations internal and sealed mechanically.
/// </summary>
public sealed class InternalSealedTests
{
    private static readonly Assembly s_core = typeof(CycleEngine).Assembly;
    private static readonly Assembly s_server = typeof(StatusCommand).Assembly;
    private static readonly Assembly s_simulation = typeof(Simulator).Assembly;

    // Every assembly whose types could derive from the product's: the product's three and these tests.
    private static readonly Assembly[] s_derivers = [s_core, s_server, s_simulation, typeof(InternalSealedTests).Assembly];

    public static TheoryData<string> ProductAssemblies => ["Hourglass.Core", "hourglass", "Hourglass.Simulation"];

    [Theory]
    [MemberData(nameof(ProductAssemblies))]
    public void ProductAssembly_ExportsNoType(string assemblyName)
    {
        var found = TypeSurface.PublicTypes(Product(assemblyName), "Hourglass");
        Assert.True(found.Count == 0, $"{assemblyName} shows types to other assemblies:\n" + string.Join("\n", found));
    }

    [Theory]
    [MemberData(nameof(ProductAssemblies))]
    public void ProductAssembly_SealsEveryClassNothingDerivesFrom(string assemblyName)
    {
        var found = TypeSurface.UnsealedLeaves(Product(assemblyName), "Hourglass", s_derivers);
        Assert.True(found.Count == 0, $"{assemblyName} leaves classes open for deriving:\n" + string.Join("\n", found));
    }

    // The checks themselves, on this assembly's samples below: a public type and an open leaf class are each named,
    // a base class something derives from is not.

    [Fact]
    public void PublicTypes_SamplePublicType_IsNamedWithWhatToDo()
    {
        var found = TypeSurface.PublicTypes(typeof(InternalSealedTests).Assembly, "Hourglass.Tests.Architecture.SurfaceSamples");

        var finding = Assert.Single(found);
        Assert.StartsWith("Hourglass.Tests.Architecture.SurfaceSamples.ShownToAll is public: make it internal", finding, StringComparison.Ordinal);
    }

    [Fact]
    public void UnsealedLeaves_SampleOpenLeaf_IsNamedAndItsDerivedBaseIsNot()
    {
        var tests = typeof(InternalSealedTests).Assembly;

        var found = TypeSurface.UnsealedLeaves(tests, "Hourglass.Tests.Architecture.SurfaceSamples", [tests]);

        Assert.Equal(
            [
                "Hourglass.Tests.Architecture.SurfaceSamples.OpenLeaf is not sealed and nothing derives from it: declare it sealed",
                "Hourglass.Tests.Architecture.SurfaceSamples.ShownToAll is not sealed and nothing derives from it: declare it sealed",
            ],
            found);
    }

    private static Assembly Product(string name) =>
        new[] { s_core, s_server, s_simulation }.Single(a => a.GetName().Name == name);
}
