using System.Text.Json.Nodes;
using Hourglass.Orders;
using Hourglass.Policies;
using static Hourglass.Tests.Orders.OrderBuilder;

namespace Hourglass.Tests.Orders;

public sealed class OrderDeciderTests
{
    private static readonly TimeZoneInfo s_utc = TimeZoneInfo.Utc;

    // Monday 2 March 2026, 10:00 UTC.
    private static readonly DateTimeOffset s_now = new(2026, 3, 2, 10, 0, 0, TimeSpan.Zero);

    // ----- nothing wrong -----

    [Fact]
    public void CleanOrder_IsValidated()
    {
        var order = new OrderBuilder().Build();

        var outcome = Decide(order);

        Assert.Equal("validated", outcome.Status);
        Assert.Equal(("passed", "passed", "passed"), (outcome.PricingStatus, outcome.CreditStatus, outcome.RequirementsStatus));
        Assert.Equal(0, outcome.Attempts);
        Assert.Empty(outcome.Fixes);
        Assert.Empty(outcome.Exceptions);
        Assert.Null(outcome.ApprovalReason);
        Assert.Empty(outcome.PolicyFindings);
        Assert.Same(order, outcome.Final);
        Assert.Equal("default", (string?)outcome.Results["policy_version"]);
    }

    // ----- auto-fix -----

