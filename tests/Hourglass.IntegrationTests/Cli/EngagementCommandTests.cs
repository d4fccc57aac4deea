using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>hourglass touch / queue / cards complete, as a user or an outside system runs them.</summary>
public sealed class EngagementCommandTests : IAsyncLifetime
{
    private readonly DatabaseFixture _database = new();
    private Guid _tenant;
    private Guid _contact;

    public async Task InitializeAsync()
    {
        await _database.InitializeAsync();
        _tenant = await _database.Db.CreateTenantAsync("Engaged Co");
        var account = await _database.Db.CreateAccountAsync(_tenant, "Initech");
        _contact = await _database.Db.CreateContactAsync(_tenant, account, "Milton Waddams");
        await _database.Db.ExecuteAsync("update public.engagement_clocks set next_touch_due = now() - interval '3 days 1 hour' where tenant_id = $1 and entity_id = $2", _tenant, _contact);
        await _database.Db.ScalarAsync("select public.refresh_engagement_compliance($1)", _tenant);
    }

    public Task DisposeAsync() => _database.DisposeAsync();

    [Fact]
    public async Task Queue_ThenOutsideTouch_ContactLeavesTheQueue()
    {
        var before = await HourglassProcess.RunAsync("queue", "--tenant", "Engaged Co", "--database", _database.ConnectionString);
        Assert.Equal(0, before.ExitCode);
        Assert.Contains("contact Milton Waddams", before.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("overdue 3 day(s) (+130)", before.StandardOutput, StringComparison.Ordinal);

        var touch = await HourglassProcess.RunAsync("touch", "--tenant", "Engaged Co", "--contact", _contact.ToString(), "--type", "email", "--by", "email-sync",
            "--database", _database.ConnectionString);
        Assert.True(touch.ExitCode == 0, touch.StandardError);

        var after = await HourglassProcess.RunAsync("queue", "--tenant", "Engaged Co", "--database", _database.ConnectionString);
        Assert.Contains("Nobody is due", after.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("email-sync", await _database.Db.ScalarAsync("select last_touch_by from public.engagement_clocks where entity_id = $1", _contact));
    }

    [Theory]
    [InlineData(new[] { "touch", "--tenant", "Engaged Co", "--type", "email" }, "give exactly one of --contact or --account")]
    [InlineData(new[] { "touch", "--tenant", "Engaged Co", "--type", "email", "--contact", "not-a-guid" }, "not-a-guid")]
    [InlineData(new[] { "touch", "--tenant", "Engaged Co", "--type", "email", "--account", "6d3c1f4e-0000-4000-8000-000000000000" }, "does not exist in tenant")]
    [InlineData(new[] { "queue", "--tenant", "Engaged Co", "--top", "0" }, "p_limit must be between 1 and 1000")]
    [InlineData(new[] { "cards", "complete", "--card", "6d3c1f4e-0000-4000-8000-000000000000" }, "not found")]
    public async Task BadInput_OneLineNothingTouched(string[] arguments, string expected)
    {
        var result = await HourglassProcess.RunAsync([.. arguments, "--database", _database.ConnectionString]);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(0L, await _database.Db.ScalarAsync("select coalesce(sum(touch_count), 0)::bigint from public.engagement_clocks where tenant_id = $1", _tenant));
    }
}
