using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Server.Api;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Hourglass.IntegrationTests.Dashboard;

/// <summary>
/// The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against a real
/// <c>hourglass serve --no-worker</c> process over a database seeded with a tenant's runs, reflections, queue,
/// violations, orders, exception and approval. The page signs in with a user token, picks the tenant, shows the
/// seeded numbers, approves the approval through the UI (the database records the user), and saves a screenshot.
/// </summary>
public sealed class DashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    [Fact]
    public async Task Dashboard_ShowsTheTenantsPanels_ApprovesAndResolvesThroughTheUi_AndSavesAScreenshot()
    {
        var seed = fixture.Seed;
        var (page, outside) = await fixture.NewPageAsync();
        try
        {
            await SignInAsync(page, fixture.Token(seed.UserA));

            // The member of two tenants picks the one with the data (the empty one comes first by name).
            var picker = page.GetByLabel("Tenant", new() { Exact = true });
            await Expect(picker.Locator("option")).ToHaveTextAsync(["Aardvark (empty)", "Acme Distribution"]);
            await Expect(page.Locator("#tenant-view")).ToHaveAttributeAsync("data-tenant-id", seed.EmptyTenant.ToString());
            await picker.SelectOptionAsync(seed.TenantA.ToString());
            await WaitLoadedAsync(page, seed.TenantA);
            await Expect(page.Locator("[data-testid=panel-error]")).ToHaveCountAsync(0);

            // Cycle timeline: the six runs of the last 48 hours (not the one 60 hours ago), the failed one marked.
            await Expect(page.Locator("[data-testid=run-bar]")).ToHaveCountAsync(6);
            await Expect(page.Locator("[data-testid=run-bar][data-status=failed]")).ToHaveCountAsync(1);
            await Expect(page.Locator("[data-testid=run-bar][data-status=completed]")).ToHaveCountAsync(5);
            await Expect(page.Locator("[data-testid=failed-marker]")).ToHaveCountAsync(1);
            await Expect(page.Locator("[data-testid=run-bar][data-status=failed]")).ToHaveAttributeAsync("data-run-id", seed.FailedRun.ToString());
            await Expect(page.Locator("#timeline-summary")).ToHaveAttributeAsync("data-total", "6");
            await Expect(page.Locator("#timeline-summary")).ToHaveAttributeAsync("data-failed", "1");
            await Expect(page.Locator("[data-testid=failed-run]")).ToContainTextAsync("lease lost: the database did not answer");

            // Compliance over time: one point per reflection, the latest value named.
            await Expect(page.Locator("[data-testid=compliance-point]")).ToHaveCountAsync(5);
            await Expect(page.Locator("#compliance-latest")).ToHaveAttributeAsync("data-value", "90");
            await Expect(page.Locator("#compliance-latest")).ToContainTextAsync("90% compliant");

            // The overdue queue lists the overdue contact, and only it.
            var queueRow = page.Locator($"[data-testid=queue-row][data-entity-id='{seed.OverdueContact}']");
            await Expect(page.Locator("[data-testid=queue-row]")).ToHaveCountAsync(1);
            await Expect(queueRow).ToHaveAttributeAsync("data-status", "overdue");
            await Expect(queueRow).ToContainTextAsync("overdue 6 day(s)");
            await Expect(page.Locator("#queue-summary")).ToHaveAttributeAsync("data-overdue", "1");

            // Violations over time: stacked bars on three days, six violations.
            await Expect(page.Locator("[data-testid=violation-day]")).ToHaveCountAsync(3);
            await Expect(page.Locator("#violations-summary")).ToHaveAttributeAsync("data-total", "6");
            await Expect(page.Locator("[data-testid=violation-day] rect[data-severity=critical]")).ToHaveCountAsync(1);
            await Expect(page.Locator("[data-testid=violation-rule]").First).ToHaveAttributeAsync("data-rule", "quiet-hours");

            // Answers from the world: three days with answers, each kind counted (an out-of-office answer is not a reply).
            await Expect(page.Locator("[data-testid=inbound-day]")).ToHaveCountAsync(3);
            var inbound = page.Locator("#inbound-summary");
            await Expect(inbound).ToHaveAttributeAsync("data-bounces", "3");
            await Expect(inbound).ToHaveAttributeAsync("data-complaints", "1");
            await Expect(inbound).ToHaveAttributeAsync("data-unsubscribes", "1");
            await Expect(inbound).ToHaveAttributeAsync("data-replies", "1");
            await Expect(inbound).ToHaveAttributeAsync("data-out-of-office", "1");
            await Expect(page.Locator("[data-testid=inbound-day]").Nth(1).Locator("[data-kind=bounces_soft]")).ToHaveTextAsync("2");

            // Orders: counts by status, throughput, the open exception.
            await Expect(page.Locator("[data-testid=order-status][data-status=validated]")).ToHaveAttributeAsync("data-count", "2");
            await Expect(page.Locator("[data-testid=order-status][data-status=exception]")).ToHaveAttributeAsync("data-count", "1");
            await Expect(page.Locator("[data-testid=order-status][data-status=pending]")).ToHaveAttributeAsync("data-count", "1");
            await Expect(page.Locator("#orders-processed-count")).ToHaveAttributeAsync("data-count", "3");
            await Expect(page.Locator("#open-exceptions-count")).ToHaveAttributeAsync("data-count", "1");
            await Expect(page.Locator("[data-testid=throughput-bar]")).ToHaveCountAsync(7);

            // The latest reflections, newest first.
            await Expect(page.Locator("[data-testid=reflection]")).ToHaveCountAsync(5);
            await Expect(page.Locator("[data-testid=reflection]").First).ToContainTextAsync("engagement.compliance_pct +2.5 to 90");
            var rolledUp = page.Locator("[data-testid=reflection][data-runs='2']");
            await Expect(rolledUp).ToHaveCountAsync(1);
            await Expect(rolledUp).ToContainTextAsync("· 2 runs");
            await Expect(rolledUp).ToContainTextAsync(", 2 runs: 0 actions taken, 0 blocked or failed. Run 1 (written directly, started ");
            await Expect(rolledUp).ToContainTextAsync("Run 2 (manual, started ? UTC): A manual run: no actions taken.");

            // The queues with their actions.
            var exceptionRow = page.Locator($"[data-testid=exception-row][data-exception-id='{seed.Exception}']");
            await Expect(exceptionRow).ToContainTextAsync("exceeds the available credit");
            await Expect(exceptionRow).ToHaveAttributeAsync("data-status", "open");
            var approvalRow = page.Locator($"[data-testid=approval-row][data-card-id='{seed.ApprovalCard}']");
            await Expect(approvalRow).ToContainTextAsync("Send the follow-up email to Dana Overdue");

            var screenshot = Path.Combine(AppContext.BaseDirectory, "dashboard.png");
            File.Delete(screenshot);
            await page.ScreenshotAsync(new() { Path = screenshot, FullPage = true });
            var png = await File.ReadAllBytesAsync(screenshot);
            Assert.True(png.Length > 30_000, $"the screenshot {screenshot} is only {png.Length} bytes");
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, png[..4]);

            // Approve through the UI, with a note: the database records the decision and the user who made it.
            await approvalRow.GetByRole(AriaRole.Button, new() { Name = "Approve: Send the follow-up email to Dana Overdue" }).ClickAsync();
            var dialog = page.GetByRole(AriaRole.Dialog);
            await Expect(dialog).ToBeVisibleAsync();
            await dialog.GetByLabel("Note (optional)").FillAsync("Checked the wording: send it.");
            await dialog.GetByRole(AriaRole.Button, new() { Name = "Approve" }).ClickAsync();
            await Expect(page.Locator("#panel-approvals [data-testid=panel-notice]")).ToContainTextAsync("Approved: Send the follow-up email");
            await Expect(approvalRow).ToHaveCountAsync(0);
            await Expect(page.Locator("[data-testid=approvals-empty]")).ToBeVisibleAsync();
            var card = await fixture.Db.ScalarAsync(
                "select status || '|' || completed_by || '|' || (payload -> 'approval' ->> 'decision') || '|' || (payload -> 'approval' ->> 'note') from public.cards where id = $1",
                seed.ApprovalCard);
            Assert.Equal($"done|user:{seed.UserA}|approved|Checked the wording: send it.", card);

            // The exception: review, then resolve; resolving without a note is refused in the page.
            await exceptionRow.GetByTestId("review-button").ClickAsync();
            await Expect(page.Locator("#panel-exceptions [data-testid=panel-notice]")).ToContainTextAsync("In review");
            await Expect(exceptionRow).ToHaveAttributeAsync("data-status", "in_review");
            await Expect(exceptionRow.GetByTestId("review-button")).ToHaveCountAsync(0);
            await exceptionRow.GetByTestId("resolve-button").ClickAsync();
            await Expect(dialog).ToBeVisibleAsync();
            await dialog.GetByRole(AriaRole.Button, new() { Name = "Resolve" }).ClickAsync();
            await Expect(dialog.GetByRole(AriaRole.Alert)).ToContainTextAsync("A note is required");
            await dialog.GetByLabel("What was done (required)").FillAsync("Credit limit raised by finance.");
            await dialog.GetByRole(AriaRole.Button, new() { Name = "Resolve" }).ClickAsync();
            await Expect(page.Locator("#panel-exceptions [data-testid=panel-notice]")).ToContainTextAsync("Resolved");
            await Expect(exceptionRow).ToHaveCountAsync(0);
            await Expect(page.Locator("#open-exceptions-count")).ToHaveAttributeAsync("data-count", "0");
            var exception = await fixture.Db.ScalarAsync(
                "select resolution_status || '|' || resolved_by || '|' || resolution_notes from public.order_processing_exceptions where id = $1", seed.Exception);
            Assert.Equal($"resolved|user:{seed.UserA}|Credit limit raised by finance.", exception);

            Assert.Empty(outside);
        }
        finally
        {
            await page.Context.CloseAsync();
        }
    }

    [Fact]
    public async Task Dashboard_Viewer_SeesEverythingButNoDecisionControls()
    {
        var seed = fixture.Seed;
        // An approval and an exception of its own: the other test decides the seeded ones.
        var approval = (Guid)(await fixture.Db.ScalarAsync("""
            insert into public.cards (tenant_id, kind, title, due_at, payload)
            values ($1, 'approval', 'Send the price list', now() + interval '1 day', jsonb_build_object('action_key', gen_random_uuid()::text)) returning id
            """, seed.TenantA))!;
        var exception = (Guid)(await fixture.Db.ScalarAsync("""
            insert into public.order_processing_exceptions (tenant_id, queue_id, order_id, exception_type, severity, details)
            select tenant_id, queue_id, order_id, 'missing_po', 'warning', '{"message": "no PO number"}' from public.order_processing_exceptions where id = $1
            returning id
            """, seed.Exception))!;
        var (page, outside) = await fixture.NewPageAsync();
        try
        {
            await SignInAsync(page, fixture.Token(seed.ViewerA));
            await WaitLoadedAsync(page, seed.TenantA);

            // The same rows a manager sees, but no button a viewer's role could not use: each row says what it would take.
            await Expect(page.Locator($"[data-testid=approval-row][data-card-id='{approval}']")).ToHaveCountAsync(1);
            await Expect(page.Locator("[data-testid=approve-button], [data-testid=reject-button]")).ToHaveCountAsync(0);
            await Expect(page.Locator($"[data-testid=approval-row][data-card-id='{approval}'] [data-testid=not-allowed]")).ToContainTextAsync("Needs 'approve' (viewer lacks it)");
            await Expect(page.Locator($"[data-testid=exception-row][data-exception-id='{exception}']")).ToHaveCountAsync(1);
            await Expect(page.Locator("[data-testid=resolve-button], [data-testid=dismiss-button], [data-testid=review-button]")).ToHaveCountAsync(0);
            await Expect(page.Locator($"[data-testid=exception-row][data-exception-id='{exception}'] [data-testid=not-allowed]")).ToContainTextAsync("Needs 'resolve_exceptions'");

            // And the API behind the page refuses the viewer anyway (403, naming the capability), changing nothing.
            var status = await page.EvaluateAsync<int>(
                "async ([path, token]) => (await fetch(path, { method: 'POST', headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' }, body: '{}' })).status",
                new[] { $"/api/v1/tenants/{seed.TenantA}/cards/{approval}/approve", fixture.Token(seed.ViewerA) });
            Assert.Equal(403, status);
            Assert.Equal("open", await fixture.Db.ScalarAsync("select status from public.cards where id = $1", approval));
            Assert.Empty(outside);
        }
        finally
        {
            await page.Context.CloseAsync();
            // The other tests count tenant A's open approvals and exceptions.
            await fixture.Db.ExecuteAsync("delete from public.cards where id = $1", approval);
            await fixture.Db.ExecuteAsync("delete from public.order_processing_exceptions where id = $1", exception);
        }
    }

    [Fact]
    public async Task Dashboard_AnotherTenantsUser_SeesNothingOfThisTenant()
    {
        var seed = fixture.Seed;
        var (page, outside) = await fixture.NewPageAsync();
        try
        {
            // A token the server did not sign: the API's problem shows in the page and the sign-in form stays.
            await SignInAsync(page, new ApiAuth("not-the-server-secret-0123456789abcdef"u8.ToArray(), TimeProvider.System).Sign(Claims(seed.UserB)));
            await Expect(page.Locator("#errors")).ToContainTextAsync("Unauthorized");
            await Expect(page.Locator("#errors [data-testid=error-detail]")).ToContainTextAsync("the token's signature is not valid");
            await Expect(page.Locator("#signin")).ToBeVisibleAsync();
            Assert.Null(await page.EvaluateAsync<string?>("() => sessionStorage.getItem('hourglass-token')"));

            // Tenant B's user, even sent straight to tenant A's address, sees only tenant B.
            await page.GotoAsync($"{fixture.Url}/dashboard/#tenant={seed.TenantA}");
            await SignInAsync(page, fixture.Token(seed.UserB));
            await Expect(page.Locator("#errors")).ToBeEmptyAsync();
            await Expect(page.GetByLabel("Tenant", new() { Exact = true }).Locator("option")).ToHaveTextAsync(["Initech"]);
            await WaitLoadedAsync(page, seed.TenantB);
            await Expect(page.Locator("[data-testid=panel-error]")).ToHaveCountAsync(0);

            await Expect(page.Locator("[data-testid=run-bar]")).ToHaveCountAsync(1);
            await Expect(page.Locator("[data-testid=run-bar]")).ToHaveAttributeAsync("data-run-id", seed.RunB.ToString());
            await Expect(page.Locator($"[data-testid=approval-row][data-card-id='{seed.ApprovalCardB}']")).ToHaveCountAsync(1);
            await Expect(page.Locator("[data-testid=approval-row]")).ToHaveCountAsync(1);
            await Expect(page.Locator("[data-testid=compliance-point]")).ToHaveCountAsync(0);
            await Expect(page.Locator("[data-testid=queue-row]")).ToHaveCountAsync(0);
            await Expect(page.Locator("[data-testid=violation-day]")).ToHaveCountAsync(0);
            await Expect(page.Locator("[data-testid=exception-row]")).ToHaveCountAsync(0);
            await Expect(page.Locator("[data-testid=reflection]")).ToHaveCountAsync(0);

            var text = await page.Locator("body").InnerTextAsync();
            var html = await page.ContentAsync();
            foreach (var secret in new[] { "Acme Distribution", "Aardvark", "Dana Overdue", "exceeds the available credit", "lease lost", "compliance_pct",
                         seed.TenantA.ToString(), seed.ApprovalCard.ToString(), seed.Exception.ToString(), seed.FailedRun.ToString(), seed.OverdueContact.ToString() })
            {
                Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
                Assert.DoesNotContain(secret, html, StringComparison.Ordinal);
            }

            // The page's own requests for tenant A are answered "not found", whatever the route.
            var status = await page.EvaluateAsync<int>(
                "async ([path, token]) => (await fetch(path, { headers: { Authorization: 'Bearer ' + token } })).status",
                new[] { $"/api/v1/tenants/{seed.TenantA}/runs", fixture.Token(seed.UserB) });
            Assert.Equal(404, status);

            // An API refusal shows in the page: the approval expired behind the page's back, so approving it is a conflict.
            await fixture.Db.ExecuteAsync("update public.cards set due_at = now() - interval '1 minute' where id = $1", seed.ApprovalCardB);
            await page.GetByRole(AriaRole.Button, new() { Name = "Approve: Initech: call the buyer" }).ClickAsync();
            await page.GetByRole(AriaRole.Dialog).GetByRole(AriaRole.Button, new() { Name = "Approve" }).ClickAsync();
            var error = page.Locator("#panel-approvals [data-testid=panel-error]");
            await Expect(error).ToContainTextAsync("Conflict");
            await Expect(error.GetByTestId("error-detail")).ToContainTextAsync("is expired, not open");
            await Expect(error).ToHaveAttributeAsync("data-status", "409");
            Assert.Equal("open", await fixture.Db.ScalarAsync("select status from public.cards where id = $1", seed.ApprovalCardB));
            Assert.Empty(outside);
        }
        finally
        {
            await page.Context.CloseAsync();
        }
    }

    private static async Task SignInAsync(IPage page, string token)
    {
        await page.GetByLabel("Access token").FillAsync(token);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
    }

    private static async Task WaitLoadedAsync(IPage page, Guid tenant)
    {
        var view = page.Locator("#tenant-view");
        await Expect(view).ToHaveAttributeAsync("data-tenant-id", tenant.ToString(), new() { Timeout = 30_000 });
        await Expect(view).ToHaveAttributeAsync("data-state", "loaded", new() { Timeout = 30_000 });
    }

    internal static Dictionary<string, object> Claims(Guid user) => new()
    {
        ["sub"] = user.ToString(),
        ["role"] = "authenticated",
        ["aud"] = "authenticated",
        ["email"] = $"{user.ToString()[..8]}@example.test",
        ["exp"] = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds(),
    };
}

