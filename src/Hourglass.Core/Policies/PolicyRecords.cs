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
            await using var insert = new NpgsqlCommand("""
                insert into public.agent_policy_violations (tenant_id, run_id, policy_key, rule_kind, action_type, action, action_key, decision,
                  severity, blocked, message, policy_version, created_at)
                values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                on conflict (tenant_id, action_key, policy_key) where action_key is not null do nothing
                """, connection, transaction);
            insert.Parameters.Add(new() { Value = context.TenantId });
            insert.Parameters.Add(new() { Value = context.RunId });
            insert.Parameters.Add(new() { Value = finding.RuleId });
            insert.Parameters.Add(new() { Value = finding.RuleKind });
            insert.Parameters.Add(new() { Value = action.Kind });
            insert.Parameters.Add(new() { Value = actionJson.ToJsonString(), NpgsqlDbType = NpgsqlDbType.Jsonb });
            insert.Parameters.Add(new() { Value = key });
            insert.Parameters.Add(new() { Value = PolicyEvaluator.Name(finding.Verdict) });
            insert.Parameters.Add(new() { Value = finding.SeverityName });
            insert.Parameters.Add(new() { Value = !decision.Permits });
            insert.Parameters.Add(new() { Value = finding.Message });
            insert.Parameters.Add(new() { Value = decision.PolicyVersion });
            insert.Parameters.Add(new() { Value = context.Now });
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        if (decision.Findings.FirstOrDefault(f => f.Severity == PolicySeverity.Critical) is { } critical)
        {
            await TenantControl.PauseInTransactionAsync(connection, transaction, context.TenantId, "policy",
                $"critical policy violation: rule '{critical.RuleId}' ({decision.PolicyVersion}) on {action.Kind}: {critical.Message}", context.Now,
                cancellationToken);
        }

        if (decision.Verdict == PolicyVerdict.RequireApproval)
        {
            await using var card = new NpgsqlCommand("""
                insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, run_id, due_at, payload, created_at, updated_at)
                values ($1, 'approval', $2, $3, $4, $5, $6, $7 + make_interval(hours => hourglass.tenant_setting_int($1, 'approval_ttl_hours', $8)), $9, $7, $7)
                on conflict (tenant_id, (payload ->> 'action_key')) where kind = 'approval' and status = 'open' do nothing
                """, connection, transaction);
            var name = (string?)action.Payload?["name"];
            card.Parameters.Add(new() { Value = context.TenantId });
            card.Parameters.Add(new() { Value = $"Approve: {action.Kind.Replace('_', ' ')}{(name is null ? "" : $" for {name}")}" });
            card.Parameters.Add(new() { Value = $"Needs approval: {decision.Message}. Why the agent proposed it: {action.Reason}.{Draft(action)}" });
            card.Parameters.Add(new() { Value = (object?)action.TargetType ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            card.Parameters.Add(new() { Value = (object?)action.TargetId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
            card.Parameters.Add(new() { Value = context.RunId });
            card.Parameters.Add(new() { Value = context.Now });
            card.Parameters.Add(new() { Value = DefaultApprovalTtlHours });
            card.Parameters.Add(new()
            {
                Value = new JsonObject
                {
                    ["action_key"] = key,
                    ["action"] = actionJson.DeepClone(),
                    ["policy_version"] = decision.PolicyVersion,
                    ["rules"] = new JsonArray(decision.DeterminingRules.Select(r => (JsonNode)r).ToArray()),
                }.ToJsonString(),
                NpgsqlDbType = NpgsqlDbType.Jsonb,
            });
            await card.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    // A message waiting for approval is a draft: the card shows what would be sent.
    private static string Draft(ProposedAction action) =>
        action.Kind == "send_message" && action.Payload is { } payload
            ? $"\n\nDraft ({(string?)payload["channel"] ?? "email"}):\nSubject: {(string?)payload["subject"] ?? ""}\n\n{(string?)payload["body"] ?? ""}"
            : "";
}
