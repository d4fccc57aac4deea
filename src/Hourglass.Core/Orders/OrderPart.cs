using Hourglass.Cycles;

namespace Hourglass.Orders;

/// <summary>
/// The order processor's part of every cycle: in Plan it drains its tenant's order queue (up to
/// <see cref="MaxOrdersPerCycle"/>; a standalone <c>hourglass orders process</c> drains larger queues between cycles),
/// and for "what moved" it reports the queue: pending, needing approval, open exceptions, and what this cycle
/// validated, fixed and raised. A dry run processes nothing.
/// </summary>
internal sealed class OrderPart(int maxOrdersPerCycle = OrderPart.MaxOrdersPerCycle) : ICyclePart
{
    public const int MaxOrdersPerCycle = 1_000;

    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<CycleContext, OrderPassResult> _passes = [];

    public string Name => "orders";

    public async Task<IReadOnlyList<ProposedAction>> ProposeAsync(CycleContext context, CancellationToken cancellationToken)
    {
        if (!context.DryRun)
        {
            var processor = new OrderProcessor(context.Database.DataSource, new OrderProcessorOptions { WorkerId = $"cycle:{context.RunId}" });
            _passes.AddOrUpdate(context, await processor.DrainAsync(context.TenantId, context.RunId, maxOrdersPerCycle, cancellationToken));
        }

        return [];
    }

    public async Task<IReadOnlyDictionary<string, decimal>> MeasureAsync(CycleContext context, CancellationToken cancellationToken)
    {
        var (pending, needsApproval, openExceptions) = await OrderStore.CycleCountsAsync(context.Database.DataSource, context.TenantId, cancellationToken);
        var metrics = new Dictionary<string, decimal>(StringComparer.Ordinal)
        {
            ["pending"] = pending,
            ["needs_approval"] = needsApproval,
            ["open_exceptions"] = openExceptions,
        };
        if (_passes.TryGetValue(context, out var pass))
        {
            metrics["validated"] = pass.Validated;
            metrics["fixes"] = pass.Fixes;
            metrics["exceptions_raised"] = pass.Exceptions;
        }

        return metrics;
    }
}
