using System.Text.Json.Nodes;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Inbound.Providers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Hourglass.Server.Api;

/// <summary>
/// The public inbound webhook (docs/inbound.md): <c>POST /inbound/{tenantId}/{source}</c>, no login — the signature,
/// checked with the secret the tenant's enabled <c>inbound_sources</c> row names, is the credential. The body is read
/// by the source's parser into <see cref="DeliveryEvent"/>s and each is recorded once by <see cref="InboundRecorder"/>;
/// the answer lists every event's outcome (recorded, duplicate, skipped and why). Refusals are 4xx problems that write
/// nothing: 404 no such source for that tenant (an unknown tenant answers the same), 403 the server cannot check the
/// signature (its secret is missing or unusable), 401 unsigned, wrongly signed or stale, 400 a body refused whole,
/// 413 a body over the limit.
/// </summary>
internal static partial class InboundEndpoints
{
    /// <summary>The largest body read (a SendGrid batch is far smaller).</summary>
    public const int MaxBodyBytes = 4 * 1024 * 1024;

    private const string ProblemType = "https://hourglass.dev/problems/inbound";

    /// <summary>Maps the endpoint; <paramref name="classifier"/> labels replies before they are recorded (none: unlabelled).</summary>
    public static void Map(WebApplication app, NpgsqlDataSource dataSource, TimeProvider time, ILoggerFactory loggers, ReplyClassifier? classifier = null)
    {
        var logger = loggers.CreateLogger("Hourglass.Inbound");
        var recorder = new InboundRecorder(dataSource, classifier);
        app.MapPost("/inbound/{tenantId}/{source}", async (string tenantId, string source, HttpContext http) =>
            await ReceiveAsync(tenantId, source, http, dataSource, recorder, classifier, time, logger)).ExcludeFromDescription().DisableAntiforgery()
            .RequireRateLimiting(ApiRateLimits.PublicPolicyName);
    }

    private static async Task<IResult> ReceiveAsync(string tenantText, string sourceText, HttpContext http, NpgsqlDataSource dataSource,
        InboundRecorder recorder, ReplyClassifier? classifier, TimeProvider time, ILogger logger)
    {
        var cancellationToken = http.RequestAborted;
        var provider = InboundProviders.Find(sourceText);
        if (provider is null)
        {
            return Problem(StatusCodes.Status404NotFound, "Unknown source",
                $"'{Clip(sourceText)}' is not a webhook source; one of {string.Join(", ", InboundProviders.All.Select(p => p.Source))} " +
                "(an imap source is read from its mailbox, not posted to)");
        }

        // An unknown tenant, a tenant without this source and a disabled source answer alike: the URL reveals no more than
        // that nothing here takes these events.
        var notConfigured = Problem(StatusCodes.Status404NotFound, "Source not configured",
            $"no enabled {provider.Source} source is set up at this address ('hourglass inbound set' configures one)");
        if (!Guid.TryParse(tenantText, out var tenantId))
        {
            return notConfigured;
        }

        var row = await InboundStore.WebhookSourceAsync(dataSource, tenantId, provider.Source, cancellationToken);
        if (row is not { Enabled: true, SecretRef: { } secretRef })
        {
            return notConfigured;
        }

        var secret = Environment.GetEnvironmentVariable(secretRef);
        if (string.IsNullOrWhiteSpace(secret))
        {
            LogSecretMissing(logger, tenantId, provider.Source, secretRef);
            return Problem(StatusCodes.Status403Forbidden, "Source not ready",
                "the server cannot check this source's signatures: the environment variable its secret_ref names is not set on the server " +
                "('hourglass inbound list' names it); events are refused until it is");
        }

        var body = await ReadBodyAsync(http.Request, cancellationToken);
        if (body is null)
        {
            return Problem(StatusCodes.Status413PayloadTooLarge, "Body too large", $"the body is over {MaxBodyBytes / (1024 * 1024)} MiB; send smaller batches");
        }

        string? Header(string name) => http.Request.Headers.TryGetValue(name, out var values) && values.Count == 1 ? values[0] : null;
        var check = provider.Verify(secret, Header, body, time.GetUtcNow());
        switch (check.Status)
        {
            case SignatureStatus.KeyUnusable:
                LogKeyUnusable(logger, tenantId, provider.Source, secretRef, check.Reason!);
                return Problem(StatusCodes.Status403Forbidden, "Source not ready",
                    $"the server cannot check this source's signatures: {check.Reason} (fix the value of the variable its secret_ref names)");
            case SignatureStatus.Refused:
                return Problem(StatusCodes.Status401Unauthorized, "Signature refused", check.Reason!);
        }

        IReadOnlyList<InboundItem> items;
        try
        {
            items = provider.Parse(Header, body);
        }
        catch (InboundPayloadException ex)
        {
            return Problem(StatusCodes.Status400BadRequest, "Events refused", $"{ex.Message}; nothing was recorded");
        }

        IReadOnlyList<(InboundItem Item, InboundOutcome Outcome)> outcomes;
        if (provider.AllOrNothing)
        {
            var (recorded, refusal) = await RecordAllAsync(dataSource, classifier, tenantId, items, logger, cancellationToken);
            if (refusal is not null)
            {
                return Problem(StatusCodes.Status400BadRequest, "Events refused", $"{refusal}; nothing was recorded");
            }

            outcomes = recorded!;
        }
        else
        {
            var recorded = new List<(InboundItem, InboundOutcome)>();
            foreach (var item in items)
            {
                recorded.Add((item, item.Event is { } delivery
                    ? await RecordOneAsync(recorder, tenantId, delivery, item, logger, cancellationToken)
                    : new InboundOutcome(InboundOutcome.Skipped, "skipped", null, item.SkipReason)));
            }

            outcomes = recorded;
        }

        return Results.Json(new JsonObject
        {
            ["source"] = provider.Source,
            ["recorded"] = outcomes.Count(o => o.Outcome.Status == InboundOutcome.Recorded),
            ["duplicates"] = outcomes.Count(o => o.Outcome.Status == InboundOutcome.Duplicate),
            ["skipped"] = outcomes.Count(o => o.Outcome.Status == InboundOutcome.Skipped),
            ["events"] = new JsonArray([.. outcomes.Select(o => (JsonNode)new JsonObject
            {
                ["index"] = o.Item.Index,
                ["id"] = o.Item.EventId ?? o.Item.Event?.SourceEventId,
                ["source_type"] = o.Item.SourceType,
                ["type"] = o.Item.Event?.Type,
                ["status"] = o.Outcome.Status,
                ["effect"] = o.Outcome.Effect,
                ["message_id"] = o.Outcome.MessageId?.ToString("D"),
                ["reason"] = o.Outcome.Reason,
            })]),
        });
    }

