using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Storage;

/// <summary>The embedded cluster: first start, reuse, attach, clean stop; as root, run as another OS user.</summary>
public sealed class EmbeddedPostgresTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"hg-embedded-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task Start_StopStart_ReusesClusterAndKeepsData()
    {
        var options = new EmbeddedPostgresOptions { RootDirectory = _root, Durable = true };
        int firstPort;
        await using (var first = await EmbeddedPostgres.StartAsync(options))
        {
            Assert.True(first.StartedHere);
            firstPort = first.Port;
            await ExecuteAsync(first.ConnectionString, "create table kept (v text); insert into kept values ('still here')");
            await first.StopAsync();
            await Assert.ThrowsAnyAsync<NpgsqlException>(() => ExecuteAsync(first.ConnectionString, "select 1"));
        }

        var versionFile = Path.Combine(_root, "data", "PG_VERSION");
        var initialisedAt = File.GetLastWriteTimeUtc(versionFile);

        await using var second = await EmbeddedPostgres.StartAsync(options);

        Assert.True(second.StartedHere);
        Assert.Equal(initialisedAt, File.GetLastWriteTimeUtc(versionFile));
        Assert.Equal("still here", await ScalarAsync(second.ConnectionString, "select v from kept"));
        Assert.Equal(firstPort, second.Port);
    }

    [Fact]
    public async Task Start_WhileRunning_AttachesAndLeavesItRunning()
    {
        var options = new EmbeddedPostgresOptions { RootDirectory = _root };
        await using var owner = await EmbeddedPostgres.StartAsync(options);

        await using (var attached = await EmbeddedPostgres.StartAsync(options))
        {
            Assert.False(attached.StartedHere);
            Assert.Equal(owner.Port, attached.Port);
        }

        Assert.Equal(1, await ScalarAsync(owner.ConnectionString, "select 1"));
        await owner.StopAsync();
        Assert.Null(await EmbeddedPostgres.StopRunningAsync(options));
    }

    [Fact]
    public async Task Start_AsRoot_ServerRunsAsUnprivilegedUserOnLoopbackOnly()
    {
        await using var cluster = await EmbeddedPostgres.StartAsync(new EmbeddedPostgresOptions { RootDirectory = _root });

        Assert.Equal("127.0.0.1", await ScalarAsync(cluster.ConnectionString, "select current_setting('listen_addresses')"));
        Assert.Equal("", await ScalarAsync(cluster.ConnectionString, "select current_setting('unix_socket_directories')"));
        Assert.Equal("hourglass", await ScalarAsync(cluster.ConnectionString, "select current_database()"));
        if (Environment.IsPrivilegedProcess)
        {
            // The postmaster's PID is the first line of postmaster.pid; its owner must not be root.
            var status = await File.ReadAllLinesAsync($"/proc/{await PostmasterPidAsync(cluster)}/status");
            var uid = status.Single(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1];
            Assert.NotEqual("0", uid);
        }

        var password = new FileInfo(Path.Combine(_root, "superuser.password"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, password.UnixFileMode);
    }

    [Fact]
    public async Task Start_DataFolderOfOtherMajor_RefusedWithAdvice()
    {
        Directory.CreateDirectory(Path.Combine(_root, "data"));
        await File.WriteAllTextAsync(Path.Combine(_root, "data", "PG_VERSION"), "9\n");
        await File.WriteAllTextAsync(Path.Combine(_root, "superuser.password"), "x");

        var ex = await Assert.ThrowsAsync<HourglassException>(() => EmbeddedPostgres.StartAsync(new EmbeddedPostgresOptions { RootDirectory = _root }));

        Assert.Contains("was made by PostgreSQL 9", ex.Message, StringComparison.Ordinal);
        Assert.Contains("HOURGLASS_PG_BIN", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_FreshFolderThenAgain_SeedsOnceVerifiesAndStopsServer()
    {
        var first = await HourglassProcess.RunAsync("demo", "--data-dir", _root);

        Assert.True(first.ExitCode == 0, first.StandardOutput + first.StandardError);
        Assert.Contains("Demo tenant: Northwind Supply (demo)", first.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("applied 20251217000000_autonomous_agent_system.sql", first.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("PASS: all", first.StandardOutput, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_root, "data", "postmaster.pid")), "the server should be stopped after demo");

        var second = await HourglassProcess.RunAsync("demo", "--data-dir", _root);

        Assert.Equal(0, second.ExitCode);
        Assert.Contains("already seeded", second.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Migrations: up to date", second.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("12 accounts", second.StandardOutput, StringComparison.Ordinal);

        // Each demo runs a cycle and prints its hour's reflection. Run twice in one hour (as a tester did), the hour's
        // reflection rolls up both runs: the first run's account of itself is still there, word for word.
        var (firstHour, firstSummary) = DemoReflection(first.StandardOutput);
        var (secondHour, secondSummary) = DemoReflection(second.StandardOutput);
        if (secondHour == firstHour)
        {
            Assert.StartsWith($"Hour {firstHour} UTC, 2 runs: ", secondSummary, StringComparison.Ordinal);
            Assert.Contains("Run 1 (manual, started ", secondSummary, StringComparison.Ordinal);
            Assert.Contains(firstSummary, secondSummary, StringComparison.Ordinal);
        }
        else
        {
            Assert.StartsWith($"Hour {secondHour} UTC. ", secondSummary, StringComparison.Ordinal);
        }
    }

    // The summary line the demo prints under "Cycle: run …", and the hour it names.
    private static (string Hour, string Summary) DemoReflection(string output)
    {
        var lines = output.Split('\n');
        var summary = lines[Array.FindIndex(lines, l => l.StartsWith("Cycle: run ", StringComparison.Ordinal)) + 1].Trim();
        Assert.StartsWith("Hour ", summary, StringComparison.Ordinal);
        return (summary["Hour ".Length..summary.IndexOf(" UTC", StringComparison.Ordinal)], summary);
    }

    [Fact]
    public async Task Demo_AsNormalUser_StartsClusterAsThatUser()
    {
        // Run as root, the other tests cover the root path (server as 'postgres'); this one runs the executable
        // itself as an unprivileged user, as a developer would. Run as a normal user, it is that path already.
        var user = Environment.IsPrivilegedProcess ? "postgres" : Environment.UserName;
        var app = Path.Combine(_root, "app");
        CopyDirectory(AppContext.BaseDirectory, app);
        Directory.CreateDirectory(Path.Combine(_root, "home"));
        if (Environment.IsPrivilegedProcess)
        {
            Assert.Equal(0, (await RunAsync("chown", "-R", $"{user}:", _root)).ExitCode);
        }

        var cluster = Path.Combine(_root, "cluster");
        var result = Environment.IsPrivilegedProcess
            ? await RunAsync("runuser", "-u", user, "--", "env", $"HOME={_root}/home", $"DOTNET_CLI_HOME={_root}/home",
                "dotnet", Path.Combine(app, "hourglass.dll"), "demo", "--data-dir", cluster)
            : await RunAsync("dotnet", Path.Combine(app, "hourglass.dll"), "demo", "--data-dir", cluster);

        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Contains("PASS: all", result.Output, StringComparison.Ordinal);
        var owner = await RunAsync("stat", "-c", "%U", Path.Combine(cluster, "data"));
        Assert.Equal(user, owner.Output.Trim());
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string program, params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output + await error);
    }

    private static async Task<int> PostmasterPidAsync(EmbeddedPostgres cluster) =>
        (int)(await ScalarAsync(cluster.ConnectionString, "select (regexp_split_to_array(pg_read_file('postmaster.pid'), '\\n'))[1]::int"))!;

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<object?> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }
}
