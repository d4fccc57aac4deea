using Hourglass.Cycles;
using Npgsql;

namespace Hourglass.Engagement;

/// <summary>
/// The engagement engine's part of every cycle: refreshes the tenant's clock compliance and priorities
/// first thing in Plan (parts plan in order, so the touch part then reads a current queue), and reports
/// compliance and the overdue count for "what moved".
/// </summary>
public sealed class EngagementCompliancePart : ICyclePart
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
        await using var command = context.Database.DataSource.CreateCommand("""
            select count(*),
                   count(*) filter (where compliance_status = 'compliant'),
                   count(*) filter (where compliance_status = 'due_soon'),
                   count(*) filter (where compliance_status = 'overdue')
            from public.engagement_clocks where tenant_id = $1
            """);
        command.Parameters.Add(new() { Value = context.TenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var total = reader.GetInt64(0);
        var metrics = new Dictionary<string, decimal>(StringComparer.Ordinal)
        {
            ["clocks"] = total,
            ["due_soon"] = reader.GetInt64(2),
            ["overdue"] = reader.GetInt64(3),
        };
        if (total > 0)
        {
            metrics["compliance_pct"] = Math.Round(100m * (total - reader.GetInt64(3)) / total, 2);
        }

        return metrics;
    }
}
