// Samples for NamespaceLayersTests: a lower namespace that uses a higher one, and two parts that use each other.

namespace Hourglass.Tests.Architecture.Samples.High
{
    public sealed class Top
    {
        public int Value { get; init; }
    }
}

namespace Hourglass.Tests.Architecture.Samples.Low
{
    public static class UsesHigh
    {
        public static int Read(High.Top top) => top.Value;
    }
}

namespace Hourglass.Tests.Architecture.Samples.PartA
{
    public static class UsesB
    {
        public static int Read(PartB.UsesA b) => b.Value;
    }
}

namespace Hourglass.Tests.Architecture.Samples.PartB
{
    public sealed class UsesA
    {
        public int Value { get; init; }

        public static int Call() => PartA.UsesB.Read(new UsesA());
    }
}

// Samples for InternalSealedTests: a public type, an open class nothing derives from, a base class and its sealed child.

namespace Hourglass.Tests.Architecture.SurfaceSamples
{
#pragma warning disable CA1852 // open on purpose: the samples the checks must name
    public class ShownToAll;

    internal class OpenLeaf;

    internal class DerivedFrom;
#pragma warning restore CA1852

    internal sealed class Child : DerivedFrom;
}
