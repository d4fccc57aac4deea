using System.Reflection;
using System.Runtime.CompilerServices;

namespace Hourglass.Tests.Architecture;

/// <summary>
/// What an assembly shows to others and what it leaves open for deriving: the checks behind
/// <see cref="InternalSealedTests"/>, kept apart so they can be run on this assembly's samples.
/// </summary>
internal static class TypeSurface
{
    /// <summary>The types of <paramref name="assembly"/> in <paramref name="namespacePrefix"/> another assembly can see.</summary>
    public static IReadOnlyList<string> PublicTypes(Assembly assembly, string namespacePrefix) =>
        [.. assembly.GetExportedTypes()
            .Where(t => InNamespace(t, namespacePrefix))
            .Select(t => $"{t.FullName} is public: make it internal (the product's other assemblies and the tests see internals through InternalsVisibleTo); if another assembly really needs it public, say why in InternalSealedTests' list")
            .Order(StringComparer.Ordinal)];

    /// <summary>
    /// The classes and records of <paramref name="assembly"/> in <paramref name="namespacePrefix"/> that are neither
    /// sealed, static nor abstract while no type of <paramref name="derivers"/> derives from them.
    /// </summary>
    public static IReadOnlyList<string> UnsealedLeaves(Assembly assembly, string namespacePrefix, IEnumerable<Assembly> derivers)
    {
        var bases = new HashSet<Type>();
        foreach (var type in derivers.SelectMany(Types))
        {
            for (var b = type.BaseType; b is not null; b = b.BaseType)
            {
                bases.Add(b.IsGenericType ? b.GetGenericTypeDefinition() : b);
            }
        }
        return [.. Types(assembly)
            .Where(t => InNamespace(t, namespacePrefix) && t.IsClass && !t.IsSealed && !t.IsAbstract && !bases.Contains(t))
            .Select(t => $"{t.FullName} is not sealed and nothing derives from it: declare it sealed")
            .Order(StringComparer.Ordinal)];
    }

    private static bool InNamespace(Type type, string prefix) =>
        type.Namespace is { } ns && (ns == prefix || ns.StartsWith(prefix + ".", StringComparison.Ordinal));

    // The types the source declares: not the compiler's closures, state machines and generated helpers.
    private static IEnumerable<Type> Types(Assembly assembly) =>
        assembly.GetTypes().Where(t =>
            !t.Name.Contains('<', StringComparison.Ordinal)
            && !t.IsDefined(typeof(CompilerGeneratedAttribute), inherit: false)
            && (t.DeclaringType is null || !t.DeclaringType.IsDefined(typeof(CompilerGeneratedAttribute), inherit: false)));
}
