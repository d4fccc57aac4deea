using System.Text.Json.Nodes;
using Hourglass.Orders;
using static Hourglass.Tests.Orders.OrderBuilder;

namespace Hourglass.Tests.Orders;

public sealed class OrderValidatorTests
{
    // ----- price rule resolution -----

    [Fact]
    public void RuleFor_HigherPriorityBeatsMoreSpecific()
    {
        var specific = Rule("account widget", price: 90m, product: Widget, account: AccountId);
        var general = Rule("everyone, all products", discount: 5m, priority: 10);

        Assert.Equal("everyone, all products", WidgetRule(specific, general));
        Assert.Equal("everyone, all products", WidgetRule(general, specific));
    }

    [Fact]
    public void RuleFor_EqualPriority_AccountBeatsTierBeatsEveryone()
    {
        var account = Rule("account", price: 91m, product: Widget, account: AccountId);
        var tier = Rule("tier", price: 92m, product: Widget, tier: "gold");
        var everyone = Rule("everyone", price: 93m, product: Widget);

        Assert.Equal("account", WidgetRule(everyone, tier, account));
        Assert.Equal("account", WidgetRule(account, tier, everyone));
        Assert.Equal("tier", WidgetRule(everyone, tier));
        Assert.Equal("tier", WidgetRule(tier, everyone));
    }

    [Fact]
    public void RuleFor_EqualPriority_OneProductBeatsAllProducts()
    {
        Assert.Equal("widget", WidgetRule(Rule("all", discount: 3m), Rule("widget", price: 97m, product: Widget)));
        Assert.Equal("tier widget", WidgetRule(Rule("tier all", discount: 3m, tier: "gold"), Rule("tier widget", price: 97m, product: Widget, tier: "gold")));
        Assert.Equal("account widget", WidgetRule(Rule("account all", discount: 3m, account: AccountId), Rule("account widget", price: 97m, product: Widget, account: AccountId)));
    }

    [Fact]
    public void RuleFor_TheCustomerComesBeforeTheProduct()
    {
        // Specificity: account over tier over everyone first, then one product over all (PriceRule.Specificity).
        Assert.Equal("account all", WidgetRule(Rule("tier widget", price: 97m, product: Widget, tier: "gold"), Rule("account all", discount: 3m, account: AccountId)));
        Assert.Equal("tier all", WidgetRule(Rule("everyone widget", price: 97m, product: Widget), Rule("tier all", discount: 3m, tier: "gold")));
    }

    [Fact]
    public void RuleFor_RulesForAnotherAccountTierOrProductDoNotApply()
    {
        Assert.Null(WidgetRule(
            Rule("other account", price: 90m, account: OtherAccountId),
            Rule("other tier", price: 90m, tier: "silver"),
            Rule("other product", price: 20m, product: Gadget)));
    }

    [Theory]
    [InlineData(1, "base")]
    [InlineData(9, "base")]
    [InlineData(10, "10+")]
    [InlineData(49, "10+")]
    [InlineData(50, "50+")]
    [InlineData(500, "50+")]
    public void RuleFor_LargestQuantityBreakReachedWins(int quantity, string expected)
    {
        var rules = new[]
        {
            Rule("50+", price: 90m, product: Widget, minQuantity: 50),
            Rule("base", price: 99m, product: Widget),
            Rule("10+", price: 95m, product: Widget, minQuantity: 10),
        };
        var order = new OrderBuilder { Lines = [Line(Widget, quantity, 100m)], PriceRules = rules }.Build();

        Assert.Equal(expected, OrderValidator.RuleFor(order, order.Lines[0])?.Name);
    }

    [Fact]
    public void RuleFor_QuantityOneBelowTheBreakDoesNotQualify()
    {
        var rule = Rule("10+", price: 95m, product: Widget, minQuantity: 10);
        var atBreak = new OrderBuilder { Lines = [Line(Widget, 10, 95m)], PriceRules = [rule] }.Build();
        var below = new OrderBuilder { Lines = [Line(Widget, 9.999m, 95m)], PriceRules = [rule] }.Build();

        Assert.Same(rule, OrderValidator.RuleFor(atBreak, atBreak.Lines[0]));
        Assert.Null(OrderValidator.RuleFor(below, below.Lines[0]));
    }

    [Theory]
    [InlineData(0, null, true)] // valid from the order date
    [InlineData(1, null, false)] // starts tomorrow
    [InlineData(null, 0, true)] // valid to the order date
    [InlineData(null, -1, false)] // ended yesterday
    [InlineData(0, 0, true)] // a one-day rule on the order date
    [InlineData(-10, 10, true)]
    [InlineData(null, null, true)]
    public void RuleFor_ValidityDatesAreInclusive(int? fromOffset, int? toOffset, bool applies)
    {
        var rule = Rule("dated", price: 95m, product: Widget,
            validFrom: fromOffset is { } f ? Today.AddDays(f) : null, validTo: toOffset is { } t ? Today.AddDays(t) : null);
        var order = new OrderBuilder { PriceRules = [rule] }.Build();

        Assert.Equal(applies, OrderValidator.RuleFor(order, order.Lines[0]) is not null);
    }

