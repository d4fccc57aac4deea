using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.IntegrationTests.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Policies;

namespace Hourglass.IntegrationTests.Engagement;

/// <summary>
/// Leveling the wave: when more clocks come due in the next days than the email cap lets through on their own days, the
/// agent spends the cap's spare room now on the earliest of them, by email only, and nothing more than that.
/// </summary>
public sealed class TouchLevelingTests : DatabaseTest
{
    // A Monday, 10:00 UTC.
    private static readonly DateTimeOffset s_t0 = new(2026, 10, 5, 10, 0, 0, TimeSpan.Zero);
    private CycleHarness _h = null!;

    // A policy of two emails a day, every day open; and the capacity it gives, 2 on each day ahead.
    private const string TwoEmailsADay = """
        {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
         "rules": [{"id": "email-daily", "kind": "cap", "scope": "channel", "channel": "email", "window": "day", "limit": 2}]}
        """;

    private static readonly int[] s_twoADay = [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2];

    protected override async Task SeedAsync()
    {
        _h = new CycleHarness(Database, s_t0);
        await _h.SetTimeAsync(s_t0);
    }

    [Fact]
    public async Task Ahead_AWaveBeyondTheCap_TheExcessEarliestFirst_NothingWhenItFits()
    {
        // 16 contacts due in 6 days: the cap lets 12 through on days 1–6, so 4 must start today; the room now caps it.
        var (tenant, contacts) = await TenantAsync(16, dueIn: TimeSpan.FromDays(6.5));
        Assert.Equal(contacts.Order().Take(4).ToArray(), (await AheadAsync(tenant, s_twoADay, room: 100)).Order().ToArray());
        Assert.Equal(2, (await AheadAsync(tenant, s_twoADay, room: 2)).Length);
        Assert.Empty(await AheadAsync(tenant, s_twoADay, room: 0));

        // With a cap of 3 a day the 16 fit on their own days (18); with no days looked at, nothing is looked at.
        Assert.Empty(await AheadAsync(tenant, [3, 3, 3, 3, 3, 3, 3], room: 100));
        Assert.Empty(await AheadAsync(tenant, [], room: 100));

        // The tenant looks 5 days ahead: the wave on day 6 is not seen yet.
        await Db.ExecuteAsync("update public.tenants set settings = settings || '{\"level_ahead_days\": 5}' where id = $1", tenant);
        Assert.Empty(await AheadAsync(tenant, s_twoADay, room: 100));
        await Db.ExecuteAsync("update public.tenants set settings = settings || '{\"level_ahead_days\": 0}' where id = $1", tenant);
        Assert.Empty(await AheadAsync(tenant, s_twoADay, room: 100));
    }

