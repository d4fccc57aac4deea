using System.Text.Json.Nodes;

namespace Hourglass.Orders;

/// <summary>An order line as validated.</summary>
internal sealed record OrderLineData(Guid Id, Guid? ProductId, decimal Quantity, decimal UnitPrice, decimal DiscountPct)
{
    /// <summary>The unit price after the line's discount.</summary>
    public decimal NetUnitPrice => UnitPrice * (1 - DiscountPct / 100m);

    public decimal Net => Math.Round(Quantity * NetUnitPrice, 2, MidpointRounding.AwayFromZero);
}

internal sealed record ProductData(Guid Id, string Sku, string Name, decimal ListPrice, decimal? UnitCost, bool Active);

/// <summary>A price rule (table <c>price_rules</c>): a fixed unit price or a discount off list.</summary>
internal sealed record PriceRule(Guid Id, string Name, Guid? ProductId, Guid? AccountId, string? Tier, string Currency, decimal MinQuantity,
    decimal? UnitPrice, decimal? DiscountPct, DateOnly? ValidFrom, DateOnly? ValidTo, int Priority)
{
    /// <summary>Account over tier over everyone; one product over all products.</summary>
    public int Specificity => (AccountId is not null ? 4 : Tier is not null ? 2 : 0) + (ProductId is not null ? 1 : 0);
}

/// <summary>A tenant-defined requirement (table <c>order_requirement_rules</c>).</summary>
internal sealed record RequirementRule(string Key, string Description, JsonObject Condition, string Severity);

internal sealed record AccountData(Guid Id, string Name, string? Tier, decimal? CreditLimit, bool RequiresPo, JsonObject? DefaultShipTo,
    decimal OpenBalance, bool CreditHold);

/// <summary>The tenant's order settings (tenants.settings), with their defaults.</summary>
internal sealed record OrderSettings(
    string BaseCurrency,
    IReadOnlySet<string> Currencies,
    decimal MinMarginPct,
    int LeadTimeDays,
    decimal DefaultCreditLimit,
    IReadOnlyDictionary<string, decimal> CreditLimitsByTier,
    bool CreditOverLimitIsException)
{
    public static OrderSettings From(JsonObject? settings)
    {
        settings ??= [];
        var baseCurrency = settings["currency"] is JsonValue c && c.TryGetValue<string>(out var currency) ? currency : "USD";
        var currencies = new HashSet<string>(StringComparer.Ordinal) { baseCurrency };
        if (settings["currencies"] is JsonArray list)
        {
            foreach (var item in list)
            {
                if (item is JsonValue v && v.TryGetValue<string>(out var code))
                {
                    currencies.Add(code);
                }
            }
        }

        var tiers = new Dictionary<string, decimal>(StringComparer.Ordinal);
        if (settings["credit_limits_by_tier"] is JsonObject byTier)
        {
            foreach (var (tier, value) in byTier)
            {
                if (value is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number
                    && decimal.TryParse(v.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var limit))
                {
                    tiers[tier] = limit;
                }
            }
        }

        return new OrderSettings(
            baseCurrency,
            currencies,
            Number(settings, "min_margin_pct") ?? 0,
            (int)(Number(settings, "lead_time_days") ?? 2),
            Number(settings, "default_credit_limit") ?? 0,
            tiers,
            settings["credit_over_limit"] is JsonValue mode && mode.TryGetValue<string>(out var m) && m == "exception");
    }

    // A JSON number whatever it was built from (an int, a double, parsed text); anything else is "not set".
    private static decimal? Number(JsonObject settings, string key) =>
        settings[key] is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number
            && decimal.TryParse(v.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) ? d : null;
}

/// <summary>Everything the validators need about one claimed order, loaded in a batch.</summary>
internal sealed record OrderSnapshot(
    Guid QueueId,
    Guid TenantId,
    Guid OrderId,
    long ClaimToken,
    int AutoFixAttempts,
    int MaxAutoFixAttempts,
    string Status,
    string Currency,
    string? PoNumber,
    JsonObject? ShipTo,
    DateOnly? RequestedShipDate,
    DateOnly OrderDate,
    decimal Subtotal,
    decimal Total,
    decimal ShippingAmount,
    decimal TaxAmount,
    AccountData Account,
    IReadOnlyList<OrderLineData> Lines,
    IReadOnlyDictionary<Guid, ProductData> Products,
    IReadOnlyList<PriceRule> PriceRules,
    IReadOnlyList<RequirementRule> Requirements,
    OrderSettings Settings,
    decimal OtherOpenExposure,
    string? CreditOverrideBy,
    string? CreditOverrideReason,
    string? ApprovalDecision,
    string? ApprovedBy)
{
    public decimal LinesTotal => Lines.Sum(l => l.Net);
}
