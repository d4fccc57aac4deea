using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Hourglass.Policies;

/// <summary>Reads fields, collecting problems named by their path rather than stopping at the first.</summary>
internal sealed class PolicyDocumentReader(List<PolicyProblem> problems)
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
        if (kind is not null && !PolicyDocument.RuleKinds.Contains(kind))
        {
            problems.Add(new($"{path}.kind", $"unknown rule kind '{kind}'; the kinds are {string.Join(", ", PolicyDocument.RuleKinds)}"));
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
        var touches = new HashSet<string>(PolicyDocument.TouchKinds, StringComparer.Ordinal);
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
            if (channel is not null && !PolicyDocument.KnownChannels.Contains(channel))
            {
                problems.Add(new($"{path}.channel", $"unknown channel '{channel}'; the channels are {string.Join(", ", PolicyDocument.KnownChannels)}"));
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

        foreach (var channel in channels.Where(c => !PolicyDocument.KnownChannels.Contains(c)))
        {
            problems.Add(new($"{path}.{field}", $"unknown channel '{channel}'; the channels are {string.Join(", ", PolicyDocument.KnownChannels)}"));
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
