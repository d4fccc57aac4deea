using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Infrastructure;

/// <summary>
/// The PostgreSQL server the integration tests run against: HOURGLASS_TEST_DATABASE_URL when set (a role
/// that may create databases), else a throwaway embedded cluster started once per test run with the same
/// code the executable uses. A migrated template database is built once; each test class clones it.
/// </summary>
internal static class TestServer
{
    public const string UrlVariable = "HOURGLASS_TEST_DATABASE_URL";

    private static readonly SemaphoreSlim s_cloneGate = new(1, 1);
    private static readonly Lazy<Task<ServerState>> s_state = new(StartAsync);

    private sealed record ServerState(string AdminConnectionString, EmbeddedPostgres? Embedded, string TemplateName);

    public static async Task<string> AdminConnectionStringAsync() => (await s_state.Value).AdminConnectionString;

    /// <summary>The embedded cluster, or null when the tests use HOURGLASS_TEST_DATABASE_URL.</summary>
    public static async Task<EmbeddedPostgres?> EmbeddedAsync() => (await s_state.Value).Embedded;

    /// <summary>Creates a fresh database: migrated (a clone of the template) or empty.</summary>
    public static async Task<string> CreateDatabaseAsync(bool migrated = true)
    {
        var state = await s_state.Value;
        var name = $"hg_test_{Guid.NewGuid():N}";
        await s_cloneGate.WaitAsync();
        try
        {
            await using var admin = new NpgsqlConnection(state.AdminConnectionString);
            await admin.OpenAsync();
            var template = migrated ? $" template {SqlIdentifier.Quote(state.TemplateName)}" : "";
            await using var create = new NpgsqlCommand($"create database {SqlIdentifier.Quote(name)}{template}", admin);
            await create.ExecuteNonQueryAsync();
        }
        finally
        {
            s_cloneGate.Release();
        }

        return new NpgsqlConnectionStringBuilder(state.AdminConnectionString) { Database = name }.ConnectionString;
    }

    public static async Task DropDatabaseAsync(string connectionString)
    {
        var state = await s_state.Value;
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(state.AdminConnectionString);
        await admin.OpenAsync();
        await using var drop = new NpgsqlCommand($"drop database if exists {SqlIdentifier.Quote(name)} with (force)", admin);
        await drop.ExecuteNonQueryAsync();
    }

    private static async Task<ServerState> StartAsync()
    {
        EmbeddedPostgres? embedded = null;
        string admin;
        var url = Environment.GetEnvironmentVariable(UrlVariable);
        if (!string.IsNullOrWhiteSpace(url))
        {
            admin = DatabaseUrl.ToConnectionString(url);
        }
        else
        {
            embedded = await EmbeddedPostgres.StartThrowawayAsync();
            admin = embedded.MaintenanceConnectionString;
            // The throwaway cluster goes when the test run ends, however it ends short of a kill; a killed run's
            // cluster is swept by the next one (EmbeddedPostgres.StartThrowawayAsync).
            AppDomain.CurrentDomain.ProcessExit += (_, _) => embedded.StopAsync().GetAwaiter().GetResult();
        }

        var template = $"hg_template_{Guid.NewGuid():N}";
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"create database {SqlIdentifier.Quote(template)}", connection);
            await create.ExecuteNonQueryAsync();
        }

        var templateConnectionString = new NpgsqlConnectionStringBuilder(admin) { Database = template, Pooling = false }.ConnectionString;
        await using (var dataSource = NpgsqlDataSource.Create(templateConnectionString))
        {
            await new Migrator(dataSource).MigrateAsync(MigrationSource.Embedded());
        }

        if (embedded is null)
        {
            AppDomain.CurrentDomain.ProcessExit += (_, _) => DropTemplate(admin, template);
        }

        return new ServerState(admin, embedded, template);
    }

    private static void DropTemplate(string admin, string template)
    {
        using var connection = new NpgsqlConnection(admin);
        connection.Open();
        using var drop = new NpgsqlCommand($"drop database if exists {SqlIdentifier.Quote(template)} with (force)", connection);
        drop.ExecuteNonQuery();
    }
}
