using System.Text.Json.Nodes;
using Hourglass.Orders;

namespace Hourglass.Tests.Orders;

/// <summary>
/// Builds an <see cref="OrderSnapshot"/> with sensible defaults for the pure validator and decider tests: a USD
/// tenant (settings parsed from JSON, as they come from <c>tenants.settings</c>), one gold-tier account, three
/// products (two active, one retired), two lines priced at list, a complete ship-to, and totals that add up unless
/// <see cref="Subtotal"/> or <see cref="Total"/> say otherwise. Change what a test is about with <c>with</c> or an
/// object initializer.
/// </summary>
internal sealed record OrderBuilder
{
    public static readonly Guid TenantId = new("00000000-0000-0000-0000-0000000000e1");
    public static readonly Guid OrderId = new("00000000-0000-0000-0000-0000000000e2");
    public static readonly Guid QueueId = new("00000000-0000-0000-0000-0000000000e3");
    public static readonly Guid AccountId = new("00000000-0000-0000-0000-0000000000a1");
    public static readonly Guid OtherAccountId = new("00000000-0000-0000-0000-0000000000a2");

    /// <summary>W-1: list 100.00, cost 60.00.</summary>
    public static readonly Guid Widget = new("00000000-0000-0000-0000-0000000000b1");

    /// <summary>G-1: list 25.00, cost 10.00.</summary>
    public static readonly Guid Gadget = new("00000000-0000-0000-0000-0000000000b2");

    /// <summary>R-1: list 40.00, cost 20.00, no longer sold.</summary>
    public static readonly Guid Retired = new("00000000-0000-0000-0000-0000000000b3");

    /// <summary>Monday 2 March 2026.</summary>
    public static readonly DateOnly Today = new(2026, 3, 2);

    public static IReadOnlyDictionary<Guid, ProductData> Catalog { get; } = new Dictionary<Guid, ProductData>
    {
        [Widget] = new(Widget, "W-1", "Widget", 100.00m, 60.00m, Active: true),
        [Gadget] = new(Gadget, "G-1", "Gadget", 25.00m, 10.00m, Active: true),
        [Retired] = new(Retired, "R-1", "Retired thing", 40.00m, 20.00m, Active: false),
    };

    public static AccountData DefaultAccount { get; } =
        new(AccountId, "Acme Corp", "gold", CreditLimit: null, RequiresPo: false, DefaultShipTo: null, OpenBalance: 0m, CreditHold: false);

    /// <summary>tenants.settings, as JSON.</summary>
    public string SettingsJson { get; init; } = "{}";

    public AccountData Account { get; init; } = DefaultAccount;

    public IReadOnlyList<OrderLineData> Lines { get; init; } = [Line(Widget, 2, 100m), Line(Gadget, 4, 25m)];

    public IReadOnlyDictionary<Guid, ProductData> Products { get; init; } = Catalog;

    public IReadOnlyList<PriceRule> PriceRules { get; init; } = [];

    public IReadOnlyList<RequirementRule> Requirements { get; init; } = [];

    public string Currency { get; init; } = "USD";

    public string? PoNumber { get; init; } = "PO-1001";

    public JsonObject? ShipTo { get; init; } = CompleteShipTo();

    public DateOnly? RequestedShipDate { get; init; }

    public DateOnly OrderDate { get; init; } = Today;

    public decimal ShippingAmount { get; init; }

    public decimal TaxAmount { get; init; }

    /// <summary>The stated subtotal; null: what the lines add up to.</summary>
    public decimal? Subtotal { get; init; }

    /// <summary>The stated total; null: the stated subtotal + shipping + tax.</summary>
    public decimal? Total { get; init; }

    public decimal OtherOpenExposure { get; init; }

    public string? CreditOverrideBy { get; init; }

    public string? CreditOverrideReason { get; init; }

    public string? ApprovalDecision { get; init; }

    public string? ApprovedBy { get; init; }

    public int AutoFixAttempts { get; init; }

    public int MaxAutoFixAttempts { get; init; } = 3;

    public OrderSnapshot Build()
    {
        var subtotal = Subtotal ?? Lines.Sum(l => l.Net);
        return new OrderSnapshot(
            QueueId, TenantId, OrderId, ClaimToken: 7, AutoFixAttempts, MaxAutoFixAttempts, "placed", Currency, PoNumber,
            ShipTo?.DeepClone().AsObject(), RequestedShipDate, OrderDate, subtotal, Total ?? subtotal + ShippingAmount + TaxAmount,
            ShippingAmount, TaxAmount, Account, Lines, Products, PriceRules, Requirements,
            OrderSettings.From(JsonNode.Parse(SettingsJson)!.AsObject()), OtherOpenExposure, CreditOverrideBy, CreditOverrideReason,
            ApprovalDecision, ApprovedBy);
    }

    public static OrderLineData Line(Guid? product, decimal quantity, decimal unitPrice, decimal discountPct = 0m) =>
        new(Guid.NewGuid(), product, quantity, unitPrice, discountPct);

    public static JsonObject CompleteShipTo() => new()
    {
        ["line1"] = "1 Harbour Road",
        ["city"] = "Portland",
        ["postal_code"] = "97201",
        ["country"] = "US",
    };

    /// <summary>A price rule: a fixed <paramref name="price"/> or a <paramref name="discount"/> off list, for everyone and all products unless told.</summary>
    public static PriceRule Rule(string name, decimal? price = null, decimal? discount = null, Guid? product = null, Guid? account = null,
        string? tier = null, string currency = "USD", decimal minQuantity = 0m, DateOnly? validFrom = null, DateOnly? validTo = null, int priority = 0) =>
        new(Guid.NewGuid(), name, product, account, tier, currency, minQuantity, price, discount, validFrom, validTo, priority);

    /// <summary>A tenant requirement rule from its condition as JSON.</summary>
    public static RequirementRule Requirement(string key, string conditionJson, string description = "tenant requirement", string severity = "error") =>
        new(key, description, JsonNode.Parse(conditionJson)!.AsObject(), severity);
}