    [Fact]
    public void PriceFixWithinCeiling_IsApplied_AndTotalsRecomputedInTheSameAttempt()
    {
        // The widget is charged 95 (list 100): a 5.26% change, within the 10% ceiling. The stated totals match the wrong
        // price: 190 + 100 = 290, + 10 shipping = 300.
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 95m), Line(Gadget, 4, 25m)], ShippingAmount = 10m }.Build();
        Assert.Equal((290m, 300m), (order.Subtotal, order.Total));

        var outcome = Decide(order);

        Assert.Equal("validated", outcome.Status);
        Assert.Equal(1, outcome.Attempts);
        Assert.Equal(["apply_rule_price", "recompute_totals"], outcome.Fixes.Select(f => f.Fix.Type));
        Assert.All(outcome.Fixes, f => Assert.Equal(1, f.Attempt));
        Assert.All(outcome.Fixes, f => Assert.Equal("default", f.PolicyVersion));
        Assert.Equal(order.Lines[0].Id, outcome.Fixes[0].Fix.LineId);
        Assert.Equal(5.26m, outcome.Fixes[0].Fix.PriceChangePct);
        Assert.Equal("fixed", outcome.PricingStatus);
        Assert.Equal("passed", outcome.CreditStatus);
        Assert.Equal("passed", outcome.RequirementsStatus);
        Assert.Empty(outcome.Exceptions);

        var line = outcome.Final.Lines[0];
        Assert.Equal((100m, 0m), (line.UnitPrice, line.DiscountPct));
        Assert.Equal(order.Lines[1], outcome.Final.Lines[1]);
        Assert.Equal((300m, 310m), (outcome.Final.Subtotal, outcome.Final.Total));
        Assert.Equal((290m, 300m), (outcome.Fixes[1].Fix.Before["subtotal"]!.GetValue<decimal>(), outcome.Fixes[1].Fix.After["subtotal"]!.GetValue<decimal>()));
        Assert.Equal(2, outcome.Results["fixes"]!.GetValue<int>());
    }

    [Fact]
    public void PriceFixWithDiscountWithinCeiling_IsApplied()
    {
        // 100 less 4% = 96: 4.17% and 4 points, both within the ceiling.
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 100m, discountPct: 4m)] }.Build();

        var outcome = Decide(order);

        Assert.Equal("validated", outcome.Status);
        Assert.Equal((100m, 0m), (outcome.Final.Lines[0].UnitPrice, outcome.Final.Lines[0].DiscountPct));
        Assert.Equal(200m, outcome.Final.Total);
    }

    [Fact]
    public void LineAndAddressFixesAndTotals_AllInOneAttempt()
    {
        var fallback = CompleteShipTo();
        var order = new OrderBuilder
        {
            Lines = [Line(Widget, 2, 95m), Line(Gadget, 4, 24m)],
            ShipTo = new JsonObject { ["line1"] = "1 Harbour Road" },
            Account = DefaultAccount with { DefaultShipTo = fallback },
        }.Build();

        var outcome = Decide(order);

        Assert.Equal("validated", outcome.Status);
        Assert.Equal(1, outcome.Attempts);
        Assert.Equal(["apply_rule_price", "apply_rule_price", "fill_ship_to", "recompute_totals"], outcome.Fixes.Select(f => f.Fix.Type).Order(StringComparer.Ordinal));
        Assert.Equal("recompute_totals", outcome.Fixes[^1].Fix.Type);
        Assert.Equal(("fixed", "passed", "fixed"), (outcome.PricingStatus, outcome.CreditStatus, outcome.RequirementsStatus));
        Assert.True(JsonNode.DeepEquals(fallback, outcome.Final.ShipTo));
        Assert.Equal(300m, outcome.Final.Total);
    }

    [Fact]
    public void PriceFixBeyondCeiling_IsNeverApplied()
    {
        // Charged 80, list 100: a 25% change, beyond the 10% ceiling.
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 80m), Line(Gadget, 4, 25m)] }.Build();

        var outcome = Decide(order);

        Assert.Equal("exception", outcome.Status);
        Assert.Empty(outcome.Fixes);
        Assert.Equal(order.Lines[0], outcome.Final.Lines[0]);
        Assert.Equal((260m, 260m), (outcome.Final.Subtotal, outcome.Final.Total));
        var exception = Assert.Single(outcome.Exceptions);
        Assert.Equal("price_mismatch", exception.Type);
        Assert.Equal(order.Lines[0].Id, exception.LineId);
        Assert.Contains("beyond policy", exception.Message, StringComparison.Ordinal);
        Assert.Contains("auto-fix-ceiling", exception.Message, StringComparison.Ordinal);
        Assert.Equal("failed", outcome.PricingStatus);
        var finding = Assert.Single(outcome.PolicyFindings);
        Assert.Equal("order_auto_fix", finding.ActionKind);
        Assert.Equal(PolicyVerdict.Deny, finding.Decision.Verdict);
    }

    [Fact]
    public void DiscountFixBeyondCeiling_IsNeverApplied()
    {
        // 100 less 6% = 94: the price moves 6.38% (within 10%) but the discount 6 points (beyond 5).
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 100m, discountPct: 6m)] }.Build();

        var outcome = Decide(order);

        Assert.Equal("exception", outcome.Status);
        Assert.Empty(outcome.Fixes);
        Assert.Equal(order.Lines[0], outcome.Final.Lines[0]);
        Assert.Contains("beyond policy", Assert.Single(outcome.Exceptions).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OneFixWithinAndOneBeyondCeiling_OnlyTheRefusedOneIsTheException()
    {
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 95m), Line(Gadget, 4, 20m)] }.Build();

        var outcome = Decide(order);

        Assert.Equal("exception", outcome.Status);
        Assert.Equal(1, outcome.Attempts);
        Assert.Equal(["apply_rule_price", "recompute_totals"], outcome.Fixes.Select(f => f.Fix.Type));
        Assert.Equal(100m, outcome.Final.Lines[0].UnitPrice);
        Assert.Equal(20m, outcome.Final.Lines[1].UnitPrice);
        Assert.Equal(280m, outcome.Final.Total);
        var exception = Assert.Single(outcome.Exceptions);
        Assert.Equal(order.Lines[1].Id, exception.LineId);
        Assert.Contains("beyond policy", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MaxAttemptsZero_NothingIsFixed()
    {
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 95m)], MaxAutoFixAttempts = 0 }.Build();

        var outcome = Decide(order);

        Assert.Equal("exception", outcome.Status);
        Assert.Equal(0, outcome.Attempts);
        Assert.Empty(outcome.Fixes);
        Assert.Same(order, outcome.Final);
        var exception = Assert.Single(outcome.Exceptions);
        Assert.Equal("price_mismatch", exception.Type);
        Assert.EndsWith("; not fixed within 0 auto-fix attempts", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AttemptsAlreadyUsedUp_NothingIsFixed()
    {
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 95m)], AutoFixAttempts = 3, MaxAutoFixAttempts = 3, Subtotal = 190m, Total = 191m }.Build();

        var outcome = Decide(order);

        Assert.Equal("exception", outcome.Status);
        Assert.Equal(3, outcome.Attempts);
        Assert.Empty(outcome.Fixes);
        Assert.Equal(["price_mismatch", "totals_mismatch"], outcome.Exceptions.Select(e => e.Type));
        Assert.All(outcome.Exceptions, e => Assert.EndsWith("not fixed within 3 auto-fix attempts", e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void UnfixableIssue_IsAnException()
    {
        var order = new OrderBuilder { Account = DefaultAccount with { RequiresPo = true }, PoNumber = null }.Build();

        var outcome = Decide(order);

        Assert.Equal("exception", outcome.Status);
        Assert.Equal("missing_po", Assert.Single(outcome.Exceptions).Type);
        Assert.Equal("failed", outcome.RequirementsStatus);
        Assert.Equal(0, outcome.Attempts);
    }

    // ----- credit -----

    [Fact]
    public void CreditOverLimit_NeedsApprovalByDefault()
    {
        var order = new OrderBuilder { Account = DefaultAccount with { CreditLimit = 299.99m } }.Build();

        var outcome = Decide(order);

        Assert.Equal("needs_approval", outcome.Status);
        Assert.Empty(outcome.Exceptions);
        Assert.Equal("failed", outcome.CreditStatus);
        Assert.NotNull(outcome.ApprovalReason);
        Assert.StartsWith("exposure 300.00 against the account's limit 299.99: 0.01 over", outcome.ApprovalReason, StringComparison.Ordinal);
    }

    [Fact]
    public void CreditOverLimit_IsAnExceptionWhenTheTenantSaysSo()
    {
        var order = new OrderBuilder { SettingsJson = """{ "credit_over_limit": "exception" }""", Account = DefaultAccount with { CreditLimit = 299.99m } }.Build();

        var outcome = Decide(order);

        Assert.Equal("exception", outcome.Status);
        var exception = Assert.Single(outcome.Exceptions);
        Assert.Equal("credit_limit", exception.Type);
        Assert.Equal(OrderCheck.Credit, exception.Check);
        Assert.Null(outcome.ApprovalReason);
    }

    [Fact]
    public void CreditAtTheLimit_IsValidated()
    {
        var order = new OrderBuilder { SettingsJson = """{ "credit_over_limit": "exception" }""", Account = DefaultAccount with { CreditLimit = 300m } }.Build();

        Assert.Equal("validated", Decide(order).Status);
    }

    [Fact]
    public void CreditOverLimit_Approved_IsValidated()
    {
        var order = new OrderBuilder { Account = DefaultAccount with { CreditLimit = 100m }, ApprovalDecision = "approved", ApprovedBy = "sam" }.Build();

        var outcome = Decide(order);

        Assert.Equal("validated", outcome.Status);
        Assert.Equal("passed", outcome.CreditStatus);
        Assert.Equal("exposure 300.00 against the account's limit 100.00: over, approved by sam", (string?)outcome.Results["credit"]);
    }

    [Fact]
    public void CreditOverLimit_Overridden_IsValidated()
    {
        var order = new OrderBuilder
        {
            SettingsJson = """{ "credit_over_limit": "exception" }""",
            Account = DefaultAccount with { CreditLimit = 100m },
            CreditOverrideBy = "cfo",
            CreditOverrideReason = "prepaid by wire",
        }.Build();

        Assert.Equal("validated", Decide(order).Status);
    }

    [Fact]
    public void CreditOverLimit_Rejected_IsApprovalRejected()
    {
        var order = new OrderBuilder { Account = DefaultAccount with { CreditLimit = 100m }, ApprovalDecision = "rejected", ApprovedBy = "sam" }.Build();

        var outcome = Decide(order);

        Assert.Equal("exception", outcome.Status);
        var exception = Assert.Single(outcome.Exceptions);
        Assert.Equal("approval_rejected", exception.Type);
        Assert.Contains("sam", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreditHold_NeedsApproval()
    {
        var order = new OrderBuilder { Account = DefaultAccount with { CreditHold = true } }.Build();

        var outcome = Decide(order);

        Assert.Equal("needs_approval", outcome.Status);
        Assert.Empty(outcome.Exceptions);
        Assert.Equal("credit-hold: the account is on credit hold", outcome.ApprovalReason);
        var finding = Assert.Single(outcome.PolicyFindings);
        Assert.Equal("order_release", finding.ActionKind);
        Assert.Equal(PolicyVerdict.RequireApproval, finding.Decision.Verdict);
    }

    [Fact]
    public void CreditHold_Approved_IsValidated()
    {
        var order = new OrderBuilder { Account = DefaultAccount with { CreditHold = true }, ApprovalDecision = "approved", ApprovedBy = "sam" }.Build();

        Assert.Equal("validated", Decide(order).Status);
    }

    // ----- order value approval -----

    [Fact]
    public void OrderValueAbove50000_NeedsApproval()
    {
        // 501 × 100 = 50,100.
        var order = new OrderBuilder { Lines = [Line(Widget, 501, 100m)] }.Build();

        var outcome = Decide(order);

        Assert.Equal("needs_approval", outcome.Status);
        Assert.Equal("large-orders: order value 50100 is above 50000", outcome.ApprovalReason);
        Assert.Equal(("passed", "passed", "passed"), (outcome.PricingStatus, outcome.CreditStatus, outcome.RequirementsStatus));
        Assert.Equal("order-release/" + QueueId, Assert.Single(outcome.PolicyFindings).ActionKey);
    }

    [Fact]
    public void OrderValueExactly50000_IsValidated()
    {
        var order = new OrderBuilder { Lines = [Line(Widget, 500, 100m)] }.Build();

        Assert.Equal("validated", Decide(order).Status);
    }

    [Fact]
    public void OrderValueAbove50000_Approved_IsValidated()
    {
        var order = new OrderBuilder { Lines = [Line(Widget, 501, 100m)], ApprovalDecision = "approved", ApprovedBy = "sam" }.Build();

        var outcome = Decide(order);

        Assert.Equal("validated", outcome.Status);
        Assert.Null(outcome.ApprovalReason);
        Assert.Empty(outcome.Exceptions);
    }

    [Fact]
    public void OrderValueAbove50000_Rejected_IsApprovalRejected()
    {
        var order = new OrderBuilder { Lines = [Line(Widget, 501, 100m)], ApprovalDecision = "rejected", ApprovedBy = "sam" }.Build();

        var outcome = Decide(order);

        Assert.Equal("exception", outcome.Status);
        var exception = Assert.Single(outcome.Exceptions);
        Assert.Equal("approval_rejected", exception.Type);
        Assert.Equal("a person rejected releasing the order (sam)", exception.Message);
    }

    [Fact]
    public void OrderValueJudgedAfterTheFixes()
    {
        // Charged 95 × 510 = 48,450; at the rule price 100 it is 51,000: above the threshold once fixed.
        var order = new OrderBuilder { Lines = [Line(Widget, 510, 95m)] }.Build();

        var outcome = Decide(order);

        Assert.Equal("needs_approval", outcome.Status);
        Assert.Equal(51000m, outcome.Final.Total);
        Assert.Equal("large-orders: order value 51000 is above 50000", outcome.ApprovalReason);
    }

    // ----- custom policies -----

    [Fact]
    public void CustomPolicyWithoutOrderRelease_IsAPolicyException()
    {
        var policy = Custom("""{ "schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message", "order_auto_fix"] }""");

        var outcome = OrderDecider.Decide(new OrderBuilder().Build(), policy, s_utc, s_now);

        Assert.Equal("exception", outcome.Status);
        var exception = Assert.Single(outcome.Exceptions);
        Assert.Equal("policy", exception.Type);
        Assert.StartsWith("the policy does not allow releasing the order: default_decision:", exception.Message, StringComparison.Ordinal);
        Assert.Equal("v1", (string?)outcome.Results["policy_version"]);
    }

    [Fact]
    public void CustomPolicyWithoutOrderActions_NoFixIsApplied()
    {
        var policy = Custom("""{ "schema": "hourglass.policy/v1", "actions": ["touch_task"] }""");
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 99m)] }.Build();

        var outcome = OrderDecider.Decide(order, policy, s_utc, s_now);

        Assert.Equal("exception", outcome.Status);
        Assert.Empty(outcome.Fixes);
        var exception = Assert.Single(outcome.Exceptions);
        Assert.Equal("price_mismatch", exception.Type);
        Assert.Contains("beyond policy (default_decision:", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CustomPolicyDefaultAllow_WithoutOrderKinds_IsValidated()
    {
        var policy = Custom("""{ "schema": "hourglass.policy/v1", "default_decision": "allow", "actions": ["touch_task"] }""");
        var order = new OrderBuilder { Lines = [Line(Widget, 501, 99m)] }.Build();

        var outcome = OrderDecider.Decide(order, policy, s_utc, s_now);

        // No order_value_approval rule in this document: a large order is released, and the fix is allowed.
        Assert.Equal("validated", outcome.Status);
        Assert.Equal(["apply_rule_price", "recompute_totals"], outcome.Fixes.Select(f => f.Fix.Type));
        Assert.All(outcome.Fixes, f => Assert.Equal("v1", f.PolicyVersion));
        Assert.Empty(outcome.PolicyFindings);
    }

    [Fact]
    public void CustomPolicyCeiling_Bounds_TheFix()
    {
        var policy = Custom("""
            { "schema": "hourglass.policy/v1", "actions": ["order_auto_fix", "order_release"],
              "rules": [ { "id": "tight", "kind": "auto_fix_ceiling", "max_price_change_pct": 1 } ] }
            """);

        var small = OrderDecider.Decide(new OrderBuilder { Lines = [Line(Widget, 2, 99.5m)] }.Build(), policy, s_utc, s_now);
        var large = OrderDecider.Decide(new OrderBuilder { Lines = [Line(Widget, 2, 98m)] }.Build(), policy, s_utc, s_now);

        Assert.Equal("validated", small.Status);
        Assert.Equal("exception", large.Status);
        Assert.Contains("beyond policy (tight:", Assert.Single(large.Exceptions).Message, StringComparison.Ordinal);
    }

    // ----- helpers -----

    private static OrderOutcome Decide(OrderSnapshot order) => OrderDecider.Decide(order, PolicyStore.BuiltIn, s_utc, s_now);

    private static PolicyVersion Custom(string json) => new(PolicyDocument.Parse(json), "v1", 1, null, null);
}
