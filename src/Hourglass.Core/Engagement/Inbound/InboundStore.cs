using System.Text.Json.Nodes;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement.Inbound;

/// <summary>An outbox message a delivery event was matched to: where it went and whom it was about.</summary>
internal sealed record MatchedMessage(Guid Id, string Channel, string Destination, string? TargetType, Guid? TargetId, string? StrategyKey);

/// <summary>A delivery event already recorded under the same (source, source event id).</summary>
internal sealed record RecordedDeliveryEvent(Guid Id, string Effect, Guid? MessageId, string? SkippedReason);

/// <summary>A tenant's inbound source as the CLI lists it and the webhook endpoint reads it.</summary>
internal sealed record InboundSourceRow(Guid Id, string Source, bool Enabled, string? SecretRef, DateTimeOffset UpdatedAt);

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

    /// <summary>
    /// The one wording of why an address is suppressed, over a <c>message_suppressions</c> row named <c>ms</c>: "the address
    /// x@y is suppressed (hard bounce on 2026-01-20)". The send-time check (<see cref="EngagementStore"/>) and the planner
    /// say it alike.
    /// </summary>
    internal const string SuppressionReasonSql =
        "pg_catalog.format('the address %s is suppressed (%s on %s)', ms.address, pg_catalog.replace(ms.reason, '_', ' '), " +
        "pg_catalog.to_char(ms.suppressed_at at time zone 'UTC', 'YYYY-MM-DD'))";

    /// <summary>Why email to <paramref name="address"/> is suppressed for the tenant (reason and since), or null when it is not.</summary>
    public static async Task<string?> SuppressionReasonAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, string address,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<string>(connection, transaction, $$"""
            select {{SuppressionReasonSql}}
            from public.message_suppressions ms where ms.tenant_id = $1 and ms.channel = 'email' and ms.address = pg_catalog.lower($2)
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

    // ---- Sources: hourglass inbound set|list and the webhook endpoint's read (on a data source of their own) ----

    /// <summary>
    /// Creates or replaces a tenant's webhook source (hourglass, resend, sendgrid, postmark) with its secret's variable,
    /// enabled or not; answers the secret_ref it had before (null when new).
    /// </summary>
    public static async Task<(bool Created, string? PreviousSecretRef)> SetWebhookSourceAsync(NpgsqlDataSource dataSource, Guid tenantId, string source,
        string secretRef, bool enabled, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            with previous as (
              select s.secret_ref from public.inbound_sources s where s.tenant_id = $1 and s.source = $2
            )
            insert into public.inbound_sources as s (tenant_id, source, secret_ref, enabled)
            values ($1, $2, $3, $4)
            on conflict (tenant_id, source) do update
              set secret_ref = excluded.secret_ref, enabled = excluded.enabled, updated_at = hourglass.now()
            returning not exists (select from previous), (select p.secret_ref from previous p)
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = source });
        command.Parameters.Add(new() { Value = secretRef });
        command.Parameters.Add(new() { Value = enabled });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetBoolean(0), reader.IsDBNull(1) ? null : reader.GetString(1));
    }

    /// <summary>Switches a tenant's source off, keeping its settings; false when the tenant has no such source.</summary>
    public static async Task<bool> DisableSourceAsync(NpgsqlDataSource dataSource, Guid tenantId, string source, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "update public.inbound_sources set enabled = false, updated_at = hourglass.now() where tenant_id = $1 and source = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = source });
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>A tenant's sources, by name.</summary>
    public static async Task<IReadOnlyList<InboundSourceRow>> SourcesAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "select id, source, enabled, secret_ref, updated_at from public.inbound_sources where tenant_id = $1 order by source");
        command.Parameters.Add(new() { Value = tenantId });
        var rows = new List<InboundSourceRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(Row(reader));
        }

        return rows;
    }

    /// <summary>
    /// The source a webhook is posted to, or null when the tenant has none of that name (or there is no such tenant: the
    /// endpoint answers both alike).
    /// </summary>
    public static async Task<InboundSourceRow?> WebhookSourceAsync(NpgsqlDataSource dataSource, Guid tenantId, string source, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "select id, source, enabled, secret_ref, updated_at from public.inbound_sources where tenant_id = $1 and source = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = source });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Row(reader) : null;
    }

    private static InboundSourceRow Row(NpgsqlDataReader reader) =>
        new(reader.GetGuid(0), reader.GetString(1), reader.GetBoolean(2), reader.IsDBNull(3) ? null : reader.GetString(3),
            reader.GetFieldValue<DateTimeOffset>(4));

    /// <summary>What the world answered per day (<c>inbound_event_trends</c>) as a JSON array; <c>$1</c> the tenant, <c>$2</c> the days.</summary>
    internal const string TrendsJsonSql = "select coalesce(json_agg(t), '[]')::text from public.inbound_event_trends($1, $2) t";

    /// <summary>The same as rows, oldest day first.</summary>
    public static async Task<IReadOnlyList<InboundDay>> TrendsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int days,
        CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            select day, delivered, bounces_hard, bounces_soft, complaints, unsubscribes, replies, out_of_office, skipped
            from public.inbound_event_trends($1, $2)
            """, tenantId, days);
        return await StoreReads.ListAsync(command, r => new InboundDay(r.GetFieldValue<DateOnly>(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4),
            r.GetInt64(5), r.GetInt64(6), r.GetInt64(7), r.GetInt64(8)), cancellationToken);
    }

    /// <summary>
    /// Records an opt-out made through the one-click link on its message's history (source <c>one_click</c>, effect
    /// <c>opted_out</c>), once per contact and message; false when the message is not the tenant's (nothing written).
    /// </summary>
    public static async Task<bool> RecordOneClickAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, Guid messageId,
        Guid contactId, DateTimeOffset at, Guid? eventId, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            insert into public.message_delivery_events (tenant_id, source, source_event_id, event_type, occurred_at, message_id, recipient, effect, event_id)
            select m.tenant_id, 'one_click', 'unsubscribe:' || $3::text || ':' || m.id::text, 'unsubscribe', $4, m.id, pg_catalog.lower(m.destination),
                   'opted_out', $5
            from public.message_outbox m where m.tenant_id = $1 and m.id = $2
            on conflict (tenant_id, source, source_event_id) do nothing
            """, tenantId, messageId, contactId, new NpgsqlParameter<DateTimeOffset> { TypedValue = at },
            new NpgsqlParameter { Value = (object?)eventId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }
}

/// <summary>One day of <c>inbound_event_trends</c>: what the world answered, by kind.</summary>
internal sealed record InboundDay(DateOnly Day, long Delivered, long BouncesHard, long BouncesSoft, long Complaints, long Unsubscribes, long Replies,
    long OutOfOffice, long Skipped);
