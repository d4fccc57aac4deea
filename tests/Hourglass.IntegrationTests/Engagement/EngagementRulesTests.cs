using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Engagement;

/// <summary>Clocks for every contact and account, frequency rules, the account roll-up, priority and the queue.</summary>
public sealed class EngagementRulesTests : DatabaseTest
{
    private static readonly DateTimeOffset s_t0 = new(2026, 2, 2, 10, 0, 0, TimeSpan.Zero);

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_t0);
    }

    [Fact]
    public async Task NewContactAndAccount_EachGetsAClockDueOneFrequencyLater_RemovedWithThem()
    {
        var tenant = await Db.CreateTenantAsync();
        var account = await Db.CreateAccountAsync(tenant);
        var contact = await Db.CreateContactAsync(tenant, account);

        Assert.Equal(("0", s_t0.AddDays(21), "tenant"), await ClockAsync(tenant, "contact", contact));
        Assert.Equal(("0", s_t0.AddDays(21), "tenant"), await ClockAsync(tenant, "account", account));

        await Db.ExecuteAsync("delete from public.contacts where id = $1", contact);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.engagement_clocks where entity_id = $1", contact));
    }

    [Fact]
    public async Task Frequency_SegmentOverTierOverTenant_ClockOverrideOverAll()
    {
        var tenant = await Db.CreateTenantAsync(settingsJson: """{"touch_frequency_days": 30}""");
        await Db.ExecuteAsync("insert into public.engagement_frequency_rules (tenant_id, dimension, value, touch_frequency_days) values ($1, 'tier', 'strategic', 14), ($1, 'segment', 'healthcare', 7)", tenant);
        var plain = await AccountAsync(tenant, null, null);
        var strategic = await AccountAsync(tenant, "strategic", "retail");
        var strategicHealthcare = await AccountAsync(tenant, "strategic", "healthcare");
        var contactOfStrategic = await Db.CreateContactAsync(tenant, strategic);

        Assert.Equal(("0", s_t0.AddDays(30), "tenant"), await ClockAsync(tenant, "account", plain));
        Assert.Equal(("0", s_t0.AddDays(14), "tier"), await ClockAsync(tenant, "account", strategic));
        Assert.Equal(("0", s_t0.AddDays(7), "segment"), await ClockAsync(tenant, "account", strategicHealthcare));
        Assert.Equal(("0", s_t0.AddDays(14), "tier"), await ClockAsync(tenant, "contact", contactOfStrategic));

        await Db.ExecuteAsync("update public.engagement_clocks set frequency_override_days = 3 where tenant_id = $1 and entity_id = $2", tenant, strategicHealthcare);
        Assert.Equal(("0", s_t0.AddDays(3), "clock"), await ClockAsync(tenant, "account", strategicHealthcare));
        await Db.ExecuteAsync("update public.engagement_clocks set frequency_override_days = null where tenant_id = $1 and entity_id = $2", tenant, strategicHealthcare);
        Assert.Equal(("0", s_t0.AddDays(7), "segment"), await ClockAsync(tenant, "account", strategicHealthcare));
    }

    [Fact]
    public async Task RuleOrTierChange_ReappliedToExistingClocksFromTheirLastTouch()
    {
        var tenant = await Db.CreateTenantAsync();
        var account = await AccountAsync(tenant, "growth", null);
        var contact = await Db.CreateContactAsync(tenant, account);
        await Db.FreezeTimeAsync(s_t0.AddDays(2));
        await TouchAsync(tenant, "contact", contact);

        await Db.ExecuteAsync("insert into public.engagement_frequency_rules (tenant_id, dimension, value, touch_frequency_days) values ($1, 'tier', 'growth', 10)", tenant);
        Assert.Equal(("1", s_t0.AddDays(12), "tier"), await ClockAsync(tenant, "contact", contact));

        await Db.ExecuteAsync("update public.accounts set tier = 'standard' where id = $1", account);
        Assert.Equal(("1", s_t0.AddDays(23), "tenant"), await ClockAsync(tenant, "contact", contact));
    }

    [Fact]
    public async Task ContactTouch_CountsForItsAccount()
    {
        var tenant = await Db.CreateTenantAsync();
        var account = await Db.CreateAccountAsync(tenant);
        var contact = await Db.CreateContactAsync(tenant, account);
        await Db.FreezeTimeAsync(s_t0.AddDays(5));

        await TouchAsync(tenant, "contact", contact);

        Assert.Equal(("1", s_t0.AddDays(26), "tenant"), await ClockAsync(tenant, "contact", contact));
        Assert.Equal(("1", s_t0.AddDays(26), "tenant"), await ClockAsync(tenant, "account", account));
    }

    [Fact]
    public async Task Queue_OrderedByPriorityWithReasons()
    {
        var tenant = await Db.CreateTenantAsync();
        var standard = await AccountAsync(tenant, "standard", null);
        var strategic = await AccountAsync(tenant, "strategic", null);
        var late = await Db.CreateContactAsync(tenant, standard, "Late Lee");
        var valuable = await Db.CreateContactAsync(tenant, strategic, "Valued Val");
        var risky = await Db.CreateContactAsync(tenant, standard, "Risky Rae");
        await Db.ExecuteAsync("""
            insert into public.client_patterns (tenant_id, entity_type, entity_id, pattern_type, confidence, evidence_count)
            values ($1, 'contact', $2, 'churn_risk', 0.75, 12)
            """, tenant, risky);
        // Last touched 25 days before "now" (4 days overdue), 22 days (1 day overdue) and 19 days (due soon).
        await SetLastTouchAsync(tenant, late, s_t0.AddDays(-25));
        await SetLastTouchAsync(tenant, valuable, s_t0.AddDays(-22));
        await SetLastTouchAsync(tenant, risky, s_t0.AddDays(-19));
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where tenant_id = $1 and entity_type = 'account'", tenant, s_t0.AddDays(30));

        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant);
        var queue = await QueueAsync(tenant, 10);

        Assert.Equal([late, valuable, risky], queue.Select(q => q.EntityId));
        Assert.Equal((140m, "overdue 4 day(s) (+140)"), (queue[0].Score, queue[0].Reason));
        Assert.Equal((140m, "overdue 1 day(s) (+110); tier strategic (+30)"), (queue[1].Score, queue[1].Reason));
        Assert.Equal((80m, "due soon (+50); churn risk 0.75 (+30.0)"), (queue[2].Score, queue[2].Reason));
        Assert.All(queue, q => Assert.NotNull(q.AccountId));
        Assert.Equal([late], (await QueueAsync(tenant, 1)).Select(q => q.EntityId));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1001)]
    public async Task Queue_BadLimit_Refused(int limit)
    {
        var tenant = await Db.CreateTenantAsync();

        var ex = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select count(*) from public.engagement_queue($1, $2)", tenant, limit));

        Assert.Equal("22023", ex.SqlState);
        Assert.Contains("p_limit must be between 1 and 1000", ex.MessageText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FrequencyRule_Invalid_RefusedByConstraint()
    {
        var tenant = await Db.CreateTenantAsync();

        var zero = await Assert.ThrowsAsync<PostgresException>(() => Db.ExecuteAsync(
            "insert into public.engagement_frequency_rules (tenant_id, dimension, value, touch_frequency_days) values ($1, 'tier', 'x', 0)", tenant));
        var dimension = await Assert.ThrowsAsync<PostgresException>(() => Db.ExecuteAsync(
            "insert into public.engagement_frequency_rules (tenant_id, dimension, value, touch_frequency_days) values ($1, 'region', 'x', 5)", tenant));

        Assert.Equal(PostgresErrorCodes.CheckViolation, zero.SqlState);
        Assert.Equal(PostgresErrorCodes.CheckViolation, dimension.SqlState);
    }

    private async Task<Guid> AccountAsync(Guid tenant, string? tier, string? segment) =>
        (Guid)(await Db.ScalarAsync("insert into public.accounts (tenant_id, name, tier, segment) values ($1, 'A', $2, $3) returning id", tenant, tier, segment))!;

    private Task TouchAsync(Guid tenant, string type, Guid entity) =>
        Db.ScalarAsync("select public.update_engagement_clock($1, $2, $3, 'call')", tenant, type, entity);

    private Task SetLastTouchAsync(Guid tenant, Guid contact, DateTimeOffset at) => Db.ExecuteAsProductAsync(
        "update public.engagement_clocks set last_touch_at = $3, next_touch_due = $3 + make_interval(days => touch_frequency_days) where tenant_id = $1 and entity_id = $2",
        tenant, contact, at);

    private async Task<(string TouchCount, DateTimeOffset NextDue, string Source)> ClockAsync(Guid tenant, string type, Guid entity)
    {
        await using var command = Db.DataSource.CreateCommand(
            "select touch_count::text, next_touch_due, frequency_source from public.engagement_clocks where tenant_id = $1 and entity_type = $2 and entity_id = $3");
        command.Parameters.Add(new() { Value = tenant });
        command.Parameters.Add(new() { Value = type });
        command.Parameters.Add(new() { Value = entity });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), $"no clock for {type} {entity}");
        return (reader.GetString(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetString(2));
    }

    private async Task<List<(Guid EntityId, Guid? AccountId, decimal Score, string? Reason)>> QueueAsync(Guid tenant, int limit)
    {
        await using var command = Db.DataSource.CreateCommand("select entity_id, account_id, priority_score, priority_reason from public.engagement_queue($1, $2)");
        command.Parameters.Add(new() { Value = tenant });
        command.Parameters.Add(new() { Value = limit });
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<(Guid, Guid?, decimal, string?)>();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetGuid(0), reader.IsDBNull(1) ? null : reader.GetGuid(1), reader.GetDecimal(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
        }

        return rows;
    }
}
