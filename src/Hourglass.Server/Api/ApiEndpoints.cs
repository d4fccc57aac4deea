using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Engagement.Inbound;
using Hourglass.Imports;
using Hourglass.Insights;
using Hourglass.Orders;
using Hourglass.Policies;
using Hourglass.Storage;
using Hourglass.Tenancy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Server.Api;

/// <summary>
/// The HTTP API (docs/api.md): every route under <c>/api/v1</c> needs a token (<see cref="ApiAuth"/>) and runs in one
/// transaction as its caller (<see cref="ApiSession"/>); tenant routes answer 404 for a tenant the caller does not
/// belong to. Lists page with <c>limit</c> and an opaque <c>cursor</c>; errors are RFC 9457 problem details. Bodies and
/// query parameters are checked before a handler runs (<see cref="ApiInput"/>): bad input is a 400 naming the field.
/// </summary>
internal static class ApiEndpoints
{
    public const int MaxLimit = 500;

    public static void Map(WebApplication app, NpgsqlDataSource dataSource, ApiAuth auth, CycleWorker? worker)
    {
        var (bodyLimit, batchLimit) = ApiBodyLimit.FromEnvironment();
        var api = app.MapGroup("/api/v1").WithMetadata(ApiRouteMetadata.Instance).AddEndpointFilter(async (context, next) =>
        {
            // The authentication middleware checked the token (ApiAuthentication); a request without a caller was answered 401 there.
            var http = context.HttpContext;
            var (caller, error) = ApiAuthentication.Result(http) is { } result
                ? (result.Caller, result.Error)
                : await auth.AuthenticateAsync(http.Request.Headers.Authorization, http.Request.Headers["apikey"], http.RequestAborted);
            if (caller is null)
            {
                return ApiAuthentication.Unauthorized(http, error);
            }

            http.Items[nameof(ApiCaller)] = caller;
            return await next(context);
        }).AddEndpointFilterFactory(ApiInput.Check).WithMetadata(bodyLimit).RequireRateLimiting(ApiRateLimits.PolicyName)
            // Documented for every route (OpenAPI): the token it needs; no or a bad token, bad input, over the tenant's rate limit.
            .AddOpenApiOperationTransformer(ApiOpenApi.RequireTokenAsync)
            .ProducesProblem(StatusCodes.Status401Unauthorized).ProducesValidationProblem().ProducesProblem(StatusCodes.Status429TooManyRequests);

        api.MapGet("/tenants", (HttpContext http, CancellationToken cancellationToken) => Run(dataSource, http, async s =>
            // No tenant filter at all: row-level security alone decides which tenants a caller sees.
            ApiSession.Json(await TenancyStore.TenantsJsonAsync(s.Connection, s.Transaction, http.RequestAborted))))
            .WithName("ListTenants").WithSummary("The tenants the caller is a member of, with the caller's role and capabilities in each");

        api.MapGet("/me/cards", (HttpContext http, string? status) => Run(dataSource, http, async s =>
            ApiSession.Json(await EngagementStore.MyCardsJsonAsync(s.Connection, s.Transaction, status, http.RequestAborted))))
            .WithName("ListMyCards").WithSummary("Open cards across every tenant the caller belongs to");

        var tenant = api.MapGroup("/tenants/{tenantId:guid}").AddEndpointFilter(async (context, next) =>
        {
            // A tenant the caller cannot see is answered before the handler does anything: 404, whether it exists or
            // not. The check runs first in the request's own transaction (ApiSession.RunAsync).
            context.HttpContext.Items[ApiSession.TenantKey] = Guid.Parse((string)context.HttpContext.Request.RouteValues["tenantId"]!);
            return await next(context);
        }).ProducesProblem(StatusCodes.Status404NotFound);

        MapTenant(tenant, dataSource);
        MapRuns(tenant, dataSource, worker);
        MapEngagement(tenant, dataSource, batchLimit);
        MapCards(tenant, dataSource);
        MapPolicies(tenant, dataSource);
        MapOrders(tenant, dataSource);
        MapInsights(tenant, dataSource, batchLimit);
        MapMembers(tenant, dataSource);
    }

