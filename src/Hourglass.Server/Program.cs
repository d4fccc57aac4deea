using System.CommandLine;
using System.Runtime.InteropServices;
using Hourglass;
using Hourglass.Server.Cli;
using Npgsql;

// The `hourglass` executable. Every user-facing failure ends as one line on stderr and a non-zero exit:
// 1 for a failed operation (or a failed verification), 2 for a command line that does not parse.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};

// SIGTERM (docker stop, systemd, Kubernetes) stops as Ctrl+C does: the running cycles end, the lease is
// released and the embedded database stops, instead of the process dying mid-cycle.
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    cancellation.Cancel();
});

var root = HourglassCommands.Build();
var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    foreach (var error in parse.Errors)
    {
        Console.Error.WriteLine($"hourglass: {error.Message}");
    }

    Console.Error.WriteLine("Run 'hourglass --help' for usage.");
    return 2;
}

using var telemetry = Telemetry.FromEnvironment();
try
{
    // Errors are reported below, as one line each; System.CommandLine's own handler would print a stack trace.
    return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }, cancellation.Token);
}
catch (HourglassException ex)
{
    Console.Error.WriteLine($"hourglass: {ex.Message}");
    return 1;
}
catch (PostgresException ex)
{
    Console.Error.WriteLine($"hourglass: database error {ex.SqlState}: {ex.MessageText}");
    return 1;
}
catch (NpgsqlException ex)
{
    Console.Error.WriteLine($"hourglass: database connection failed: {ex.InnerException?.Message ?? ex.Message}");
    return 1;
}
catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
{
    Console.Error.WriteLine("hourglass: cancelled");
    return 130;
}
