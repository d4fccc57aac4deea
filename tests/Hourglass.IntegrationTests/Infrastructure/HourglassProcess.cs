using System.Diagnostics;

namespace Hourglass.IntegrationTests.Infrastructure;

/// <summary>Runs the real <c>hourglass</c> executable (built next to the tests) as a child process.</summary>
internal static class HourglassProcess
{
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError);

    /// <summary>Starts hourglass without waiting for it: for long-running commands (worker) and crash tests.</summary>
    public static Process Start(IReadOnlyDictionary<string, string?>? environment, params string[] arguments)
    {
        var startInfo = StartInfo(environment, arguments);
        startInfo.RedirectStandardOutput = false;
        startInfo.RedirectStandardError = false;
        return Process.Start(startInfo)!;
    }

    public static Task<Result> RunAsync(IReadOnlyDictionary<string, string?>? environment, params string[] arguments) =>
        RunAsync(environment, arguments, standardInput: null);

    /// <summary>Runs hourglass with <paramref name="standardInput"/> written to its standard input (then closed).</summary>
    public static Task<Result> RunAsync(string[] arguments, string standardInput) => RunAsync(null, arguments, standardInput);

    private static async Task<Result> RunAsync(IReadOnlyDictionary<string, string?>? environment, string[] arguments, string? standardInput)
    {
        var startInfo = StartInfo(environment, arguments);
        startInfo.RedirectStandardInput = standardInput is not null;
        using var process = Process.Start(startInfo)!;
        if (standardInput is not null)
        {
            await process.StandardInput.WriteAsync(standardInput);
            process.StandardInput.Close();
        }

        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return new Result(process.ExitCode, await stdout, await stderr);
    }

    private static ProcessStartInfo StartInfo(IReadOnlyDictionary<string, string?>? environment, string[] arguments)
    {
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "hourglass.dll"));
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // A clean slate: the tests say which database to use.
        startInfo.Environment.Remove("HOURGLASS_DATABASE_URL");
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            startInfo.Environment[key] = value;
        }

        return startInfo;
    }

    public static Task<Result> RunAsync(params string[] arguments) => RunAsync(null, arguments);
}
