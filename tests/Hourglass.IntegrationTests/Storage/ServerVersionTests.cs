using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Storage;

/// <summary>The suite runs on the PostgreSQL it was asked to: CI runs it on 15 and on 18.</summary>
public sealed class ServerVersionTests
{
    [Fact]
    public async Task Server_MajorVersion_IsTheOneRequested()
    {
        await using var connection = new NpgsqlConnection(await TestServer.AdminConnectionStringAsync());
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("select current_setting('server_version_num')::int / 10000", connection);
        var major = (int)(await command.ExecuteScalarAsync())!;

        var expected = Environment.GetEnvironmentVariable("HOURGLASS_EXPECT_PG_MAJOR") is { Length: > 0 } requested
            ? int.Parse(requested, System.Globalization.CultureInfo.InvariantCulture)
            : (await TestServer.EmbeddedAsync())?.Binaries.MajorVersion ?? major;
        Assert.Equal(expected, major);
        Assert.True(major >= 15, $"PostgreSQL {major} is older than the oldest supported (15)");
        if (Environment.GetEnvironmentVariable(PostgresBinaryLocator.BinDirectoryVariable) is null && await TestServer.EmbeddedAsync() is { } embedded)
        {
            Assert.Equal(PostgresBinaryLocator.Locate().MajorVersion, embedded.Binaries.MajorVersion);
        }
    }
}
