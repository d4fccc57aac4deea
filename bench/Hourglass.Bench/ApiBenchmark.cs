using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Policies;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// The HTTP API as it is deployed: a real <c>hourglass serve --no-worker</c> on 127.0.0.1, driven by concurrent
/// loopback clients. One tenant's card list (<c>GET /api/v1/tenants/{t}/cards?limit=50</c>, 100,000 cards among
/// 200 tenants) read as a member user — row-level security deciding what the request sees — against the same route
/// with the service key (role service_role, RLS bypassed), interleaved; then a minute of mixed routes, counting every
/// answer that is not 2xx.
/// </summary>
internal static class ApiBenchmark
{
    private const string DatabaseName = "hourglass_bench_api";
    private const int Tenants = 200;
    private const int BigTenantCards = 100_000;
    private const int OtherTenantCards = 500;
    private const int MembersPerTenant = 5;
    private const int Clients = 8;
    private const int Rounds = 8;
    private static readonly TimeSpan s_slot = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan s_warmUp = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan s_mixedLoad = TimeSpan.FromSeconds(60);
    private const double GoalRatio = 0.80;

    private enum Caller
    {
        Member,
        Service,
    }

    private sealed record Seeded(Guid BigTenant, Guid SmallTenant, Guid Member, Guid Outsider, long Cards, double Seconds);

    private sealed record Sample(int Requests, int Failures, double Seconds, double[] Latencies);

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  api: creating {DatabaseName}…");
        await using var database = await ScratchDatabase.CreateAsync(dataSource, DatabaseName, cancellationToken);
        var seeded = await SeedAsync(database.DataSource, cancellationToken);

        var secret = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        var tokens = new Dictionary<Caller, string>
        {
            [Caller.Member] = BenchTokens.Sign(secret, new Dictionary<string, object> { ["sub"] = seeded.Member.ToString(), ["role"] = "authenticated", ["aud"] = "authenticated", ["exp"] = Expiry() }),
            [Caller.Service] = BenchTokens.Sign(secret, new Dictionary<string, object> { ["role"] = "service_role", ["iss"] = "hourglass-bench", ["exp"] = Expiry() }),
        };
        var outsider = BenchTokens.Sign(secret, new Dictionary<string, object> { ["sub"] = seeded.Outsider.ToString(), ["role"] = "authenticated", ["aud"] = "authenticated", ["exp"] = Expiry() });

        await using var server = await ServerProcess.StartAsync("api", database.DataSource.ConnectionString, new Dictionary<string, string>
        {
            ["HOURGLASS_JWT_SECRET"] = secret,
            ["HOURGLASS_API_RATE_LIMIT"] = "1000000",
        }, worker: false, cancellationToken);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Clients * 2, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
        {
            BaseAddress = new Uri(server.Url),
            Timeout = TimeSpan.FromSeconds(30),
        };

        var cardsPath = $"/api/v1/tenants/{seeded.BigTenant}/cards?limit=50";
        var checks = new List<string>
        {
            await CheckSameCardsAsync(http, cardsPath, tokens, cancellationToken),
            await CheckOutsiderAsync(http, cardsPath, outsider, cancellationToken),
        };

        Console.WriteLine($"  api: warm-up, {s_warmUp.TotalSeconds:0} s per caller…");
        foreach (var caller in Enum.GetValues<Caller>())
        {
            await LoadAsync(http, _ => (cardsPath, tokens[caller]), s_warmUp, cancellationToken);
        }

        var plain = await InterleavedAsync(http, cardsPath, tokens, "without an index for the list's order", cancellationToken);
        var plans = await PlanAsync(database.DataSource, seeded, cancellationToken);

