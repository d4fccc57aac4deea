using Hourglass.Storage;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// A migrated database of a benchmark's own on the benchmark's server, dropped when disposed: its data is all
/// the benchmark measures, whether it runs alone or after the others in <c>all</c>.
/// </summary>
internal sealed class ScratchDatabase : IAsyncDisposable
{
    private readonly NpgsqlDataSource _admin;
    private bool _disposed;

    private ScratchDatabase(NpgsqlDataSource admin, string name)
    {
        _admin = admin;
        Name = name;
        var builder = new NpgsqlConnectionStringBuilder(admin.ConnectionString) { Database = name };
        DataSource = new NpgsqlDataSourceBuilder(builder.ConnectionString) { Name = name }.Build();
    }

    public string Name { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>Drops any database left under <paramref name="name"/> (a constant of the caller, never input), creates it and migrates it.</summary>
    public static async Task<ScratchDatabase> CreateAsync(NpgsqlDataSource admin, string name, CancellationToken cancellationToken)
    {
        await using (var connection = await admin.OpenConnectionAsync(cancellationToken))
        {
            await Bench.ExecuteAsync(connection, $"drop database if exists {name} with (force)", cancellationToken);
            await Bench.ExecuteAsync(connection, $"create database {name}", cancellationToken);
        }

        var database = new ScratchDatabase(admin, name);
        try
        {
            await new Migrator(database.DataSource).MigrateAsync(MigrationSource.Embedded(), cancellationToken);
            return database;
        }
        catch
        {
            await database.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await DataSource.DisposeAsync();
        await using var connection = await _admin.OpenConnectionAsync(CancellationToken.None);
        await Bench.ExecuteAsync(connection, $"drop database if exists {Name} with (force)", CancellationToken.None);
    }
}
