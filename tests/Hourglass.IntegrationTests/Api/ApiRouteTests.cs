using System.Text.Json.Nodes;
using Hourglass.Policies;
using Microsoft.OpenApi;

namespace Hourglass.IntegrationTests.Api;

/// <summary>
/// One route of the API as a client calls it: the path for a tenant (the tenant's own ids, or another tenant's
/// objects under it), a valid body, and what its caller gets on their own tenant. Routes that need a
/// <see cref="Capability"/> a plain member's role lacks are called by the tenant's owner (and refused to the member
/// with 403), the others by a plain member.
/// </summary>
internal sealed record ApiRoute(
    string Name,
    string Method,
    string Template,
    Func<ApiTenant, ApiTenant, string> Path,
    Func<ApiTenant, string?> Body,
    int Ok,
    string? Capability = null,
    bool Writes = false,
    bool TenantScoped = true,
    bool TakesObjectId = false)
{
    public HttpMethod HttpMethod => new(Method);

    public override string ToString() => $"{Method} {Template}";
}

/// <summary>
/// Every route of ApiEndpoints against a real <c>hourglass serve</c>: authentication (401 without a valid token),
/// authorization (another tenant's routes and objects are 404 — the same 404 as a tenant that does not exist — and
/// nothing of theirs is written), the caller's own routes (2xx, nothing of the other tenant in the answer),
/// row-level security in force on the routes whose SQL has no tenant filter, validation problems naming the field,
/// optimistic concurrency on the policy, per-tenant rate limits, and the OpenAPI document.
/// </summary>
public sealed class ApiRouteTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private const string ProblemJson = "application/problem+json";

    private static readonly ApiRoute[] s_routes =
    [
        new("ListTenants", "GET", "/api/v1/tenants", (_, _) => "/api/v1/tenants", _ => null, 200, TenantScoped: false),
        new("ListMyCards", "GET", "/api/v1/me/cards", (_, _) => "/api/v1/me/cards", _ => null, 200, TenantScoped: false),
        new("GetTenant", "GET", T(""), (t, _) => t.Path, _ => null, 200),
        new("UpdateSettings", "PATCH", T("/settings"), (t, _) => $"{t.Path}/settings", _ => """{"cron": "30 * * * *", "timezone": "UTC"}""", 204,
            Capability: "manage_settings", Writes: true),
        new("ListRuns", "GET", T("/runs"), (t, _) => $"{t.Path}/runs?limit=10", _ => null, 200),
        new("GetRun", "GET", T("/runs/{runId}"), (t, o) => $"{t.Path}/runs/{o.RunId}", _ => null, 200, TakesObjectId: true),
        new("ListReflections", "GET", T("/reflections"), (t, _) => $"{t.Path}/reflections", _ => null, 200),
        // This server runs --no-worker: "run now" is a 409 problem here; RunNow_WithAWorker covers the 201s.
        new("RunNow", "POST", T("/runs"), (t, _) => $"{t.Path}/runs", _ => """{"dry_run": true}""", 409),
        new("EngagementQueue", "GET", T("/engagement/queue"), (t, _) => $"{t.Path}/engagement/queue?top=5", _ => null, 200),
        new("RecordTouches", "POST", T("/touches"), (t, _) => $"{t.Path}/touches", o => $$"""
            [{"entity_type": "contact", "entity_id": "{{o.TouchContactId}}", "touch_type": "email", "touch_by": "api-test", "idempotency_key": "t-{{Guid.NewGuid():N}}"}]
            """, 200, Writes: true),
        new("ListCards", "GET", T("/cards"), (t, _) => $"{t.Path}/cards?status=open", _ => null, 200),
        new("CompleteCard", "POST", T("/cards/{cardId}/complete"), (t, o) => $"{t.Path}/cards/{o.TouchCardId}/complete",
            _ => """{"touch_type": "call", "notes": "spoke to them"}""", 200, Writes: true, TakesObjectId: true),
        new("ApproveCard", "POST", T("/cards/{cardId}/approve"), (t, o) => $"{t.Path}/cards/{o.ApproveCardId}/approve",
            _ => """{"notes": "fine"}""", 200, Capability: "approve", Writes: true, TakesObjectId: true),
        new("RejectCard", "POST", T("/cards/{cardId}/reject"), (t, o) => $"{t.Path}/cards/{o.RejectCardId}/reject",
            _ => """{"notes": "not now"}""", 200, Capability: "approve", Writes: true, TakesObjectId: true),
        new("DismissCard", "POST", T("/cards/{cardId}/dismiss"), (t, o) => $"{t.Path}/cards/{o.NoticeCardId}/dismiss",
            _ => """{"notes": "seen"}""", 204, Writes: true, TakesObjectId: true),
        new("GetPolicy", "GET", T("/policy"), (t, _) => $"{t.Path}/policy", _ => null, 200),
        new("PutPolicy", "PUT", T("/policy"), (t, _) => $"{t.Path}/policy", _ => PolicyDocument.DefaultJson, 200, Capability: "manage_settings", Writes: true),
        new("ExplainPolicy", "POST", T("/policy/explain"), (t, _) => $"{t.Path}/policy/explain",
            o => $$"""{"kind": "send_message", "contact_id": "{{o.TouchContactId}}", "channel": "email"}""", 200),
        new("ListViolations", "GET", T("/violations"), (t, _) => $"{t.Path}/violations?limit=2", _ => null, 200),
        new("ViolationTrends", "GET", T("/violations/trends"), (t, _) => $"{t.Path}/violations/trends?days=30", _ => null, 200),
        new("InboundTrends", "GET", T("/inbound/trends"), (t, _) => $"{t.Path}/inbound/trends?days=30", _ => null, 200),
        new("OrderQueue", "GET", T("/orders/queue"), (t, _) => $"{t.Path}/orders/queue", _ => null, 200),
        new("OrderExceptions", "GET", T("/orders/exceptions"), (t, _) => $"{t.Path}/orders/exceptions?status=open", _ => null, 200),
        new("OrderExceptionStep review", "POST", T("/orders/exceptions/{exceptionId}/{step}"),
            (t, o) => $"{t.Path}/orders/exceptions/{o.ReviewExceptionId}/review", _ => null, 200, Capability: "resolve_exceptions", Writes: true,
            TakesObjectId: true),
        new("OrderExceptionStep resolve", "POST", T("/orders/exceptions/{exceptionId}/{step}"),
            (t, o) => $"{t.Path}/orders/exceptions/{o.ResolveExceptionId}/resolve", _ => """{"notes": "fixed the quantity by phone"}""", 200,
            Capability: "resolve_exceptions", Writes: true, TakesObjectId: true),
        new("OrderExceptionStep dismiss", "POST", T("/orders/exceptions/{exceptionId}/{step}"),
            (t, o) => $"{t.Path}/orders/exceptions/{o.DismissExceptionId}/dismiss", _ => """{"notes": "handled by hand"}""", 200,
            Capability: "resolve_exceptions", Writes: true, TakesObjectId: true),
        new("OverrideCredit", "POST", T("/orders/{orderId}/override-credit"), (t, o) => $"{t.Path}/orders/{o.OrderId}/override-credit",
            _ => """{"reason": "long-standing customer"}""", 200, Capability: "override_credit", Writes: true, TakesObjectId: true),
        new("IngestEvents", "POST", T("/events"), (t, _) => $"{t.Path}/events", o => $$"""
            [{"event_type": "reply", "entity_type": "contact", "entity_id": "{{o.TouchContactId}}", "payload": {"channel": "email"}, "idempotency_key": "e-{{Guid.NewGuid():N}}"}]
            """, 200, Writes: true),
        new("ListPatterns", "GET", T("/patterns"), (t, _) => $"{t.Path}/patterns?type=reorder_cadence", _ => null, 200),
        new("ListStrategies", "GET", T("/strategies"), (t, _) => $"{t.Path}/strategies", _ => null, 200),
        new("ListMembers", "GET", T("/members"), (t, _) => $"{t.Path}/members", _ => null, 200),
        // Any user id may be added to one's own tenant (a new one each call); another tenant's user is no secret here.
        new("SetMember", "PUT", T("/members/{userId}"), (t, _) => $"{t.Path}/members/{Guid.NewGuid()}", _ => """{"role": "viewer"}""", 200,
            Capability: "manage_members", Writes: true),
        new("RemoveMember", "DELETE", T("/members/{userId}"), (t, o) => $"{t.Path}/members/{o.SpareMemberId}", _ => null, 204,
            Capability: "manage_members", Writes: true, TakesObjectId: true),
        new("ListRoles", "GET", T("/roles"), (t, _) => $"{t.Path}/roles", _ => null, 200),
        new("SetRole", "PUT", T("/roles/{role}"), (t, _) => $"{t.Path}/roles/sales_rep", _ => """{"capabilities": ["record_touches", "edit_crm"], "description": "Field sales"}""",
            200, Capability: "manage_members", Writes: true),
        new("RemoveRole", "DELETE", T("/roles/{role}"), (t, o) => $"{t.Path}/roles/{o.SpareRole}", _ => null, 204,
            Capability: "manage_members", Writes: true, TakesObjectId: true),
    ];

    /// <summary>Every route of the API, as the other API test classes drive them.</summary>
    internal static IReadOnlyList<ApiRoute> Routes => s_routes;

    private ApiServer Server => fixture.Server;

    private ApiTenant A => fixture.A;

    private ApiTenant B => fixture.B;

    public static TheoryData<string> AllRoutes => Names(_ => true);

    public static TheoryData<string> TenantRoutes => Names(r => r.TenantScoped);

    public static TheoryData<string> ObjectRoutes => Names(r => r.TakesObjectId);

    // ---------------------------------------------------------------------------------------------------------
    // Authentication
    // ---------------------------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(AllRoutes))]
    public async Task NoToken_401ProblemAndNothingWritten(string name)
    {
        var route = Route(name);
        var before = await fixture.DigestAsync(A.TenantId);

        var response = await SendAsync(route, A, A, token: null);

        var problem = AssertProblem(response, 401, "https://hourglass.dev/problems/unauthorized");
        Assert.Contains("no token", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Contains("Bearer", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Equal(before, await fixture.DigestAsync(A.TenantId));
    }

    [Theory]
    [MemberData(nameof(AllRoutes))]
    public async Task BadTokens_401Problem(string name)
    {
        var route = Route(name);
        var tokens = new (string Token, string Why)[]
        {
            (ApiServer.ForgedToken(A.OwnerId), "signature is not valid"),
            (ApiServer.ExpiredToken(A.OwnerId), "expired"),
            (ApiServer.NoExpiryToken(A.OwnerId), "no expiry"),
            (ApiServer.AnonToken(), "role 'anon' may not use this API"),
            (ApiServer.NoUserToken(), "no user"),
            ("not-a-jwt", "not a JWT"),
            ("e30.e30.AAAA", "names no algorithm"),
            ("W10.e30.AAAA", "header is not a JSON object"),
        };
        foreach (var (token, why) in tokens)
        {
            var response = await SendAsync(route, A, A, token);

            var problem = AssertProblem(response, 401, "https://hourglass.dev/problems/unauthorized");
            Assert.Contains(why, (string?)problem["detail"], StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ServiceKey_InApikeyHeader_ReachesAnyTenant()
    {
        foreach (var tenant in new[] { A, B })
        {
            var response = await Server.SendAsync(HttpMethod.Get, tenant.Path, token: null,
                configure: r => r.Headers.Add("apikey", ApiServer.ServiceToken()));

            Assert.True(response.Code == 200, response.ToString());
            Assert.Equal(tenant.TenantId.ToString(), (string?)JsonNode.Parse(response.Body)!["id"]);
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Authorization: another tenant
    // ---------------------------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(TenantRoutes))]
    public async Task OtherTenantsRoute_404LikeNoSuchTenant_NothingWritten(string name)
    {
        var route = Route(name);
        var beforeA = await fixture.DigestAsync(A.TenantId);
        var beforeB = await fixture.DigestAsync(B.TenantId);

        // A's owner (an admin: the strongest caller short of the service role) on B's routes, with B's ids.
        var response = await SendAsync(route, B, B, A.OwnerToken);
        var ghost = await SendAsync(route, Ghost(), Ghost(), A.OwnerToken);

        var problem = AssertProblem(response, 404, "https://hourglass.dev/problems/not-found");
        var nothing = AssertProblem(ghost, 404, "https://hourglass.dev/problems/not-found");
        Assert.Equal((string?)nothing["detail"], (string?)problem["detail"]);
        Assert.Equal((string?)nothing["title"], (string?)problem["title"]);
        AssertMentionsNone(response.Body, B);
        Assert.Equal(beforeB, await fixture.DigestAsync(B.TenantId));
        Assert.Equal(beforeA, await fixture.DigestAsync(A.TenantId));
    }

    [Theory]
    [MemberData(nameof(ObjectRoutes))]
    public async Task OwnTenantWithOtherTenantsObject_404LikeNoSuchObject_NothingWritten(string name)
    {
        var route = Route(name);
        var beforeA = await fixture.DigestAsync(A.TenantId);
        var beforeB = await fixture.DigestAsync(B.TenantId);

        // A's own tenant in the path, B's run, card or exception after it.
        var response = await SendAsync(route, A, B, A.OwnerToken);
        var ghost = await SendAsync(route, A, Ghost(), A.OwnerToken);

        var problem = AssertProblem(response, 404, "https://hourglass.dev/problems/not-found");
        var nothing = AssertProblem(ghost, 404, "https://hourglass.dev/problems/not-found");
        Assert.Equal((string?)nothing["detail"], (string?)problem["detail"]);
        AssertMentionsNone(response.Body, B);
        Assert.Equal(beforeB, await fixture.DigestAsync(B.TenantId));
        Assert.Equal(beforeA, await fixture.DigestAsync(A.TenantId));
    }

    // ---------------------------------------------------------------------------------------------------------
    // The caller's own tenant
    // ---------------------------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(AllRoutes))]
    public async Task OwnTenant_2xx_OnlyOwnDataAndOtherTenantUntouched(string name)
    {
        var route = Route(name);
        var beforeA = await fixture.DigestAsync(A.TenantId);
        var beforeB = await fixture.DigestAsync(B.TenantId);

        var response = await SendAsync(route, A, A, route.Capability is null ? A.MemberToken : A.OwnerToken);

        Assert.True(response.Code == route.Ok, $"{route}: expected {route.Ok}, got {response}");
        if (response.Code is 200 or 201)
        {
            Assert.Equal("application/json", response.ContentType);
            Assert.NotNull(JsonNode.Parse(response.Body));
        }
        else if (response.Code >= 400)
        {
            AssertProblem(response, route.Ok);
        }

        AssertMentionsNone(response.Body, B);
        Assert.Equal(beforeB, await fixture.DigestAsync(B.TenantId));
        var afterA = await fixture.DigestAsync(A.TenantId);
        if (route.Writes)
        {
            Assert.NotEqual(beforeA, afterA);
        }
        else
        {
            Assert.Equal(beforeA, afterA);
        }
    }

    [Fact]
    public async Task OwnTenant_ListsCarryTheSeededRows()
    {
        var runs = await GetJsonAsync($"{A.Path}/runs", A.MemberToken);
        var violations = await GetJsonAsync($"{A.Path}/violations?rule=contact-weekly-cap", A.MemberToken);
        var exceptions = await GetJsonAsync($"{A.Path}/orders/exceptions", A.MemberToken);
        var strategies = await GetJsonAsync($"{A.Path}/strategies", A.MemberToken);
        var policy = await Server.GetAsync($"{A.Path}/policy", A.MemberToken);

        Assert.Contains(runs["items"]!.AsArray(), r => (string?)r!["id"] == A.RunId.ToString());
        Assert.All(violations["items"]!.AsArray(), v => Assert.Equal("contact-weekly-cap", (string?)v!["policy_key"]));
        Assert.NotEmpty(violations["items"]!.AsArray());
        Assert.Contains(exceptions["items"]!.AsArray(), e => (string?)e!["id"] == A.ReviewExceptionId.ToString());
        Assert.Contains(strategies.AsArray(), x => (string?)x!["strategy_key"] == "call_first");
        Assert.True(policy.Code == 200, policy.ToString());
        Assert.Matches("^\"[1-9][0-9]*\"$", policy.Headers.ETag!.Tag);
    }

    [Fact]
    public async Task Pagination_CursorWalksEveryRowOnceNewestFirst()
    {
        var seen = new List<string>();
        string? cursor = null;
        for (var page = 0; page < 20; page++)
        {
            var json = await GetJsonAsync($"{A.Path}/violations?limit=1{(cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor))}", A.MemberToken);
            seen.AddRange(json["items"]!.AsArray().Select(i => (string)i!["id"]!));
            cursor = (string?)json["next_cursor"];
            if (cursor is null)
            {
                break;
            }
        }

        var expected = (long)(await fixture.Db.ScalarAsync("select count(*) from public.agent_policy_violations where tenant_id = $1", A.TenantId))!;
        Assert.Equal(expected, seen.Count);
        Assert.Equal(seen.Count, seen.Distinct().Count());
    }

    // ---------------------------------------------------------------------------------------------------------
    // Row-level security in force: these routes' SQL has no tenant filter at all
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task Tenants_NoTenantFilterInTheQuery_EachUserSeesOnlyTheirs_ServiceSeesAll()
    {
        var asA = await GetJsonAsync("/api/v1/tenants", A.MemberToken);
        var asB = await GetJsonAsync("/api/v1/tenants", B.OwnerToken);
        var asStranger = await GetJsonAsync("/api/v1/tenants", ApiServer.UserToken(Guid.NewGuid()));
        var asService = await GetJsonAsync("/api/v1/tenants", ApiServer.ServiceToken());

        Assert.Equal([A.TenantId.ToString()], asA.AsArray().Select(t => (string)t!["id"]!));
        Assert.Equal([B.TenantId.ToString()], asB.AsArray().Select(t => (string)t!["id"]!));
        Assert.Empty(asStranger.AsArray());
        var all = asService.AsArray().Select(t => (string)t!["id"]!).ToList();
        Assert.Contains(A.TenantId.ToString(), all);
        Assert.Contains(B.TenantId.ToString(), all);
    }

    [Fact]
    public async Task MyCards_NoTenantFilterInTheQuery_OnlyTheCallersTenantsCards()
    {
        foreach (var (side, other) in new[] { (A, B), (B, A) })
        {
            var cards = (await GetJsonAsync("/api/v1/me/cards", side.MemberToken)).AsArray();
            var open = (long)(await fixture.Db.ScalarAsync("select count(*) from public.cards where tenant_id = $1 and status = 'open'", side.TenantId))!;

            Assert.NotEmpty(cards);
            Assert.All(cards, c => Assert.Equal(side.TenantId.ToString(), (string?)c!["tenant_id"]));
            Assert.Equal(Math.Min(open, 200), cards.Count);
            AssertMentionsNone(cards.ToJsonString(), other);
        }

        var service = (await GetJsonAsync("/api/v1/me/cards", ApiServer.ServiceToken())).AsArray().Select(c => (string)c!["tenant_id"]!).ToHashSet();
        Assert.Contains(A.TenantId.ToString(), service);
        Assert.Contains(B.TenantId.ToString(), service);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Validation
    // ---------------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("GET", "/runs?limit=0", null, "limit")]
    [InlineData("GET", "/reflections?limit=501", null, "limit")]
    [InlineData("GET", "/cards?cursor=bm90IGEgY3Vyc29y", null, "cursor")]
    [InlineData("GET", "/violations?cursor=%25%25%25", null, "cursor")]
    [InlineData("GET", "/orders/queue?limit=-3", null, "limit")]
    [InlineData("GET", "/patterns?cursor=MTIzfG5vdC1hLWd1aWQ%3D", null, "cursor")]
    [InlineData("POST", "/touches", """{"entity_type": "contact", "touch_type": "call"}""", "body")]
    [InlineData("POST", "/touches?on_error=sometimes", "[]", "on_error")]
    [InlineData("POST", "/events", """{"event_type": "reply"}""", "body")]
    [InlineData("POST", "/policy/explain", "{}", "kind")]
    [InlineData("PATCH", "/settings", """{"paused": true}""", "pause_reason")]
    [InlineData("PATCH", "/settings", """{"cron": "*/90 * * *"}""", "cron")]
    [InlineData("PATCH", "/settings", """{"cron": "0 * * * *", "timezone": "Atlantis/Capital"}""", "timezone")]
    [InlineData("PUT", "/policy", """{"schema": "hourglass.policy/v1", "rules": [{"id": "cap-1", "kind": "cap", "scope": "contact", "window": "fortnight", "limit": 3}]}""", "rules[0].window")]
    [InlineData("PUT", "/policy", """{"schema": "hourglass.policy/v1", "colour": "blue"}""", "colour")]
    [InlineData("POST", "/runs", """{"hour": "2026-01-05T09:00:00Z"}""", "hour")]
    public async Task BadInput_400ValidationProblemNamingTheField_NothingWritten(string method, string path, string? body, string field)
    {
        var before = await fixture.DigestAsync(A.TenantId);

        var response = await Server.SendAsync(new HttpMethod(method), A.Path + path, A.OwnerToken, body);

        var problem = AssertProblem(response, 400, "https://hourglass.dev/problems/validation");
        var errors = problem["errors"]!.AsObject();
        Assert.True(errors.Any(e => e.Key.Contains(field, StringComparison.Ordinal)), $"no error for {field}: {response}");
        Assert.Equal(before, await fixture.DigestAsync(A.TenantId));
    }

    [Theory]
    [InlineData("GET", "/runs?limit=many", null)]
    [InlineData("GET", "/violations/trends?days=0", null)]
    [InlineData("GET", "/inbound/trends?days=400", null)]
    [InlineData("POST", "/touches", """[{"entity_type": "contact", "entity_id": "00000000-0000-4000-8000-000000000001", "touch_type": "call"}]""")]
    [InlineData("POST", "/events", """[{"event_type": "reply", "tenant_id": "00000000-0000-4000-8000-000000000001"}]""")]
    [InlineData("POST", "/cards/00000000-0000-4000-8000-000000000001/complete", "{not json")]
    [InlineData("PUT", "/policy", "[1, 2]")]
    public async Task MalformedOrRefusedInput_400Problem_NothingWritten(string method, string path, string? body)
    {
        var before = await fixture.DigestAsync(A.TenantId);

        var response = await Server.SendAsync(new HttpMethod(method), A.Path + path, A.OwnerToken, body);

        AssertProblem(response, 400);
        Assert.Equal(before, await fixture.DigestAsync(A.TenantId));
    }

    [Theory]
    [InlineData("/touches")]
    [InlineData("/events")]
    public async Task Batch_OnErrorSkip_RecordsTheGoodLineAndNamesTheBadOne_RefuseWritesNothing(string path)
    {
        var unknown = Guid.NewGuid();
        var body = path == "/touches"
            ? $$"""
                [{"entity_type": "contact", "entity_id": "{{A.TouchContactId}}", "touch_type": "email", "idempotency_key": "skip-{{Guid.NewGuid():N}}"},
                 {"entity_type": "contact", "entity_id": "{{unknown}}", "touch_type": "email"}]
                """
            : $$"""
                [{"event_type": "reply", "entity_type": "contact", "entity_id": "{{A.TouchContactId}}", "idempotency_key": "skip-{{Guid.NewGuid():N}}"},
                 {"event_type": "reply", "entity_type": "contact", "entity_id": "{{unknown}}"}]
                """;
        var before = await fixture.DigestAsync(A.TenantId);

        var refused = await Server.SendAsync(HttpMethod.Post, $"{A.Path}{path}?on_error=refuse", A.MemberToken, body);
        var unchanged = await fixture.DigestAsync(A.TenantId);
        var skipped = await Server.SendAsync(HttpMethod.Post, $"{A.Path}{path}?on_error=skip", A.MemberToken, body);

        var problem = AssertProblem(refused, 400, "https://hourglass.dev/problems/invalid-request");
        Assert.Contains("line 2", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Equal(before, unchanged);
        Assert.True(skipped.Code == 200, skipped.ToString());
        var outcomes = JsonNode.Parse(skipped.Body)!.AsArray();
        Assert.Equal(["recorded", "rejected"], outcomes.Select(o => (string)o!["outcome"]!));
        Assert.Contains(unknown.ToString(), (string?)outcomes[1]!["error"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_IfMatch_StaleIs412_CurrentSaves_GarbageIs400()
    {
        var current = await Server.GetAsync($"{A.Path}/policy", A.OwnerToken);
        var etag = current.Headers.ETag!.Tag;
        var version = int.Parse(etag.Trim('"'), System.Globalization.CultureInfo.InvariantCulture);
        var before = await fixture.DigestAsync(A.TenantId);

        var stale = await Server.SendAsync(HttpMethod.Put, $"{A.Path}/policy", A.OwnerToken, PolicyDocument.DefaultJson,
            r => r.Headers.TryAddWithoutValidation("If-Match", $"\"{version - 1}\""));
        var garbage = await Server.SendAsync(HttpMethod.Put, $"{A.Path}/policy", A.OwnerToken, PolicyDocument.DefaultJson,
            r => r.Headers.TryAddWithoutValidation("If-Match", "\"latest\""));

        AssertProblem(stale, 412, "https://hourglass.dev/problems/precondition-failed");
        Assert.True(AssertProblem(garbage, 400, "https://hourglass.dev/problems/validation")["errors"]!.AsObject().ContainsKey("If-Match"));
        Assert.Equal(before, await fixture.DigestAsync(A.TenantId));

        var saved = await Server.SendAsync(HttpMethod.Put, $"{A.Path}/policy", A.OwnerToken, PolicyDocument.DefaultJson,
            r => r.Headers.TryAddWithoutValidation("If-Match", etag));

        Assert.True(saved.Code == 200, saved.ToString());
        Assert.Equal($"\"{version + 1}\"", saved.Headers.ETag!.Tag);
        Assert.Equal(version + 1, (int)JsonNode.Parse(saved.Body)!["version"]!);
        Assert.Equal($"\"{version + 1}\"", (await Server.GetAsync($"{A.Path}/policy", A.MemberToken)).Headers.ETag!.Tag);
    }

    [Fact]
    public async Task Settings_RefusedPause_LeavesTheScheduleAsItWas()
    {
        var before = await fixture.DigestAsync(A.TenantId);

        // A valid cron with a pause that lacks its reason: refused whole, the cron not saved either.
        var response = await Server.SendAsync(HttpMethod.Patch, $"{A.Path}/settings", A.OwnerToken, """{"cron": "45 6 * * *", "paused": true}""");

        AssertProblem(response, 400);
        Assert.Equal(before, await fixture.DigestAsync(A.TenantId));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Roles within the tenant
    // ---------------------------------------------------------------------------------------------------------

    public static TheoryData<string> CapabilityRoutes => Names(r => r.Capability is not null);

    [Theory]
    [MemberData(nameof(CapabilityRoutes))]
    public async Task PlainMember_RouteNeedingACapabilityTheirRoleLacks_403NamingIt_NothingWritten(string name)
    {
        var route = Route(name);
        var before = await fixture.DigestAsync(A.TenantId);

        var response = await SendAsync(route, A, A, A.MemberToken);

        // A member knows the tenant exists: the refusal says what it would take, not "not found".
        var problem = AssertProblem(response, 403, "https://hourglass.dev/problems/forbidden");
        Assert.Contains($"'{route.Capability}'", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Contains("member", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Equal(before, await fixture.DigestAsync(A.TenantId));
    }

    [Theory]
    [InlineData("PATCH", "/settings", """{"paused": true, "pause_reason": "a member tries"}""")]
    [InlineData("POST", "/runs", """{"dry_run": false}""")]
    public async Task PlainMember_PauseOrRealRun_403_NothingWritten(string method, string path, string body)
    {
        var before = await fixture.DigestAsync(A.TenantId);

        var response = await Server.SendAsync(new HttpMethod(method), A.Path + path, A.MemberToken, body);

        // The run is refused before the server's lack of a worker matters: the role is checked first.
        AssertProblem(response, 403, "https://hourglass.dev/problems/forbidden");
        Assert.Equal(before, await fixture.DigestAsync(A.TenantId));
    }

    [Fact]
    public async Task RunNow_WithAWorker_MemberDryRuns_OnlyOwnerRunsForReal_OtherTenantUntouched()
    {
        // Nothing due while this worker lives: it only answers "run now".
        await fixture.Db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = now() + interval '30 days'");
        await using var server = await ApiServer.StartAsync(fixture.ConnectionString, worker: true);
        var beforeB = await fixture.DigestAsync(B.TenantId);

        var dry = await server.SendAsync(HttpMethod.Post, $"{A.Path}/runs", A.MemberToken, """{"dry_run": true}""");
        var memberReal = await server.SendAsync(HttpMethod.Post, $"{A.Path}/runs", A.MemberToken, """{"dry_run": false}""");
        var otherTenant = await server.SendAsync(HttpMethod.Post, $"{B.Path}/runs", A.OwnerToken, """{"dry_run": true}""");
        var ownerReal = await server.SendAsync(HttpMethod.Post, $"{A.Path}/runs", A.OwnerToken, null);

        Assert.True(dry.Code == 201, dry.ToString());
        var dryRun = Guid.Parse((string)JsonNode.Parse(dry.Body)!["run_id"]!);
        Assert.Equal(true, await fixture.Db.ScalarAsync(
            "select (cycle_metrics ->> 'dry_run')::boolean from public.agent_autonomous_runs where tenant_id = $1 and id = $2", A.TenantId, dryRun));
        AssertProblem(memberReal, 403, "https://hourglass.dev/problems/forbidden");
        AssertProblem(otherTenant, 404, "https://hourglass.dev/problems/not-found");
        Assert.True(ownerReal.Code == 201, ownerReal.ToString());
        Assert.Equal("completed", (string?)JsonNode.Parse(ownerReal.Body)!["status"]);
        Assert.Equal(beforeB, await fixture.DigestAsync(B.TenantId));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Rate limits
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task RateLimit_BurstOverTheLimit_429WithRetryAfter_OtherTenantUnaffected()
    {
        await using var limited = await ApiServer.StartAsync(fixture.ConnectionString,
            new Dictionary<string, string?> { ["HOURGLASS_API_RATE_LIMIT"] = "5" });

        // 5 a second with a burst of 10: 40 requests at once for tenant A. At most the burst plus what refilled while
        // they arrived gets through (the bound holds however slowly a loaded machine serves them).
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var burst = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => limited.GetAsync(A.Path, A.MemberToken)));
        var elapsed = clock.Elapsed;
        var other = await limited.GetAsync(B.Path, B.MemberToken);

        var codes = string.Join(", ", burst.Select(r => r.Code));
        var limitedResponses = burst.Where(r => r.Code == 429).ToList();
        Assert.All(burst, r => Assert.True(r.Code is 200 or 429, codes));
        Assert.True(burst.Count(r => r.Code == 200) >= 10, codes);
        Assert.True(burst.Count(r => r.Code == 200) <= 10 + (5 * ((int)elapsed.TotalSeconds + 1)), $"{codes} in {elapsed}");
        Assert.NotEmpty(limitedResponses);
        Assert.All(limitedResponses, r =>
        {
            AssertProblem(r, 429, "https://hourglass.dev/problems/rate-limited");
            Assert.Equal("1", r.Headers.RetryAfter?.ToString());
        });
        Assert.True(other.Code == 200, other.ToString());

        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var later = await limited.GetAsync(A.Path, A.MemberToken);
        Assert.True(later.Code == 200, later.ToString());
    }

    [Fact]
    public async Task RateLimit_RequestsWithoutAValidToken_DoNotSpendTheTenantsQuota()
    {
        await using var limited = await ApiServer.StartAsync(fixture.ConnectionString,
            new Dictionary<string, string?> { ["HOURGLASS_API_RATE_LIMIT"] = "5" });

        // Someone who knows tenant A's id but has no token hammers its routes: all 401, or 429 once their own address's
        // bucket is empty — and A's member is served at once afterwards.
        var anonymous = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => limited.GetAsync(A.Path, token: null)));
        var member = await limited.GetAsync(A.Path, A.MemberToken);

        Assert.All(anonymous, r => Assert.True(r.Code is 401 or 429, r.ToString()));
        Assert.Contains(anonymous, r => r.Code == 429);
        Assert.True(member.Code == 200, member.ToString());
    }

    // ---------------------------------------------------------------------------------------------------------
    // OpenAPI, health, metrics
    // ---------------------------------------------------------------------------------------------------------

    [Fact]
    public async Task OpenApi_ValidDocument_DocumentsEveryRouteAndNoOther()
    {
        var response = await Server.GetAsync("/openapi/v1.json", token: null);
        Assert.True(response.Code == 200, response.ToString());

        var read = OpenApiDocument.Parse(response.Body, "json");

        Assert.NotNull(read.Document);
        Assert.Empty(read.Diagnostic!.Errors);
        Assert.Contains(read.Diagnostic.SpecificationVersion, new[] { OpenApiSpecVersion.OpenApi3_0, OpenApiSpecVersion.OpenApi3_1 });
        Assert.Matches("^3\\.[01]\\.[0-9]+$", (string?)JsonNode.Parse(response.Body)!["openapi"]);
        Assert.Empty(read.Document.Validate(ValidationRuleSet.GetDefaultRuleSet()) ?? []);
        Assert.Equal("Hourglass API", read.Document.Info.Title);

        var documented = read.Document.Paths
            .Where(p => p.Key.StartsWith("/api/v1", StringComparison.Ordinal))
            .SelectMany(p => (p.Value.Operations ?? []).Select(o => $"{o.Key.ToString().ToUpperInvariant()} {p.Key}"))
            .ToHashSet(StringComparer.Ordinal);
        var tested = s_routes.Select(r => $"{r.Method} {r.Template}").ToHashSet(StringComparer.Ordinal);
        Assert.Empty(tested.Except(documented));
        Assert.Empty(documented.Except(tested));
        foreach (var path in read.Document.Paths.Where(p => p.Key.StartsWith("/api/v1", StringComparison.Ordinal)))
        {
            foreach (var (method, operation) in path.Value.Operations ?? [])
            {
                Assert.False(string.IsNullOrEmpty(operation.OperationId), $"{method} {path.Key} has no operationId");
                var responses = operation.Responses!.Keys.ToList();
                Assert.True(responses.Contains("401") && responses.Contains("429"), $"{method} {path.Key} documents {string.Join(", ", responses)}");
                Assert.True(!path.Key.Contains("{tenantId}", StringComparison.Ordinal) || responses.Contains("404"), $"{method} {path.Key} documents no 404");
            }
        }

        // Optional fields of the bodies are not documented as required.
        Assert.Empty(read.Document.Components!.Schemas!["SettingsPatch"].Required ?? new HashSet<string>());
        Assert.Equal(["kind"], read.Document.Components.Schemas["ExplainRequest"].Required ?? new HashSet<string>());
    }

    [Fact]
    public async Task OpenApi_TokenSchemesDeclared_EveryApiOperationRequiresOne_BodiesDocumentTooLargeAndMediaType()
    {
        var response = await Server.GetAsync("/openapi/v1.json", token: null);
        var read = OpenApiDocument.Parse(response.Body, "json");
        var json = JsonNode.Parse(response.Body)!;

        // The schemes ApiAuth accepts: a JWT as a Bearer token, or the service key in the apikey header.
        var schemes = read.Document!.Components!.SecuritySchemes!;
        Assert.Equal(SecuritySchemeType.Http, schemes["bearerAuth"].Type);
        Assert.Equal("bearer", schemes["bearerAuth"].Scheme);
        Assert.Equal("JWT", schemes["bearerAuth"].BearerFormat);
        Assert.Equal(SecuritySchemeType.ApiKey, schemes["apikey"].Type);
        Assert.Equal(ParameterLocation.Header, schemes["apikey"].In);
        Assert.Equal("apikey", schemes["apikey"].Name);

        var operations = json["paths"]!.AsObject().SelectMany(p => p.Value!.AsObject().Select(o => (Path: p.Key, Method: o.Key, Operation: o.Value!))).ToList();
        foreach (var (path, method, operation) in operations)
        {
            // Two requirement objects: either scheme will do. Nothing outside /api/v1 asks for a token.
            var security = operation["security"]?.AsArray().Select(r => string.Join("+", r!.AsObject().Select(k => k.Key))).Order(StringComparer.Ordinal).ToList();
            if (path.StartsWith("/api/v1", StringComparison.Ordinal))
            {
                Assert.True(security is ["apikey", "bearerAuth"], $"{method} {path}: security {string.Join(", ", security ?? [])}");
            }
            else
            {
                Assert.True(security is null or [], $"{method} {path} asks for a token");
            }

            if (operation["requestBody"] is not null)
            {
                var responses = operation["responses"]!.AsObject();
                Assert.True(responses.ContainsKey("413") && responses.ContainsKey("415"), $"{method} {path} documents {string.Join(", ", responses.Select(r => r.Key))}");
            }
        }

        Assert.Contains(operations, o => o.Operation["requestBody"] is not null);
        Assert.Equal(true, (bool?)json["paths"]!["/api/v1/tenants/{tenantId}/settings"]!["patch"]!["requestBody"]!["required"]);
        Assert.Null(json["paths"]!["/api/v1/tenants/{tenantId}/runs"]!["post"]!["requestBody"]!["required"]);
    }

    [Fact]
    public async Task HealthAndMetrics_ServedWithoutAToken()
    {
        var health = await Server.GetAsync("/health", token: null);
        var metrics = await Server.GetAsync("/metrics", token: null);

        Assert.True(health.Code == 200, health.ToString());
        Assert.Equal("healthy", (string?)JsonNode.Parse(health.Body)!["status"]);
        Assert.True(metrics.Code == 200, metrics.ToString());
        Assert.StartsWith("text/plain", metrics.ContentType ?? "", StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------------------------------------------------

    private static string T(string rest) => "/api/v1/tenants/{tenantId}" + rest;

    private static TheoryData<string> Names(Func<ApiRoute, bool> which)
    {
        var data = new TheoryData<string>();
        foreach (var route in s_routes.Where(which))
        {
            data.Add(route.Name);
        }

        return data;
    }

    private static ApiRoute Route(string name) => s_routes.Single(r => r.Name == name);

    // A tenant, run, card and exception that exist nowhere.
    private static ApiTenant Ghost() => new(Guid.NewGuid(), "ghost", Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(),
        Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(),
        $"ghost_{Guid.NewGuid():N}");

    private Task<ApiResponse> SendAsync(ApiRoute route, ApiTenant tenant, ApiTenant objects, string? token) =>
        Server.SendAsync(route.HttpMethod, route.Path(tenant, objects), token, route.Body(objects));

    private async Task<JsonNode> GetJsonAsync(string path, string token)
    {
        var response = await Server.GetAsync(path, token);
        Assert.True(response.Code == 200, $"GET {path}: {response}");
        return JsonNode.Parse(response.Body)!;
    }

    internal static JsonObject AssertProblem(ApiResponse response, int status, string? type = null)
    {
        Assert.True(response.Code == status, $"expected {status}, got {response}");
        Assert.Equal(ProblemJson, response.ContentType);
        var problem = JsonNode.Parse(response.Body)!.AsObject();
        Assert.Equal(status, (int)problem["status"]!);
        if (type is not null)
        {
            Assert.Equal(type, (string?)problem["type"]);
        }

        return problem;
    }

    private static void AssertMentionsNone(string body, ApiTenant other)
    {
        foreach (var id in other.Ids)
        {
            Assert.DoesNotContain(id.ToString(), body, StringComparison.OrdinalIgnoreCase);
        }
    }
}
