using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Hourglass.Storage;

/// <summary>Where and how the private PostgreSQL cluster lives.</summary>
internal sealed class EmbeddedPostgresOptions
{
    /// <summary>
    /// The folder the cluster owns: <c>data/</c> (PGDATA), <c>run/</c> (server log), the superuser password
    /// and the last port. Defaults to <see cref="EmbeddedPostgres.DefaultRootDirectory"/>.
    /// </summary>
    public string? RootDirectory { get; init; }

    /// <summary>A bin folder to use instead of searching (see <see cref="PostgresBinaryLocator"/>).</summary>
    public string? BinDirectory { get; init; }

    /// <summary>The database the application uses; created on first start.</summary>
    public string DatabaseName { get; init; } = "hourglass";

    /// <summary>
    /// False turns off fsync and synchronous commit: for throwaway test clusters only, where a crash of the
    /// machine may lose data. The default cluster is durable.
    /// </summary>
    public bool Durable { get; init; } = true;

    /// <summary>
    /// The unprivileged OS user that runs the server when hourglass runs as root (PostgreSQL refuses to run
    /// as root). Defaults to HOURGLASS_PG_OS_USER, else <c>postgres</c>.
    /// </summary>
    public string? ServerOsUser { get; init; }

    /// <summary>Server connection slots; tests race dozens of connections.</summary>
    public int MaxConnections { get; init; } = 200;
}

/// <summary>
/// A private PostgreSQL cluster started from the machine's server binaries, in a folder this process owns:
/// initialised on first use, reused after, listening on 127.0.0.1 on a free port with a generated superuser
/// password (no Unix socket, so no path-length or permission trouble), and stopped cleanly.
/// </summary>
internal sealed partial class EmbeddedPostgres : IAsyncDisposable
{
    private const string Superuser = "postgres";
    private readonly ILogger _logger;
    private readonly string _serverOsUser;
    private bool _stopped;

    private EmbeddedPostgres(PostgresBinaries binaries, string rootDirectory, string? serverOsUser, ILogger logger)
    {
        Binaries = binaries;
        RootDirectory = rootDirectory;
        _serverOsUser = serverOsUser ?? "";
        _logger = logger;
    }

    public PostgresBinaries Binaries { get; }

    public string RootDirectory { get; }

    public string DataDirectory => Path.Combine(RootDirectory, "data");

    public string LogFile => Path.Combine(RootDirectory, "run", "server.log");

    /// <summary>The connection string of the application database.</summary>
    public string ConnectionString { get; private set; } = "";

    /// <summary>The connection string of the maintenance database <c>postgres</c>.</summary>
    public string MaintenanceConnectionString { get; private set; } = "";

    public int Port { get; private set; }

    /// <summary>True when this instance started the server (and so stops it); false when it attached to a running one.</summary>
    public bool StartedHere { get; private set; }

    private bool RunsServerAsOtherUser => _serverOsUser.Length > 0;

