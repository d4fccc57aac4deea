using System.Text.Json;
using Npgsql;

namespace Hourglass.Storage;

/// <summary>
/// Transactions that run as PostgREST runs a request: the role and the JWT claims are set for the
/// transaction only (<c>set_config(…, true)</c>), so row-level security, not the application, decides
/// which rows the statement sees, and nothing leaks to the next user of a pooled connection.
/// </summary>
internal static class DbSession
{
    /// <summary>Begins a transaction as an authenticated user (<c>sub</c> = <paramref name="userId"/>).</summary>
    public static Task<NpgsqlTransaction> BeginAsUserAsync(NpgsqlConnection connection, Guid userId, CancellationToken cancellationToken = default) =>
        BeginAsync(connection, "authenticated", new Dictionary<string, object> { ["sub"] = userId.ToString(), ["role"] = "authenticated" }, cancellationToken);

    /// <summary>Begins a transaction as the anonymous API role, with no user.</summary>
    public static Task<NpgsqlTransaction> BeginAsAnonAsync(NpgsqlConnection connection, CancellationToken cancellationToken = default) =>
        BeginAsync(connection, "anon", new Dictionary<string, object> { ["role"] = "anon" }, cancellationToken);

    /// <summary>Begins a transaction as the service role: what the worker and trusted jobs use.</summary>
    public static Task<NpgsqlTransaction> BeginAsServiceRoleAsync(NpgsqlConnection connection, CancellationToken cancellationToken = default) =>
        BeginAsync(connection, "service_role", new Dictionary<string, object> { ["role"] = "service_role" }, cancellationToken);

    /// <summary>Begins a transaction as <paramref name="role"/> with the given JWT claims.</summary>
    public static async Task<NpgsqlTransaction> BeginAsync(
        NpgsqlConnection connection, string role, IReadOnlyDictionary<string, object> claims, CancellationToken cancellationToken = default)
    {
        var transaction = await connection.BeginTransactionAsync(cancellationToken);
        try
        {
            await using var command = new NpgsqlCommand(
                "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)", connection, transaction);
            command.Parameters.Add(new() { Value = role });
            command.Parameters.Add(new() { Value = JsonSerializer.Serialize(claims) });
            await command.ExecuteNonQueryAsync(cancellationToken);
            return transaction;
        }
        catch
        {
            await transaction.DisposeAsync();
            throw;
        }
    }
}
