using System.Globalization;
using System.Text.Json.Nodes;

namespace Hourglass.Orders;

/// <summary>Which of the three checks an issue belongs to.</summary>
internal enum OrderCheck
{
    Pricing,
    Credit,
    Requirements,
}

/// <summary>A fix the auto-fixer could make for an issue: what changes, from what to what.</summary>
internal sealed record OrderFix(string Type, Guid? LineId, JsonObject Before, JsonObject After, decimal? PriceChangePct = null, decimal? DiscountChangePct = null);

/// <summary>One thing wrong with an order: its type (the exception type if it is not fixed), check, severity, why, and a fix if there is one.</summary>
internal sealed record OrderIssue(string Type, OrderCheck Check, string Severity, string Message, Guid? LineId = null, OrderFix? Fix = null);

/// <summary>The outcome of validating an order once.</summary>
internal sealed record OrderValidation(IReadOnlyList<OrderIssue> Issues, decimal CreditLimit, decimal Exposure, string CreditNote)
{
    public bool Passes(OrderCheck check) => Issues.All(i => i.Check != check);
}

/// <summary>
/// The validators, pure: pricing (each line against the tenant's price rules, the price floor, the totals'
/// arithmetic), credit (limit by precedence account &gt; tier &gt; tenant default, 0 meaning no limit; exposure =
/// other open orders + the account's unpaid balance + this order) and requirements (lines, quantities, products,
/// currency, PO number, ship-to, lead time, and the tenant's own rules). Docs: docs/orders.md.
/// </summary>
internal static class OrderValidator
{
    /// <summary>Prices agree when they differ by less than half a cent.</summary>
    public const decimal Tolerance = 0.005m;

    public static readonly IReadOnlyList<string> ShipToFields = ["line1", "city", "postal_code", "country"];

    public static OrderValidation Validate(OrderSnapshot order)
    {
        var issues = new List<OrderIssue>();
        Requirements(order, issues);
        // Pricing needs lines it can price: with unknown products or bad quantities it would only add noise.
        if (!issues.Any(i => i.Type is "no_lines" or "unknown_product" or "non_positive_quantity" or "unsupported_currency"))
        {
            Pricing(order, issues);
        }

        var (limit, exposure, note) = Credit(order, issues);
        return new OrderValidation(issues, limit, exposure, note);
    }

    /// <summary>The price rule that applies to a line, or null for the list price. Highest priority, then most specific, then largest quantity break.</summary>
    public static PriceRule? RuleFor(OrderSnapshot order, OrderLineData line) =>
        order.PriceRules
            .Where(r => r.Currency == order.Currency
                        && (r.ProductId is null || r.ProductId == line.ProductId)
                        && (r.AccountId is null || r.AccountId == order.Account.Id)
                        && (r.Tier is null || r.Tier == order.Account.Tier)
                        && line.Quantity >= r.MinQuantity
                        && (r.ValidFrom is null || r.ValidFrom <= order.OrderDate)
                        && (r.ValidTo is null || r.ValidTo >= order.OrderDate))
            .OrderByDescending(r => r.Priority).ThenByDescending(r => r.Specificity).ThenByDescending(r => r.MinQuantity).ThenBy(r => r.Id)
            .FirstOrDefault();

    /// <summary>What a line's unit price should be (after any discount), and why; null when it cannot be priced in the order's currency.</summary>
    public static (decimal Price, string Source)? ExpectedPrice(OrderSnapshot order, OrderLineData line, ProductData product)
    {
        if (RuleFor(order, line) is { } rule)
        {
            var price = rule.UnitPrice ?? product.ListPrice * (1 - rule.DiscountPct!.Value / 100m);
            return (Math.Round(price, 4), $"price rule '{rule.Name}'");
        }

        return order.Currency == order.Settings.BaseCurrency ? (product.ListPrice, "list price") : null;
    }

