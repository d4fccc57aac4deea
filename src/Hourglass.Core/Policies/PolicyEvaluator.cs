using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Cycles;

namespace Hourglass.Policies;

/// <summary>What the evaluator needs to know of an action, whoever proposed it (a part, the LLM path, a person asking "what if").</summary>
/// <param name="Kind">The action's kind (<c>touch_task</c>, <c>send_message</c>, <c>order_auto_fix</c>, …).</param>
/// <param name="TargetId">The contact, account or order it acts on.</param>
/// <param name="Channel">For a touch: <c>email</c>, <c>webhook</c>, or <c>task</c> for a card.</param>
/// <param name="ContactId">The contact it touches, if any.</param>
/// <param name="AccountId">The account it concerns, if any.</param>
/// <param name="OrderValue">For an order action: the order's total.</param>
/// <param name="PriceChangePct">For an auto-fix: the largest change it makes to a line's price, in percent.</param>
/// <param name="DiscountChangePct">For an auto-fix: the largest change it makes to a line's discount, in percentage points.</param>
/// <param name="ApprovedBy">Who approved it, when it is an approved action being run.</param>
internal sealed record PolicyAction(
    string Kind,
    Guid? TargetId = null,
    string? Channel = null,
    Guid? ContactId = null,
    Guid? AccountId = null,
    decimal? OrderValue = null,
    decimal? PriceChangePct = null,
    decimal? DiscountChangePct = null,
    string? ApprovedBy = null)
{
    public bool IsTouch => PolicyDocument.TouchKinds.Contains(Kind);

    /// <summary>The policy's view of a proposed action: the channel and the order facts come from its payload.</summary>
    public static PolicyAction From(ProposedAction action)
    {
        var payload = action.Payload ?? [];
        Guid? Id(string field) => Guid.TryParse((string?)Value(payload, field), out var id) ? id : null;
        decimal? Number(string field) => payload[field] is JsonValue v && v.TryGetValue<decimal>(out var d) ? d : null;
        var channel = action.Kind switch
        {
            "touch_task" => "task",
            "send_message" => (string?)Value(payload, "channel") ?? "email",
            _ => (string?)Value(payload, "channel"),
        };
        return new PolicyAction(
            action.Kind,
            action.TargetId,
            channel,
            action.TargetType == "contact" ? action.TargetId : null,
            action.TargetType == "account" ? action.TargetId : Id("account_id"),
            Number("order_value"),
            Number("price_change_pct"),
            Number("discount_change_pct"),
            payload["approval"] is JsonObject approval ? (string?)Value(approval, "approved_by") ?? "someone" : null);
    }

    private static JsonNode? Value(JsonObject node, string field) =>
        node[field] is JsonValue v && v.TryGetValue<string>(out _) ? v : null;
}

/// <summary>What the database says about an action's target at the moment of the decision.</summary>
/// <param name="Zone">The contact's time zone, else its account's, else the tenant's.</param>
/// <param name="ZoneSource"><c>contact</c>, <c>account</c> or <c>tenant</c>: whose zone <see cref="Zone"/> is.</param>
/// <param name="DoNotContactReason">Why the target must not be contacted (opted out, do-not-contact), or null.</param>
/// <param name="CreditHold">The account is on credit hold.</param>
/// <param name="HasOpenTouch">An open touch card or approval already stands for the target.</param>
/// <param name="LastTouchAt">The target's last touch by anyone (its engagement clock).</param>
internal sealed record TargetFacts(TimeZoneInfo Zone, string ZoneSource, string? DoNotContactReason = null, bool CreditHold = false,
    bool HasOpenTouch = false, DateTimeOffset? LastTouchAt = null)
{
    public static TargetFacts None(TimeZoneInfo tenantZone) => new(tenantZone, "tenant");
}

/// <summary>The touches already made, by tenant, channel and target, to count rolling windows over; and those made this cycle.</summary>
internal sealed class PolicyHistory
{
    private const string TenantKey = "tenant";
    private readonly Dictionary<string, List<DateTimeOffset>> _times = new(StringComparer.Ordinal);
    private readonly HashSet<Guid> _touchedThisCycle = [];

