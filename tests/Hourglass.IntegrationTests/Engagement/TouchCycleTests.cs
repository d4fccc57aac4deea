using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.IntegrationTests.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Engagement;

/// <summary>Touches in the cycle: the queue becomes touch cards within budget; completing a card records the touch.</summary>
public sealed class TouchCycleTests : DatabaseTest
{
    private static readonly DateTimeOffset s_t0 = new(2026, 10, 5, 9, 0, 0, TimeSpan.Zero);
    private CycleHarness _h = null!;

    protected override async Task SeedAsync()
    {
        _h = new CycleHarness(Database, s_t0);
        await _h.SetTimeAsync(s_t0);
    }

    [Fact]
    public async Task Cycle_OverdueContacts_TopPrioritiesGetCardsForOwnerRestDeferredNoneDoubled()
    {
        var (tenant, owner, account, contacts) = await TenantWithOverdueContactsAsync(overdueDays: [9, 5, 2, 7]);
        await Db.ExecuteAsync("update public.agent_tenant_schedules set max_actions_per_cycle = 2 where tenant_id = $1", tenant);
        // Someone already has an open card for the 7-days-overdue contact.
        await Db.ExecuteAsync("insert into public.cards (tenant_id, kind, title, entity_type, entity_id) values ($1, 'touch_task', 'by hand', 'contact', $2)", tenant, contacts[3]);
        var worker = Worker();

        var first = await worker.RunManualAsync(tenant, false, null, default);

        Assert.Equal(("completed", 2), (first.Status, first.ActionsTaken));
        var cards = await OpenAgentCardsAsync(tenant);
        Assert.Equal([contacts[0], contacts[1]], cards.Select(c => c.EntityId));
        Assert.All(cards, c => Assert.Equal(owner, c.Assignee));
        Assert.Contains("Why now: overdue 9 day(s)", cards[0].Body, StringComparison.Ordinal);
        var deferred = (string)(await Db.ScalarAsync("select what_we_will_try_next::text from public.agent_hourly_reflections where tenant_id = $1", tenant))!;
        Assert.Contains(contacts[2].ToString(), deferred, StringComparison.Ordinal);
        Assert.Contains(account.ToString(), deferred, StringComparison.Ordinal);

        // The next hour: the rest, and nobody gets a second card.
        await _h.SetTimeAsync(s_t0.AddHours(1));
        await worker.RunManualAsync(tenant, false, null, default);
        var all = await OpenAgentCardsAsync(tenant);
        Assert.Equal(4, all.Count);
        Assert.Equal(4, all.Select(c => c.EntityId).Distinct().Count());
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.cards where tenant_id = $1 and entity_id = $2 and status = 'open'", tenant, contacts[3]));
    }

    [Fact]
    public async Task CompleteCard_AsMember_RecordsTouchOnContactAndAccount_NextCycleLeavesThemAlone()
    {
        var (tenant, owner, account, contacts) = await TenantWithOverdueContactsAsync(overdueDays: [4]);
        await Worker().RunManualAsync(tenant, false, null, default);
        var card = (await OpenAgentCardsAsync(tenant)).Single(c => c.EntityId == contacts[0]).Id;
        await _h.SetTimeAsync(s_t0.AddHours(2));

        var clock = await Db.AsUserAsync(owner, async (c, t) => (Guid)(await TestDb.ScalarAsync(c, t, "select public.complete_touch_card($1, 'meeting', 'talked renewals')", card))!);

        Assert.Equal(("done", $"user:{owner}"), await CardStateAsync(card));
        Assert.Equal((2, "meeting", card), await ClockTouchAsync(clock));
        Assert.Equal(s_t0.AddHours(2), new DateTimeOffset((DateTime)(await Db.ScalarAsync(
            "select last_touch_at from public.engagement_clocks where tenant_id = $1 and entity_type = 'account' and entity_id = $2", tenant, account))!));

        await _h.SetTimeAsync(s_t0.AddHours(3));
        await Worker().RunManualAsync(tenant, false, null, default);
        Assert.DoesNotContain(await OpenAgentCardsAsync(tenant), c => c.EntityId == contacts[0] || c.EntityId == account);
    }

