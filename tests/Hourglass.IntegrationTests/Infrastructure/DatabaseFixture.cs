using Npgsql;

namespace Hourglass.IntegrationTests.Infrastructure;

/// <summary>A fresh migrated database for one test class, dropped after it.</summary>
public sealed class DatabaseFixture : IAsyncLifetime
{
    private string? _connectionString;
    private NpgsqlDataSource? _dataSource;

    public string ConnectionString => _connectionString ?? throw new InvalidOperationException("fixture not initialised");

    /// <summary>A data source connected as the database owner (a superuser on the embedded cluster).</summary>
    public NpgsqlDataSource DataSource => _dataSource ?? throw new InvalidOperationException("fixture not initialised");

    public TestDb Db => new(DataSource);

    public async Task InitializeAsync()
    {
        _connectionString = await TestServer.CreateDatabaseAsync();
        _dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(_connectionString) { MaxPoolSize = 120 }.ConnectionString);
    }

    public async Task DisposeAsync()
    {
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync();
        }

        if (_connectionString is not null)
        {
            await TestServer.DropDatabaseAsync(_connectionString);
        }
    }
}