    private static Task<IResult> Run(NpgsqlDataSource dataSource, HttpContext http, Func<ApiSession, Task<IResult>> handler) =>
        ApiSession.RunAsync(dataSource, http, handler);

    private static void MapTenant(RouteGroupBuilder tenant, NpgsqlDataSource dataSource)
    {
        tenant.MapGet("", (Guid tenantId, HttpContext http) => Run(dataSource, http, async s =>
            ApiSession.Json(await s.JsonAsync(ScheduleStore.TenantJsonSql, http.RequestAborted, tenantId))))
            .WithName("GetTenant").WithSummary("The tenant, its settings and its schedule");

        tenant.MapPatch("/settings", (Guid tenantId, HttpContext http, JsonBody<SettingsPatch> body) => Run(dataSource, http, async s =>
        {
            var patch = body.Value!;
            if (await s.RequireAsync(tenantId, "manage_settings", http.RequestAborted) is { } refused)
            {
                return refused;
            }

            // Checked before anything is saved: TenantControl writes outside this request's transaction, so a refusal
            // after the schedule was saved would leave half the patch applied.
            if (patch.Paused is true && string.IsNullOrWhiteSpace(patch.PauseReason))
            {
                return ApiSession.Invalid("pause_reason", "is required to pause: say why");
            }

            var control = new TenantControl(dataSource, ProductClock.Time);
            if (patch.Cron is not null)
            {
                try
                {
                    await control.SetScheduleAsync(tenantId, patch.Cron, patch.Timezone, http.RequestAborted);
                }
                catch (InvalidScheduleException ex)
                {
                    return ApiSession.Invalid(ex.Field, ex.Message);
                }
            }

            if (patch is { Paused: true, PauseReason: { } reason })
            {
                await control.PauseTenantAsync(tenantId, reason, $"user:{s.Caller.UserId?.ToString() ?? "service"}", http.RequestAborted);
            }
            else if (patch.Paused is false)
            {
                await control.ResumeTenantAsync(tenantId, http.RequestAborted);
            }

            return Results.NoContent();
        }))
            .WithName("UpdateSettings").WithSummary("Schedule (cron, time zone) and the tenant's pause switch (capability manage_settings)");
    }

    // Every field optional (defaults, so the OpenAPI document does not mark them required).
    internal sealed record SettingsPatch(string? Cron = null, string? Timezone = null, bool? Paused = null, string? PauseReason = null);