    [Fact]
    public async Task CompleteCard_BadCalls_ClearErrorsNothingTouched()
    {
        var (tenant, owner, _, contacts) = await TenantWithOverdueContactsAsync(overdueDays: [4]);
        var other = await Db.CreateTenantAsync();
        var outsider = await Db.AddMemberAsync(other);
        await Worker().RunManualAsync(tenant, false, null, default);
        var card = (await OpenAgentCardsAsync(tenant)).Single(c => c.EntityId == contacts[0]).Id;
        var notice = (Guid)(await Db.ScalarAsync("insert into public.cards (tenant_id, kind, title) values ($1, 'notice', 'fyi') returning id", tenant))!;

        async Task<string> FailAsync(Guid user, Guid id) =>
            (await Assert.ThrowsAsync<PostgresException>(() => Db.AsUserAsync(user, (c, t) => TestDb.ScalarAsync(c, t, "select public.complete_touch_card($1)", id)))).SqlState;

        Assert.Equal("P0002", await FailAsync(outsider, card));
        Assert.Equal("22023", await FailAsync(owner, notice));
        Assert.Equal(("open", null), await CardStateAsync(card));
        await Db.AsUserAsync(owner, (c, t) => TestDb.ScalarAsync(c, t, "select public.complete_touch_card($1)", card));
        Assert.Equal("55000", await FailAsync(owner, card));
        Assert.Equal(2L, await Db.ScalarAsync("select touch_count::bigint from public.engagement_clocks where tenant_id = $1 and entity_id = $2", tenant, contacts[0]));
    }

    [Fact]
    public async Task DryRun_ProposesTouchesWithoutCards()
    {
        var (tenant, _, _, _) = await TenantWithOverdueContactsAsync(overdueDays: [3, 6]);
        // A dry run plans from compliance as last refreshed; refresh as an earlier cycle would have.
        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant);

        var result = await Worker().RunManualAsync(tenant, dryRun: true, hour: null, default);

