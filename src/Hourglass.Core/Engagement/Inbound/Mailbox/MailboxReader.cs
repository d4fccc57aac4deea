using System.Globalization;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Search;
using MailKit.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MimeKit;
using Npgsql;

namespace Hourglass.Engagement.Inbound.Mailbox;

/// <summary>How the mailbox reader connects and how much one poll reads.</summary>
internal sealed record MailboxReaderOptions
{
    /// <summary>The wait between polls of every mailbox in a worker (HOURGLASS_MAILBOX_POLL_SECONDS; docs/inbound.md).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Network deadline for each IMAP command.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>At most this many messages a poll; the rest wait for the next one (the position is kept).</summary>
    public int MaxMessagesPerPoll { get; init; } = 200;
}

/// <summary>
/// What one poll of a mailbox did. <c>Status</c>: polled (read to the end, or to <see cref="MailboxReaderOptions.MaxMessagesPerPoll"/>),
/// busy (another worker is polling it), failed (<c>Error</c> says why; also in <c>inbound_sources.last_error</c>).
/// </summary>
internal sealed record MailboxPollResult(Guid SourceId, Guid TenantId, string Status, int Recorded, int Duplicates, int Skipped, string? Error)
{
    public const string Polled = "polled";
    public const string Busy = "busy";
    public const string Failed = "failed";
}

