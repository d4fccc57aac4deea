using System.Collections.Concurrent;
using Npgsql;

namespace Hourglass.Storage;

/// <summary>
/// The connection settings Hourglass runs with. Both keep PostgreSQL's plans from being thrown away between calls:
/// <list type="bullet">
/// <item>No reset on close: Npgsql's DISCARD ALL on every return to the pool also discards the plans plpgsql functions
/// cache, so each call re-planned (the cycle benchmark measured 17.4 against 24.4 cycles/s). Nothing here leaves
/// session state behind: sessions set role and claims transaction-locally, and the migrator releases its advisory lock
/// itself.</item>
/// <item>Automatic preparation, on a direct connection (the embedded cluster): a statement the process sends again and
/// again is parsed and planned once per connection instead of every time. Not by default on a server named by URL,
/// which may sit behind a transaction-mode pooler (Supabase's Supavisor on port 6543 does not support prepared
/// statements); add <c>Max Auto Prepare=128</c> to its connection string when it is a direct or session-mode
/// connection. A connection string that sets it either way is left as it is.</item>
/// </list>
/// </summary>
internal static class ProductDataSource
{
    // MayPrepare is asked a few times a batch; a process has a handful of connection strings, each parsed once.
    private static readonly ConcurrentDictionary<string, bool> s_mayPrepare = new(StringComparer.Ordinal);

    /// <summary>How many statements a connection keeps prepared, on a direct connection.</summary>
    public const int DirectMaxAutoPrepare = 128;

    /// <summary>The connection string Hourglass uses for <paramref name="connectionString"/>.</summary>
    public static string ConnectionString(string connectionString, bool direct)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { NoResetOnClose = true };
        if (direct && !SetsMaxAutoPrepare(connectionString))
        {
            builder.MaxAutoPrepare = DirectMaxAutoPrepare;
        }

        return builder.ConnectionString;
    }

    /// <summary>
    /// Whether statements may be prepared on <paramref name="connection"/>: only where its connection string lets Npgsql
    /// prepare automatically (<c>Max Auto Prepare</c> above 0), which a transaction-mode pooler's must not.
    /// </summary>
    public static bool MayPrepare(NpgsqlConnection connection) =>
        s_mayPrepare.GetOrAdd(connection.ConnectionString, static text => new NpgsqlConnectionStringBuilder(text).MaxAutoPrepare > 0);


    // Whether the string names the setting itself (NpgsqlConnectionStringBuilder.ContainsKey answers for any known keyword).
    private static bool SetsMaxAutoPrepare(string connectionString) =>
        new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.Keys.Cast<string>()
            .Any(key => string.Equals(key.Replace(" ", "", StringComparison.Ordinal), "MaxAutoPrepare", StringComparison.OrdinalIgnoreCase));

    /// <summary>A data source with <see cref="ConnectionString"/>'s settings.</summary>
    public static NpgsqlDataSource Create(string connectionString, bool direct, string? name = null) =>
        new NpgsqlDataSourceBuilder(ConnectionString(connectionString, direct)) { Name = name }.Build();
}