    [Fact]
    public void RuleFor_CurrencyMustMatch()
    {
        var euro = Rule("euro", price: 80m, product: Widget, currency: "EUR");
        var usd = new OrderBuilder { SettingsJson = """{ "currencies": ["EUR"] }""", PriceRules = [euro] }.Build();
        var eur = usd with { Currency = "EUR" };

        Assert.Null(OrderValidator.RuleFor(usd, usd.Lines[0]));
        Assert.Equal((100m, "list price"), OrderValidator.ExpectedPrice(usd, usd.Lines[0], Catalog[Widget]));
        Assert.Same(euro, OrderValidator.RuleFor(eur, eur.Lines[0]));
        Assert.Equal((80m, "price rule 'euro'"), OrderValidator.ExpectedPrice(eur, eur.Lines[0], Catalog[Widget]));
    }

    [Theory]
    [InlineData(12.5, 87.5)]
    [InlineData(0, 100)]
    [InlineData(33.333, 66.667)]
    [InlineData(100, 0)]
    public void ExpectedPrice_DiscountRule_IsListTimesOneMinusDiscount(decimal discount, decimal expected)
    {
        var order = new OrderBuilder { PriceRules = [Rule("discount", discount: discount, product: Widget)] }.Build();

        Assert.Equal((expected, "price rule 'discount'"), OrderValidator.ExpectedPrice(order, order.Lines[0], Catalog[Widget]));
    }

    [Fact]
    public void ExpectedPrice_FixedPriceRule()
    {
        var order = new OrderBuilder { PriceRules = [Rule("contract", price: 88.25m, product: Widget, account: AccountId)] }.Build();

        Assert.Equal((88.25m, "price rule 'contract'"), OrderValidator.ExpectedPrice(order, order.Lines[0], Catalog[Widget]));
    }

    [Fact]
    public void ExpectedPrice_NoRuleInBaseCurrency_IsListPrice()
    {
        var order = new OrderBuilder { SettingsJson = """{ "currency": "EUR" }""", Currency = "EUR" }.Build();

        Assert.Equal((100m, "list price"), OrderValidator.ExpectedPrice(order, order.Lines[0], Catalog[Widget]));
        Assert.Empty(OrderValidator.Validate(order).Issues);
    }

    [Fact]
    public void NoRuleInNonBaseCurrency_IsUnsupportedCurrency()
    {
        var order = new OrderBuilder
        {
            SettingsJson = """{ "currency": "USD", "currencies": ["EUR"] }""",
            Currency = "EUR",
            Lines = [Line(Widget, 2, 80m), Line(Gadget, 4, 25m)],
            PriceRules = [Rule("euro widget", price: 80m, product: Widget, currency: "EUR")],
        }.Build();

        Assert.Null(OrderValidator.ExpectedPrice(order, order.Lines[1], Catalog[Gadget]));
        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("unsupported_currency", issue.Type);
        Assert.Equal(OrderCheck.Pricing, issue.Check);
        Assert.Equal(order.Lines[1].Id, issue.LineId);
        Assert.Equal("line 2 (G-1): no price rule prices it in EUR", issue.Message);
    }

    // ----- tolerance -----

    [Theory]
    [InlineData(100.004, true)]
    [InlineData(99.996, true)]
    [InlineData(100.005, false)]
    [InlineData(99.995, false)]
    [InlineData(100.01, false)]
    public void NetPrice_WithinHalfACentPasses(decimal unitPrice, bool passes)
    {
        var order = new OrderBuilder { Lines = [Line(Widget, 1, unitPrice)] }.Build();

        var issues = OrderValidator.Validate(order).Issues;

        if (passes)
        {
            Assert.Empty(issues);
        }
        else
        {
            var issue = Assert.Single(issues);
            Assert.Equal("price_mismatch", issue.Type);
            Assert.Equal(order.Lines[0].Id, issue.LineId);
        }
    }