    [Fact]
    public async Task Ahead_DueAndDueSoonClocksCount_TheyAreTouchedTodayAnyway()
    {
        // 14 contacts due in 6 days and 3 overdue: 17 by day 6 against 12 after today, so 5 today; the 3 overdue are 3 of them.
        var (tenant, contacts) = await TenantAsync(17, dueIn: TimeSpan.FromDays(6.5));
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where tenant_id = $1 and entity_id = any($3)",
            tenant, s_t0.AddDays(-1), contacts[..3]);
        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant);

        var ahead = await AheadAsync(tenant, s_twoADay, room: 100);

        Assert.Equal(2, ahead.Length);
        Assert.DoesNotContain(ahead, contacts[..3].Contains);
    }

    [Fact]
    public async Task Ahead_SkipsWhatCannotOrNeedNotBeTouchedNow()
    {
        var (tenant, contacts) = await TenantAsync(16, dueIn: TimeSpan.FromDays(6.5));
        var earliest = contacts.Order().ToArray();
        // The first four: one opted out, one with an open touch card, one waiting on a return date, one marked do-not-contact.
        await Db.ExecuteAsync("update public.contacts set opted_out_at = $2 where id = $1", earliest[0], s_t0.AddDays(-1));
        await Db.ExecuteAsProductAsync("""
            insert into public.cards (tenant_id, kind, title, entity_type, entity_id, status) values ($1, 'touch_task', 'Call', 'contact', $2, 'open')
            """, tenant, earliest[1]);
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set waiting_until = $2, waiting_reason = 'out of office' where entity_id = $1", earliest[2], s_t0.AddDays(2));
        await Db.ExecuteAsync("update public.contacts set do_not_contact = true where id = $1", earliest[3]);

        // The four are neither touched nor counted: 12 reachable clocks fit through the cap on their own days.
        Assert.Empty(await AheadAsync(tenant, s_twoADay, room: 100));
    }

    [Fact]
    public async Task Cycle_SpareEmailRoom_SendsAheadWithTheReason_NoCardForATouchNotYetDue()
    {
        var (tenant, contacts) = await TenantAsync(16, dueIn: TimeSpan.FromDays(6.5));
        await PolicyStore.SaveAsync(DataSource, tenant, TwoEmailsADay, "test", null);

        var first = await Worker().RunManualAsync(tenant, false, null, default);

        // Two emails, to the two earliest-due contacts, the room the cap had; each says why it went early.
        Assert.Equal("completed", first.Status);
        var sent = await OutboxTargetsAsync(tenant);
        Assert.Equal(contacts.Order().Take(2).ToArray(), sent.Order().ToArray());
        var reasons = await ReasonsAsync(tenant);
        Assert.Equal(2, reasons.Length);
        Assert.All(reasons, r => Assert.Contains("touched 6 day(s) early: 16 touches come due in the next 7 day(s)", r, StringComparison.Ordinal));

        // The next hour the cap is used up: nothing ahead, and no touch card for a contact that is not due.
        await _h.SetTimeAsync(s_t0.AddHours(1));
        await Worker().RunManualAsync(tenant, false, null, default);
        Assert.Equal(2, (await OutboxTargetsAsync(tenant)).Length);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.cards where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task Cycle_NoWaveComing_NothingIsTouchedEarly()
    {
        var (tenant, _) = await TenantAsync(10, dueIn: TimeSpan.FromDays(6.5));
        await PolicyStore.SaveAsync(DataSource, tenant, TwoEmailsADay, "test", null);

        await Worker().RunManualAsync(tenant, false, null, default);

        Assert.Empty(await OutboxTargetsAsync(tenant));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.agent_actions where tenant_id = $1", tenant));
    }

    private CycleWorker Worker() => CycleComposition.CreateWorker(DataSource, _h.Clock, new CycleWorkerOptions { WorkerId = "leveling-worker" });

    private async Task<Guid[]> AheadAsync(Guid tenant, int[] capacity, int room)
    {
        await using var command = Db.DataSource.CreateCommand("select entity_id from hourglass.touch_candidates_ahead($1, $2, $3)");
        command.Parameters.Add(new() { Value = tenant });
        command.Parameters.Add(new() { Value = capacity });
        command.Parameters.Add(new() { Value = room });
        var ids = new List<Guid>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetGuid(0));
        }

        return ids.ToArray();
    }

    private async Task<Guid[]> OutboxTargetsAsync(Guid tenant)
    {
        var text = (string?)await Db.ScalarAsync("select string_agg(payload ->> 'target_id', ',') from public.message_outbox where tenant_id = $1", tenant);
        return text is null ? [] : text.Split(',').Select(Guid.Parse).ToArray();
    }

    private async Task<string[]> ReasonsAsync(Guid tenant)
    {
        var text = (string?)await Db.ScalarAsync("""
            select string_agg(reason, '|') from public.agent_actions where tenant_id = $1 and kind = 'send_message' and (payload ->> 'ahead_of_due')::boolean
            """, tenant);
        return text is null ? [] : text.Split('|');
    }

    // A tenant whose one account has `count` contacts with addresses, each due `dueIn` from now (the account a month
    // later), an email channel and a strategy that emails contacts.
    private async Task<(Guid Tenant, Guid[] Contacts)> TenantAsync(int count, TimeSpan dueIn)
    {
        var tenant = await Db.CreateTenantAsync();
        var owner = await Db.AddMemberAsync(tenant, role: "owner");
        var account = (Guid)(await Db.ScalarAsync("insert into public.accounts (tenant_id, name, owner_user_id) values ($1, 'Globex', $2) returning id", tenant, owner))!;
        var contacts = new List<Guid>();
        for (var i = 0; i < count; i++)
        {
            contacts.Add((Guid)(await Db.ScalarAsync(
                "insert into public.contacts (tenant_id, account_id, name, email) values ($1, $2, $3, $4) returning id",
                tenant, account, $"Contact {i}", $"c{i}@client.example"))!);
        }

        // Each contact a minute apart, so "earliest due" is an order the test can name: the contacts by id.
        await Db.ExecuteAsProductAsync("""
            update public.engagement_clocks c set last_touch_at = x.due - interval '21 days', next_touch_due = x.due
            from (select k.id, $2::timestamptz + (row_number() over (order by k.id)) * interval '1 minute' as due from public.contacts k where k.tenant_id = $1) x
            where c.tenant_id = $1 and c.entity_id = x.id
            """, tenant, s_t0.Add(dueIn));
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set last_touch_at = $2, next_touch_due = $2 + interval '21 days' where entity_id = $1",
            account, s_t0.AddDays(9));
        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant);
        await Db.EnableContactEmailAsync(tenant);
        return (tenant, contacts.ToArray());
    }
}