/// <summary>What the dashboard tests seeded: two tenants with data, an empty one, and their users.</summary>
public sealed record DashboardSeed(
    Guid TenantA, Guid TenantB, Guid EmptyTenant, Guid UserA, Guid UserB,
    Guid FailedRun, Guid OverdueContact, Guid ApprovalCard, Guid Exception, Guid RunB, Guid ApprovalCardB, Guid ViewerA);

/// <summary>
/// One seeded database, one <c>hourglass serve --no-worker</c> process and one headless Chromium for the class;
/// each test opens its own browser context (its own session storage).
/// </summary>
public sealed class DashboardFixture : IAsyncLifetime
{
    private const string ChromiumPath = "/usr/bin/chromium";
    private const string Secret = "dashboard-tests-jwt-secret-0123456789abcdef";

    private readonly DatabaseFixture _database = new();
    private readonly ApiAuth _auth = new(System.Text.Encoding.UTF8.GetBytes(Secret), TimeProvider.System);
    private Process? _serve;
    private IPlaywright? _playwright;
    private IBrowser? _browser;
    private DashboardSeed? _seed;

    public string Url { get; } = $"http://127.0.0.1:{FreePort()}";

    public DashboardSeed Seed => _seed ?? throw new InvalidOperationException("fixture not initialised");