        Assert.Equal(0, result.ActionsTaken);
        Assert.Empty(await OpenAgentCardsAsync(tenant));
        Assert.Contains("would_run", (string)(await Db.ScalarAsync("select act_output::text from public.agent_autonomous_runs where id = $1", result.RunId))!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plan_TopOfQueueAllHaveOpenCards_ProposesTheNextOnesBeyond()
    {
        var (tenant, _, _, contacts) = await TenantWithOverdueContactsAsync(overdueDays: [9, 8, 2]);
        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant);
        foreach (var contact in contacts.Take(2))
        {
            await Db.ExecuteAsync("insert into public.cards (tenant_id, kind, title, entity_type, entity_id) values ($1, 'touch_task', 'open', 'contact', $2)", tenant, contact);
        }

        // A queue depth of 2: the two most urgent have cards, so the third must still be proposed.
        var engine = new CycleEngine(DataSource, [new TouchTaskPart(queueDepth: 2)], [new TouchTaskHandler()], _h.Clock);
        var result = await new CycleWorker(DataSource, _h.Clock, engine, new CycleWorkerOptions { WorkerId = "depth" }).RunManualAsync(tenant, true, null, default);

        var plan = (string)(await Db.ScalarAsync("select plan_output::text from public.agent_autonomous_runs where id = $1", result.RunId))!;
        Assert.Contains(contacts[2].ToString(), plan, StringComparison.Ordinal);
        Assert.DoesNotContain(contacts[0].ToString(), plan, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cycle_EmailStrategyForContacts_MessageCitesStrategy_UnreachableContactAndAccountGetCards()
    {
        var (tenant, _, account, contacts) = await TenantWithOverdueContactsAsync(overdueDays: [6, 3]);
        await Db.ExecuteAsync("update public.contacts set email = 'pat@client.example' where id = $1", contacts[0]);
        await Db.ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', '127.0.0.1', 2525, 'none', 'agent@vendor.example')
            """, tenant);
        await Db.ExecuteAsync("""
            insert into public.success_strategies (tenant_id, strategy_key, name, applies_to, action_template, usage_count, success_count)
            values ($1, 'checkin-email', 'Check-in email', '{"entity_type": "contact"}',
                    '{"kind": "send_message", "channel": "email", "subject": "Checking in, {name}", "body": "Hi {name}, how is {account} doing?"}', 10, 4)
            """, tenant);

        var result = await Worker().RunManualAsync(tenant, false, null, default);

        Assert.Equal(("completed", 3), (result.Status, result.ActionsTaken));
        var message = await Db.ScalarAsync("""
            select destination || '|' || subject || '|' || body || '|' || (payload ->> 'reason') from public.message_outbox where tenant_id = $1
            """, tenant);
        Assert.StartsWith("pat@client.example|Checking in, Contact 6|Hi Contact 6, how is Globex doing?|overdue 6 day(s)", (string?)message);
        Assert.Contains("strategy 'checkin-email' (4/10 succeeded", (string?)message, StringComparison.Ordinal);
        // The contact without an address gets a card (the send was unreachable); no strategy applies to the account.
        Assert.Equal(new[] { account, contacts[1] }.Order(), (await OpenAgentCardsAsync(tenant)).Select(c => c.EntityId).Order());
    }

    [Fact]
    public async Task Plan_StrategiesChosenBySeededSampling_SameHourSameChoices()
    {
        // A fixed tenant id (and with it fixed account and contact ids): the draws are seeded from them, so this test's
        // draws are the same every run.
        var (tenant, _, _, _) = await TenantWithOverdueContactsAsync(overdueDays: [9, 8, 7, 6, 5, 4, 3, 2], Guid.Parse("5eed0000-0000-4000-8000-000000000001"));
        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant);
        await Db.ExecuteAsync("""
            insert into public.success_strategies (tenant_id, strategy_key, name, applies_to, action_template, usage_count, success_count)
            values ($1, 'call-card', 'A call', '{}', '{"kind": "touch_task"}', 4, 2),
                   ($1, 'email', 'An email', '{}', '{"kind": "send_message", "channel": "email", "body": "Hi"}', 4, 2),
                   ($1, 'retired', 'Retired', '{}', '{"kind": "send_message"}', 100, 99)
            """, tenant);
        await Db.ExecuteAsync("update public.success_strategies set is_active = false where tenant_id = $1 and strategy_key = 'retired'", tenant);

        async Task<string> PlanAsync(DateTimeOffset hour) =>
            (string)(await Db.ScalarAsync("select plan_output::text from public.agent_autonomous_runs where id = $1",
                (await Worker().RunManualAsync(tenant, dryRun: true, hour: hour, default)).RunId))!;

        var first = await PlanAsync(s_t0);
        var again = await PlanAsync(s_t0);

        Assert.Equal(Choices(first), Choices(again));
        Assert.Equal(2, Choices(first).Distinct().Count());
        Assert.DoesNotContain("retired", first, StringComparison.Ordinal);

        static List<string> Choices(string plan) =>
            [.. System.Text.RegularExpressions.Regex.Matches(plan, "strategy '([a-z-]+)'").Select(m => m.Groups[1].Value)];
    }

    [Fact]
    public async Task Reflection_WhatMoved_CountsNewlyOverdueAndRecovered()
    {
        var (tenant, _, _, contacts) = await TenantWithOverdueContactsAsync(overdueDays: [4]);
        var soon = await Db.CreateContactAsync(tenant, name: "Falls due");
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where entity_id = $1", soon, s_t0.AddMinutes(30));
        await Worker().RunManualAsync(tenant, false, null, default);

        // Within the next hour: one contact falls due, the overdue one is touched by someone outside.
        await _h.SetTimeAsync(s_t0.AddMinutes(40));
        await Db.ScalarAsync("select public.update_engagement_clock($1, 'contact', $2, 'call', 'pbx')", tenant, contacts[0]);
        await _h.SetTimeAsync(s_t0.AddHours(1));
        await Worker().RunManualAsync(tenant, false, null, default);

        var moved = System.Text.Json.Nodes.JsonNode.Parse((string)(await Db.ScalarAsync(
            "select what_moved::text from public.agent_hourly_reflections where tenant_id = $1 order by hour_bucket desc limit 1", tenant))!)!;
        Assert.Equal(1m, moved["engagement.newly_overdue"]!["after"]!.GetValue<decimal>());
        // The contact and its account (overdue too) were both brought back by the one touch.
        Assert.Equal(2m, moved["engagement.recovered"]!["after"]!.GetValue<decimal>());
    }

    private CycleWorker Worker() =>
        CycleComposition.CreateWorker(DataSource, _h.Clock, new CycleWorkerOptions { WorkerId = "touch-worker" });

    // A tenant whose account (owned by a member) has contacts last touched so they are the given days overdue,
    // touched in one transaction each so the account's clock ends up as overdue as the most recent.
    private async Task<(Guid Tenant, Guid Owner, Guid Account, Guid[] Contacts)> TenantWithOverdueContactsAsync(int[] overdueDays, Guid? tenantId = null)
    {
        var tenant = tenantId is { } id
            ? (Guid)(await Db.ScalarAsync("insert into public.tenants (id, name) values ($1, 'Seeded') returning id", id))!
            : await Db.CreateTenantAsync();
        var owner = await Db.AddMemberAsync(tenant, role: "owner");
        // With a fixed tenant id the account and contacts get fixed ids too: the strategy draws are seeded from them.
        Guid NextId(int n) => tenantId is { } seed
            ? new Guid(System.Security.Cryptography.MD5.HashData(System.Text.Encoding.UTF8.GetBytes($"{seed}/{n}")))
            : Guid.NewGuid();
        var account = (Guid)(await Db.ScalarAsync("insert into public.accounts (id, tenant_id, name, owner_user_id) values ($1, $2, 'Globex', $3) returning id",
            NextId(0), tenant, owner))!;
        var contacts = new List<Guid>();
        foreach (var days in overdueDays)
        {
            var contact = (Guid)(await Db.ScalarAsync("insert into public.contacts (id, tenant_id, account_id, name) values ($1, $2, $3, $4) returning id",
                NextId(contacts.Count + 1), tenant, account, $"Contact {days}"))!;
            await Db.ExecuteAsProductAsync("""
                update public.engagement_clocks set last_touch_at = $3, touch_count = 1, next_touch_due = $3 + make_interval(days => touch_frequency_days)
                where tenant_id = $1 and entity_id = $2
                """, tenant, contact, s_t0.AddDays(-21 - days).AddHours(-1));
            contacts.Add(contact);
        }

        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where tenant_id = $1 and entity_type = 'account'", tenant, s_t0.AddDays(-1).AddHours(-1));
        return (tenant, owner, account, contacts.ToArray());
    }

    private async Task<List<(Guid Id, Guid EntityId, Guid? Assignee, string Body)>> OpenAgentCardsAsync(Guid tenant)
    {
        await using var command = Db.DataSource.CreateCommand("""
            select id, entity_id, assignee_user_id, body from public.cards
            where tenant_id = $1 and kind = 'touch_task' and status = 'open' and run_id is not null order by created_at, title, id
            """);
        command.Parameters.Add(new() { Value = tenant });
        await using var reader = await command.ExecuteReaderAsync();
        var cards = new List<(Guid, Guid, Guid?, string)>();
        while (await reader.ReadAsync())
        {
            cards.Add((reader.GetGuid(0), reader.GetGuid(1), reader.IsDBNull(2) ? null : reader.GetGuid(2), reader.GetString(3)));
        }

        return cards;
    }

    private async Task<(string, string?)> CardStateAsync(Guid card)
    {
        await using var command = Db.DataSource.CreateCommand("select status, completed_by from public.cards where id = $1");
        command.Parameters.Add(new() { Value = card });
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1));
    }

    private async Task<(int, string, Guid)> ClockTouchAsync(Guid clock)
    {
        await using var command = Db.DataSource.CreateCommand("select touch_count, last_touch_type, last_card_id from public.engagement_clocks where id = $1");
        command.Parameters.Add(new() { Value = clock });
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt32(0), reader.GetString(1), reader.GetGuid(2));
    }
}
