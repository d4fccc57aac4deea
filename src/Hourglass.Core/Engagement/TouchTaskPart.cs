using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Insights;
using Hourglass.Policies;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Engagement;

/// <summary>
/// Proposes a touch for the tenant's due-soon and overdue clocks, most urgent first (the queue's order and
/// its reasons), skipping anyone who already has an open touch card. The cycle's budgets decide how many are
/// taken this hour; the rest are deferred to the next.
/// The kind of touch: when the tenant has active success strategies (<c>success_strategies</c> whose
/// <c>action_template.kind</c> is <c>touch_task</c> or <c>send_message</c>) that apply to the target, one is chosen by
/// seeded Thompson sampling (<see cref="StrategySelector"/>; seed: tenant, target, the clock's due date), and the proposal cites it.
/// A message the policy's send window or holidays hold back now is not proposed this hour; a target a person declined a
/// message to this week gets a touch card instead.
/// Otherwise — and always for a target no strategy applies to — a touch_task card for the account's owner.
/// </summary>
internal sealed class TouchTaskPart(int queueDepth = TouchTaskPart.DefaultQueueDepth) : ICyclePart
{
    /// <summary>How far down the queue one cycle looks by default; budgets cut it further.</summary>
    public const int DefaultQueueDepth = 200;

    public string Name => "touches";

    public async Task<IReadOnlyList<ProposedAction>> ProposeAsync(CycleContext context, CancellationToken cancellationToken)
    {
        var strategies = await ActiveStrategiesAsync(context, cancellationToken);
        var policy = strategies.Count == 0 ? null : (await PolicyStore.InForceAsync(context.Database.DataSource, context.TenantId, cancellationToken)).Document;
        var declined = strategies.Count == 0 ? [] : await DeclinedAsync(context, cancellationToken);
        var room = policy is null ? [] : await RoomByChannelAsync(context, policy, cancellationToken);
        var capped = room.Where(r => r.Value <= 0).Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
        var planning = new Planning(context, strategies, policy, declined, capped);
        // The queue's order (engagement_queue, best-time bonus included), but skipping clocks that already have an
        // open touch card or approval (or a rejection this week) before the limit: filtered after it, a queue whose
        // top 200 all had cards proposed nothing new.
        var rows = await TenancyStore.TouchCandidatesAsync(context.Database.DataSource, context.TenantId, queueDepth, cancellationToken);
        var proposals = planning.ProposeAll(rows, ahead: false);
        if (room.TryGetValue(Leveling.Channel, out var emailRoom))
        {
            proposals.AddRange(await planning.ProposeAheadAsync(emailRoom - proposals.Count(Leveling.IsEmail), cancellationToken));
        }

        return proposals;
    }

    /// <summary>What one candidate becomes: the kind of touch, its strategy, its reason and payload; null when not now.</summary>
    private sealed class Planning(CycleContext context, List<Strategy> strategies, PolicyDocument? policy, HashSet<Guid> declined, HashSet<string> capped)
    {
        /// <summary>The proposals for candidates in their order, leaving out those with nothing to do now.</summary>
        public List<ProposedAction> ProposeAll(IEnumerable<TouchCandidateRow> rows, bool ahead) =>
            rows.Select(row => Propose(row, ahead)).OfType<ProposedAction>().ToList();

        /// <summary>
        /// Leveling (docs/engagement.md, "Leveling the wave"): when the clocks coming due in the next days would not fit
        /// through the email cap on their own days, the cap's spare room this hour (<paramref name="left"/>, after the hour's
        /// own emails) goes to the earliest of them, by email only (a touch ahead of its date is not worth a person's card).
        /// Nothing when no room is left, when no email strategy is active, or when the tenant's send window is closed now.
        /// </summary>
        public async Task<List<ProposedAction>> ProposeAheadAsync(int left, CancellationToken cancellationToken)
        {
            if (policy is null || left <= 0 || !strategies.Any(Leveling.IsEmailStrategy)
                || PolicyEvaluator.TimingBlocks(policy, "send_message", (context.TenantZone, "tenant"), context.Now, context.TenantZone) is not null)
            {
                return [];
            }

            var capacity = Leveling.DailyCapacity(policy, context.TenantZone, context.Now);
            return ProposeAll(await TenancyStore.TouchCandidatesAheadAsync(context.Database.DataSource, context.TenantId, capacity, left, cancellationToken),
                ahead: true);
        }