    private static void MapRuns(RouteGroupBuilder tenant, NpgsqlDataSource dataSource, CycleWorker? worker)
    {
        tenant.MapGet("/runs", (Guid tenantId, HttpContext http, int? limit, string? cursor) => Run(dataSource, http, s =>
            PageAsync(s, http, RunsStore.ApiListSql, tenantId, limit, cursor)))
            .WithName("ListRuns").WithSummary("Cycle runs, newest first");

        tenant.MapGet("/runs/{runId:guid}", (Guid tenantId, Guid runId, HttpContext http) => Run(dataSource, http, async s =>
            await s.JsonAsync(RunsStore.ApiGetSql, http.RequestAborted, tenantId, runId)
                is { } json ? ApiSession.Json(json) : ApiSession.NotFound("the run")))
            .WithName("GetRun").WithSummary("One run with its plan, act, react and reflect output");

        tenant.MapGet("/reflections", (Guid tenantId, HttpContext http, int? limit, string? cursor) => Run(dataSource, http, s =>
            PageAsync(s, http, HourlyReflections.ApiListSql, tenantId, limit, cursor)))
            .WithName("ListReflections").WithSummary("Hourly reflections, newest first: each the roll-up of every run of its hour (run_ids)");

        tenant.MapPost("/runs", (Guid tenantId, HttpContext http, JsonBody<RunRequest?> body) => Run(dataSource, http, async s =>
        {
            var request = body.Value;
            // As 'hourglass run --hour': a real cycle runs for now; naming another hour would spend that hour's
            // idempotency keys (a future hour's actions would then never run).
            if (request is { Hour: not null, DryRun: not true })
            {
                return ApiSession.Invalid("hour", "only a dry run may name an hour; a real cycle runs for the current hour");
            }

            if (request?.DryRun != true && await s.RequireAsync(tenantId, "run_cycles", http.RequestAborted) is { } refused)
            {
                return refused;
            }

            if (worker is null)
            {
                return Results.Problem(title: "No worker", detail: "this server runs without a worker (--no-worker): run cycles with 'hourglass run'",
                    statusCode: StatusCodes.Status409Conflict, type: "https://hourglass.dev/problems/conflict");
            }

            CycleResult result;
            try
            {
                result = await worker.RunManualAsync(tenantId, request?.DryRun ?? false, request?.Hour, http.RequestAborted);
            }
            catch (TenantPausedException ex)
            {
                return Paused(ex);
            }

            return Results.Json(new { run_id = result.RunId, result.Status, planned = result.ActionsPlanned, taken = result.ActionsTaken,
                blocked = result.ActionsBlocked, failed = result.ActionsFailed, result.Error }, statusCode: StatusCodes.Status201Created);
        }))
            .WithName("RunNow").WithSummary("Run a cycle now (capability run_cycles), or a dry run for now or a past hour (any member)");
    }

    internal sealed record RunRequest(bool? DryRun = null, DateTimeOffset? Hour = null);

    // A real run of a paused tenant: 409, saying since when, by whom, why, and how to lift the switch that holds it
    // (the tenant's own through the settings route; the global one only by an operator's 'hourglass resume').
    private static IResult Paused(TenantPausedException ex)
    {
        var pause = ex.Pause;
        var resume = pause.Global
            ? "the global kill switch is lifted by an operator with 'hourglass resume'"
            : $"an owner or admin resumes it with PATCH /api/v1/tenants/{ex.TenantId}/settings {{\"paused\": false}} (or 'hourglass resume --tenant {ex.TenantId}')";
        return Results.Problem(
            title: "Tenant paused",
            detail: $"{pause.Describe(ex.TenantId)}. A real run would act while the kill switch is on; {resume}. A dry run (\"dry_run\": true) still works.",
            statusCode: StatusCodes.Status409Conflict,
            type: "https://hourglass.dev/problems/paused",
            extensions: new Dictionary<string, object?>
            {
                ["scope"] = pause.Global ? "global" : "tenant",
                ["paused_since"] = pause.Since,
                ["paused_by"] = pause.By,
                ["reason"] = pause.Reason,
            });
    }

    private static void MapEngagement(RouteGroupBuilder tenant, NpgsqlDataSource dataSource, ApiBodyLimit batchLimit)
    {
        tenant.MapGet("/engagement/queue", (Guid tenantId, HttpContext http, int? top) => Run(dataSource, http, async s =>
            ApiSession.Json(await TenancyStore.NamedEngagementQueueJsonAsync(s.Connection, s.Transaction, tenantId, top ?? 20, http.RequestAborted))))
            .WithName("EngagementQueue").WithSummary("Who is due, most urgent first, each with the reason for its place");

        tenant.MapPost("/touches", (Guid tenantId, HttpContext http, JsonBody<JsonElement> body, [FromQuery(Name = "on_error")] string? onError) => Run(dataSource, http, async s =>
            body.Value.ValueKind != JsonValueKind.Array
                ? ApiSession.Invalid("body", $"must be a JSON array of touches, not {body.Value.ValueKind.ToString().ToLowerInvariant()}")
                : await BatchAsync(s, http, TouchImportKind.Instance, "record_touches", tenantId, body.Value, onError)))
            .WithMetadata(batchLimit, ApiBatchRoute.Instance)
            .WithName("RecordTouches").WithSummary("Touches made outside Hourglass, in a batch, each with its own time and idempotency key");
    }

