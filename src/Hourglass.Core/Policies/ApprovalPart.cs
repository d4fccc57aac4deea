using System.Text.Json.Nodes;
using Hourglass.Cycles;

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

        var proposals = new List<ProposedAction>();
        foreach (var (cardId, payloadJson, approvedBy) in await ApprovalCardStore.ApprovedNotRunAsync(context.Database.DataSource, context.TenantId,
                     cancellationToken))
        {
            if (JsonNode.Parse(payloadJson) is not JsonObject card || card["action"] is not JsonObject action
                || (string?)card["action_key"] is not { } key || (string?)action["kind"] is not { } kind)
            {
                continue;
            }

            var payload = action["payload"] as JsonObject is { } original ? original.DeepClone().AsObject() : [];
            payload["approval"] = new JsonObject { ["card_id"] = cardId.ToString(), ["approved_by"] = approvedBy };
            proposals.Add(new ProposedAction(
                kind,
                (string?)action["target_type"],
                Guid.TryParse((string?)action["target_id"], out var target) ? target : null,
                ApprovedPriority,
                $"approved by {approvedBy}: {(string?)action["reason"]}",
                payload)
            {
                Key = key,
            });
        }

        return proposals;
    }
}
