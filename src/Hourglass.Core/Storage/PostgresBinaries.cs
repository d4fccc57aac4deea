using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Hourglass.Storage;

/// <summary>A folder holding the PostgreSQL server programs (initdb, pg_ctl, postgres) and their version.</summary>
internal sealed record PostgresBinaries(string BinDirectory, int MajorVersion, string VersionText, string FoundThrough)
{
    public string InitDb => Path.Combine(BinDirectory, "initdb");

    public string PgCtl => Path.Combine(BinDirectory, "pg_ctl");

    public string Postgres => Path.Combine(BinDirectory, "postgres");
}

/// <summary>
/// Finds PostgreSQL server binaries on this machine: an explicit folder (HOURGLASS_PG_BIN) first, else the
/// newest of those named by <c>pg_config --bindir</c>, found on PATH, or under the distribution folders
/// (<c>/usr/lib/postgresql/*/bin</c> on Debian and Ubuntu, <c>/usr/pgsql-*/bin</c> on RHEL).
/// </summary>
internal static partial class PostgresBinaryLocator
{
    /// <summary>The environment variable naming a bin folder to use instead of searching.</summary>
    public const string BinDirectoryVariable = "HOURGLASS_PG_BIN";

    private static readonly string[] s_programs = ["initdb", "pg_ctl", "postgres"];

    /// <summary>
    /// Returns the binaries to use, or throws a <see cref="HourglassException"/> that says exactly what to
    /// install when there are none.
    /// </summary>
    public static PostgresBinaries Locate(string? explicitBinDirectory = null)
    {
        explicitBinDirectory ??= Environment.GetEnvironmentVariable(BinDirectoryVariable);
        if (!string.IsNullOrWhiteSpace(explicitBinDirectory))
        {
            var missing = MissingPrograms(explicitBinDirectory);
            if (missing.Count > 0)
            {
                throw new HourglassException(
                    $"{BinDirectoryVariable}={explicitBinDirectory} does not hold the PostgreSQL server programs " +
                    $"(missing: {string.Join(", ", missing)}). Point it at the folder with initdb, pg_ctl and postgres.");
            }

            return Describe(explicitBinDirectory, BinDirectoryVariable)
                ?? throw new HourglassException($"{explicitBinDirectory}/postgres --version did not print a PostgreSQL version.");
        }

        return SelectNewest(Candidates());
    }

    /// <summary>The newest major version among the candidate folders that hold the server programs.</summary>
    internal static PostgresBinaries SelectNewest(IEnumerable<(string Directory, string Source)> candidates)
    {
        var found = candidates
            .Select(c => Describe(c.Directory, c.Source))
            .OfType<PostgresBinaries>()
            .DistinctBy(b => Canonical(b.BinDirectory))
            .ToList();

        // Newest major first; among equals, the order of the sources.
        return found.OrderByDescending(b => b.MajorVersion).FirstOrDefault() ?? throw new HourglassException(NotFoundMessage());
    }

    /// <summary>The message printed when no server binaries are found.</summary>
    public static string NotFoundMessage() =>
        "no PostgreSQL server binaries found (looked for initdb, pg_ctl and postgres via " +
        $"{BinDirectoryVariable}, pg_config --bindir, PATH, /usr/lib/postgresql/*/bin and /usr/pgsql-*/bin). " +
        "Install them: 'sudo apt-get install -y postgresql' on Debian/Ubuntu, 'sudo dnf install -y postgresql-server' " +
        "on Fedora/RHEL, 'brew install postgresql@17' on macOS; or set HOURGLASS_DATABASE_URL to use an existing server.";

    private static IEnumerable<(string Directory, string Source)> Candidates()
    {
        var fromPgConfig = RunForOutput("pg_config", "--bindir")?.Trim();
        if (!string.IsNullOrEmpty(fromPgConfig))
        {
            yield return (fromPgConfig, "pg_config --bindir");
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var entry in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            yield return (entry, "PATH");
        }

        if (Directory.Exists("/usr/lib/postgresql"))
        {
            foreach (var root in Directory.EnumerateDirectories("/usr/lib/postgresql"))
            {
                yield return (Path.Combine(root, "bin"), "/usr/lib/postgresql/*/bin");
            }
        }

        foreach (var root in Directory.EnumerateDirectories("/usr", "pgsql-*"))
        {
            yield return (Path.Combine(root, "bin"), "/usr/pgsql-*/bin");
        }
    }

    private static List<string> MissingPrograms(string directory) =>
        s_programs.Where(p => !File.Exists(Path.Combine(directory, p))).ToList();

    private static PostgresBinaries? Describe(string directory, string source)
    {
        if (!Directory.Exists(directory) || MissingPrograms(directory).Count > 0)
        {
            return null;
        }

        // Resolve symlinks (/usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres) so the folder we
        // use holds the real programs and their share/ and lib/ siblings.
        var postgres = new FileInfo(Path.Combine(directory, "postgres"));
        var real = postgres.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? postgres.FullName;
        var realDirectory = Path.GetDirectoryName(real)!;
        if (MissingPrograms(realDirectory).Count > 0)
        {
            realDirectory = directory;
        }

        var versionText = RunForOutput(Path.Combine(realDirectory, "postgres"), "--version")?.Trim();
        if (versionText is null)
        {
            return null;
        }

        var match = VersionPattern().Match(versionText);
        return match.Success
            ? new PostgresBinaries(realDirectory, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), versionText, source)
            : null;
    }

    private static string Canonical(string directory) => Path.GetFullPath(directory).TrimEnd('/');

    private static string? RunForOutput(string fileName, string argument)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(fileName, argument)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            });
            if (process is null)
            {
                return null;
            }

            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Not installed or not executable: not a candidate.
            return null;
        }
    }

    [GeneratedRegex(@"\(PostgreSQL\)\s+(\d+)")]
    private static partial Regex VersionPattern();
}
