using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Hourglass.Cycles;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// One tenant floods the batch routes while another reads: a real <c>hourglass serve</c> with its worker on 127.0.0.1,
/// the API's pool capped at 10 connections. A quiet tenant's simple reads, paced, are timed first with nobody flooding
/// (the idle p99) and then while twelve loops post 10,000-line touch batches for the flooding tenant as fast as the
/// server takes them (the flood p99); the worker cycles due tenants throughout, on its own pool, and its completed
/// cycles are counted in each window. The same again with the per-tenant batch limit lifted, as the baseline.
/// </summary>
internal static class FairnessBenchmark
{
    private const string DatabaseName = "hourglass_bench_fairness";
    private const int WorkerTenantsPerVariant = 2_000;
    private const int Variants = 3;
    private const int FloodLoops = 12;
    private const int BatchLines = 10_000;
    private const int ApiPoolSize = 10;
    private const int Readers = 4;
    private static readonly TimeSpan s_readEvery = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan s_warmUp = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan s_idle = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan s_flood = TimeSpan.FromSeconds(30);
    private const double GoalRatio = 3;

    private sealed record Seeded(Guid Flood, Guid Quiet, Guid FloodMember, Guid[] QuietMembers, Guid[][] WorkerTenants, Guid[] FloodContacts, double Seconds);

    private sealed record Window(double[] Latencies, int ReadFailures, long Cycles, double Seconds, long DueLeft);

    private sealed record FloodResult(int Accepted, int Refused, int Failed, long Lines);

