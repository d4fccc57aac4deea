using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Npgsql;

namespace Hourglass.Engagement;

/// <summary>
/// The engagement engine's part of every cycle: refreshes the tenant's clock compliance (in React, so the
/// numbers include this hour's touches) and reports compliance and the overdue count for "what moved".
/// </summary>
public sealed class EngagementCompliancePart : ICyclePart
{
    public string Name => "engagement";

    public async Task<PartReaction?> ReactAsync(CycleContext context, DateTimeOffset? since, CancellationToken cancellationToken)
    {
        if (context.DryRun)
        {
            return null;
        }

        var changed = await context.Database.InTransactionAsync(async (connection, transaction) =>
        {
            await using var command = new NpgsqlCommand("select public.refresh_engagement_compliance($1)", connection, transaction);
            command.Parameters.Add(new() { Value = context.TenantId });
            return (int)(await command.ExecuteScalarAsync(cancellationToken))!;
        }, cancellationToken);
        return new PartReaction(new JsonObject { ["clocks_changed_by_refresh"] = changed }, []);
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
