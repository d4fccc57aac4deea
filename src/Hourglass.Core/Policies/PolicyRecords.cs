using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Policies;

/// <summary>
/// What a decision leaves behind, written in the same transaction as the action's ledger row: a violation row for
/// every finding (deny, require_approval, warn) with its severity, rule, action and run; a pause of the tenant when
/// a finding is critical (the kill switch, with the reason); and, for require_approval, an approval card holding
/// the action. Idempotent per action key: a replayed hour writes nothing twice.
/// </summary>
internal static class PolicyRecords
{
    /// <summary>Hours an approval stays open unless the tenant's <c>approval_ttl_hours</c> setting says otherwise.</summary>
    public const int DefaultApprovalTtlHours = 72;

    public static async Task WriteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CycleContext context, ProposedAction action,
        string key, PolicyDecision decision, CancellationToken cancellationToken)
    {
        if (decision.Findings.Count == 0)
        {
            return;
        }

        var actionJson = new JsonObject
        {
            ["kind"] = action.Kind,
            ["target_type"] = action.TargetType,
            ["target_id"] = action.TargetId?.ToString(),
            ["priority"] = action.Priority,
            ["reason"] = action.Reason,
            ["payload"] = action.Payload?.DeepClone(),
        };
        foreach (var finding in decision.Findings)
        {
            await PolicyStore.RecordViolationAsync(connection, transaction, new PolicyViolationRecord(context.TenantId, context.RunId, finding.RuleId,
                finding.RuleKind, action.Kind, actionJson.ToJsonString(), key, PolicyEvaluator.Name(finding.Verdict), finding.SeverityName,
                !decision.Permits, finding.Message, decision.PolicyVersion, context.Now), cancellationToken);
        }

        if (decision.Findings.FirstOrDefault(f => f.Severity == PolicySeverity.Critical) is { } critical)
        {
            await TenantControl.PauseInTransactionAsync(connection, transaction, context.TenantId, "policy",
                $"critical policy violation: rule '{critical.RuleId}' ({decision.PolicyVersion}) on {action.Kind}: {critical.Message}", context.Now,
                cancellationToken);
        }

        if (decision.Verdict == PolicyVerdict.RequireApproval)
        {
            var name = (string?)action.Payload?["name"];
            await ApprovalCardStore.OpenApprovalCardAsync(connection, transaction, new ApprovalCardRequest(context.TenantId,
                $"Approve: {action.Kind.Replace('_', ' ')}{(name is null ? "" : $" for {name}")}",
                $"Needs approval: {decision.Message}. Why the agent proposed it: {action.Reason}.{Draft(action)}",
                action.TargetType, action.TargetId, context.RunId, context.Now, DefaultApprovalTtlHours,
                new JsonObject
                {
                    ["action_key"] = key,
                    ["action"] = actionJson.DeepClone(),
                    ["policy_version"] = decision.PolicyVersion,
                    ["rules"] = new JsonArray(decision.DeterminingRules.Select(r => (JsonNode)r).ToArray()),
                }.ToJsonString()), cancellationToken);
        }
    }

    // A message waiting for approval is a draft: the card shows what would be sent.
    private static string Draft(ProposedAction action) =>
        action.Kind == "send_message" && action.Payload is { } payload
            ? $"\n\nDraft ({(string?)payload["channel"] ?? "email"}):\nSubject: {(string?)payload["subject"] ?? ""}\n\n{(string?)payload["body"] ?? ""}"
            : "";
}