        // The list pages newest first over (created_at, id). When this was written no index of the migrations served that
        // order and each page sorted the tenant's 100,000 cards, so (b) adds one for this run only; since
        // 20251226000100_list_indexes.sql the migrations' idx_cards_tenant_created is the same index, and (b) repeats (a).
        await using (var connection = await database.DataSource.OpenConnectionAsync(cancellationToken))
        {
            await EngagementStore.CreateCardsListIndexAsync(connection, null, "bench_cards_tenant_created", cancellationToken);
            await Bench.ExecuteAsync(connection, "analyze public.cards", cancellationToken);
        }

        foreach (var caller in Enum.GetValues<Caller>())
        {
            await LoadAsync(http, _ => (cardsPath, tokens[caller]), s_warmUp, cancellationToken);
        }

        var indexed = await InterleavedAsync(http, cardsPath, tokens, "with an index on cards (tenant_id, created_at desc, id desc)", cancellationToken);
        var indexedPlans = await PlanAsync(database.DataSource, seeded, cancellationToken);

        Console.WriteLine($"  api: mixed routes for {s_mixedLoad.TotalSeconds:0} s…");
        var routes = await MixedRoutesAsync(http, seeded, tokens, cardsPath, cancellationToken);
        var mixed = await LoadAsync(http, i => routes[i % routes.Count], s_mixedLoad, cancellationToken);
        var failures = mixed.Failures;

