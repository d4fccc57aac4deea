using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Engagement;

/// <summary>Insights' best-time signal in the queue: +20 during the contact's best hour of the week, in its own time zone.</summary>
public sealed class BestTimeTests : DatabaseTest
{
    // Tuesday 2026-10-06 14:00 UTC = Tuesday 09:00 in Chicago (CDT, UTC-5): slot (2 - 1) * 24 + 9 = 33.
    private static readonly DateTimeOffset s_now = new(2026, 10, 6, 14, 0, 0, TimeSpan.Zero);
    private Guid _tenant;
    private Guid _early;
    private Guid _late;

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_now);
        _tenant = await Db.CreateTenantAsync();
        var account = await Db.CreateAccountAsync(_tenant, "Vandelay");
        // Both overdue; the first by 3 days (priority 130), the second by 2 (priority 120).
        _early = await Db.CreateContactAsync(_tenant, account, "Overdue longer");
        _late = await Db.CreateContactAsync(_tenant, account, "Best reached now");
        await Db.ExecuteAsync("update public.contacts set timezone = 'America/Chicago' where id = $1", _late);
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where entity_id = $1", _early, s_now.AddDays(-3).AddHours(-1));
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where entity_id = $1", _late, s_now.AddDays(-2).AddHours(-1));
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where entity_type = 'account' and tenant_id = $1", _tenant, s_now.AddDays(30));
        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", _tenant);
    }

    [Fact]
    public async Task BestSlotNowInContactsZone_MovesUpWithReason_OtherHoursNot()
    {
        await Db.ExecuteAsync("""
            insert into public.client_patterns (tenant_id, entity_type, entity_id, pattern_type, pattern_data, confidence)
            values ($1, 'contact', $2, 'best_time', '{"best_slots": [33, 34]}', 0.8)
            """, _tenant, _late);

        var now = await QueueAsync();
        await Db.FreezeTimeAsync(s_now.AddHours(3));
        var later = await QueueAsync();

        Assert.Equal([(_late, 140m), (_early, 130m)], now.Select(q => (q.Id, q.Priority)));
        Assert.EndsWith("best time to reach now (+20)", now[0].Reason, StringComparison.Ordinal);
        // 17:00 UTC is 12:00 in Chicago, slot 36: no bonus, the stored order again.
        Assert.Equal([_early, _late], later.Select(q => q.Id));
        Assert.DoesNotContain("best time", later[1].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InactivePatternOrUtcSlot_NoBonus()
    {
        // Slot 38 is Tuesday 14:00 in UTC — the contact's zone is Chicago, so it is not the contact's best hour now.
        await Db.ExecuteAsync("""
            insert into public.client_patterns (tenant_id, entity_type, entity_id, pattern_type, pattern_data, confidence)
            values ($1, 'contact', $2, 'best_time', '{"best_slots": [38]}', 0.8)
            """, _tenant, _late);

        var queue = await QueueAsync();

        Assert.Equal([_early, _late], queue.Select(q => q.Id));
    }

    [Fact]
    public async Task BandBeyondBonus_TopNStillExact()
    {
        // With a limit of 1, the second clock (10 below the first) must still be seen and win with its bonus.
        await Db.ExecuteAsync("""
            insert into public.client_patterns (tenant_id, entity_type, entity_id, pattern_type, pattern_data, confidence)
            values ($1, 'contact', $2, 'best_time', '{"best_slots": [33]}', 0.8)
            """, _tenant, _late);

        var top = await QueueAsync(limit: 1);

        Assert.Equal(_late, Assert.Single(top).Id);
    }

    private async Task<List<(Guid Id, decimal Priority, string Reason)>> QueueAsync(int limit = 10)
    {
        await using var command = Db.DataSource.CreateCommand("select entity_id, priority_score, priority_reason from public.engagement_queue($1, $2) where entity_type = 'contact'");
        command.Parameters.Add(new() { Value = _tenant });
        command.Parameters.Add(new() { Value = limit });
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<(Guid, decimal, string)>();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetGuid(0), reader.GetDecimal(1), reader.GetString(2)));
        }

        return rows;
    }
}
