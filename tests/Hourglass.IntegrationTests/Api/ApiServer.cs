using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.IntegrationTests.Security;
using Hourglass.Orders;
using Hourglass.Policies;
using Hourglass.Server.Api;
using Hourglass.Storage;

namespace Hourglass.IntegrationTests.Api;

/// <summary>What a request got back: status, content type, headers and the body as text (read whatever the status).</summary>
internal sealed record ApiResponse(HttpStatusCode Status, string? ContentType, HttpResponseHeaders Headers, string Body)
{
    public int Code => (int)Status;

    public override string ToString() => $"{Code} {ContentType}: {(Body.Length > 600 ? Body[..600] + "…" : Body)}";
}

/// <summary>
/// A real <c>hourglass serve --no-worker</c> process on a free loopback port, with the API on (HOURGLASS_JWT_SECRET
/// set to <see cref="Secret"/>), against a test database; killed on dispose. Tokens are minted with the server's own
/// <see cref="ApiAuth.Sign"/> and that secret, as Supabase Auth would sign them.
/// </summary>
internal sealed class ApiServer : IAsyncDisposable
{
    public const string Secret = "hourglass-api-tests-jwt-secret-0123456789abcdef";

    private static readonly ApiAuth s_auth = new(Encoding.UTF8.GetBytes(Secret), TimeProvider.System);
    private static readonly ApiAuth s_otherKey = new(Encoding.UTF8.GetBytes("not-the-project-secret-0123456789abcdefghij"), TimeProvider.System);

    private readonly Process _process;

    private ApiServer(Process process, string baseUrl)
    {
        _process = process;
        BaseUrl = baseUrl;
        Http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(60) };
    }

    public string BaseUrl { get; }

    public HttpClient Http { get; }

    /// <summary>
    /// Starts the server and waits until /health answers. <paramref name="environment"/> adds variables (e.g.
    /// HOURGLASS_API_RATE_LIMIT); <paramref name="worker"/> runs it with its worker loop (default: --no-worker).
    /// </summary>
    public static async Task<ApiServer> StartAsync(string connectionString, IReadOnlyDictionary<string, string?>? environment = null, bool worker = false)
    {
        var variables = new Dictionary<string, string?>(StringComparer.Ordinal) { ["HOURGLASS_JWT_SECRET"] = Secret };
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            variables[key] = value;
        }

        // A port found free can be taken before the server binds it: then the process exits and we try another.
        for (var attempt = 1; ; attempt++)
        {
            var url = $"http://127.0.0.1:{FreePort()}";
            string[] arguments = worker
                ? ["serve", "--urls", url, "--database", connectionString]
                : ["serve", "--no-worker", "--urls", url, "--database", connectionString];
            var process = HourglassProcess.Start(variables, arguments);
            var server = new ApiServer(process, url);
            if (await server.WaitHealthyAsync(TimeSpan.FromSeconds(60)))
            {
                return server;
            }

            var exited = process.HasExited;
            await server.DisposeAsync();
            if (!exited || attempt == 3)
            {
                throw new InvalidOperationException($"hourglass serve did not become healthy on {url} (attempt {attempt}; exited: {exited})");
            }
        }
    }

    public async Task<ApiResponse> SendAsync(HttpMethod method, string path, string? token, string? jsonBody = null,
        Action<HttpRequestMessage>? configure = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (jsonBody is not null)
        {
            request.Content = new StringContent(jsonBody, Encoding.UTF8, "application/json");
        }

        configure?.Invoke(request);
        using var response = await Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        return new ApiResponse(response.StatusCode, response.Content.Headers.ContentType?.MediaType, response.Headers, body);
    }

    public Task<ApiResponse> GetAsync(string path, string? token) => SendAsync(HttpMethod.Get, path, token);

    /// <summary>A signed-in user's access token: role authenticated, sub the user, an hour to live.</summary>
    public static string UserToken(Guid userId, TimeSpan? lifetime = null) => s_auth.Sign(Claims("authenticated", userId, lifetime ?? TimeSpan.FromHours(1)));

    /// <summary>The project's service key: role service_role.</summary>
    public static string ServiceToken() => s_auth.Sign(Claims("service_role", null, TimeSpan.FromHours(1)));

    /// <summary>The project's anon key: a valid signature, but a role the API refuses.</summary>
    public static string AnonToken() => s_auth.Sign(Claims("anon", null, TimeSpan.FromHours(1)));

    /// <summary>A user token that expired ten minutes ago (past the 30 s of clock skew).</summary>
    public static string ExpiredToken(Guid userId) => s_auth.Sign(Claims("authenticated", userId, TimeSpan.FromMinutes(-10)));

    /// <summary>A well-formed user token signed with another secret.</summary>
    public static string ForgedToken(Guid userId) => s_otherKey.Sign(Claims("authenticated", userId, TimeSpan.FromHours(1)));

    /// <summary>A user token with no <c>exp</c>: it would never expire.</summary>
    public static string NoExpiryToken(Guid userId)
    {
        var claims = Claims("authenticated", userId, TimeSpan.FromHours(1));
        claims.Remove("exp");
        return s_auth.Sign(claims);
    }

    /// <summary>A user token with no <c>sub</c>.</summary>
    public static string NoUserToken() => s_auth.Sign(Claims("authenticated", null, TimeSpan.FromHours(1)));

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        _process.Dispose();
    }

    private static Dictionary<string, object> Claims(string role, Guid? userId, TimeSpan lifetime)
    {
        var now = DateTimeOffset.UtcNow;
        var claims = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["role"] = role,
            ["aud"] = role == "authenticated" ? "authenticated" : role,
            ["iat"] = now.ToUnixTimeSeconds(),
            ["exp"] = now.Add(lifetime).ToUnixTimeSeconds(),
        };
        if (userId is { } user)
        {
            claims["sub"] = user.ToString();
        }

        return claims;
    }

    private async Task<bool> WaitHealthyAsync(TimeSpan timeout)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (DateTimeOffset.UtcNow < deadline && !_process.HasExited)
        {
            try
            {
                using var response = await Http.GetAsync("/health");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return true;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Listening, not answering yet.
            }

            await Task.Delay(150);
        }

        return false;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>One tenant of the API fixture: its people and one of each thing the routes act on.</summary>