        return Report(seeded, plain, indexed, mixed, failures, routes.Count, checks, plans, indexedPlans);
    }

    private static long Expiry() => DateTimeOffset.UtcNow.AddHours(3).ToUnixTimeSeconds();

    // Member and service key take turns in slots of s_slot, each round starting with the other: a burst of other work
    // on the machine meets both alike.
    private static async Task<Dictionary<Caller, List<Sample>>> InterleavedAsync(HttpClient http, string path, Dictionary<Caller, string> tokens, string label,
        CancellationToken cancellationToken)
    {
        var samples = Enum.GetValues<Caller>().ToDictionary(c => c, _ => new List<Sample>());
        for (var round = 0; round < Rounds; round++)
        {
            var order = round % 2 == 0 ? new[] { Caller.Member, Caller.Service } : [Caller.Service, Caller.Member];
            foreach (var caller in order)
            {
                samples[caller].Add(await LoadAsync(http, _ => (path, tokens[caller]), s_slot, cancellationToken));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  api ({label}) round {round + 1}/{Rounds}: member {Rate(samples[Caller.Member][^1]):0} req/s, service {Rate(samples[Caller.Service][^1]):0} req/s"));
        }

        return samples;
    }

    private static double Rate(Sample sample) => sample.Requests / sample.Seconds;

    // Clients concurrent loops for the given time; request i of a client is route(i). Each request is timed from send to
    // the last byte of the body read; every answer that is not 2xx (or does not arrive) is a failure.
    private static async Task<Sample> LoadAsync(HttpClient http, Func<int, (string Path, string? Token)> route, TimeSpan duration, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var perClient = await Task.WhenAll(Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
        {
            var latencies = new List<double>();
            var failures = 0;
            for (var i = client; clock.Elapsed < duration; i += Clients)
            {
                var (path, token) = route(i);
                using var request = new HttpRequestMessage(path.StartsWith("POST ", StringComparison.Ordinal) ? HttpMethod.Post : HttpMethod.Get,
                    path.StartsWith("POST ", StringComparison.Ordinal) ? path[5..] : path);
                if (token is not null)
                {
                    request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
                }

                var (milliseconds, ok) = await TimedRequest.SendAsync(http, request, why =>
                {
                    if (failures < 3)
                    {
                        Console.WriteLine($"  api: {path} {why}");
                    }
                }, cancellationToken);
                failures += ok ? 0 : 1;
                latencies.Add(milliseconds);
            }

            return (latencies, failures);
        }, cancellationToken)));
        var seconds = clock.Elapsed.TotalSeconds;
        var all = perClient.SelectMany(c => c.latencies).ToArray();
        return new Sample(all.Length, perClient.Sum(c => c.failures), seconds, all);
    }

    private static async Task<List<(string Path, string? Token)>> MixedRoutesAsync(HttpClient http, Seeded seeded, Dictionary<Caller, string> tokens, string cardsPath,
        CancellationToken cancellationToken)
    {
        // Page two of the card list, with the cursor page one gave.
        using var first = new HttpRequestMessage(HttpMethod.Get, cardsPath);
        first.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", tokens[Caller.Member]);
        using var page = await http.SendAsync(first, cancellationToken);
        using var body = JsonDocument.Parse(await page.Content.ReadAsStringAsync(cancellationToken));
        var cursor = Uri.EscapeDataString(body.RootElement.GetProperty("next_cursor").GetString()!);

        var tenant = $"/api/v1/tenants/{seeded.BigTenant}";
        var member = tokens[Caller.Member];
        var service = tokens[Caller.Service];
        return
        [
            ("/api/v1/tenants", member),
            (tenant, member),
            (cardsPath, member),
            ($"{cardsPath}&cursor={cursor}", member),
            ($"{tenant}/cards?kind=notice&limit=20", member),
            ($"{tenant}/runs?limit=20", member),
            ($"{tenant}/reflections", member),
            ($"{tenant}/engagement/queue?top=20", member),
            ($"{tenant}/violations?limit=50", member),
            ($"{tenant}/violations/trends?days=30", member),
            ($"{tenant}/orders/queue", member),
            ($"{tenant}/orders/exceptions?status=open", member),
            ($"{tenant}/patterns", member),
            ($"{tenant}/strategies", member),
            ($"{tenant}/policy", member),
            ("/api/v1/me/cards", member),
            ("/health", null),
            ("/api/v1/tenants", service),
            ($"/api/v1/tenants/{seeded.SmallTenant}/cards?limit=50", service),
            ($"{tenant}/runs?limit=50", service),
        ];
    }

    private static async Task<string> CheckSameCardsAsync(HttpClient http, string path, Dictionary<Caller, string> tokens, CancellationToken cancellationToken)
    {
        var pages = new Dictionary<Caller, string[]>();
        foreach (var caller in Enum.GetValues<Caller>())
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", tokens[caller]);
            using var response = await http.SendAsync(request, cancellationToken);
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                throw new HourglassException($"api benchmark: {path} as {caller} answered {(int)response.StatusCode}: {text}");
            }

            using var document = JsonDocument.Parse(text);
            pages[caller] = document.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetString()!).ToArray();
        }

        return pages[Caller.Member].Length == 50 && pages[Caller.Member].SequenceEqual(pages[Caller.Service])
            ? "the member and the service key read the same first page (50 cards, same ids, same order)"
            : throw new HourglassException($"api benchmark: the member read {pages[Caller.Member].Length} cards, the service key {pages[Caller.Service].Length}, not the same page");
    }

    private static async Task<string> CheckOutsiderAsync(HttpClient http, string path, string token, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request, cancellationToken);
        return response.StatusCode == HttpStatusCode.NotFound
            ? "a member of another tenant gets 404 for the same route (RLS)"
            : throw new HourglassException($"api benchmark: an outsider got {(int)response.StatusCode} for {path}");
    }

    // The list's statement as the API runs it, explained as each caller (plans only; EXPLAIN runs nothing).
    private static async Task<string> PlanAsync(NpgsqlDataSource dataSource, Seeded seeded, CancellationToken cancellationToken)
    {
        var plans = new List<string>();
        foreach (var (role, claims) in new[]
                 {
                     ("authenticated", new Dictionary<string, object> { ["sub"] = seeded.Member.ToString(), ["role"] = "authenticated" }),
                     ("service_role", new Dictionary<string, object> { ["role"] = "service_role" }),
                 })
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await Storage.DbSession.BeginAsync(connection, role, claims, cancellationToken);
            var lines = await EngagementStore.ExplainCardsPageAsync(connection, transaction, seeded.BigTenant, 50, cancellationToken);
            plans.Add($"{role}: {string.Join(" / ", lines.Select(l => l.Trim()))}");
        }

        return string.Join("; ", plans);
    }

    private static async Task<Seeded> SeedAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        Console.WriteLine($"  api: {Tenants} tenants, {BigTenantCards:#,0} cards for one and {OtherTenantCards} for each other…");
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        // Tenants "bench tenant 001" on: the first is the big one, the second the small one.
        var tenants = await TenancyStore.InsertNumberedTenantsAsync(connection, null, "bench tenant ", Tenants, 3, cancellationToken);
        var (big, small) = (tenants[0], tenants[1]);
        var member = Guid.NewGuid();
        var outsider = Guid.NewGuid();
        await TenancyStore.InsertMembersOfEveryTenantAsync(connection, null, MembersPerTenant, cancellationToken);
        // The benchmark's user belongs to the big tenant and two others, as people often belong to a few.
        foreach (var tenant in tenants[..3])
        {
            await TenancyStore.InsertMemberAsync(connection, null, tenant, member, "member", cancellationToken);
        }

        await TenancyStore.InsertMemberAsync(connection, null, small, outsider, "member", cancellationToken);

        // Cards: every fifth done, every twentieth a notice, one a minute back in time (the list's order); for the big tenant, then
        // for every other tenant.
        await EngagementStore.InsertSampleCardsAsync(connection, null, big, BigTenantCards, true, cancellationToken);
        await EngagementStore.InsertSampleCardsAsync(connection, null, big, OtherTenantCards, false, cancellationToken);

        // Something behind the other routes of the mixed load: a thousand runs and policy violations for the big tenant.
        await RunsStore.InsertCompletedHistoryAsync(connection, null, big, 1000, cancellationToken);
        await PolicyStore.InsertSampleViolationsAsync(connection, null, big, 1000, cancellationToken);
        await Bench.ExecuteAsync(connection, "vacuum analyze", cancellationToken);
        var cards = await EngagementStore.CountCardsAsync(connection, null, cancellationToken);
        return new Seeded(big, small, member, outsider, cards, clock.Elapsed.TotalSeconds);
    }

    private static BenchReport Report(Seeded seeded, Dictionary<Caller, List<Sample>> plain, Dictionary<Caller, List<Sample>> indexed, Sample mixed, int failures,
        int routeCount, List<string> checks, string plans, string indexedPlans)
    {
        static double Percentile(IEnumerable<double> values, double q)
        {
            var sorted = values.Order().ToArray();
            return sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
        }

        static double PooledRate(List<Sample> samples) => samples.Sum(s => s.Requests) / samples.Sum(s => s.Seconds);

        var measurements = new List<Measurement>();
        void Add(string label, Dictionary<Caller, List<Sample>> samples)
        {
            foreach (var (caller, name) in new[] { (Caller.Member, "member user (RLS)"), (Caller.Service, "service key (RLS bypassed)") })
            {
                var list = samples[caller];
                measurements.Add(new Measurement($"{label}, {name}: throughput", "req/s", list.Select(Rate).ToList()) { Overall = PooledRate(list) });
                measurements.Add(new Measurement($"{label}, {name}: p50", "ms", list.Select(s => Percentile(s.Latencies, 0.5)).ToList())
                {
                    Overall = Percentile(list.SelectMany(s => s.Latencies), 0.5),
                });
                measurements.Add(new Measurement($"{label}, {name}: p99", "ms", list.Select(s => Percentile(s.Latencies, 0.99)).ToList())
                {
                    Overall = Percentile(list.SelectMany(s => s.Latencies), 0.99),
                });
            }
        }

        Add("(a) cards list", plain);
        Add("(b) cards list, indexed", indexed);
        measurements.Add(new Measurement($"(c) mixed load, {routeCount} routes: throughput", "req/s", [Rate(mixed)]));
        measurements.Add(new Measurement("(c) mixed load: p50", "ms", [Percentile(mixed.Latencies, 0.5)]));
        measurements.Add(new Measurement("(c) mixed load: p99", "ms", [Percentile(mixed.Latencies, 0.99)]));

        var ratio = PooledRate(plain[Caller.Member]) / PooledRate(plain[Caller.Service]);
        var indexedRatio = PooledRate(indexed[Caller.Member]) / PooledRate(indexed[Caller.Service]);
        string F(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        string P50Ratio(Dictionary<Caller, List<Sample>> s) =>
            F(Percentile(s[Caller.Member].SelectMany(x => x.Latencies), 0.5) / Percentile(s[Caller.Service].SelectMany(x => x.Latencies), 0.5));

        checks.Add($"RLS cost without the index: member/service throughput {F(ratio)}, p50 latency member/service {P50Ratio(plain)}");
        checks.Add($"RLS cost with the index: member/service throughput {F(indexedRatio)}, p50 latency member/service {P50Ratio(indexed)}");
        checks.Add($"failed requests (not 2xx) in the interleaved runs: {plain.Values.Concat(indexed.Values).SelectMany(s => s).Sum(s => s.Failures)}");
        checks.Add($"mixed load: {mixed.Requests:#,0} requests in {mixed.Seconds:0.0} s, {failures} not 2xx");
        checks.Add($"plans without the index — {plans}");
        checks.Add($"plans with the index — {indexedPlans}");

        return new BenchReport(
            "api",
            $"A scratch database (`{DatabaseName}`): {Tenants} tenants with {MembersPerTenant} members each; {seeded.Cards:#,0} cards — {BigTenantCards:#,0} for " +
            $"one tenant, {OtherTenantCards} for each other (80% open, 5% notices, one a minute back in time), 1,000 runs and 1,000 policy violations for " +
            $"the big tenant; loaded set-based and VACUUM ANALYZEd in {seeded.Seconds:0} s. A real `hourglass serve --no-worker` (Release build) on " +
            "127.0.0.1 with HOURGLASS_JWT_SECRET and HOURGLASS_API_RATE_LIMIT=1000000, driven over loopback HTTP/1.1 by " +
            $"{Clients} concurrent HttpClient loops in this process (client, server and PostgreSQL share the machine). (a) `GET /api/v1/tenants/{{t}}/cards?limit=50` " +
            "of the big tenant, as a member user (a signed `authenticated` token: role and claims set per transaction, RLS filters) and with the service key " +
            $"(role service_role, BYPASSRLS): {Rounds} rounds of {s_slot.TotalSeconds:0} s per caller, the callers taking turns and each round starting " +
            $"with the other, after {s_warmUp.TotalSeconds:0} s of warm-up each. (b) the same with an index on the cards in the list's order, (tenant_id, created_at desc, id desc), made " +
            "in this database only (the migrations' idx_cards_tenant_created is the same index, so (b) now repeats (a)). Each request is timed from send to the body's last byte. Throughput: requests over all rounds " +
            $"/ their time (Runs: each round). (c) {s_mixedLoad.TotalSeconds:0} s of {routeCount} routes in turn (tenants, tenant, cards pages 1 and 2, " +
            "cards by kind, runs, reflections, engagement queue, violations and trends, orders queue and exceptions, patterns, strategies, policy, " +
            "/me/cards, /health; three as the service key), counting every answer that is not 2xx.",
            measurements,
            "(a) member / service-key throughput",
            ratio,
            $"≥ {F(GoalRatio)} (RLS costs at most 20%)",
            ratio >= GoalRatio,
            checks)
        {
            ValueHeader = "Value",
            FurtherGoals =
            [
                new FurtherGoal("(b) member / service-key throughput, indexed", F(indexedRatio), $"≥ {F(GoalRatio)}", indexedRatio >= GoalRatio),
                new FurtherGoal("(c) requests not 2xx in the mixed load", failures.ToString(CultureInfo.InvariantCulture), "0", failures == 0),
            ],
        };
    }
}
