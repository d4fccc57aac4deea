using System.Diagnostics;
using System.Globalization;
using Hourglass.Cycles;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// Tenant lock acquire+release pairs per second, 8 clients on their own tenants (no contention): the seed
/// functions against the same SQL sent directly, and against PostgreSQL advisory locks.
/// </summary>
internal static class LockBenchmark
{
    private const int Clients = 8;
    private const int TenantsPerClient = 50;
    private const int Rounds = 5;
    private static readonly TimeSpan s_warmUp = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan s_measure = TimeSpan.FromSeconds(5);

    private enum Variant
    {
        Functions,
        DirectSql,
        Advisory,
    }

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var tenants = await CreateTenantsAsync(dataSource, cancellationToken);
        var runs = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<double>());
        var failures = 0L;
        for (var round = 0; round < Rounds; round++)
        {
            // Each round starts with a different variant, so drift (autovacuum, caches) does not favour one.
            for (var i = 0; i < runs.Count; i++)
            {
                var variant = (Variant)((round + i) % runs.Count);
                var (pairsPerSecond, failed) = await MeasureAsync(dataSource, variant, tenants, cancellationToken);
                runs[variant].Add(pairsPerSecond);
                failures += failed;
                Console.WriteLine($"  locks round {round + 1}/{Rounds}: {Label(variant),-44} {pairsPerSecond,10:#,0} pairs/s");
            }
        }

        if (failures > 0)
        {
            throw new HourglassException($"locks: {failures} acquire or release calls did not succeed although every client has its own tenants; the numbers are not valid.");
        }

        var measurements = Enum.GetValues<Variant>().Select(v => new Measurement(Label(v), "pairs/s", runs[v])).ToList();
        var ratio = measurements[(int)Variant.Functions].Median / measurements[(int)Variant.DirectSql].Median;
        var advisory = measurements[(int)Variant.Advisory].Median / measurements[(int)Variant.Functions].Median;
        return new BenchReport(
            "locks",
            $"{Clients} clients, each on its own connection and its own {TenantsPerClient} tenants (no contention), cycling " +
            "acquire then release over its tenants. Per variant and round: " +
            $"{s_warmUp.TotalSeconds:0} s warm-up, then pairs counted for {s_measure.TotalSeconds:0} s; {Rounds} rounds, " +
            "variants in rotating order; median reported. Every statement is prepared. (b) sends acquire_tenant_lease's " +
            "DELETE of expired locks, INSERT … ON CONFLICT DO NOTHING and token UPDATE as one batch (one round trip, one " +
            "transaction, as the function call) and release_tenant_lock's DELETE, without the functions' argument and " +
            "tenant-access checks. Runs as the embedded cluster's superuser, which skips RLS as the service role does.",
            measurements,
            "(a)/(b)",
            ratio,
            ">= 0.90",
            ratio >= 0.9,
            [
                $"failed acquires or releases: {failures} (every acquire returned a grant, every release removed it)",
                $"advisory locks are {advisory.ToString("0.0", CultureInfo.InvariantCulture)}x the seed functions",
            ]);
    }

    private static string Label(Variant variant) => variant switch
    {
        Variant.Functions => "(a) acquire_tenant_lock + release_tenant_lock",
        Variant.DirectSql => "(b) the functions' DML sent directly",
        _ => "(c) pg_try_advisory_lock + pg_advisory_unlock",
    };

    private static async Task<Guid[][]> CreateTenantsAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var ids = await TenancyStore.InsertNumberedTenantsAsync(connection, null, "bench-locks-", Clients * TenantsPerClient, 1, cancellationToken);
        return ids.Chunk(TenantsPerClient).ToArray();
    }

    private static async Task<(double PairsPerSecond, long Failures)> MeasureAsync(
        NpgsqlDataSource dataSource, Variant variant, Guid[][] tenants, CancellationToken cancellationToken)
    {
        var pairs = new long[Clients];
        var failures = new long[Clients];
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var clients = Enumerable.Range(0, Clients)
            .Select(c => Task.Run(() => RunClientAsync(dataSource, variant, c, tenants[c], pairs, failures, stop.Token), stop.Token))
            .ToArray();

        await Task.Delay(s_warmUp, cancellationToken);
        var before = Total(pairs);
        var stopwatch = Stopwatch.StartNew();
        await Task.Delay(s_measure, cancellationToken);
        var after = Total(pairs);
        var elapsed = stopwatch.Elapsed.TotalSeconds;
        await stop.CancelAsync();
        await Task.WhenAll(clients);
        cancellationToken.ThrowIfCancellationRequested();
        return ((after - before) / elapsed, Total(failures));
    }

    private static long Total(long[] counts)
    {
        var total = 0L;
        for (var i = 0; i < counts.Length; i++)
        {
            total += Volatile.Read(ref counts[i]);
        }

        return total;
    }

    // Cancellation ends the loop between pairs, never inside one (a pair's statements get no token), so no
    // lock is left held and the next variant starts from an empty lock table.
    private static async Task RunClientAsync(
        NpgsqlDataSource dataSource, Variant variant, int client, Guid[] tenants, long[] pairs, long[] failures, CancellationToken cancellationToken)
    {
        var holder = $"bench-client-{client}";
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var pair = await PreparePairAsync(connection, variant, holder, cancellationToken);
        for (var i = 0; !cancellationToken.IsCancellationRequested; i = (i + 1) % tenants.Length)
        {
            // Advisory keys: one bigint per tenant, unique across clients.
            var (acquired, released) = await pair(tenants[i], client * TenantsPerClient + i + 1);
            if (!acquired || !released)
            {
                Interlocked.Increment(ref failures[client]);
            }

            Interlocked.Increment(ref pairs[client]);
        }
    }

    private delegate Task<(bool Acquired, bool Released)> Pair(Guid tenant, long advisoryKey);

    private static Task<Pair> PreparePairAsync(NpgsqlConnection connection, Variant variant, string holder, CancellationToken cancellationToken) =>
        variant switch
        {
            Variant.Functions => PrepareFunctionsAsync(connection, holder, cancellationToken),
            Variant.DirectSql => PrepareDirectSqlAsync(connection, holder, cancellationToken),
            _ => PrepareAdvisoryAsync(connection, cancellationToken),
        };

    private static async Task<Pair> PrepareFunctionsAsync(NpgsqlConnection connection, string holder, CancellationToken cancellationToken)
    {
        var acquire = await PrepareAsync(connection, TenantLease.AcquireLockSql, cancellationToken,
            new NpgsqlParameter<Guid>(), new NpgsqlParameter<string> { TypedValue = holder });
        var release = await PrepareAsync(connection, TenantLease.ReleaseLockSql, cancellationToken,
            new NpgsqlParameter<Guid>(), new NpgsqlParameter<string> { TypedValue = holder });
        return async (tenant, _) =>
        {
            ((NpgsqlParameter<Guid>)acquire.Parameters[0]).TypedValue = tenant;
            ((NpgsqlParameter<Guid>)release.Parameters[0]).TypedValue = tenant;
            var acquired = (bool)(await acquire.ExecuteScalarAsync(CancellationToken.None))!;
            var released = (bool)(await release.ExecuteScalarAsync(CancellationToken.None))!;
            return (acquired, released);
        };
    }

    private static async Task<Pair> PrepareDirectSqlAsync(NpgsqlConnection connection, string holder, CancellationToken cancellationToken)
    {
        // One batch = one round trip and one implicit transaction, as the function call is.
        var acquire = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand(LockBaseline.DeleteExpiredSql) { Parameters = { new NpgsqlParameter<Guid>() } },
                new NpgsqlBatchCommand(LockBaseline.InsertLockSql) { Parameters = { new NpgsqlParameter<Guid>(), new NpgsqlParameter<string> { TypedValue = holder } } },
                new NpgsqlBatchCommand(LockBaseline.DrawTokenSql) { Parameters = { new NpgsqlParameter<Guid>(), new NpgsqlParameter<string> { TypedValue = holder } } },
            },
        };
        await acquire.PrepareAsync(cancellationToken);
        var release = await PrepareAsync(connection, LockBaseline.ReleaseSql, cancellationToken,
            new NpgsqlParameter<Guid>(), new NpgsqlParameter<string> { TypedValue = holder });
        return async (tenant, _) =>
        {
            foreach (var command in acquire.BatchCommands)
            {
                ((NpgsqlParameter<Guid>)command.Parameters[0]).TypedValue = tenant;
            }

            ((NpgsqlParameter<Guid>)release.Parameters[0]).TypedValue = tenant;
            // The batch's only result set is the UPDATE's RETURNING: a token when granted, no row when not.
            var token = await acquire.ExecuteScalarAsync(CancellationToken.None);
            var released = await release.ExecuteNonQueryAsync(CancellationToken.None) == 1;
            return (token is long, released);
        };
    }

    private static async Task<Pair> PrepareAdvisoryAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var acquire = await PrepareAsync(connection, "select pg_try_advisory_lock($1)", cancellationToken, new NpgsqlParameter<long>());
        var release = await PrepareAsync(connection, "select pg_advisory_unlock($1)", cancellationToken, new NpgsqlParameter<long>());
        return async (_, key) =>
        {
            ((NpgsqlParameter<long>)acquire.Parameters[0]).TypedValue = key;
            ((NpgsqlParameter<long>)release.Parameters[0]).TypedValue = key;
            var acquired = (bool)(await acquire.ExecuteScalarAsync(CancellationToken.None))!;
            var released = (bool)(await release.ExecuteScalarAsync(CancellationToken.None))!;
            return (acquired, released);
        };
    }

    private static async Task<NpgsqlCommand> PrepareAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddRange(parameters);
        await command.PrepareAsync(cancellationToken);
        return command;
    }
}