internal sealed record ApiTenant(
    Guid TenantId,
    string Name,
    Guid OwnerId,
    Guid MemberId,
    Guid AccountId,
    Guid TouchContactId,
    Guid RunId,
    Guid TouchCardId,
    Guid NoticeCardId,
    Guid ApproveCardId,
    Guid RejectCardId,
    Guid ReviewExceptionId,
    Guid ResolveExceptionId,
    Guid DismissExceptionId,
    Guid OrderId,
    Guid SpareMemberId,
    string SpareRole)
{
    public string OwnerToken => ApiServer.UserToken(OwnerId);

    public string MemberToken => ApiServer.UserToken(MemberId);

    public string Path => $"/api/v1/tenants/{TenantId}";

    /// <summary>Every id of this tenant a response could leak.</summary>
    public IEnumerable<Guid> Ids =>
    [
        TenantId, AccountId, TouchContactId, RunId, TouchCardId, NoticeCardId, ApproveCardId, RejectCardId,
        ReviewExceptionId, ResolveExceptionId, DismissExceptionId, OrderId, SpareMemberId,
    ];
}

/// <summary>
/// A migrated database with tenants A and B, each with an owner and a plain member and data in every area the API
/// serves — a completed cycle run by the real <c>hourglass run</c> (with its reflection), contacts and their clocks,
/// cards of every kind, a saved policy, violations, orders processed into a validated one and exceptions, events,
/// patterns and strategies — and a real <c>hourglass serve</c> over it. One per test class.
/// </summary>
public sealed class ApiFixture : IAsyncLifetime
{
    private readonly DatabaseFixture _database = new();
    private ApiServer? _server;
    private ApiTenant? _a;
    private ApiTenant? _b;

    internal ApiServer Server => _server ?? throw new InvalidOperationException("fixture not initialised");

    internal ApiTenant A => _a ?? throw new InvalidOperationException("fixture not initialised");

    internal ApiTenant B => _b ?? throw new InvalidOperationException("fixture not initialised");

    public string ConnectionString => _database.ConnectionString;

    public TestDb Db => _database.Db;

    public async Task InitializeAsync()
    {
        await _database.InitializeAsync();
        var serverStarting = ApiServer.StartAsync(_database.ConnectionString,
            // The route tests fire bursts at one tenant; the rate limit has a test (and a server) of its own.
            new Dictionary<string, string?> { ["HOURGLASS_API_RATE_LIMIT"] = "10000" });
        try
        {
            var a = SeedBeforeRunAsync("API Tenant A");
            var b = SeedBeforeRunAsync("API Tenant B");
            var (tenantA, tenantB) = (await a, await b);
            await Task.WhenAll(RunCycleAsync(tenantA), RunCycleAsync(tenantB));
            _a = await SeedAfterRunAsync(tenantA, "API Tenant A");
            _b = await SeedAfterRunAsync(tenantB, "API Tenant B");
        }
        catch
        {
            // A fixture that fails to initialise is not disposed: the server must not outlive it.
            await (await serverStarting).DisposeAsync();
            throw;
        }

        _server = await serverStarting;
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        await _database.DisposeAsync();
    }

