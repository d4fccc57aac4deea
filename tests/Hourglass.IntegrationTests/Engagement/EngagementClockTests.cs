using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Engagement;

/// <summary>update_engagement_clock and refresh_engagement_compliance: the clock maths, in the database.</summary>
public sealed class EngagementClockTests(DatabaseFixture fixture) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private static readonly DateTimeOffset s_t0 = new(2026, 3, 1, 9, 30, 0, TimeSpan.Zero);

    private TestDb Db => fixture.Db;

    public Task InitializeAsync() => Db.FreezeTimeAsync(s_t0);

    public async Task DisposeAsync() => await Db.ExecuteAsync("select hourglass.thaw_time()");

    [Fact]
    public async Task Touch_NewEntity_CreatesClockDueAfterTenantDefault()
    {
        var tenant = await Db.CreateTenantAsync();
        var contact = await Db.CreateContactAsync(tenant);

        var clockId = await TouchAsync(tenant, "contact", contact, "email");

        var clock = await ClockAsync(clockId);
        Assert.Equal(s_t0, clock.LastTouchAt);
        Assert.Equal(s_t0.AddDays(21), clock.NextTouchDue);
        Assert.Equal(21, clock.FrequencyDays);
        Assert.Equal(1, clock.TouchCount);
        Assert.Equal("compliant", clock.Status);
        Assert.Equal(0, clock.DaysOverdue);
        Assert.Equal("email", clock.LastTouchType);
        Assert.Equal("agent", clock.LastTouchBy);
    }

    [Fact]
    public async Task Touch_TenantSettingFrequency_UsedForNewClocks()
    {
        var tenant = await Db.CreateTenantAsync(settingsJson: """{"touch_frequency_days": 14}""");
        var account = await Db.CreateAccountAsync(tenant);

        var clock = await ClockAsync(await TouchAsync(tenant, "account", account, "call"));

        Assert.Equal(14, clock.FrequencyDays);
        Assert.Equal(s_t0.AddDays(14), clock.NextTouchDue);
    }

    [Fact]
    public async Task Touch_ExistingOverdueClock_ResetsFromNewTouchAndCounts()
    {
        var tenant = await Db.CreateTenantAsync();
        var contact = await Db.CreateContactAsync(tenant);
        var clockId = await TouchAsync(tenant, "contact", contact, "email");
        await Db.FreezeTimeAsync(s_t0.AddDays(30));
        Assert.Equal(1, await RefreshAsync(tenant));
        Assert.Equal("overdue", (await ClockAsync(clockId)).Status);

        var again = await TouchAsync(tenant, "contact", contact, "meeting", "user:42");

        Assert.Equal(clockId, again);
        var clock = await ClockAsync(clockId);
        Assert.Equal(2, clock.TouchCount);
        Assert.Equal(s_t0.AddDays(30), clock.LastTouchAt);
        Assert.Equal(s_t0.AddDays(51), clock.NextTouchDue);
        Assert.Equal("compliant", clock.Status);
        Assert.Equal(0, clock.DaysOverdue);
        Assert.Equal("user:42", clock.LastTouchBy);
    }

    [Fact]
    public async Task Touch_CustomFrequencyOnClock_SurvivesTouches()
    {
        var tenant = await Db.CreateTenantAsync();
        var contact = await Db.CreateContactAsync(tenant);
        var clockId = await TouchAsync(tenant, "contact", contact, "email");
        await Db.ExecuteAsync("update public.engagement_clocks set frequency_override_days = 7 where id = $1", clockId);

        await Db.FreezeTimeAsync(s_t0.AddDays(2));
        await TouchAsync(tenant, "contact", contact, "email");

        var clock = await ClockAsync(clockId);
        Assert.Equal(7, clock.FrequencyDays);
        Assert.Equal(s_t0.AddDays(9), clock.NextTouchDue);
    }

    [Fact]
    public async Task Touch_WithCard_RecordsCard()
    {
        var tenant = await Db.CreateTenantAsync();
        var contact = await Db.CreateContactAsync(tenant);
        var card = (Guid)(await Db.ScalarAsync(
            "insert into public.cards (tenant_id, kind, title) values ($1, 'touch_task', 'Call Pat') returning id", tenant))!;

        var clockId = (Guid)(await Db.ScalarAsync(
            "select public.update_engagement_clock($1, 'contact', $2, 'call', 'user:7', $3)", tenant, contact, card))!;

        Assert.Equal(card, await Db.ScalarAsync("select last_card_id from public.engagement_clocks where id = $1", clockId));
    }

    [Fact]
    public async Task Refresh_EachComplianceState_StatusAndDaysOverdue()
    {
        var tenant = await Db.CreateTenantAsync();
        // Last touched 0, 17, 18, 21, 22 and 31 days before "now": with a 21-day cadence and the default
        // 3-day window these are compliant, compliant (4 days left), due soon (3 days left: the window's
        // edge), due soon (due exactly now), overdue by less than a day, and overdue by 10 days.
        var cases = new (int DaysAgo, double ExtraHours, string Status, int DaysOverdue)[]
        {
            (0, 0, "compliant", 0),
            (17, 0, "compliant", 0),
            (18, 0, "due_soon", 0),
            (21, 0, "due_soon", 0),
            (21, 5, "overdue", 0),
            (31, 0, "overdue", 10),
        };
        var clocks = new List<Guid>();
        foreach (var c in cases)
        {
            await Db.FreezeTimeAsync(s_t0.AddDays(-c.DaysAgo).AddHours(-c.ExtraHours));
            clocks.Add(await TouchAsync(tenant, "contact", await Db.CreateContactAsync(tenant), "email"));
        }

        await Db.FreezeTimeAsync(s_t0);
        var changed = await RefreshAsync(tenant);

        for (var i = 0; i < cases.Length; i++)
        {
            var clock = await ClockAsync(clocks[i]);
            Assert.True(cases[i].Status == clock.Status, $"case {i}: expected {cases[i].Status}, got {clock.Status}");
            Assert.Equal(cases[i].DaysOverdue, clock.DaysOverdue);
        }

        Assert.Equal(cases.Count(c => c.Status != "compliant"), changed);
    }

    [Fact]
    public async Task Refresh_NothingMoved_ReturnsZeroAndRewritesNothing()
    {
        var tenant = await Db.CreateTenantAsync();
        for (var i = 0; i < 5; i++)
        {
            await Db.FreezeTimeAsync(s_t0.AddDays(-7 * i));
            await TouchAsync(tenant, "contact", await Db.CreateContactAsync(tenant), "email");
        }

        await Db.FreezeTimeAsync(s_t0);
        Assert.True(await RefreshAsync(tenant) > 0);
        var versions = await Db.ScalarAsync("select string_agg(xmin::text, ',' order by id) from public.engagement_clocks where tenant_id = $1", tenant);

        Assert.Equal(0, await RefreshAsync(tenant));
        Assert.Equal(versions, await Db.ScalarAsync("select string_agg(xmin::text, ',' order by id) from public.engagement_clocks where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task Refresh_DaysOverdueGrow_CountsOnlyChangedClocks()
    {
        var tenant = await Db.CreateTenantAsync();
        var overdue = await TouchAsync(tenant, "contact", await Db.CreateContactAsync(tenant), "email");
        await Db.FreezeTimeAsync(s_t0.AddDays(20));
        var fresh = await TouchAsync(tenant, "contact", await Db.CreateContactAsync(tenant), "email");

        await Db.FreezeTimeAsync(s_t0.AddDays(23));
        Assert.Equal(1, await RefreshAsync(tenant));
        Assert.Equal(("overdue", 2), await StatusAsync(overdue));

        await Db.FreezeTimeAsync(s_t0.AddDays(23).AddHours(12));
        Assert.Equal(0, await RefreshAsync(tenant));

        await Db.FreezeTimeAsync(s_t0.AddDays(24));
        Assert.Equal(1, await RefreshAsync(tenant));
        Assert.Equal(("overdue", 3), await StatusAsync(overdue));
        Assert.Equal(("compliant", 0), await StatusAsync(fresh));
    }

    [Fact]
    public async Task Refresh_OnlyTheGivenTenant()
    {
        var a = await Db.CreateTenantAsync();
        var b = await Db.CreateTenantAsync();
        var clockA = await TouchAsync(a, "contact", await Db.CreateContactAsync(a), "email");
        var clockB = await TouchAsync(b, "contact", await Db.CreateContactAsync(b), "email");

        await Db.FreezeTimeAsync(s_t0.AddDays(25));
        Assert.Equal(1, await RefreshAsync(a));

        Assert.Equal(("overdue", 4), await StatusAsync(clockA));
        Assert.Equal(("compliant", 0), await StatusAsync(clockB));
    }

    [Fact]
    public async Task Refresh_CustomDueSoonWindow()
    {
        var tenant = await Db.CreateTenantAsync(settingsJson: """{"due_soon_days": 7}""");
        var clock = await TouchAsync(tenant, "contact", await Db.CreateContactAsync(tenant), "email");

        await Db.FreezeTimeAsync(s_t0.AddDays(13));
        Assert.Equal(0, await RefreshAsync(tenant));
        await Db.FreezeTimeAsync(s_t0.AddDays(14));
        Assert.Equal(1, await RefreshAsync(tenant));
        Assert.Equal(("due_soon", 0), await StatusAsync(clock));
    }

    public static TheoryData<string, string, string> BadTouches => new()
    {
        { "null tenant", "select public.update_engagement_clock(null, 'contact', $2, 'email')", "22004" },
        { "unknown tenant", "select public.update_engagement_clock(gen_random_uuid(), 'contact', $2, 'email')", "23503" },
        { "invalid entity type", "select public.update_engagement_clock($1, 'lead', $2, 'email')", "22023" },
        { "null entity type", "select public.update_engagement_clock($1, null, $2, 'email')", "22023" },
        { "null entity", "select public.update_engagement_clock($1, 'contact', null, 'email')", "22004" },
        { "unknown contact", "select public.update_engagement_clock($1, 'contact', gen_random_uuid(), 'email')", "23503" },
        { "contact given as account", "select public.update_engagement_clock($1, 'account', $2, 'email')", "23503" },
        { "empty touch type", "select public.update_engagement_clock($1, 'contact', $2, ' ')", "22023" },
        { "empty toucher", "select public.update_engagement_clock($1, 'contact', $2, 'email', '')", "22023" },
        { "unknown card", "select public.update_engagement_clock($1, 'contact', $2, 'email', 'agent', gen_random_uuid())", "23503" },
    };

    [Theory]
    [MemberData(nameof(BadTouches))]
    public async Task Touch_BadInput_ErrorNamesProblem_NothingWritten(string scenario, string sql, string sqlState)
    {
        var tenant = await Db.CreateTenantAsync();
        var contact = await Db.CreateContactAsync(tenant);

        var ex = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync(sql, tenant, contact));

        Assert.True(sqlState == ex.SqlState, $"{scenario}: expected {sqlState}, got {ex.SqlState} ({ex.MessageText})");
        Assert.StartsWith("update_engagement_clock: ", ex.MessageText, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select coalesce(sum(touch_count), 0)::bigint from public.engagement_clocks where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task Touch_ContactOfAnotherTenant_Refused()
    {
        var a = await Db.CreateTenantAsync();
        var b = await Db.CreateTenantAsync();
        var contactOfB = await Db.CreateContactAsync(b);

        var ex = await Assert.ThrowsAsync<PostgresException>(() => TouchAsync(a, "contact", contactOfB, "email"));

        Assert.Equal("23503", ex.SqlState);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.engagement_clocks where tenant_id = $1 and entity_id = $2", a, contactOfB));
        Assert.Equal(0, await Db.ScalarAsync("select touch_count from public.engagement_clocks where tenant_id = $1 and entity_id = $2", b, contactOfB));
    }

    [Fact]
    public async Task Refresh_NullOrUnknownTenant_Refused()
    {
        var nullTenant = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select public.refresh_engagement_compliance(null)"));
        Assert.Equal("22004", nullTenant.SqlState);
        var unknown = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select public.refresh_engagement_compliance(gen_random_uuid())"));
        Assert.Equal("23503", unknown.SqlState);
    }

    private async Task<Guid> TouchAsync(Guid tenant, string entityType, Guid entity, string touchType, string touchBy = "agent") =>
        (Guid)(await Db.ScalarAsync("select public.update_engagement_clock($1, $2, $3, $4, $5)", tenant, entityType, entity, touchType, touchBy))!;

    private async Task<int> RefreshAsync(Guid tenant) =>
        (int)(await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant))!;

    private async Task<(string, int)> StatusAsync(Guid clockId)
    {
        var clock = await ClockAsync(clockId);
        return (clock.Status, clock.DaysOverdue);
    }

    private sealed record Clock(
        DateTimeOffset LastTouchAt, DateTimeOffset NextTouchDue, int FrequencyDays, int TouchCount, string Status,
        int DaysOverdue, string LastTouchType, string LastTouchBy);

    private async Task<Clock> ClockAsync(Guid id)
    {
        await using var command = fixture.DataSource.CreateCommand("""
            select last_touch_at, next_touch_due, touch_frequency_days, touch_count, compliance_status, days_overdue,
                   last_touch_type, last_touch_by
            from public.engagement_clocks where id = $1
            """);
        command.Parameters.Add(new() { Value = id });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), $"clock {id} not found");
        return new Clock(
            reader.GetFieldValue<DateTimeOffset>(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetInt32(2), reader.GetInt32(3),
            reader.GetString(4), reader.GetInt32(5), reader.GetString(6), reader.GetString(7));
    }
}