    private static void Requirements(OrderSnapshot order, List<OrderIssue> issues)
    {
        if (order.Lines.Count == 0)
        {
            issues.Add(new("no_lines", OrderCheck.Requirements, "error", "the order has no lines"));
        }

        if (!order.Settings.Currencies.Contains(order.Currency))
        {
            issues.Add(new("unsupported_currency", OrderCheck.Requirements, "error",
                $"the tenant does not price in {order.Currency} (it prices in {string.Join(", ", order.Settings.Currencies.Order(StringComparer.Ordinal))})"));
        }

        for (var i = 0; i < order.Lines.Count; i++)
        {
            var line = order.Lines[i];
            var where = $"line {i + 1}";
            if (line.Quantity <= 0)
            {
                issues.Add(new("non_positive_quantity", OrderCheck.Requirements, "error",
                    string.Create(CultureInfo.InvariantCulture, $"{where}: quantity {line.Quantity} must be more than 0"), line.Id));
            }

            if (line.ProductId is not { } productId || !order.Products.TryGetValue(productId, out var product))
            {
                issues.Add(new("unknown_product", OrderCheck.Requirements, "error", $"{where}: the product is unknown to this tenant", line.Id));
            }
            else if (!product.Active)
            {
                issues.Add(new("inactive_product", OrderCheck.Requirements, "error", $"{where}: {product.Sku} ({product.Name}) is no longer sold", line.Id));
            }
        }

        if (order.Account.RequiresPo && string.IsNullOrWhiteSpace(order.PoNumber))
        {
            issues.Add(new("missing_po", OrderCheck.Requirements, "error", $"{order.Account.Name} requires a purchase-order number"));
        }

        var missing = MissingShipTo(order.ShipTo);
        if (missing.Count > 0)
        {
            var fix = order.Account.DefaultShipTo is { } fallback && MissingShipTo(fallback).Count == 0
                ? new OrderFix("fill_ship_to", null, new JsonObject { ["ship_to"] = order.ShipTo?.DeepClone() }, new JsonObject { ["ship_to"] = fallback.DeepClone() })
                : null;
            issues.Add(new("incomplete_ship_to", OrderCheck.Requirements, "error",
                $"the ship-to address lacks {string.Join(", ", missing)}{(fix is null ? " and the account has no complete default address" : "")}", Fix: fix));
        }

        var earliest = order.OrderDate.AddDays(order.Settings.LeadTimeDays);
        if (order.RequestedShipDate is { } requested && requested < earliest)
        {
            issues.Add(new("lead_time", OrderCheck.Requirements, "error",
                string.Create(CultureInfo.InvariantCulture, $"requested ship date {requested:yyyy-MM-dd} is before the earliest possible, {earliest:yyyy-MM-dd} ({order.Settings.LeadTimeDays} days' lead time)")));
        }

        foreach (var rule in order.Requirements)
        {
            if (!RequirementHolds(order, rule.Condition, out var actual))
            {
                issues.Add(new(rule.Key, OrderCheck.Requirements, rule.Severity, $"{rule.Description} (got {actual})"));
            }
        }
    }

    private static void Pricing(OrderSnapshot order, List<OrderIssue> issues)
    {
        for (var i = 0; i < order.Lines.Count; i++)
        {
            var line = order.Lines[i];
            if (line.ProductId is not { } productId || !order.Products.TryGetValue(productId, out var product))
            {
                continue;
            }

            var where = $"line {i + 1} ({product.Sku})";
            if (ExpectedPrice(order, line, product) is not { } expected)
            {
                issues.Add(new("unsupported_currency", OrderCheck.Pricing, "error", $"{where}: no price rule prices it in {order.Currency}", line.Id));
                continue;
            }

            var floor = product.UnitCost is { } cost ? Math.Round(cost * (1 + order.Settings.MinMarginPct / 100m), 4) : (decimal?)null;
            if (floor is { } minimum && expected.Price < minimum - Tolerance)
            {
                issues.Add(new("below_floor", OrderCheck.Pricing, "error",
                    string.Create(CultureInfo.InvariantCulture, $"{where}: the {expected.Source} {expected.Price:0.00##} is below the floor {minimum:0.00##} (cost plus {order.Settings.MinMarginPct}% margin)"), line.Id));
                continue;
            }

            var charged = line.NetUnitPrice;
            if (Math.Abs(charged - expected.Price) >= Tolerance)
            {
                var change = charged == 0 ? 100m : Math.Round((expected.Price - charged) / charged * 100m, 2);
                var fix = new OrderFix("apply_rule_price", line.Id,
                    new JsonObject { ["unit_price"] = line.UnitPrice, ["discount_pct"] = line.DiscountPct },
                    new JsonObject { ["unit_price"] = expected.Price, ["discount_pct"] = 0m, ["source"] = expected.Source },
                    change, line.DiscountPct);
                issues.Add(new("price_mismatch", OrderCheck.Pricing, "error",
                    string.Create(CultureInfo.InvariantCulture, $"{where}: charged {charged:0.00##}, the {expected.Source} says {expected.Price:0.00##}"), line.Id, fix));
            }
        }

        var subtotal = order.LinesTotal;
        var total = subtotal + order.ShippingAmount + order.TaxAmount;
        if (Math.Abs(order.Subtotal - subtotal) >= Tolerance || Math.Abs(order.Total - total) >= Tolerance)
        {
            issues.Add(new("totals_mismatch", OrderCheck.Pricing, "error",
                string.Create(CultureInfo.InvariantCulture, $"subtotal {order.Subtotal:0.00} and total {order.Total:0.00}; the lines add up to {subtotal:0.00} and the total to {total:0.00}"),
                Fix: new OrderFix("recompute_totals", null,
                    new JsonObject { ["subtotal"] = order.Subtotal, ["total"] = order.Total },
                    new JsonObject { ["subtotal"] = subtotal, ["total"] = total })));
        }
    }