    private sealed record VariantResult(string Name, string Batches, Window Quiet, Window Idle, Window Flood, FloodResult Flooding);

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  fairness: creating {DatabaseName}…");
        await using var database = await ScratchDatabase.CreateAsync(dataSource, DatabaseName, cancellationToken);
        var seeded = await SeedAsync(database.DataSource, cancellationToken);
        var connectionString = new NpgsqlConnectionStringBuilder(database.DataSource.ConnectionString) { MaxPoolSize = ApiPoolSize }.ConnectionString;
        var secret = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));

        var variants = new List<VariantResult>
        {
            await RunVariantAsync(database.DataSource, connectionString, secret, seeded, seeded.WorkerTenants[0], "with the limits (defaults)", null, cancellationToken),
            await RunVariantAsync(database.DataSource, connectionString, secret, seeded, seeded.WorkerTenants[1], "one batch per tenant", "1", cancellationToken),
            await RunVariantAsync(database.DataSource, connectionString, secret, seeded, seeded.WorkerTenants[2], "batch limit lifted (baseline)", "1000", cancellationToken),
        };
        return Report(seeded, variants);
    }

    private static async Task<VariantResult> RunVariantAsync(NpgsqlDataSource dataSource, string connectionString, string secret, Seeded seeded, Guid[] workerTenants,
        string name, string? tenantBatches, CancellationToken cancellationToken)
    {
        var environment = new Dictionary<string, string>
        {
            ["HOURGLASS_JWT_SECRET"] = secret,
            // Neither tenant's request rate is what is measured here: the readers stay far below it, the flood's batches too.
            ["HOURGLASS_API_RATE_LIMIT"] = "1000",
        };
        if (tenantBatches is not null)
        {
            environment["HOURGLASS_API_TENANT_BATCHES"] = tenantBatches;
        }

        await using var server = await ServerProcess.StartAsync("fairness", connectionString, environment, worker: true, cancellationToken);
        using var readers = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Readers * 2 }) { BaseAddress = new Uri(server.Url), Timeout = TimeSpan.FromSeconds(60) };
        using var flooders = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = FloodLoops * 2 }) { BaseAddress = new Uri(server.Url), Timeout = TimeSpan.FromMinutes(5) };
        var readTokens = seeded.QuietMembers.Select(m => Token(secret, m)).ToArray();
        var floodToken = Token(secret, seeded.FloodMember);

        Console.WriteLine($"  fairness ({name}): warm-up {s_warmUp.TotalSeconds:0} s, then {s_idle.TotalSeconds:0} s with nothing due for the worker…");
        await ReadAsync(readers, seeded.Quiet, readTokens, s_warmUp, cancellationToken);
        var quiet = await WindowAsync(dataSource, workerTenants, () => ReadAsync(readers, seeded.Quiet, readTokens, s_idle, cancellationToken), cancellationToken);
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            // The top of the current hour: an hourly cron's occurrence, the hour after the tenants' history.
            await ScheduleStore.MakeDueThisHourAsync(connection, null, workerTenants, cancellationToken);
        }

        // The worker polls every 10 s when idle: wait for its first cycle so both windows see it cycling.
        var waited = Stopwatch.StartNew();
        while (await CyclesAsync(dataSource, workerTenants, DateTime.UnixEpoch, new DateTime(2100, 1, 1, 0, 0, 0, DateTimeKind.Utc), cancellationToken) == 0 && waited.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(200, cancellationToken);
        }

        Console.WriteLine($"  fairness ({name}): idle {s_idle.TotalSeconds:0} s…");
        var idle = await WindowAsync(dataSource, workerTenants, () => ReadAsync(readers, seeded.Quiet, readTokens, s_idle, cancellationToken), cancellationToken);

        Console.WriteLine($"  fairness ({name}): flood {s_flood.TotalSeconds:0} s, {FloodLoops} loops of {BatchLines:#,0}-line batches…");
        using var stopFlood = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var flooding = FloodAsync(flooders, seeded, floodToken, stopFlood.Token);
        // The flood's batches take a moment to arrive and fill the slots: the window starts once the first are in.
        await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
        var flood = await WindowAsync(dataSource, workerTenants, () => ReadAsync(readers, seeded.Quiet, readTokens, s_flood, cancellationToken), cancellationToken);
        await stopFlood.CancelAsync();
        var flooded = await flooding;
        // What this variant's worker left is put out of the way: the next variant's worker is to cycle its own tenants.
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            await ScheduleStore.PostponeAYearAsync(connection, null, workerTenants, cancellationToken);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  fairness ({name}): idle p99 {Percentile(idle.Latencies, 0.99):0.0} ms, flood p99 {Percentile(flood.Latencies, 0.99):0.0} ms; cycles {idle.Cycles} then {flood.Cycles}; batches {flooded.Accepted} taken, {flooded.Refused} refused"));
        return new VariantResult(name, tenantBatches ?? "2 (default)", quiet, idle, flood, flooded);
    }

    private static async Task<Window> WindowAsync(NpgsqlDataSource dataSource, Guid[] workerTenants, Func<Task<(double[] Latencies, int Failures)>> reads,
        CancellationToken cancellationToken)
    {
        var from = await NowAsync(dataSource, cancellationToken);
        var clock = Stopwatch.StartNew();
        var (latencies, failures) = await reads();
        var seconds = clock.Elapsed.TotalSeconds;
        var to = await NowAsync(dataSource, cancellationToken);
        var cycles = await CyclesAsync(dataSource, workerTenants, from, to, cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var dueLeft = await ScheduleStore.CountDueAsync(connection, null, workerTenants, cancellationToken);
        return new Window(latencies, failures, cycles, seconds, dueLeft);
    }

    // The database's clock (timestamptz, read as a UTC DateTime), which the runs' completed_at come from.
    private static async Task<DateTime> NowAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await Bench.ScalarAsync<DateTime>(connection, "select clock_timestamp()", cancellationToken);
    }

    private static async Task<long> CyclesAsync(NpgsqlDataSource dataSource, Guid[] tenants, DateTime from, DateTime to, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await RunsStore.CountCompletedScheduledAsync(connection, null, tenants, from, to, cancellationToken);
    }

    // Readers loops, each sending one read every s_readEvery (paced, so a slow answer does not thin the load): the quiet
    // tenant itself and its last runs, in turn. Each request is timed from send to the body's last byte.
    private static async Task<(double[] Latencies, int Failures)> ReadAsync(HttpClient http, Guid tenant, string[] tokens, TimeSpan duration,
        CancellationToken cancellationToken)
    {
        string[] paths = [$"/api/v1/tenants/{tenant}", $"/api/v1/tenants/{tenant}/runs?limit=20"];
        var clock = Stopwatch.StartNew();
        var perReader = await Task.WhenAll(Enumerable.Range(0, Readers).Select(reader => Task.Run(async () =>
        {
            var latencies = new List<double>();
            var failures = 0;
            // Readers start spread over one interval.
            var next = s_readEvery * reader / Readers;
            for (var i = 0; clock.Elapsed < duration; i++)
            {
                var wait = next - clock.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }

                next += s_readEvery;
                using var request = new HttpRequestMessage(HttpMethod.Get, paths[i % paths.Length]);
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", tokens[reader % tokens.Length]);
                var (milliseconds, ok) = await TimedRequest.SendAsync(http, request, why =>
                {
                    if (failures < 3)
                    {
                        Console.WriteLine($"  fairness: read {why}");
                    }
                }, cancellationToken);
                failures += ok ? 0 : 1;
                latencies.Add(milliseconds);
            }

            return (latencies, failures);
        }, cancellationToken)));
        return ([.. perReader.SelectMany(r => r.latencies)], perReader.Sum(r => r.failures));
    }

    // FloodLoops loops posting batches of BatchLines touches (each line its own idempotency key, so every batch is new
    // work) until stopped; a 429 is honoured (Retry-After), as a well-behaved importer does.
    private static async Task<FloodResult> FloodAsync(HttpClient http, Seeded seeded, string token, CancellationToken stop)
    {
        var path = $"/api/v1/tenants/{seeded.Flood}/touches";
        var results = await Task.WhenAll(Enumerable.Range(0, FloodLoops).Select(loop => Task.Run(async () =>
        {
            var (accepted, refused, failed, lines) = (0, 0, 0, 0L);
            for (var batch = 0; !stop.IsCancellationRequested; batch++)
            {
                var body = new StringBuilder(BatchLines * 160).Append('[');
                for (var line = 0; line < BatchLines; line++)
                {
                    var contact = seeded.FloodContacts[(loop * 7919 + batch * 104_729 + line) % seeded.FloodContacts.Length];
                    body.Append(line == 0 ? "" : ",").Append(CultureInfo.InvariantCulture,
                        $$"""{"entity_type":"contact","entity_id":"{{contact}}","touch_type":"email","touch_by":"importer","idempotency_key":"flood-{{loop}}-{{batch}}-{{line}}"}""");
                }

                using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body.Append(']').ToString(), Encoding.UTF8, "application/json") };
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
                try
                {
                    // Not cancelled by the stop: a batch in flight finishes, so the database is quiet for the next variant.
                    using var response = await http.SendAsync(request, CancellationToken.None);
                    if (response.StatusCode == HttpStatusCode.TooManyRequests)
                    {
                        refused++;
                        var retry = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
                        await Task.Delay(retry, stop);
                    }
                    else if (response.IsSuccessStatusCode)
                    {
                        accepted++;
                        lines += BatchLines;
                    }
                    else
                    {
                        failed++;
                        Console.WriteLine($"  fairness: batch answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(CancellationToken.None)}");
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    break;
                }
                catch (HttpRequestException ex)
                {
                    failed++;
                    Console.WriteLine($"  fairness: batch failed: {ex.Message}");
                }
            }

            return new FloodResult(accepted, refused, failed, lines);
        }, CancellationToken.None)));
        return new FloodResult(results.Sum(r => r.Accepted), results.Sum(r => r.Refused), results.Sum(r => r.Failed), results.Sum(r => r.Lines));
    }

    private static string Token(string secret, Guid user) => BenchTokens.Sign(secret, new Dictionary<string, object>
    {
        ["sub"] = user.ToString(), ["role"] = "authenticated", ["aud"] = "authenticated", ["exp"] = DateTimeOffset.UtcNow.AddHours(3).ToUnixTimeSeconds(),
    });

    private static async Task<Seeded> SeedAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        Console.WriteLine($"  fairness: two standard tenants and {Variants * WorkerTenantsPerVariant:#,0} small ones for the worker…");
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var standard = await CycleBenchData.LoadStandardAsync(connection, 2, cancellationToken);
        var workers = new Guid[Variants][];
        for (var v = 0; v < Variants; v++)
        {
            workers[v] = await CycleBenchData.LoadSmallAsync(connection, WorkerTenantsPerVariant, (v * WorkerTenantsPerVariant) + 1, cancellationToken);
        }

        var (flood, quiet) = (standard[0], standard[1]);
        var floodMember = Guid.NewGuid();
        Guid[] quietMembers = [Guid.NewGuid(), Guid.NewGuid()];
        await TenancyStore.InsertMemberAsync(connection, null, flood, floodMember, "member", cancellationToken);
        foreach (var member in quietMembers)
        {
            await TenancyStore.InsertMemberAsync(connection, null, quiet, member, "member", cancellationToken);
        }

        var contacts = await TenancyStore.ContactIdsAsync(connection, null, flood, cancellationToken);

        await Bench.ExecuteAsync(connection, "vacuum analyze", cancellationToken);
        return new Seeded(flood, quiet, floodMember, quietMembers, workers, contacts, clock.Elapsed.TotalSeconds);
    }

    private static double Percentile(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }

    private static BenchReport Report(Seeded seeded, List<VariantResult> variants)
    {
        string F(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        var measurements = new List<Measurement>();
        foreach (var v in variants)
        {
            measurements.Add(new Measurement($"{v.Name}: quiet tenant's reads, worker idle too, p50", "ms", [Percentile(v.Quiet.Latencies, 0.5)]));
            measurements.Add(new Measurement($"{v.Name}: quiet tenant's reads, worker idle too, p99", "ms", [Percentile(v.Quiet.Latencies, 0.99)]));
            foreach (var (label, window) in new[] { ("idle", v.Idle), ("flood", v.Flood) })
            {
                measurements.Add(new Measurement($"{v.Name}: quiet tenant's reads, {label}, p50", "ms", [Percentile(window.Latencies, 0.5)]));
                measurements.Add(new Measurement($"{v.Name}: quiet tenant's reads, {label}, p99", "ms", [Percentile(window.Latencies, 0.99)]));
                measurements.Add(new Measurement($"{v.Name}: worker cycles completed, {label}", "cycles", [window.Cycles]));
                measurements.Add(new Measurement($"{v.Name}: worker cycles, {label}", "cycles/s", [window.Cycles / window.Seconds]));
            }

            measurements.Add(new Measurement($"{v.Name}: flood batches taken (10,000 lines each)", "batches", [v.Flooding.Accepted]));
            measurements.Add(new Measurement($"{v.Name}: flood batches refused (429)", "batches", [v.Flooding.Refused]));
        }

        var limited = variants[0];
        var ratio = Percentile(limited.Flood.Latencies, 0.99) / Percentile(limited.Idle.Latencies, 0.99);
        var checks = new List<string>
        {
            $"pools: the API's capped at {ApiPoolSize} (`Maximum Pool Size={ApiPoolSize}` in the connection string), the worker's its own (HOURGLASS_WORKER_POOL_SIZE, default 10)",
        };
        foreach (var v in variants)
        {
            checks.Add($"{v.Name}: flood p99 / idle p99 = {F(Percentile(v.Flood.Latencies, 0.99) / Percentile(v.Idle.Latencies, 0.99))}; " +
                       $"flood p99 / p99 with the worker idle too = {F(Percentile(v.Flood.Latencies, 0.99) / Percentile(v.Quiet.Latencies, 0.99))}");
        }

        foreach (var v in variants)
        {
            checks.Add($"{v.Name}: HOURGLASS_API_TENANT_BATCHES={v.Batches}; reads not 2xx: idle {v.Idle.ReadFailures}, flood {v.Flood.ReadFailures} " +
                       $"(of {v.Idle.Latencies.Length} and {v.Flood.Latencies.Length}); flood batches failed (not 2xx or 429): {v.Flooding.Failed}; " +
                       $"{v.Flooding.Lines:#,0} touch lines recorded; tenants still due at the end of each window (the worker never ran dry when > 0): " +
                       $"{v.Idle.DueLeft}, {v.Flood.DueLeft}");
        }

        return new BenchReport(
            "fairness",
            $"A scratch database (`{DatabaseName}`) with two standard tenants (20 accounts, 2,000 contacts each; {CycleBenchData.HistoryHours} h of history) — " +
            $"the flooding tenant and the quiet one — and {Variants * WorkerTenantsPerVariant:#,0} small tenants ({CycleBenchData.SmallContacts} contacts each) for the worker, " +
            $"{WorkerTenantsPerVariant:#,0} per variant, made due when the variant starts; loaded in {seeded.Seconds:0} s. A real `hourglass serve` (Release build, " +
            $"with its worker at its defaults: 4 cycles at once) on 127.0.0.1, the API's pool capped at {ApiPoolSize} connections, HOURGLASS_API_RATE_LIMIT=1000. " +
            $"The quiet tenant's reads: {Readers} loops, one request each every {s_readEvery.TotalMilliseconds:0} ms (paced), `GET /api/v1/tenants/{{q}}` and " +
            "`GET /api/v1/tenants/{q}/runs?limit=20` in turn, as two member users, timed from send to the body's last byte: " +
            $"{s_idle.TotalSeconds:0} s with nothing due for the worker either (worker idle too, for reference), then the variant's tenants made due for the worker " +
            $"(the top of the current hour) and {s_idle.TotalSeconds:0} s with the worker cycling and nobody flooding (idle), then {s_flood.TotalSeconds:0} s while {FloodLoops} loops post {BatchLines:#,0}-line touch " +
            "batches for the flooding tenant back to back (every line a new idempotency key; a 429 waits its Retry-After). Worker cycles: runs completed in " +
            "each window (the database's clock). Three variants, each on a fresh server with its own tenants for the worker: the defaults, " +
            "one batch per tenant (HOURGLASS_API_TENANT_BATCHES=1), and the per-tenant batch limit lifted (HOURGLASS_API_TENANT_BATCHES=1000) as the " +
            "baseline. Client, server and PostgreSQL share the machine's 2 cores.",
            measurements,
            "quiet tenant's read p99, flood / idle (defaults)",
            ratio,
            $"≤ {F(GoalRatio)}",
            ratio <= GoalRatio,
            checks)
        {
            ValueHeader = "Value",
            FurtherGoals =
            [
                new FurtherGoal("worker cycles completed during the flood (defaults)", limited.Flood.Cycles.ToString(CultureInfo.InvariantCulture), "> 0",
                    limited.Flood.Cycles > 0),
                new FurtherGoal("quiet tenant's reads not 2xx (defaults)", (limited.Idle.ReadFailures + limited.Flood.ReadFailures).ToString(CultureInfo.InvariantCulture), "0",
                    limited.Idle.ReadFailures + limited.Flood.ReadFailures == 0),
            ],
        };
    }
}
