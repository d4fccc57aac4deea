using Hourglass.Engagement;
using Hourglass.Policies;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Hourglass.Cycles;

/// <summary>
/// The parts, handlers and enforcer a production cycle runs with. Adding a kind of action means adding its
/// proposer and handler here, not editing the engine.
/// </summary>
public static class CycleComposition
{
    public static CycleEngine CreateEngine(
        NpgsqlDataSource dataSource, TimeProvider? time = null, ISummaryWriter? summaries = null, ILoggerFactory? loggers = null)
    {
        loggers ??= NullLoggerFactory.Instance;
        ICyclePart[] parts = [new EngagementCompliancePart(), new TouchTaskPart()];
        IActionHandler[] handlers = [new TouchTaskHandler()];
        return new CycleEngine(dataSource, parts, handlers, new AllowAllPolicyEnforcer(), summaries, time, loggers.CreateLogger<CycleEngine>());
    }
}
