using Hourglass.Storage;
using Npgsql;

namespace Hourglass.Tests.Storage;

public class ProductDataSourceTests
{
    private const string Base = "Host=127.0.0.1;Port=5432;Username=u;Password=p;Database=d";

    [Fact]
    public void A_direct_connection_prepares_statements_automatically_and_keeps_plans()
    {
        var built = new NpgsqlConnectionStringBuilder(ProductDataSource.ConnectionString(Base, direct: true));
        Assert.Equal(ProductDataSource.DirectMaxAutoPrepare, built.MaxAutoPrepare);
        Assert.True(built.NoResetOnClose);
    }

    [Fact]
    public void A_server_named_by_url_is_not_prepared_automatically_since_a_pooler_may_sit_in_front()
    {
        var built = new NpgsqlConnectionStringBuilder(ProductDataSource.ConnectionString(Base, direct: false));
        Assert.Equal(0, built.MaxAutoPrepare);
        Assert.True(built.NoResetOnClose);
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(16, true)]
    [InlineData(16, false)]
    public void A_connection_string_that_sets_it_is_left_as_it_is(int setting, bool direct)
    {
        var built = new NpgsqlConnectionStringBuilder(ProductDataSource.ConnectionString($"{Base};Max Auto Prepare={setting}", direct));
        Assert.Equal(setting, built.MaxAutoPrepare);
    }
}
