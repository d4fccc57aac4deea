using Npgsql;

namespace Hourglass.Cycles;

/// <summary>The cycle's lease passed to another worker (or expired): nothing more may be written.</summary>
internal sealed class LeaseLostException(Guid tenantId, long? token, Exception? inner = null)
    : HourglassException($"the lease on tenant {tenantId} (fencing token {token}) is no longer ours: the cycle stops without writing", inner!)
{
    public Guid TenantId { get; } = tenantId;
}

/// <summary>
/// Transactions fenced by a lease token: each starts with <c>assert_lock_token</c>, which fails with
/// SQLSTATE HG001 once the token is stale and otherwise keeps a successor from being granted the lease
/// until the transaction ends. A worker that stalls past its lease can therefore never commit after a
/// successor took over. Without a token (dry runs) transactions are unfenced.
/// </summary>
internal sealed class FencedDatabase
{
    /// <summary>SQLSTATE raised by assert_lock_token for a stale token.</summary>
    public const string StaleTokenSqlState = "HG001";

    internal FencedDatabase(NpgsqlDataSource dataSource, Guid tenantId, long? token)
    {
        DataSource = dataSource;
        TenantId = tenantId;
        Token = token;
    }

    public NpgsqlDataSource DataSource { get; }

    public Guid TenantId { get; }

    public long? Token { get; }

    public async Task<T> InTransactionAsync<T>(
        Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        try
        {
            if (Token is long token)
            {
                await using var fence = new NpgsqlCommand("select public.assert_lock_token($1, $2)", connection, transaction);
                fence.Parameters.Add(new() { Value = TenantId });
                fence.Parameters.Add(new() { Value = token });
                await fence.ExecuteNonQueryAsync(cancellationToken);
            }

            var result = await work(connection, transaction);
            await transaction.CommitAsync(cancellationToken);
            return result;
        }
        catch (PostgresException ex) when (ex.SqlState == StaleTokenSqlState)
        {
            throw new LeaseLostException(TenantId, Token, ex);
        }
    }

    /// <summary>
    /// One fenced statement in one round trip: the fence and the statement go as one batch, which PostgreSQL runs as one
    /// implicit transaction — the statement commits only if the fence held, and the fence's lock lasts until it has.
    /// Returns the first column of the statement's first row (null when it returns none) and sets its RecordsAffected.
    /// </summary>
    public async Task<object?> ExecuteAsync(NpgsqlBatchCommand statement, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await using var batch = new NpgsqlBatch(connection);
        if (Token is long token)
        {
            var fence = new NpgsqlBatchCommand("select public.assert_lock_token($1, $2)");
            fence.Parameters.Add(new() { Value = TenantId });
            fence.Parameters.Add(new() { Value = token });
            batch.BatchCommands.Add(fence);
        }

        batch.BatchCommands.Add(statement);
        try
        {
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
            if (Token is not null)
            {
                await reader.NextResultAsync(cancellationToken);
            }

            var value = await reader.ReadAsync(cancellationToken) && reader.FieldCount > 0 && !reader.IsDBNull(0) ? reader.GetValue(0) : null;
            while (await reader.NextResultAsync(cancellationToken))
            {
            }

            return value;
        }
        catch (PostgresException ex) when (ex.SqlState == StaleTokenSqlState)
        {
            throw new LeaseLostException(TenantId, Token, ex);
        }
    }

    public Task InTransactionAsync(Func<NpgsqlConnection, NpgsqlTransaction, Task> work, CancellationToken cancellationToken) =>
        InTransactionAsync(async (c, t) =>
        {
            await work(c, t);
            return true;
        }, cancellationToken);
}