    private static void MapCards(RouteGroupBuilder tenant, NpgsqlDataSource dataSource)
    {
        tenant.MapGet("/cards", (Guid tenantId, HttpContext http, string? kind, string? status, int? limit, string? cursor) => Run(dataSource, http, s =>
            PageAsync(http, limit, cursor, page => EngagementStore.CardsPageAsync(s.Connection, s.Transaction, tenantId, page, kind, status, http.RequestAborted))))
            .WithName("ListCards").WithSummary("Cards: touch tasks, approvals, exception reviews");

        tenant.MapPost("/cards/{cardId:guid}/complete", (Guid tenantId, Guid cardId, HttpContext http, JsonBody<CardAction?> body) => Run(dataSource, http, async s =>
        {
            return await EngagementStore.CompleteTouchCardAsync(s.Connection, s.Transaction, tenantId, cardId, body.Value?.TouchType ?? "call", body.Value?.Notes,
                http.RequestAborted) is { } clock ? Results.Json(new { clock_id = clock }) : ApiSession.NotFound("the card");
        }))
            .WithName("CompleteCard").WithSummary("A person made the touch: the card is done and the touch recorded");

        foreach (var (verb, approve) in new[] { ("approve", true), ("reject", false) })
        {
            tenant.MapPost($"/cards/{{cardId:guid}}/{verb}", (Guid tenantId, Guid cardId, HttpContext http, JsonBody<CardAction?> body) => Run(dataSource, http, async s =>
            {
                return await EngagementStore.DecideApprovalAsync(s.Connection, s.Transaction, tenantId, cardId, approve, body.Value?.Notes, http.RequestAborted)
                    is { } outcome ? Results.Json(new { outcome }) : ApiSession.NotFound("the card");
            }))
                .WithName(approve ? "ApproveCard" : "RejectCard")
                .WithSummary(approve ? "Approve the held action: it runs next cycle if the policy still allows it" : "Reject the held action");
        }

        tenant.MapPost("/cards/{cardId:guid}/dismiss", (Guid tenantId, Guid cardId, HttpContext http, JsonBody<CardAction?> body) => Run(dataSource, http, async s =>
        {
            return await EngagementStore.DismissCardAsync(s.Connection, s.Transaction, tenantId, cardId, body.Value?.Notes, http.RequestAborted) is not null
                ? Results.NoContent() : ApiSession.NotFound("the card");
        }))
            .WithName("DismissCard").WithSummary("Dismiss an open touch task or notice");
    }

    internal sealed record CardAction(string? TouchType = null, string? Notes = null);

