using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement.Outbox;

/// <summary>How a dispatcher claims, sends and retries.</summary>
public sealed record OutboxDispatcherOptions
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
/// share the table), marking them 'sending' until a visibility timeout before any network call; sends each through
/// its channel's transport; and records the attempt and the outcome: 'sent', back to 'pending' after a backoff, or
/// 'failed'. The attempt number is the claim's fencing token: a dispatcher whose claim lapsed and was taken over
/// records its attempt but cannot change the message. A dispatcher that dies after sending and before recording
/// leaves the message 'sending'; once the claim lapses it is sent again with the same id (at least once; see docs/outbox.md).
/// Due and expired are judged by the database's clock (<c>hourglass.now()</c>), the one all dispatchers share.
/// </summary>
internal sealed partial class OutboxDispatcher
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly IReadOnlyDictionary<string, IMessageTransport> _transports;
    private readonly Func<string, string?> _secrets;
    private readonly OutboxDispatcherOptions _options;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly ILogger _logger;

    // secrets resolves a channel's secret_ref (default: the worker's environment variable of that name); random is
    // the backoff's jitter, seeded to make a schedule reproducible.
    public OutboxDispatcher(NpgsqlDataSource dataSource, IEnumerable<IMessageTransport> transports, OutboxDispatcherOptions? options = null,
        Func<string, string?>? secrets = null, TimeProvider? time = null, Random? random = null, ILogger? logger = null)
    {
        _dataSource = dataSource;
        _transports = transports.ToDictionary(t => t.Channel, StringComparer.Ordinal);
        _options = options ?? new OutboxDispatcherOptions();
        _secrets = secrets ?? Environment.GetEnvironmentVariable;
        _time = time ?? TimeProvider.System;
        _random = random ?? new Random();
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The production transports: signed webhooks over <paramref name="http"/> and SMTP through MailKit.</summary>
    public static IMessageTransport[] DefaultTransports(HttpClient http, OutboxDispatcherOptions options, TimeProvider? time = null) =>
        [new WebhookTransport(http, time ?? TimeProvider.System, options.SendTimeout), new SmtpTransport(options.SendTimeout)];

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

    /// <summary>One pass: fails messages whose last attempt's claim lapsed, then claims and sends one batch. Returns how many it claimed.</summary>
    public async Task<int> DispatchOnceAsync(CancellationToken cancellationToken)
    {
        await FailLapsedLastAttemptsAsync(cancellationToken);
        var batch = await ClaimAsync(cancellationToken);
        await Parallel.ForEachAsync(batch, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, _options.MaxParallelSends), CancellationToken = cancellationToken },
            async (message, token) => await DeliverAsync(message, token));

        return batch.Count;
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

    private async Task<List<OutboxMessage>> ClaimAsync(CancellationToken cancellationToken)
    {
        // One statement: pick due rows nobody holds (SKIP LOCKED: a row another dispatcher is claiming is skipped,
        // not waited for), mark them ours until the visibility timeout, and log a 'claim_expired' attempt for each
        // that was 'sending' — its dispatcher stopped between sending and recording, so it may have gone out.
        await using var command = _dataSource.CreateCommand("""
            with due as (
              select m.id, m.status as previous_status, m.claimed_by as previous_holder
              from public.message_outbox m
              where m.status in ('pending', 'sending') and m.next_attempt_at <= hourglass.now() and m.attempts < m.max_attempts
              order by m.next_attempt_at
              limit $1
              for update skip locked
            ), claimed as (
              update public.message_outbox m
              set status = 'sending', attempts = m.attempts + 1, claimed_by = $2, claimed_until = hourglass.now() + $3,
                  next_attempt_at = hourglass.now() + $3, updated_at = hourglass.now()
              from due
              where m.id = due.id
              returning m.id, m.tenant_id, m.idempotency_key, m.channel, m.destination, m.subject, m.body, m.payload, m.attempts,
                        m.max_attempts, m.created_at, due.previous_status, due.previous_holder
            ), lapsed as (
              insert into public.message_outbox_attempts (tenant_id, message_id, attempt, attempted_at, outcome, error, worker_id)
              select c.tenant_id, c.id, c.attempts - 1, hourglass.now(), 'claim_expired',
                     'the claim lapsed before a result was recorded: the message may have been sent', c.previous_holder
              from claimed c where c.previous_status = 'sending'
            )
            select c.id, c.tenant_id, c.idempotency_key, c.channel, c.destination, c.subject, c.body, c.payload::text, c.attempts,
                   c.max_attempts, c.created_at,
                   k.channel, k.enabled, k.webhook_url, k.smtp_host, k.smtp_port, k.smtp_security, k.smtp_username, k.smtp_from, k.secret_ref,
                   k.smtp_tls_pin_sha256
            from claimed c
            left join public.message_channels k on k.tenant_id = c.tenant_id and k.channel = c.channel
            """);
        command.Parameters.Add(new() { Value = _options.BatchSize });
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
        update.Parameters.Add(new() { Value = message.Id });
        update.Parameters.Add(new() { Value = _options.WorkerId });
        update.Parameters.Add(new() { Value = message.Attempt });
        update.Parameters.Add(new() { Value = status });
        update.Parameters.Add(new() { Value = (object?)result.ProviderMessageId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        update.Parameters.Add(new() { Value = (object?)result.Error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        update.Parameters.Add(new() { Value = (object?)delay ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Interval });
        batch.BatchCommands.Add(update);

        if (status == "sent" && TouchOf(message) is { } touch)
        {
            batch.BatchCommands.Add(touch);
        }

        var attempt = new NpgsqlBatchCommand("""
            insert into public.message_outbox_attempts (tenant_id, message_id, attempt, attempted_at, outcome, error, response_code, worker_id)
            values ($1, $2, $3, hourglass.now(), $4, $5, $6, $7)
            """);
        attempt.Parameters.Add(new() { Value = message.TenantId });
        attempt.Parameters.Add(new() { Value = message.Id });
        attempt.Parameters.Add(new() { Value = message.Attempt });
        attempt.Parameters.Add(new() { Value = outcome });
        attempt.Parameters.Add(new() { Value = (object?)result.Error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        attempt.Parameters.Add(new() { Value = (object?)result.ResponseCode ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        attempt.Parameters.Add(new() { Value = _options.WorkerId });
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

        var touch = new NpgsqlBatchCommand("""
            select public.update_engagement_clock($1, $2, $3, $4, 'agent')
            where exists (select 1 from public.message_outbox m
                          where m.id = $5 and m.status = 'sent' and m.claimed_by = $6 and m.attempts = $7)
              and (exists (select 1 from public.contacts k where $2 = 'contact' and k.tenant_id = $1 and k.id = $3)
                   or exists (select 1 from public.accounts a where $2 = 'account' and a.tenant_id = $1 and a.id = $3))
            """);
        touch.Parameters.Add(new() { Value = message.TenantId });
        touch.Parameters.Add(new() { Value = targetType });
        touch.Parameters.Add(new() { Value = targetId });
        touch.Parameters.Add(new() { Value = message.Channel });
        touch.Parameters.Add(new() { Value = message.Id });
        touch.Parameters.Add(new() { Value = _options.WorkerId });
        touch.Parameters.Add(new() { Value = message.Attempt });
        return touch;
    }

    // A message whose final attempt's claim lapsed (its dispatcher died mid-send) gets no further attempt: it fails,
    // with the lapse recorded, rather than staying 'sending' forever.
    private async Task FailLapsedLastAttemptsAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
            with exhausted as (
              update public.message_outbox m
              set status = 'failed', claimed_until = null, updated_at = hourglass.now(),
                  last_error = 'the last attempt''s claim lapsed before a result was recorded: the message may have been sent'
              where m.status = 'sending' and m.next_attempt_at <= hourglass.now() and m.attempts >= m.max_attempts
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
