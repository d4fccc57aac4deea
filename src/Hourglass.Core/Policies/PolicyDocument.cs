using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Hourglass.Policies;

/// <summary>How bad a finding is. <see cref="Critical"/> pauses the tenant (the kill switch).</summary>
public enum PolicySeverity
{
    Info,
    Warning,
    Error,
    Critical,
}

/// <summary>A rolling window: the last hour, 24 hours or 7 × 24 hours before the moment of the decision.</summary>
public enum PolicyWindow
{
    Hour,
    Day,
    Week,
}

/// <summary>What a cap counts: all the tenant's touches, one channel's, or one contact's.</summary>
public enum CapScope
{
    Tenant,
    Channel,
    Contact,
}

/// <summary>One rule of a policy document: its id, kind, what it decides when it applies, and its settings.</summary>
public sealed record PolicyRule(
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

/// <summary>
/// A tenant's policy document, parsed and validated: the action kinds the agent may take, the decision for any
/// other kind, and the rules. Published schema: docs/policy.schema.json; rule kinds: docs/policies.md.
/// </summary>
public sealed class PolicyDocument
{
    public const string SchemaId = "hourglass.policy/v1";

    /// <summary>The kinds of action that touch a contact or account (caps, gaps and windows count these).</summary>
    public static readonly IReadOnlySet<string> TouchKinds = new HashSet<string>(StringComparer.Ordinal) { "touch_task", "send_message" };

    /// <summary>The channels a message can go out on; a touch_task card counts as the channel <c>task</c>.</summary>
    public static readonly IReadOnlySet<string> KnownChannels = new HashSet<string>(StringComparer.Ordinal) { "email", "webhook", "task" };

    public static readonly IReadOnlyList<string> RuleKinds =
    [
        "cap", "min_gap", "one_open_touch", "send_window", "holidays", "do_not_contact", "channel_allowlist",
        "order_value_approval", "auto_fix_ceiling", "credit_hold", "cycle_budget",
    ];

    private PolicyDocument(JsonObject source, PolicyVerdict defaultDecision, IReadOnlySet<string> actions, IReadOnlyList<PolicyRule> rules)
    {
        Source = source;
        DefaultDecision = defaultDecision;
        Actions = actions;
        Rules = rules;
    }

    /// <summary>The document as saved (normalised JSON).</summary>
    public JsonObject Source { get; }

    /// <summary>The decision for an action of a kind not in <see cref="Actions"/>: deny unless the tenant says otherwise.</summary>
    public PolicyVerdict DefaultDecision { get; }

    /// <summary>The kinds of action the agent may take under this document (each still passes the rules).</summary>
    public IReadOnlySet<string> Actions { get; }

    public IReadOnlyList<PolicyRule> Rules { get; }

    /// <summary>The built-in default set: what a tenant without a document of its own gets (docs/policies.md).</summary>
    public static PolicyDocument Default { get; } = Parse(DefaultJson);

    public static string DefaultJson => """
        {
          "schema": "hourglass.policy/v1",
          "default_decision": "deny",
          "actions": ["touch_task", "send_message", "order_auto_fix", "order_release"],
          "rules": [
            { "id": "do-not-contact", "kind": "do_not_contact", "severity": "error",
              "description": "Never touch a contact who opted out or must not be contacted, or anyone at a do-not-contact account." },
            { "id": "one-open-touch", "kind": "one_open_touch", "description": "One open touch per contact or account at a time." },
            { "id": "contact-weekly-cap", "kind": "cap", "scope": "contact", "window": "week", "limit": 3,
              "description": "At most three touches of one contact in any 7 days." },
            { "id": "min-gap-48h", "kind": "min_gap", "hours": 48, "description": "Two days at least between two touches of one contact." },
            { "id": "email-daily-cap", "kind": "cap", "scope": "channel", "channel": "email", "window": "day", "limit": 500 },
            { "id": "business-hours", "kind": "send_window", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00",
              "description": "Messages go out on weekdays, 08:00-18:00 in the contact's time zone." },
            { "id": "channels", "kind": "channel_allowlist", "channels": ["email", "webhook"] },
            { "id": "large-orders", "kind": "order_value_approval", "above": 50000, "description": "A person approves orders above 50,000." },
            { "id": "auto-fix-ceiling", "kind": "auto_fix_ceiling", "max_price_change_pct": 10, "max_discount_change_pct": 5 },
            { "id": "credit-hold", "kind": "credit_hold" },
            { "id": "cycle-budget", "kind": "cycle_budget", "max_actions": 100 }
          ]
        }
        """;

    /// <summary>Parses and validates a document; every problem is reported with the field it is in.</summary>
    /// <exception cref="PolicyValidationException">The document is malformed or contradicts itself.</exception>
    public static PolicyDocument Parse(string json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException ex)
        {
            throw new PolicyValidationException([new PolicyProblem("$", $"not valid JSON ({ex.Message.Split(" LineNumber", 2)[0].TrimEnd('.')})")]);
        }

        if (node is not JsonObject root)
        {
            throw new PolicyValidationException([new PolicyProblem("$", "must be a JSON object")]);
        }

        // JsonObject builds its dictionary lazily and refuses a repeated key then: a key given twice is ambiguous.
        try
        {
            Walk(root);
        }
        catch (ArgumentException ex)
        {
            throw new PolicyValidationException([new PolicyProblem("$", $"a key appears twice in one object ({ex.Message.Split(" (Parameter", 2)[0]})")]);
        }

        var problems = new List<PolicyProblem>();
        var reader = new Reader(problems);
        reader.NoUnknownFields(root, "$", ["schema", "default_decision", "actions", "rules", "description"]);
        reader.String(root, "$", "description", required: false);
        var schema = reader.String(root, "$", "schema", required: true);
        if (schema is not null && schema != SchemaId)
        {
            problems.Add(new("schema", $"must be '{SchemaId}' (got '{schema}')"));
        }

        var defaultDecision = reader.Verdict(root, "$", "default_decision") ?? PolicyVerdict.Deny;
        var actions = reader.Names(root, "$", "actions", ActionKind) ?? new HashSet<string>(TouchKinds, StringComparer.Ordinal);
        // Every valid rule with its place in the document; the enabled ones are in force.
        var parsed = new List<(PolicyRule Rule, int Index, bool Enabled)>();
        if (root["rules"] is not null and not JsonArray)
        {
            problems.Add(new("rules", "must be an array of rules"));
        }
        else if (root["rules"] is JsonArray array)
        {
            for (var i = 0; i < array.Count; i++)
            {
                if (reader.Rule(array[i], $"rules[{i}]", out var enabled) is { } rule)
                {
                    parsed.Add((rule, i, enabled));
                }
            }
        }

        CheckContradictions(parsed, actions, problems);
        if (problems.Count > 0)
        {
            throw new PolicyValidationException(problems);
        }

        return new PolicyDocument(root, defaultDecision, actions, parsed.Where(p => p.Enabled).Select(p => p.Rule).ToList());
    }

    // \z, not $: $ also matches before a final newline.
    private static readonly Regex ActionKind = new(@"^[a-z][a-z0-9_]{0,63}\z", RegexOptions.CultureInvariant);

    private static void Walk(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (_, child) in obj)
                {
                    Walk(child);
                }

                break;
            case JsonArray list:
                foreach (var child in list)
                {
                    Walk(child);
                }

                break;
        }
    }

    private static void CheckContradictions(List<(PolicyRule Rule, int Index, bool Enabled)> parsed, IReadOnlySet<string> actions, List<PolicyProblem> problems)
    {
        // Ids are unique across the document, disabled rules included: enabling one later must not create a clash.
        foreach (var duplicate in parsed.GroupBy(p => p.Rule.Id, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            problems.Add(new($"rules[{duplicate.Last().Index}].id", $"'{duplicate.Key}' is used by more than one rule"));
        }

        var rules = parsed.Where(p => p.Enabled).ToList();
        foreach (var single in new[] { "send_window", "channel_allowlist" })
        {
            var many = rules.Where(x => x.Rule.Kind == single).ToList();
            if (many.Count > 1)
            {
                problems.Add(new($"rules[{many[1].Index}].kind", $"at most one {single} rule (rule '{many[0].Rule.Id}' is one already)"));
            }
        }

        var allowlist = rules.Select(r => r.Rule).FirstOrDefault(r => r.Kind == "channel_allowlist");
        foreach (var (rule, i, _) in rules)
        {
            if (allowlist is not null && rule is { Kind: "cap", Scope: CapScope.Channel } && rule.Channel is { } channel
                && channel != "task" && !allowlist.Channels.Contains(channel))
            {
                problems.Add(new($"rules[{i}].channel", $"'{channel}' is not in the channel_allowlist '{allowlist.Id}', so this cap can never apply"));
            }

            foreach (var kind in rule.AppliesTo.Where(k => k != "*" && !actions.Contains(k)))
            {
                problems.Add(new($"rules[{i}].applies_to", $"'{kind}' is not one of the document's actions ({string.Join(", ", actions.Order(StringComparer.Ordinal))})"));
            }
        }
    }

    /// <summary>Reads fields, collecting problems named by their path rather than stopping at the first.</summary>
    private sealed class Reader(List<PolicyProblem> problems)
    {
        private static readonly Regex RuleId = new(@"^[a-z0-9][a-z0-9_.-]{0,63}\z", RegexOptions.CultureInvariant);
        private static readonly Dictionary<string, DayOfWeek> Weekdays = new(StringComparer.Ordinal)
        {
            ["mon"] = DayOfWeek.Monday, ["tue"] = DayOfWeek.Tuesday, ["wed"] = DayOfWeek.Wednesday, ["thu"] = DayOfWeek.Thursday,
            ["fri"] = DayOfWeek.Friday, ["sat"] = DayOfWeek.Saturday, ["sun"] = DayOfWeek.Sunday,
        };

        private static readonly string[] Common = ["id", "kind", "enabled", "decision", "severity", "applies_to", "description"];

        public PolicyRule? Rule(JsonNode? node, string path, out bool enabled)
        {
            enabled = false;
            if (node is not JsonObject rule)
            {
                problems.Add(new(path, "must be an object"));
                return null;
            }

            var before = problems.Count;
            var id = String(rule, path, "id", required: true);
            if (id is not null && !RuleId.IsMatch(id))
            {
                problems.Add(new($"{path}.id", $"must be 1-64 lowercase letters, digits, '_', '.' or '-' (got '{id}')"));
            }

            var kind = String(rule, path, "kind", required: true);
            if (kind is not null && !RuleKinds.Contains(kind))
            {
                problems.Add(new($"{path}.kind", $"unknown rule kind '{kind}'; the kinds are {string.Join(", ", RuleKinds)}"));
                return null;
            }

            if (kind is null)
            {
                return null;
            }

            var settings = kind switch
            {
                "cap" => new[] { "scope", "window", "limit", "channel" },
                "min_gap" => ["hours"],
                "send_window" => ["days", "start", "end"],
                "holidays" => ["dates"],
                "channel_allowlist" => ["channels"],
                "order_value_approval" => ["above"],
                "auto_fix_ceiling" => ["max_price_change_pct", "max_discount_change_pct"],
                "cycle_budget" => ["max_actions"],
                _ => [],
            };
            NoUnknownFields(rule, path, [.. Common, .. settings]);
            enabled = rule["enabled"] is null || Boolean(rule, path, "enabled");
            var (defaultDecision, defaultSeverity, defaultAppliesTo) = Defaults(kind);
            var decision = Verdict(rule, path, "decision") ?? defaultDecision;
            if (decision == PolicyVerdict.Allow)
            {
                problems.Add(new($"{path}.decision", "must be deny, require_approval or warn: a rule that allows decides nothing"));
            }

            var severity = Severity(rule, path) ?? defaultSeverity;
            var appliesTo = Names(rule, path, "applies_to", null, allowStar: true) ?? defaultAppliesTo;
            var result = new PolicyRule(id ?? "", kind, decision, severity, appliesTo, String(rule, path, "description", required: false));
            result = kind switch
            {
                "cap" => Cap(rule, path, result),
                "min_gap" => result with { Hours = Number(rule, path, "hours", min: 0, exclusiveMin: true, max: 24 * 366) ?? 0 },
                "send_window" => SendWindow(rule, path, result),
                "holidays" => result with { Dates = Dates(rule, path) },
                "channel_allowlist" => result with { Channels = Channels(rule, path, "channels", allowEmpty: false) },
                "order_value_approval" => result with { Above = (decimal)(Number(rule, path, "above", min: 0, max: 1e15) ?? 0) },
                "auto_fix_ceiling" => Ceiling(rule, path, result),
                "cycle_budget" => result with { MaxActions = Integer(rule, path, "max_actions", min: 0) ?? 0 },
                _ => result,
            };
            return problems.Count > before ? null : result;
        }

        private static (PolicyVerdict, PolicySeverity, IReadOnlySet<string>) Defaults(string kind)
        {
            var touches = new HashSet<string>(TouchKinds, StringComparer.Ordinal);
            var messages = new HashSet<string>(StringComparer.Ordinal) { "send_message" };
            var all = new HashSet<string>(StringComparer.Ordinal) { "*" };
            return kind switch
            {
                "cap" => (PolicyVerdict.Deny, PolicySeverity.Warning, touches),
                "min_gap" => (PolicyVerdict.Deny, PolicySeverity.Info, touches),
                "one_open_touch" => (PolicyVerdict.Deny, PolicySeverity.Info, touches),
                "send_window" => (PolicyVerdict.Deny, PolicySeverity.Info, messages),
                "holidays" => (PolicyVerdict.Deny, PolicySeverity.Info, messages),
                "do_not_contact" => (PolicyVerdict.Deny, PolicySeverity.Error, touches),
                "channel_allowlist" => (PolicyVerdict.Deny, PolicySeverity.Error, messages),
                "order_value_approval" => (PolicyVerdict.RequireApproval, PolicySeverity.Info, all),
                "auto_fix_ceiling" => (PolicyVerdict.Deny, PolicySeverity.Warning, all),
                "credit_hold" => (PolicyVerdict.RequireApproval, PolicySeverity.Warning, all),
                _ => (PolicyVerdict.Deny, PolicySeverity.Info, all), // cycle_budget
            };
        }

        private PolicyRule Cap(JsonObject rule, string path, PolicyRule result)
        {
            var scope = Enum(rule, path, "scope", ["tenant", "channel", "contact"]);
            var window = Enum(rule, path, "window", ["hour", "day", "week"]);
            var limit = Integer(rule, path, "limit", min: 0);
            string? channel = null;
            if (scope == "channel")
            {
                channel = String(rule, path, "channel", required: true);
                if (channel is not null && !KnownChannels.Contains(channel))
                {
                    problems.Add(new($"{path}.channel", $"unknown channel '{channel}'; the channels are {string.Join(", ", KnownChannels)}"));
                }
            }
            else if (rule["channel"] is not null)
            {
                problems.Add(new($"{path}.channel", "is only for scope 'channel'"));
            }

            return result with
            {
                Scope = scope switch { "channel" => CapScope.Channel, "contact" => CapScope.Contact, _ => CapScope.Tenant },
                Window = window switch { "hour" => PolicyWindow.Hour, "day" => PolicyWindow.Day, _ => PolicyWindow.Week },
                Limit = limit ?? 0,
                Channel = channel,
            };
        }

        private PolicyRule SendWindow(JsonObject rule, string path, PolicyRule result)
        {
            var days = new HashSet<DayOfWeek>();
            if (rule["days"] is not JsonArray array || array.Count == 0)
            {
                problems.Add(new($"{path}.days", "must be a non-empty array of mon, tue, wed, thu, fri, sat, sun"));
            }
            else
            {
                for (var i = 0; i < array.Count; i++)
                {
                    if (array[i] is JsonValue v && v.TryGetValue<string>(out var day) && Weekdays.TryGetValue(day, out var weekday))
                    {
                        days.Add(weekday);
                    }
                    else
                    {
                        problems.Add(new($"{path}.days[{i}]", $"must be one of mon, tue, wed, thu, fri, sat, sun (got {array[i]?.ToJsonString() ?? "null"})"));
                    }
                }
            }

            var start = Time(rule, path, "start");
            var end = Time(rule, path, "end");
            if (start is { } s && end is { } e && s >= e)
            {
                problems.Add(new($"{path}.end", $"must be after start ({s:HH\\:mm}): a window that ends before it starts never opens"));
            }

            return result with { Days = days, Start = start ?? default, End = end ?? default };
        }

        private PolicyRule Ceiling(JsonObject rule, string path, PolicyRule result)
        {
            var price = rule["max_price_change_pct"] is null ? null : Number(rule, path, "max_price_change_pct", min: 0, max: 100);
            var discount = rule["max_discount_change_pct"] is null ? null : Number(rule, path, "max_discount_change_pct", min: 0, max: 100);
            if (rule["max_price_change_pct"] is null && rule["max_discount_change_pct"] is null)
            {
                problems.Add(new($"{path}.max_price_change_pct", "is required (or max_discount_change_pct): a ceiling needs a limit"));
            }

            return result with { MaxPriceChangePct = (decimal?)price, MaxDiscountChangePct = (decimal?)discount };
        }

        private IReadOnlySet<DateOnly> Dates(JsonObject rule, string path)
        {
            var dates = new HashSet<DateOnly>();
            if (rule["dates"] is not JsonArray array)
            {
                problems.Add(new($"{path}.dates", "must be an array of dates (YYYY-MM-DD)"));
                return dates;
            }

            for (var i = 0; i < array.Count; i++)
            {
                if (array[i] is JsonValue v && v.TryGetValue<string>(out var text)
                    && DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
                {
                    dates.Add(date);
                }
                else
                {
                    problems.Add(new($"{path}.dates[{i}]", $"must be a date YYYY-MM-DD (got {array[i]?.ToJsonString() ?? "null"})"));
                }
            }

            return dates;
        }

        private IReadOnlySet<string> Channels(JsonObject rule, string path, string field, bool allowEmpty)
        {
            var channels = Names(rule, path, field, null) ?? new HashSet<string>();
            if (rule[field] is null)
            {
                problems.Add(new($"{path}.{field}", "is required"));
            }
            else if (channels.Count == 0 && !allowEmpty)
            {
                problems.Add(new($"{path}.{field}", "must name at least one channel (to stop all messages, remove send_message from actions)"));
            }

            foreach (var channel in channels.Where(c => !KnownChannels.Contains(c)))
            {
                problems.Add(new($"{path}.{field}", $"unknown channel '{channel}'; the channels are {string.Join(", ", KnownChannels)}"));
            }

            return channels;
        }

        public void NoUnknownFields(JsonObject node, string path, IReadOnlyCollection<string> known)
        {
            foreach (var (name, _) in node)
            {
                if (!known.Contains(name))
                {
                    problems.Add(new(Join(path, name), $"unknown field; the fields here are {string.Join(", ", known)}"));
                }
            }
        }

        public string? String(JsonObject node, string path, string field, bool required)
        {
            var value = node[field];
            if (value is null)
            {
                if (required)
                {
                    problems.Add(new(Join(path, field), "is required"));
                }

                return null;
            }

            if (value is JsonValue v && v.TryGetValue<string>(out var text) && !string.IsNullOrWhiteSpace(text))
            {
                return text;
            }

            problems.Add(new(Join(path, field), $"must be a non-empty string (got {value.ToJsonString()})"));
            return null;
        }

        public PolicyVerdict? Verdict(JsonObject node, string path, string field) =>
            Enum(node, path, field, ["allow", "warn", "require_approval", "deny"], required: false) switch
            {
                "allow" => PolicyVerdict.Allow,
                "warn" => PolicyVerdict.Warn,
                "require_approval" => PolicyVerdict.RequireApproval,
                "deny" => PolicyVerdict.Deny,
                _ => null,
            };

        private PolicySeverity? Severity(JsonObject node, string path) =>
            Enum(node, path, "severity", ["info", "warning", "error", "critical"], required: false) switch
            {
                "info" => PolicySeverity.Info,
                "warning" => PolicySeverity.Warning,
                "error" => PolicySeverity.Error,
                "critical" => PolicySeverity.Critical,
                _ => null,
            };

        private string? Enum(JsonObject node, string path, string field, string[] values, bool required = true)
        {
            var text = String(node, path, field, required);
            if (text is not null && !values.Contains(text))
            {
                problems.Add(new(Join(path, field), $"must be one of {string.Join(", ", values)} (got '{text}')"));
                return null;
            }

            return text;
        }

        public IReadOnlySet<string>? Names(JsonObject node, string path, string field, Regex? pattern, bool allowStar = false)
        {
            var value = node[field];
            if (value is null)
            {
                return null;
            }

            if (value is not JsonArray array)
            {
                problems.Add(new(Join(path, field), "must be an array of names"));
                return null;
            }

            var names = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < array.Count; i++)
            {
                if (array[i] is JsonValue v && v.TryGetValue<string>(out var name) && !string.IsNullOrWhiteSpace(name)
                    && (pattern is null || pattern.IsMatch(name) || (allowStar && name == "*")))
                {
                    names.Add(name);
                }
                else
                {
                    problems.Add(new($"{Join(path, field)}[{i}]", $"must be a name{(pattern is null ? "" : " (lowercase letters, digits, '_')")} (got {array[i]?.ToJsonString() ?? "null"})"));
                }
            }

            return names;
        }

        private bool Boolean(JsonObject node, string path, string field)
        {
            if (node[field] is JsonValue v && v.TryGetValue<bool>(out var flag))
            {
                return flag;
            }

            problems.Add(new(Join(path, field), $"must be true or false (got {node[field]?.ToJsonString()})"));
            return false;
        }

        private double? Number(JsonObject node, string path, string field, double min, bool exclusiveMin = false, double max = double.MaxValue)
        {
            var value = node[field];
            if (value is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var number))
            {
                if (number < min || (exclusiveMin && number == min) || number > max)
                {
                    var range = max == double.MaxValue ? $"{(exclusiveMin ? ">" : "≥")} {min}" : $"between {min} and {max}";
                    problems.Add(new(Join(path, field), string.Create(CultureInfo.InvariantCulture, $"must be {range} (got {number})")));
                    return null;
                }

                return number;
            }

            problems.Add(new(Join(path, field), value is null ? "is required" : $"must be a number (got {value.ToJsonString()})"));
            return null;
        }

        private int? Integer(JsonObject node, string path, string field, int min)
        {
            var value = node[field];
            if (value is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var number))
            {
                if (number < min)
                {
                    problems.Add(new(Join(path, field), string.Create(CultureInfo.InvariantCulture, $"must be ≥ {min} (got {number})")));
                    return null;
                }

                return number;
            }

            problems.Add(new(Join(path, field), value is null ? "is required" : $"must be a whole number (got {value.ToJsonString()})"));
            return null;
        }

        private TimeOnly? Time(JsonObject node, string path, string field)
        {
            var text = String(node, path, field, required: true);
            if (text is null)
            {
                return null;
            }

            if (text == "24:00")
            {
                return TimeOnly.MaxValue;
            }

            if (TimeOnly.TryParseExact(text, "HH:mm", CultureInfo.InvariantCulture, DateTimeStyles.None, out var time))
            {
                return time;
            }

            problems.Add(new(Join(path, field), $"must be a time HH:MM, 00:00 to 24:00 (got '{text}')"));
            return null;
        }

        private static string Join(string path, string field) => path == "$" ? field : $"{path}.{field}";
    }
}

/// <summary>One problem in a policy document: the field (e.g. <c>rules[2].limit</c>) and what is wrong with it.</summary>
public sealed record PolicyProblem(string Field, string Problem)
{
    public override string ToString() => $"{Field}: {Problem}";
}

/// <summary>A policy document was refused; nothing was saved and the version in force stays in force.</summary>
public sealed class PolicyValidationException(IReadOnlyList<PolicyProblem> problems)
    : HourglassException($"policy document refused: {string.Join("; ", problems)}")
{
    public IReadOnlyList<PolicyProblem> Problems { get; } = problems;
}
