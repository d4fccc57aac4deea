using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Hourglass.IntegrationTests.Api;

/// <summary>
/// Fairness against a real <c>hourglass serve</c>: a tenant's request budget is spent only by its members, and once
/// whatever the spelling of its id; a tenant's batches take a bounded number of slots (429 beyond them) while other
/// tenants' batches and reads go on; the worker and the API each have their own connection pool.
/// </summary>
public sealed class ApiFairnessTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private ApiTenant A => fixture.A;

    private ApiTenant B => fixture.B;

    [Fact]
    public async Task RateLimit_RequestsForAnotherTenant_DoNotSpendThatTenantsBudget()
    {
        await using var limited = await ApiServer.StartAsync(fixture.ConnectionString,
            new Dictionary<string, string?> { ["HOURGLASS_API_RATE_LIMIT"] = "5" });

        // Five strangers and tenant B's owner each send tenant A's routes a full burst (10, within their own caller
        // budget): 60 requests naming A, all 404. Keyed on the path's tenant, they would have emptied A's bucket 6 times.
        var outsiders = Enumerable.Range(0, 5).Select(_ => ApiServer.UserToken(Guid.NewGuid())).Append(B.OwnerToken).ToList();
        var strangers = await Task.WhenAll(outsiders.SelectMany(token => Enumerable.Range(0, 10).Select(_ => limited.GetAsync(A.Path, token))));
        // Then A's member sends a burst: A's whole budget (10) is there for them.
        var member = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => limited.GetAsync(A.Path, A.MemberToken)));

        Assert.All(strangers, r => ApiRouteTests.AssertProblem(r, 404, "https://hourglass.dev/problems/not-found"));
        Assert.All(member, r => Assert.True(r.Code == 200, r.ToString()));
    }

    [Fact]
    public async Task RateLimit_SpellingsOfOneTenantId_ShareOneBudget()
    {
        // 2 a second per tenant (a burst of 4); callers are not what is limited here.
        await using var limited = await ApiServer.StartAsync(fixture.ConnectionString, new Dictionary<string, string?>
        {
            ["HOURGLASS_API_RATE_LIMIT"] = "2",
            ["HOURGLASS_API_CALLER_RATE_LIMIT"] = "1000",
        });
        var id = A.TenantId;
        string[] spellings = [id.ToString("D"), id.ToString("D").ToUpperInvariant(), id.ToString("N"), id.ToString("N").ToUpperInvariant()];
        var first = await limited.GetAsync($"/api/v1/tenants/{spellings[3]}", A.MemberToken);
        Assert.True(first.Code == 200, first.ToString());
        Assert.Equal(id.ToString(), (string?)JsonNode.Parse(first.Body)!["id"]);

        // Six requests in each spelling at once, by two members: each spelling its own bucket would let 16 through.
        var clock = Stopwatch.StartNew();
        var burst = await Task.WhenAll(spellings.SelectMany(spelling => Enumerable.Range(0, 6).Select(i =>
            limited.GetAsync($"/api/v1/tenants/{spelling}", i % 2 == 0 ? A.MemberToken : A.OwnerToken))));
        var elapsed = clock.Elapsed;

        var codes = string.Join(", ", burst.Select(r => r.Code));
        Assert.All(burst, r => Assert.True(r.Code is 200 or 429, codes));
        // At most what was left of the burst (3) plus what refilled while they were served.
        Assert.True(burst.Count(r => r.Code == 200) <= 3 + (2 * ((int)elapsed.TotalSeconds + 1)), $"{codes} in {elapsed}");
        var refused = burst.Where(r => r.Code == 429).ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, r =>
        {
            var problem = ApiRouteTests.AssertProblem(r, 429, "https://hourglass.dev/problems/rate-limited");
            Assert.Contains("for this tenant (HOURGLASS_API_RATE_LIMIT)", (string?)problem["detail"], StringComparison.Ordinal);
            Assert.Equal("1", r.Headers.RetryAfter?.ToString());
        });
    }

    [Fact]
    public async Task RateLimit_PerCaller_AcrossTenants_EvenForTheServiceRole()
    {
        await using var limited = await ApiServer.StartAsync(fixture.ConnectionString, new Dictionary<string, string?>
        {
            ["HOURGLASS_API_RATE_LIMIT"] = "1000",
            ["HOURGLASS_API_CALLER_RATE_LIMIT"] = "5",
        });

        // 40 requests of the service key spread over two tenants: one caller, one bucket of 10.
        var clock = Stopwatch.StartNew();
        var burst = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => limited.SendAsync(HttpMethod.Get, (i % 2 == 0 ? A : B).Path, null,
            configure: r => r.Headers.Add("apikey", ApiServer.ServiceToken()))));
        var elapsed = clock.Elapsed;
        var member = await limited.GetAsync(A.Path, A.MemberToken);

        var codes = string.Join(", ", burst.Select(r => r.Code));
        Assert.True(burst.Count(r => r.Code == 200) <= 10 + (5 * ((int)elapsed.TotalSeconds + 1)), $"{codes} in {elapsed}");
        var refused = burst.Where(r => r.Code == 429).ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, r => Assert.Contains("from this caller (HOURGLASS_API_CALLER_RATE_LIMIT)",
            (string?)ApiRouteTests.AssertProblem(r, 429, "https://hourglass.dev/problems/rate-limited")["detail"], StringComparison.Ordinal));
        Assert.True(member.Code == 200, member.ToString());
    }

    [Fact]
    public async Task Batches_OverTheTenantsConcurrentLimit_429WithRetryAfter_NothingWritten_OtherTenantAndReadsServed()
    {
        // One batch slot per tenant, and a batch holds its slot for 3 s (a failpoint): the batches sent together overlap.
        await using var limited = await ApiServer.StartAsync(fixture.ConnectionString, new Dictionary<string, string?>
        {
            ["HOURGLASS_API_TENANT_BATCHES"] = "1",
            ["HOURGLASS_API_RATE_LIMIT"] = "10000",
            ["HOURGLASS_FAILPOINTS"] = "api.batch_slot_held=3000",
        });
        var marker = Guid.NewGuid().ToString("N");
        string Touch(ApiTenant tenant, int i) => $$"""
            [{"entity_type": "contact", "entity_id": "{{tenant.TouchContactId}}", "touch_type": "email", "idempotency_key": "fair-{{marker}}-{{i}}"}]
            """;

        var batchesA = Enumerable.Range(0, 4).Select(i => limited.SendAsync(HttpMethod.Post, $"{A.Path}/touches", A.MemberToken, Touch(A, i))).ToList();
        var eventsA = limited.SendAsync(HttpMethod.Post, $"{A.Path}/events", A.MemberToken, $$"""
            [{"event_type": "reply", "entity_type": "contact", "entity_id": "{{A.TouchContactId}}", "payload": {"channel": "email"}, "idempotency_key": "fair-{{marker}}-event"}]
            """);
        var batchB = limited.SendAsync(HttpMethod.Post, $"{B.Path}/touches", B.MemberToken, Touch(B, 100));
        await Task.Delay(500);
        var readA = await limited.GetAsync(A.Path, A.MemberToken);
        var a = await Task.WhenAll(batchesA.Append(eventsA));
        var b = await batchB;

        var codes = string.Join(", ", a.Select(r => r.Code));
        Assert.Equal(1, a.Count(r => r.Code == 200));
        Assert.Equal(4, a.Count(r => r.Code == 429));
        Assert.All(a.Where(r => r.Code == 429), r =>
        {
            var problem = ApiRouteTests.AssertProblem(r, 429, "https://hourglass.dev/problems/rate-limited");
            Assert.Contains("already has 1 batch request(s) running (HOURGLASS_API_TENANT_BATCHES)", (string?)problem["detail"], StringComparison.Ordinal);
            Assert.Equal("1", r.Headers.RetryAfter?.ToString());
        });
        Assert.True(b.Code == 200, b.ToString());
        Assert.True(readA.Code == 200, readA.ToString());
        // Only the batch that ran wrote anything.
        Assert.Equal(1L, await fixture.Db.ScalarAsync(
            "select count(*) from public.warehouse_events where tenant_id = $1 and idempotency_key like $2", A.TenantId, $"fair-{marker}-%"));

        // The slot is free again once the batch ended.
        var later = await limited.SendAsync(HttpMethod.Post, $"{A.Path}/touches", A.MemberToken, Touch(A, 50));
        Assert.True(later.Code == 200, later.ToString() + " after " + codes);
    }

    [Fact]
    public async Task Serve_ApiAndWorker_EachOnItsOwnPool_WithItsOwnApplicationName()
    {
        // Nothing due while this worker lives: it only polls.
        await fixture.Db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = now() + interval '30 days'");
        await using var server = await ApiServer.StartAsync(fixture.ConnectionString, new Dictionary<string, string?> { ["HOURGLASS_WORKER_POOL_SIZE"] = "3" },
            worker: true);
        var response = await server.GetAsync(A.Path, A.MemberToken);
        Assert.True(response.Code == 200, response.ToString());

        // Pooled connections stay open between uses: each pool shows in pg_stat_activity under its own name.
        var names = await fixture.Db.ScalarAsync("""
            select coalesce(string_agg(application_name || '=' || n, ',' order by application_name), '') from (
              select application_name, count(*) as n from pg_stat_activity
              where datname = current_database() and application_name like 'hourglass-%' group by application_name) s
            """);
        var pools = ((string)names!).Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=')).ToDictionary(p => p[0], p => int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));

        Assert.True(pools.ContainsKey("hourglass-api"), (string)names);
        Assert.True(pools.ContainsKey("hourglass-worker"), (string)names);
        Assert.InRange(pools["hourglass-worker"], 1, 3);
    }
}
