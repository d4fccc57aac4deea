using Hourglass.Storage;
using Npgsql;

namespace Hourglass.Server.Cli;

/// <summary>
/// Who a CLI decision is made by (<c>--by</c>). A member's user id means that member decides in their own right: the
/// call runs in their session, as the API would run it, so the database checks their role's capability and records
/// <c>user:&lt;id&gt;</c>. Anything else is the operator's name for the record (<c>service:&lt;name&gt;</c>), with the
/// CLI acting as the service role.
/// </summary>
internal static class ActingPerson
{
    public const string Description =
        "Who decides: a member's user id (the member acts; their role must have the capability), or a name for the record (the operator acts).";

    /// <summary>
    /// Runs a function call whose last parameter is its <c>p_by</c>: as the member (with <c>p_by</c> null, since a user
    /// acts as themselves) when <paramref name="by"/> is a user id, else as the operator naming <paramref name="by"/>.
    /// </summary>
    public static async Task<object?> CallAsync(NpgsqlDataSource dataSource, string by, string sql, object?[] arguments, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var member = Guid.TryParse(by, out var user);
        await using var transaction = member
            ? await DbSession.BeginAsUserAsync(connection, user, cancellationToken)
            : await connection.BeginTransactionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var argument in arguments)
        {
            command.Parameters.Add(argument as NpgsqlParameter ?? new NpgsqlParameter { Value = argument ?? DBNull.Value });
        }

        command.Parameters.Add(new NpgsqlParameter { Value = member ? DBNull.Value : by, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        var result = await command.ExecuteScalarAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return result;
    }
}
