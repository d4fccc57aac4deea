using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Engagement.Outbox;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement;

/// <summary>A tenant's message channel as stored: where it sends, how it signs in, the name of its secret's variable.</summary>
internal sealed record MessageChannelSettings(string Channel, bool Enabled, string? WebhookUrl, string? SmtpHost, int? SmtpPort, string SmtpSecurity,
    string? SmtpUsername, string? SmtpFrom, string? SecretRef, string? SmtpTlsPin);

/// <summary>An approval card: its state, what it asks, until when, and who decided what.</summary>
internal sealed record ApprovalCardRow(Guid Id, string Status, string Title, string Body, DateTimeOffset DueAt, string CompletedBy, string Decision);

/// <summary>What the touch part's handler puts on a touch card: for whom, why, from which run, for whom to do, by when.</summary>
internal sealed record TouchCardRequest(Guid TenantId, string Title, string Body, string EntityType, Guid EntityId, Guid RunId, Guid? OwnerUserId,
    DateTimeOffset DueAt, JsonObject Payload);

/// <summary>One line of a touch batch as <c>record_touches</c> recorded it: its outcome, the entity, the key, the error.</summary>
internal sealed record RecordedTouchRow(int Line, string Outcome, string? EntityType, Guid? EntityId, string? IdempotencyKey, string? Error);

/// <summary>A due message locked for the dispatcher, with the time zones, policy version and database clock its send window is judged by.</summary>
internal sealed record DueMessageRow(Guid Id, Guid TenantId, string TenantZone, string? ContactZone, string? AccountZone, int PolicyVersion,
    DateTimeOffset Now);

