using Hourglass.Cycles;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Hourglass.Server.Cli;

/// <summary>
/// Exports the cycle's metrics and traces with OpenTelemetry's OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT
/// is set (the exporter reads the standard OTEL_* variables: protocol, headers, service name). Without it,
/// nothing is exported and nothing leaves the machine.
/// </summary>
internal sealed class Telemetry : IDisposable
{
    private readonly MeterProvider? _meters;
    private readonly TracerProvider? _tracers;

    private Telemetry(MeterProvider? meters, TracerProvider? tracers)
    {
        _meters = meters;
        _tracers = tracers;
    }

    public static Telemetry FromEnvironment()
    {
        if (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")))
        {
            return new Telemetry(null, null);
        }

        return new Telemetry(
            Sdk.CreateMeterProviderBuilder().AddMeter(CycleTelemetry.Name).AddOtlpExporter().Build(),
            Sdk.CreateTracerProviderBuilder().AddSource(CycleTelemetry.Name).AddOtlpExporter().Build());
    }

    public void Dispose()
    {
        // Disposing flushes what is buffered: a short-lived command still exports its cycle.
        _tracers?.Dispose();
        _meters?.Dispose();
    }
}
