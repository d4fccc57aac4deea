using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Insights;
using Hourglass.Policies;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

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
        var capped = policy is null ? [] : await CappedChannelsAsync(context, policy, cancellationToken);
        // The queue's order (engagement_queue, best-time bonus included), but skipping clocks that already have an
        // open touch card or approval (or a rejection this week) before the limit: filtered after it, a queue whose
        // top 200 all had cards proposed nothing new.
        await using var command = context.Database.DataSource.CreateCommand("""
            select q.entity_type, q.entity_id, q.account_id, q.owner_user_id, q.compliance_status, q.days_overdue, q.next_touch_due,
                   q.priority_score, coalesce(q.priority_reason, q.compliance_status), coalesce(k.name, a.name), a.tier, a.segment, a.name,
                   k.timezone, a.timezone
            from hourglass.touch_candidates($1, $2, true) q
            left join public.contacts k on q.entity_type = 'contact' and k.tenant_id = $1 and k.id = q.entity_id
            left join public.accounts a on a.tenant_id = $1 and a.id = q.account_id
            order by q.priority_score desc, q.next_touch_due, q.clock_id
            """);
        command.Parameters.Add(new() { Value = context.TenantId });
        command.Parameters.Add(new() { Value = queueDepth });
        var proposals = new List<ProposedAction>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
            var entityType = reader.GetString(0);
            var entityId = reader.GetGuid(1);
            var name = Text(9);
            var payload = new JsonObject
            {
                ["account_id"] = reader.IsDBNull(2) ? null : reader.GetGuid(2).ToString(),
                ["owner_user_id"] = reader.IsDBNull(3) ? null : reader.GetGuid(3).ToString(),
                ["compliance_status"] = reader.GetString(4),
                ["days_overdue"] = reader.GetInt32(5),
                ["next_touch_due"] = reader.GetFieldValue<DateTimeOffset>(6).ToString("O"),
                ["name"] = name,
            };
            var kind = "touch_task";
            var reason = reader.GetString(8);
            var facts = new Dictionary<string, string?>(StringComparer.Ordinal)
            {
                ["entity_type"] = entityType,
                ["tier"] = Text(10),
                ["segment"] = Text(11),
                ["compliance_status"] = reader.GetString(4),
            };
            // A person declined a message to this target in the last 7 days: no message again so soon, but the touch is still
            // due, so the owner is asked to make it (a touch card, or a strategy that asks for one).
            // Likewise when a channel's cap is used up for now: the touch is still due, and the owner can make it.
            var wasDeclined = declined.Contains(entityId);
            bool Held(Strategy s) => (string?)s.ActionTemplate["kind"] == "send_message"
                                     && (wasDeclined || capped.Contains((string?)s.ActionTemplate["channel"] ?? "email"));
            var matching = strategies.Where(s => s.Matches(facts)).ToList();
            var applicable = matching.Where(s => !Held(s)).ToList();
            if (wasDeclined)
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
            var dueAt = reader.GetFieldValue<DateTimeOffset>(6);
            var choice = StrategySelector.Choose(applicable, new Random(StrategySelector.SeedFor(context.TenantId, entityId, dueAt)));
            if (choice is not null)
            {
                var template = choice.Strategy.ActionTemplate;
                kind = (string?)template["kind"] ?? "touch_task";
                if (policy is not null && kind == "send_message"
                    && PolicyEvaluator.TimingBlocks(policy, kind, Zone(Text(13), "contact") ?? Zone(Text(14), "account") ?? (context.TenantZone, "tenant"), context.Now,
                        context.TenantZone) is not null)
                {
                    // Not now: the send window or a holiday holds it back. The contact stays in the queue for a later hour.
                    continue;
                }

                payload["strategy_key"] = choice.Strategy.Key;
                reason = $"{reason}; {choice.Reason}";
                if (kind == "send_message")
                {
                    payload["channel"] = template["channel"]?.DeepClone();
                    payload["subject"] = Fill((string?)template["subject"], name, Text(12));
                    payload["body"] = Fill((string?)template["body"], name, Text(12)) ?? "";
                }
            }

            proposals.Add(new ProposedAction(kind, entityType, entityId, reader.GetDecimal(7), reason, payload));
        }

        return proposals;
    }

    /// <summary>
    /// The channels whose cap (a <c>cap</c> rule of scope channel that denies) the agent's messages have used up for the
    /// rule's window as of now: choosing a message there would only be blocked.
    /// </summary>
    private static async Task<HashSet<string>> CappedChannelsAsync(CycleContext context, PolicyDocument policy, CancellationToken cancellationToken)
    {
        var capped = new HashSet<string>(StringComparer.Ordinal);
        foreach (var rule in policy.Rules.Where(r => r is { Kind: "cap", Scope: CapScope.Channel, Decision: PolicyVerdict.Deny, Channel: not null }
                                                    && r.AppliesToKind("send_message")))
        {
            await using var command = context.Database.DataSource.CreateCommand("""
                select count(*) from public.agent_actions
                where tenant_id = $1 and status = 'succeeded' and kind = 'send_message' and completed_at > $2 and completed_at <= $3
                  and coalesce(payload ->> 'channel', 'email') = $4
                  and not (coalesce(result ->> 'suppressed' = 'true', false) or exists (
                    select 1 from public.message_outbox m
                    where m.tenant_id = $1 and m.id = (result ->> 'message_id')::uuid and m.status in ('suppressed', 'cancelled')))
                """);
            command.Parameters.Add(new() { Value = context.TenantId });
            command.Parameters.Add(new() { Value = context.Now - PolicyEvaluator.Length(rule.Window) });
            command.Parameters.Add(new() { Value = context.Now });
            command.Parameters.Add(new() { Value = rule.Channel! });
            if ((long)(await command.ExecuteScalarAsync(cancellationToken))! >= rule.Limit)
            {
                capped.Add(rule.Channel!);
            }
        }

        return capped;
    }

    /// <summary>Contacts and accounts a person declined a message to (a rejected approval) in the last 7 days.</summary>
    private static async Task<HashSet<Guid>> DeclinedAsync(CycleContext context, CancellationToken cancellationToken)
    {
        await using var command = context.Database.DataSource.CreateCommand("""
            select distinct entity_id from public.cards
            where tenant_id = $1 and kind = 'approval' and status = 'dismissed' and completed_at > hourglass.now() - interval '7 days'
              and entity_id is not null
            """);
        command.Parameters.Add(new() { Value = context.TenantId });
        var declined = new HashSet<Guid>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            declined.Add(reader.GetGuid(0));
        }

        return declined;
    }

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
        // ON CONFLICT on the one-open-touch index: a card someone opened meanwhile is kept, not doubled.
        await using var command = new NpgsqlCommand("""
            insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, run_id, assignee_user_id, due_at, payload)
            values ($1, 'touch_task', $2, $3, $4, $5, $6, $7, greatest($8, hourglass.now() + interval '1 day'), $9)
            on conflict (tenant_id, entity_type, entity_id) where kind = 'touch_task' and status = 'open' do nothing
            returning id
            """, connection, transaction);
        command.Parameters.Add(new() { Value = context.TenantId });
        command.Parameters.Add(new() { Value = $"Touch base with {name}" });
        command.Parameters.Add(new() { Value = $"Why now: {action.Reason}." });
        command.Parameters.Add(new() { Value = action.TargetType! });
        command.Parameters.Add(new() { Value = action.TargetId!.Value });
        command.Parameters.Add(new() { Value = context.RunId });
        command.Parameters.Add(new()
        {
            Value = Guid.TryParse((string?)payload["owner_user_id"], out var owner) ? owner : DBNull.Value,
            NpgsqlDbType = NpgsqlDbType.Uuid,
        });
        command.Parameters.Add(new()
        {
            Value = DateTimeOffset.TryParse((string?)payload["next_touch_due"], System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AssumeUniversal, out var due) ? due.ToUniversalTime() : context.Now,
        });
        command.Parameters.Add(JsonbParameter.From(payload));
        var cardId = await command.ExecuteScalarAsync(cancellationToken);
        return new JsonObject { ["card_id"] = cardId?.ToString(), ["already_open"] = cardId is null };
    }
}
