using Hourglass.Storage;

namespace Hourglass.Tests.Storage;

public sealed class PostgresBinaryLocatorTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("hg-bins-");

    public void Dispose() => _root.Delete(recursive: true);

    [Fact]
    public void SelectNewest_SeveralVersions_NewestMajorWins()
    {
        var v15 = FakeBin("15", "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)");
        var v18 = FakeBin("18", "postgres (PostgreSQL) 18.4");
        var v9 = FakeBin("9", "postgres (PostgreSQL) 9.6.24");

        var chosen = PostgresBinaryLocator.SelectNewest([(v15, "PATH"), (v9, "pg_config --bindir"), (v18, "/usr/lib/postgresql/*/bin")]);

        Assert.Equal(18, chosen.MajorVersion);
        Assert.Equal(v18, chosen.BinDirectory);
        Assert.Equal("/usr/lib/postgresql/*/bin", chosen.FoundThrough);
    }

    [Fact]
    public void SelectNewest_FolderMissingAProgram_Ignored()
    {
        var complete = FakeBin("15", "postgres (PostgreSQL) 15.2");
        var incomplete = FakeBin("17", "postgres (PostgreSQL) 17.1");
        File.Delete(Path.Combine(incomplete, "pg_ctl"));

        Assert.Equal(15, PostgresBinaryLocator.SelectNewest([(incomplete, "PATH"), (complete, "PATH")]).MajorVersion);
    }

    [Fact]
    public void SelectNewest_NothingFound_MessageSaysWhatToInstall()
    {
        var ex = Assert.Throws<HourglassException>(() => PostgresBinaryLocator.SelectNewest([(Path.Combine(_root.FullName, "none"), "PATH")]));

        Assert.Contains("no PostgreSQL server binaries found", ex.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install -y postgresql", ex.Message, StringComparison.Ordinal);
        Assert.Contains("HOURGLASS_DATABASE_URL", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Locate_ExplicitFolderWithoutPrograms_NamesWhatIsMissing()
    {
        var ex = Assert.Throws<HourglassException>(() => PostgresBinaryLocator.Locate(_root.FullName));

        Assert.Contains("missing: initdb, pg_ctl, postgres", ex.Message, StringComparison.Ordinal);
    }

    private string FakeBin(string name, string versionLine)
    {
        var bin = Directory.CreateDirectory(Path.Combine(_root.FullName, name, "bin")).FullName;
        foreach (var program in new[] { "initdb", "pg_ctl", "postgres" })
        {
            var path = Path.Combine(bin, program);
            File.WriteAllText(path, $"#!/bin/sh\necho '{versionLine}'\n");
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return bin;
    }
}