    // Hourglass's own format: every event in one transaction, so a batch is recorded whole or not at all; the first event
    // the recorder or the database refuses names the batch's refusal. Replies are classified before the transaction.
    private static async Task<(List<(InboundItem, InboundOutcome)>? Outcomes, string? Refusal)> RecordAllAsync(NpgsqlDataSource dataSource,
        ReplyClassifier? classifier, Guid tenantId, IReadOnlyList<InboundItem> items, ILogger logger, CancellationToken cancellationToken)
    {
        var events = new List<(InboundItem Item, DeliveryEvent Event)>();
        foreach (var item in items)
        {
            var delivery = item.Event!;
            if (delivery is { Reply: { Label: null } unread } && classifier is not null)
            {
                delivery = delivery with { Reply = await classifier.ClassifyAsync(unread, delivery.OccurredAt, cancellationToken) };
            }

            events.Add((item, delivery));
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var outcomes = new List<(InboundItem, InboundOutcome)>();
        foreach (var (item, delivery) in events)
        {
            try
            {
                outcomes.Add((item, await InboundRecorder.RecordAsync(connection, transaction, tenantId, delivery, cancellationToken)));
            }
            catch (InvalidDeliveryEventException ex)
            {
                await transaction.RollbackAsync(cancellationToken);
                return (null, $"events[{item.Index}].{ex.Message}");
            }
            catch (PostgresException ex) when (IsBadInput(ex))
            {
                LogEventRefused(logger, tenantId, delivery.Source, item.Index, ex.SqlState, ex.MessageText);
                await transaction.RollbackAsync(cancellationToken);
                return (null, $"events[{item.Index}]: refused by the database ({ex.SqlState}: {ex.MessageText})");
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return (outcomes, null);
    }

    // A provider's event: recorded in a transaction of its own (the recorder's), so a provider's retry of the batch finds
    // those already recorded and writes nothing for them, and one the recorder or the database refuses is skipped alone.
    private static async Task<InboundOutcome> RecordOneAsync(InboundRecorder recorder, Guid tenantId, DeliveryEvent delivery, InboundItem item, ILogger logger,
        CancellationToken cancellationToken)
    {
        try
        {
            return await recorder.RecordAsync(tenantId, delivery, cancellationToken);
        }
        catch (InvalidDeliveryEventException ex)
        {
            return new InboundOutcome(InboundOutcome.Skipped, "skipped", null, ex.Message);
        }
        catch (PostgresException ex) when (IsBadInput(ex))
        {
            LogEventRefused(logger, tenantId, delivery.Source, item.Index, ex.SqlState, ex.MessageText);
            return new InboundOutcome(InboundOutcome.Skipped, "skipped", null, $"refused by the database ({ex.SqlState}: {ex.MessageText})");
        }
    }

    // Class 22 (data exception) or 23 (integrity constraint violation): a value the database refuses is bad input, answered
    // as such, never a 500 (https://www.postgresql.org/docs/current/errcodes-appendix.html).
    private static bool IsBadInput(PostgresException ex) =>
        ex.SqlState.StartsWith("22", StringComparison.Ordinal) || ex.SqlState.StartsWith("23", StringComparison.Ordinal);

    // Up to the limit; null when the body is longer.
    private static async Task<byte[]?> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxBodyBytes)
        {
            return null;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > MaxBodyBytes)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    private static string Clip(string text) => text.Length <= 40 ? text : text[..40] + "…";

    private static IResult Problem(int status, string title, string detail) =>
        Results.Problem(title: title, detail: detail, statusCode: status, type: ProblemType);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Inbound {Source} events for tenant {TenantId} refused: the environment variable {SecretRef} (its secret_ref) is not set")]
    private static partial void LogSecretMissing(ILogger logger, Guid tenantId, string source, string secretRef);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Inbound {Source} events for tenant {TenantId} refused: the value of {SecretRef} cannot be used: {Reason}")]
    private static partial void LogKeyUnusable(ILogger logger, Guid tenantId, string source, string secretRef, string reason);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Inbound {Source} event {Index} for tenant {TenantId} refused by the database ({SqlState}): {Detail}")]
    private static partial void LogEventRefused(ILogger logger, Guid tenantId, string source, int index, string sqlState, string detail);
}
