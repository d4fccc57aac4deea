using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Hourglass.Policies;

/// <summary>
/// A tenant's policy document, parsed and validated: the action kinds the agent may take, the decision for any
/// other kind, and the rules. Published schema: docs/policy.schema.json; rule kinds: docs/policies.md.
/// </summary>
internal sealed class PolicyDocument
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
        var reader = new PolicyDocumentReader(problems);
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
}
