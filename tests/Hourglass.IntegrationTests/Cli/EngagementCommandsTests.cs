using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>hourglass touch / queue / cards complete, as a user or an outside system runs them.</summary>
public sealed class EngagementCommandsTests : DatabaseTest
{
    private Guid _tenant;
    private Guid _contact;

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync("Engaged Co");
        var account = await Db.CreateAccountAsync(_tenant, "Initech");
        _contact = await Db.CreateContactAsync(_tenant, account, "Milton Waddams");
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = now() - interval '3 days 1 hour' where tenant_id = $1 and entity_id = $2", _tenant, _contact);
        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", _tenant);
    }

    [Fact]
    public async Task Queue_ThenOutsideTouch_ContactLeavesTheQueue()
    {
        var before = await HourglassProcess.RunAsync("queue", "--tenant", "Engaged Co", "--database", ConnectionString);
        Assert.Equal(0, before.ExitCode);
        Assert.Contains("contact Milton Waddams", before.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("overdue 3 day(s) (+130)", before.StandardOutput, StringComparison.Ordinal);

        var touch = await HourglassProcess.RunAsync("touch", "--tenant", "Engaged Co", "--contact", _contact.ToString(), "--type", "email", "--by", "email-sync",
            "--database", ConnectionString);
        Assert.True(touch.ExitCode == 0, touch.StandardError);

        var after = await HourglassProcess.RunAsync("queue", "--tenant", "Engaged Co", "--database", ConnectionString);
        Assert.Contains("Nobody is due", after.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("email-sync", await Db.ScalarAsync("select last_touch_by from public.engagement_clocks where entity_id = $1", _contact));
    }

    [Fact]
    public async Task Touch_WithOwnTimeAndKey_SentTwice_RecordedOnce()
    {
        var at = DateTimeOffset.UtcNow.AddHours(-2).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        string[] touch = ["touch", "--tenant", "Engaged Co", "--contact", _contact.ToString(), "--type", "call", "--at", at, "--key", "pbx-991",
            "--database", ConnectionString];

        var first = await HourglassProcess.RunAsync(touch);
        var second = await HourglassProcess.RunAsync(touch);

        Assert.True(first.ExitCode == 0, first.StandardError);
        Assert.Contains("Touch recorded", first.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(0, second.ExitCode);
        Assert.Contains("Already recorded", second.StandardOutput, StringComparison.Ordinal);
        Assert.Equal($"1:{at}", await Db.ScalarAsync(
            "select touch_count || ':' || to_char(last_touch_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from public.engagement_clocks where entity_id = $1", _contact));
    }

    [Fact]
    public async Task ImportCsv_BadLine_RefusedByDefaultNamingTheLine_SkipRecordsTheRest()
    {
        var file = Path.Combine(Path.GetTempPath(), $"touches-{Guid.NewGuid():N}.csv");
        var at = DateTimeOffset.UtcNow.AddMinutes(-10).ToString("O", System.Globalization.CultureInfo.InvariantCulture);
        await File.WriteAllTextAsync(file,
            "entity_type,entity_id,touch_type,occurred_at,idempotency_key\n" +
            $"contact,{_contact},email,{at},sync-1\n" +
            $"contact,{Guid.NewGuid()},email,{at},sync-2\n" +
            "contact,not-a-uuid,email,,\n");
        try
        {
            var refused = await HourglassProcess.RunAsync("touches", "import", "--tenant", "Engaged Co", "--file", file, "--database", ConnectionString);
            var countAfterRefusal = await Db.ScalarAsync("select touch_count from public.engagement_clocks where entity_id = $1", _contact);
            var skipped = await HourglassProcess.RunAsync("touches", "import", "--tenant", "Engaged Co", "--file", file, "--on-error", "skip", "--database", ConnectionString);
            var resent = await HourglassProcess.RunAsync("touches", "import", "--tenant", "Engaged Co", "--file", file, "--on-error", "skip", "--database", ConnectionString);

            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("2 of 3 touches rejected, nothing recorded: line 3: contact", refused.StandardError, StringComparison.Ordinal);
            Assert.Contains("line 4: entity_id must be a uuid", refused.StandardError, StringComparison.Ordinal);
            Assert.Equal(0, countAfterRefusal);
            Assert.Equal(3, skipped.ExitCode);
            Assert.Contains("3 touch(es) read: 1 recorded, 0 duplicate(s) skipped, 2 rejected.", skipped.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("line 3: contact", skipped.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("1 duplicate(s) skipped", resent.StandardOutput, StringComparison.Ordinal);
            Assert.Equal(1, await Db.ScalarAsync("select touch_count from public.engagement_clocks where entity_id = $1", _contact));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task ImportNdjson_FromStandardInput_Recorded()
    {
        var line = $$"""{"entity_type":"contact","entity_id":"{{_contact}}","touch_type":"meeting","touch_by":"calendar-sync"}""";

        var result = await HourglassProcess.RunAsync(["touches", "import", "--tenant", "Engaged Co", "--file", "-", "--format", "ndjson",
            "--database", ConnectionString], standardInput: line + "\n");

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal("calendar-sync", await Db.ScalarAsync("select last_touch_by from public.engagement_clocks where entity_id = $1", _contact));
    }

    [Theory]
    [InlineData(new[] { "touch", "--tenant", "Engaged Co", "--type", "email" }, "give exactly one of --contact or --account")]
    [InlineData(new[] { "touch", "--tenant", "Engaged Co", "--type", "email", "--contact", "not-a-guid" }, "not-a-guid")]
    [InlineData(new[] { "touch", "--tenant", "Engaged Co", "--type", "email", "--account", "6d3c1f4e-0000-4000-8000-000000000000" }, "does not exist in this tenant")]
    [InlineData(new[] { "touch", "--tenant", "Engaged Co", "--type", "email", "--account", "6d3c1f4e-0000-4000-8000-000000000000", "--at", "2099-01-01T00:00:00Z" }, "line 1: account")]
    [InlineData(new[] { "touches", "import", "--tenant", "Engaged Co", "--file", "/nonexistent/touches.csv" }, "--file: '/nonexistent/touches.csv' does not exist")]
    [InlineData(new[] { "touches", "import", "--tenant", "Engaged Co", "--file", "touches.txt" }, "--format is needed")]
    [InlineData(new[] { "touches", "import", "--tenant", "Engaged Co", "--file", "t.csv", "--batch-size", "0" }, "--batch-size must be between 1 and 10000")]
    [InlineData(new[] { "queue", "--tenant", "Engaged Co", "--top", "0" }, "p_limit must be between 1 and 1000")]
    [InlineData(new[] { "cards", "complete", "--card", "6d3c1f4e-0000-4000-8000-000000000000" }, "not found")]
    public async Task BadInput_OneLineNothingTouched(string[] arguments, string expected)
    {
        var result = await HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select coalesce(sum(touch_count), 0)::bigint from public.engagement_clocks where tenant_id = $1", _tenant));
    }
}
