using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Engagement.Inbound;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Engagement.Outbox;

/// <summary>
/// The <c>send_message</c> action: enqueues a message in the cycle's fenced transaction, so it exists iff the
/// action committed. Payload: <c>subject</c>, <c>body</c>, and optionally <c>channel</c> (<c>email</c> or
/// <c>webhook</c>) and <c>destination</c>. Without a destination, an email goes to the target contact's address
/// and a webhook to the tenant's configured URL; without a channel, email is preferred, then webhook.
/// A contact nobody can reach this way is not a failure: the result says <c>"unreachable": true</c> (and why), so
/// the caller can open a touch_task card instead. A contact who must not be contacted gets <c>"suppressed": true</c>.
/// </summary>
internal sealed class MessageHandler : IActionHandler
{
    public const string ActionKind = "send_message";

    public string Kind => ActionKind;

    public async Task<JsonObject?> ExecuteAsync(CycleContext context, ProposedAction action, NpgsqlConnection connection, NpgsqlTransaction transaction,
        CancellationToken cancellationToken)
    {
        var payload = action.Payload ?? [];
        var channel = Text(payload, "channel");
        if (channel is not null and not (MessageChannel.Webhook or MessageChannel.Email))
        {
            throw new InvalidMessageException("channel", $"must be 'webhook' or 'email' (got '{channel}')");
        }

        var explicitDestination = payload.ContainsKey("destination") ? Text(payload, "destination") ?? "" : null;
        if (explicitDestination is not null && channel is null)
        {
            throw new InvalidMessageException("channel", "is required when a destination is given");
        }

        var contact = action.TargetType == "contact" && action.TargetId is Guid contactId
            ? await ReadContactAsync(connection, transaction, context.TenantId, contactId, cancellationToken)
            : null;
        if (contact?.DoNotContactReason is string why)
        {
            return new JsonObject { ["suppressed"] = true, ["reason"] = why };
        }

        var (emailEnabled, webhookUrl) = await EnabledChannelsAsync(connection, transaction, context.TenantId, cancellationToken);
        var route = Route(channel, explicitDestination, contact?.Email, emailEnabled, webhookUrl);
        if (route.Channel == MessageChannel.Email
            && await InboundStore.SuppressionReasonAsync(connection, transaction, context.TenantId, route.Destination!, cancellationToken) is { } suppressed)
        {
            // The address bounced or complained (docs/inbound.md): email cannot reach the contact, so a person makes the
            // touch, or a webhook carries it when the tenant has one and no channel was asked for.
            route = channel is null && webhookUrl is not null ? (MessageChannel.Webhook, webhookUrl, "the tenant's webhook") : (null, null, suppressed);
        }

        if (route.Channel is null)
        {
            // Nobody can be reached this way: a person makes the touch instead, on a card opened in the same
            // transaction as this action (so a replay neither loses nor doubles it).
            var card = action.TargetType is "contact" or "account" && action.TargetId is not null
                ? await new TouchTaskHandler().ExecuteAsync(context, action with { Kind = "touch_task" }, connection, transaction, cancellationToken)
                : null;
            return new JsonObject { ["unreachable"] = true, ["reason"] = route.Reason, ["card_id"] = card?["card_id"]?.DeepClone() };
        }

        var message = new NewMessage(
            context.TenantId,
            Text(payload, "idempotency_key") ?? action.IdempotencyKey(context.HourBucket),
            route.Channel,
            route.Destination!,
            Text(payload, "subject"),
            Text(payload, "body") ?? "",
            new JsonObject
            {
                ["target_type"] = action.TargetType,
                ["target_id"] = action.TargetId?.ToString(),
                ["reason"] = action.Reason,
                ["strategy_key"] = payload["strategy_key"]?.DeepClone(),
                ["data"] = payload["data"]?.DeepClone(),
            },
            context.RunId);
        var id = await OutboxWriter.EnqueueAsync(connection, transaction, message, cancellationToken);
        return new JsonObject
        {
            ["message_id"] = id?.ToString(),
            ["already_enqueued"] = id is null,
            ["channel"] = route.Channel,
            ["destination"] = route.Destination,
        };
    }

    /// <summary>Where the message goes, or (null, null, why not). <paramref name="webhookUrl"/> is the tenant's enabled webhook, if any.</summary>
    internal static (string? Channel, string? Destination, string Reason) Route(
        string? channel, string? explicitDestination, string? contactEmail, bool emailEnabled, string? webhookUrl)
    {
        var reasons = new List<string>();
        foreach (var candidate in channel is null ? [MessageChannel.Email, MessageChannel.Webhook] : new[] { channel })
        {
            var enabled = candidate == MessageChannel.Email ? emailEnabled : webhookUrl is not null;
            if (!enabled)
            {
                reasons.Add($"no enabled {candidate} channel is configured for the tenant");
            }
            else if (channel is not null && explicitDestination is not null)
            {
                // A webhook goes only where the tenant configured it: a destination taken from an action's payload
                // must not turn the worker into a client for any URL (server-side request forgery).
                if (candidate == MessageChannel.Webhook && !string.Equals(explicitDestination, webhookUrl, StringComparison.Ordinal))
                {
                    throw new InvalidMessageException("destination", "a webhook message goes only to the tenant's configured webhook URL");
                }

                return (candidate, explicitDestination, "explicit destination");
            }
            else if (candidate == MessageChannel.Webhook)
            {
                return (candidate, webhookUrl, "the tenant's webhook");
            }
            else if (string.IsNullOrWhiteSpace(contactEmail))
            {
                reasons.Add("the contact has no email address");
            }
            else if (!NewMessage.IsEmailAddress(contactEmail))
            {
                reasons.Add($"the contact's email address '{contactEmail}' is not valid");
            }
            else
            {
                return (candidate, contactEmail.Trim(), "the contact's email");
            }
        }

        return (null, null, string.Join("; ", reasons));
    }

    private static async Task<(bool EmailEnabled, string? WebhookUrl)> EnabledChannelsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction,
        Guid tenantId, CancellationToken cancellationToken)
    {
        return await EngagementStore.EnabledChannelsAsync(connection, transaction, tenantId, cancellationToken);
    }

    private sealed record Contact(string? Email, string? DoNotContactReason);

    private static async Task<Contact> ReadContactAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, Guid contactId,
        CancellationToken cancellationToken)
    {
        var (found, email, reason) = await TenancyStore.ContactReachAsync(connection, transaction, tenantId, contactId, cancellationToken);
        if (!found)
        {
            throw new InvalidMessageException("target_id", $"contact {contactId} does not exist in tenant {tenantId}");
        }

        return new Contact(email, reason);
    }

    private static string? Text(JsonObject payload, string key) =>
        payload[key] switch
        {
            null => null,
            JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
            var other => throw new InvalidMessageException(key, $"must be a string (got {other.ToJsonString()})"),
        };
}
