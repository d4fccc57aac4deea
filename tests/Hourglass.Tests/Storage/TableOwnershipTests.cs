namespace Hourglass.Tests.Storage;

/// <summary>
/// One owner per table (issue 16): a table's name appears in SQL only in its owning part's store files, as the
/// map in docs/development.md lists them; so does a call of a SQL function a part owns. Fails naming each file:line,
/// the table or function, its owner and the store to move the SQL into.
/// </summary>
public sealed class TableOwnershipTests
{
    [Fact]
    public void SqlInSourceAndBenchmarks_NamesTablesOnlyInTheirOwnersStores()
    {
        var root = RepositoryRoot();
        var map = OwnershipMap.Parse(File.ReadAllText(Path.Combine(root, "docs", "development.md")));
        var notYetMoved = NotYetMoved.Read(Path.Combine(root, NotYetMoved.Path))
            .Concat(NotYetMoved.Read(Path.Combine(root, NotYetMoved.FunctionsPath)))
            .ToDictionary(e => e.Key, e => e.Value);

        var violations = OwnershipViolations(root, map);

        // Statements not moved yet are listed (file, table, how many); the list may only shrink.
        var byKey = violations.GroupBy(v => (v.File, v.Table)).ToDictionary(g => g.Key, g => g.ToList());
        var failures = new List<string>();
        foreach (var (key, found) in byKey)
        {
            var allowed = notYetMoved.GetValueOrDefault(key);
            if (found.Count > allowed)
            {
                failures.AddRange(found.Select(v => v.Message));
            }
        }

        foreach (var (key, allowed) in notYetMoved)
        {
            var found = byKey.GetValueOrDefault(key)?.Count ?? 0;
            if (found < allowed)
            {
                failures.Add($"{(key.Table.EndsWith("()", StringComparison.Ordinal) ? NotYetMoved.FunctionsPath : NotYetMoved.Path)}: {key.File} {key.Table} is listed {allowed} time(s) but named {found}: " +
                    "lower the count (or remove the line) so the list only shrinks");
            }
        }

        Assert.True(failures.Count == 0, $"""
            {failures.Count} SQL mention(s) of a table or call(s) of a function outside its owner's store (map: docs/development.md, "Where SQL goes"):
            {string.Join('\n', failures)}
            """);
    }

    [Fact]
    public void Map_ListsEveryTableOnceWithExistingStoreFiles()
    {
        var root = RepositoryRoot();
        var map = OwnershipMap.Parse(File.ReadAllText(Path.Combine(root, "docs", "development.md")));

        Assert.NotEmpty(map.Tables);
        var duplicates = map.Tables.GroupBy(t => t.Table, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key);
        Assert.Empty(duplicates);
        var missing = map.Tables.SelectMany(t => t.StoreFiles).Concat(map.Baselines.Select(b => b.File))
            .Where(f => !File.Exists(Path.Combine(root, f)));
        Assert.Empty(missing);
        Assert.All(map.Baselines, b => Assert.False(string.IsNullOrWhiteSpace(b.Reason), $"{b.File} needs a reason"));
    }

    [Fact]
    public void Map_ListsEveryFunctionOnceAsTheSchemaDefinesIt()
    {
        var root = RepositoryRoot();
        var map = OwnershipMap.Parse(File.ReadAllText(Path.Combine(root, "docs", "development.md")));
        var schema = File.ReadAllText(Path.Combine(root, "supabase", "schema.sql"));

        Assert.NotEmpty(map.Functions);
        Assert.All(map.Functions, f => Assert.True(f.IsFunction, $"{f.Table}: write a function as schema.name()"));
        Assert.Empty(map.Functions.GroupBy(f => f.Table, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key));
        Assert.DoesNotContain(map.Functions.SelectMany(f => f.StoreFiles), f => !File.Exists(Path.Combine(root, f)));
        Assert.DoesNotContain(map.Functions, f => !schema.Contains($"CREATE OR REPLACE FUNCTION {f.Table[..^2]}(", StringComparison.Ordinal));
    }

    /// <summary>Every mention outside the owner's files: where, what, whose, what to do.</summary>
    internal static List<OwnershipViolation> OwnershipViolations(string root, OwnershipMap map)
    {
        var owners = map.Owned.ToDictionary(t => t.Table, StringComparer.Ordinal);
        var baselines = map.Baselines.Select(b => b.File).ToHashSet(StringComparer.Ordinal);
        var violations = new List<OwnershipViolation>();
        foreach (var path in SourceFiles(root))
        {
            var relative = Path.GetRelativePath(root, path).Replace('\\', '/');
            if (baselines.Contains(relative))
            {
                continue;
            }

            violations.AddRange(Violations(relative, File.ReadAllText(path), owners));
        }

        return violations;
    }

    /// <summary>The violations in one file's source.</summary>
    internal static IEnumerable<OwnershipViolation> Violations(string relative, string source, IReadOnlyDictionary<string, TableOwner> owners)
    {
        foreach (var literal in SqlTableScanner.Scan(source, owners.Keys.ToList()).GroupBy(m => m.Literal))
        {
            // A statement naming a table whose owner has not moved its SQL yet is left whole for the integrator.
            if (literal.Any(m => owners[m.Table].Pending))
            {
                continue;
            }

            // A statement joining tables (or calling functions) of several parts lives in the store of one of them.
            var stores = literal.SelectMany(m => owners[m.Table].StoreFiles).ToHashSet(StringComparer.Ordinal);
            if (stores.Contains(relative))
            {
                continue;
            }

            foreach (var mention in literal)
            {
                var owner = owners[mention.Table];
                {
                    yield return new OwnershipViolation(relative, mention.Table,
                        $"{relative}:{mention.Line}: names {mention.Table}, owned by {owner.Part}; " +
                        $"move this into {string.Join(" or ", owner.StoreFiles)} and call the store from here");
                }
            }
        }
    }

    private static IEnumerable<string> SourceFiles(string root) =>
        new[] { "src", "bench" }
            .Select(d => Path.Combine(root, d))
            .Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*.cs", SearchOption.AllDirectories))
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj"))
            .Order(StringComparer.Ordinal);

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Hourglass.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Hourglass.slnx not found above the test assembly.");
    }
}

/// <summary>One table named outside its owner's store, with the message that says where and what to do.</summary>
internal sealed record OwnershipViolation(string File, string Table, string Message);

/// <summary>
/// The statements still to move into their stores: lines <c>file table count</c>. A mention beyond the count (or
/// in a file not listed) fails; a count above what is found fails too, so the list only shrinks.
/// </summary>
internal static class NotYetMoved
{
    public const string Path = "tests/Hourglass.Tests/Storage/TableOwnershipNotYetMoved.txt";

    /// <summary>The same for calls of a part's SQL functions (<c>file schema.name() count</c>).</summary>
    public const string FunctionsPath = "tests/Hourglass.Tests/Storage/FunctionOwnershipNotYetMoved.txt";

    public static Dictionary<(string File, string Table), int> Read(string path) =>
        File.ReadAllLines(path)
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .ToDictionary(c => (c[0], c[1]), c => int.Parse(c[2], System.Globalization.CultureInfo.InvariantCulture));
}
