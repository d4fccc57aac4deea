using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Npgsql;

namespace Hourglass.Policies;

/// <summary>
/// Approvals in the cycle: open approval cards past their due time expire; actions a person approved (within the
/// last 7 days) and that have not run yet are proposed first, under the key they were first proposed with, carrying
/// who approved them. The enforcer checks them again at that moment: an approval satisfies the rules that asked for
/// it, never a deny — if the policy or the facts changed since, the action is blocked and says why.
/// </summary>
internal sealed class ApprovalPart : ICyclePart
{
    /// <summary>Approved actions go before anything a cycle proposes of its own.</summary>
    public const decimal ApprovedPriority = 1_000_000m;

    public string Name => "approvals";

    public async Task<IReadOnlyList<ProposedAction>> ProposeAsync(CycleContext context, CancellationToken cancellationToken)
    {
        if (!context.DryRun)
        {
            await context.Database.InTransactionAsync(async (connection, transaction) =>
            {
                await ApprovalCardStore.ExpireApprovalCardsAsync(connection, transaction, context.TenantId, cancellationToken);
            }, cancellationToken);
        }

        await using var command = context.Database.DataSource.CreateCommand("""
            select k.id, k.payload::text, k.completed_by
            from public.cards k
            where k.tenant_id = $1 and k.kind = 'approval' and k.status = 'done' and k.completed_at > hourglass.now() - interval '7 days'
              and k.payload -> 'approval' ->> 'decision' = 'approved'
              and not exists (select 1 from public.agent_actions a
                              where a.tenant_id = k.tenant_id and a.idempotency_key = k.payload ->> 'action_key' and a.status = 'succeeded')
            order by k.completed_at
            """);
        command.Parameters.Add(new() { Value = context.TenantId });
        var proposals = new List<ProposedAction>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (JsonNode.Parse(reader.GetString(1)) is not JsonObject card || card["action"] is not JsonObject action
                || (string?)card["action_key"] is not { } key || (string?)action["kind"] is not { } kind)
            {
                continue;
            }

            var payload = action["payload"] as JsonObject is { } original ? original.DeepClone().AsObject() : [];
            payload["approval"] = new JsonObject { ["card_id"] = reader.GetGuid(0).ToString(), ["approved_by"] = reader.GetString(2) };
            proposals.Add(new ProposedAction(
                kind,
                (string?)action["target_type"],
                Guid.TryParse((string?)action["target_id"], out var target) ? target : null,
                ApprovedPriority,
                $"approved by {reader.GetString(2)}: {(string?)action["reason"]}",
                payload)
            {
                Key = key,
            });
        }

        return proposals;
    }
}