    public TestDb Db => _database.Db;

    public string Token(Guid user) => _auth.Sign(DashboardTests.Claims(user));

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(ChromiumPath), $"{ChromiumPath} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)");
        await _database.InitializeAsync();
        _seed = await SeedAsync(_database.Db);

        _serve = HourglassProcess.Start(new Dictionary<string, string?> { ["HOURGLASS_JWT_SECRET"] = Secret },
            "serve", "--no-worker", "--urls", Url, "--database", _database.ConnectionString);
        await WaitHealthyAsync();

        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.CloseAsync();
        }

        _playwright?.Dispose();
        if (_serve is not null)
        {
            if (!_serve.HasExited)
            {
                _serve.Kill(entireProcessTree: true);
            }

            await _serve.WaitForExitAsync();
            _serve.Dispose();
        }

        await _database.DisposeAsync();
    }

    /// <summary>A fresh page at the dashboard, and a list that collects every request it makes outside this server.</summary>
    public async Task<(IPage Page, List<string> Outside)> NewPageAsync()
    {
        var context = await _browser!.NewContextAsync(new() { ViewportSize = new() { Width = 1400, Height = 1000 }, TimezoneId = "UTC", Locale = "en-GB" });
        context.SetDefaultTimeout(15_000);
        var page = await context.NewPageAsync();
        var outside = new List<string>();
        page.Request += (_, request) =>
        {
            if (!request.Url.StartsWith(Url + "/", StringComparison.Ordinal))
            {
                outside.Add(request.Url);
            }
        };
        page.PageError += (_, error) => outside.Add("page error: " + error);
        page.Console += (_, message) =>
        {
            // The browser logs the API's deliberate 401/404/409 answers as failed loads; anything else is a bug.
            if (message.Type == "error" && !message.Text.StartsWith("Failed to load resource", StringComparison.Ordinal))
            {
                outside.Add("console error: " + message.Text);
            }
        };
        await page.GotoAsync($"{Url}/dashboard/");
        return (page, outside);
    }

    private async Task WaitHealthyAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        for (var i = 0; i < 300; i++)
        {
            if (_serve!.HasExited)
            {
                Assert.Fail($"hourglass serve exited with {_serve.ExitCode} before it was healthy");
            }

            try
            {
                if ((await http.GetAsync($"{Url}/health")).StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet, or too slow to answer on a loaded machine: ask again.
            }

            await Task.Delay(200);
        }

        Assert.Fail("hourglass serve never became healthy");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    // Tenant A: runs of the last 48 hours (five completed, one failed) and one older; five hourly reflections with
    // compliance 80 → 90; one overdue contact; six violations on three days; four orders (two validated, one in
    // exception with its open exception, one pending); one open approval. Tenant B: one run and one approval.
    // Tenant "Aardvark (empty)": nothing. User A belongs to A and the empty tenant, user B to B only.
    private static async Task<DashboardSeed> SeedAsync(TestDb db)
    {
        var now = DateTimeOffset.UtcNow;
        var tenantA = await db.CreateTenantAsync("Acme Distribution");
        var tenantB = await db.CreateTenantAsync("Initech");
        var empty = await db.CreateTenantAsync("Aardvark (empty)");
        // User A manages tenant A (approves, resolves exceptions), user B tenant B; A's viewer may do neither.
        var userA = await db.AddMemberAsync(tenantA, role: "manager");
        await db.AddMemberAsync(empty, userA);
        var userB = await db.AddMemberAsync(tenantB, role: "manager");
        var viewerA = await db.AddMemberAsync(tenantA, role: "viewer");

        async Task<Guid> RunAsync(Guid tenant, double hoursAgo, string status, string? error = null)
        {
            var started = now.AddHours(-hoursAgo);
            return (Guid)(await db.ScalarAsync("""
                insert into public.agent_autonomous_runs (tenant_id, status, trigger, scheduled_for, started_at, completed_at, created_at,
                  actions_planned, actions_taken, actions_blocked, error)
                values ($1, $2, 'schedule', date_trunc('hour', $3::timestamptz), $3, $3 + interval '40 seconds', $3, 3, $4, 0, $5)
                returning id
                """, tenant, status, started, status == "completed" ? 3 : 0, error))!;
        }

        await RunAsync(tenantA, 60.5, "completed");
        var hours = new[] { 30.5, 20.5, 9.5, 5.5, 2.5 };
        var runs = new List<Guid>();
        foreach (var h in hours)
        {
            runs.Add(await RunAsync(tenantA, h, "completed"));
        }

        var failed = await RunAsync(tenantA, 12.5, "failed", "lease lost: the database did not answer");

        decimal? before = null;
        for (var i = 0; i < hours.Length; i++)
        {
            var after = 80m + (2.5m * i);
            var hour = now.AddHours(-hours[i]);
            var moved = new System.Text.Json.Nodes.JsonObject
            {
                ["engagement.compliance_pct"] = new System.Text.Json.Nodes.JsonObject { ["before"] = before, ["after"] = after, ["delta"] = after - before },
                ["engagement.overdue"] = new System.Text.Json.Nodes.JsonObject { ["before"] = null, ["after"] = 1, ["delta"] = null },
            }.ToJsonString();
            await db.ExecuteAsync("""
                insert into public.agent_hourly_reflections (tenant_id, run_id, hour_bucket, what_moved, summary, created_at)
                values ($1, $2, date_trunc('hour', $3::timestamptz, 'UTC'), $4::jsonb, $5, $3 + interval '1 minute')
                """, tenantA, runs[i], hour, moved,
                $"Hour {hour.UtcDateTime:yyyy-MM-dd HH}:00 UTC. Took 3 actions (3 touch task). Moved: engagement.compliance_pct +2.5 to {after.ToString(System.Globalization.CultureInfo.InvariantCulture)}.");
            before = after;
        }

        // One hour had a second (manual) run: its reflection is the roll-up of both.
        await db.ExecuteAsync("""
            update public.agent_hourly_reflections
            set runs = runs || jsonb_build_object($2::text, jsonb_build_object('run_id', $2, 'trigger', 'manual', 'what_moved', what_moved,
                                                                                'summary', 'A manual run: no actions taken.'))
            where tenant_id = $1 and run_id = $3
            """, tenantA, failed, runs[3]);

        var account = await db.CreateAccountAsync(tenantA, "Globex");
        var overdue = await db.CreateContactAsync(tenantA, account, "Dana Overdue");
        await db.CreateContactAsync(tenantA, account, "Casey Compliant");
        await db.ExecuteAsProductAsync("""
            update public.engagement_clocks set next_touch_due = $3::timestamptz - interval '6 days 2 hours', compliance_status = 'overdue', days_overdue = 6,
              priority_score = 160, priority_reason = 'overdue 6 day(s) (+160)'
            where tenant_id = $1 and entity_type = 'contact' and entity_id = $2
            """, tenantA, overdue, now);

        foreach (var (daysAgo, key, severity, count) in new[] { (0, "quiet-hours", "warning", 2), (2, "max-discount", "critical", 1), (5, "quiet-hours", "warning", 3) })
        {
            for (var i = 0; i < count; i++)
            {
                await db.ExecuteAsync("""
                    insert into public.agent_policy_violations (tenant_id, policy_key, action_type, decision, severity, message, created_at)
                    values ($1, $2, 'send_message', 'deny', $3, 'refused by the test policy', $4)
                    """, tenantA, key, severity, now.AddDays(-daysAgo).AddSeconds(-1 - i));
            }
        }

        // What the world answered about one email to Dana: today a reply and a complaint; two days ago a hard bounce and
        // two soft ones; three days ago an out-of-office answer and an unsubscribe (rows as the recorder writes them).
        var email = (Guid)(await db.ScalarAsync("""
            insert into public.message_outbox (tenant_id, idempotency_key, channel, destination, body, payload, status, sent_at)
            values ($1, 'dashboard-email', 'email', 'dana@globex.example', 'hello',
                    jsonb_build_object('target_type', 'contact', 'target_id', $2::text), 'sent', $3)
            returning id
            """, tenantA, overdue, now.AddDays(-4)))!;
        foreach (var (daysAgo, type, label, effect) in new[]
                 {
                     (0, "reply", "interested", "touch_recorded"), (0, "complaint", null, "opted_out"), (2, "bounce_hard", null, "address_suppressed"),
                     (2, "bounce_soft", null, "soft_bounce_retried"), (2, "bounce_soft", null, "soft_bounce_retried"),
                     (3, "reply", "out_of_office", "none"), (3, "unsubscribe", null, "opted_out"),
                 })
        {
            await db.ExecuteAsync("""
                insert into public.message_delivery_events (tenant_id, source, source_event_id, event_type, occurred_at, message_id, recipient,
                  reply_label, effect)
                values ($1, 'resend', gen_random_uuid()::text, $2, $3, $4, 'dana@globex.example', $5, $6)
                """, tenantA, type, now.AddDays(-daysAgo).AddSeconds(-1), email, label, effect);
        }

        var orders = new List<Guid>();
        for (var i = 0; i < 4; i++)
        {
            orders.Add((Guid)(await db.ScalarAsync(
                "insert into public.orders (tenant_id, account_id, po_number, total, placed_at) values ($1, $2, $3, 12500, $4) returning id",
                tenantA, account, $"PO-{i}", now.AddDays(-2)))!);
        }

        foreach (var (order, status, processedHoursAgo) in new[] { (orders[0], "validated", 26.0), (orders[1], "validated", 3.0), (orders[2], "exception", 2.0) })
        {
            await db.ExecuteAsProductAsync("""
                update public.order_processing_queue set status = $3, pricing_status = 'passed', credit_status = case when $3 = 'exception' then 'failed' else 'passed' end,
                  requirements_status = 'passed', processed_at = $4
                where tenant_id = $1 and order_id = $2
                """, tenantA, order, status, now.AddHours(-processedHoursAgo));
        }

        var exception = (Guid)(await db.ScalarAsync("""
            insert into public.order_processing_exceptions (tenant_id, queue_id, order_id, exception_type, severity, details, created_at)
            select $1, q.id, q.order_id, 'credit_limit_exceeded', 'error',
                   '{"message": "Order total 12,500.00 exceeds the available credit 10,000.00"}'::jsonb, $3
            from public.order_processing_queue q where q.tenant_id = $1 and q.order_id = $2
            returning id
            """, tenantA, orders[2], now.AddHours(-2)))!;

        async Task<Guid> ApprovalAsync(Guid tenant, string title, Guid? contact)
        {
            return (Guid)(await db.ScalarAsync("""
                insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, payload, due_at)
                values ($1, 'approval', $2, 'The policy holds a first message to a new contact for a person to approve.', 'contact', $3,
                        jsonb_build_object('action_key', gen_random_uuid()::text, 'action', jsonb_build_object('kind', 'send_message')), $4)
                returning id
                """, tenant, title, contact ?? Guid.NewGuid(), now.AddDays(1)))!;
        }

        var approval = await ApprovalAsync(tenantA, "Send the follow-up email to Dana Overdue", overdue);

        var runB = await RunAsync(tenantB, 4.5, "completed");
        var approvalB = await ApprovalAsync(tenantB, "Initech: call the buyer", null);

        return new DashboardSeed(tenantA, tenantB, empty, userA, userB, failed, overdue, approval, exception, runB, approvalB, viewerA);
    }
}
