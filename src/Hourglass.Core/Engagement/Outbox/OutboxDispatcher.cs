using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Engagement.Unsubscribe;
using Hourglass.Policies;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

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

    /// <summary>The production transports: signed webhooks over <paramref name="http"/> and SMTP through MailKit.
    /// With <paramref name="unsubscribe"/>, emails to contacts carry one-click unsubscribe links.</summary>
    public static IMessageTransport[] DefaultTransports(HttpClient http, OutboxDispatcherOptions options, TimeProvider time, UnsubscribeTokens? unsubscribe = null) =>
        [new WebhookTransport(http, time, options.SendTimeout), new SmtpTransport(options.SendTimeout, unsubscribe)];

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

        var claimed = await EngagementStore.ClaimCheckedMessagesAsync(connection, transaction, ids, holdUntil, holdReasons, versions, _options.WorkerId,
            _options.VisibilityTimeout, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return (claimed, due.Count);
    }

    private sealed record DueMessage(Guid Id, Guid TenantId, TimeZoneInfo Zone, string ZoneSource, TimeZoneInfo TenantZone, int PolicyVersion, DateTimeOffset Now);

    private async Task<List<DueMessage>> LockDueAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        var due = new List<DueMessage>();
        foreach (var row in await EngagementStore.LockDueMessagesAsync(connection, transaction, _options.BatchSize, cancellationToken))
        {
            // The recipient's zone as the policy evaluator takes it: the contact's, else its account's, else the tenant's.
            var tenantZone = Zone(row.TenantZone) ?? TimeZoneInfo.Utc;
            var (zone, source) = Zone(row.ContactZone) is { } contact ? (contact, "contact")
                : Zone(row.AccountZone) is { } account ? (account, "account")
                : (tenantZone, "tenant");
            due.Add(new DueMessage(row.Id, row.TenantId, zone, source, tenantZone, row.PolicyVersion, row.Now));
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
    private Task FailLapsedLastAttemptsAsync(CancellationToken cancellationToken) =>
        EngagementStore.FailLapsedLastAttemptsAsync(_dataSource, cancellationToken);

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
