using System.Text.RegularExpressions;

namespace Hourglass.Tests.Cycles;

/// <summary>
/// The cycle's tables are named in SQL only by their stores in src/Hourglass.Core/Cycles (issue 16: one owner per
/// table). Files that still name them inside statements they share with another part's tables are listed as pending;
/// the list may only shrink.
/// </summary>
public sealed partial class CycleTableOwnershipTests
{
    private static readonly Dictionary<string, string> s_owners = new(StringComparer.Ordinal)
    {
        ["agent_autonomous_runs"] = "RunsStore",
        ["agent_actions"] = "ActionLedger",
        ["agent_hourly_reflections"] = "HourlyReflections",
        ["agent_tenant_locks"] = "TenantLease",
        ["agent_tenant_schedules"] = "ScheduleStore or TenantControl",
        ["agent_control"] = "TenantControl",
        ["monitoring_run_success"] = "RunsStore",
        ["monitoring_lock_contention"] = "TenantLease",
    };

    private static readonly string[] s_storeFiles =
    [
        "src/Hourglass.Core/Cycles/RunsStore.cs", "src/Hourglass.Core/Cycles/ActionLedger.cs", "src/Hourglass.Core/Cycles/HourlyReflections.cs",
        "src/Hourglass.Core/Cycles/ScheduleStore.cs", "src/Hourglass.Core/Cycles/TenantControl.cs", "src/Hourglass.Core/Cycles/TenantLease.cs",
    ];

    // Still to move: pause checks and ledger reads inside other parts' statements, and the benchmarks' set-up and reset
    // statements (the cycles baseline already sends the stores' own constants).
    private static readonly string[] s_pending =
    [
        "src/Hourglass.Core/Engagement/EngagementCompliancePart.cs", "src/Hourglass.Core/Engagement/Outbox/OutboxDispatcher.cs",
        "src/Hourglass.Core/Engagement/TouchTaskPart.cs", "src/Hourglass.Core/Orders/OrderWriter.cs", "src/Hourglass.Core/Policies/ApprovalPart.cs",
        "src/Hourglass.Core/Policies/DocumentPolicyEnforcer.cs", "src/Hourglass.Server/Cli/OrderCommands.cs",
        "bench/Hourglass.Bench/ApiBenchmark.cs", "bench/Hourglass.Bench/CycleBaseline.cs", "bench/Hourglass.Bench/CycleBenchData.cs",
        "bench/Hourglass.Bench/CycleBenchmark.cs", "bench/Hourglass.Bench/DetectionBenchmark.cs", "bench/Hourglass.Bench/FairnessBenchmark.cs",
        "bench/Hourglass.Bench/LockBenchmark.cs", "bench/Hourglass.Bench/PolicyBenchmark.cs",
    ];

    [Fact]
    public void CycleTables_NamedInSqlOnlyByTheirStores()
    {
        var outside = Mentions()
            .Where(m => !s_storeFiles.Contains(m.File) && !s_pending.Contains(m.File))
            .Select(m => $"{m.File}:{m.Line} names {m.Table} in SQL; call {s_owners[m.Table]} (src/Hourglass.Core/Cycles) instead")
            .ToList();

        Assert.True(outside.Count == 0, string.Join("\n", outside));
    }

    [Fact]
    public void PendingFiles_StillNameACycleTable()
    {
        var naming = Mentions().Select(m => m.File).ToHashSet(StringComparer.Ordinal);

        var done = s_pending.Where(f => !naming.Contains(f)).ToList();

        Assert.True(done.Count == 0, "No longer names a cycle table: remove from CycleTableOwnershipTests' pending list: " + string.Join(", ", done));
    }

    private static List<(string File, int Line, string Table)> Mentions()
    {
        var root = RepositoryRoot();
        var found = new List<(string, int, string)>();
        foreach (var top in new[] { "src", "bench" })
        {
            foreach (var path in Directory.EnumerateFiles(Path.Combine(root, top), "*.cs", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(root, path).Replace('\\', '/');
                if (relative.Contains("/bin/", StringComparison.Ordinal) || relative.Contains("/obj/", StringComparison.Ordinal))
                {
                    continue;
                }

                var lines = File.ReadAllLines(path);
                for (var i = 0; i < lines.Length; i++)
                {
                    foreach (Match match in QualifiedTable().Matches(lines[i]))
                    {
                        found.Add((relative, i + 1, match.Groups[1].Value));
                    }
                }
            }
        }

        return found;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Hourglass.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Hourglass.slnx not found above " + AppContext.BaseDirectory);
    }

    // SQL here always qualifies a table with its schema (public. or hourglass.), so a doc comment's bare name is not a hit.
    [GeneratedRegex(@"\b(?:public|hourglass)\.(agent_autonomous_runs|agent_actions|agent_hourly_reflections|agent_tenant_locks|agent_tenant_schedules|agent_control|monitoring_run_success|monitoring_lock_contention)\b")]
    private static partial Regex QualifiedTable();
}