    private static void MapPolicies(RouteGroupBuilder tenant, NpgsqlDataSource dataSource)
    {
        tenant.MapGet("/policy", (Guid tenantId, HttpContext http) => Run(dataSource, http, async s =>
        {
            var saved = await PolicyStore.InForceJsonAsync(s.Connection, s.Transaction, tenantId, http.RequestAborted);
            if (saved is not null)
            {
                http.Response.Headers.ETag = $"\"{JsonNode.Parse(saved)!["version"]}\"";
                return ApiSession.Json(saved);
            }

            http.Response.Headers.ETag = "\"0\"";
            return ApiSession.Json(new JsonObject { ["version"] = 0, ["document"] = JsonNode.Parse(PolicyDocument.DefaultJson), ["built_in"] = true }.ToJsonString());
        }))
            .WithName("GetPolicy").WithSummary("The policy document in force (version 0: the built-in default); ETag is its version");

        tenant.MapPut("/policy", (Guid tenantId, HttpContext http, JsonBody<JsonElement> body) => Run(dataSource, http, async s =>
        {
            if (await s.RequireAsync(tenantId, "manage_settings", http.RequestAborted) is { } refused)
            {
                return refused;
            }

            int? expected = null;
            if (http.Request.Headers.IfMatch.ToString() is { Length: > 0 } ifMatch)
            {
                if (!int.TryParse(ifMatch.Trim('"', 'W', '/'), NumberStyles.None, CultureInfo.InvariantCulture, out var version))
                {
                    return ApiSession.Invalid("If-Match", "must be the version's ETag, e.g. \"3\"");
                }

                expected = version;
            }

            try
            {
                var saved = await PolicyStore.SaveAsync(dataSource, tenantId, body.Value.GetRawText(), $"user:{s.Caller.UserId?.ToString() ?? "service"}", null, expected, http.RequestAborted);
                http.Response.Headers.ETag = $"\"{saved.Number}\"";
                return Results.Json(new { version = saved.Number, rules = saved.Document.Rules.Count });
            }
            catch (PolicyValidationException ex)
            {
                return ApiSession.Invalid(ex.Problems.GroupBy(p => p.Field).ToDictionary(g => g.Key, g => g.Select(p => p.Problem).ToArray()),
                    detail: "nothing was saved; the version in force stays in force", title: "Policy document refused");
            }
            catch (HourglassException ex) when (expected is not null)
            {
                return Results.Problem(title: "Precondition failed", detail: ex.Message, statusCode: StatusCodes.Status412PreconditionFailed,
                    type: "https://hourglass.dev/problems/precondition-failed");
            }
        }))
            .WithName("PutPolicy").WithSummary("Save a new version (validated; If-Match for optimistic concurrency; capability manage_settings)");

        tenant.MapPost("/policy/explain", (Guid tenantId, HttpContext http, JsonBody<ExplainRequest> body) => Run(dataSource, http, async s =>
        {
            var request = body.Value!;
            if (string.IsNullOrWhiteSpace(request.Kind))
            {
                return ApiSession.Invalid("kind", "is required (e.g. send_message)");
            }

            var action = new PolicyAction(request.Kind, request.ContactId ?? request.AccountId,
                request.Kind switch { "touch_task" => "task", "send_message" => request.Channel ?? "email", _ => request.Channel },
                request.ContactId, request.AccountId, request.OrderValue, request.PriceChangePct, request.DiscountChangePct);
            var explanation = await PolicyExplainer.ExplainAsync(dataSource, tenantId, action, request.At ?? ProductClock.Time.GetUtcNow(), http.RequestAborted);
            return Results.Json(new
            {
                decision = explanation.Decision.VerdictName,
                policy_version = explanation.Policy.Version,
                determining_rules = explanation.Decision.DeterminingRules,
                message = explanation.Decision.Message,
                time_zone = explanation.Facts.Zone.Id,
                rules = explanation.Trace.Select(t => new { rule = t.RuleId, kind = t.RuleKind, outcome = t.Outcome, detail = t.Detail }),
            });
        }))
            .WithName("ExplainPolicy").WithSummary("Evaluate a hypothetical action against the policy and explain every rule's verdict");

        tenant.MapGet("/violations", (Guid tenantId, HttpContext http, string? rule, string? severity, string? decision, int? limit, string? cursor) =>
            Run(dataSource, http, s => PageAsync(http, limit, cursor,
                page => PolicyStore.ViolationsPageAsync(s.Connection, s.Transaction, tenantId, page, rule, severity, decision, http.RequestAborted))))
            .WithName("ListViolations").WithSummary("Policy violations, newest first, filtered by rule, severity, decision");

        tenant.MapGet("/violations/trends", (Guid tenantId, HttpContext http, int? days) => Run(dataSource, http, async s =>
            ApiSession.Json(await s.JsonAsync(PolicyStore.ViolationTrendsJsonSql,
                http.RequestAborted, tenantId, days ?? 30))))
            .WithName("ViolationTrends").WithSummary("Violations per day in the tenant's time zone by rule, severity and decision");

        tenant.MapGet("/inbound/trends", (Guid tenantId, HttpContext http, int? days) => Run(dataSource, http, async s =>
            ApiSession.Json(await s.JsonAsync(InboundStore.TrendsJsonSql, http.RequestAborted, tenantId, days ?? 30))))
            .WithName("InboundTrends")
            .WithSummary("What the world answered per day in the tenant's time zone: deliveries, bounces, complaints, unsubscribes, replies, out of office");
    }

