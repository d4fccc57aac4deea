using Hourglass.Cycles;

namespace Hourglass.Engagement;

/// <summary>
/// The engagement engine's part of every cycle: refreshes the tenant's clock compliance and priorities
/// first thing in Plan (parts plan in order, so the touch part then reads a current queue), and reports
/// for "what moved" the compliance, the due-soon and overdue counts, and the flows since the previous run:
/// clocks newly overdue and clocks recovered by a touch.
/// </summary>
internal sealed class EngagementCompliancePart : ICyclePart
{
    public string Name => "engagement";

    public async Task<IReadOnlyList<ProposedAction>> ProposeAsync(CycleContext context, CancellationToken cancellationToken)
    {
        // A dry run changes nothing: it plans from the compliance as last refreshed.
        if (!context.DryRun)
        {
            await context.Database.InTransactionAsync(async (connection, transaction) =>
            {
                await EngagementStore.RefreshComplianceAsync(connection, transaction, context.TenantId, cancellationToken);
            }, cancellationToken);
        }

        return [];
    }

    public async Task<IReadOnlyDictionary<string, decimal>> MeasureAsync(CycleContext context, CancellationToken cancellationToken)
    {
        var (total, dueSoon, overdue) = await EngagementStore.ClockCountsAsync(context.Database.DataSource, context.TenantId, cancellationToken);
        var metrics = new Dictionary<string, decimal>(StringComparer.Ordinal)
        {
            ["clocks"] = total,
            ["due_soon"] = dueSoon,
            ["overdue"] = overdue,
        };
        if (total > 0)
        {
            metrics["compliance_pct"] = Math.Round(100m * (total - overdue) / total, 2);
        }

        // Flows since the tenant's previous run began (an hour ago when there is none): clocks that fell overdue
        // and are still overdue, and clocks a touch brought back.
        var (newlyOverdue, recovered) = await RunsStore.EngagementMovementSincePreviousRunAsync(context.Database.DataSource, context.TenantId,
            context.RunId, cancellationToken);
        metrics["newly_overdue"] = newlyOverdue;
        metrics["recovered"] = recovered;
        return metrics;
    }
}
