using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Hourglass.Cycles;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cycles;

[CollectionDefinition(nameof(TelemetryCollection), DisableParallelization = true)]
public sealed class TelemetryCollection
{
}

/// <summary>The metrics and traces a cycle emits; alone in its collection, since listeners are process-wide.</summary>
[Collection(nameof(TelemetryCollection))]
public sealed class CycleTelemetryTests : DatabaseTest
{
    private static readonly DateTimeOffset s_start = new(2026, 7, 7, 7, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Cycle_EmitsCountersPhaseDurationsAndTaggedSpans()
    {
        await CycleHarness.EnsureSideEffectTableAsync(Db);
        var h = new CycleHarness(Database, s_start);
        await h.SetTimeAsync(s_start);
        var tenant = await h.TenantAsync(s_start);
        h.Part.Targets[tenant] = [Guid.NewGuid(), Guid.NewGuid()];
        var measurements = new ConcurrentBag<(string Instrument, double Value, string Tags)>();
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == CycleTelemetry.Name)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meters.SetMeasurementEventCallback<long>((instrument, value, tags, _) => measurements.Add((instrument.Name, value, Describe(tags))));
        meters.SetMeasurementEventCallback<double>((instrument, value, tags, _) => measurements.Add((instrument.Name, value, Describe(tags))));
        meters.Start();
        var spans = new ConcurrentBag<Activity>();
        using var activities = new ActivityListener
        {
            ShouldListenTo = source => source.Name == CycleTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(activities);

        await h.Worker("w1").RunOnceAsync(default);

        double Sum(string instrument, string tags) => measurements.Where(m => m.Instrument == instrument && m.Tags == tags).Sum(m => m.Value);
        Assert.Equal(1, Sum("hourglass.cycles", "status=started"));
        Assert.Equal(1, Sum("hourglass.cycles", "status=completed"));
        Assert.Equal(1, Sum("hourglass.lease.acquisitions", "result=granted"));
        Assert.Equal(2, Sum("hourglass.actions", "outcome=planned"));
        Assert.Equal(2, Sum("hourglass.actions", "outcome=taken"));
        foreach (var phase in new[] { "plan", "act", "react", "reflect" })
        {
            Assert.Single(measurements, m => m.Instrument == "hourglass.cycle.phase.duration" && m.Tags == $"phase={phase}");
            Assert.Single(spans, s => s.OperationName == phase && Equals(s.GetTagItem("hourglass.tenant_id"), tenant));
        }

        var cycle = Assert.Single(spans, s => s.OperationName == "cycle" && Equals(s.GetTagItem("hourglass.tenant_id"), tenant));
        Assert.All(spans.Where(s => s.OperationName != "cycle" && Equals(s.GetTagItem("hourglass.tenant_id"), tenant)),
            s => Assert.Equal(cycle.SpanId, s.ParentSpanId));
    }

    private static string Describe(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var parts = new List<string>();
        foreach (var tag in tags)
        {
            parts.Add($"{tag.Key}={tag.Value}");
        }

        return string.Join(",", parts);
    }
}