    internal sealed record ExplainRequest(string Kind, Guid? ContactId = null, Guid? AccountId = null, string? Channel = null, decimal? OrderValue = null,
        decimal? PriceChangePct = null, decimal? DiscountChangePct = null, DateTimeOffset? At = null);

    private static void MapOrders(RouteGroupBuilder tenant, NpgsqlDataSource dataSource)
    {
        tenant.MapGet("/orders/queue", (Guid tenantId, HttpContext http, string? status, int? limit, string? cursor) => Run(dataSource, http, s =>
            PageAsync(http, limit, cursor, page => OrderStore.QueuePageAsync(s.Connection, s.Transaction, tenantId, page, status, http.RequestAborted))))
            .WithName("OrderQueue").WithSummary("The order processing queue with each order's checks");

        tenant.MapGet("/orders/exceptions", (Guid tenantId, HttpContext http, string? status, int? limit, string? cursor) => Run(dataSource, http, s =>
            PageAsync(http, limit, cursor, page => OrderStore.ExceptionsPageAsync(s.Connection, s.Transaction, tenantId, page, status, http.RequestAborted))))
            .WithName("OrderExceptions").WithSummary("Order exceptions and where they are in their workflow");

        tenant.MapPost("/orders/exceptions/{exceptionId:guid}/{step}", (Guid tenantId, Guid exceptionId, string step, HttpContext http, JsonBody<CardAction?> body) =>
            Run(dataSource, http, async s =>
            {
                var outcome = step switch
                {
                    "review" => OrderStore.ReviewExceptionAsync(s.Connection, s.Transaction, tenantId, exceptionId, http.RequestAborted),
                    "resolve" or "dismiss" => OrderStore.ResolveExceptionAsync(s.Connection, s.Transaction, tenantId, exceptionId,
                        step == "resolve" ? "resolved" : "dismissed", body.Value?.Notes, http.RequestAborted),
                    _ => null,
                };
                if (outcome is null)
                {
                    return ApiSession.NotFound($"the step '{step}' (review, resolve or dismiss)");
                }

                return await outcome is { } done ? Results.Json(new { outcome = done }) : ApiSession.NotFound("the exception");
            }))
            .WithName("OrderExceptionStep").WithSummary("review, resolve (re-validates the order) or dismiss an exception; resolve and dismiss need notes");

        tenant.MapPost("/orders/{orderId:guid}/override-credit", (Guid tenantId, Guid orderId, HttpContext http, JsonBody<ReasonBody> body) => Run(dataSource, http, async s =>
        {
            return await OrderStore.OverrideCreditAsync(s.Connection, s.Transaction, tenantId, orderId, body.Value!.Reason, http.RequestAborted) is { } outcome
                ? Results.Json(new { outcome }) : ApiSession.NotFound("the order's queue entry");
        }))
            .WithName("OverrideCredit").WithSummary("Pass the order's credit check on a person's word, with a reason; the order is re-validated (capability override_credit)");
    }

    internal sealed record ReasonBody(string? Reason = null);