        /// <summary>
        /// The proposal for a due (or, <paramref name="ahead"/>, a not yet due) clock; null when nothing should be done now:
        /// a message the send window holds back, or — ahead of the date — no email strategy that applies.
        /// </summary>
        public ProposedAction? Propose(TouchCandidateRow row, bool ahead)
        {
            var entityType = row.EntityType;
            var entityId = row.EntityId;
            var name = row.Name;
            var payload = new JsonObject
            {
                ["account_id"] = row.AccountId?.ToString(),
                ["owner_user_id"] = row.OwnerUserId?.ToString(),
                ["compliance_status"] = row.ComplianceStatus,
                ["days_overdue"] = row.DaysOverdue,
                ["next_touch_due"] = row.NextTouchDue.ToString("O"),
                ["name"] = name,
            };
            var kind = "touch_task";
            var reason = row.Reason;
            var facts = new Dictionary<string, string?>(StringComparer.Ordinal)
            {
                ["entity_type"] = entityType,
                ["tier"] = row.Tier,
                ["segment"] = row.Segment,
                ["compliance_status"] = row.ComplianceStatus,
            };
            // A person declined a message to this target in the last 7 days: no message again so soon, but the touch is still
            // due, so the owner is asked to make it (a touch card, or a strategy that asks for one).
            // Likewise when a channel's cap is used up for now: the touch is still due, and the owner can make it.
            var wasDeclined = declined.Contains(entityId);
            bool Held(Strategy s) => (string?)s.ActionTemplate["kind"] == "send_message"
                                     && (wasDeclined || capped.Contains((string?)s.ActionTemplate["channel"] ?? "email"));
            var matching = strategies.Where(s => s.Matches(facts)).ToList();
            var applicable = matching.Where(s => !Held(s) && (!ahead || Leveling.IsEmailStrategy(s))).ToList();
            if (ahead)
            {
                payload["ahead_of_due"] = true;
                if (applicable.Count == 0)
                {
                    return null;
                }
            }
            else if (wasDeclined)
            {
                reason = $"{reason}; a message was declined this week, so the owner makes the touch";
            }
            else if (applicable.Count < matching.Count)
            {
                reason = $"{reason}; the {string.Join(", ", capped.Order(StringComparer.Ordinal))} cap is reached for now, so the owner makes the touch";
            }

            // Seeded by the touch that is due (the target and its due date), not the hour: the choice stays while the touch
            // waits, so a message chosen at night goes out when the send window opens instead of being drawn again every hour
            // until a strategy the window does not hold back (a touch card) happens to win.
            var dueAt = row.NextTouchDue;
            var choice = StrategySelector.Choose(applicable, new Random(StrategySelector.SeedFor(context.TenantId, entityId, dueAt)));
            if (choice is not null)
            {
                var template = choice.Strategy.ActionTemplate;
                kind = (string?)template["kind"] ?? "touch_task";
                if (policy is not null && kind == "send_message"
                    && PolicyEvaluator.TimingBlocks(policy, kind, Zone(row.ContactZone, "contact") ?? Zone(row.AccountZone, "account") ?? (context.TenantZone, "tenant"), context.Now,
                        context.TenantZone) is not null)
                {
                    // Not now: the send window or a holiday holds it back. The contact stays in the queue for a later hour.
                    return null;
                }

                payload["strategy_key"] = choice.Strategy.Key;
                reason = $"{reason}; {choice.Reason}";
                if (kind == "send_message")
                {
                    payload["channel"] = template["channel"]?.DeepClone();
                    payload["subject"] = Fill((string?)template["subject"], name, row.AccountName);
                    payload["body"] = Fill((string?)template["body"], name, row.AccountName) ?? "";
                }
            }

            return new ProposedAction(kind, entityType, entityId, row.PriorityScore, reason, payload);
        }
    }

