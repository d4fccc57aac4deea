using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Storage;

/// <summary>Where a page starts: rows older than (<paramref name="After"/>, <paramref name="AfterId"/>), at most <paramref name="Size"/>.</summary>
internal sealed record PageRequest(DateTimeOffset After, Guid AfterId, int Size);

/// <summary>A page of rows as JSON texts, and the last row's key when more follow.</summary>
internal sealed record JsonPage(IReadOnlyList<string> Items, (DateTimeOffset At, Guid Id)? Next);

/// <summary>What every store does to run a read: parameters in order, each row through one mapping.</summary>
internal static class StoreReads
{
    /// <summary>A command on <paramref name="connection"/> (in <paramref name="transaction"/>, if any) whose <c>$1</c> is a tenant or null for all.</summary>
    public static NpgsqlCommand ForTenant(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, Guid? tenantId, params object[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }

        return command;
    }

    /// <summary>Every row of <paramref name="command"/>, read by <paramref name="read"/>; disposes the command.</summary>
    public static async Task<IReadOnlyList<T>> ListAsync<T>(NpgsqlCommand command, Func<NpgsqlDataReader, T> read, CancellationToken cancellationToken)
    {
        await using (command)
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var rows = new List<T>();
            while (await reader.ReadAsync(cancellationToken))
            {
                rows.Add(read(reader));
            }

            return rows;
        }
    }

    /// <summary>A command whose parameters are <paramref name="parameters"/> in order; a null is a typed (text) null.</summary>
    public static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, params object?[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(parameter switch
            {
                null => new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                NpgsqlParameter p => p,
                _ => new NpgsqlParameter { Value = parameter },
            });
        }

        return command;
    }

    /// <summary>The first column of the first row (null when there is none), as <typeparamref name="T"/> when it is one.</summary>
    public static async Task<T?> ScalarAsync<T>(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params object?[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteScalarAsync(cancellationToken) is T value ? value : default;
    }

    /// <summary>A JSON text from a query returning one json value (e.g. <c>json_agg</c>), or null when it returned none.</summary>
    public static Task<string?> JsonAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params object?[] parameters) => ScalarAsync<string>(connection, transaction, sql, cancellationToken, parameters);

    /// <summary>
    /// One page, newest first, of <paramref name="inner"/> (a query with <c>created_at</c> and <c>id</c> whose
    /// <c>$1</c> is the tenant; <c>$2</c>, <c>$3</c> are the cursor and <paramref name="extra"/> are <c>$4</c> on).
    /// </summary>
    public static async Task<JsonPage> PageAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string inner, Guid tenantId, PageRequest page,
        CancellationToken cancellationToken, params object?[] extra)
    {
        var sql = PageSql(inner, page.Size);
        await using var command = Command(connection, transaction, sql, [tenantId, page.After, page.AfterId, .. extra]);
        var items = new List<string>();
        (DateTimeOffset At, Guid Id)? last = null;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (items.Count == page.Size)
            {
                return new JsonPage(items, last);
            }

            items.Add(reader.GetString(0));
            last = (reader.GetFieldValue<DateTimeOffset>(1), reader.GetGuid(2));
        }

        return new JsonPage(items, null);
    }

    /// <summary>
    /// The statement <see cref="PageAsync"/> sends for a page of <paramref name="size"/> rows of <paramref name="inner"/>: one row
    /// more than the page, to know whether more follow.
    /// </summary>
    public static string PageSql(string inner, int size) => $"""
        select to_json(x)::text, x.created_at, x.id from ({inner}) x
        where (x.created_at, x.id) < ($2, $3)
        order by x.created_at desc, x.id desc limit {size + 1}
        """;

    // Seeding and inspection (simulator, demo, benchmarks): statements run for their effect or their ids

    /// <summary>Runs a statement whose parameters are <paramref name="parameters"/> in order; the rows it touched.</summary>
    public static async Task<int> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params object?[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The first column of every row, a uuid, in the order the statement returns them.</summary>
    public static async Task<Guid[]> GuidsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params object?[] parameters) =>
        [.. await ListAsync(Command(connection, transaction, sql, parameters), r => r.GetGuid(0), cancellationToken)];
}