    private static void MapInsights(RouteGroupBuilder tenant, NpgsqlDataSource dataSource, ApiBodyLimit batchLimit)
    {
        tenant.MapPost("/events", (Guid tenantId, HttpContext http, JsonBody<JsonElement> body, [FromQuery(Name = "on_error")] string? onError) => Run(dataSource, http, async s =>
            body.Value.ValueKind != JsonValueKind.Array
                ? ApiSession.Invalid("body", $"must be a JSON array of events, not {body.Value.ValueKind.ToString().ToLowerInvariant()}")
                : await BatchAsync(s, http, EventImportKind.Instance, "ingest_events", tenantId, body.Value, onError)))
            .WithMetadata(batchLimit, ApiBatchRoute.Instance)
            .WithName("IngestEvents").WithSummary("A batch of events from an outside system, with idempotency keys");

        tenant.MapGet("/patterns", (Guid tenantId, HttpContext http, string? type, int? limit, string? cursor) => Run(dataSource, http, s =>
            PageAsync(s, http, InsightsStore.PatternsPageSql, tenantId, limit, cursor, type)))
            .WithName("ListPatterns").WithSummary("Client patterns with their confidence and evidence");

        tenant.MapGet("/strategies", (Guid tenantId, HttpContext http) => Run(dataSource, http, async s =>
            ApiSession.Json(await s.JsonAsync(InsightsStore.StrategiesJsonSql, http.RequestAborted, tenantId))))
            .WithName("ListStrategies").WithSummary("Success strategies with their posterior mean and lower bound");
    }

    // Members and roles: reads for every member; changes through the database's functions, which check the capability
    // manage_members and that only an owner makes or removes an owner.
    private static void MapMembers(RouteGroupBuilder tenant, NpgsqlDataSource dataSource)
    {
        tenant.MapGet("/members", (Guid tenantId, HttpContext http) => Run(dataSource, http, async s =>
            ApiSession.Json(await TenancyStore.MembersJsonAsync(s.Connection, s.Transaction, tenantId, http.RequestAborted))))
            .WithName("ListMembers").WithSummary("The tenant's members, each with their role and its capabilities");

        tenant.MapPut("/members/{userId:guid}", (Guid tenantId, Guid userId, HttpContext http, JsonBody<RoleBody> body) => Run(dataSource, http, async s =>
        {
            await using var command = s.Command(TenancyStore.SetMemberSql, tenantId, userId, body.Value!.Role);
            return Results.Json(new { outcome = (string)(await command.ExecuteScalarAsync(http.RequestAborted))! });
        }))
            .WithName("SetMember").WithSummary("Add a member or change their role (capability manage_members; owners only for the owner role)");

        tenant.MapDelete("/members/{userId:guid}", (Guid tenantId, Guid userId, HttpContext http) => Run(dataSource, http, async s =>
        {
            await using var command = s.Command(TenancyStore.RemoveMemberSql, tenantId, userId);
            return await command.ExecuteScalarAsync(http.RequestAborted) is true ? Results.NoContent() : ApiSession.NotFound("the member");
        }))
            .WithName("RemoveMember").WithSummary("Remove a member (capability manage_members; a tenant keeps its last owner)");

        tenant.MapGet("/roles", (Guid tenantId, HttpContext http) => Run(dataSource, http, async s =>
            ApiSession.Json(await TenancyStore.RolesJsonAsync(s.Connection, s.Transaction, tenantId, http.RequestAborted))))
            .WithName("ListRoles").WithSummary("The tenant's roles and what each may do");

        tenant.MapPut("/roles/{role}", (Guid tenantId, string role, HttpContext http, JsonBody<RoleDefinition> body) => Run(dataSource, http, async s =>
        {
            await using var command = s.Command(TenancyStore.SetRoleSql, tenantId, role,
                body.Value!.Capabilities ?? [], body.Value.Description);
            return Results.Json(new { outcome = (string)(await command.ExecuteScalarAsync(http.RequestAborted))! });
        }))
            .WithName("SetRole").WithSummary("Define a role (a host CRM's own name) by its capabilities (capability manage_members)");

        tenant.MapDelete("/roles/{role}", (Guid tenantId, string role, HttpContext http) => Run(dataSource, http, async s =>
        {
            await using var command = s.Command(TenancyStore.RemoveRoleSql, tenantId, role);
            return await command.ExecuteScalarAsync(http.RequestAborted) is true ? Results.NoContent() : ApiSession.NotFound("the role");
        }))
            .WithName("RemoveRole").WithSummary("Remove a role no member has (capability manage_members)");
    }

