using System.Globalization;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// public.refresh_engagement_compliance over 1,000,000 clocks (100 tenants x 10,000) when about 1% changed
/// since the last refresh, against a plain UPDATE of exactly the changed rows.
/// </summary>
internal static class RefreshBenchmark
{
    private const int Tenants = 100;
    private const int ClocksPerTenant = 10_000;
    private const int Repetitions = 5;

    // The frozen database clock: T0 for the steady state, T1 = T0 + 75 minutes for the refresh measured.
    // next_touch_due is spread evenly over [T0 - 2 days, T0 + 19 days), one 21-day cycle, interleaved across
    // tenants. Moving 75 minutes then changes four 75-minute slices (~2,480 clocks each): due_soon -> overdue,
    // compliant -> due_soon, and days_overdue 0 -> 1 and 1 -> 2: about 0.99% of the clocks.
    private static readonly DateTime s_t0 = new(2026, 1, 5, 9, 0, 0, DateTimeKind.Utc);
    private static readonly DateTime s_t1 = s_t0.AddMinutes(75);
    private static readonly DateTime s_firstDue = s_t0.AddDays(-2);
    private static readonly TimeSpan s_dueStep = TimeSpan.FromDays(21) / (Tenants * ClocksPerTenant);

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            return await RunOnAsync(connection, cancellationToken);
        }
        finally
        {
            await TenantControl.ThawTimeAsync(connection, null, CancellationToken.None);
        }
    }

    private static async Task<BenchReport> RunOnAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var tenants = await LoadAsync(connection, cancellationToken);
        var totalClocks = Tenants * ClocksPerTenant;

        // Steady state: one full refresh at T0, then a clean table.
        Console.WriteLine("  refresh: first full refresh at T0 (steady state)…");
        var initial = await RefreshAllAsync(connection, tenants, s_t0, cancellationToken);
        await Bench.ExecuteAsync(connection, "vacuum analyze public.engagement_clocks", cancellationToken);

        // The baseline's input, computed before any timing: the rows that change between T0 and T1 and their new values.
        await Bench.ExecuteAsync(connection, RefreshBaseline.CreateChangedSetSql, cancellationToken, s_t1, tenants);
        await Bench.ExecuteAsync(connection, "analyze bench_changed", cancellationToken);
        var changed = await Bench.ScalarAsync<long>(connection, "select count(*) from bench_changed", cancellationToken);
        var candidates = await EngagementStore.RefreshCandidatesAsync(connection, null, tenants, s_t1, cancellationToken);
        if (changed < totalClocks / 200 || changed > totalClocks / 50)
        {
            throw new HourglassException($"refresh: {changed} of {totalClocks} clocks change between T0 and T1, not ~1%; the setup is wrong.");
        }

        // Unchanged rows are never rewritten: within one transaction, the table's update counter must equal
        // the rows the function says it changed, and both must equal the precomputed changed set.
        var (returned, tuplesUpdated) = await RefreshInOneTransactionAsync(connection, tenants, cancellationToken);
        if (returned != changed || tuplesUpdated != changed)
        {
            throw new HourglassException(
                $"refresh: at T1 the refresh returned {returned} and updated {tuplesUpdated} rows, but {changed} clocks changed.");
        }

        await RestoreAsync(connection, tenants, changed, cancellationToken);

        var refreshRuns = new List<double>();
        var baselineRuns = new List<double>();
        for (var repetition = 0; repetition < Repetitions; repetition++)
        {
            // Alternate which goes first so neither always follows the other.
            var refreshFirst = repetition % 2 == 0;
            for (var step = 0; step < 2; step++)
            {
                var timeRefresh = refreshFirst == (step == 0);
                await PrepareTimedStepAsync(connection, cancellationToken);
                double seconds;
                if (timeRefresh)
                {
                    await FreezeAsync(connection, s_t1, cancellationToken);
                    var total = 0L;
                    seconds = await Bench.TimeAsync(async () => total = await RefreshAllAsync(connection, tenants, clock: null, cancellationToken));
                    Expect(total, changed, "refresh_engagement_compliance");
                    refreshRuns.Add(seconds);
                }
                else
                {
                    var rows = 0L;
                    seconds = await Bench.TimeAsync(async () => rows = await UpdateChangedRowsAsync(connection, cancellationToken));
                    Expect(rows, changed, "the baseline UPDATE");
                    baselineRuns.Add(seconds);
                }

                Console.WriteLine($"  refresh repetition {repetition + 1}/{Repetitions}: {(timeRefresh ? "refresh" : "baseline"),-8} {seconds:0.000} s");
                await RestoreAsync(connection, tenants, changed, cancellationToken);
            }
        }

        // For scale: the naive refresh that recomputes and rewrites every row. Once, last: it doubles the table.
        await PrepareTimedStepAsync(connection, cancellationToken);
        var naiveRows = 0L;
        var naive = await Bench.TimeAsync(async () => naiveRows = await UpdateEveryRowAsync(connection, tenants, cancellationToken));
        Expect(naiveRows, totalClocks, "the naive UPDATE");
        Console.WriteLine($"  refresh: naive UPDATE of every row {naive:0.000} s");

        var measurements = new List<Measurement>
        {
            new("refresh_engagement_compliance, 100 tenants (one call and commit each)", "s", refreshRuns),
            new("baseline: one UPDATE of exactly the changed rows (ids precomputed)", "s", baselineRuns),
            new("for scale: naive UPDATE of every row (1 run)", "s", [naive]),
        };
        var ratio = measurements[0].Median / measurements[1].Median;
        return new BenchReport(
            "refresh",
            $"{Tenants} tenants x {ClocksPerTenant:#,0} engagement clocks = {totalClocks:#,0}, next_touch_due spread evenly over " +
            "one 21-day cycle (2 days overdue to 19 days ahead), loaded with one `insert … select generate_series`, then " +
            "VACUUM ANALYZE, one full refresh at T0 (steady state) and VACUUM ANALYZE again. The database clock " +
            "(`hourglass.freeze_time`) then moves 75 minutes, which changes " +
            $"{changed:#,0} clocks ({100.0 * changed / totalClocks:0.00}%). Each timed step starts from the T0 state (restored " +
            "untimed by refreshing at T0), right after VACUUM and CHECKPOINT, as an hourly refresh would be the first " +
            $"write to its pages after a checkpoint. {Repetitions} repetitions, refresh and baseline alternating which goes first; " +
            "median reported.",
            measurements,
            "refresh / baseline",
            ratio,
            "<= 1.5",
            ratio <= 1.5,
            [
                $"every refresh returned {changed:#,0} (the precomputed changed rows); the first full refresh at T0 changed {initial:#,0}",
                $"unchanged rows are never rewritten: in one transaction, refresh of all tenants returned {returned:#,0} and " +
                $"pg_stat_xact_user_tables.n_tup_upd rose by {tuplesUpdated:#,0}",
                $"the refresh visits {candidates:#,0} candidate rows (due within 3 days, or not compliant) to change {changed:#,0}",
                $"naive UPDATE of every row is {(naive / measurements[1].Median).ToString("0", CultureInfo.InvariantCulture)}x the baseline",
            ]);
    }

    private static async Task<Guid[]> LoadAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  refresh: loading {Tenants * ClocksPerTenant:#,0} engagement clocks…");
        var tenants = await TenancyStore.InsertNumberedTenantsAsync(connection, null, "bench-refresh-", Tenants, 1, cancellationToken);

        // Clock k of tenant n is due at first_due + ((k - 1) * tenants + (n - 1)) * step: each tenant's clocks
        // cover the whole cycle, and all clocks together are evenly spaced. No FK from clocks to contacts, so
        // entity ids are random. Rows go in tenant by tenant, as clocks created over time would cluster.
        await EngagementStore.InsertEvenlyDueClocksAsync(connection, null, tenants, s_firstDue, s_dueStep, s_t0.AddDays(-30), ClocksPerTenant, cancellationToken);
        await Bench.ExecuteAsync(connection, "vacuum analyze public.engagement_clocks", cancellationToken);
        return tenants;
    }

    private static Task FreezeAsync(NpgsqlConnection connection, DateTime at, CancellationToken cancellationToken) =>
        TenantControl.FreezeTimeAsync(connection, null, at, cancellationToken);

    // What the worker does each hour: one call, and so one transaction, per tenant. A null clock keeps the frozen one.
    private static async Task<long> RefreshAllAsync(NpgsqlConnection connection, Guid[] tenants, DateTime? clock, CancellationToken cancellationToken)
    {
        if (clock is { } at)
        {
            await FreezeAsync(connection, at, cancellationToken);
        }

        await using var command = new NpgsqlCommand(EngagementStore.RefreshComplianceSql, connection);
        var tenant = new NpgsqlParameter<Guid>();
        command.Parameters.Add(tenant);
        var total = 0L;
        foreach (var id in tenants)
        {
            tenant.TypedValue = id;
            total += (int)(await command.ExecuteScalarAsync(cancellationToken))!;
        }

        return total;
    }

    private static async Task<(long Returned, long TuplesUpdated)> RefreshInOneTransactionAsync(
        NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var before = await EngagementStore.ClocksUpdatedInTransactionAsync(connection, transaction, cancellationToken);
        var returned = await RefreshAllAsync(connection, tenants, s_t1, cancellationToken);
        var after = await EngagementStore.ClocksUpdatedInTransactionAsync(connection, transaction, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return (returned, after - before);
    }

    // Back to the T0 state: a refresh at T0 rewrites exactly the rows the last step changed.
    private static async Task RestoreAsync(NpgsqlConnection connection, Guid[] tenants, long changed, CancellationToken cancellationToken) =>
        Expect(await RefreshAllAsync(connection, tenants, s_t0, cancellationToken), changed, "the restoring refresh at T0");

    private static async Task PrepareTimedStepAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await Bench.ExecuteAsync(connection, "vacuum public.engagement_clocks", cancellationToken);
        await Bench.ExecuteAsync(connection, "checkpoint", cancellationToken);
    }

    private static async Task<long> UpdateChangedRowsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(RefreshBaseline.UpdateChangedRowsSql, connection);
        command.Parameters.Add(new() { Value = s_t1 });
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<long> UpdateEveryRowAsync(NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(RefreshBaseline.UpdateEveryRowSql, connection);
        command.Parameters.Add(new() { Value = s_t1 });
        command.Parameters.Add(new() { Value = tenants });
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static void Expect(long actual, long expected, string what)
    {
        if (actual != expected)
        {
            throw new HourglassException($"refresh: {what} changed {actual:#,0} rows, expected {expected:#,0}; the numbers are not valid.");
        }
    }
}
