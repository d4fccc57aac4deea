using System.Reflection;
using NetArchTest.Rules;

namespace Hourglass.Tests.Architecture;

/// <summary>
/// A layering of namespaces, lowest first: a namespace may depend on namespaces of its own layer and of lower layers,
/// never on a higher one, and the namespaces of one layer must not depend on each other in a cycle. Dependencies are
/// read from the compiled assembly (NetArchTest), so a fully qualified name or a <c>global using</c> is caught too.
/// </summary>
internal sealed class NamespaceLayers(params string[][] layers)
{
    private readonly string[][] _layers = layers;

    /// <summary>The layer that holds <paramref name="ns"/> (a namespace or one nested in it), or -1.</summary>
    public int LayerOf(string ns)
    {
        for (var i = 0; i < _layers.Length; i++)
        {
            if (_layers[i].Any(n => ns == n || ns.StartsWith(n + ".", StringComparison.Ordinal)))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>"Type → namespace" for every type of a layer that depends on a namespace of a higher layer.</summary>
    public IReadOnlyList<string> UpwardDependencies(Assembly assembly)
    {
        var found = new List<string>();
        for (var low = 0; low < _layers.Length; low++)
        {
            foreach (var from in _layers[low])
            {
                foreach (var to in _layers.Skip(low + 1).SelectMany(l => l))
                {
                    found.AddRange(Dependents(assembly, from, to).Select(type => $"{type} (layer of {from}) depends on {to}, a higher layer"));
                }
            }
        }

        return found;
    }

    /// <summary>Each dependency cycle among the namespaces of one layer, with a type behind every edge.</summary>
    public IReadOnlyList<string> Cycles(Assembly assembly)
    {
        var cycles = new List<string>();
        foreach (var layer in _layers)
        {
            var edges = new Dictionary<(string From, string To), string>();
            foreach (var from in layer)
            {
                foreach (var to in layer.Where(n => n != from))
                {
                    if (Dependents(assembly, from, to).FirstOrDefault() is { } type)
                    {
                        edges[(from, to)] = type;
                    }
                }
            }

            foreach (var cycle in FindCycles(layer, edges.Keys))
            {
                var steps = cycle.Zip(cycle.Skip(1).Append(cycle[0]), (a, b) => $"{a} → {b} ({edges[(a, b)]})");
                cycles.Add(string.Join(", ", steps));
            }
        }

        return cycles;
    }

    /// <summary>The namespaces of <paramref name="assembly"/>'s types that no layer names (besides the root namespace).</summary>
    public IReadOnlyList<string> Unlayered(Assembly assembly, string root) =>
        assembly.GetTypes()
            .Select(t => t.Namespace)
            .OfType<string>()
            .Where(ns => ns != root && ns.StartsWith(root + ".", StringComparison.Ordinal) && LayerOf(ns) < 0)
            .Distinct()
            .Order(StringComparer.Ordinal)
            .ToList();

    // Types of `from` (and its nested namespaces) that depend on `to`; compiler-generated types are named by the type
    // that declares them, so a lambda's closure reports the method's class.
    private static IEnumerable<string> Dependents(Assembly assembly, string from, string to)
    {
        var result = Types.InAssembly(assembly).That().ResideInNamespace(from).ShouldNot().HaveDependencyOn(to).GetResult();
        return result.IsSuccessful
            ? []
            : (result.FailingTypeNames ?? []).Select(name => name.Split('/')[0].Split('+')[0]).Distinct().Order(StringComparer.Ordinal);
    }

    // Elementary cycles, each reported once starting from its smallest node (small graphs: a depth-first search per node).
    internal static IReadOnlyList<IReadOnlyList<string>> FindCycles(IReadOnlyList<string> nodes, IEnumerable<(string From, string To)> edges)
    {
        var next = edges.GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).Order(StringComparer.Ordinal).ToList());
        var cycles = new List<IReadOnlyList<string>>();
        foreach (var start in nodes.Order(StringComparer.Ordinal))
        {
            var path = new List<string> { start };
            Walk(start);

            void Walk(string node)
            {
                foreach (var to in next.GetValueOrDefault(node) ?? [])
                {
                    if (to == start)
                    {
                        cycles.Add(path.ToList());
                    }
                    else if (string.CompareOrdinal(to, start) > 0 && !path.Contains(to))
                    {
                        path.Add(to);
                        Walk(to);
                        path.RemoveAt(path.Count - 1);
                    }
                }
            }
        }

        return cycles;
    }
}
