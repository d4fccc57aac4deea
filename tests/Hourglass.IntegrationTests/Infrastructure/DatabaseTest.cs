using Npgsql;

namespace Hourglass.IntegrationTests.Infrastructure;

/// <summary>
/// The base of a test class that runs on a fresh migrated database of its own (a clone of the template, dropped after
/// the class): xunit makes an instance per test, so each test gets its own database. Set-up that needs the database
/// goes in <see cref="SeedAsync"/>, clean-up before it is dropped in <see cref="TearDownAsync"/>. A class that needs
/// several databases, or shares one across its tests (<c>IClassFixture&lt;DatabaseFixture&gt;</c>,
/// <c>TwoTenantFixture</c>), keeps its fixtures.
/// </summary>
public abstract class DatabaseTest : IAsyncLifetime
{
    /// <summary>The test's database: its connection string, data source and helpers.</summary>
    protected DatabaseFixture Database { get; } = new();

    protected TestDb Db => Database.Db;

    /// <summary>A data source connected as the database owner (a superuser on the embedded cluster).</summary>
    protected NpgsqlDataSource DataSource => Database.DataSource;

    protected string ConnectionString => Database.ConnectionString;

    public async Task InitializeAsync()
    {
        await Database.InitializeAsync();
        await SeedAsync();
    }

    public async Task DisposeAsync()
    {
        try
        {
            await TearDownAsync();
        }
        finally
        {
            await Database.DisposeAsync();
        }
    }

    /// <summary>What the test class sets up once its database exists (tenants, rows, a harness).</summary>
    protected virtual Task SeedAsync() => Task.CompletedTask;

    /// <summary>What the test class stops or releases before its database is dropped (servers, processes, data sources).</summary>
    protected virtual Task TearDownAsync() => Task.CompletedTask;
}
