using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>Who a statement runs as. The role is switched exactly as the API switches it, through <see cref="DbSession"/>.</summary>
internal sealed record Principal(string Role, Guid? UserId)
{
    public static Principal Anon { get; } = new("anon", null);

    public static Principal ServiceRole { get; } = new("service_role", null);

    public static Principal User(Guid userId) => new("authenticated", userId);

    public Task<NpgsqlTransaction> BeginAsync(NpgsqlConnection connection) => Role switch
    {
        "anon" => DbSession.BeginAsAnonAsync(connection),
        "service_role" => DbSession.BeginAsServiceRoleAsync(connection),
        _ => DbSession.BeginAsUserAsync(connection, UserId!.Value),
    };

    public override string ToString() => UserId is { } user ? $"{Role} {user}" : Role;
}

/// <summary>What one attempted statement did: its result, or the SQLSTATE it failed with.</summary>
internal sealed record Outcome<T>(T? Result, string? SqlState)
{
    public bool Succeeded => SqlState is null;

    public override string ToString() => Succeeded ? $"succeeded ({Result})" : $"failed with SQLSTATE {SqlState}";
}

/// <summary>
/// Runs one statement per transaction as a <see cref="Principal"/>, the way an API request does. An error aborts the
/// transaction, so each attempt gets a fresh one; a success is rolled back unless <c>commit</c> is set, which
/// the negative tests use so that anything a statement did manage to write is really there to be found.
/// </summary>
internal sealed class ApiCalls(NpgsqlDataSource dataSource)
{
    public Task<Outcome<int>> ExecuteAsync(Principal who, string sql, object?[] parameters, bool commit = false) =>
        RunAsync(who, sql, parameters, commit, command => command.ExecuteNonQueryAsync());

    public Task<Outcome<object>> ScalarAsync(Principal who, string sql, object?[] parameters, bool commit = false) =>
        RunAsync(who, sql, parameters, commit, async command =>
        {
            var value = await command.ExecuteScalarAsync();
            return value is DBNull ? null : value;
        });

    /// <summary>Every row of <paramref name="sql"/>'s first column, as text.</summary>
    public Task<Outcome<IReadOnlyList<string>>> LinesAsync(Principal who, string sql, params object?[] parameters) =>
        RunAsync<IReadOnlyList<string>>(who, sql, parameters, commit: false, async command =>
        {
            var lines = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                lines.Add(reader.GetValue(0).ToString()!);
            }

            return lines;
        });

    /// <summary><c>select *</c> with no filter at all, returning each row's tenant column: the "forgotten filter" query.</summary>
    public Task<Outcome<IReadOnlyList<Guid>>> SelectAllTenantIdsAsync(Principal who, string table) =>
        RunAsync<IReadOnlyList<Guid>>(who, $"select * from {SampleRow.Qualified(table)}", [], commit: false, async command =>
        {
            var tenants = new List<Guid>();
            await using var reader = await command.ExecuteReaderAsync();
            var column = reader.GetOrdinal(SampleRow.TenantColumn(table));
            while (await reader.ReadAsync())
            {
                tenants.Add(reader.GetGuid(column));
            }

            return tenants;
        });

    private async Task<Outcome<T>> RunAsync<T>(Principal who, string sql, object?[] parameters, bool commit, Func<NpgsqlCommand, Task<T?>> run)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var transaction = await who.BeginAsync(connection);
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter ?? DBNull.Value });
        }

        T? result;
        try
        {
            result = await run(command);
        }
        catch (PostgresException ex)
        {
            // Disposing the aborted transaction rolls it back.
            return new Outcome<T>(default, ex.SqlState);
        }

        if (commit)
        {
            await transaction.CommitAsync();
        }
        else
        {
            await transaction.RollbackAsync();
        }

        return new Outcome<T>(result, null);
    }
}
