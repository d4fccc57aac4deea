namespace Hourglass.Policies;

/// <summary>How bad a finding is. <see cref="Critical"/> pauses the tenant (the kill switch).</summary>
internal enum PolicySeverity
{
    Info,
    Warning,
    Error,
    Critical,
}

/// <summary>A rolling window: the last hour, 24 hours or 7 × 24 hours before the moment of the decision.</summary>
internal enum PolicyWindow
{
    Hour,
    Day,
    Week,
}

/// <summary>What a cap counts: all the tenant's touches, one channel's, or one contact's.</summary>
internal enum CapScope
{
    Tenant,
    Channel,
    Contact,
}

/// <summary>One rule of a policy document: its id, kind, what it decides when it applies, and its settings.</summary>
internal sealed record PolicyRule(
    string Id,
    string Kind,
    PolicyVerdict Decision,
    PolicySeverity Severity,
    IReadOnlySet<string> AppliesTo,
    string? Description)
{
    public bool AppliesToKind(string kind) => AppliesTo.Contains("*") || AppliesTo.Contains(kind);

    // Settings, by kind (the validator guarantees the ones a kind needs are set).
    public CapScope Scope { get; init; }
    public PolicyWindow Window { get; init; }
    public int Limit { get; init; }
    public string? Channel { get; init; }
    public double Hours { get; init; }
    public IReadOnlySet<DayOfWeek> Days { get; init; } = new HashSet<DayOfWeek>();
    public TimeOnly Start { get; init; }
    public TimeOnly End { get; init; }
    public IReadOnlySet<DateOnly> Dates { get; init; } = new HashSet<DateOnly>();
    public IReadOnlySet<string> Channels { get; init; } = new HashSet<string>();
    public decimal Above { get; init; }
    public decimal? MaxPriceChangePct { get; init; }
    public decimal? MaxDiscountChangePct { get; init; }
    public int MaxActions { get; init; }
}