    /// <summary>Actions permitted in this cycle so far (the per-cycle budget counts them).</summary>
    public int PermittedThisCycle { get; private set; }

    /// <summary>A touch from before this cycle (loaded from the action ledger).</summary>
    public void AddPast(string? channel, Guid? target, DateTimeOffset at) => Add(channel, target, at);

    /// <summary>An action this cycle has permitted: it counts from now on, as if it had been made.</summary>
    public void RecordPermitted(PolicyAction action, DateTimeOffset at)
    {
        PermittedThisCycle++;
        if (action.IsTouch)
        {
            Add(action.Channel, action.TargetId, at);
            if (action.TargetId is { } target)
            {
                _touchedThisCycle.Add(target);
            }
        }
    }

    public bool TouchedThisCycle(Guid target) => _touchedThisCycle.Contains(target);

    /// <summary>How many touches of the scope fall in (from, to].</summary>
    public int Count(CapScope scope, string? channel, Guid? target, DateTimeOffset from, DateTimeOffset to)
    {
        var key = scope switch
        {
            CapScope.Channel => "channel:" + channel,
            CapScope.Contact => "target:" + target,
            _ => TenantKey,
        };
        if (!_times.TryGetValue(key, out var times))
        {
            return 0;
        }

        return UpperBound(times, to) - UpperBound(times, from);
    }

    public DateTimeOffset? LastTouch(Guid target) =>
        _times.TryGetValue("target:" + target, out var times) && times.Count > 0 ? times[^1] : null;

    private void Add(string? channel, Guid? target, DateTimeOffset at)
    {
        Insert(TenantKey, at);
        if (channel is not null)
        {
            Insert("channel:" + channel, at);
        }

        if (target is { } id)
        {
            Insert("target:" + id, at);
        }
    }

    private void Insert(string key, DateTimeOffset at)
    {
        if (!_times.TryGetValue(key, out var times))
        {
            _times[key] = times = [];
        }

        // Kept sorted; appends are the common case.
        if (times.Count == 0 || times[^1] <= at)
        {
            times.Add(at);
        }
        else
        {
            times.Insert(UpperBound(times, at), at);
        }
    }

    // The number of elements ≤ value.
    private static int UpperBound(List<DateTimeOffset> times, DateTimeOffset value)
    {
        int low = 0, high = times.Count;
        while (low < high)
        {
            var middle = (low + high) >>> 1;
            if (times[middle] <= value)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low;
    }
}

/// <summary>
/// How one rule judged one action, for "explain": Outcome is <c>passed</c>, <c>not_applicable</c>, <c>approved</c>
/// (its approval was given), or the verdict it returned; Detail says why.
/// </summary>
internal sealed record RuleTrace(string RuleId, string RuleKind, string Outcome, string Detail);

/// <summary>
/// The one evaluator every action passes: each rule of the document in force that applies to the action's kind
/// either passes or returns its decision (deny, require_approval or warn) with a finding; deny overrides
/// require_approval overrides warn overrides allow, and the findings with the final verdict are the determining
/// rules (as Cedar's and OPA's decision logs record them). A kind the document does not list gets its default
/// decision. Pure and in-process: the facts come in, nothing is read or written here.
/// </summary>
internal static class PolicyEvaluator
{
    public static PolicyDecision Evaluate(PolicyDocument document, string version, PolicyAction action, TargetFacts facts, PolicyHistory history,
        DateTimeOffset now, TimeZoneInfo tenantZone, List<RuleTrace>? trace = null)
    {
        List<PolicyFinding>? findings = null;
        void Find(PolicyRule rule, string message)
        {
            if (rule.Decision == PolicyVerdict.RequireApproval && action.ApprovedBy is { } approver)
            {
                trace?.Add(new RuleTrace(rule.Id, rule.Kind, "approved", $"{message} — approved by {approver}"));
                return;
            }

            (findings ??= []).Add(new PolicyFinding(rule.Id, rule.Kind, rule.Decision, rule.Severity, message));
            trace?.Add(new RuleTrace(rule.Id, rule.Kind, Name(rule.Decision), message));
        }

        if (!document.Actions.Contains(action.Kind) && document.DefaultDecision != PolicyVerdict.Allow)
        {
            var rule = new PolicyRule("default_decision", "default_decision", document.DefaultDecision, PolicySeverity.Warning, new HashSet<string>(), null);
            Find(rule, $"'{action.Kind}' is not one of the actions this policy allows; its default decision is {Name(document.DefaultDecision)}");
        }

        foreach (var rule in document.Rules)
        {
            if (!rule.AppliesToKind(action.Kind))
            {
                trace?.Add(new RuleTrace(rule.Id, rule.Kind, "not_applicable", $"applies to {string.Join(", ", rule.AppliesTo.Order(StringComparer.Ordinal))}"));
                continue;
            }

            var message = Check(rule, action, facts, history, now, tenantZone);
            if (message is null)
            {
                trace?.Add(new RuleTrace(rule.Id, rule.Kind, "passed", ""));
            }
            else
            {
                Find(rule, message);
            }
        }

        if (findings is null)
        {
            return new PolicyDecision(PolicyVerdict.Allow, [], null, version);
        }

        var verdict = findings.Max(f => f.Verdict);
        var determining = findings.Where(f => f.Verdict == verdict).ToList();
        return new PolicyDecision(verdict, determining.Select(f => f.RuleId).ToList(),
            string.Join("; ", determining.Select(f => $"{f.RuleId}: {f.Message}")), version)
        {
            Findings = findings,
        };
    }

