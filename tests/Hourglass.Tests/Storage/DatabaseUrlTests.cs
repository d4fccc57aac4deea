using Hourglass.Storage;
using Npgsql;

namespace Hourglass.Tests.Storage;

public sealed class DatabaseUrlTests
{
    [Fact]
    public void ToConnectionString_SupabaseUri_AllPartsMapped()
    {
        var result = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToConnectionString(
            "postgresql://postgres.abcd:p%40ss%3Aword@aws-0-eu-central-1.pooler.supabase.com:6543/postgres?sslmode=require&application_name=hourglass"));

        Assert.Equal("aws-0-eu-central-1.pooler.supabase.com", result.Host);
        Assert.Equal(6543, result.Port);
        Assert.Equal("postgres", result.Database);
        Assert.Equal("postgres.abcd", result.Username);
        Assert.Equal("p@ss:word", result.Password);
        Assert.Equal(SslMode.Require, result.SslMode);
        Assert.Equal("hourglass", result.ApplicationName);
    }

    [Fact]
    public void ToConnectionString_UriWithoutPortOrDatabase_Defaults()
    {
        var result = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToConnectionString("postgres://me@db.internal"));

        Assert.Equal(5432, result.Port);
        Assert.Equal("postgres", result.Database);
        Assert.Equal("me", result.Username);
    }

    [Fact]
    public void ToConnectionString_VerifyFull_MapsToNpgsqlEnum()
    {
        var result = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToConnectionString("postgresql://u@h/d?sslmode=verify-full"));
        Assert.Equal(SslMode.VerifyFull, result.SslMode);
    }

    [Fact]
    public void ToConnectionString_KeywordString_PassedThrough()
    {
        var result = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToConnectionString("Host=localhost;Port=5433;Username=u;Password=p;Database=d"));
        Assert.Equal(5433, result.Port);
        Assert.Equal("d", result.Database);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("   ", "empty")]
    [InlineData("postgresql://", "invalid database URL")]
    [InlineData("postgresql://u@h/d?bogus=1", "unsupported parameter 'bogus'")]
    [InlineData("postgresql://u@h/d?sslmode=sometimes", "bad value 'sometimes' for sslmode")]
    [InlineData("Host=;;==", "invalid database connection string")]
    [InlineData("Nonsense=1", "invalid database connection string")]
    [InlineData("Username=u", "no Host given")]
    public void ToConnectionString_Malformed_ErrorNamesProblem(string value, string expected)
    {
        var ex = Assert.Throws<HourglassException>(() => DatabaseUrl.ToConnectionString(value));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_NeverShowsPassword()
    {
        var description = DatabaseUrl.Describe(DatabaseUrl.ToConnectionString("postgresql://u:topsecret@h:5/db"));
        Assert.Equal("h:5/db", description);
    }
}
