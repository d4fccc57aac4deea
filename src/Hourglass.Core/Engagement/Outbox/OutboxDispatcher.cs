using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Policies;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement.Outbox;

/// <summary>How a dispatcher claims, sends and retries.</summary>
internal sealed record OutboxDispatcherOptions
{
    /// <summary>Written to claimed_by and to each attempt; unique per dispatcher.</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}:outbox";

    public int BatchSize { get; init; } = 20;

    /// <summary>How long a claim hides a message from other dispatchers; longer than any one send can take.</summary>
    public TimeSpan VisibilityTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Network deadline for one send.</summary>
    public TimeSpan SendTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Backoff: the first retry waits 0.5–1 × this, each later one twice as long, up to <see cref="MaxDelay"/>.</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromHours(1);

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Messages of a batch in flight at once (each sent, then its result recorded, on its own). A slow receiver no longer
    /// holds up the rest of the batch: 20 webhooks answering in 1 s take 5 s, not 20.
    /// </summary>
    public int MaxParallelSends { get; init; } = 4;
}

/// <summary>
/// Delivers the outbox. Each pass claims due messages (<c>FOR UPDATE SKIP LOCKED</c>, so any number of dispatchers
/// share the table), checking each again as it claims it — kill switches, do-not-contact, the channel, the send window
/// (suppressed, held or left as they are otherwise) — and marking them 'sending' until a visibility timeout before any network call; sends each through
/// its channel's transport; and records the attempt and the outcome: 'sent', back to 'pending' after a backoff, or
/// 'failed'. The attempt number is the claim's fencing token: a dispatcher whose claim lapsed and was taken over
/// records its attempt but cannot change the message. A dispatcher that dies after sending and before recording
/// leaves the message 'sending'; once the claim lapses it is sent again with the same id (at least once; see docs/outbox.md).
/// Due and expired are judged by the database's clock (<c>hourglass.now()</c>), the one all dispatchers share.
/// </summary>
internal sealed partial class OutboxDispatcher
{
    // How far ahead the dispatcher looks for a closed send window to open; a window closed longer (a long run of
    // holidays) holds the message this long and is judged again then.
    private static readonly TimeSpan s_windowHorizon = TimeSpan.FromDays(14);

    // A policy in force that cannot be read (written around the checks) holds its tenant's messages this long at a time.
    private static readonly TimeSpan s_unreadablePolicyRetry = TimeSpan.FromHours(1);

    private readonly NpgsqlDataSource _dataSource;
    private readonly IReadOnlyDictionary<string, IMessageTransport> _transports;
    private readonly Func<string, string?> _secrets;
    private readonly OutboxDispatcherOptions _options;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly ILogger _logger;