    /// <summary>
    /// A digest of everything <paramref name="tenantId"/> owns, table by table (every table of the schema contract),
    /// plus the database clock override; read as the superuser. Equal digests mean nothing was written there.
    /// </summary>
    internal async Task<IReadOnlyDictionary<string, string>> DigestAsync(Guid tenantId)
    {
        var digest = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var table in SchemaContract.AllTables)
        {
            digest[table] = (string)(await Db.ScalarAsync(
                $"select count(*) || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' order by to_jsonb(t)::text)), '') " +
                $"from {SampleRow.Qualified(table)} t where {SampleRow.TenantColumn(table)} = $1", tenantId))!;
        }

        digest["hourglass.clock_override"] = (string?)await Db.ScalarAsync("select string_agg(to_jsonb(o)::text, ',') from hourglass.clock_override o") ?? "";
        digest["hourglass.agent_control"] = (string?)await Db.ScalarAsync("select string_agg(to_jsonb(c)::text, ',') from hourglass.agent_control c") ?? "";
        return digest;
    }

    private sealed record Seed(Guid TenantId, Guid OwnerId, Guid MemberId, Guid AccountId, Guid TouchContactId, Guid[] ExceptionIds, Guid ValidatedOrderId);

    // People, contacts (two overdue, for the cycle to work on), a saved policy, and orders processed into one
    // validated order and three exceptions.
    private async Task<Seed> SeedBeforeRunAsync(string name)
    {
        var db = Db;
        var tenant = await db.CreateTenantAsync(name);
        var owner = await db.AddMemberAsync(tenant, role: "owner");
        var member = await db.AddMemberAsync(tenant, role: "member");
        var account = (Guid)(await db.ScalarAsync(
            "insert into public.accounts (tenant_id, name, tier, default_ship_to) values ($1, 'Globex', 'growth', $2::jsonb) returning id",
            tenant, """{"line1": "1 Main St", "city": "Springfield", "postal_code": "62701", "country": "US"}"""))!;
        foreach (var overdue in new[] { "Overdue One", "Overdue Two" })
        {
            var contact = await db.CreateContactAsync(tenant, account, overdue);
            await db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = now() - interval '5 days' where tenant_id = $1 and entity_id = $2",
                tenant, contact);
        }

        var touchContact = await db.CreateContactAsync(tenant, account, "Touched Through The Api");
        await db.ExecuteAsync("select public.refresh_engagement_compliance($1)", tenant);

        await PolicyStore.SaveAsync(db.DataSource, tenant, PolicyDocument.DefaultJson, "api-tests", "the built-in rules, saved");

        var product = (Guid)(await db.ScalarAsync(
            "insert into public.products (tenant_id, sku, name, list_price, unit_cost) values ($1, 'W-1', 'Widget', 10, 6) returning id", tenant))!;
        var orders = new List<Guid>();
        foreach (var quantity in new[] { 2m, 0m, 0m, 0m })
        {
            var order = (Guid)(await db.ScalarAsync("""
                insert into public.orders (tenant_id, account_id, status, po_number, ship_to, requested_ship_date, currency, placed_at)
                values ($1, $2, 'draft', 'PO-1', $3::jsonb, current_date + 10, 'USD', now()) returning id
                """, tenant, account, """{"line1": "1 Main St", "city": "Springfield", "postal_code": "62701", "country": "US"}"""))!;
            await db.ExecuteAsync("insert into public.order_lines (tenant_id, order_id, product_id, quantity, unit_price) values ($1, $2, $3, $4, 10)",
                tenant, order, product, quantity);
            await db.ExecuteAsync("update public.orders set subtotal = $3, total = $3, status = 'placed' where tenant_id = $1 and id = $2",
                tenant, order, quantity * 10m);
            orders.Add(order);
        }

        await new OrderProcessor(db.DataSource, new OrderProcessorOptions { WorkerId = "api-fixture" }).DrainAsync(tenant, null, 1_000, default);
        var exceptions = new List<Guid>();
        foreach (var broken in orders.Skip(1))
        {
            exceptions.Add((Guid)(await db.ScalarAsync(
                "select id from public.order_processing_exceptions where tenant_id = $1 and order_id = $2 order by created_at, id limit 1", tenant, broken))!);
        }

        return new Seed(tenant, owner, member, account, touchContact, [.. exceptions], orders[0]);
    }

    private async Task RunCycleAsync(Seed seed)
    {
        var result = await HourglassProcess.RunAsync("run", "--tenant", seed.TenantId.ToString(), "--database", _database.ConnectionString);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"hourglass run failed ({result.ExitCode}): {result.StandardOutput}{result.StandardError}");
        }
    }

    // Cards of every kind the routes act on, violations, events, patterns and strategies.
    private async Task<ApiTenant> SeedAfterRunAsync(Seed seed, string name)
    {
        var db = Db;
        var tenant = seed.TenantId;
        var run = (Guid)(await db.ScalarAsync(
            "select id from public.agent_autonomous_runs where tenant_id = $1 and status = 'completed' order by started_at desc limit 1", tenant))!;

        var cardContact = await db.CreateContactAsync(tenant, seed.AccountId, "Card Contact");
        var touchCard = await CardAsync(tenant, "insert into public.cards (tenant_id, kind, title, entity_type, entity_id, run_id, due_at) " +
                                                "values ($1, 'touch_task', 'Call Card Contact', 'contact', $2, $3, now() + interval '1 day') returning id", cardContact, run);
        var notice = await CardAsync(tenant, "insert into public.cards (tenant_id, kind, title, run_id) values ($1, 'notice', 'FYI', $2) returning id", run);
        var approve = await CardAsync(tenant, "insert into public.cards (tenant_id, kind, title, run_id, due_at, payload) " +
                                              "values ($1, 'approval', 'Approve a message', $2, now() + interval '3 days', jsonb_build_object('action_key', $3::text)) returning id",
            run, $"approve-{Guid.NewGuid():N}");
        var reject = await CardAsync(tenant, "insert into public.cards (tenant_id, kind, title, run_id, due_at, payload) " +
                                             "values ($1, 'approval', 'Approve another message', $2, now() + interval '3 days', jsonb_build_object('action_key', $3::text)) returning id",
            run, $"reject-{Guid.NewGuid():N}");

        foreach (var (rule, kind, decision, severity) in new[]
                 {
                     ("contact-weekly-cap", "cap", "deny", "warning"), ("business-hours", "send_window", "deny", "warning"),
                     ("large-orders", "order_value_approval", "require_approval", "info"),
                 })
        {
            await db.ExecuteAsync("""
                insert into public.agent_policy_violations (tenant_id, run_id, policy_key, rule_kind, action_type, decision, severity, blocked, message, policy_version)
                values ($1, $2, $3, $4, 'send_message', $5, $6, $5 <> 'warn', 'seeded', 'v1')
                """, tenant, run, rule, kind, decision, severity);
        }

        await db.ExecuteAsync("""
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key)
            values ($1, 'reply', 'contact', $2, '{"channel": "email"}', 'api-fixture', $3)
            """, tenant, seed.TouchContactId, $"seed-{Guid.NewGuid():N}");
        await db.ExecuteAsync("""
            insert into public.client_patterns (tenant_id, entity_type, entity_id, pattern_type, pattern_data, confidence, evidence_count)
            values ($1, 'account', $2, 'reorder_cadence', '{"days": 30}', 0.7, 6)
            on conflict (tenant_id, entity_type, entity_id, pattern_type) do nothing
            """, tenant, seed.AccountId);
        await db.ExecuteAsync("""
            insert into public.success_strategies (tenant_id, strategy_key, name, usage_count, success_count, effectiveness_score)
            values ($1, 'call_first', 'Call first', 10, 6, 0.5833)
            on conflict (tenant_id, strategy_key) do nothing
            """, tenant);

        // A member and a role for the routes that remove one; the role's name is the tenant's own, so another tenant has none.
        var spareMember = await db.AddMemberAsync(tenant, role: "viewer");
        var spareRole = $"spare_{tenant:N}";
        await db.ExecuteAsync("insert into public.tenant_roles (tenant_id, role, capabilities) values ($1, $2, '{read}')", tenant, spareRole);

        return new ApiTenant(tenant, name, seed.OwnerId, seed.MemberId, seed.AccountId, seed.TouchContactId, run, touchCard, notice, approve, reject,
            seed.ExceptionIds[0], seed.ExceptionIds[1], seed.ExceptionIds[2], seed.ValidatedOrderId, spareMember, spareRole);
    }

    private async Task<Guid> CardAsync(Guid tenant, string sql, params object?[] more) => (Guid)(await Db.ScalarAsync(sql, [tenant, .. more]))!;
}
