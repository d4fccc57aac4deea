using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Hourglass.Bench;

/// <summary>Tokens for the benchmarks' requests.</summary>
internal static class BenchTokens
{
    /// <summary>An HS256 JWT as Supabase signs its access tokens and service key, with the project's JWT secret.</summary>
    public static string Sign(string secret, Dictionary<string, object> claims)
    {
        static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var header = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["alg"] = "HS256", ["typ"] = "JWT" }));
        var payload = Base64Url(JsonSerializer.SerializeToUtf8Bytes(claims));
        var signature = Base64Url(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.ASCII.GetBytes($"{header}.{payload}")));
        return $"{header}.{payload}.{signature}";
    }
}

/// <summary>One request of a load loop, timed from send to the body's last byte.</summary>
internal static class TimedRequest
{
    /// <summary>
    /// The request's time in milliseconds and whether it succeeded (2xx); a failure is reported through
    /// <paramref name="report"/> (the answer's status, or why it never came), for the caller to print the first few.
    /// </summary>
    public static async Task<(double Milliseconds, bool Ok)> SendAsync(HttpClient http, HttpRequestMessage request, Action<string> report,
        CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var ok = false;
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
            _ = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            ok = response.IsSuccessStatusCode;
            if (!ok)
            {
                report($"answered {(int)response.StatusCode}");
            }
        }
        catch (HttpRequestException ex)
        {
            report($"failed: {ex.Message}");
        }

        return (Stopwatch.GetElapsedTime(started).TotalMilliseconds, ok);
    }
}

/// <summary>
/// <c>hourglass serve</c> as a child process: the Release build of src/Hourglass.Server (built first, incrementally), on a
/// free loopback port, with or without its worker; killed when disposed.
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServerProcess(Process process, string url)
    {
        _process = process;
        Url = url;
    }

    public string Url { get; }

    /// <summary>Starts serve with <paramref name="environment"/> (besides the process's own) and waits until /health answers.</summary>
    public static async Task<ServerProcess> StartAsync(string label, string connectionString, IReadOnlyDictionary<string, string> environment, bool worker,
        CancellationToken cancellationToken)
    {
        var root = RepositoryRoot();
        var project = Path.Combine(root, "src", "Hourglass.Server", "Hourglass.Server.csproj");
        Console.WriteLine($"  {label}: building the server (Release)…");
        await RunAsync("dotnet", ["build", project, "-c", "Release", "-nologo", "-v", "q"], cancellationToken);
        var dll = Path.Combine(root, "src", "Hourglass.Server", "bin", "Release", "net10.0", "hourglass.dll");

        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var url = $"http://127.0.0.1:{port}";
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in worker
                     ? new[] { dll, "serve", "--urls", url, "--database", connectionString }
                     : [dll, "serve", "--no-worker", "--urls", url, "--database", connectionString])
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Remove("HOURGLASS_DATABASE_URL");
        start.Environment.Remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var server = new ServerProcess(Process.Start(start)!, url);
        server._process.OutputDataReceived += (_, e) => server.Append(e.Data);
        server._process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (server._process.HasExited)
            {
                break;
            }

            try
            {
                using var response = await http.GetAsync(new Uri(url + "/health"), cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    Console.WriteLine($"  {label}: serving on {url}");
                    return server;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(200, cancellationToken);
        }

        var output = server.Output();
        await server.DisposeAsync();
        throw new HourglassException($"{label} benchmark: hourglass serve did not become healthy on {url}: {output}");
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    private string Output()
    {
        lock (_output)
        {
            return _output.ToString();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync(CancellationToken.None);
        _process.Dispose();
    }

    private static async Task RunAsync(string program, string[] arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new HourglassException($"benchmark: '{program} {string.Join(' ', arguments)}' failed ({process.ExitCode}): {await stdout}{await stderr}");
        }
    }

    // The folder holding Hourglass.slnx, found upwards from the build output.
    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Hourglass.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new HourglassException($"cannot find the repository root (Hourglass.slnx) above {AppContext.BaseDirectory}; run the benchmark from the source tree.");
    }
}