    private static (decimal Limit, decimal Exposure, string Note) Credit(OrderSnapshot order, List<OrderIssue> issues)
    {
        var (limit, source) = order.Account.CreditLimit is { } own ? (own, "the account's")
            : order.Account.Tier is { } tier && order.Settings.CreditLimitsByTier.TryGetValue(tier, out var byTier) ? (byTier, $"tier {tier}'s")
            : (order.Settings.DefaultCreditLimit, "the tenant's default");
        var exposure = order.OtherOpenExposure + order.Account.OpenBalance + order.Total;
        if (limit == 0)
        {
            return (0, exposure, $"no credit limit ({source} is 0)");
        }

        var note = string.Create(CultureInfo.InvariantCulture, $"exposure {exposure:0.00} against {source} limit {limit:0.00}");
        if (exposure <= limit)
        {
            return (limit, exposure, note);
        }

        if (order.CreditOverrideBy is { } by)
        {
            return (limit, exposure, $"{note}: over, overridden by {by} ({order.CreditOverrideReason})");
        }

        if (order.ApprovalDecision == "approved")
        {
            return (limit, exposure, $"{note}: over, approved by {order.ApprovedBy}");
        }

        issues.Add(new("credit_limit", OrderCheck.Credit, "warning",
            string.Create(CultureInfo.InvariantCulture, $"{note}: {exposure - limit:0.00} over (open orders {order.OtherOpenExposure:0.00}, unpaid {order.Account.OpenBalance:0.00}, this order {order.Total:0.00})")));
        return (limit, exposure, note);
    }

    // A JSON number as a decimal, whatever it was built from (an int, a double, parsed text).
    private static decimal? Decimal(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number
            && decimal.TryParse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : null;

    private static List<string> MissingShipTo(JsonObject? shipTo) =>
        ShipToFields.Where(f => shipTo?[f] is not JsonValue v || !v.TryGetValue<string>(out var s) || string.IsNullOrWhiteSpace(s)).ToList();

    // A tenant's requirement: {"field": "po_number" | "currency" | "total" | "ship_to.country" | …, "op": …, "value": …}.
    private static bool RequirementHolds(OrderSnapshot order, JsonObject condition, out string actual)
    {
        var field = (string?)condition["field"] ?? "";
        JsonNode? value = field switch
        {
            "po_number" => order.PoNumber,
            "currency" => order.Currency,
            "total" => order.Total,
            "subtotal" => order.Subtotal,
            "requested_ship_date" => order.RequestedShipDate?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
            "account.tier" => order.Account.Tier,
            "line_count" => (decimal)order.Lines.Count,
            _ when field.StartsWith("ship_to.", StringComparison.Ordinal) => order.ShipTo?[field["ship_to.".Length..]]?.DeepClone(),
            _ => null,
        };
        actual = value?.ToJsonString() ?? "nothing";
        var expected = condition["value"];
        return (string?)condition["op"] switch
        {
            "present" => value is JsonValue v && (!v.TryGetValue<string>(out var s) || !string.IsNullOrWhiteSpace(s)),
            "eq" => JsonNode.DeepEquals(value, expected),
            "ne" => !JsonNode.DeepEquals(value, expected),
            "in" => expected is JsonArray options && options.Any(o => JsonNode.DeepEquals(o, value)),
            "not_in" => expected is JsonArray excluded && !excluded.Any(o => JsonNode.DeepEquals(o, value)),
            "lte" => Compare(value, expected) is <= 0,
            "gte" => Compare(value, expected) is >= 0,
            _ => false,
        };
    }

    private static int? Compare(JsonNode? left, JsonNode? right) =>
        Decimal(left) is { } a && Decimal(right) is { } b ? a.CompareTo(b)
        : left is JsonValue ls && right is JsonValue rs && ls.TryGetValue<string>(out var x) && rs.TryGetValue<string>(out var y) ? string.CompareOrdinal(x, y)
        : null;
}