    [Fact]
    public void NetPrice_UsesTheLinesDiscount()
    {
        // 125 less 20% is the list price 100.
        var discounted = new OrderBuilder { Lines = [Line(Widget, 2, 125m, discountPct: 20m)] }.Build();
        Assert.Empty(OrderValidator.Validate(discounted).Issues);

        // 100 less 10% is 90: too low.
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 100m, discountPct: 10m)] }.Build();
        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("price_mismatch", issue.Type);
        Assert.Equal("line 1 (W-1): charged 90.00, the list price says 100.00", issue.Message);
        var fix = Assert.IsType<OrderFix>(issue.Fix);
        Assert.Equal("apply_rule_price", fix.Type);
        Assert.Equal(order.Lines[0].Id, fix.LineId);
        Assert.Equal(100m, fix.Before["unit_price"]!.GetValue<decimal>());
        Assert.Equal(10m, fix.Before["discount_pct"]!.GetValue<decimal>());
        Assert.Equal(100m, fix.After["unit_price"]!.GetValue<decimal>());
        Assert.Equal(0m, fix.After["discount_pct"]!.GetValue<decimal>());
        Assert.Equal(11.11m, fix.PriceChangePct);
        Assert.Equal(10m, fix.DiscountChangePct);
    }

    // ----- price floor -----

    [Fact]
    public void Floor_ExactlyCostPlusMarginPasses()
    {
        // Widget cost 60 + 20% = 72.
        var order = new OrderBuilder
        {
            SettingsJson = """{ "min_margin_pct": 20 }""",
            Lines = [Line(Widget, 2, 72m)],
            PriceRules = [Rule("deal", price: 72m, product: Widget)],
        }.Build();

        Assert.Empty(OrderValidator.Validate(order).Issues);
    }

    [Fact]
    public void Floor_OneCentBelowFails()
    {
        var order = new OrderBuilder
        {
            SettingsJson = """{ "min_margin_pct": 20 }""",
            Lines = [Line(Widget, 2, 71.99m)],
            PriceRules = [Rule("deal", price: 71.99m, product: Widget)],
        }.Build();

        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("below_floor", issue.Type);
        Assert.Equal(OrderCheck.Pricing, issue.Check);
        Assert.Equal(order.Lines[0].Id, issue.LineId);
        Assert.Null(issue.Fix);
        Assert.Equal("line 1 (W-1): the price rule 'deal' 71.99 is below the floor 72.00 (cost plus 20% margin)", issue.Message);
    }

    [Fact]
    public void Floor_WithoutMarginTheCostIsTheFloor()
    {
        var order = new OrderBuilder { Lines = [Line(Gadget, 1, 9.99m)], PriceRules = [Rule("clearance", price: 9.99m, product: Gadget)] }.Build();

        Assert.Equal("below_floor", Assert.Single(OrderValidator.Validate(order).Issues).Type);
    }

    [Fact]
    public void Floor_AppliesToTheListPriceToo()
    {
        // Cost 60 + 70% = 102, above the list price 100.
        var order = new OrderBuilder { SettingsJson = """{ "min_margin_pct": 70 }""", Lines = [Line(Widget, 1, 100m)] }.Build();

        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("below_floor", issue.Type);
        Assert.Contains("the list price 100.00 is below the floor 102.00", issue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Floor_TakesPrecedenceOverPriceMismatchForThatLine()
    {
        // The rule says 71.99 (below the floor 72); the line is charged 100, which the rule would also call a mismatch.
        var order = new OrderBuilder
        {
            SettingsJson = """{ "min_margin_pct": 20 }""",
            Lines = [Line(Widget, 2, 100m), Line(Gadget, 4, 20m)],
            PriceRules = [Rule("deal", price: 71.99m, product: Widget)],
        }.Build();

        var issues = OrderValidator.Validate(order).Issues;

        Assert.Equal(["below_floor", "price_mismatch"], issues.Select(i => i.Type));
        Assert.Equal(order.Lines[0].Id, issues[0].LineId);
        Assert.Equal(order.Lines[1].Id, issues[1].LineId);
        Assert.DoesNotContain(issues, i => i.Type == "price_mismatch" && i.LineId == order.Lines[0].Id);
    }

    [Fact]
    public void Floor_NoCostNoFloor()
    {
        var products = new Dictionary<Guid, ProductData>(Catalog) { [Widget] = Catalog[Widget] with { UnitCost = null } };
        var order = new OrderBuilder
        {
            SettingsJson = """{ "min_margin_pct": 50 }""",
            Products = products,
            Lines = [Line(Widget, 1, 1m)],
            PriceRules = [Rule("give-away", price: 1m, product: Widget)],
        }.Build();

        Assert.Empty(OrderValidator.Validate(order).Issues);
    }

    // ----- totals -----

    [Fact]
    public void Totals_IncludeShippingAndTax()
    {
        // Lines 200 + 100 = 300; + 15.50 shipping + 24.80 tax = 340.30.
        var builder = new OrderBuilder { ShippingAmount = 15.50m, TaxAmount = 24.80m };
        Assert.Equal(340.30m, builder.Build().Total);
        Assert.Empty(OrderValidator.Validate(builder.Build()).Issues);

        var withoutExtras = builder with { Total = 300m };
        var issue = Assert.Single(OrderValidator.Validate(withoutExtras.Build()).Issues);
        Assert.Equal("totals_mismatch", issue.Type);
        Assert.Equal(OrderCheck.Pricing, issue.Check);
        Assert.Equal("subtotal 300.00 and total 300.00; the lines add up to 300.00 and the total to 340.30", issue.Message);
        var fix = Assert.IsType<OrderFix>(issue.Fix);
        Assert.Equal("recompute_totals", fix.Type);
        Assert.Null(fix.LineId);
        Assert.Equal(300m, fix.Before["total"]!.GetValue<decimal>());
        Assert.Equal(300m, fix.After["subtotal"]!.GetValue<decimal>());
        Assert.Equal(340.30m, fix.After["total"]!.GetValue<decimal>());
    }

    [Theory]
    [InlineData(300, 340.30, true)]
    [InlineData(300.004, 340.304, true)]
    [InlineData(299.99, 340.29, false)] // the subtotal is off, the total agrees with it
    [InlineData(300, 340.29, false)]
    [InlineData(300, 340.31, false)]
    [InlineData(300.005, 340.305, false)]
    public void Totals_SubtotalAndTotalAreChecked(decimal subtotal, decimal total, bool passes)
    {
        var order = new OrderBuilder { ShippingAmount = 15.50m, TaxAmount = 24.80m, Subtotal = subtotal, Total = total }.Build();

        var issues = OrderValidator.Validate(order).Issues;

        Assert.Equal(passes ? [] : ["totals_mismatch"], issues.Select(i => i.Type));
    }

    [Fact]
    public void Totals_LineNetsAreRoundedToCentsAwayFromZero()
    {
        // 3 × 10.335 = 31.005 → 31.01 (not 31.00: the half cent rounds away from zero).
        var line = Line(Gadget, 3, 10.335m);
        Assert.Equal(31.01m, line.Net);
        var rule = Rule("odd", price: 10.335m, product: Gadget);

        var exact = new OrderBuilder { Lines = [line], PriceRules = [rule], Subtotal = 31.01m }.Build();
        var banker = new OrderBuilder { Lines = [line], PriceRules = [rule], Subtotal = 31.00m }.Build();

        Assert.Empty(OrderValidator.Validate(exact).Issues);
        Assert.Equal("totals_mismatch", Assert.Single(OrderValidator.Validate(banker).Issues).Type);
    }

    [Fact]
    public void Totals_SubtotalIsTheSumOfRoundedLineNets()
    {
        // Each line is 10.335 → 10.34; the subtotal is 20.68, not round(20.67).
        var rule = Rule("odd", price: 10.335m, product: Gadget);
        var lines = new[] { Line(Gadget, 1, 10.335m), Line(Gadget, 1, 10.335m) };

        Assert.Empty(OrderValidator.Validate(new OrderBuilder { Lines = lines, PriceRules = [rule], Subtotal = 20.68m }.Build()).Issues);
        Assert.Equal("totals_mismatch", Assert.Single(OrderValidator.Validate(new OrderBuilder { Lines = lines, PriceRules = [rule], Subtotal = 20.67m }.Build()).Issues).Type);
    }

    [Fact]
    public void Totals_LineNetUsesTheDiscount()
    {
        // 2 × 125 less 20% = 200.
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 125m, discountPct: 20m)], Subtotal = 200m }.Build();

        Assert.Empty(OrderValidator.Validate(order).Issues);
        Assert.Equal("totals_mismatch", Assert.Single(OrderValidator.Validate(order with { Subtotal = 250m, Total = 250m }).Issues).Type);
    }

    // ----- credit -----

    public static TheoryData<decimal?, string?, decimal, string> CreditPrecedence => new()
    {
        { 1000m, "gold", 1000m, "the account's" },
        { null, "gold", 2000m, "tier gold's" },
        { null, "silver", 3000m, "the tenant's default" },
        { null, null, 3000m, "the tenant's default" },
    };

    [Theory]
    [MemberData(nameof(CreditPrecedence))]
    public void Credit_LimitPrecedence_AccountThenTierThenDefault(decimal? accountLimit, string? tier, decimal limit, string source)
    {
        var order = new OrderBuilder
        {
            SettingsJson = """{ "default_credit_limit": 3000, "credit_limits_by_tier": { "gold": 2000 } }""",
            Account = DefaultAccount with { CreditLimit = accountLimit, Tier = tier },
        }.Build();

        var validation = OrderValidator.Validate(order);

        Assert.Equal(limit, validation.CreditLimit);
        Assert.Equal(300m, validation.Exposure);
        Assert.Equal($"exposure 300.00 against {source} limit {limit:0.00}", validation.CreditNote);
        Assert.True(validation.Passes(OrderCheck.Credit));
    }

    [Fact]
    public void Credit_AccountLimitZeroMeansNoLimit_EvenWithATierLimit()
    {
        var order = new OrderBuilder
        {
            SettingsJson = """{ "default_credit_limit": 100, "credit_limits_by_tier": { "gold": 100 } }""",
            Account = DefaultAccount with { CreditLimit = 0m, OpenBalance = 1_000_000m },
        }.Build();

        var validation = OrderValidator.Validate(order);

        Assert.Empty(validation.Issues);
        Assert.Equal(0m, validation.CreditLimit);
        Assert.Equal("no credit limit (the account's is 0)", validation.CreditNote);
    }

    [Fact]
    public void Credit_TierLimitZeroMeansNoLimit_EvenWithATenantDefault()
    {
        var order = new OrderBuilder { SettingsJson = """{ "default_credit_limit": 100, "credit_limits_by_tier": { "gold": 0 } }""" }.Build();

        var validation = OrderValidator.Validate(order);

        Assert.Empty(validation.Issues);
        Assert.Equal("no credit limit (tier gold's is 0)", validation.CreditNote);
    }

    [Theory]
    [InlineData(1800, true)] // exactly at the limit
    [InlineData(1799.99, false)] // a cent over
    public void Credit_ExposureIsOtherOpenPlusBalancePlusThisOrder(decimal limit, bool passes)
    {
        // 1,000 other open orders + 500 unpaid + 300 this order = 1,800.
        var order = new OrderBuilder
        {
            Account = DefaultAccount with { CreditLimit = limit, OpenBalance = 500m },
            OtherOpenExposure = 1000m,
        }.Build();

        var validation = OrderValidator.Validate(order);

        Assert.Equal(1800m, validation.Exposure);
        Assert.Equal(limit, validation.CreditLimit);
        if (passes)
        {
            Assert.Empty(validation.Issues);
        }
        else
        {
            var issue = Assert.Single(validation.Issues);
            Assert.Equal("credit_limit", issue.Type);
            Assert.Equal(OrderCheck.Credit, issue.Check);
            Assert.Equal(
                "exposure 1800.00 against the account's limit 1799.99: 0.01 over (open orders 1000.00, unpaid 500.00, this order 300.00)",
                issue.Message);
        }
    }

    [Fact]
    public void Credit_UsesTheStatedTotalIncludingShippingAndTax()
    {
        var order = new OrderBuilder { Account = DefaultAccount with { CreditLimit = 340m }, ShippingAmount = 15.50m, TaxAmount = 24.80m }.Build();

        var validation = OrderValidator.Validate(order);

        Assert.Equal(340.30m, validation.Exposure);
        Assert.Equal("credit_limit", Assert.Single(validation.Issues).Type);
    }

    [Fact]
    public void Credit_OverrideOverTheLimitPasses_NamingWho()
    {
        var order = new OrderBuilder
        {
            Account = DefaultAccount with { CreditLimit = 100m },
            CreditOverrideBy = "cfo",
            CreditOverrideReason = "prepaid by wire",
        }.Build();

        var validation = OrderValidator.Validate(order);

        Assert.Empty(validation.Issues);
        Assert.Equal("exposure 300.00 against the account's limit 100.00: over, overridden by cfo (prepaid by wire)", validation.CreditNote);
    }

    [Fact]
    public void Credit_ApprovalOverTheLimitPasses_NamingWho()
    {
        var order = new OrderBuilder { Account = DefaultAccount with { CreditLimit = 100m }, ApprovalDecision = "approved", ApprovedBy = "sam" }.Build();

        var validation = OrderValidator.Validate(order);

        Assert.Empty(validation.Issues);
        Assert.Equal("exposure 300.00 against the account's limit 100.00: over, approved by sam", validation.CreditNote);
    }

    [Fact]
    public void Credit_RejectedApprovalDoesNotPass()
    {
        var order = new OrderBuilder { Account = DefaultAccount with { CreditLimit = 100m }, ApprovalDecision = "rejected", ApprovedBy = "sam" }.Build();

        Assert.Equal("credit_limit", Assert.Single(OrderValidator.Validate(order).Issues).Type);
    }

    // ----- built-in requirements -----

    [Fact]
    public void Requirements_NoLines()
    {
        var order = new OrderBuilder { Lines = [] }.Build();

        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("no_lines", issue.Type);
        Assert.Equal(OrderCheck.Requirements, issue.Check);
        Assert.Equal("the order has no lines", issue.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(-0.5)]
    public void Requirements_QuantityMustBeAboveZero(decimal quantity)
    {
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 100m), Line(Gadget, quantity, 25m)] }.Build();

        // Pricing is skipped: an unpriceable order only adds noise.
        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("non_positive_quantity", issue.Type);
        Assert.Equal(OrderCheck.Requirements, issue.Check);
        Assert.Equal(order.Lines[1].Id, issue.LineId);
        Assert.Equal($"line 2: quantity {quantity.ToString(System.Globalization.CultureInfo.InvariantCulture)} must be more than 0", issue.Message);
    }

    [Fact]
    public void Requirements_UnknownProduct()
    {
        var order = new OrderBuilder { Lines = [Line(Guid.NewGuid(), 1, 100m), Line(null, 1, 5m)] }.Build();

        var issues = OrderValidator.Validate(order).Issues;

        Assert.Equal(["unknown_product", "unknown_product"], issues.Select(i => i.Type));
        Assert.Equal([order.Lines[0].Id, order.Lines[1].Id], issues.Select(i => i.LineId));
        Assert.Equal("line 1: the product is unknown to this tenant", issues[0].Message);
    }

    [Fact]
    public void Requirements_InactiveProduct()
    {
        var order = new OrderBuilder { Lines = [Line(Widget, 2, 100m), Line(Retired, 1, 40m)] }.Build();

        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("inactive_product", issue.Type);
        Assert.Equal(order.Lines[1].Id, issue.LineId);
        Assert.Equal("line 2: R-1 (Retired thing) is no longer sold", issue.Message);
    }

    [Fact]
    public void Requirements_UnsupportedCurrency()
    {
        var order = new OrderBuilder { SettingsJson = """{ "currencies": ["EUR"] }""", Currency = "GBP" }.Build();

        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("unsupported_currency", issue.Type);
        Assert.Equal(OrderCheck.Requirements, issue.Check);
        Assert.Equal("the tenant does not price in GBP (it prices in EUR, USD)", issue.Message);
    }

    [Theory]
    [InlineData(true, null, true)]
    [InlineData(true, "", true)]
    [InlineData(true, "   ", true)]
    [InlineData(true, "PO-7", false)]
    [InlineData(false, null, false)]
    [InlineData(false, "", false)]
    public void Requirements_PoNumberOnlyWhenTheAccountRequiresOne(bool requiresPo, string? poNumber, bool missing)
    {
        var order = new OrderBuilder { Account = DefaultAccount with { RequiresPo = requiresPo }, PoNumber = poNumber }.Build();

        var issues = OrderValidator.Validate(order).Issues;

        Assert.Equal(missing ? ["missing_po"] : [], issues.Select(i => i.Type));
        if (missing)
        {
            Assert.Equal("Acme Corp requires a purchase-order number", issues[0].Message);
        }
    }

    [Fact]
    public void Requirements_IncompleteShipTo_NamesTheMissingFields()
    {
        var shipTo = CompleteShipTo();
        shipTo.Remove("city");
        shipTo["postal_code"] = "  ";
        var order = new OrderBuilder { ShipTo = shipTo }.Build();

        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("incomplete_ship_to", issue.Type);
        Assert.Equal(OrderCheck.Requirements, issue.Check);
        Assert.Equal("the ship-to address lacks city, postal_code and the account has no complete default address", issue.Message);
        Assert.Null(issue.Fix);
    }

    [Fact]
    public void Requirements_NoShipTo_LacksEveryField()
    {
        var order = new OrderBuilder { ShipTo = null }.Build();

        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("the ship-to address lacks line1, city, postal_code, country and the account has no complete default address", issue.Message);
    }

    [Fact]
    public void Requirements_IncompleteShipTo_FixedFromACompleteDefault()
    {
        var fallback = CompleteShipTo();
        fallback["line1"] = "9 Dock Street";
        var order = new OrderBuilder { ShipTo = new JsonObject { ["line1"] = "1 Harbour Road" }, Account = DefaultAccount with { DefaultShipTo = fallback } }.Build();

        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("the ship-to address lacks city, postal_code, country", issue.Message);
        var fix = Assert.IsType<OrderFix>(issue.Fix);
        Assert.Equal("fill_ship_to", fix.Type);
        Assert.True(JsonNode.DeepEquals(fallback, fix.After["ship_to"]));
        Assert.Equal("1 Harbour Road", (string?)fix.Before["ship_to"]!["line1"]);
    }

    [Fact]
    public void Requirements_IncompleteShipTo_IncompleteDefaultIsNoFix()
    {
        var fallback = CompleteShipTo();
        fallback.Remove("country");
        var order = new OrderBuilder { ShipTo = null, Account = DefaultAccount with { DefaultShipTo = fallback } }.Build();

        Assert.Null(Assert.Single(OrderValidator.Validate(order).Issues).Fix);
    }

    [Theory]
    [InlineData(null, 2, true)] // 2 days by default
    [InlineData(null, 1, false)]
    [InlineData(5, 5, true)] // exactly the earliest date
    [InlineData(5, 4, false)] // a day earlier
    [InlineData(5, 30, true)]
    [InlineData(0, 0, true)]
    [InlineData(0, -1, false)]
    public void Requirements_LeadTime(int? leadTimeDays, int requestedOffset, bool passes)
    {
        var order = new OrderBuilder
        {
            SettingsJson = leadTimeDays is { } days ? $$"""{ "lead_time_days": {{days}} }""" : "{}",
            RequestedShipDate = Today.AddDays(requestedOffset),
        }.Build();

        var issues = OrderValidator.Validate(order).Issues;

        Assert.Equal(passes ? [] : ["lead_time"], issues.Select(i => i.Type));
    }

    [Fact]
    public void Requirements_LeadTime_Message()
    {
        var order = new OrderBuilder { SettingsJson = """{ "lead_time_days": 5 }""", RequestedShipDate = new DateOnly(2026, 3, 6) }.Build();

        Assert.Equal(
            "requested ship date 2026-03-06 is before the earliest possible, 2026-03-07 (5 days' lead time)",
            Assert.Single(OrderValidator.Validate(order).Issues).Message);
    }

    [Fact]
    public void Requirements_LeadTime_NoRequestedDateNoCheck()
    {
        var order = new OrderBuilder { SettingsJson = """{ "lead_time_days": 30 }""", RequestedShipDate = null }.Build();

        Assert.Empty(OrderValidator.Validate(order).Issues);
    }

    // ----- tenant requirement rules -----

    // The default order: PO-1001, USD, subtotal = total = 300, 2 lines, tier gold, ship_to US / Portland, requested 2026-03-09.
    [Theory]
    [InlineData("""{ "field": "po_number", "op": "eq", "value": "PO-1001" }""", true)]
    [InlineData("""{ "field": "po_number", "op": "eq", "value": "PO-9" }""", false)]
    [InlineData("""{ "field": "currency", "op": "ne", "value": "EUR" }""", true)]
    [InlineData("""{ "field": "currency", "op": "ne", "value": "USD" }""", false)]
    [InlineData("""{ "field": "ship_to.country", "op": "in", "value": ["US", "CA"] }""", true)]
    [InlineData("""{ "field": "ship_to.country", "op": "in", "value": ["DE", "FR"] }""", false)]
    [InlineData("""{ "field": "ship_to.country", "op": "not_in", "value": ["DE", "FR"] }""", true)]
    [InlineData("""{ "field": "ship_to.country", "op": "not_in", "value": ["US"] }""", false)]
    [InlineData("""{ "field": "total", "op": "lte", "value": 300 }""", true)]
    [InlineData("""{ "field": "total", "op": "lte", "value": 299.99 }""", false)]
    [InlineData("""{ "field": "total", "op": "gte", "value": 300 }""", true)]
    [InlineData("""{ "field": "total", "op": "gte", "value": 300.01 }""", false)]
    [InlineData("""{ "field": "subtotal", "op": "eq", "value": 300 }""", true)]
    [InlineData("""{ "field": "subtotal", "op": "lte", "value": 250 }""", false)]
    [InlineData("""{ "field": "requested_ship_date", "op": "lte", "value": "2026-03-09" }""", true)]
    [InlineData("""{ "field": "requested_ship_date", "op": "gte", "value": "2026-03-10" }""", false)]
    [InlineData("""{ "field": "account.tier", "op": "eq", "value": "gold" }""", true)]
    [InlineData("""{ "field": "account.tier", "op": "in", "value": ["silver", "bronze"] }""", false)]
    [InlineData("""{ "field": "ship_to.city", "op": "eq", "value": "Portland" }""", true)]
    [InlineData("""{ "field": "ship_to.city", "op": "present" }""", true)]
    [InlineData("""{ "field": "po_number", "op": "present" }""", true)]
    [InlineData("""{ "field": "total", "op": "present" }""", true)]
    [InlineData("""{ "field": "ship_to.dock", "op": "present" }""", false)] // a missing field is not present
    [InlineData("""{ "field": "ship_to.dock", "op": "eq", "value": "A" }""", false)]
    [InlineData("""{ "field": "ship_to.dock", "op": "ne", "value": "A" }""", true)]
    [InlineData("""{ "field": "ship_to.dock", "op": "in", "value": ["A"] }""", false)]
    [InlineData("""{ "field": "ship_to.dock", "op": "not_in", "value": ["A"] }""", true)]
    [InlineData("""{ "field": "ship_to.dock", "op": "lte", "value": 5 }""", false)]
    [InlineData("""{ "field": "ship_to.dock", "op": "gte", "value": 5 }""", false)]
    [InlineData("""{ "field": "no_such_field", "op": "present" }""", false)]
    [InlineData("""{ "field": "po_number", "op": "matches", "value": "PO" }""", false)] // an unknown operator never holds
    public void TenantRule_Operators(string condition, bool holds)
    {
        var order = new OrderBuilder
        {
            RequestedShipDate = new DateOnly(2026, 3, 9),
            Requirements = [Requirement("tenant_rule", condition)],
        }.Build();

        var issues = OrderValidator.Validate(order).Issues;

        Assert.Equal(holds ? [] : ["tenant_rule"], issues.Select(i => i.Type));
    }

    // line_count is a number like total: lte and gte compare it as one. (Fails at the time of writing: the count is an
    // int-typed JsonValue, which TryGetValue<decimal> refuses, so lte/gte never hold and every order is raised.)
    [Theory]
    [InlineData("""{ "field": "line_count", "op": "eq", "value": 2 }""", true)]
    [InlineData("""{ "field": "line_count", "op": "eq", "value": 3 }""", false)]
    [InlineData("""{ "field": "line_count", "op": "in", "value": [1, 2] }""", true)]
    [InlineData("""{ "field": "line_count", "op": "lte", "value": 10 }""", true)]
    [InlineData("""{ "field": "line_count", "op": "lte", "value": 1 }""", false)]
    [InlineData("""{ "field": "line_count", "op": "gte", "value": 2 }""", true)]
    [InlineData("""{ "field": "line_count", "op": "gte", "value": 3 }""", false)]
    public void TenantRule_LineCount(string condition, bool holds)
    {
        var order = new OrderBuilder { Requirements = [Requirement("line_count_rule", condition)] }.Build();

        var issues = OrderValidator.Validate(order).Issues;

        Assert.Equal(holds ? [] : ["line_count_rule"], issues.Select(i => i.Type));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public void TenantRule_Present_MissingOrBlankIsNotPresent(string? poNumber)
    {
        var order = new OrderBuilder
        {
            PoNumber = poNumber,
            Requirements = [Requirement("po_required", """{ "field": "po_number", "op": "present" }""", "every order needs a PO", "warning")],
        }.Build();

        var issue = Assert.Single(OrderValidator.Validate(order).Issues);
        Assert.Equal("po_required", issue.Type);
        Assert.Equal(OrderCheck.Requirements, issue.Check);
        Assert.Equal("warning", issue.Severity);
        Assert.Equal(poNumber is null ? "every order needs a PO (got nothing)" : $"every order needs a PO (got \"{poNumber}\")", issue.Message);
    }

    [Fact]
    public void TenantRule_MessageSaysWhatItGot()
    {
        var order = new OrderBuilder
        {
            Requirements =
            [
                Requirement("north_america", """{ "field": "ship_to.country", "op": "in", "value": ["US", "CA"] }""", "we ship to North America only"),
                Requirement("small_orders", """{ "field": "total", "op": "lte", "value": 100 }""", "orders up to 100"),
                Requirement("dock", """{ "field": "ship_to.dock", "op": "present" }""", "a dock is required"),
            ],
            ShipTo = new JsonObject { ["line1"] = "Unter den Linden 1", ["city"] = "Berlin", ["postal_code"] = "10117", ["country"] = "DE" },
        }.Build();

        var issues = OrderValidator.Validate(order).Issues;

        Assert.Equal(
            ["we ship to North America only (got \"DE\")", "orders up to 100 (got 300)", "a dock is required (got nothing)"],
            issues.Select(i => i.Message));
    }

    [Fact]
    public void TenantRule_NullShipTo_ShipToFieldIsMissing()
    {
        var order = new OrderBuilder
        {
            ShipTo = null,
            Requirements = [Requirement("us_only", """{ "field": "ship_to.country", "op": "eq", "value": "US" }""")],
        }.Build();

        Assert.Equal(["incomplete_ship_to", "us_only"], OrderValidator.Validate(order).Issues.Select(i => i.Type));
    }

    // ----- the default order -----

    [Fact]
    public void DefaultOrder_Passes()
    {
        var validation = OrderValidator.Validate(new OrderBuilder().Build());

        Assert.Empty(validation.Issues);
        Assert.True(validation.Passes(OrderCheck.Pricing));
        Assert.True(validation.Passes(OrderCheck.Credit));
        Assert.True(validation.Passes(OrderCheck.Requirements));
        Assert.Equal("no credit limit (the tenant's default is 0)", validation.CreditNote);
    }

    // ----- helpers -----

    // The name of the rule that prices the default order's widget line (2 × Widget), or null for the list price.
    private static string? WidgetRule(params PriceRule[] rules)
    {
        var order = new OrderBuilder { PriceRules = rules }.Build();
        return OrderValidator.RuleFor(order, order.Lines[0])?.Name;
    }
}