    /// <summary>
    /// How many more messages each channel's cap (a <c>cap</c> rule of scope channel that denies) lets through now: the
    /// tightest rule's limit less what the agent's messages used of its window (0 or less: used up; choosing a message
    /// there would only be blocked). Channels without such a rule are absent.
    /// </summary>
    private static async Task<Dictionary<string, int>> RoomByChannelAsync(CycleContext context, PolicyDocument policy, CancellationToken cancellationToken)
    {
        var room = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var rule in Leveling.ChannelCaps(policy))
        {
            var sent = await ActionLedger.SentMessagesOnChannelAsync(context.Database.DataSource, context.TenantId,
                context.Now - PolicyEvaluator.Length(rule.Window), context.Now, rule.Channel!, cancellationToken);
            var left = (int)Math.Max(int.MinValue, Math.Min(int.MaxValue, rule.Limit - sent));
            room[rule.Channel!] = room.TryGetValue(rule.Channel!, out var other) ? Math.Min(other, left) : left;
        }

        return room;
    }

    /// <summary>Contacts and accounts a person declined a message to (a rejected approval) in the last 7 days.</summary>
    private static Task<HashSet<Guid>> DeclinedAsync(CycleContext context, CancellationToken cancellationToken) =>
        ApprovalCardStore.DeclinedTargetsAsync(context.Database.DataSource, context.TenantId, cancellationToken);

    private static async Task<List<Strategy>> ActiveStrategiesAsync(CycleContext context, CancellationToken cancellationToken)
    {
        await using var command = context.Database.DataSource.CreateCommand(InsightsStore.ActiveTouchStrategiesSql);
        command.Parameters.Add(new() { Value = context.TenantId });
        var strategies = new List<Strategy>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            // A strategy whose applies_to is not an object applies nowhere rather than everywhere.
            if (JsonNode.Parse(reader.GetString(2)) is JsonObject appliesTo && JsonNode.Parse(reader.GetString(3)) is JsonObject template)
            {
                strategies.Add(new Strategy(reader.GetString(0), reader.GetString(1), appliesTo, template, reader.GetInt32(4), reader.GetInt32(5)));
            }
        }

        return strategies;
    }

    private static (TimeZoneInfo Zone, string Source)? Zone(string? id, string source) =>
        id is not null && TimeZoneInfo.TryFindSystemTimeZoneById(id, out var zone) ? (zone, source) : null;

    // {name} is the contact's (or account's) name, {account} the account's.
    private static string? Fill(string? template, string? name, string? account) =>
        template?.Replace("{name}", name ?? "there", StringComparison.Ordinal).Replace("{account}", account ?? "", StringComparison.Ordinal);
}

/// <summary>Creates the touch_task card for the account owner: a person makes the touch and completes the card.</summary>
internal sealed class TouchTaskHandler : IActionHandler
{
    public string Kind => "touch_task";

    public async Task<JsonObject?> ExecuteAsync(CycleContext context, ProposedAction action, NpgsqlConnection connection, NpgsqlTransaction transaction,
        CancellationToken cancellationToken)
    {
        var payload = action.Payload ?? [];
        var name = (string?)payload["name"] ?? action.TargetType;
        var cardId = await EngagementStore.OpenTouchCardAsync(connection, transaction, new TouchCardRequest(context.TenantId, $"Touch base with {name}",
            $"Why now: {action.Reason}.", action.TargetType!, action.TargetId!.Value, context.RunId,
            Guid.TryParse((string?)payload["owner_user_id"], out var owner) ? owner : null,
            DateTimeOffset.TryParse((string?)payload["next_touch_due"], System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AssumeUniversal, out var due) ? due.ToUniversalTime() : context.Now,
            payload), cancellationToken);
        return new JsonObject { ["card_id"] = cardId?.ToString(), ["already_open"] = cardId is null };
    }
}
