using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>The hourglass executable run as a user runs it: exit codes, one-line errors, reports.</summary>
public sealed class CommandLineTests
{
    [Fact]
    public async Task UnknownFlag_OneLineErrorExit2()
    {
        var result = await HourglassProcess.RunAsync("verify", "--no-such-flag");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--no-such-flag", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result);
    }

    [Theory]
    [InlineData("Host=;;==", "invalid database connection string")]
    [InlineData("postgresql://user@", "invalid database URL")]
    [InlineData("postgresql://u:p@127.0.0.1:5432/db?sslmod=require", "unsupported parameter 'sslmod'")]
    [InlineData("Username=x;Password=y", "no Host given")]
    public async Task MalformedConnectionString_OneLineNamingIt(string database, string expected)
    {
        var result = await HourglassProcess.RunAsync("verify", "--database", database);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result);
    }

    [Fact]
    public async Task UnreachableServer_OneLineNamingAddress()
    {
        // Port 1 on loopback: nothing listens there.
        var result = await HourglassProcess.RunAsync(
            new Dictionary<string, string?> { ["HOURGLASS_DATABASE_URL"] = "postgresql://hourglass:secret@127.0.0.1:1/hourglass" }, "migrate");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("cannot reach the database at 127.0.0.1:1/hourglass", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result);
    }

    [Fact]
    public async Task WrongPassword_OneLineWithSqlState()
    {
        var admin = new NpgsqlConnectionStringBuilder(await TestServer.AdminConnectionStringAsync()) { Password = "wrong-password" };

        var result = await HourglassProcess.RunAsync("verify", "--database", admin.ConnectionString);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("28P01", result.StandardError, StringComparison.Ordinal);
        AssertNoStackTrace(result);
    }

    [Fact]
    public async Task MigrateThenVerify_ExternalDatabase_UpToDateAndPass()
    {
        var connectionString = await TestServer.CreateDatabaseAsync(migrated: false);
        try
        {
            var first = await HourglassProcess.RunAsync("migrate", "--database", connectionString);
            Assert.Equal(0, first.ExitCode);
            Assert.Contains("applied 20251217000000_autonomous_agent_system.sql", first.StandardOutput, StringComparison.Ordinal);

            var second = await HourglassProcess.RunAsync("migrate", "--database", connectionString);
            Assert.Equal(0, second.ExitCode);
            Assert.Contains("Migrations: up to date", second.StandardOutput, StringComparison.Ordinal);

            var verify = await HourglassProcess.RunAsync("verify", "--database", connectionString);
            Assert.Equal(0, verify.ExitCode);
            Assert.Contains("PASS: all", verify.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("✅ agent_hourly_reflections", verify.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            await TestServer.DropDatabaseAsync(connectionString);
        }
    }

    [Fact]
    public async Task Verify_DroppedIndex_Exit1NamingIt()
    {
        var connectionString = await TestServer.CreateDatabaseAsync();
        try
        {
            await using (var dataSource = NpgsqlDataSource.Create(connectionString))
            {
                await new TestDb(dataSource).ExecuteAsync("drop index public.idx_tenant_locks_expires");
            }

            var result = await HourglassProcess.RunAsync("verify", "--database", connectionString);

            Assert.Equal(1, result.ExitCode);
            Assert.Contains("❌ idx_tenant_locks_expires", result.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("FAIL: 1 of", result.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("Indexes: idx_tenant_locks_expires: missing", result.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            await TestServer.DropDatabaseAsync(connectionString);
        }
    }

    [Fact]
    public async Task Verify_EmptyDatabase_Exit1ListingMisses()
    {
        var connectionString = await TestServer.CreateDatabaseAsync(migrated: false);
        try
        {
            var result = await HourglassProcess.RunAsync("verify", "--database", connectionString);

            Assert.Equal(1, result.ExitCode);
            Assert.Contains("Tables: agent_autonomous_runs: missing", result.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("Migrations: 20251217000000_autonomous_agent_system.sql: not applied", result.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            await TestServer.DropDatabaseAsync(connectionString);
        }
    }

    private static void AssertNoStackTrace(HourglassProcess.Result result)
    {
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", result.StandardError, StringComparison.Ordinal);
        Assert.True(result.StandardError.Trim().Split('\n').Length <= 2, $"expected one error line, got:\n{result.StandardError}");
    }
}
