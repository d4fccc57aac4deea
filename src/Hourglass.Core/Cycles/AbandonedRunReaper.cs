using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Hourglass.Cycles;

/// <summary>
/// Finds runs left 'running' by a dead worker once their lease has expired, marks them 'abandoned', releases their
/// claims so the tenants run again at once, and counts them as failures (a tenant that keeps killing workers gets
/// paused). Every worker reaps at the start of each pass; the work is one statement in <see cref="RunsStore"/>.
/// </summary>
internal sealed partial class AbandonedRunReaper
{
    private readonly RunsStore _runs;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public AbandonedRunReaper(NpgsqlDataSource dataSource, TimeProvider time, ILogger? logger = null)
    {
        _runs = new RunsStore(dataSource);
        _time = time;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Reaps every abandoned run now; returns how many tenants were given back.</summary>
    public async Task<int> ReapAsync(CancellationToken cancellationToken)
    {
        var reaped = await _runs.ReapAbandonedAsync(_time.GetUtcNow(), cancellationToken);
        foreach (var run in reaped)
        {
            CycleTelemetry.Cycles.Add(1, new KeyValuePair<string, object?>("status", RunStatus.Abandoned.Name()));
            LogReaped(_logger, run.TenantId);
        }

        return reaped.Count;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Marked an abandoned run of tenant {TenantId}; it runs again now")]
    private static partial void LogReaped(ILogger logger, Guid tenantId);
}