    /// <summary>
    /// Why an action of <paramref name="kind"/> could not happen at <paramref name="now"/> for a target in the time zone <paramref name="target"/>
    /// because of the document's timing rules (send windows, holidays) alone — null when they allow it. The planner asks
    /// before it chooses a message, so a message waits for its window instead of being proposed, denied and recorded
    /// every hour of the night.
    /// </summary>
    public static string? TimingBlocks(PolicyDocument document, string kind, (TimeZoneInfo Zone, string Source) target, DateTimeOffset now, TimeZoneInfo tenantZone)
    {
        ArgumentNullException.ThrowIfNull(document);
        foreach (var rule in document.Rules)
        {
            if (rule.Kind is "send_window" or "holidays" && rule.Decision == PolicyVerdict.Deny && rule.AppliesToKind(kind)
                && Check(rule, new PolicyAction(kind, null), new TargetFacts(target.Zone, target.Source), new PolicyHistory(), now, tenantZone) is { } message)
            {
                return $"{rule.Id}: {message}";
            }
        }

        return null;
    }

    /// <summary>
    /// The first instant at or after <paramref name="now"/> when <see cref="TimingBlocks"/> lets an action of
    /// <paramref name="kind"/> happen for a target in <paramref name="target"/>'s time zone: <paramref name="now"/> itself
    /// when nothing blocks it, otherwise the moment the send window opens (or the holiday ends); null when it does not
    /// open within <paramref name="horizon"/>. The outbox holds a message outside its window until then.
    /// </summary>
    /// <remarks>
    /// The timing rules block a set of instants whose openings can only be: the window's start on some local day, a local
    /// midnight in the tenant's zone (a holiday ends), or a daylight-saving transition of either zone (a start that falls
    /// in a skipped hour opens at the transition; a repeated hour can re-enter a window). Each candidate is judged by
    /// <see cref="TimingBlocks"/> itself, so the answer is whatever the evaluator says, and the earliest that passes wins.
    /// </remarks>
    public static DateTimeOffset? NextTimingOpening(PolicyDocument document, string kind, (TimeZoneInfo Zone, string Source) target, DateTimeOffset now,
        TimeZoneInfo tenantZone, TimeSpan horizon)
    {
        ArgumentNullException.ThrowIfNull(document);
        if (TimingBlocks(document, kind, target, now, tenantZone) is null)
        {
            return now;
        }

        var end = now + horizon;
        var candidates = new List<DateTimeOffset>();
        var days = (int)Math.Ceiling(horizon.TotalDays) + 1;
        foreach (var rule in document.Rules)
        {
            if (rule.Kind == "send_window" && rule.Decision == PolicyVerdict.Deny && rule.AppliesToKind(kind))
            {
                AddLocalTimes(candidates, target.Zone, now, days, rule.Start);
            }
        }

        AddLocalTimes(candidates, tenantZone, now, days, TimeOnly.MinValue);
        AddTransitions(candidates, target.Zone, now, end);
        AddTransitions(candidates, tenantZone, now, end);
        candidates.Sort();
        foreach (var at in candidates)
        {
            if (at > now && at <= end && TimingBlocks(document, kind, target, at, tenantZone) is null)
            {
                return at;
            }
        }

        return null;
    }

