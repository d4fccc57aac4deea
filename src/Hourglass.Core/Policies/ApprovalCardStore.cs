using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Policies;

/// <summary>An approval card to open for an action a policy holds: what it asks, for whom, from which run, and its payload (with the action key).</summary>
internal sealed record ApprovalCardRequest(Guid TenantId, string Title, string Body, string? EntityType, Guid? EntityId, Guid RunId, DateTimeOffset Now,
    int DefaultTtlHours, string PayloadJson);

/// <summary>
/// The approval cards the policies open and expire. <c>public.cards</c> holds two kinds of card: touch cards, whose
/// statements live in the Engagement part's store, and approval cards, which the Policies part opens for an action
/// it holds for a person; their statements live here, so Policies never reaches into Engagement
/// (docs/development.md, "Where SQL goes").
/// </summary>
internal static class ApprovalCardStore
{
    /// <summary>
    /// Opens an approval card due after the tenant's <c>approval_ttl_hours</c> (or <see cref="ApprovalCardRequest.DefaultTtlHours"/>);
    /// an open card for the same action key is kept as it is.
    /// </summary>
    public static async Task OpenApprovalCardAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, ApprovalCardRequest card,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, run_id, due_at, payload, created_at, updated_at)
            values ($1, 'approval', $2, $3, $4, $5, $6, $7 + make_interval(hours => hourglass.tenant_setting_int($1, 'approval_ttl_hours', $8)), $9, $7, $7)
            on conflict (tenant_id, (payload ->> 'action_key')) where kind = 'approval' and status = 'open' do nothing
            """, connection, transaction);
        command.Parameters.Add(new() { Value = card.TenantId });
        command.Parameters.Add(new() { Value = card.Title });
        command.Parameters.Add(new() { Value = card.Body });
        command.Parameters.Add(new() { Value = (object?)card.EntityType ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = (object?)card.EntityId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = card.RunId });
        command.Parameters.Add(new() { Value = card.Now });
        command.Parameters.Add(new() { Value = card.DefaultTtlHours });
        command.Parameters.Add(new() { Value = card.PayloadJson, NpgsqlDbType = NpgsqlDbType.Jsonb });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Expires the tenant's open approval cards past their due time (they can no longer be decided).</summary>
    public static async Task ExpireApprovalCardsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            update public.cards set status = 'expired', updated_at = hourglass.now()
            where tenant_id = $1 and kind = 'approval' and status = 'open' and due_at < hourglass.now()
            """, connection, transaction);
        command.Parameters.Add(new() { Value = tenantId });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
