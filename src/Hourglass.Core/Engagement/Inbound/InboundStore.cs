using System.Text.Json.Nodes;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement.Inbound;

/// <summary>An outbox message a delivery event was matched to: where it went and whom it was about.</summary>
internal sealed record MatchedMessage(Guid Id, string Channel, string Destination, string? TargetType, Guid? TargetId, string? StrategyKey);

/// <summary>A delivery event already recorded under the same (source, source event id).</summary>
internal sealed record RecordedDeliveryEvent(Guid Id, string Effect, Guid? MessageId, string? SkippedReason);

/// <summary>
/// The inbound part's statements: <c>inbound_sources</c>, <c>message_delivery_events</c> and <c>message_suppressions</c>,
/// and what recording an event reads and writes of the outbox, cards and clocks (docs/inbound.md). Every method runs on
/// the caller's connection and transaction, so an event and its effect commit together.
/// </summary>
internal static class InboundStore
{
    /// <summary>The database clock (<c>hourglass.now()</c>: frozen in tests and the simulator).</summary>
    public static async Task<DateTimeOffset> NowAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, "select hourglass.now()");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return reader.GetFieldValue<DateTimeOffset>(0);
    }

    /// <summary>The event recorded under (source, source event id), if one was.</summary>
    public static async Task<RecordedDeliveryEvent?> RecordedAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        string source, string sourceEventId, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            select e.id, e.effect, e.message_id, e.skipped_reason from public.message_delivery_events e
            where e.tenant_id = $1 and e.source = $2 and e.source_event_id = $3
            """, tenantId, source, sourceEventId);
        var rows = await StoreReads.ListAsync(command, r => new RecordedDeliveryEvent(r.GetGuid(0), r.GetString(1),
            r.IsDBNull(2) ? null : r.GetGuid(2), r.IsDBNull(3) ? null : r.GetString(3)), cancellationToken);
        return rows.Count == 0 ? null : rows[0];
    }

    /// <summary>
    /// The tenant's message an event names: by outbox id first (one of <paramref name="outboxIds"/>), else by the provider's
    /// message id. Only this tenant's messages are looked at, so an event can never reach another tenant's message.
    /// </summary>
    public static async Task<MatchedMessage?> MatchMessageAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        Guid[] outboxIds, string? providerMessageId, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            select m.id, m.channel, m.destination, m.payload ->> 'target_type',
                   case when m.payload ->> 'target_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                        then (m.payload ->> 'target_id')::uuid end,
                   m.payload ->> 'strategy_key'
            from public.message_outbox m
            where m.tenant_id = $1 and (m.id = any ($2) or ($3::text is not null and m.provider_message_id = $3))
            order by m.id = any ($2) desc, m.created_at
            limit 1
            """, tenantId, outboxIds, providerMessageId);
        var rows = await StoreReads.ListAsync(command, r => new MatchedMessage(r.GetGuid(0), r.GetString(1), r.GetString(2),
            r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? null : r.GetGuid(4), r.IsDBNull(5) ? null : r.GetString(5)), cancellationToken);
        return rows.Count == 0 ? null : rows[0];
    }

    /// <summary>
    /// Inserts the event (effect 'none' for now, or 'skipped' with its reason); null when a concurrent call recorded the
    /// same (source, source event id) first: the unique key makes the second insert wait for the first and then do nothing.
    /// </summary>
    public static async Task<Guid?> InsertEventAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, DeliveryEvent delivery,
        Guid? messageId, string? recipient, string? skippedReason, CancellationToken cancellationToken)
    {
        var reply = delivery.Type == DeliveryEventType.Reply ? delivery.Reply : null;
        await using var command = StoreReads.Command(connection, transaction, """
            insert into public.message_delivery_events (tenant_id, source, source_event_id, event_type, occurred_at, message_id, recipient, reason,
              reply_label, reply_confidence, reply_evidence, reply_classified_by, return_on, effect, skipped_reason)
            values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, case when $14::text is null then 'none' else 'skipped' end, $14)
            on conflict (tenant_id, source, source_event_id) do nothing
            returning id
            """,
            tenantId, delivery.Source, delivery.SourceEventId, delivery.Type,
            new NpgsqlParameter<DateTimeOffset> { TypedValue = delivery.OccurredAt },
            new NpgsqlParameter { Value = (object?)messageId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid },
            recipient, delivery.Reason, reply?.Label,
            new NpgsqlParameter { Value = (object?)reply?.Confidence ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Numeric },
            reply?.Evidence, reply?.ClassifiedBy,
            new NpgsqlParameter { Value = (object?)reply?.ReturnOn ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Date },
            skippedReason);
        return await command.ExecuteScalarAsync(cancellationToken) as Guid?;
    }

    /// <summary>Sets the effect an event had and the event-store row it wrote.</summary>
    public static Task<int> SetEffectAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, Guid deliveryEventId, string effect,
        Guid? eventId, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction,
            "update public.message_delivery_events set effect = $3, event_id = $4 where tenant_id = $1 and id = $2", cancellationToken,
            tenantId, deliveryEventId, effect, new NpgsqlParameter { Value = (object?)eventId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });

    /// <summary>
    /// Puts an address on the tenant's suppression list for email; true when this call put it there (false: it already was,
    /// and the first reason and time are kept).
    /// </summary>
    public static async Task<bool> SuppressAddressAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string address,
        string reason, Guid? contactId, Guid deliveryEventId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            insert into public.message_suppressions (tenant_id, channel, address, reason, contact_id, delivery_event_id, suppressed_at)
            values ($1, 'email', pg_catalog.lower($2), $3, $4, $5, $6)
            on conflict (tenant_id, channel, address) do nothing
            returning id
            """, tenantId, address, reason, new NpgsqlParameter { Value = (object?)contactId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid },
            deliveryEventId, new NpgsqlParameter<DateTimeOffset> { TypedValue = at });
        return await command.ExecuteScalarAsync(cancellationToken) is Guid;
    }

    /// <summary>Why email to <paramref name="address"/> is suppressed for the tenant (reason and since), or null when it is not.</summary>
    public static async Task<string?> SuppressionReasonAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, string address,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<string>(connection, transaction, """
            select pg_catalog.format('the address %s is suppressed (%s on %s)', s.address, pg_catalog.replace(s.reason, '_', ' '),
                                     pg_catalog.to_char(s.suppressed_at at time zone 'UTC', 'YYYY-MM-DD'))
            from public.message_suppressions s where s.tenant_id = $1 and s.channel = 'email' and s.address = pg_catalog.lower($2)
            """, cancellationToken, tenantId, address);

    /// <summary>
    /// Soft bounces of <paramref name="address"/> since it last received (a delivery or a reply from it), this one included:
    /// the count the tenant's soft-bounce limit is judged against.
    /// </summary>
    public static async Task<int> SoftBouncesInARowAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string address,
        CancellationToken cancellationToken) =>
        (int)(await StoreReads.ScalarAsync<long>(connection, transaction, """
            select pg_catalog.count(*) from public.message_delivery_events e
            where e.tenant_id = $1 and pg_catalog.lower(e.recipient) = pg_catalog.lower($2) and e.event_type = 'bounce_soft' and e.effect <> 'skipped'
              and e.occurred_at > coalesce((select max(d.occurred_at) from public.message_delivery_events d
                                            where d.tenant_id = $1 and pg_catalog.lower(d.recipient) = pg_catalog.lower($2)
                                              and d.event_type in ('delivered', 'reply') and d.effect <> 'skipped'), '-infinity')
            """, cancellationToken, tenantId, address));

    /// <summary>The tenant's setting <paramref name="key"/> as an integer, or <paramref name="fallback"/>.</summary>
    public static async Task<int> TenantSettingAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string key, int fallback,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<int>(connection, transaction, "select hourglass.tenant_setting_int($1, $2, $3)", cancellationToken, tenantId, key, fallback);

    /// <summary>
    /// Enqueues the message again after a soft bounce, as the retry numbered <paramref name="retry"/>, due after
    /// <paramref name="delay"/>: the same content and target, its own idempotency key (a replayed event enqueues no second
    /// retry), and every send-time check ahead of it like any message. Its id, or null when that retry already exists.
    /// </summary>
    public static async Task<Guid?> EnqueueRetryAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, Guid messageId, int retry,
        TimeSpan delay, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            insert into public.message_outbox (tenant_id, idempotency_key, channel, destination, subject, body, payload, next_attempt_at, run_id)
            select m.tenant_id, m.idempotency_key || ':soft-bounce-retry:' || $3, m.channel, m.destination, m.subject, m.body,
                   m.payload || pg_catalog.jsonb_build_object('retry_of', m.id::text), hourglass.now() + $4, m.run_id
            from public.message_outbox m where m.tenant_id = $1 and m.id = $2
            on conflict (tenant_id, idempotency_key) do nothing
            returning id
            """, tenantId, messageId, retry, delay);
        return await command.ExecuteScalarAsync(cancellationToken) as Guid?;
    }

    /// <summary>
    /// Opens a notice card for the contact's owner (one open notice per contact and <paramref name="topic"/>: a second
    /// bounce of the same address opens none); its id, or null when one is open already.
    /// </summary>
    public static async Task<Guid?> OpenNoticeCardAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, Guid contactId,
        Guid? ownerUserId, string topic, string title, string body, JsonObject payload, CancellationToken cancellationToken)
    {
        payload["topic"] = topic;
        await using var command = StoreReads.Command(connection, transaction, """
            insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, assignee_user_id, due_at, payload)
            select $1, 'notice', $4, $5, 'contact', $2, $3, hourglass.now() + interval '2 days', $6
            where not exists (select 1 from public.cards c
                              where c.tenant_id = $1 and c.kind = 'notice' and c.status = 'open' and c.entity_type = 'contact'
                                and c.entity_id = $2 and c.payload ->> 'topic' = $6 ->> 'topic')
            returning id
            """, tenantId, contactId, new NpgsqlParameter { Value = (object?)ownerUserId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid },
            title, body, JsonbParameter.From(payload));
        return await command.ExecuteScalarAsync(cancellationToken) as Guid?;
    }

    /// <summary>
    /// Makes the entity's next touch wait until <paramref name="until"/> (an out-of-office return date): the touch queue
    /// skips the clock until then. A later date replaces an earlier one; an earlier one does not shorten a wait.
    /// </summary>
    public static Task<int> WaitUntilAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string entityType, Guid entityId,
        DateTimeOffset until, string reason, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            update public.engagement_clocks c
            set waiting_until = $4, waiting_reason = $5, updated_at = now()
            where c.tenant_id = $1 and c.entity_type = $2 and c.entity_id = $3 and (c.waiting_until is null or c.waiting_until < $4)
            """, cancellationToken, tenantId, entityType, entityId, new NpgsqlParameter<DateTimeOffset> { TypedValue = until }, reason);
}
