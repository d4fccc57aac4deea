using Hourglass.Storage;
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

    // The cycle's reads of approval cards (statements moved from the approval part and the touch part).

    /// <summary>The statement of <see cref="ApprovedNotRunAsync"/>: <c>$1</c> the tenant.</summary>
    internal const string ApprovedNotRunSql = """
        select k.id, k.payload::text, k.completed_by
        from public.cards k
        where k.tenant_id = $1 and k.kind = 'approval' and k.status = 'done' and k.completed_at > hourglass.now() - interval '7 days'
          and k.payload -> 'approval' ->> 'decision' = 'approved'
          and not exists (select 1 from public.agent_actions a
                          where a.tenant_id = k.tenant_id and a.idempotency_key = k.payload ->> 'action_key' and a.status = 'succeeded')
        order by k.completed_at
        """;

    /// <summary>
    /// The tenant's approval cards a person approved in the last 7 days whose action has not succeeded yet (the ledger's
    /// <c>agent_actions</c>, by the card's action key), oldest decision first: the card's id, its payload as JSON, who approved.
    /// </summary>
    public static Task<IReadOnlyList<(Guid CardId, string PayloadJson, string ApprovedBy)>> ApprovedNotRunAsync(NpgsqlDataSource dataSource, Guid tenantId,
        CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand(ApprovedNotRunSql);
        command.Parameters.Add(new() { Value = tenantId });
        return StoreReads.ListAsync(command, r => (r.GetGuid(0), r.GetString(1), r.GetString(2)), cancellationToken);
    }

    /// <summary>Contacts and accounts a person declined a message to (an approval card dismissed) in the last 7 days.</summary>
    public static async Task<HashSet<Guid>> DeclinedTargetsAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select distinct entity_id from public.cards
            where tenant_id = $1 and kind = 'approval' and status = 'dismissed' and completed_at > hourglass.now() - interval '7 days'
              and entity_id is not null
            """);
        command.Parameters.Add(new() { Value = tenantId });
        var declined = new HashSet<Guid>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            declined.Add(reader.GetGuid(0));
        }

        return declined;
    }

    /// <summary>
    /// <c>decide_approval</c> of card $1 ($2 approve, $3 note) for the person $4 names, run by the CLI as that person
    /// (<c>ActingPerson</c>); returns the outcome.
    /// </summary>
    internal const string DecideApprovalAsSql = "select public.decide_approval($1, $2, $3, $4)";

    // The part's function as the simulator calls it.

    /// <summary><c>decide_approval</c> of a card in the name of <paramref name="decidedBy"/>, as a command of the caller's batch (the simulator's managers).</summary>
    public static NpgsqlBatchCommand DecideApprovalAsCommand(Guid cardId, bool approve, string notes, string decidedBy) =>
        new(DecideApprovalAsSql) { Parameters = { new() { Value = cardId }, new() { Value = approve }, new() { Value = notes }, new() { Value = decidedBy } } };
}