    // secrets resolves a channel's secret_ref (default: the worker's environment variable of that name); random is
    // the backoff's jitter, seeded to make a schedule reproducible.
    public OutboxDispatcher(NpgsqlDataSource dataSource, IEnumerable<IMessageTransport> transports, TimeProvider time,
        OutboxDispatcherOptions? options = null, Func<string, string?>? secrets = null, Random? random = null, ILogger? logger = null)
    {
        _dataSource = dataSource;
        _transports = transports.ToDictionary(t => t.Channel, StringComparer.Ordinal);
        _options = options ?? new OutboxDispatcherOptions();
        _secrets = secrets ?? Environment.GetEnvironmentVariable;
        _time = time;
        _random = random ?? new Random();
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The production transports: signed webhooks over <paramref name="http"/> and SMTP through MailKit.</summary>
    public static IMessageTransport[] DefaultTransports(HttpClient http, OutboxDispatcherOptions options, TimeProvider time) =>
        [new WebhookTransport(http, time, options.SendTimeout), new SmtpTransport(options.SendTimeout)];

    /// <summary>Dispatches until cancelled, waiting <see cref="OutboxDispatcherOptions.PollInterval"/> when nothing is due.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            int handled;
            try
            {
                handled = await DispatchOnceAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPassFailed(_logger, ex);
                handled = 0;
            }

            if (handled == 0)
            {
                await Task.Delay(_options.PollInterval, _time, cancellationToken);
            }
        }
    }

    /// <summary>
    /// One pass: fails messages whose last attempt's claim lapsed, then takes one batch of due messages through the
    /// send-time checks and sends those it claimed. Returns how many due messages it took (claimed and sent, held for
    /// their send window, or suppressed); 0 when nothing is due — a paused tenant's messages are never due.
    /// </summary>
    public async Task<int> DispatchOnceAsync(CancellationToken cancellationToken)
    {
        await FailLapsedLastAttemptsAsync(cancellationToken);
        var (batch, taken) = await ClaimAsync(cancellationToken);
        await Parallel.ForEachAsync(batch, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, _options.MaxParallelSends), CancellationToken = cancellationToken },
            async (message, token) => await DeliverAsync(message, token));

        return taken;
    }

    private async Task DeliverAsync(OutboxMessage message, CancellationToken cancellationToken)
    {
        DeliveryResult result;
        if (message.Settings is not { Enabled: true } settings)
        {
            result = DeliveryResult.Transient($"no enabled {message.Channel} channel is configured for the tenant (message_channels)");
        }
        else if (!_transports.TryGetValue(message.Channel, out var transport))
        {
            result = DeliveryResult.Transient($"this dispatcher has no transport for channel '{message.Channel}'");
        }
        else
        {
            try
            {
                var secret = settings.SecretRef is null ? null : _secrets(settings.SecretRef);
                result = await transport.SendAsync(message, secret, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                result = DeliveryResult.Transient($"{ex.GetType().Name}: {ex.Message}");
            }
        }

        // Crash tests stop the process here: the receiver has the message, the database does not know yet.
        await Failpoints.HitAsync("outbox.after_send", cancellationToken);
        await RecordAsync(message, result, cancellationToken);
    }

    // The claim and the send-time checks, in one transaction (docs/outbox.md, "Send-time checks"). The due rows are
    // locked first (SKIP LOCKED), skipping every tenant under a kill switch, with what the send window needs (the
    // recipient's time zone, the policy version in force, the database clock); the policy evaluator judges the window
    // here; then one statement reads pause, do-not-contact and the channel again and, row by row, leaves a newly paused
    // tenant's message untouched, suppresses one no longer allowed (with the reason), holds one outside its window until
    // the window opens, and claims the rest. Nothing commits between the checks and the claim, and a message is only
    // ever sent after its claim commits.
    private async Task<(List<OutboxMessage> Claimed, int Taken)> ClaimAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var due = await LockDueAsync(connection, transaction, cancellationToken);
        if (due.Count == 0)
        {
            await transaction.CommitAsync(cancellationToken);
            return ([], 0);
        }

        var ids = new Guid[due.Count];
        var holdUntil = new DateTimeOffset?[due.Count];
        var holdReasons = new string?[due.Count];
        var versions = new int[due.Count];
        var windows = new Dictionary<(Guid Tenant, int Version, string Zone, string Source), (DateTimeOffset? Until, string? Reason)>();
        for (var i = 0; i < due.Count; i++)
        {
            var row = due[i];
            ids[i] = row.Id;
            versions[i] = row.PolicyVersion;
            var key = (row.TenantId, row.PolicyVersion, row.Zone.Id, row.ZoneSource);
            if (!windows.TryGetValue(key, out var window))
            {
                windows[key] = window = await JudgeWindowAsync(connection, transaction, row, cancellationToken);
            }

            (holdUntil[i], holdReasons[i]) = window;
        }

        var claimed = await ClaimCheckedAsync(connection, transaction, ids, holdUntil, holdReasons, versions, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return (claimed, due.Count);
    }

    private sealed record DueMessage(Guid Id, Guid TenantId, TimeZoneInfo Zone, string ZoneSource, TimeZoneInfo TenantZone, int PolicyVersion, DateTimeOffset Now);

    // Due messages nobody holds, of tenants under no kill switch: a paused tenant's messages are not even looked at, so
    // they keep their status, attempts and next_attempt_at exactly as they were (and take no place in the batch).
    private const string LockDueSql = """
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

    private async Task<List<DueMessage>> LockDueAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(LockDueSql, connection, transaction);
        command.Parameters.Add(new() { Value = _options.BatchSize });
        var due = new List<DueMessage>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            // The recipient's zone as the policy evaluator takes it: the contact's, else its account's, else the tenant's.
            var tenantZone = Zone(reader.GetString(2)) ?? TimeZoneInfo.Utc;
            var (zone, source) = Zone(reader.IsDBNull(3) ? null : reader.GetString(3)) is { } contact ? (contact, "contact")
                : Zone(reader.IsDBNull(4) ? null : reader.GetString(4)) is { } account ? (account, "account")
                : (tenantZone, "tenant");
            due.Add(new DueMessage(reader.GetGuid(0), reader.GetGuid(1), zone, source, tenantZone, reader.GetInt32(5), reader.GetFieldValue<DateTimeOffset>(6)));
        }

        return due;
    }

    private static TimeZoneInfo? Zone(string? id) => id is not null && TimeZoneInfo.TryFindSystemTimeZoneById(id, out var zone) ? zone : null;

    // The send window as the policy evaluator judges it (the same rules the planner asks before it proposes a message):
    // (null, null) to send now; otherwise until when to hold the message, and why.
    private static async Task<(DateTimeOffset? Until, string? Reason)> JudgeWindowAsync(NpgsqlConnection connection, NpgsqlTransaction transaction,
        DueMessage message, CancellationToken cancellationToken)
    {
        PolicyDocument document;
        try
        {
            document = await PolicyStore.DocumentAsync(connection, transaction, message.TenantId, message.PolicyVersion, cancellationToken);
        }
        catch (PolicyValidationException ex)
        {
            var retry = message.Now + s_unreadablePolicyRetry;
            return (retry, string.Create(CultureInfo.InvariantCulture,
                $"the policy in force (v{message.PolicyVersion}) cannot be read, so the send window cannot be judged: {ex.Message}; held, and checked again at {retry.UtcDateTime:yyyy-MM-dd HH:mm} UTC"));
        }

        var target = (message.Zone, message.ZoneSource);
        if (PolicyEvaluator.TimingBlocks(document, MessageHandler.ActionKind, target, message.Now, message.TenantZone) is not { } blocked)
        {
            return (null, null);
        }

        var opens = PolicyEvaluator.NextTimingOpening(document, MessageHandler.ActionKind, target, message.Now, message.TenantZone, s_windowHorizon);
        var until = opens ?? message.Now + s_windowHorizon;
        return (until, opens is not null
            ? string.Create(CultureInfo.InvariantCulture, $"{blocked}; held until the window opens at {until.UtcDateTime:yyyy-MM-dd HH:mm} UTC")
            : string.Create(CultureInfo.InvariantCulture,
                $"{blocked}; the window does not open within {s_windowHorizon.TotalDays:0} days: held, and checked again at {until.UtcDateTime:yyyy-MM-dd HH:mm} UTC"));
    }

    // Row by row, what may happen to each locked message now, all read at this statement's one snapshot: a kill switch
    // that came on since the lock (or a new policy version, against which the window was not judged) leaves the message
    // untouched; a contact or account that must not be contacted, or a channel disabled or gone, suppresses it for good,
    // with the reason; a closed send window holds it (pending, next_attempt_at the opening, attempts unchanged); the rest
    // are claimed. A message left 'sending' by a dispatcher that died gets its 'claim_expired' attempt whichever way it goes.
    private const string ClaimCheckedSql = """
        with facts as (
          select m.id, m.tenant_id, m.channel, m.status as previous_status, m.claimed_by as previous_holder, i.hold_until, i.hold_reason,
                 (select c.paused from hourglass.agent_control c where c.singleton) or coalesce(s.paused, false)
                   or coalesce((select max(p.version) from public.tenant_policy_documents p where p.tenant_id = m.tenant_id), 0) <> i.policy_version
                   as wait,
                 case when k.opted_out_at is not null then 'contact_opted_out'
                      when k.do_not_contact then 'contact_do_not_contact'
                      when a.do_not_contact then 'account_do_not_contact'
                      when ch.id is null then 'channel_missing'
                      when not ch.enabled then 'channel_disabled' end as code,
                 case when k.opted_out_at is not null then 'the contact opted out on ' || to_char(k.opted_out_at at time zone 'UTC', 'YYYY-MM-DD')
                      when k.do_not_contact then 'the contact is marked do-not-contact'
                      when a.do_not_contact then 'the account is marked do-not-contact'
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

    private async Task<List<OutboxMessage>> ClaimCheckedAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid[] ids,
        DateTimeOffset?[] holdUntil, string?[] holdReasons, int[] versions, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(ClaimCheckedSql, connection, transaction);
        command.Parameters.Add(new() { Value = ids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = holdUntil, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new() { Value = holdReasons, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = versions, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
        command.Parameters.Add(new() { Value = _options.WorkerId });
        command.Parameters.Add(new() { Value = _options.VisibilityTimeout, NpgsqlDbType = NpgsqlDbType.Interval });
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

    private async Task RecordAsync(OutboxMessage message, DeliveryResult result, CancellationToken cancellationToken)
    {
        var (status, outcome, delay) = result switch
        {
            { Sent: true } => ("sent", "sent", (TimeSpan?)null),
            { Permanent: true } => ("failed", "permanent_error", null),
            _ when message.Attempt >= message.MaxAttempts => ("failed", "transient_error", null),
            _ => ("pending", "transient_error", NextDelay(message.Attempt)),
        };

        // One round trip: the three statements go as one batch, which PostgreSQL runs as one implicit transaction (all or
        // nothing), so a result is recorded whole or not at all.
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var batch = new NpgsqlBatch(connection);

        // The attempt number fences the update: if our claim lapsed and another dispatcher took the message, its
        // attempts moved on and this changes nothing; the attempt row below still records what we did.
        var update = EngagementStore.RecordSendCommand(message.Id, _options.WorkerId, message.Attempt, status, result.ProviderMessageId, result.Error, delay);
        batch.BatchCommands.Add(update);

        if (status == "sent" && TouchOf(message) is { } touch)
        {
            batch.BatchCommands.Add(touch);
        }

        var attempt = EngagementStore.AttemptCommand(message.TenantId, message.Id, message.Attempt, outcome, result.Error, result.ResponseCode, _options.WorkerId);
        batch.BatchCommands.Add(attempt);

        await batch.ExecuteNonQueryAsync(cancellationToken);
        if (update.RecordsAffected == 0)
        {
            LogClaimLost(_logger, message.Id, message.Attempt);
        }

        LogAttempt(_logger, message.Id, message.Attempt, outcome, status, result.Error);
    }

    // A message that went out is the agent's touch of its target: the clock moves (and a 'touch' event is logged) in the
    // transaction that marks it sent, so a message that never goes out is never counted. The statement runs after the
    // update in the same batch and acts only if that update marked the message sent under this attempt (a lapsed claim
    // records nothing). A target deleted meanwhile, or a message not about a contact or account, records nothing.
    private NpgsqlBatchCommand? TouchOf(OutboxMessage message)
    {
        static string? Text(JsonNode? node) => node is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;
        var targetType = Text(message.Payload["target_type"]);
        if (targetType is not ("contact" or "account") || !Guid.TryParse(Text(message.Payload["target_id"]), out var targetId))
        {
            return null;
        }

        return EngagementStore.SentTouchCommand(message.TenantId, targetType, targetId, message.Channel, message.Id, _options.WorkerId, message.Attempt);
    }

    // A message whose final attempt's claim lapsed (its dispatcher died mid-send) gets no further attempt: it fails,
    // with the lapse recorded, rather than staying 'sending' forever. Not while its tenant is paused: a paused tenant's
    // messages are neither sent nor failed.
    private async Task FailLapsedLastAttemptsAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
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

    private TimeSpan NextDelay(int failedAttempt)
    {
        // Random is not thread-safe; one dispatcher may be shared by callers.
        lock (_random)
        {
            return OutboxBackoff.Delay(failedAttempt, _options.BaseDelay, _options.MaxDelay, _random);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Outbox message {MessageId} attempt {Attempt}: {Outcome}, now {Status} {Error}")]
    private static partial void LogAttempt(ILogger logger, Guid messageId, int attempt, string outcome, string status, string? error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox message {MessageId} attempt {Attempt}: our claim lapsed and was taken over; recorded the attempt only")]
    private static partial void LogClaimLost(ILogger logger, Guid messageId, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox dispatch pass failed; retrying after the poll interval")]
    private static partial void LogPassFailed(ILogger logger, Exception exception);
}