/// <summary>
/// The only code that names the engagement tables in SQL: clocks and frequency rules, <c>cards</c>, message
/// channels, the outbox and its attempts, and <c>monitoring_engagement_compliance</c>
/// (docs/development.md, "Where SQL goes").
/// </summary>
internal static class EngagementStore
{
    /// <summary>A tenant's open approval cards (and with <paramref name="alsoClosed"/> those closed in the last 30 days), open first.</summary>
    public static async Task<IReadOnlyList<ApprovalCardRow>> ApprovalCardsAsync(NpgsqlDataSource dataSource, Guid tenantId, bool alsoClosed,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select id, status, title, coalesce(body, ''), due_at, coalesce(completed_by, ''), coalesce(payload -> 'approval' ->> 'decision', '')
            from public.cards
            where tenant_id = $1 and kind = 'approval' and (status = 'open' or ($2 and updated_at > hourglass.now() - interval '30 days'))
            order by status <> 'open', due_at, id
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = alsoClosed });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<ApprovalCardRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetFieldValue<DateTimeOffset>(4),
                reader.GetString(5), reader.GetString(6)));
        }

        return rows;
    }

    /// <summary>
    /// Makes the tenant's channel exactly <paramref name="channel"/> (enabled), and returns the optional settings the
    /// previous one had and this one leaves out (a TLS pin, a login, a secret), so none is dropped without a word.
    /// </summary>
    public static async Task<string[]> ReplaceMessageChannelAsync(NpgsqlDataSource dataSource, Guid tenantId, MessageChannelSettings channel,
        CancellationToken cancellationToken)
    {
        // The CTE sees the row as it was before the upsert (a data-modifying statement's snapshot).
        await using var command = dataSource.CreateCommand("""
            with previous as (
              select c.smtp_username, c.secret_ref, c.smtp_tls_pin_sha256 from public.message_channels c where c.tenant_id = $1 and c.channel = $2
            )
            insert into public.message_channels (tenant_id, channel, enabled, webhook_url, smtp_host, smtp_port, smtp_security, smtp_username,
                                                 smtp_from, secret_ref, smtp_tls_pin_sha256)
            values ($1, $2, true, $3, $4, $5, $6, $7, $8, $9, $10)
            on conflict (tenant_id, channel) do update
            set enabled = true, webhook_url = excluded.webhook_url, smtp_host = excluded.smtp_host, smtp_port = excluded.smtp_port,
                smtp_security = excluded.smtp_security, smtp_username = excluded.smtp_username, smtp_from = excluded.smtp_from,
                secret_ref = excluded.secret_ref, smtp_tls_pin_sha256 = excluded.smtp_tls_pin_sha256, updated_at = hourglass.now()
            returning array_remove(array[
              case when (select p.smtp_tls_pin_sha256 from previous p) is not null and smtp_tls_pin_sha256 is null
                   then 'the TLS pin (sha256:' || (select p.smtp_tls_pin_sha256 from previous p) || ')' end,
              case when (select p.smtp_username from previous p) is not null and smtp_username is null
                   then 'the login ' || (select p.smtp_username from previous p) end,
              case when (select p.secret_ref from previous p) is not null and secret_ref is null
                   then 'the secret ref ' || (select p.secret_ref from previous p) end], null)
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = channel.Channel });
        command.Parameters.Add(Text(channel.WebhookUrl));
        command.Parameters.Add(Text(channel.SmtpHost));
        command.Parameters.Add(new() { Value = (object?)channel.SmtpPort ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        command.Parameters.Add(Text(channel.SmtpSecurity));
        command.Parameters.Add(Text(channel.SmtpUsername));
        command.Parameters.Add(Text(channel.SmtpFrom));
        command.Parameters.Add(Text(channel.SecretRef));
        command.Parameters.Add(Text(channel.SmtpTlsPin));
        return (string[])(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>A tenant's channels by name.</summary>
    public static async Task<IReadOnlyList<MessageChannelSettings>> MessageChannelsAsync(NpgsqlDataSource dataSource, Guid tenantId,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select channel, enabled, webhook_url, smtp_host, smtp_port, smtp_security, smtp_username, smtp_from, secret_ref, smtp_tls_pin_sha256
            from public.message_channels where tenant_id = $1 order by channel
            """);
        command.Parameters.Add(new() { Value = tenantId });
        var rows = new List<MessageChannelSettings>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
            rows.Add(new(reader.GetString(0), reader.GetBoolean(1), Text(2), Text(3), reader.IsDBNull(4) ? null : reader.GetInt32(4), reader.GetString(5),
                Text(6), Text(7), Text(8), Text(9)));
        }

        return rows;
    }

    /// <summary>Switches a tenant's channel off, keeping its settings; false when the tenant has no such channel.</summary>
    public static async Task<bool> DisableMessageChannelAsync(NpgsqlDataSource dataSource, Guid tenantId, string channel, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "update public.message_channels set enabled = false, updated_at = hourglass.now() where tenant_id = $1 and channel = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = channel });
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    /// <summary>Per tenant (or the one given): clocks, and how many are compliant, due soon and overdue.</summary>
    public static Task<IReadOnlyList<(Guid TenantId, long Clocks, long Compliant, long DueSoon, long Overdue)>> ComplianceCountsAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid? tenantId, CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.ForTenant(connection, transaction, """
            select c.tenant_id, count(*), count(*) filter (where c.compliance_status = 'compliant'),
                   count(*) filter (where c.compliance_status = 'due_soon'), count(*) filter (where c.compliance_status = 'overdue')
            from public.engagement_clocks c where ($1::uuid is null or c.tenant_id = $1) group by c.tenant_id
            """, tenantId), r => (r.GetGuid(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4)), cancellationToken);

    /// <summary>
    /// Per tenant with open approval cards: how many, how many past due at <paramref name="now"/> (they can no longer
    /// be decided; the next cycle expires them), and the next one due.
    /// </summary>
    public static Task<IReadOnlyList<(Guid TenantId, long Open, long PastDue, DateTimeOffset? NextDueAt)>> OpenApprovalCountsAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid? tenantId, DateTimeOffset now, CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.ForTenant(connection, transaction, """
            select t.id, a.open, a.past_due, a.next_due
            from public.tenants t
            cross join lateral (
              select count(*) as open, count(*) filter (where k.due_at <= $2) as past_due, min(k.due_at) filter (where k.due_at > $2) as next_due
              from public.cards k where k.tenant_id = t.id and k.status = 'open' and k.kind = 'approval') a
            where ($1::uuid is null or t.id = $1) and a.open > 0
            """, tenantId, now), r => (r.GetGuid(0), r.GetInt64(1), r.GetInt64(2), r.IsDBNull(3) ? (DateTimeOffset?)null : r.GetFieldValue<DateTimeOffset>(3)),
            cancellationToken);

    /// <summary>
    /// Outbox messages per tenant and status, and how many are held. All tenants: the queued ones only
    /// (idx_message_outbox_due, whatever the history of sent ones); one tenant: every status (idx_message_outbox_tenant_status).
    /// </summary>
    public static Task<IReadOnlyList<(Guid TenantId, string Status, long Count, long Held)>> OutboxCountsAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid? tenantId, CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.ForTenant(connection, transaction, tenantId is null
            ? """
              select m.tenant_id, m.status, count(*), count(*) filter (where m.held_reason is not null)
              from public.message_outbox m
              where m.status in ('pending', 'sending')
              group by m.tenant_id, m.status
              """
            : """
              select m.tenant_id, m.status, count(*), count(*) filter (where m.held_reason is not null)
              from public.message_outbox m
              where m.tenant_id = $1
              group by m.tenant_id, m.status
              """, tenantId), r => (r.GetGuid(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3)), cancellationToken);

    /// <summary>A tenant's suppressed messages by code: how many, the last time and the last reason.</summary>
    public static Task<IReadOnlyList<(string Code, long Count, DateTimeOffset LastAt, string LastReason)>> SuppressedCountsAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.ForTenant(connection, transaction, """
            select m.suppressed_code, count(*), max(m.suppressed_at), (array_agg(m.suppressed_reason order by m.suppressed_at desc))[1]
            from public.message_outbox m
            where m.tenant_id = $1 and m.status = 'suppressed'
            group by m.suppressed_code
            order by m.suppressed_code
            """, tenantId), r => (r.GetString(0), r.GetInt64(1), r.GetFieldValue<DateTimeOffset>(2), r.GetString(3)), cancellationToken);

    /// <summary>Cards in <paramref name="status"/> (open by default) across every tenant the connection's role sees, at most 200, as JSON.</summary>
    public static Task<string?> MyCardsJsonAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string? status, CancellationToken cancellationToken) =>
        StoreReads.JsonAsync(connection, transaction, """
            select coalesce(json_agg(c order by c.due_at nulls last, c.id), '[]')::text from (
              select id, tenant_id, kind, title, body, status, entity_type, entity_id, due_at, created_at from public.cards
              where status = coalesce($1, 'open') order by due_at nulls last, id limit 200) c
            """, cancellationToken, status);

    /// <summary>A page of a tenant's cards, optionally of one kind and status.</summary>
    public static Task<JsonPage> CardsPageAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, PageRequest page, string? kind,
        string? status, CancellationToken cancellationToken) =>
        StoreReads.PageAsync(connection, transaction, CardsPageSql, tenantId, page, cancellationToken, kind, status);

    /// <summary>The rows <see cref="CardsPageAsync"/> pages: a tenant's cards ($1), optionally of kind $4 and status $5.</summary>
    internal const string CardsPageSql = """
        select id, kind, title, body, status, entity_type, entity_id, run_id, assignee_user_id, due_at, completed_at, completed_by, payload, created_at
        from public.cards where tenant_id = $1 and ($4::text is null or kind = $4) and ($5::text is null or status = $5)
        """;

    /// <summary><c>complete_touch_card</c> on the tenant's card: the clock it touched, or null when the tenant has no such card.</summary>
    public static async Task<Guid?> CompleteTouchCardAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid cardId,
        string touchType, string? notes, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<Guid?>(connection, transaction,
            "select public.complete_touch_card($1, $2, $3) where exists (select 1 from public.cards where id = $1 and tenant_id = $4)",
            cancellationToken, cardId, touchType, notes, tenantId);

    /// <summary><c>decide_approval</c> on the tenant's card: the outcome, or null when the tenant has no such card.</summary>
    public static Task<string?> DecideApprovalAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid cardId, bool approve,
        string? notes, CancellationToken cancellationToken) =>
        StoreReads.ScalarAsync<string>(connection, transaction,
            "select public.decide_approval($1, $2, $3) where exists (select 1 from public.cards where id = $1 and tenant_id = $4)",
            cancellationToken, cardId, approve, notes, tenantId);

    /// <summary><c>dismiss_card</c> on the tenant's card: the outcome, or null when the tenant has no such card.</summary>
    public static Task<string?> DismissCardAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid cardId, string? notes,
        CancellationToken cancellationToken) =>
        StoreReads.ScalarAsync<string>(connection, transaction,
            "select public.dismiss_card($1, $2) where exists (select 1 from public.cards where id = $1 and tenant_id = $3)",
            cancellationToken, cardId, notes, tenantId);

    /// <summary>A tenant's clocks: how many, how many due soon and how many overdue (the cycle's Reflect measures it).</summary>
    internal const string ClockCountsSql = """
        select count(*),
               count(*) filter (where compliance_status = 'due_soon'),
               count(*) filter (where compliance_status = 'overdue')
        from public.engagement_clocks where tenant_id = $1
        """;

    /// <summary>A tenant's clocks: how many, and how many are due soon and overdue.</summary>
    public static async Task<(long Clocks, long DueSoon, long Overdue)> ClockCountsAsync(NpgsqlDataSource dataSource, Guid tenantId,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ClockCountsSql);
        command.Parameters.Add(new() { Value = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }

    /// <summary>Inserts a message into the outbox, due now; returns its id, or null when the key was already enqueued.</summary>
    public static async Task<Guid?> EnqueueMessageAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, NewMessage message,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            insert into public.message_outbox (tenant_id, idempotency_key, channel, destination, subject, body, payload, run_id,
              max_attempts, next_attempt_at, created_at, updated_at)
            values ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, 8), hourglass.now(), hourglass.now(), hourglass.now())
            on conflict (tenant_id, idempotency_key) do nothing
            returning id
            """, connection, transaction);
        command.Parameters.Add(new() { Value = message.TenantId });
        command.Parameters.Add(new() { Value = message.IdempotencyKey });
        command.Parameters.Add(new() { Value = message.Channel });
        command.Parameters.Add(new() { Value = message.Destination.Trim() });
        command.Parameters.Add(new() { Value = (object?)message.Subject ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = message.Body });
        command.Parameters.Add(JsonbParameter.From(message.Payload ?? []));
        command.Parameters.Add(new() { Value = (object?)message.RunId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = (object?)message.MaxAttempts ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        return await command.ExecuteScalarAsync(cancellationToken) as Guid?;
    }

    /// <summary>Whether the tenant's email channel is enabled, and its enabled webhook's URL.</summary>
    public static async Task<(bool EmailEnabled, string? WebhookUrl)> EnabledChannelsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction,
        Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "select channel, webhook_url from public.message_channels where tenant_id = $1 and enabled", connection, transaction);
        command.Parameters.Add(new() { Value = tenantId });
        var (email, webhook) = (false, (string?)null);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (reader.GetString(0) == MessageChannel.Email)
            {
                email = true;
            }
            else
            {
                webhook = reader.GetString(1);
            }
        }

        return (email, webhook);
    }

    /// <summary>
    /// The dispatcher's record of a send (a statement of its batch): the message's new status, fenced on the claim —
    /// if the claim lapsed and another dispatcher took the message, its attempts moved on and this changes nothing.
    /// </summary>
    public static NpgsqlBatchCommand RecordSendCommand(Guid messageId, string workerId, int attempt, string status, string? providerMessageId, string? error,
        TimeSpan? delay)
    {
        var update = new NpgsqlBatchCommand("""
            update public.message_outbox m
            set status = $4,
                sent_at = case when $4 = 'sent' then hourglass.now() end,
                provider_message_id = coalesce($5, m.provider_message_id),
                last_error = coalesce($6, m.last_error),
                next_attempt_at = case when $4 = 'pending' then hourglass.now() + $7 else m.next_attempt_at end,
                claimed_until = null,
                updated_at = hourglass.now()
            where m.id = $1 and m.status = 'sending' and m.claimed_by = $2 and m.attempts = $3
            """);
        update.Parameters.Add(new() { Value = messageId });
        update.Parameters.Add(new() { Value = workerId });
        update.Parameters.Add(new() { Value = attempt });
        update.Parameters.Add(new() { Value = status });
        update.Parameters.Add(new() { Value = (object?)providerMessageId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        update.Parameters.Add(new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        update.Parameters.Add(new() { Value = (object?)delay ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Interval });
        return update;
    }

    /// <summary>The dispatcher's attempt row (a statement of its batch): what it did, whether or not its claim still held.</summary>
    public static NpgsqlBatchCommand AttemptCommand(Guid tenantId, Guid messageId, int attempt, string outcome, string? error, int? responseCode, string workerId)
    {
        var command = new NpgsqlBatchCommand("""
            insert into public.message_outbox_attempts (tenant_id, message_id, attempt, attempted_at, outcome, error, response_code, worker_id)
            values ($1, $2, $3, hourglass.now(), $4, $5, $6, $7)
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = messageId });
        command.Parameters.Add(new() { Value = attempt });
        command.Parameters.Add(new() { Value = outcome });
        command.Parameters.Add(new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = (object?)responseCode ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        command.Parameters.Add(new() { Value = workerId });
        return command;
    }

    /// <summary>
    /// The touch a sent message makes (a statement of its batch, after <see cref="RecordSendCommand"/>): the target's
    /// clock moves only if that update marked the message sent under this attempt and the contact or account still exists.
    /// </summary>
    public static NpgsqlBatchCommand SentTouchCommand(Guid tenantId, string targetType, Guid targetId, string channel, Guid messageId, string workerId, int attempt)
    {
        var touch = new NpgsqlBatchCommand("""
            select public.update_engagement_clock($1, $2, $3, $4, 'agent')
            where exists (select 1 from public.message_outbox m
                          where m.id = $5 and m.status = 'sent' and m.claimed_by = $6 and m.attempts = $7)
              and (exists (select 1 from public.contacts k where $2 = 'contact' and k.tenant_id = $1 and k.id = $3)
                   or exists (select 1 from public.accounts a where $2 = 'account' and a.tenant_id = $1 and a.id = $3))
            """);
        touch.Parameters.Add(new() { Value = tenantId });
        touch.Parameters.Add(new() { Value = targetType });
        touch.Parameters.Add(new() { Value = targetId });
        touch.Parameters.Add(new() { Value = channel });
        touch.Parameters.Add(new() { Value = messageId });
        touch.Parameters.Add(new() { Value = workerId });
        touch.Parameters.Add(new() { Value = attempt });
        return touch;
    }

    // Seeding and inspection (benchmarks): one method per statement, on the caller's connection and transaction

    /// <summary>
    /// <paramref name="perTenant"/> contact clocks per tenant (random entity ids: clocks have no foreign key to contacts), clock k of
    /// tenant n due at <paramref name="firstDue"/> + ((k - 1) x tenants + (n - 1)) x <paramref name="dueStep"/>, so each tenant's clocks
    /// cover the whole span and all are evenly spaced; rows tenant by tenant, created and updated at <paramref name="createdAt"/>.
    /// </summary>
    public static Task<int> InsertEvenlyDueClocksAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, DateTime firstDue,
        TimeSpan dueStep, DateTime createdAt, int perTenant, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.engagement_clocks (tenant_id, entity_type, entity_id, next_touch_due, created_at, updated_at)
            select t.id, 'contact', gen_random_uuid(), $2 + ((k - 1) * $4 + (t.n - 1)) * $3, $5, $5
            from unnest($1::uuid[]) with ordinality as t (id, n)
            cross join generate_series(1, $6) as k
            order by t.n, k
            """, cancellationToken, tenants, firstDue, dueStep, tenants.Length, createdAt, perTenant);

    /// <summary>The tenants' clocks a refresh at <paramref name="at"/> visits: due within 3 days of it, or not compliant.</summary>
    public static async Task<long> RefreshCandidatesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, DateTime at,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction, """
            select count(*) from public.engagement_clocks c
            where c.tenant_id = any ($2) and (c.next_touch_due <= $1 + interval '3 days' or c.compliance_status <> 'compliant')
            """, cancellationToken, at, tenants);

    /// <summary>The clock rows the current transaction has updated so far (<c>pg_stat_xact_user_tables.n_tup_upd</c>).</summary>
    public static async Task<long> ClocksUpdatedInTransactionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction,
            "select n_tup_upd from pg_stat_xact_user_tables where relid = 'public.engagement_clocks'::regclass", cancellationToken);

    /// <summary>
    /// Spreads the contacts' clocks (made by the schema's triggers) of each tenant, by entity id, over one 21-day cycle from 2 days
    /// overdue; $2 contacts per tenant, the tenants (their place in <paramref name="tenants"/>) offset by a fraction of a slot.
    /// </summary>
    public static Task<int> SpreadContactClocksAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, int contactsPerTenant,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            update public.engagement_clocks k
            set next_touch_due = now() - interval '2 days' + ((x.n - 1) + x.t::float8 / $3) * (interval '21 days' / $2),
                created_at = now() - interval '30 days', updated_at = now() - interval '30 days'
            from (select c.id, pg_catalog.row_number() over (partition by c.tenant_id order by c.entity_id) as n, t.n as t
                  from public.engagement_clocks c join unnest($1::uuid[]) with ordinality as t (id, n) on t.id = c.tenant_id
                  where c.entity_type = 'contact') x
            where k.id = x.id
            """, cancellationToken, tenants, contactsPerTenant, tenants.Length);

    /// <summary>
    /// A clock for every account and contact of the tenants, in steady state: clock k (by entity id) takes fraction
    /// f = (k x 7919 mod <paramref name="perTenant"/>) / <paramref name="perTenant"/>; the first <paramref name="overdueShare"/> overdue by
    /// up to 10 days, the next <paramref name="dueSoonShare"/> due within 3 days, the rest over the next 18; rows interleaved across
    /// tenants, as clocks created over time would lie.
    /// </summary>
    public static Task<int> InsertSteadyStateClocksAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, int perTenant,
        double overdueShare, double dueSoonShare, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.engagement_clocks (tenant_id, entity_type, entity_id, last_touch_at, last_touch_type, last_touch_by,
                                                  next_touch_due, touch_count, created_at, updated_at)
            select x.tenant_id, x.entity_type, x.id, d.due - interval '21 days', 'email', 'bench', d.due, 1 + x.k % 12,
                   pg_catalog.now() - interval '400 days', pg_catalog.now() - interval '1 day'
            from (
              select e.tenant_id, e.entity_type, e.id, pg_catalog.row_number() over (partition by e.tenant_id order by e.id) as k
              from (select a.tenant_id, 'account' as entity_type, a.id from public.accounts a where a.tenant_id = any ($1)
                    union all
                    select c.tenant_id, 'contact', c.id from public.contacts c where c.tenant_id = any ($1)) e
            ) x
            cross join lateral (select ((x.k * 7919) % $2) / $2::float8 as f) p
            cross join lateral (select case
                when p.f < $3::float8 then pg_catalog.now() - (p.f / $3::float8) * interval '10 days'
                when p.f < $3::float8 + $4::float8
                  then pg_catalog.now() + ((p.f - $3::float8) / $4::float8) * interval '3 days'
                else pg_catalog.now() + interval '3 days'
                  + ((p.f - ($3::float8 + $4::float8)) / (1 - $3::float8 - $4::float8)) * interval '18 days'
              end as due) d
            order by x.k, x.tenant_id
            """, cancellationToken, tenants, perTenant, overdueShare, dueSoonShare);

    /// <summary>
    /// Every clock: all, not compliant, overdue, due soon, ranked for a churn risk; the accounts and contacts there are; and the
    /// not-compliant clocks without a rank (score 0 or no reason).
    /// </summary>
    public static async Task<(long Clocks, long NotCompliant, long Overdue, long DueSoon, long ChurnRisk, long Entities, long Unranked)> ClockCensusAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        (await StoreReads.ListAsync(StoreReads.Command(connection, transaction, """
            select count(*),
                   count(*) filter (where compliance_status <> 'compliant'),
                   count(*) filter (where compliance_status = 'overdue'),
                   count(*) filter (where compliance_status = 'due_soon'),
                   count(*) filter (where priority_reason like '%churn risk%'),
                   (select count(*) from public.accounts) + (select count(*) from public.contacts),
                   count(*) filter (where compliance_status <> 'compliant' and (priority_score <= 0 or priority_reason is null))
            from public.engagement_clocks
            """), r => (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), r.GetInt64(6)), cancellationToken))[0];

    /// <summary>The tenant's clocks that are not compliant (what its queue holds).</summary>
    public static async Task<long> NotCompliantClocksAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction,
            "select count(*) from public.engagement_clocks where tenant_id = $1 and compliance_status <> 'compliant'", cancellationToken, tenantId);

    /// <summary>The tenant's compliant clocks.</summary>
    public static async Task<long> CompliantClocksAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction,
            "select count(*) from public.engagement_clocks where tenant_id = $1 and compliance_status = 'compliant'", cancellationToken, tenantId);

    /// <summary>The touches the tenant's clocks have counted, in all.</summary>
    public static async Task<long> TouchesCountedAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction,
            "select sum(touch_count)::bigint from public.engagement_clocks where tenant_id = $1", cancellationToken, tenantId);

    /// <summary>
    /// Moves the clocks the triggers made to where a tenant in steady state has them: clock k (by entity type and name, so the
    /// same in every tenant) takes fraction f = k x 7919 mod <paramref name="clocks"/> / <paramref name="clocks"/> of the cycle from
    /// <paramref name="now"/>: 3% overdue by up to 10 days, 7% due within 3 days, the rest over the next 18; one touch 21 days before due.
    /// </summary>
    public static Task<int> SpreadClocksByNameAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, DateTime now, int clocks,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            update public.engagement_clocks c
            set next_touch_due = d.due, last_touch_at = d.due - interval '21 days', last_touch_type = 'email', last_touch_by = 'bench',
                touch_count = 1 + x.k % 12, created_at = $2 - interval '400 days', updated_at = $2 - interval '1 day'
            from (
              select c.id, pg_catalog.row_number() over (partition by c.tenant_id order by c.entity_type, coalesce(k.name, a.name)) as k
              from public.engagement_clocks c
              left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
              left join public.accounts a on c.entity_type = 'account' and a.tenant_id = c.tenant_id and a.id = c.entity_id
              where c.tenant_id = any ($1)
            ) x
            cross join lateral (select ((x.k * 7919) % $3) / $3::float8 as f) p
            cross join lateral (select case
                when p.f < 0.03 then $2 - (p.f / 0.03) * interval '10 days'
                when p.f < 0.10 then $2 + ((p.f - 0.03) / 0.07) * interval '3 days'
                else $2 + interval '3 days' + ((p.f - 0.10) / 0.90) * interval '18 days'
              end as due) d
            where c.id = x.id
            """, cancellationToken, tenants, now, clocks);

    /// <summary>
    /// Every clock of a tenant as one digest that does not depend on ids (entities by type and name): equal for two tenants
    /// whose clocks ended in the same state (empty when it has none).
    /// </summary>
    public static async Task<string> ClocksFingerprintAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<string>(connection, transaction, """
            select pg_catalog.md5(pg_catalog.string_agg(pg_catalog.concat_ws('|', c.entity_type, coalesce(k.name, a.name), c.last_touch_at,
                     c.last_touch_type, c.last_touch_by, c.next_touch_due, c.touch_count, c.compliance_status, c.days_overdue, c.priority_score),
                     ',' order by c.entity_type, coalesce(k.name, a.name)))
            from public.engagement_clocks c
            left join public.contacts k on c.entity_type = 'contact' and k.tenant_id = c.tenant_id and k.id = c.entity_id
            left join public.accounts a on c.entity_type = 'account' and a.tenant_id = c.tenant_id and a.id = c.entity_id
            where c.tenant_id = $1
            """, cancellationToken, tenantId) ?? "";

    /// <summary>
    /// <paramref name="count"/> cards for tenant <paramref name="tenantId"/> (<paramref name="forTenant"/>) or for every other tenant:
    /// every fifth done, every twentieth a notice, one a minute back in time.
    /// </summary>
    public static Task<int> InsertSampleCardsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int count, bool forTenant,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.cards (tenant_id, kind, title, body, status, due_at, completed_at, completed_by, payload, created_at, updated_at)
            select t.id, case when g % 20 = 0 then 'notice' else 'touch_task' end, 'Touch base with contact ' || g,
                   'Overdue ' || (g % 9) || ' day(s); tier growth (+15)', case when g % 5 = 0 then 'done' else 'open' end,
                   now() + (g % 30) * interval '1 day', case when g % 5 = 0 then now() - g * interval '30 seconds' end,
                   case when g % 5 = 0 then 'user:' || gen_random_uuid() end, pg_catalog.jsonb_build_object('n', g),
                   now() - g * interval '1 minute', now()
            from public.tenants t cross join pg_catalog.generate_series(1, $2) g
            where (t.id = $1) = $3
            """, cancellationToken, tenantId, count, forTenant);

    /// <summary>All cards of every tenant.</summary>
    public static async Task<long> CountCardsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction, "select count(*) from public.cards", cancellationToken);

    /// <summary>
    /// A what-if the migrations do not make: an index <paramref name="name"/> in the card list's order (tenant, newest first), for a
    /// benchmark to compare the list with and without it.
    /// </summary>
    public static Task<int> CreateCardsListIndexAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction,
            $"create index {SqlIdentifier.Quote(name)} on public.cards (tenant_id, created_at desc, id desc)", cancellationToken);

    /// <summary>The plan (EXPLAIN, costs off; runs nothing) of <see cref="CardsPageAsync"/>'s first page, in the caller's session: one line each.</summary>
    public static async Task<IReadOnlyList<string>> ExplainCardsPageAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        int size, CancellationToken cancellationToken) =>
        await StoreReads.ListAsync(StoreReads.Command(connection, transaction, "explain (costs off) " + StoreReads.PageSql(CardsPageSql, size),
            new NpgsqlParameter<Guid> { TypedValue = tenantId }, new NpgsqlParameter<DateTimeOffset> { TypedValue = new DateTimeOffset(9999, 12, 31, 0, 0, 0, TimeSpan.Zero) },
            new NpgsqlParameter<Guid> { TypedValue = Guid.Empty }, null, null), r => r.GetString(0), cancellationToken);

    /// <summary>The tenants' open and closed touch and approval cards, removed.</summary>
    public static Task<int> DeleteTouchAndApprovalCardsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "delete from public.cards where tenant_id = any ($1) and kind in ('touch_task', 'approval')",
            cancellationToken, tenants);

    // Seeding (simulator, demo, benchmarks): bulk loads, and the simulator's reads of what the agent did.

    /// <summary>A tenant's email channel to load (enabled).</summary>
    internal sealed record EmailChannelLoad(Guid TenantId, string SmtpHost, int SmtpPort, string SmtpSecurity, string SmtpFrom);

    /// <summary>Loads email channels by one binary COPY on the caller's connection, in its transaction; returns how many.</summary>
    public static Task<ulong> LoadEmailChannelsAsync(NpgsqlConnection connection, IEnumerable<EmailChannelLoad> channels, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection,
            "copy public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from) from stdin (format binary)",
            [NpgsqlDbType.Uuid, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Integer, NpgsqlDbType.Text, NpgsqlDbType.Text],
            channels, c => [c.TenantId, "email", c.SmtpHost, c.SmtpPort, c.SmtpSecurity, c.SmtpFrom], cancellationToken);

    /// <summary>
    /// Sets each contact's clock and its account's to the contact's last touch before now (for an account, its contacts'
    /// latest): one email by the import, the next touch due one cadence later. The clocks' touch record is the
    /// product's to write, so the caller's transaction has set <see cref="DerivedColumns.AllowProductWriteSql"/>.
    /// </summary>
    public static async Task BackdateFirstTouchesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid[] contactIds,
        Guid[] accountIds, DateTimeOffset[] touchedAt, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            with touched as (
              select t.entity_type, t.entity_id, max(t.at) as at
              from unnest($2::uuid[], $3::uuid[], $4::timestamptz[]) x(contact_id, account_id, at)
              cross join lateral (values ('contact', x.contact_id, x.at), ('account', x.account_id, x.at)) t(entity_type, entity_id, at)
              group by t.entity_type, t.entity_id
            )
            update public.engagement_clocks c
            set last_touch_at = t.at, last_touch_type = 'email', last_touch_by = 'import', touch_count = 1,
                next_touch_due = t.at + make_interval(days => c.touch_frequency_days), created_at = t.at
            from touched t
            where c.tenant_id = $1 and c.entity_type = t.entity_type and c.entity_id = t.entity_id
            """, tenantId, contactIds, accountIds, touchedAt);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Records a touch of each entity (<c>update_engagement_clock</c>, which also touches a contact's account), in the
    /// given order, by <paramref name="touchedBy"/>: one batch, one round trip, each call after the one before.
    /// </summary>
    public static async Task RecordTouchesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        IReadOnlyList<(string EntityType, Guid EntityId, string TouchType)> touches, string touchedBy, CancellationToken cancellationToken)
    {
        if (touches.Count == 0)
        {
            return;
        }

        await using var batch = new NpgsqlBatch(connection, transaction);
        foreach (var (entityType, entityId, touchType) in touches)
        {
            var command = new NpgsqlBatchCommand("select public.update_engagement_clock($1, $2, $3, $4, $5)");
            command.Parameters.Add(new() { Value = tenantId });
            command.Parameters.Add(new() { Value = entityType });
            command.Parameters.Add(new() { Value = entityId });
            command.Parameters.Add(new() { Value = touchType });
            command.Parameters.Add(new() { Value = touchedBy });
            batch.BatchCommands.Add(command);
        }

        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Moves each entity's last touch and next due date back by its number of days (a touch history before the
    /// import). The clocks' touch record is the product's to write, so the caller's transaction has set
    /// <see cref="DerivedColumns.AllowProductWriteSql"/>.
    /// </summary>
    public static async Task MoveTouchesBackAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, string[] entityTypes,
        Guid[] entityIds, int[] days, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            update public.engagement_clocks c
            set last_touch_at = c.last_touch_at - make_interval(days => x.days),
                next_touch_due = c.next_touch_due - make_interval(days => x.days)
            from unnest($2::text[], $3::uuid[], $4::int[]) x(entity_type, entity_id, days)
            where c.tenant_id = $1 and c.entity_type = x.entity_type and c.entity_id = x.entity_id
            """, tenantId, entityTypes, entityIds, days);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Per tenant with clocks: how many are overdue at <paramref name="now"/>, how many clocks in all, and of the overdue
    /// ones how many wait on an open touch card, an open approval, a queued message.
    /// </summary>
    public static Task<IReadOnlyList<(Guid TenantId, long Overdue, long Clocks, long Card, long Approval, long Message)>> OverdueByCauseAsync(
        NpgsqlDataSource dataSource, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // The overdue clocks first (a few), then what stands for each; the totals by tenant from a count.
        var command = dataSource.CreateCommand("""
            with overdue as materialized (
              select c.tenant_id, c.entity_type, c.entity_id from public.engagement_clocks c where c.next_touch_due < $1
            ), causes as (
              select o.tenant_id,
                     exists (select 1 from public.cards k where k.tenant_id = o.tenant_id and k.entity_type = o.entity_type and k.entity_id = o.entity_id
                               and k.kind = 'touch_task' and k.status = 'open') as card,
                     exists (select 1 from public.cards k where k.tenant_id = o.tenant_id and k.entity_type = o.entity_type and k.entity_id = o.entity_id
                               and k.kind = 'approval' and k.status = 'open') as approval,
                     exists (select 1 from public.message_outbox m where m.tenant_id = o.tenant_id and m.status in ('pending', 'sending')
                               and (m.payload ->> 'target_id') = o.entity_id::text) as message
              from overdue o
            ), totals as (
              select c.tenant_id, count(*) as n from public.engagement_clocks c group by c.tenant_id
            )
            select t.tenant_id, count(x.tenant_id), t.n, count(*) filter (where x.card), count(*) filter (where x.approval), count(*) filter (where x.message)
            from totals t left join causes x on x.tenant_id = t.tenant_id
            group by t.tenant_id, t.n
            """);
        command.Parameters.Add(new() { Value = now });
        return StoreReads.ListAsync(command, r => (r.GetGuid(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5)),
            cancellationToken);
    }

    /// <summary>
    /// How many emails the outbox records as sent at or after the moment their address was suppressed (a hard bounce, soft
    /// bounces past the limit, a complaint: <c>message_suppressions</c>) or their contact opted out (<c>contacts.opted_out_at</c>):
    /// the simulator's goal is none.
    /// </summary>
    public static async Task<long> SentAfterSuppressionAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select count(*) from public.message_outbox m
            where m.status = 'sent' and m.channel = 'email'
              and (exists (select 1 from public.message_suppressions s
                           where s.tenant_id = m.tenant_id and s.channel = 'email' and s.address = pg_catalog.lower(m.destination)
                             and s.suppressed_at <= m.sent_at)
                   or exists (select 1 from public.contacts k
                              where k.tenant_id = m.tenant_id and k.id::text = m.payload ->> 'target_id' and k.opted_out_at <= m.sent_at))
            """);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// The last touch of each of these entities' clocks (entity <c>k</c> of tenant <c>k</c>; entities without a touch are left out).
    /// </summary>
    public static async Task<IReadOnlyDictionary<Guid, DateTimeOffset>> LastTouchesAsync(NpgsqlDataSource dataSource, string entityType, Guid[] tenantIds,
        Guid[] entityIds, CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand("""
            select c.entity_id, c.last_touch_at
            from unnest($2::uuid[], $3::uuid[]) as e (tenant_id, entity_id)
            join public.engagement_clocks c on c.tenant_id = e.tenant_id and c.entity_type = $1 and c.entity_id = e.entity_id
            where c.last_touch_at is not null
            """);
        command.Parameters.Add(new() { Value = entityType });
        command.Parameters.Add(new() { Value = tenantIds });
        command.Parameters.Add(new() { Value = entityIds });
        var rows = await StoreReads.ListAsync(command, r => (r.GetGuid(0), r.GetFieldValue<DateTimeOffset>(1)), cancellationToken);
        return rows.ToDictionary(r => r.Item1, r => r.Item2);
    }

    /// <summary>The most messages the outbox records as sent for one tenant in any 24 hours.</summary>
    public static async Task<long> PeakSentPerDayAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select coalesce(max(n), 0) from (
              select count(*) over (partition by tenant_id order by sent_at range between interval '23:59:59.999999' preceding and current row) as n
              from public.message_outbox where status = 'sent') x
            """);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>How many sent messages went out on a weekend or outside 08:00–18:00 in their contact's time zone (else the tenant's).</summary>
    public static async Task<long> SentOutsideBusinessHoursAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select count(*) from public.message_outbox m
            join public.contacts k on k.tenant_id = m.tenant_id and k.id = (m.payload ->> 'target_id')::uuid
            join public.tenants t on t.id = m.tenant_id
            where m.status = 'sent'
              and (extract(isodow from m.sent_at at time zone coalesce(k.timezone, t.timezone)) > 5
                   or extract(hour from m.sent_at at time zone coalesce(k.timezone, t.timezone)) not between 8 and 17)
            """);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>Every open touch card and approval: its id, tenant, kind, entity and the strategy it carries out (if any).</summary>
    public static Task<IReadOnlyList<(Guid Id, Guid TenantId, string Kind, string? EntityType, Guid? EntityId, string? Strategy)>> OpenCardsAsync(
        NpgsqlDataSource dataSource, CancellationToken cancellationToken) =>
        StoreReads.ListAsync(dataSource.CreateCommand("""
            select id, tenant_id, kind, entity_type, entity_id, coalesce(payload ->> 'strategy_key', payload -> 'action' -> 'payload' ->> 'strategy_key')
            from public.cards where status = 'open' and kind in ('touch_task', 'approval')
            """), r => (r.GetGuid(0), r.GetGuid(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? (Guid?)null : r.GetGuid(4),
            r.IsDBNull(5) ? null : r.GetString(5)), cancellationToken);

    /// <summary>
    /// Spreads each tenant's contact clocks over one cadence: clock k (by contact id) of tenant n (its place in
    /// <paramref name="tenants"/>) is due at now - <paramref name="overdueSpan"/> + (k - 1 + n / tenants) x
    /// <paramref name="step"/>, created 30 days ago. An upsert: the schema's trigger has already given each contact a clock.
    /// </summary>
    public static Task<int> InsertSpreadContactClocksAsync(NpgsqlConnection connection, Guid[] tenants, TimeSpan overdueSpan, TimeSpan step,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.engagement_clocks as k (tenant_id, entity_type, entity_id, next_touch_due, created_at, updated_at)
            select c.tenant_id, 'contact', c.id,
                   now() - $2 + ((pg_catalog.row_number() over (partition by c.tenant_id order by c.id) - 1) + t.n::float8 / $4) * $3,
                   now() - interval '30 days', now() - interval '30 days'
            from public.contacts c
            join unnest($1::uuid[]) with ordinality as t (id, n) on t.id = c.tenant_id
            order by t.n
            on conflict (tenant_id, entity_type, entity_id) do update
              set next_touch_due = excluded.next_touch_due, created_at = excluded.created_at, updated_at = excluded.updated_at
            """, cancellationToken, tenants, overdueSpan, step, tenants.Length);

    /// <summary>How many of the tenants' clocks are due soon or overdue and have no open touch card.</summary>
    public static async Task<long> UncardedDueClockCountAsync(NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, null, """
            select count(*) from public.engagement_clocks c
            where c.tenant_id = any ($1) and c.compliance_status <> 'compliant'
              and not exists (select 1 from public.cards k where k.tenant_id = c.tenant_id and k.kind = 'touch_task' and k.status = 'open'
                              and k.entity_type = c.entity_type and k.entity_id = c.entity_id)
            """, cancellationToken, tenants);

    /// <summary>Deletes the tenants' touch cards: all of them, or with <paramref name="onlyCycleMade"/> those a cycle made.</summary>
    public static Task<int> DeleteTouchCardsAsync(NpgsqlConnection connection, Guid[] tenants, bool onlyCycleMade, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null,
            onlyCycleMade
                ? "delete from public.cards where tenant_id = any ($1) and kind = 'touch_task' and run_id is not null"
                : "delete from public.cards where tenant_id = any ($1) and kind = 'touch_task'",
            cancellationToken, tenants);

    /// <summary>Opens a touch card, made two hours ago, for each of the tenants' clocks due soon or overdue that has none.</summary>
    public static Task<int> OpenEarlierTouchCardsAsync(NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, due_at, created_at, updated_at)
            select c.tenant_id, 'touch_task', 'Touch base', 'Made in an earlier hour.', c.entity_type, c.entity_id, c.next_touch_due,
                   now() - interval '2 hours', now() - interval '2 hours'
            from public.engagement_clocks c
            where c.tenant_id = any ($1) and c.compliance_status <> 'compliant'
            on conflict (tenant_id, entity_type, entity_id) where kind = 'touch_task' and status = 'open' do nothing
            """, cancellationToken, tenants);

    // The touch part and the outbox dispatcher (statements moved from TouchTaskHandler and OutboxDispatcher).

    /// <summary>
    /// Opens a touch card for the target's owner, due at the touch's due time but not before a day from now; returns its
    /// id, or null when the target already has an open touch card (ON CONFLICT on the one-open-touch index: a card someone
    /// opened meanwhile is kept, not doubled).
    /// </summary>
    public static async Task<Guid?> OpenTouchCardAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, TouchCardRequest card,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, run_id, assignee_user_id, due_at, payload)
            values ($1, 'touch_task', $2, $3, $4, $5, $6, $7, greatest($8, hourglass.now() + interval '1 day'), $9)
            on conflict (tenant_id, entity_type, entity_id) where kind = 'touch_task' and status = 'open' do nothing
            returning id
            """, connection, transaction);
        command.Parameters.Add(new() { Value = card.TenantId });
        command.Parameters.Add(new() { Value = card.Title });
        command.Parameters.Add(new() { Value = card.Body });
        command.Parameters.Add(new() { Value = card.EntityType });
        command.Parameters.Add(new() { Value = card.EntityId });
        command.Parameters.Add(new() { Value = card.RunId });
        command.Parameters.Add(new() { Value = (object?)card.OwnerUserId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = card.DueAt });
        command.Parameters.Add(JsonbParameter.From(card.Payload));
        return await command.ExecuteScalarAsync(cancellationToken) as Guid?;
    }

    // Due messages nobody holds, of tenants under no kill switch: a paused tenant's messages are not even looked at, so
    // they keep their status, attempts and next_attempt_at exactly as they were (and take no place in the batch).
    private const string OutboxLockDueSql = """
        with due as (
          select m.id, m.tenant_id, m.payload ->> 'target_type' as target_type,
                 case when m.payload ->> 'target_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                      then (m.payload ->> 'target_id')::uuid end as target_id
          from public.message_outbox m
          where m.status in ('pending', 'sending') and m.next_attempt_at <= hourglass.now() and m.attempts < m.max_attempts
            and not (select c.paused from hourglass.agent_control c where c.singleton)
            and not exists (select 1 from public.agent_tenant_schedules s where s.tenant_id = m.tenant_id and s.paused)
          order by m.next_attempt_at
          limit $1
          for update of m skip locked
        )
        select d.id, d.tenant_id, t.timezone, k.timezone, a.timezone,
               coalesce((select max(p.version) from public.tenant_policy_documents p where p.tenant_id = d.tenant_id), 0),
               hourglass.now()
        from due d
        join public.tenants t on t.id = d.tenant_id
        left join public.contacts k on d.target_type = 'contact' and k.tenant_id = d.tenant_id and k.id = d.target_id
        left join public.accounts a on a.tenant_id = d.tenant_id
                                   and a.id = case when d.target_type = 'account' then d.target_id else k.account_id end
        """;

    /// <summary>
    /// Locks up to <paramref name="limit"/> due messages (<c>FOR UPDATE SKIP LOCKED</c>, in the caller's transaction) of
    /// tenants under no kill switch, each with what its send window needs: the tenant's, contact's and account's time
    /// zones, the tenant's policy version in force and the database clock.
    /// </summary>
    public static Task<IReadOnlyList<DueMessageRow>> LockDueMessagesAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, int limit,
        CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(OutboxLockDueSql, connection, transaction);
        command.Parameters.Add(new() { Value = limit });
        return StoreReads.ListAsync(command, r => new DueMessageRow(r.GetGuid(0), r.GetGuid(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3),
            r.IsDBNull(4) ? null : r.GetString(4), r.GetInt32(5), r.GetFieldValue<DateTimeOffset>(6)), cancellationToken);
    }

    // Row by row, what may happen to each locked message now, all read at this statement's one snapshot: a kill switch
    // that came on since the lock (or a new policy version, against which the window was not judged) leaves the message
    // untouched; a contact or account that must not be contacted, or a channel disabled or gone, suppresses it for good,
    // with the reason; a closed send window holds it (pending, next_attempt_at the opening, attempts unchanged); the rest
    // are claimed. A message left 'sending' by a dispatcher that died gets its 'claim_expired' attempt whichever way it goes.
    private const string OutboxClaimCheckedSql = $$"""
        with facts as (
          select m.id, m.tenant_id, m.channel, m.status as previous_status, m.claimed_by as previous_holder, i.hold_until, i.hold_reason,
                 (select c.paused from hourglass.agent_control c where c.singleton) or coalesce(s.paused, false)
                   or coalesce((select max(p.version) from public.tenant_policy_documents p where p.tenant_id = m.tenant_id), 0) <> i.policy_version
                   as wait,
                 case when k.opted_out_at is not null then 'contact_opted_out'
                      when k.do_not_contact then 'contact_do_not_contact'
                      when a.do_not_contact then 'account_do_not_contact'
                      when ms.id is not null then 'address_suppressed'
                      when ch.id is null then 'channel_missing'
                      when not ch.enabled then 'channel_disabled' end as code,
                 case when k.opted_out_at is not null then 'the contact opted out on ' || to_char(k.opted_out_at at time zone 'UTC', 'YYYY-MM-DD')
                      when k.do_not_contact then 'the contact is marked do-not-contact'
                      when a.do_not_contact then 'the account is marked do-not-contact'
                      when ms.id is not null then {{Inbound.InboundStore.SuppressionReasonSql}}
                      when ch.id is null then 'the tenant has no ' || m.channel || ' channel (message_channels)'
                      when not ch.enabled then 'the tenant''s ' || m.channel || ' channel is disabled' end as reason
          from unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::integer[]) as i(id, hold_until, hold_reason, policy_version)
          join public.message_outbox m on m.id = i.id
          cross join lateral (
            select m.payload ->> 'target_type' as type,
                   case when m.payload ->> 'target_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                        then (m.payload ->> 'target_id')::uuid end as id) t
          left join public.agent_tenant_schedules s on s.tenant_id = m.tenant_id
          left join public.contacts k on t.type = 'contact' and k.tenant_id = m.tenant_id and k.id = t.id
          left join public.accounts a on a.tenant_id = m.tenant_id and a.id = case when t.type = 'account' then t.id else k.account_id end
          left join public.message_channels ch on ch.tenant_id = m.tenant_id and ch.channel = m.channel
          left join public.message_suppressions ms on m.channel = 'email' and ms.tenant_id = m.tenant_id and ms.channel = 'email'
                                                  and ms.address = pg_catalog.lower(m.destination)
        ), suppressed as (
          update public.message_outbox m
          set status = 'suppressed', suppressed_at = hourglass.now(), suppressed_code = f.code, suppressed_reason = f.reason,
              held_reason = null, claimed_until = null, updated_at = hourglass.now()
          from facts f
          where m.id = f.id and not f.wait and f.code is not null
          returning m.id, m.tenant_id, m.attempts, f.previous_status, f.previous_holder
        ), held as (
          update public.message_outbox m
          set status = 'pending', next_attempt_at = f.hold_until, held_reason = f.hold_reason, claimed_until = null, updated_at = hourglass.now()
          from facts f
          where m.id = f.id and not f.wait and f.code is null and f.hold_until is not null
          returning m.id, m.tenant_id, m.attempts, f.previous_status, f.previous_holder
        ), claimed as (
          update public.message_outbox m
          set status = 'sending', attempts = m.attempts + 1, claimed_by = $5, claimed_until = hourglass.now() + $6,
              next_attempt_at = hourglass.now() + $6, held_reason = null, updated_at = hourglass.now()
          from facts f
          where m.id = f.id and not f.wait and f.code is null and f.hold_until is null
          returning m.id, m.tenant_id, m.idempotency_key, m.channel, m.destination, m.subject, m.body, m.payload, m.attempts,
                    m.max_attempts, m.created_at, f.previous_status, f.previous_holder
        ), lapsed as (
          insert into public.message_outbox_attempts (tenant_id, message_id, attempt, attempted_at, outcome, error, worker_id)
          select c.tenant_id, c.id, c.attempts - 1, hourglass.now(), 'claim_expired',
                 'the claim lapsed before a result was recorded: the message may have been sent', c.previous_holder
          from claimed c where c.previous_status = 'sending'
          union all
          select x.tenant_id, x.id, x.attempts, hourglass.now(), 'claim_expired',
                 'the claim lapsed before a result was recorded: the message may have been sent', x.previous_holder
          from (select * from suppressed union all select * from held) x where x.previous_status = 'sending'
        )
        select c.id, c.tenant_id, c.idempotency_key, c.channel, c.destination, c.subject, c.body, c.payload::text, c.attempts,
               c.max_attempts, c.created_at,
               k.channel, k.enabled, k.webhook_url, k.smtp_host, k.smtp_port, k.smtp_security, k.smtp_username, k.smtp_from, k.secret_ref,
               k.smtp_tls_pin_sha256
        from claimed c
        left join public.message_channels k on k.tenant_id = c.tenant_id and k.channel = c.channel
        """;

    /// <summary>
    /// Takes the locked messages <paramref name="ids"/> through the send-time checks in one statement (in the caller's
    /// transaction): leaves, suppresses or holds (until <paramref name="holdUntil"/>, for <paramref name="holdReasons"/>)
    /// each, or claims it for <paramref name="workerId"/> for <paramref name="visibilityTimeout"/>; returns the claimed
    /// messages with their channel's settings.
    /// </summary>
    public static async Task<List<OutboxMessage>> ClaimCheckedMessagesAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid[] ids,
        DateTimeOffset?[] holdUntil, string?[] holdReasons, int[] policyVersions, string workerId, TimeSpan visibilityTimeout,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(OutboxClaimCheckedSql, connection, transaction);
        command.Parameters.Add(new() { Value = ids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = holdUntil, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new() { Value = holdReasons, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = policyVersions, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
        command.Parameters.Add(new() { Value = workerId });
        command.Parameters.Add(new() { Value = visibilityTimeout, NpgsqlDbType = NpgsqlDbType.Interval });
        var batch = new List<OutboxMessage>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
            var settings = reader.IsDBNull(11) ? null : new ChannelSettings(
                reader.GetString(11), reader.GetBoolean(12), Text(13), Text(14), reader.IsDBNull(15) ? null : reader.GetInt32(15),
                reader.GetString(16), Text(17), Text(18), Text(19), Text(20));
            batch.Add(new OutboxMessage(
                reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), Text(5), reader.GetString(6),
                JsonNode.Parse(reader.GetString(7))!.AsObject(), reader.GetInt32(8), reader.GetInt32(9), reader.GetFieldValue<DateTimeOffset>(10),
                settings));
        }

        return batch;
    }

    /// <summary>
    /// Fails every message whose final attempt's claim lapsed (its dispatcher died mid-send), recording the lapse as its
    /// attempt; not while its tenant (or every tenant) is paused.
    /// </summary>
    public static async Task FailLapsedLastAttemptsAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            with exhausted as (
              update public.message_outbox m
              set status = 'failed', claimed_until = null, updated_at = hourglass.now(),
                  last_error = 'the last attempt''s claim lapsed before a result was recorded: the message may have been sent'
              where m.status = 'sending' and m.next_attempt_at <= hourglass.now() and m.attempts >= m.max_attempts
                and not (select c.paused from hourglass.agent_control c where c.singleton)
                and not exists (select 1 from public.agent_tenant_schedules s where s.tenant_id = m.tenant_id and s.paused)
              returning m.tenant_id, m.id, m.attempts, m.claimed_by, m.last_error
            )
            insert into public.message_outbox_attempts (tenant_id, message_id, attempt, attempted_at, outcome, error, worker_id)
            select e.tenant_id, e.id, e.attempts, hourglass.now(), 'claim_expired', e.last_error, e.claimed_by from exhausted e
            """);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    // The part's own functions: the cycle's refresh, the touch import, the CLI's card completion.

    /// <summary>
    /// Refreshes the tenant's clock compliance and priorities (<c>refresh_engagement_compliance</c>), in the caller's
    /// transaction if any; returns how many clocks changed.
    /// </summary>
    public static async Task<int> RefreshComplianceAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(RefreshComplianceSql, connection, transaction);
        command.Parameters.Add(new() { Value = tenantId });
        return (int)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Records a batch of touches (<c>record_touches</c>, a JSON array; duplicates skipped) in the caller's transaction: per
    /// line (1-based, in the array's order) its outcome, entity, idempotency key and error.
    /// </summary>
    public static async Task<IReadOnlyList<RecordedTouchRow>> RecordTouchesAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        string touchesJson, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(RecordTouchesSql, connection, transaction);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = touchesJson, NpgsqlDbType = NpgsqlDbType.Jsonb });
        var rows = new List<RecordedTouchRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new RecordedTouchRow(reader.GetInt32(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetGuid(3), reader.IsDBNull(4) ? null : reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetString(5)));
        }

        return rows;
    }

    /// <summary><c>complete_touch_card</c> of card $1 ($2 how, $3 notes), as the CLI runs it; returns the clock it touched.</summary>
    internal const string CompleteTouchCardSql = "select public.complete_touch_card($1, $2, $3)";

    // The part's functions as the simulator and the benchmarks call them (the statements a benchmark prepares and times,
    // taken from here as the processors take theirs).

    /// <summary><c>refresh_engagement_compliance</c> of tenant $1: how many of its clocks changed.</summary>
    internal const string RefreshComplianceSql = "select public.refresh_engagement_compliance($1)";

    /// <summary>Refreshes the compliance of every tenant in <paramref name="tenantIds"/> in one statement (one call each).</summary>
    public static Task RefreshComplianceOfAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenantIds,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "select sum(public.refresh_engagement_compliance(t)) from unnest($1::uuid[]) t",
            cancellationToken, tenantIds);

    /// <summary><c>record_touches</c> of tenant $1's batch $2 (a JSON array; duplicates skipped): per line its outcome, entity, key and error.</summary>
    internal const string RecordTouchesSql =
        "select line, outcome, entity_type, entity_id, idempotency_key, error from public.record_touches($1, $2, 'skip')";

    /// <summary>
    /// Records a batch of touches (<c>record_touches</c>, a JSON array as text) in the caller's transaction, refusing the
    /// whole batch (an error) on any line it cannot record: the simulator's people touching their contacts.
    /// </summary>
    public static Task RecordTouchesOrRefuseAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, string touchesJson,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "select count(*) from public.record_touches($1, $2::jsonb, 'refuse')", cancellationToken,
            tenantId, touchesJson);

    /// <summary><c>complete_touch_card</c> of a card, as a command of the caller's batch (the simulator's owners at work).</summary>
    public static NpgsqlBatchCommand CompleteTouchCardCommand(Guid cardId, string touchType, string notes) =>
        new(CompleteTouchCardSql) { Parameters = { new() { Value = cardId }, new() { Value = touchType }, new() { Value = notes } } };

    /// <summary>The first $2 places of tenant $1's queue, as <c>engagement_queue</c> returns them (the queue benchmark's measured call).</summary>
    internal const string QueueSql = "select * from public.engagement_queue($1, $2)";
}
