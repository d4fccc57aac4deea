using System.Text.Json.Nodes;
using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.Insights;
using Hourglass.IntegrationTests.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Insights;

/// <summary>Detection on a real database: incremental equals full, the commit-safe frontier, the cycle's use of it, and strategy attribution.</summary>
public sealed class InsightsEngineTests : DatabaseTest
{
    private static readonly DateTimeOffset s_now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_now);
    }

    [Fact]
    public async Task Incremental_InThreeRuns_SamePatternsAsOneFullRun_AndARunWithNothingNewReadsNothing()
    {
        var (full, fullAccount, fullContact) = await TenantAsync("full");
        var (step, stepAccount, stepContact) = await TenantAsync("step");
        var history = History().ToList();
        var engine = new InsightsEngine(DataSource, pageSize: 7);

        await InsertAsync(full, fullAccount, fullContact, history);
        var fullRun = await engine.RunAsync(full);
        foreach (var chunk in history.Chunk(history.Count / 3 + 1))
        {
            await InsertAsync(step, stepAccount, stepContact, chunk);
            await engine.RunAsync(step);
        }

        var idle = await engine.RunAsync(step);

        Assert.Equal(history.Count, fullRun.EventsProcessed);
        Assert.Equal(0, idle.EventsProcessed);
        var fullPatterns = await PatternsAsync(full);
        Assert.Equal(["best_time", "churn_risk", "engagement_decay", "order_size_trend", "preferred_channel", "reorder_cadence"], fullPatterns.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(fullPatterns.ToDictionary(p => p.Key, p => p.Value.ToJsonString()), (await PatternsAsync(step)).ToDictionary(p => p.Key, p => p.Value.ToJsonString()));
        Assert.Equal((long)history.Count(h => h.Type is "order_placed"), await Db.ScalarAsync(
            "select events_processed from public.insight_detector_state where tenant_id = $1 and detector = 'orders'", step));
    }

    [Fact]
    public async Task Checkpoints_WithinARun_SamePatternsAsOneWrite_EachEventCountedOnce()
    {
        var (single, singleAccount, singleContact) = await TenantAsync("single write");
        var (checkpointed, checkpointedAccount, checkpointedContact) = await TenantAsync("checkpointed");
        var history = History().ToList();
        await InsertAsync(single, singleAccount, singleContact, history);
        await InsertAsync(checkpointed, checkpointedAccount, checkpointedContact, history);

        // Pages of 4 events and a checkpoint every 10: entities written mid-run stay in memory, take more events and
        // are written again, each time with the watermark of what they hold.
        var once = await new InsightsEngine(DataSource).RunAsync(single);
        var run = await new InsightsEngine(DataSource, pageSize: 4, checkpointEvents: 10).RunAsync(checkpointed);

        Assert.Equal(history.Count, run.EventsProcessed);
        Assert.True(run.PatternsWritten > once.PatternsWritten, $"{run.PatternsWritten} rows written in checkpoints, {once.PatternsWritten} at once");
        Assert.Equal((await PatternsAsync(single)).ToDictionary(p => p.Key, p => p.Value.ToJsonString()),
            (await PatternsAsync(checkpointed)).ToDictionary(p => p.Key, p => p.Value.ToJsonString()));
        Assert.Equal((long)history.Count, await Db.ScalarAsync(
            "select sum(events_processed)::bigint from public.insight_detector_state where tenant_id = $1", checkpointed));
        Assert.Equal(await Db.ScalarAsync("select (pattern_data -> 'state')::text from public.client_patterns where tenant_id = $1 and pattern_type = 'best_time'", single),
            await Db.ScalarAsync("select (pattern_data -> 'state')::text from public.client_patterns where tenant_id = $1 and pattern_type = 'best_time'", checkpointed));
    }

    [Fact]
    public async Task BestTime_IsLearnedInTheContactsZone_ElseItsAccounts_ElseTheTenants()
    {
        var (tenant, _, _) = await TenantAsync("zones");
        await Db.ExecuteAsync("update public.tenants set timezone = 'America/Chicago' where id = $1", tenant);
        var berlin = await Db.CreateAccountAsync(tenant, "Berlin account");
        await Db.ExecuteAsync("update public.accounts set timezone = 'Europe/Berlin' where id = $1", berlin);
        var plain = await Db.CreateAccountAsync(tenant, "Zoneless account");
        var tokyo = await Db.CreateContactAsync(tenant, berlin, "Own zone");
        await Db.ExecuteAsync("update public.contacts set timezone = 'Asia/Tokyo' where id = $1", tokyo);
        var viaAccount = await Db.CreateContactAsync(tenant, berlin, "Account's zone");
        var viaTenant = await Db.CreateContactAsync(tenant, plain, "Tenant's zone");

        // Six weeks in winter (no daylight saving anywhere involved): every contact is touched on Tuesdays at 00:00 UTC and
        // replies an hour later, and touched again on Thursdays at 12:00 UTC without a reply.
        var tuesday = new DateTimeOffset(2026, 1, 6, 0, 0, 0, TimeSpan.Zero);
        foreach (var contact in new[] { tokyo, viaAccount, viaTenant })
        {
            for (var week = 0; week < 6; week++)
            {
                var at = tuesday.AddDays(7 * week);
                foreach (var (type, when, payload) in new[] { ("touch", at, """{"touch_type": "email"}"""), ("reply", at.AddHours(1), """{"channel": "email"}"""),
                                                             ("touch", at.AddDays(2).AddHours(12), """{"touch_type": "email"}""") })
                {
                    await Db.ExecuteAsync("insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, occurred_at) values ($1, $2, 'contact', $3, $4::jsonb, $5)",
                        tenant, type, contact, payload, when);
                }
            }
        }

        await new InsightsEngine(DataSource).RunAsync(tenant);

        async Task<object?> BestSlotAsync(Guid contact) => await Db.ScalarAsync(
            "select (pattern_data -> 'best_slots' ->> 0)::int from public.client_patterns where tenant_id = $1 and entity_id = $2 and pattern_type = 'best_time' and is_active",
            tenant, contact);

        // slot = (ISO weekday - 1) * 24 + hour, local: Tuesday 09:00 in Tokyo, Tuesday 01:00 in Berlin, Monday 18:00 in Chicago.
        Assert.Equal(24 + 9, await BestSlotAsync(tokyo));
        Assert.Equal(24 + 1, await BestSlotAsync(viaAccount));
        Assert.Equal(18, await BestSlotAsync(viaTenant));
    }

    [Fact]
    public async Task ChurnRisk_WithoutNewEvents_ReEvaluatedAtMostEverySweepInterval_WithNewEventsAtOnce()
    {
        var (tenant, account, _) = await TenantAsync("sweep");
        for (var i = 0; i < 4; i++)
        {
            await Db.ExecuteAsync("insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, occurred_at) values ($1, 'order_placed', 'account', $2, '{\"total\": 100}', $3)",
                tenant, account, s_now.AddDays(-60 + 10 * i));
        }

        var engine = new InsightsEngine(DataSource);
        async Task<(DateTime UpdatedAt, decimal Risk)> ChurnAsync()
        {
            await using var command = DataSource.CreateCommand(
                "select updated_at, (pattern_data ->> 'risk')::numeric from public.client_patterns where tenant_id = $1 and pattern_type = 'churn_risk'");
            command.Parameters.Add(new() { Value = tenant });
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync(), "no churn_risk pattern");
            return (reader.GetDateTime(0), reader.GetDecimal(1));
        }

        await engine.RunAsync(tenant);
        var first = await ChurnAsync();

        // Five hours on, nothing new: not re-evaluated (the risk would have moved).
        await Db.FreezeTimeAsync(s_now.AddHours(5));
        await engine.RunAsync(tenant);
        Assert.Equal(first, await ChurnAsync());

        // Six hours on: the sweep is due; the risk has grown with the silence.
        await Db.FreezeTimeAsync(s_now.AddHours(6));
        await engine.RunAsync(tenant);
        var swept = await ChurnAsync();
        Assert.Equal(s_now.AddHours(6).UtcDateTime, swept.UpdatedAt);
        Assert.True(swept.Risk > first.Risk, $"risk {first.Risk} then {swept.Risk}");

        // A new order an hour later: that account is re-evaluated at once, sweep or not.
        await Db.FreezeTimeAsync(s_now.AddHours(7));
        await Db.ExecuteAsync("insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, occurred_at) values ($1, 'order_placed', 'account', $2, '{\"total\": 100}', $3)",
            tenant, account, s_now.AddHours(7));
        await engine.RunAsync(tenant);
        var fresh = await ChurnAsync();
        Assert.Equal(s_now.AddHours(7).UtcDateTime, fresh.UpdatedAt);
        Assert.True(fresh.Risk < swept.Risk, $"risk {swept.Risk} then {fresh.Risk} after a new order");
    }

    [Fact]
    public async Task Frontier_StopsBeforeAnUncommittedEvent_UntilItCommits()
    {
        var (tenant, account, _) = await TenantAsync("frontier");
        var engine = new InsightsEngine(DataSource);

        // An ingestion still in flight holds a sequence number below a later, committed event.
        await using var slow = await DataSource.OpenConnectionAsync();
        await using var open = await slow.BeginTransactionAsync();
        await TestDb.ExecuteAsync(slow, open, "insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, occurred_at) values ($1, 'order_placed', 'account', $2, '{\"total\": 5}', $3)",
            tenant, account, s_now.AddDays(-20));
        await Db.ExecuteAsync("insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, occurred_at) values ($1, 'order_placed', 'account', $2, '{\"total\": 5}', $3)",
            tenant, account, s_now.AddDays(-10));

        var before = await engine.RunAsync(tenant);
        await open.CommitAsync();
        var after = await engine.RunAsync(tenant);

        Assert.Equal(0, before.EventsProcessed);
        Assert.Equal(2, after.EventsProcessed);
        Assert.Equal(10.0, (await PatternsAsync(tenant))["reorder_cadence"]["mean_interval_days"]!.GetValue<double>(), 3);
    }

    [Fact]
    public async Task Cycle_ChurnRiskFromOrders_RaisesPriorityAndBecomesAHypothesisWithEvidence()
    {
        var (tenant, account, contact) = await TenantAsync("churn");
        // Orders every 10 days, the last 40 days ago: the rhythm broke.
        for (var i = 0; i < 6; i++)
        {
            await Db.ExecuteAsync("insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, occurred_at) values ($1, 'order_placed', 'account', $2, '{\"total\": 100}', $3)",
                tenant, account, s_now.AddDays(-90 + 10 * i));
        }

        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where tenant_id = $1", tenant, s_now.AddDays(-2).AddHours(-1));
        var harness = new CycleHarness(Database, s_now);
        var run = await CycleComposition.CreateWorker(DataSource, harness.Clock, new CycleWorkerOptions { WorkerId = "insights" })
            .RunManualAsync(tenant, false, null, default);

        Assert.Equal("completed", run.Status);
        var reason = (string?)await Db.ScalarAsync("select priority_reason from public.engagement_clocks where tenant_id = $1 and entity_id = $2", tenant, account);
        Assert.Contains("churn risk", reason, StringComparison.Ordinal);
        var hypotheses = JsonNode.Parse((string)(await Db.ScalarAsync("select hypotheses::text from public.agent_hourly_reflections where run_id = $1", run.RunId))!)!.AsArray();
        var churn = hypotheses.Single(h => ((string?)h!["statement"])!.Contains("may have stopped ordering", StringComparison.Ordinal))!;
        var pattern = (Guid)(await Db.ScalarAsync("select id from public.client_patterns where tenant_id = $1 and pattern_type = 'churn_risk'", tenant))!;
        Assert.Contains($"client_patterns:{pattern}", churn["evidence_ids"]!.AsArray().Select(e => (string?)e));
        Assert.Contains(churn["evidence_ids"]!.AsArray(), e => ((string?)e)!.StartsWith("warehouse_events:", StringComparison.Ordinal));
        Assert.NotEqual(Guid.Empty, contact);
    }

    [Fact]
    public async Task Attribution_ReplyWithinWindowSucceeds_SilenceFailsWhenWindowCloses_CountsAndScore()
    {
        var (tenant, _, contact) = await TenantAsync("strategies");
        var other = await Db.CreateContactAsync(tenant, null, "Quiet");
        await Db.ExecuteAsync("""
            insert into public.success_strategies (tenant_id, strategy_key, name, action_template, usage_count, success_count)
            values ($1, 'email-checkin', 'Check-in', '{"kind": "send_message"}', 0, 0)
            """, tenant);
        async Task ActionAsync(Guid target, DateTimeOffset at) => await Db.ExecuteAsync("""
            insert into public.agent_actions (tenant_id, idempotency_key, hour_bucket, kind, target_type, target_id, reason, payload, status, completed_at)
            values ($1, $2, $3, 'send_message', 'contact', $4, 'test', '{"strategy_key": "email-checkin"}', 'succeeded', $3)
            """, tenant, $"k-{Guid.NewGuid():N}", at, target, at);
        await ActionAsync(contact, s_now.AddDays(-3));
        await ActionAsync(other, s_now.AddDays(-9));
        await ActionAsync(other, s_now.AddDays(-1));
        await Db.ExecuteAsync("insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, occurred_at) values ($1, 'reply', 'contact', $2, $3)",
            tenant, contact, s_now.AddDays(-2));

        var first = await AttributeAsync(tenant);
        var again = await AttributeAsync(tenant);

        // The reply decided one at once; the 9-day-old silence closed its 7-day window; the 1-day-old one waits.
        Assert.Equal((2L, 1L), first);
        Assert.Equal((0L, 0L), again);
        // Judged actions leave the pending set (the partial index the function reads); the waiting one stays in it.
        Assert.Equal("t:t:f", await Db.ScalarAsync("""
            select string_agg((strategy_judged_at is not null)::text, ':' order by completed_at) from public.agent_actions where tenant_id = $1
            """, tenant) is string marks ? string.Join(':', marks.Split(':').Select(m => m[..1])) : null);
        Assert.Equal("2:1:0.5", await Db.ScalarAsync(
            "select usage_count || ':' || success_count || ':' || round(effectiveness_score, 4)::float8 from public.success_strategies where tenant_id = $1", tenant));
        var lower = (decimal)(await Db.ScalarAsync("select effectiveness_lower from public.success_strategies where tenant_id = $1", tenant))!;
        Assert.InRange(lower, 0m, 0.5m);

        var member = await Db.AddMemberAsync(tenant);
        var refused = await Assert.ThrowsAsync<PostgresException>(() => Db.AsUserAsync(member, (c, t) => TestDb.ScalarAsync(c, t, "select count(*) from public.attribute_strategy_outcomes($1)", tenant)));
        Assert.Equal("42501", refused.SqlState);
    }

    [Fact]
    public async Task Attribution_FindsEvidenceThatArrivesLater_AnOrderOfTheAccountCounts_OnlyEvidenceAfterTheTouch_TheFirstReplyIsTheEvidence()
    {
        var (tenant, account, contact) = await TenantAsync("evidence");
        var colleague = await Db.CreateContactAsync(tenant, account, "Colleague");
        var stranger = await Db.CreateContactAsync(tenant, await Db.CreateAccountAsync(tenant, "Elsewhere"), "Stranger");
        await Db.ExecuteAsync("""
            insert into public.success_strategies (tenant_id, strategy_key, name, action_template, usage_count, success_count)
            values ($1, 'email-checkin', 'Check-in', '{"kind": "send_message"}', 0, 0)
            """, tenant);
        async Task<Guid> ActionAsync(Guid target, DateTimeOffset at) => (Guid)(await Db.ScalarAsync("""
            insert into public.agent_actions (tenant_id, idempotency_key, hour_bucket, kind, target_type, target_id, reason, payload, status, completed_at)
            values ($1, $2, $3, 'send_message', 'contact', $4, 'test', '{"strategy_key": "email-checkin"}', 'succeeded', $3) returning id
            """, tenant, $"k-{Guid.NewGuid():N}", at, target, at))!;
        async Task<Guid> EventAsync(string type, Guid entity, DateTimeOffset at) => (Guid)(await Db.ScalarAsync(
            "insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, occurred_at) values ($1, $2, 'contact', $3, $4) returning id",
            tenant, type, entity, at))!;
        async Task<Guid> OrderAsync(Guid orderAccount, DateTimeOffset placed) => (Guid)(await Db.ScalarAsync(
            "insert into public.orders (tenant_id, account_id, status, currency, placed_at) values ($1, $2, 'placed', 'USD', $3) returning id",
            tenant, orderAccount, placed))!;
        async Task<object?> EvidenceAsync(Guid action) =>
            await Db.ScalarAsync("select coalesce(evidence_event_id::text, outcome) from public.strategy_attributions where action_id = $1", action);

        var touched = await ActionAsync(contact, s_now.AddDays(-4));
        var colleagueTouched = await ActionAsync(colleague, s_now.AddDays(-3));
        var strangerTouched = await ActionAsync(stranger, s_now.AddDays(-2));

        // Before any touch: a reply and an order that count for none of them; a reply of another kind of event.
        await EventAsync("reply", contact, s_now.AddDays(-5));
        await OrderAsync(account, s_now.AddDays(-6));
        await EventAsync("touch", stranger, s_now.AddDays(-1));
        Assert.Equal((0L, 0L), await AttributeAsync(tenant));

        // Evidence arrives later: two replies of the contact (the earlier one is the evidence, whichever came in first), and an
        // order of the account after the colleague's touch — the colleague's action succeeds by its account's order.
        var second = await EventAsync("reply", contact, s_now.AddDays(-1));
        var firstReply = await EventAsync("reply", contact, s_now.AddDays(-2));
        var order = await OrderAsync(account, s_now.AddHours(-12));
        Assert.Equal((2L, 2L), await AttributeAsync(tenant));
        Assert.Equal(firstReply.ToString(), await EvidenceAsync(touched));
        Assert.Equal(order.ToString(), await EvidenceAsync(colleagueTouched));
        Assert.NotEqual(second, firstReply);

        // The stranger's account never ordered and the stranger never replied: still pending until its window closes.
        Assert.Null(await EvidenceAsync(strangerTouched));
        Assert.Equal("2:2", await Db.ScalarAsync("select usage_count || ':' || success_count from public.success_strategies where tenant_id = $1", tenant));
    }

    private async Task<(long, long)> AttributeAsync(Guid tenant)
    {
        await using var command = Db.DataSource.CreateCommand("select judged, successes from public.attribute_strategy_outcomes($1)");
        command.Parameters.Add(new() { Value = tenant });
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private async Task<(Guid Tenant, Guid Account, Guid Contact)> TenantAsync(string name)
    {
        var tenant = await Db.CreateTenantAsync(name);
        var account = await Db.CreateAccountAsync(tenant, $"{name} account");
        var contact = await Db.CreateContactAsync(tenant, account, $"{name} contact");
        return (tenant, account, contact);
    }

    private sealed record HistoryEvent(string Type, bool OnAccount, DateTimeOffset At, string Payload);

    // Five months: an order every 12 days with growing totals (the last one long ago), touches by email and call,
    // replies to Tuesday-morning emails.
    private static IEnumerable<HistoryEvent> History()
    {
        var start = s_now.AddDays(-150);
        for (var i = 0; i < 9; i++)
        {
            yield return new HistoryEvent("order_placed", true, start.AddDays(12 * i), $$"""{"total": {{100 + 15 * i}}, "order_id": "o-{{i}}"}""");
        }

        var tuesday = new DateTimeOffset(2026, 1, 6, 9, 0, 0, TimeSpan.Zero);
        for (var week = 0; week < 16; week++)
        {
            var at = tuesday.AddDays(7 * week);
            yield return new HistoryEvent("touch", false, at, """{"touch_type": "email"}""");
            if (week % 3 != 2)
            {
                yield return new HistoryEvent("reply", false, at.AddHours(4), """{"channel": "email"}""");
            }

            yield return new HistoryEvent("touch", false, at.AddDays(2).AddHours(6), """{"touch_type": "call"}""");
        }
    }

    private async Task InsertAsync(Guid tenant, Guid account, Guid contact, IEnumerable<HistoryEvent> events)
    {
        foreach (var e in events)
        {
            await Db.ExecuteAsync("""
                insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, occurred_at)
                values ($1, $2, $3, $4, $5::jsonb, $6)
                """, tenant, e.Type, e.OnAccount ? "account" : "contact", e.OnAccount ? account : contact, e.Payload, e.At);
        }
    }

    // Each pattern type's data (the detector's state left out) with its confidence, evidence and whether it holds.
    private async Task<Dictionary<string, JsonObject>> PatternsAsync(Guid tenant)
    {
        await using var command = Db.DataSource.CreateCommand("""
            select pattern_type, (pattern_data - 'state')::text, confidence, evidence_count, is_active from public.client_patterns where tenant_id = $1
            """);
        command.Parameters.Add(new() { Value = tenant });
        await using var reader = await command.ExecuteReaderAsync();
        var patterns = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        while (await reader.ReadAsync())
        {
            var data = JsonNode.Parse(reader.GetString(1))!.AsObject();
            data["_confidence"] = reader.GetDecimal(2);
            data["_evidence"] = reader.GetInt32(3);
            data["_active"] = reader.GetBoolean(4);
            patterns[reader.GetString(0)] = data;
        }

        return patterns;
    }
}