    /// <summary>The default cluster folder: per user, per PostgreSQL major version.</summary>
    public static string DefaultRootDirectory(int majorVersion)
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("HOURGLASS_DATA_DIR");
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            return Path.Combine(Path.GetFullPath(fromEnvironment), $"pg{majorVersion}");
        }

        // Root's home is closed to the unprivileged server user, so root's cluster lives under /var/lib.
        if (Environment.IsPrivilegedProcess)
        {
            return $"/var/lib/hourglass/pg{majorVersion}";
        }

        var dataHome = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        if (string.IsNullOrWhiteSpace(dataHome))
        {
            dataHome = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        }

        return Path.Combine(dataHome, "hourglass", $"pg{majorVersion}");
    }

    /// <summary>Starts (or attaches to) the cluster and waits until it accepts connections.</summary>
    public static async Task<EmbeddedPostgres> StartAsync(
        EmbeddedPostgresOptions options, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        logger ??= NullLogger.Instance;
        var binaries = PostgresBinaryLocator.Locate(options.BinDirectory);
        var root = Path.GetFullPath(options.RootDirectory ?? DefaultRootDirectory(binaries.MajorVersion));
        string? serverUser = null;
        if (Environment.IsPrivilegedProcess)
        {
            serverUser = options.ServerOsUser ?? Environment.GetEnvironmentVariable("HOURGLASS_PG_OS_USER") ?? "postgres";
            if ((await RunAsync("id", ["-u", serverUser], null, cancellationToken)).ExitCode != 0)
            {
                throw new HourglassException(
                    $"hourglass runs as root, and PostgreSQL refuses to: it runs the server as the OS user '{serverUser}', " +
                    "which does not exist. Create it ('useradd --system postgres'), set HOURGLASS_PG_OS_USER to another " +
                    "unprivileged user, or run hourglass as a normal user.");
            }
        }

        var cluster = new EmbeddedPostgres(binaries, root, serverUser, logger);
        await cluster.InitialiseAsync(options, cancellationToken);
        await cluster.StartServerAsync(options, cancellationToken);
        await cluster.EnsureDatabaseAsync(options.DatabaseName, cancellationToken);
        return cluster;
    }

    /// <summary>
    /// A non-durable cluster in a fresh temporary folder, removed on dispose: for tests and benchmarks.
    /// Clusters left behind by a process that died are stopped and removed first.
    /// </summary>
    public static async Task<EmbeddedPostgres> StartThrowawayAsync(
        string? binDirectory = null, bool durable = false, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        await SweepAbandonedThrowawaysAsync(binDirectory, cancellationToken);
        var root = Path.Combine(Path.GetTempPath(), $"hourglass-test-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        await File.WriteAllTextAsync(Path.Combine(root, "owner.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture), cancellationToken);
        var cluster = await StartAsync(
            new EmbeddedPostgresOptions { RootDirectory = root, BinDirectory = binDirectory, Durable = durable },
            logger, cancellationToken);
        cluster._deleteOnStop = true;
        return cluster;
    }

    private bool _deleteOnStop;

    /// <summary>
    /// Stops the cluster running on the given folder, whoever started it. Returns its data folder, or null
    /// when no server was running there.
    /// </summary>
    public static async Task<string?> StopRunningAsync(EmbeddedPostgresOptions options, CancellationToken cancellationToken = default)
    {
        var binaries = PostgresBinaryLocator.Locate(options.BinDirectory);
        var root = Path.GetFullPath(options.RootDirectory ?? DefaultRootDirectory(binaries.MajorVersion));
        var serverUser = Environment.IsPrivilegedProcess
            ? options.ServerOsUser ?? Environment.GetEnvironmentVariable("HOURGLASS_PG_OS_USER") ?? "postgres"
            : null;
        var cluster = new EmbeddedPostgres(binaries, root, serverUser, NullLogger.Instance);
        if (!Directory.Exists(cluster.DataDirectory) || await cluster.RunningPortAsync(cancellationToken) is null)
        {
            return null;
        }

        cluster.StartedHere = true;
        await cluster.StopAsync(cancellationToken);
        return cluster.DataDirectory;
    }

    /// <summary>Stops the server if this instance started it (fast shutdown: sessions end, work is kept).</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        NpgsqlConnection.ClearAllPools();
        if (StartedHere)
        {
            var mode = _deleteOnStop ? "immediate" : "fast";
            var result = await RunServerToolAsync(Binaries.PgCtl, ["stop", "-D", DataDirectory, "-m", mode, "-w", "-t", "60"], cancellationToken);
            if (result.ExitCode != 0)
            {
                LogStopFailed(_logger, DataDirectory, result.Output.Trim());
            }
            else
            {
                LogStopped(_logger, DataDirectory);
            }
        }

        if (_deleteOnStop)
        {
            TryDelete(RootDirectory);
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private async Task InitialiseAsync(EmbeddedPostgresOptions options, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(RootDirectory);
        if (RunsServerAsOtherUser)
        {
            // The server user must be able to pass through the folder to reach data/ and run/; nothing else.
            SetMode(RootDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            await CheckReachableByServerUserAsync(cancellationToken);
        }
        else
        {
            SetMode(RootDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var runDirectory = Path.GetDirectoryName(LogFile)!;
        Directory.CreateDirectory(runDirectory);
        await GiveToServerUserAsync(runDirectory, cancellationToken);

        var passwordFile = Path.Combine(RootDirectory, "superuser.password");
        var versionFile = Path.Combine(DataDirectory, "PG_VERSION");
        if (File.Exists(versionFile))
        {
            var existingMajor = (await File.ReadAllTextAsync(versionFile, cancellationToken)).Trim();
            if (existingMajor != Binaries.MajorVersion.ToString(CultureInfo.InvariantCulture))
            {
                throw new HourglassException(
                    $"the cluster in {DataDirectory} was made by PostgreSQL {existingMajor}, but the binaries found are " +
                    $"PostgreSQL {Binaries.MajorVersion} ({Binaries.BinDirectory}). Point HOURGLASS_PG_BIN at PostgreSQL " +
                    $"{existingMajor}'s bin folder, or choose another folder with HOURGLASS_DATA_DIR.");
            }

            if (!File.Exists(passwordFile))
            {
                throw new HourglassException(
                    $"the cluster in {DataDirectory} has no superuser password file ({passwordFile}); it was not made by " +
                    "hourglass. Remove the folder or choose another with HOURGLASS_DATA_DIR.");
            }

            LogReusing(_logger, DataDirectory, Binaries.MajorVersion);
            return;
        }

        if (Directory.Exists(DataDirectory) && Directory.EnumerateFileSystemEntries(DataDirectory).Any())
        {
            throw new HourglassException(
                $"{DataDirectory} exists but holds no PostgreSQL cluster (no PG_VERSION); remove it or choose another folder with HOURGLASS_DATA_DIR.");
        }

        LogInitialising(_logger, DataDirectory, Binaries.VersionText);
        Directory.CreateDirectory(DataDirectory);
        await GiveToServerUserAsync(DataDirectory, cancellationToken);

        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).Replace('+', '-').Replace('/', '_');
        await File.WriteAllTextAsync(passwordFile, password, cancellationToken);
        SetMode(passwordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        // initdb reads the password from a file the server user can read; it is removed right after.
        var initPasswordFile = Path.Combine(runDirectory, "initdb.pw");
        await File.WriteAllTextAsync(initPasswordFile, password, cancellationToken);
        await GiveToServerUserAsync(initPasswordFile, cancellationToken);
        try
        {
            var result = await RunServerToolAsync(Binaries.InitDb,
                ["-D", DataDirectory, "-U", Superuser, "--pwfile", initPasswordFile, "--auth-host=scram-sha-256",
                 "--auth-local=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions"],
                cancellationToken);
            if (result.ExitCode != 0)
            {
                TryDelete(DataDirectory);
                File.Delete(passwordFile);
                throw new HourglassException($"initdb failed for {DataDirectory}: {LastLines(result.Output, 5)}");
            }
        }
        finally
        {
            File.Delete(initPasswordFile);
        }
    }

    private async Task StartServerAsync(EmbeddedPostgresOptions options, CancellationToken cancellationToken)
    {
        var password = (await File.ReadAllTextAsync(Path.Combine(RootDirectory, "superuser.password"), cancellationToken)).Trim();
        var runningPort = await RunningPortAsync(cancellationToken);
        if (runningPort is int port)
        {
            LogAttached(_logger, DataDirectory, port);
            SetConnectionStrings(port, password, options.DatabaseName);
            await WaitUntilAcceptingAsync(cancellationToken);
            return;
        }

        var portFile = Path.Combine(RootDirectory, "port");
        var preferred = File.Exists(portFile) && int.TryParse(await File.ReadAllTextAsync(portFile, cancellationToken), out var saved) ? saved : 0;

        // A free port can be taken between our check and the server's bind; try again with another.
        for (var attempt = 1; ; attempt++)
        {
            port = preferred > 0 && IsPortFree(preferred) ? preferred : FreePort();
            preferred = 0;
            var settings = new List<string>
            {
                "-p", port.ToString(CultureInfo.InvariantCulture),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=",
                "-c", $"max_connections={options.MaxConnections}",
            };
            if (!options.Durable)
            {
                settings.AddRange(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
            }

            var result = await RunServerToolAsync(Binaries.PgCtl,
                ["start", "-D", DataDirectory, "-l", LogFile, "-w", "-t", "60", "-o", string.Join(' ', settings)],
                cancellationToken);
            if (result.ExitCode == 0)
            {
                break;
            }

            var log = File.Exists(LogFile) ? await ReadTailAsync(LogFile, cancellationToken) : "";
            if (attempt < 3 && log.Contains("could not bind", StringComparison.Ordinal))
            {
                continue;
            }

            throw new HourglassException(
                $"PostgreSQL did not start from {DataDirectory}: {LastLines(result.Output, 3)} {LastLines(log, 5)}".Trim());
        }

        StartedHere = true;
        await File.WriteAllTextAsync(portFile, port.ToString(CultureInfo.InvariantCulture), cancellationToken);
        LogStarted(_logger, Binaries.MajorVersion, port, DataDirectory);
        SetConnectionStrings(port, password, options.DatabaseName);
        await WaitUntilAcceptingAsync(cancellationToken);
    }

    private void SetConnectionStrings(int port, string password, string database)
    {
        Port = port;
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = port,
            Username = Superuser,
            Password = password,
            Database = "postgres",
        };
        MaintenanceConnectionString = builder.ConnectionString;
        builder.Database = database;
        ConnectionString = builder.ConnectionString;
    }

    private async Task WaitUntilAcceptingAsync(CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await using var connection = new NpgsqlConnection(MaintenanceConnectionString);
                await connection.OpenAsync(cancellationToken);
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException && deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                // 57P03 cannot_connect_now while the server finishes recovery or start-up.
                await Task.Delay(100, cancellationToken);
            }
        }
    }

    private async Task EnsureDatabaseAsync(string database, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(MaintenanceConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var exists = new NpgsqlCommand("select 1 from pg_database where datname = $1", connection)
        {
            Parameters = { new() { Value = database } },
        };
        if (await exists.ExecuteScalarAsync(cancellationToken) is null)
        {
            await using var create = new NpgsqlCommand($"create database {SqlIdentifier.Quote(database)}", connection);
            await create.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>The port of a server already running on this data folder, or null.</summary>
    private async Task<int?> RunningPortAsync(CancellationToken cancellationToken)
    {
        var status = await RunServerToolAsync(Binaries.PgCtl, ["status", "-D", DataDirectory], cancellationToken);
        if (status.ExitCode != 0)
        {
            return null;
        }

        // postmaster.pid: line 4 is the port (PostgreSQL docs, "Database File Layout").
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        var lines = RunsServerAsOtherUser
            ? (await RunAsync("runuser", ["-u", _serverOsUser, "--", "cat", pidFile], null, cancellationToken)).Output.Split('\n')
            : await File.ReadAllLinesAsync(pidFile, cancellationToken);
        return lines.Length > 3 && int.TryParse(lines[3].Trim(), out var port) ? port : null;
    }

    private async Task CheckReachableByServerUserAsync(CancellationToken cancellationToken)
    {
        var probe = await RunAsync("runuser", ["-u", _serverOsUser, "--", "test", "-x", RootDirectory], null, cancellationToken);
        if (probe.ExitCode != 0)
        {
            throw new HourglassException(
                $"the server runs as the OS user '{_serverOsUser}', which cannot reach {RootDirectory} (a parent folder is " +
                "closed to it). Choose a folder it can reach with HOURGLASS_DATA_DIR (e.g. under /var/lib or /tmp).");
        }
    }

    private async Task GiveToServerUserAsync(string path, CancellationToken cancellationToken)
    {
        if (!RunsServerAsOtherUser)
        {
            return;
        }

        var result = await RunAsync("chown", ["-R", $"{_serverOsUser}:", path], null, cancellationToken);
        if (result.ExitCode != 0)
        {
            throw new HourglassException($"could not hand {path} to the OS user '{_serverOsUser}': {result.Output.Trim()}");
        }
    }

    private Task<ProcessResult> RunServerToolAsync(string program, IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        RunsServerAsOtherUser
            ? RunAsync("runuser", ["-u", _serverOsUser, "--", program, .. arguments], "/", cancellationToken)
            : RunAsync(program, arguments, null, cancellationToken);

    internal readonly record struct ProcessResult(int ExitCode, string Output);

    internal static async Task<ProcessResult> RunAsync(
        string fileName, IReadOnlyList<string> arguments, string? workingDirectory, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null)
        {
            startInfo.WorkingDirectory = workingDirectory;
        }

        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // The server is started with -l, so it writes to its log and does not hold our pipes open.
        Process process;
        try
        {
            process = Process.Start(startInfo) ?? throw new HourglassException($"could not start {fileName}");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new HourglassException($"could not run {fileName}: {ex.Message}", ex);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            return new ProcessResult(process.ExitCode, (await stdout) + (await stderr));
        }
    }

    private static async Task SweepAbandonedThrowawaysAsync(string? binDirectory, CancellationToken cancellationToken)
    {
        foreach (var root in Directory.EnumerateDirectories(Path.GetTempPath(), "hourglass-test-*"))
        {
            var ownerFile = Path.Combine(root, "owner.pid");
            if (!File.Exists(ownerFile) || !int.TryParse(await File.ReadAllTextAsync(ownerFile, cancellationToken), out var owner) || IsAlive(owner))
            {
                continue;
            }

            try
            {
                var binaries = PostgresBinaryLocator.Locate(binDirectory);
                var data = Path.Combine(root, "data");
                var program = Environment.IsPrivilegedProcess ? "runuser" : binaries.PgCtl;
                IReadOnlyList<string> arguments = Environment.IsPrivilegedProcess
                    ? ["-u", Environment.GetEnvironmentVariable("HOURGLASS_PG_OS_USER") ?? "postgres", "--", binaries.PgCtl, "stop", "-D", data, "-m", "immediate"]
                    : ["stop", "-D", data, "-m", "immediate"];
                await RunAsync(program, arguments, "/", cancellationToken);
            }
            catch (HourglassException)
            {
                // Best effort: a folder we cannot stop is still removed below.
            }

            TryDelete(root);
        }
    }

    private static bool IsAlive(int processId)
    {
        try
        {
            using var process = Process.GetProcessById(processId);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    // The embedded cluster is for Unix-like machines (PostgreSQL's Windows packaging differs); elsewhere,
    // permissions are left as they are.
    private static void SetMode(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool IsPortFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static async Task<string> ReadTailAsync(string file, CancellationToken cancellationToken)
    {
        try
        {
            return LastLines(await File.ReadAllTextAsync(file, cancellationToken), 10);
        }
        catch (UnauthorizedAccessException)
        {
            return "";
        }
    }

    private static string LastLines(string text, int count) =>
        string.Join(" | ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(count));

    private static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException)
        {
            // Left for the next sweep.
        }
        catch (UnauthorizedAccessException)
        {
            // Left for the next sweep.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Initialising a PostgreSQL cluster in {DataDirectory} ({Version})")]
    private static partial void LogInitialising(ILogger logger, string dataDirectory, string version);

    [LoggerMessage(Level = LogLevel.Information, Message = "Reusing the PostgreSQL {Major} cluster in {DataDirectory}")]
    private static partial void LogReusing(ILogger logger, string dataDirectory, int major);

    [LoggerMessage(Level = LogLevel.Information, Message = "Started PostgreSQL {Major} on 127.0.0.1:{Port} ({DataDirectory})")]
    private static partial void LogStarted(ILogger logger, int major, int port, string dataDirectory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Attached to the PostgreSQL server already running on 127.0.0.1:{Port} ({DataDirectory})")]
    private static partial void LogAttached(ILogger logger, string dataDirectory, int port);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopped PostgreSQL ({DataDirectory})")]
    private static partial void LogStopped(ILogger logger, string dataDirectory);

    [LoggerMessage(Level = LogLevel.Warning, Message = "pg_ctl stop failed for {DataDirectory}: {Output}")]
    private static partial void LogStopFailed(ILogger logger, string dataDirectory, string output);
}