/// <summary>
/// Reads replies and bounce notifications from tenants' shared mailboxes over IMAP (MailKit; docs/inbound.md, "Replies
/// from a mailbox (IMAP)"). A poll takes the mailbox's advisory lock (one poller at a time across workers), logs in,
/// opens the folder read-only (nothing on the server changes: no \Seen flag, no move), and reads the messages above the
/// last UID recorded, in UID order. Each becomes one <see cref="DeliveryEvent"/> (<see cref="MailboxMessages"/>), recorded
/// through the recorder; the position moves past a message only once it is recorded, so a crash in between reads it again,
/// which records nothing twice (the recorder is idempotent on the message's Message-ID). A mailbox that refuses the login
/// or cannot be reached gets <c>last_error</c> and nothing else; the next poll tries again, and other mailboxes go on.
/// </summary>
internal sealed partial class MailboxReader
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly Func<Guid, DeliveryEvent, CancellationToken, Task<InboundOutcome>> _record;
    private readonly TimeProvider _time;
    private readonly MailboxReaderOptions _options;
    private readonly Func<string, string?> _secrets;
    private readonly ILogger _logger;

    /// <summary>A reader recording through <paramref name="recorder"/>.</summary>
    public MailboxReader(NpgsqlDataSource dataSource, InboundRecorder recorder, TimeProvider time, MailboxReaderOptions? options = null,
        Func<string, string?>? secrets = null, ILogger? logger = null)
        : this(dataSource, recorder.RecordAsync, time, options, secrets, logger)
    {
    }

    // record is the recorder's RecordAsync (a seam for tests of the reader alone); secrets resolves a mailbox's secret_ref
    // (default: the worker's environment variable of that name).
    public MailboxReader(NpgsqlDataSource dataSource, Func<Guid, DeliveryEvent, CancellationToken, Task<InboundOutcome>> record, TimeProvider time,
        MailboxReaderOptions? options = null, Func<string, string?>? secrets = null, ILogger? logger = null)
    {
        _dataSource = dataSource;
        _record = record;
        _time = time;
        _options = options ?? new MailboxReaderOptions();
        _secrets = secrets ?? Environment.GetEnvironmentVariable;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Polls every enabled mailbox until cancelled, waiting <see cref="MailboxReaderOptions.PollInterval"/> between rounds.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await PollAllAsync(null, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The database is unreachable, say: each mailbox's own failures never get here.
                LogRoundFailed(_logger, ex);
            }

            await Task.Delay(_options.PollInterval, _time, cancellationToken);
        }
    }

    /// <summary>Polls each enabled mailbox of one tenant (or of all) once, one after another.</summary>
    public async Task<IReadOnlyList<MailboxPollResult>> PollAllAsync(Guid? tenantId, CancellationToken cancellationToken)
    {
        var results = new List<MailboxPollResult>();
        foreach (var source in await MailboxStore.EnabledAsync(_dataSource, tenantId, cancellationToken))
        {
            results.Add(await PollAsync(source, cancellationToken));
        }

        return results;
    }

    /// <summary>Polls one mailbox once.</summary>
    public async Task<MailboxPollResult> PollAsync(MailboxSource source, CancellationToken cancellationToken)
    {
        // The lock's session: held for the poll, released at the end (or by PostgreSQL if this process dies).
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        if (!await MailboxStore.TryLockAsync(connection, source.Id, cancellationToken))
        {
            return new MailboxPollResult(source.Id, source.TenantId, MailboxPollResult.Busy, 0, 0, 0, null);
        }

        try
        {
            // Read again under the lock: the position another worker saved a moment ago is the one to go on from.
            source = await MailboxStore.FindAsync(_dataSource, source.Id, cancellationToken) ?? source;
            var poll = new Poll(source);
            string? error;
            try
            {
                error = await ReadAsync(connection, poll, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                poll.Failed = true;
                error = Describe(source, ex);
            }

            await MailboxStore.SavePollAsync(connection, source.Id, error, CancellationToken.None);
            LogPolled(_logger, source.TenantId, source.Username, source.Host, poll.Recorded, poll.Duplicates, poll.Skipped, error);
            var status = poll.Failed ? MailboxPollResult.Failed : MailboxPollResult.Polled;
            return new MailboxPollResult(source.Id, source.TenantId, status, poll.Recorded, poll.Duplicates, poll.Skipped, error);
        }
        finally
        {
            await MailboxStore.UnlockAsync(connection, source.Id, CancellationToken.None);
        }
    }

    // Returns what last_error should say: null when all went well.
    private async Task<string?> ReadAsync(NpgsqlConnection connection, Poll poll, CancellationToken cancellationToken)
    {
        var source = poll.Source;
        if (_secrets(source.SecretRef) is not { Length: > 0 } password)
        {
            poll.Failed = true;
            return $"the environment variable {source.SecretRef} (secret_ref) that holds the mailbox password is not set on this worker";
        }

        using var client = new ImapClient { Timeout = (int)_options.Timeout.TotalMilliseconds };
        await client.ConnectAsync(source.Host, source.Port, Security(source.Security), cancellationToken);
        try
        {
            await client.AuthenticateAsync(source.Username, password, cancellationToken);
        }
        catch (AuthenticationException ex)
        {
            poll.Failed = true;
            return $"login refused by {source.Host}:{source.Port} for {source.Username} ({ex.Message.TrimEnd('.')}); " +
                   $"check the user name and the password in {source.SecretRef}";
        }

        // INBOX names the inbox in any case (RFC 9051 §5.1).
        var folder = source.Mailbox.Equals("INBOX", StringComparison.OrdinalIgnoreCase)
            ? client.Inbox
            : await client.GetFolderAsync(source.Mailbox, cancellationToken);
        await folder.OpenAsync(FolderAccess.ReadOnly, cancellationToken);
        var uidValidity = (long)folder.UidValidity;
        string? note = null;
        var lastUid = source.LastUid ?? 0;
        if (source.UidValidity is { } known && known != uidValidity)
        {
            // RFC 9051 §2.3.1.1: a new UIDVALIDITY means the old UIDs name nothing any more (the mailbox was recreated or
            // rebuilt). Read it again from the start: a message already recorded is found by its Message-ID and records
            // nothing, so re-reading loses nothing and doubles nothing.
            note = $"UIDVALIDITY changed from {known} to {uidValidity} (the mailbox was recreated or rebuilt): read again from the start; " +
                   "messages already recorded were not recorded twice";
            lastUid = 0;
            await MailboxStore.SavePositionAsync(connection, source.Id, uidValidity, 0, cancellationToken);
        }

        // "UID n:*" always includes the highest UID even when it is below n (RFC 9051 §6.4.8), hence the filter.
        var uids = (await folder.SearchAsync(SearchQuery.Uids(new UniqueIdRange(new UniqueId((uint)Math.Min(lastUid + 1, uint.MaxValue)), UniqueId.MaxValue)),
                cancellationToken))
            .Where(u => u.Id > lastUid)
            .OrderBy(u => u.Id)
            .Take(Math.Max(1, _options.MaxMessagesPerPoll))
            .ToList();
        var skips = new List<string>();
        if (uids.Count > 0)
        {
            var received = (await folder.FetchAsync(uids, MessageSummaryItems.UniqueId | MessageSummaryItems.InternalDate, cancellationToken))
                .ToDictionary(s => s.UniqueId.Id, s => s.InternalDate);
            foreach (var uid in uids)
            {
                var reading = await ReadMessageAsync(folder, uid, uidValidity, received.GetValueOrDefault(uid.Id), cancellationToken);
                InboundOutcome? outcome = null;
                if (reading.Event is { } delivery)
                {
                    try
                    {
                        outcome = await _record(source.TenantId, delivery, cancellationToken);
                    }
                    catch (InvalidDeliveryEventException ex)
                    {
                        // The recorder refuses it as given (an id too long, a time too far ahead): skipped like an unreadable one.
                        reading = MailboxReading.Skip($"refused by the recorder: {ex.Message}");
                    }
                }

                if (outcome is not null)
                {
                    switch (outcome.Status)
                    {
                        case InboundOutcome.Recorded:
                            poll.Recorded++;
                            break;
                        case InboundOutcome.Duplicate:
                            poll.Duplicates++;
                            break;
                        default:
                            // Recorded by the recorder with its reason (message_delivery_events.skipped_reason).
                            poll.Skipped++;
                            break;
                    }
                }
                else
                {
                    poll.Skipped++;
                    skips.Add(string.Create(CultureInfo.InvariantCulture, $"UID {uid.Id}: {reading.SkipReason}"));
                    LogSkipped(_logger, source.TenantId, source.Username, uid.Id, reading.SkipReason);
                }

                // Only now: a crash before this line reads the message again next time, which records nothing twice.
                await MailboxStore.SavePositionAsync(connection, source.Id, uidValidity, uid.Id, cancellationToken);
            }
        }
        else if (source.UidValidity != uidValidity)
        {
            await MailboxStore.SavePositionAsync(connection, source.Id, uidValidity, lastUid, cancellationToken);
        }

        await client.DisconnectAsync(true, cancellationToken);
        if (skips.Count > 0)
        {
            var unread = $"{skips.Count} message(s) could not be read and were skipped: {string.Join("; ", skips)}";
            note = note is null ? unread : $"{note}. {unread}";
        }

        return note is null ? null : Limit(note);
    }

    // A message MimeKit cannot parse is skipped with the reason, never stopping the mailbox.
    private async Task<MailboxReading> ReadMessageAsync(IMailFolder folder, UniqueId uid, long uidValidity, DateTimeOffset? receivedAt,
        CancellationToken cancellationToken)
    {
        MimeMessage message;
        try
        {
            message = await folder.GetMessageAsync(uid, cancellationToken);
        }
        catch (Exception ex) when (ex is ParseException or FormatException)
        {
            return MailboxReading.Skip($"not a readable email ({ex.Message.TrimEnd('.')})");
        }

        return MailboxMessages.Read(message, uidValidity, uid.Id, receivedAt, _time.GetUtcNow());
    }

    private static SecureSocketOptions Security(string setting) => setting switch
    {
        "starttls" => SecureSocketOptions.StartTls,
        "tls" => SecureSocketOptions.SslOnConnect,
        "none" => SecureSocketOptions.None,
        // MailKit's Auto: TLS on connect for 993, STARTTLS when the server offers it otherwise.
        _ => SecureSocketOptions.Auto,
    };

    private static string Describe(MailboxSource source, Exception ex) => Limit(ex switch
    {
        System.Net.Sockets.SocketException or IOException or TimeoutException =>
            $"could not reach {source.Host}:{source.Port}: {ex.Message.TrimEnd('.')}",
        FolderNotFoundException => $"the mailbox has no folder '{source.Mailbox}' (imap_mailbox)",
        NpgsqlException or PostgresException => $"the database failed while recording: {ex.Message.TrimEnd('.')}; the message is read again next poll",
        _ => $"{ex.GetType().Name}: {ex.Message.TrimEnd('.')}",
    });

    private static string Limit(string text) => text.Length <= 2000 ? text : text[..2000];

    /// <summary>One poll's counts, and whether it failed before reading.</summary>
    private sealed class Poll(MailboxSource source)
    {
        public MailboxSource Source { get; } = source;

        public int Recorded { get; set; }

        public int Duplicates { get; set; }

        public int Skipped { get; set; }

        public bool Failed { get; set; }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Mailbox of tenant {TenantId} ({Username}@{Host}): {Recorded} recorded, {Duplicates} seen before, {Skipped} skipped; {Error}")]
    private static partial void LogPolled(ILogger logger, Guid tenantId, string username, string host, int recorded, int duplicates, int skipped, string? error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Mailbox of tenant {TenantId} ({Username}): message UID {Uid} skipped: {Reason}")]
    private static partial void LogSkipped(ILogger logger, Guid tenantId, string username, uint uid, string? reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Mailbox polling round failed; retrying after the poll interval")]
    private static partial void LogRoundFailed(ILogger logger, Exception exception);
}
