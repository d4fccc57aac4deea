using Hourglass.Cycles;
using Npgsql;

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
                await using var command = new NpgsqlCommand("select public.refresh_engagement_compliance($1)", connection, transaction);
                command.Parameters.Add(new() { Value = context.TenantId });
                await command.ExecuteScalarAsync(cancellationToken);
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
        await using var movement = context.Database.DataSource.CreateCommand("""
            select m.newly_overdue, m.recovered
            from public.engagement_movement($1, coalesce(
              (select r.started_at from public.agent_autonomous_runs r
               where r.tenant_id = $1 and r.id <> $2 and r.status in ('completed', 'partial', 'failed')
               order by r.started_at desc limit 1),
              hourglass.now() - interval '1 hour')) m
            """);
        movement.Parameters.Add(new() { Value = context.TenantId });
        movement.Parameters.Add(new() { Value = context.RunId });
        await using var moved = await movement.ExecuteReaderAsync(cancellationToken);
        await moved.ReadAsync(cancellationToken);
        metrics["newly_overdue"] = moved.GetInt64(0);
        metrics["recovered"] = moved.GetInt64(1);
        return metrics;
    }
}
