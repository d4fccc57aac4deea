using System.Text.Json.Nodes;
using Hourglass.Policies;

namespace Hourglass.Orders;

/// <summary>A fix applied in an attempt, and the policy version that allowed it.</summary>
internal sealed record AppliedFix(int Attempt, OrderFix Fix, string PolicyVersion);

/// <summary>A policy finding met while deciding an order (an auto-fix beyond the ceiling, a release that needs approval).</summary>
internal sealed record OrderPolicyFinding(string ActionKey, string ActionKind, PolicyDecision Decision);

/// <summary>What processing decided for one order: Status is <c>validated</c>, <c>needs_approval</c> or <c>exception</c>.</summary>
internal sealed record OrderOutcome(
    string Status,
    string PricingStatus,
    string CreditStatus,
    string RequirementsStatus,
    int Attempts,
    IReadOnlyList<AppliedFix> Fixes,
    IReadOnlyList<OrderIssue> Exceptions,
    string? ApprovalReason,
    IReadOnlyList<OrderPolicyFinding> PolicyFindings,
    OrderSnapshot Final,
    JsonObject Results);

/// <summary>
/// Validates an order, applies the fixes it may — each checked against the tenant's policy (an
/// <c>order_auto_fix</c> action; the <c>auto_fix_ceiling</c> rule bounds price and discount changes), at most the
/// entry's remaining <c>max_auto_fix_attempts</c> — and decides: validated, needs approval (credit over the limit
/// by the tenant's choice, or the policy's <c>order_release</c> rules: order value, credit hold), or exception for
/// what could not be fixed. A fix beyond policy is never applied: its issue becomes the exception. Pure.
/// </summary>
internal static class OrderDecider
{
    public static OrderOutcome Decide(OrderSnapshot order, PolicyVersion policy, TimeZoneInfo tenantZone, DateTimeOffset now)
    {
        var snapshot = order;
        var attempts = order.AutoFixAttempts;
        var fixes = new List<AppliedFix>();
        var refused = new Dictionary<OrderIssue, string>();
        var findings = new List<OrderPolicyFinding>();
        var validation = OrderValidator.Validate(snapshot);
        while (attempts < order.MaxAutoFixAttempts)
        {
            var fixable = validation.Issues.Where(i => i.Fix is not null && !refused.Keys.Any(r => r.Type == i.Type && r.LineId == i.LineId)).ToList();
            if (fixable.Count == 0)
            {
                break;
            }

            attempts++;
            var applied = false;
            // Lines and address first; totals are recomputed after them in the same attempt.
            foreach (var issue in fixable.OrderBy(i => i.Fix!.Type == "recompute_totals" ? 1 : 0))
            {
                var fix = issue.Fix!;
                if (fix.Type == "recompute_totals")
                {
                    continue;
                }

                var key = $"order-fix/{order.QueueId}/{order.ClaimToken}/{attempts}/{fix.Type}/{fix.LineId?.ToString() ?? "-"}";
                var decision = PolicyEvaluator.Evaluate(policy.Document, policy.Version,
                    new PolicyAction("order_auto_fix", order.OrderId, AccountId: order.Account.Id, PriceChangePct: fix.PriceChangePct, DiscountChangePct: fix.DiscountChangePct),
                    new TargetFacts(tenantZone, "tenant", CreditHold: order.Account.CreditHold), new PolicyHistory(), now, tenantZone);
                if (decision.Findings.Count > 0)
                {
                    findings.Add(new OrderPolicyFinding(key, "order_auto_fix", decision));
                }

                if (!decision.Permits)
                {
                    refused[issue] = decision.Message ?? decision.VerdictName;
                    continue;
                }

                snapshot = Apply(snapshot, fix);
                fixes.Add(new AppliedFix(attempts, fix, policy.Version));
                applied = true;
            }

            var totals = OrderValidator.Validate(snapshot).Issues.FirstOrDefault(i => i.Type == "totals_mismatch");
            if (totals?.Fix is { } recompute)
            {
                snapshot = Apply(snapshot, recompute);
                fixes.Add(new AppliedFix(attempts, recompute, policy.Version));
                applied = true;
            }

            validation = OrderValidator.Validate(snapshot);
            if (!applied)
            {
                break;
            }
        }

        var exceptions = validation.Issues
            .Where(i => i.Type != "credit_limit" || snapshot.Settings.CreditOverLimitIsException)
            .Select(i => refused.FirstOrDefault(r => r.Key.Type == i.Type && r.Key.LineId == i.LineId) is { Key: not null } r
                ? i with { Message = $"{i.Message}; the fix was not applied: beyond policy ({r.Value})" }
                : i.Fix is not null && attempts >= order.MaxAutoFixAttempts
                    ? i with { Message = $"{i.Message}; not fixed within {order.MaxAutoFixAttempts} auto-fix attempts" }
                    : i)
            .ToList();
        var creditOver = validation.Issues.Any(i => i.Type == "credit_limit");
        string? approval = creditOver && !snapshot.Settings.CreditOverLimitIsException
            ? validation.Issues.First(i => i.Type == "credit_limit").Message
            : null;

        if (exceptions.Count == 0 && order.ApprovalDecision == "rejected")
        {
            exceptions.Add(new OrderIssue("approval_rejected", OrderCheck.Credit, "warning", $"a person rejected releasing the order ({order.ApprovedBy})"));
        }

        if (exceptions.Count == 0 && approval is null)
        {
            // Releasing the order is an action too: order value, credit hold.
            var key = $"order-release/{order.QueueId}";
            var release = PolicyEvaluator.Evaluate(policy.Document, policy.Version,
                new PolicyAction("order_release", order.OrderId, AccountId: order.Account.Id, OrderValue: snapshot.Total,
                    ApprovedBy: order.ApprovalDecision == "approved" ? order.ApprovedBy : null),
                new TargetFacts(tenantZone, "tenant", CreditHold: order.Account.CreditHold), new PolicyHistory(), now, tenantZone);
            if (release.Findings.Count > 0)
            {
                findings.Add(new OrderPolicyFinding(key, "order_release", release));
            }

            if (release.Verdict == PolicyVerdict.RequireApproval)
            {
                approval = release.Message;
            }
            else if (release.Verdict == PolicyVerdict.Deny)
            {
                exceptions.Add(new OrderIssue("policy", OrderCheck.Requirements, "error", $"the policy does not allow releasing the order: {release.Message}"));
            }
        }

        string Status(OrderCheck check) =>
            validation.Issues.Any(i => i.Check == check) ? "failed" : fixes.Any(f => Check(f.Fix.Type) == check) ? "fixed" : "passed";

        var status = exceptions.Count > 0 ? "exception" : approval is not null ? "needs_approval" : "validated";
        var results = new JsonObject
        {
            ["issues"] = new JsonArray(validation.Issues.Select(i => (JsonNode)new JsonObject
            {
                ["type"] = i.Type, ["check"] = i.Check.ToString().ToLowerInvariant(), ["severity"] = i.Severity, ["message"] = i.Message,
                ["line_id"] = i.LineId?.ToString(),
            }).ToArray()),
            ["fixes"] = fixes.Count,
            ["credit"] = validation.CreditNote,
            ["approval"] = approval,
            ["policy_version"] = policy.Version,
        };
        return new OrderOutcome(status, Status(OrderCheck.Pricing), Status(OrderCheck.Credit), Status(OrderCheck.Requirements),
            attempts, fixes, exceptions, approval, findings, snapshot, results);
    }

    private static OrderCheck Check(string fixType) => fixType == "fill_ship_to" ? OrderCheck.Requirements : OrderCheck.Pricing;

    /// <summary>The order with one fix applied (in memory).</summary>
    public static OrderSnapshot Apply(OrderSnapshot order, OrderFix fix) => fix.Type switch
    {
        "apply_rule_price" => order with
        {
            Lines = order.Lines.Select(l => l.Id == fix.LineId
                ? l with { UnitPrice = fix.After["unit_price"]!.GetValue<decimal>(), DiscountPct = fix.After["discount_pct"]!.GetValue<decimal>() }
                : l).ToList(),
        },
        "fill_ship_to" => order with { ShipTo = fix.After["ship_to"]!.DeepClone().AsObject() },
        "recompute_totals" => order with { Subtotal = fix.After["subtotal"]!.GetValue<decimal>(), Total = fix.After["total"]!.GetValue<decimal>() },
        _ => throw new ArgumentOutOfRangeException(nameof(fix), fix.Type, "unknown fix"),
    };
}
