using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Unsubscribe;
using Hourglass.Insights;
using Hourglass.Tenancy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Hourglass.Server.Api;

/// <summary>
/// The public one-click unsubscribe endpoint (RFC 8058; docs/unsubscribe.md), no login: the signed token in the path is
/// the authority. <c>GET /unsubscribe/{token}</c> only shows a confirmation page whose button POSTs — mail scanners
/// prefetch links, so a GET changes nothing. <c>POST /unsubscribe/{token}</c> with the body
/// <c>List-Unsubscribe=One-Click</c> records the contact's opt-out once (<see cref="TenancyStore.RecordOptOutAsync"/>);
/// a repeat answers 200 and changes nothing. A forged, altered or expired token is a 400 problem, a token for a contact
/// its tenant does not have a 404, and neither writes anything.
/// </summary>
internal static partial class UnsubscribeEndpoints
{
    /// <summary>The opt-out source recorded for a one-click unsubscribe (contacts.opted_out_source).</summary>
    public const string Source = "one_click_unsubscribe";

    private const string ProblemType = "https://hourglass.dev/problems/unsubscribe";

    /// <summary>
    /// The configured tokens, or null with a warning: email then goes out without unsubscribe headers and the endpoint
    /// is not served (docs/unsubscribe.md says why this rather than refusing to send).
    /// </summary>
    public static UnsubscribeTokens? FromEnvironment(TimeProvider time, ILoggerFactory loggers)
    {
        var tokens = UnsubscribeTokens.FromEnvironment(time);
        if (tokens is null)
        {
            LogNotConfigured(loggers.CreateLogger("Hourglass.Unsubscribe"), UnsubscribeTokens.SecretVariable, UnsubscribeTokens.PublicUrlVariable);
        }

        return tokens;
    }

    public static void Map(WebApplication app, NpgsqlDataSource dataSource, UnsubscribeTokens tokens)
    {
        app.MapGet("/unsubscribe/{token}", async (string token) =>
        {
            var (claims, error) = await tokens.ValidateAsync(token);
            if (claims is null)
            {
                return Refused(error!);
            }

            return Page("Unsubscribe", $"""
                <p>Stop receiving these emails?</p>
                <form method="post" action="/unsubscribe/{WebUtility.HtmlEncode(Uri.EscapeDataString(token))}">
                <input type="hidden" name="List-Unsubscribe" value="One-Click">
                <button type="submit">Unsubscribe</button>
                </form>
                """);
        }).ExcludeFromDescription().RequireRateLimiting(ApiRateLimits.PublicPolicyName);

        app.MapPost("/unsubscribe/{token}", async (string token, HttpContext http) =>
        {
            var (claims, error) = await tokens.ValidateAsync(token);
            if (claims is null)
            {
                return Refused(error!);
            }

            // RFC 8058 §3.2: the one-click POST carries List-Unsubscribe=One-Click as a form body (url-encoded or multipart).
            if (!await IsOneClickAsync(http.Request))
            {
                return Results.Problem(title: "Not a one-click unsubscribe", statusCode: StatusCodes.Status400BadRequest, type: ProblemType,
                    detail: "the body must be the form field List-Unsubscribe=One-Click (RFC 8058)");
            }

            // The opt-out and its event commit together or not at all.
            await using var connection = await dataSource.OpenConnectionAsync(http.RequestAborted);
            await using var transaction = await connection.BeginTransactionAsync(http.RequestAborted);
            var optOut = await TenancyStore.RecordOptOutAsync(connection, transaction, claims.TenantId, claims.ContactId, Source, http.RequestAborted);
            if (optOut is not { } recorded)
            {
                return Results.Problem(title: "Unknown contact", statusCode: StatusCodes.Status404NotFound, type: ProblemType,
                    detail: "the unsubscribe link names a contact its tenant does not have (deleted, or the link belongs elsewhere)");
            }

            if (recorded.Recorded)
            {
                // In the event store for Insights and the day's counts (docs/insights.md), once per contact: the key is the
                // contact's, and only the click that recorded the opt-out writes it.
                var events = new JsonArray(new JsonObject
                {
                    ["event_type"] = "unsubscribe",
                    ["entity_type"] = "contact",
                    ["entity_id"] = claims.ContactId.ToString("D"),
                    ["occurred_at"] = recorded.At.ToString("O", CultureInfo.InvariantCulture),
                    ["idempotency_key"] = $"unsubscribe:{claims.ContactId:D}",
                    ["source"] = Source,
                    ["payload"] = new JsonObject { ["message_id"] = claims.MessageId.ToString("D") },
                });
                var outcome = await InsightsStore.IngestEventsAsync(connection, transaction, claims.TenantId, events.ToJsonString(), http.RequestAborted);
                if (outcome.FirstOrDefault() is { Error: { } refusal })
                {
                    throw new InvalidOperationException($"unsubscribe event refused by ingest_events: {refusal}");
                }

                // And on the message's history, beside its bounces and replies (docs/inbound.md): the counts per day read it.
                await InboundStore.RecordOneClickAsync(connection, transaction, claims.TenantId, claims.MessageId, claims.ContactId, recorded.At,
                    outcome.FirstOrDefault().EventId, http.RequestAborted);
            }

            await transaction.CommitAsync(http.RequestAborted);
            return Page("Unsubscribed", "<p>You are unsubscribed; you will get no more of these emails.</p>");
        }).ExcludeFromDescription().DisableAntiforgery().RequireRateLimiting(ApiRateLimits.PublicPolicyName);
    }

    private static async Task<bool> IsOneClickAsync(HttpRequest request)
    {
        if (!request.HasFormContentType)
        {
            return false;
        }

        try
        {
            return (await request.ReadFormAsync(request.HttpContext.RequestAborted))["List-Unsubscribe"] is { Count: 1 } value && value[0] == "One-Click";
        }
        catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException)
        {
            // A body that claims to be a form and is not (a broken multipart boundary, a value over the form limits):
            // bad input, a 400 like any other, never a 500.
            return false;
        }
    }

    private static IResult Refused(string reason) =>
        Results.Problem(title: "Invalid unsubscribe link", detail: reason, statusCode: StatusCodes.Status400BadRequest, type: ProblemType);

    private static IResult Page(string title, string body) => Results.Content(
        $"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>{title}</title></head>
        <body><h1>{title}</h1>
        {body}
        </body></html>
        """, "text/html; charset=utf-8");

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "{Secret} and {PublicUrl} are not set: email goes out without List-Unsubscribe headers and /unsubscribe is not served")]
    private static partial void LogNotConfigured(ILogger logger, string secret, string publicUrl);
}
