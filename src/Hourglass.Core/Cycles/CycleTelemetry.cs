using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Hourglass.Cycles;

/// <summary>
/// The cycle's metrics and traces, through the BCL's Meter and ActivitySource: OpenTelemetry's .NET SDK
/// listens to them by name ("Hourglass"), so any exporter (Prometheus, OTLP) picks them up.
/// </summary>
internal static class CycleTelemetry
{
    public const string Name = "Hourglass";

    public static readonly ActivitySource Source = new(Name);

    private static readonly Meter s_meter = new(Name);

    /// <summary>Cycles by outcome: started, completed, partial, failed, skipped, abandoned.</summary>
    public static readonly Counter<long> Cycles = s_meter.CreateCounter<long>("hourglass.cycles", description: "Tenant cycles by outcome");

    public static readonly Histogram<double> PhaseDuration = s_meter.CreateHistogram<double>(
        "hourglass.cycle.phase.duration", unit: "s", description: "Duration of each cycle phase");

    /// <summary>Lease acquisitions by result: granted or contended.</summary>
    public static readonly Counter<long> LeaseAcquisitions = s_meter.CreateCounter<long>(
        "hourglass.lease.acquisitions", description: "Tenant lease acquisitions by result");

    /// <summary>Actions by outcome: planned, taken, blocked, failed, deferred.</summary>
    public static readonly Counter<long> Actions = s_meter.CreateCounter<long>("hourglass.actions", description: "Cycle actions by outcome");
}
