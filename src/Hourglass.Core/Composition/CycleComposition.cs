using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Inbound.Mailbox;
using Hourglass.Engagement.Outbox;
using Hourglass.Engagement.Unsubscribe;
using Hourglass.Insights;
using Hourglass.Orders;
using Hourglass.Policies;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Hourglass.Composition;

/// <summary>
/// The parts, handlers and enforcer a production cycle runs with. Adding a kind of action means adding its
/// proposer and handler here, not editing the engine. Composition sits above every part and Cycles (it is the one
/// place that names them all), so Cycles itself imports no part.
/// </summary>
internal static class CycleComposition
{
    public static CycleEngine CreateEngine(
        NpgsqlDataSource dataSource, TimeProvider time, ISummaryWriter? summaries = null, ILoggerFactory? loggers = null)
    {
        loggers ??= NullLoggerFactory.Instance;
        ICyclePart[] parts = [new InsightsPart(), new ApprovalPart(), new EngagementCompliancePart(), new TouchTaskPart(), new OrderPart()];
        IActionHandler[] handlers = [new TouchTaskHandler(), new MessageHandler()];
        return new CycleEngine(dataSource, parts, handlers, time, new DocumentPolicyEnforcer(dataSource), summaries, loggers.CreateLogger<CycleEngine>());
    }

    /// <summary>A worker that runs the production engine, both on <paramref name="dataSource"/> and <paramref name="time"/>.</summary>
    public static CycleWorker CreateWorker(
        NpgsqlDataSource dataSource, TimeProvider time, CycleWorkerOptions? options = null, ISummaryWriter? summaries = null, ILoggerFactory? loggers = null)
    {
        loggers ??= NullLoggerFactory.Instance;
        return new CycleWorker(dataSource, time, CreateEngine(dataSource, time, summaries, loggers), options, loggers.CreateLogger<CycleWorker>());
    }

    /// <summary>
    /// The dispatcher that delivers the message outbox (webhooks and email), next to a worker; with
    /// <paramref name="unsubscribe"/>, emails to contacts carry one-click unsubscribe links (docs/unsubscribe.md).
    /// </summary>
    public static Func<CancellationToken, Task> CreateDispatcherLoop(NpgsqlDataSource dataSource, string workerId, TimeProvider time, ILoggerFactory? loggers = null,
        UnsubscribeTokens? unsubscribe = null)
    {
        loggers ??= NullLoggerFactory.Instance;
        var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) });
        var options = new OutboxDispatcherOptions { WorkerId = workerId + ":outbox" };
        var dispatcher = new OutboxDispatcher(dataSource, OutboxDispatcher.DefaultTransports(http, options, time, unsubscribe), time, options,
            logger: loggers.CreateLogger<OutboxDispatcher>());
        return async cancellationToken =>
        {
            using (http)
            {
                await dispatcher.RunAsync(cancellationToken);
            }
        };
    }

    /// <summary>The environment variable that sets how often a worker polls the tenants' mailboxes, in seconds (default 60).</summary>
    public const string MailboxPollVariable = "HOURGLASS_MAILBOX_POLL_SECONDS";

    /// <summary>
    /// The mailbox reader that records replies and bounce reports from tenants' IMAP mailboxes (docs/inbound.md); replies
    /// are labelled by <paramref name="classifier"/> (the rules alone when null).
    /// </summary>
    public static MailboxReader CreateMailboxReader(NpgsqlDataSource dataSource, TimeProvider time, MailboxReaderOptions? options = null, ILoggerFactory? loggers = null,
        ReplyClassifier? classifier = null)
    {
        loggers ??= NullLoggerFactory.Instance;
        return new MailboxReader(dataSource, new InboundRecorder(dataSource, classifier ?? new ReplyClassifier()), time, options,
            logger: loggers.CreateLogger<MailboxReader>());
    }

    /// <summary>
    /// The loop that polls every tenant's mailbox next to a worker, every <paramref name="pollInterval"/> (one poller per
    /// mailbox at a time across workers: docs/inbound.md).
    /// </summary>
    public static Func<CancellationToken, Task> CreateMailboxLoop(NpgsqlDataSource dataSource, TimeProvider time, TimeSpan pollInterval, ILoggerFactory? loggers = null,
        ReplyClassifier? classifier = null)
    {
        var reader = CreateMailboxReader(dataSource, time, new MailboxReaderOptions { PollInterval = pollInterval }, loggers, classifier);
        return reader.RunAsync;
    }

    /// <summary>The mailbox poll interval from <see cref="MailboxPollVariable"/>, or 60 seconds; a bad value is refused, naming it.</summary>
    public static TimeSpan MailboxPollInterval(string? text) => text switch
    {
        null or "" => TimeSpan.FromSeconds(60),
        _ when int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            => TimeSpan.FromSeconds(seconds),
        _ => throw new HourglassException($"{MailboxPollVariable}: '{text}' is not a positive whole number of seconds (the default is 60)"),
    };
}
