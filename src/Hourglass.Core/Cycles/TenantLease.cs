using Npgsql;

namespace Hourglass.Cycles;

/// <summary>
/// A held lease on a tenant's cycle (agent_tenant_locks) with its fencing token. While held it is renewed
/// in the background every third of its duration, together with the worker's claim on the tenant's
/// schedule; if a renewal fails, <see cref="Lost"/> is cancelled and the cycle stops.
/// </summary>
internal sealed class TenantLease : IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly TimeProvider _time;
    private readonly int _minutes;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private Task _renewal = Task.CompletedTask;

    private TenantLease(NpgsqlDataSource dataSource, TimeProvider time, Guid tenantId, string holder, long token, int minutes)
    {
        _dataSource = dataSource;
        _time = time;
        TenantId = tenantId;
        Holder = holder;
        Token = token;
        _minutes = minutes;
    }

    public Guid TenantId { get; }

    public string Holder { get; }

    public long Token { get; }

    /// <summary>Cancelled when the lease could not be renewed.</summary>
    public CancellationToken Lost => _lost.Token;

    public static async Task<TenantLease?> TryAcquireAsync(
        NpgsqlDataSource dataSource, TimeProvider time, Guid tenantId, string holder, int minutes, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(AcquireLeaseSql);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = holder });
        command.Parameters.Add(new() { Value = minutes });
        if (await command.ExecuteScalarAsync(cancellationToken) is not long token)
        {
            CycleTelemetry.LeaseAcquisitions.Add(1, new KeyValuePair<string, object?>("result", "contended"));
            return null;
        }

        CycleTelemetry.LeaseAcquisitions.Add(1, new KeyValuePair<string, object?>("result", "granted"));
        var lease = new TenantLease(dataSource, time, tenantId, holder, token, minutes);
        lease._renewal = lease.RenewLoopAsync();
        return lease;
    }

    /// <summary>Who holds the tenant's lease now, for the skip record of an overlapping cycle.</summary>
    public static async Task<string?> DescribeHolderAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select locked_by || ' since ' || to_char(locked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"')
            from public.agent_tenant_locks where tenant_id = $1 and lock_type = 'autonomous_cycle'
            """);
        command.Parameters.Add(new() { Value = tenantId });
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    private async Task RenewLoopAsync()
    {
        var every = TimeSpan.FromMinutes(_minutes) / 3;
        try
        {
            while (true)
            {
                await Task.Delay(every, _time, _stop.Token);
                if (!await RenewOnceAsync(_stop.Token))
                {
                    await _lost.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Released.
        }
        catch (NpgsqlException)
        {
            // The database is unreachable: we cannot prove the lease is ours, so the cycle stops.
            await _lost.CancelAsync();
        }
    }

    internal async Task<bool> RenewOnceAsync(CancellationToken cancellationToken)
    {
        await using var batch = _dataSource.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("select public.renew_tenant_lock($1, $2, $3, 'autonomous_cycle', $4)")
        {
            Parameters = { new() { Value = TenantId }, new() { Value = Holder }, new() { Value = Token }, new() { Value = _minutes } },
        });
        batch.BatchCommands.Add(ScheduleStore.ExtendClaimCommand(TenantId, Holder, _minutes));
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return reader.GetBoolean(0);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _renewal;
        try
        {
            await using var command = _dataSource.CreateCommand(ReleaseLockSql);
            command.Parameters.Add(new() { Value = TenantId });
            command.Parameters.Add(new() { Value = Holder });
            await command.ExecuteScalarAsync(CancellationToken.None);
        }
        catch (NpgsqlException)
        {
            // Unreleased, the lease simply expires.
        }

        _stop.Dispose();
        _lost.Dispose();
    }

    // The lock functions as the lease runs them, and as the locks and cycles benchmarks measure them.

    /// <summary><c>acquire_tenant_lease</c> of tenant $1's cycle for holder $2, for $3 minutes: the fencing token, or null when another holds it.</summary>
    internal const string AcquireLeaseSql = "select public.acquire_tenant_lease($1, $2, 'autonomous_cycle', $3)";

    /// <summary><c>acquire_tenant_lock</c> of tenant $1 for holder $2 with its defaults ('autonomous_cycle', 30 minutes): whether it was granted.</summary>
    internal const string AcquireLockSql = "select public.acquire_tenant_lock($1, $2)";

    /// <summary><c>release_tenant_lock</c> of tenant $1 held by $2: whether there was one to release.</summary>
    internal const string ReleaseLockSql = "select public.release_tenant_lock($1, $2)";
}