    // Every instant whose local time in zone is `time`, on each local day from now's (inclusive) for `days` days: one
    // instant, two in a repeated hour, none in a skipped one (the transition covers it).
    private static void AddLocalTimes(List<DateTimeOffset> candidates, TimeZoneInfo zone, DateTimeOffset now, int days, TimeOnly time)
    {
        var today = TimeZoneInfo.ConvertTime(now, zone).Date;
        for (var d = 0; d <= days; d++)
        {
            var local = DateTime.SpecifyKind(today.AddDays(d) + time.ToTimeSpan(), DateTimeKind.Unspecified);
            if (zone.IsInvalidTime(local))
            {
                continue;
            }

            var offsets = zone.IsAmbiguousTime(local) ? zone.GetAmbiguousTimeOffsets(local) : [zone.GetUtcOffset(local)];
            foreach (var offset in offsets)
            {
                candidates.Add(new DateTimeOffset(local, offset).ToUniversalTime());
            }
        }
    }

    // The instants in (from, to] where the zone's UTC offset changes, to the second: hour by hour, then halving.
    private static void AddTransitions(List<DateTimeOffset> candidates, TimeZoneInfo zone, DateTimeOffset from, DateTimeOffset to)
    {
        var step = TimeSpan.FromHours(1);
        for (var at = from; at < to; at += step)
        {
            var next = at + step;
            if (zone.GetUtcOffset(at) == zone.GetUtcOffset(next))
            {
                continue;
            }

            var (low, high) = (at, next);
            while (high - low > TimeSpan.FromSeconds(1))
            {
                var middle = low + ((high - low) / 2);
                if (zone.GetUtcOffset(middle) == zone.GetUtcOffset(low))
                {
                    low = middle;
                }
                else
                {
                    high = middle;
                }
            }

            candidates.Add(new DateTimeOffset(high.UtcTicks - (high.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero));
        }
    }

    public static string Name(PolicyVerdict verdict) => verdict switch
    {
        PolicyVerdict.Allow => "allow",
        PolicyVerdict.Warn => "warn",
        PolicyVerdict.RequireApproval => "require_approval",
        _ => "deny",
    };

    public static TimeSpan Length(PolicyWindow window) => window switch
    {
        PolicyWindow.Hour => TimeSpan.FromHours(1),
        PolicyWindow.Day => TimeSpan.FromDays(1),
        _ => TimeSpan.FromDays(7),
    };

    // Null when the rule passes; otherwise what it found, in words.
    private static string? Check(PolicyRule rule, PolicyAction action, TargetFacts facts, PolicyHistory history, DateTimeOffset now, TimeZoneInfo tenantZone)
    {
        switch (rule.Kind)
        {
            case "cap":
            {
                if (!action.IsTouch || (rule.Scope == CapScope.Channel && action.Channel != rule.Channel) || (rule.Scope == CapScope.Contact && action.TargetId is null))
                {
                    return null;
                }

                var count = history.Count(rule.Scope, action.Channel, action.TargetId, now - Length(rule.Window), now);
                if (count + 1 <= rule.Limit)
                {
                    return null;
                }

                var what = rule.Scope switch { CapScope.Channel => $"{rule.Channel} touches", CapScope.Contact => "touches of this contact", _ => "touches" };
                return string.Create(CultureInfo.InvariantCulture, $"{count} {what} in the last {Word(rule.Window)}; the cap is {rule.Limit}");
            }

            case "min_gap":
            {
                if (!action.IsTouch || action.TargetId is not { } target)
                {
                    return null;
                }

                var last = Max(facts.LastTouchAt, history.LastTouch(target));
                var gap = TimeSpan.FromHours(rule.Hours);
                return last is { } at && now - at < gap
                    ? string.Create(CultureInfo.InvariantCulture, $"last touched {Ago(now - at)} ago; at least {rule.Hours:0.##} h between two touches")
                    : null;
            }

            case "one_open_touch":
                return action.IsTouch && action.TargetId is { } open && (facts.HasOpenTouch || history.TouchedThisCycle(open))
                    ? "a touch of this contact or account is already open"
                    : null;

            case "send_window":
            {
                var local = TimeZoneInfo.ConvertTime(now, facts.Zone);
                var time = TimeOnly.FromDateTime(local.DateTime);
                return rule.Days.Contains(local.DayOfWeek) && time >= rule.Start && (time < rule.End || rule.End == TimeOnly.MaxValue)
                    ? null
                    : string.Create(CultureInfo.InvariantCulture,
                        $"it is {local:ddd HH:mm} in {facts.Zone.Id} (the {facts.ZoneSource}'s time zone); sends are allowed {Days(rule.Days)} {rule.Start:HH\\:mm}-{(rule.End == TimeOnly.MaxValue ? "24:00" : rule.End.ToString("HH\\:mm", CultureInfo.InvariantCulture))}");
            }

            case "holidays":
            {
                var today = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(now, tenantZone).DateTime);
                return rule.Dates.Contains(today) ? string.Create(CultureInfo.InvariantCulture, $"{today:yyyy-MM-dd} is a holiday in the tenant's calendar") : null;
            }

            case "do_not_contact":
                return action.IsTouch ? facts.DoNotContactReason : null;

            case "channel_allowlist":
                return action.Channel is { } channel && channel != "task" && !rule.Channels.Contains(channel)
                    ? $"channel '{channel}' is not allowed (allowed: {string.Join(", ", rule.Channels.Order(StringComparer.Ordinal))})"
                    : null;

            case "order_value_approval":
                return action.OrderValue is { } value && value > rule.Above
                    ? string.Create(CultureInfo.InvariantCulture, $"order value {value:0.##} is above {rule.Above:0.##}")
                    : null;

            case "auto_fix_ceiling":
                if (rule.MaxPriceChangePct is { } maxPrice && action.PriceChangePct is { } price && Math.Abs(price) > maxPrice)
                {
                    return string.Create(CultureInfo.InvariantCulture, $"the fix changes a price by {price:0.##}%; the ceiling is {maxPrice:0.##}%");
                }

                return rule.MaxDiscountChangePct is { } maxDiscount && action.DiscountChangePct is { } discount && Math.Abs(discount) > maxDiscount
                    ? string.Create(CultureInfo.InvariantCulture, $"the fix changes a discount by {discount:0.##} points; the ceiling is {maxDiscount:0.##}")
                    : null;

            case "credit_hold":
                return facts.CreditHold && action.OrderValue is not null ? "the account is on credit hold" : null;

            case "cycle_budget":
                return history.PermittedThisCycle + 1 > rule.MaxActions
                    ? string.Create(CultureInfo.InvariantCulture, $"{history.PermittedThisCycle} actions already taken this cycle; the budget is {rule.MaxActions}")
                    : null;

            default:
                return null;
        }
    }

    private static DateTimeOffset? Max(DateTimeOffset? a, DateTimeOffset? b) => a is null ? b : b is null ? a : a > b ? a : b;

    private static string Word(PolicyWindow window) => window switch { PolicyWindow.Hour => "hour", PolicyWindow.Day => "24 hours", _ => "7 days" };

    private static string Ago(TimeSpan span) =>
        span.TotalHours >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{span.TotalHours:0.#} h") : string.Create(CultureInfo.InvariantCulture, $"{span.TotalMinutes:0} min");

    private static string Days(IReadOnlySet<DayOfWeek> days) =>
        string.Join(",", days.Order().Select(d => CultureInfo.InvariantCulture.DateTimeFormat.GetAbbreviatedDayName(d)));
}
