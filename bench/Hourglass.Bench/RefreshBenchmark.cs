using System.Globalization;
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

    // The function's own rule, evaluated at $1 with the default due_soon_days (3; the bench tenants set none).
    private const string NewStatusSql = """
        case
          when c.next_touch_due < $1 then 'overdue'
          when c.next_touch_due <= $1 + interval '3 days' then 'due_soon'
          else 'compliant'
        end
        """;

    private const string NewDaysOverdueSql = """
        case
          when c.next_touch_due < $1 then pg_catalog.floor(extract(epoch from ($1 - c.next_touch_due)) / 86400)::integer
          else 0
        end
        """;

    // The baseline's input: the rows whose values at $1 differ from what they hold, with their new values.
    private const string CreateChangedSetSql = $"""
        create temp table bench_changed as
        select c.id, {NewStatusSql} as new_status, {NewDaysOverdueSql} as new_days_overdue
        from public.engagement_clocks c
        where c.tenant_id = any ($2)
          and (c.compliance_status, c.days_overdue) is distinct from ({NewStatusSql}, {NewDaysOverdueSql})
        """;

    private const string UpdateEveryRowSql = $"""
        update public.engagement_clocks c
        set compliance_status = {NewStatusSql}, days_overdue = {NewDaysOverdueSql}, updated_at = $1
        where c.tenant_id = any ($2)
        """;

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            return await RunOnAsync(connection, cancellationToken);
        }
        finally
        {
            await Bench.ExecuteAsync(connection, "select hourglass.thaw_time()", CancellationToken.None);
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
        await Bench.ExecuteAsync(connection, CreateChangedSetSql, cancellationToken, s_t1, tenants);
        await Bench.ExecuteAsync(connection, "analyze bench_changed", cancellationToken);
        var changed = await Bench.ScalarAsync<long>(connection, "select count(*) from bench_changed", cancellationToken);
        var candidates = await Bench.ScalarAsync<long>(connection, """
            select count(*) from public.engagement_clocks c
            where c.tenant_id = any ($2) and (c.next_touch_due <= $1 + interval '3 days' or c.compliance_status <> 'compliant')
            """, cancellationToken, s_t1, tenants);
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
        var tenants = new List<Guid>();
        await using (var command = new NpgsqlCommand(
            "insert into public.tenants (name) select pg_catalog.format('bench-refresh-%s', g) from generate_series(1, $1) g returning id",
            connection))
        {
            command.Parameters.Add(new() { Value = Tenants });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                tenants.Add(reader.GetGuid(0));
            }
        }

        // Clock k of tenant n is due at first_due + ((k - 1) * tenants + (n - 1)) * step: each tenant's clocks
        // cover the whole cycle, and all clocks together are evenly spaced. No FK from clocks to contacts, so
        // entity ids are random. Rows go in tenant by tenant, as clocks created over time would cluster.
        await Bench.ExecuteAsync(connection, """
            insert into public.engagement_clocks (tenant_id, entity_type, entity_id, next_touch_due, created_at, updated_at)
            select t.id, 'contact', gen_random_uuid(), $2 + ((k - 1) * $4 + (t.n - 1)) * $3, $5, $5
            from unnest($1::uuid[]) with ordinality as t (id, n)
            cross join generate_series(1, $6) as k
            order by t.n, k
            """, cancellationToken, tenants.ToArray(), s_firstDue, s_dueStep, Tenants, s_t0.AddDays(-30), ClocksPerTenant);
        await Bench.ExecuteAsync(connection, "vacuum analyze public.engagement_clocks", cancellationToken);
        return tenants.ToArray();
    }

    private static Task FreezeAsync(NpgsqlConnection connection, DateTime at, CancellationToken cancellationToken) =>
        Bench.ExecuteAsync(connection, "select hourglass.freeze_time($1)", cancellationToken, at);

    // What the worker does each hour: one call, and so one transaction, per tenant. A null clock keeps the frozen one.
    private static async Task<long> RefreshAllAsync(NpgsqlConnection connection, Guid[] tenants, DateTime? clock, CancellationToken cancellationToken)
    {
        if (clock is { } at)
        {
            await FreezeAsync(connection, at, cancellationToken);
        }

        await using var command = new NpgsqlCommand("select public.refresh_engagement_compliance($1)", connection);
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
        const string updatedSql = "select n_tup_upd from pg_stat_xact_user_tables where relid = 'public.engagement_clocks'::regclass";
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var before = await Bench.ScalarAsync<long>(connection, updatedSql, cancellationToken);
        var returned = await RefreshAllAsync(connection, tenants, s_t1, cancellationToken);
        var after = await Bench.ScalarAsync<long>(connection, updatedSql, cancellationToken);
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
        await using var command = new NpgsqlCommand("""
            update public.engagement_clocks c
            set compliance_status = x.new_status, days_overdue = x.new_days_overdue, updated_at = $1
            from bench_changed x
            where c.id = x.id
            """, connection);
        command.Parameters.Add(new() { Value = s_t1 });
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<long> UpdateEveryRowAsync(NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(UpdateEveryRowSql, connection);
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