    internal sealed record RoleBody(string? Role = null);

    internal sealed record RoleDefinition(string[]? Capabilities = null, string? Description = null);

    // A batch through the import pipeline (docs/imports.md), each element a line numbered from 1; the outcomes as the
    // batch function returns them, and a refused batch (refuse mode) a 400 naming the lines in the function's words.
    // on_error was checked (ApiInput).
    private static async Task<IResult> BatchAsync<TLine, TOutcome>(ApiSession s, HttpContext http, IImportKind<TLine, TOutcome> kind, string function,
        Guid tenantId, JsonElement body, string? onError)
        where TOutcome : ImportOutcome
    {
        var count = body.GetArrayLength();
        if (count > kind.MaxBatchSize)
        {
            return Results.Problem(title: "Invalid request", statusCode: StatusCodes.Status400BadRequest, type: "https://hourglass.dev/problems/invalid-request",
                detail: string.Create(CultureInfo.InvariantCulture, $"{function}: at most {kind.MaxBatchSize} {kind.Records} per batch (got {count})"));
        }

        // A line PostgreSQL cannot store (its jsonb refuses U+0000 in the whole array) is judged here, by its number.
        var lines = new List<TLine>(count);
        foreach (var element in body.EnumerateArray())
        {
            var number = lines.Count + 1;
            lines.Add(StorableText.Find(element) is var (path, problem) ? kind.Unreadable(number, $"{path}: {problem}") : kind.ReadJson(number, element.GetRawText()));
        }

        IReadOnlyList<TOutcome> outcomes;
        try
        {
            outcomes = await ImportPipeline.RecordAsync(kind, s.Connection, s.Transaction, tenantId, lines,
                onError == "skip" ? ImportErrorMode.Skip : ImportErrorMode.Refuse, kind.MaxBatchSize, http.RequestAborted);
        }
        catch (ImportRefusedException ex)
        {
            return Results.Problem(title: "Invalid request", statusCode: StatusCodes.Status400BadRequest, type: "https://hourglass.dev/problems/invalid-request",
                detail: $"{function}: {ex.Message}");
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var outcome in outcomes)
            {
                outcome.WriteTo(writer);
            }

            writer.WriteEndArray();
        }

        return ApiSession.Json(Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    // A page of rows, newest first. The inner query selects created_at and id and filters on tenant_id = $1; $2, $3
    // are the cursor and $4… the extra parameters. limit and cursor were checked (ApiInput).
    // Runs, reflections and patterns still hand their page query in here (their stores are Cycles' and Insights').
    private static Task<IResult> PageAsync(ApiSession s, HttpContext http, string inner, Guid tenantId, int? limit, string? cursor, params object?[] extra) =>
        PageAsync(http, limit, cursor, page => StoreReads.PageAsync(s.Connection, s.Transaction, inner, tenantId, page, http.RequestAborted, extra));

    // A page from a store, newest first, with the cursor of the next one: {"items":[…],"next_cursor":"…"|null}.
    private static async Task<IResult> PageAsync(HttpContext http, int? limit, string? cursor, Func<PageRequest, Task<JsonPage>> read)
    {
        if (ApiSession.ReadCursor(cursor, out var at, out var id) is { } problem)
        {
            return ApiSession.Invalid("cursor", problem);
        }

        var page = await read(new PageRequest(at, id, limit ?? 50));
        var next = page.Next is { } key ? JsonSerializer.Serialize(ApiSession.Cursor(key.At, key.Id)) : "null";
        return ApiSession.Json($"{{\"items\":[{string.Join(',', page.Items)}],\"next_cursor\":{next}}}");
    }
}
