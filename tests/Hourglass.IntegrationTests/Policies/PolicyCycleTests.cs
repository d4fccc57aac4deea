using System.Text.Json.Nodes;
using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.IntegrationTests.Cycles;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Policies;
using Npgsql;

namespace Hourglass.IntegrationTests.Policies;

/// <summary>
/// The policy enforcer in real cycles: the document in force decides every action, each finding is recorded as a
/// violation with its version, a critical one pauses the tenant, and require_approval becomes an approval a person
/// decides — an approved action runs in a later cycle after the policy is checked again.
/// </summary>
public sealed class PolicyCycleTests : DatabaseTest
{
    // A Monday, 10:00 UTC: inside the default business hours.
    private static readonly DateTimeOffset s_t0 = new(2026, 10, 5, 10, 0, 0, TimeSpan.Zero);
    private CycleHarness _h = null!;

    protected override async Task SeedAsync()
    {
        _h = new CycleHarness(Database, s_t0);
        await _h.SetTimeAsync(s_t0);
    }

    [Fact]
    public async Task Cycle_ContactCapAndWarnRule_ViolationsRecordedWithVersionRuleRunAndKey_NotDoubledOnReplay()
    {
        var (tenant, contacts) = await TenantWithOverdueContactsAsync(2);
        await SavePolicyAsync(tenant, """
            {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
             "rules": [
               {"id": "tasks-per-hour", "kind": "cap", "scope": "channel", "channel": "task", "window": "hour", "limit": 1},
               {"id": "note-every-task", "kind": "cap", "scope": "tenant", "window": "week", "limit": 0, "decision": "warn", "severity": "info"}
             ]}
            """);

        var run = await Worker().RunManualAsync(tenant, false, null, default);
        var replay = await Worker().RunManualAsync(tenant, false, s_t0, default);

        // Two contacts and their account were due; the cap let one card through.
        Assert.Equal((1, 2), (run.ActionsTaken, run.ActionsBlocked));
        var violations = await ViolationsAsync(tenant);
        Assert.Equal(3, violations.Count(v => v.Rule == "note-every-task"));
        var capped = violations.Where(v => v.Rule == "tasks-per-hour").ToList();
        Assert.Equal(2, capped.Count);
        Assert.All(capped, v => Assert.Equal(("deny", "warning", true, "v1", run.RunId), (v.Decision, v.Severity, v.Blocked, v.Version, v.RunId)));
        Assert.All(capped, v => Assert.Contains("1 task touches in the last hour; the cap is 1", v.Message, StringComparison.Ordinal));
        Assert.Single(violations, v => v.Rule == "note-every-task" && !v.Blocked);
        // The replayed hour decided the same actions again and wrote nothing twice.
        Assert.Equal(5, (await ViolationsAsync(tenant)).Count);
        Assert.Equal("completed", replay.Status);
    }

    [Fact]
    public async Task Cycle_CriticalFinding_PausesTenantWithReason_RestOfCycleBlocked()
    {
        var (tenant, contacts) = await TenantWithOverdueContactsAsync(3);
        await Db.ExecuteAsync("update public.contacts set opted_out_at = $2 where id = $1", contacts[0], s_t0.AddDays(-2));
        // The opted-out contact is the most overdue, so the first action decided.
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = next_touch_due - interval '5 days' where entity_id = $1", contacts[0]);
        await SavePolicyAsync(tenant, """
            {"schema": "hourglass.policy/v1",
             "rules": [{"id": "never-opted-out", "kind": "do_not_contact", "severity": "critical"}]}
            """);

        var run = await Worker().RunManualAsync(tenant, false, null, default);

        var pause = await Db.ScalarAsync("select paused_reason from public.agent_tenant_schedules where tenant_id = $1 and paused and paused_by = 'policy'", tenant);
        Assert.Equal("critical policy violation: rule 'never-opted-out' (v1) on touch_task: the contact opted out on 2026-10-03", pause);
        Assert.Equal(0, run.ActionsTaken);
        var act = (string)(await Db.ScalarAsync("select act_output::text from public.agent_autonomous_runs where id = $1", run.RunId))!;
        Assert.Contains("paused: this tenant (critical policy violation", act, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.cards where tenant_id = $1 and kind = 'touch_task'", tenant));
    }

    [Fact]
    public async Task Approval_RequiredCardHoldsAction_NotAskedTwice_ApprovedRunsNextCycleUnderOriginalKey()
    {
        var (tenant, contacts) = await TenantWithOverdueContactsAsync(1, email: true);
        await SavePolicyAsync(tenant, """
            {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
             "rules": [{"id": "review-messages", "kind": "cap", "scope": "tenant", "window": "hour", "limit": 0,
                        "decision": "require_approval", "applies_to": ["send_message"]}]}
            """);

        var first = await Worker().RunManualAsync(tenant, false, null, default);
        var card = await OpenApprovalAsync(tenant);
        await _h.SetTimeAsync(s_t0.AddHours(1));
        await Worker().RunManualAsync(tenant, false, null, default);

        Assert.NotNull(card);
        Assert.Equal(contacts[0], card.Value.EntityId);
        Assert.Contains("review-messages", card.Value.Body, StringComparison.Ordinal);
        // The draft is on the card: what a person approves is what will be sent.
        Assert.EndsWith("Draft (email):\nSubject: Hi\n\nHello Contact 0", card.Value.Body, StringComparison.Ordinal);
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.cards where tenant_id = $1 and kind = 'approval'", tenant));
        Assert.Equal(0L, await OutboxCountAsync(tenant));
        Assert.Equal("blocked:require_approval", await LedgerAsync(tenant, card.Value.ActionKey));

        Assert.Equal("approved", await Db.ScalarAsync("select public.decide_approval($1, true, 'fine', 'dana')", card.Value.Id));
        await _h.SetTimeAsync(s_t0.AddHours(2));
        var approvedRun = await Worker().RunManualAsync(tenant, false, null, default);

        Assert.Equal(1L, await OutboxCountAsync(tenant));
        Assert.Equal("succeeded:allow", await LedgerAsync(tenant, card.Value.ActionKey));
        Assert.Equal("done:service:dana", await Db.ScalarAsync("select status || ':' || completed_by from public.cards where id = $1", card.Value.Id));
        Assert.True(approvedRun.ActionsTaken >= 1);
        // Run once: the next cycle does not send it again.
        await _h.SetTimeAsync(s_t0.AddHours(3));
        await Worker().RunManualAsync(tenant, false, null, default);
        Assert.Equal(1L, await OutboxCountAsync(tenant));
        Assert.NotEqual(Guid.Empty, first.RunId);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Approval_DecidedWhilePaused_DoesNotRunUntilResume_ThenOnlyIfStillAllowed(bool optedOutWhilePaused)
    {
        var (tenant, contacts) = await TenantWithOverdueContactsAsync(1, email: true);
        await SavePolicyAsync(tenant, """
            {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
             "rules": [{"id": "review-messages", "kind": "cap", "scope": "tenant", "window": "hour", "limit": 0,
                        "decision": "require_approval", "applies_to": ["send_message"]},
                       {"id": "never-opted-out", "kind": "do_not_contact"}]}
            """);
        await Worker().RunManualAsync(tenant, false, null, default);
        var card = (await OpenApprovalAsync(tenant))!.Value;
        var control = new TenantControl(DataSource, TimeProvider.System);

        // Paused, then approved: neither the scheduler nor a manual run executes it.
        await control.PauseTenantAsync(tenant, "quarter close", "ops", default);
        Assert.Equal("approved", await Db.ScalarAsync("select public.decide_approval($1, true, 'fine', 'dana')", card.Id));
        if (optedOutWhilePaused)
        {
            await Db.ExecuteAsync("update public.contacts set opted_out_at = $2 where id = $1", contacts[0], s_t0.AddHours(1));
        }

        await _h.SetTimeAsync(s_t0.AddHours(2));
        await Db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = $2 where tenant_id = $1", tenant, s_t0.AddHours(2));
        Assert.Equal(0, await Worker().RunOnceAsync(default));
        var refused = await Assert.ThrowsAsync<TenantPausedException>(() => Worker().RunManualAsync(tenant, false, null, default));
        Assert.Contains("quarter close", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await OutboxCountAsync(tenant));
        Assert.Equal("blocked:require_approval", await LedgerAsync(tenant, card.ActionKey));

        // Resumed: the next cycle runs it — if the policy, checked again, still allows it.
        await control.ResumeTenantAsync(tenant, default);
        await Worker().RunManualAsync(tenant, false, null, default);

        Assert.Equal(optedOutWhilePaused ? 0L : 1L, await OutboxCountAsync(tenant));
        Assert.Equal(optedOutWhilePaused ? "blocked:deny" : "succeeded:allow", await LedgerAsync(tenant, card.ActionKey));
    }

    [Fact]
    public async Task Approval_FactsChangedBeforeItRuns_RecheckBlocksIt()
    {
        var (tenant, contacts) = await TenantWithOverdueContactsAsync(1, email: true);
        await SavePolicyAsync(tenant, """
            {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
             "rules": [{"id": "review-messages", "kind": "cap", "scope": "tenant", "window": "hour", "limit": 0,
                        "decision": "require_approval", "applies_to": ["send_message"]},
                       {"id": "dnc", "kind": "do_not_contact"}]}
            """);
        await Worker().RunManualAsync(tenant, false, null, default);
        var card = (await OpenApprovalAsync(tenant))!.Value;
        await Db.ScalarAsync("select public.decide_approval($1, true, null, 'dana')", card.Id);

        // The contact opts out between the approval and the next cycle.
        await Db.ExecuteAsync("update public.contacts set opted_out_at = $2 where id = $1", contacts[0], s_t0.AddMinutes(30));
        await _h.SetTimeAsync(s_t0.AddHours(1));
        await Worker().RunManualAsync(tenant, false, null, default);

        Assert.Equal(0L, await OutboxCountAsync(tenant));
        Assert.Equal("blocked:deny", await LedgerAsync(tenant, card.ActionKey));
        Assert.Contains(await ViolationsAsync(tenant), v => v.Rule == "dnc" && v.Blocked);
    }

    [Fact]
    public async Task Approval_Expired_CannotBeApproved_Rejected_NoMessageForAWeekButTheOwnerIsAskedToTouch()
    {
        var (tenant, _) = await TenantWithOverdueContactsAsync(1, email: true);
        await Db.ExecuteAsync("update public.tenants set settings = settings || '{\"approval_ttl_hours\": 2}' where id = $1", tenant);
        await SavePolicyAsync(tenant, """
            {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
             "rules": [{"id": "review-messages", "kind": "cap", "scope": "tenant", "window": "hour", "limit": 0,
                        "decision": "require_approval", "applies_to": ["send_message"]}]}
            """);
        await Worker().RunManualAsync(tenant, false, null, default);
        var first = (await OpenApprovalAsync(tenant))!.Value;

        await _h.SetTimeAsync(s_t0.AddHours(3));
        var late = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select public.decide_approval($1, true)", first.Id));
        Assert.Equal("55000", late.SqlState);
        Assert.Contains("expired", late.MessageText, StringComparison.Ordinal);

        // The next cycle sweeps it to expired and, the contact still due, asks again; that one is rejected, and the
        // cycles after send no message (no new approval) but ask the owner for the touch on a card.
        await Worker().RunManualAsync(tenant, false, null, default);
        Assert.Equal("expired", await Db.ScalarAsync("select status from public.cards where id = $1", first.Id));
        var second = (await OpenApprovalAsync(tenant))!.Value;
        Assert.NotEqual(first.Id, second.Id);
        Assert.Equal("rejected", await Db.ScalarAsync("select public.decide_approval($1, false, 'not now', 'dana')", second.Id));
        await _h.SetTimeAsync(s_t0.AddHours(4));
        await Worker().RunManualAsync(tenant, false, null, default);
        Assert.Null(await OpenApprovalAsync(tenant));
        Assert.Equal(0L, await OutboxCountAsync(tenant));
        Assert.Contains("a message was declined this week, so the owner makes the touch", (string?)await Db.ScalarAsync(
            "select body from public.cards where tenant_id = $1 and kind = 'touch_task' and status = 'open' and entity_type = 'contact'", tenant), StringComparison.Ordinal);
        Assert.Equal("rejected:service:dana:not now", await Db.ScalarAsync(
            "select (payload -> 'approval' ->> 'decision') || ':' || (payload -> 'approval' ->> 'by') || ':' || (payload -> 'approval' ->> 'note') from public.cards where id = $1", second.Id));
    }

    [Fact]
    public async Task EmailCapUsedUp_TheOwnerIsAskedToTouchInsteadOfAMessageThatWouldBeBlocked()
    {
        var (tenant, contacts) = await TenantWithOverdueContactsAsync(2, email: true);
        await SavePolicyAsync(tenant, """
            {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
             "rules": [{"id": "email-daily", "kind": "cap", "scope": "channel", "channel": "email", "window": "day", "limit": 1}]}
            """);

        // The first hour: one message goes out, the second is blocked by the cap (it was not used up when the hour began).
        await Worker().RunManualAsync(tenant, false, null, default);
        Assert.Equal(1L, await OutboxCountAsync(tenant));

        // An hour later the cap is used up: the contact still without a touch gets a touch card, not another blocked message.
        await _h.SetTimeAsync(s_t0.AddHours(1));
        await Worker().RunManualAsync(tenant, false, null, default);
        Assert.Equal(1L, await OutboxCountAsync(tenant));
        var body = (string?)await Db.ScalarAsync(
            "select body from public.cards where tenant_id = $1 and kind = 'touch_task' and status = 'open' and entity_type = 'contact'", tenant);
        Assert.Contains("the email cap is reached for now, so the owner makes the touch", body, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync(
            "select count(*) from public.agent_actions where tenant_id = $1 and kind = 'send_message' and status = 'blocked' and hour_bucket = $2", tenant, s_t0.AddHours(1)));
        Assert.Equal(2, contacts.Length);
    }

    [Fact]
    public async Task DryRun_DecidesButRecordsNothing()
    {
        var (tenant, _) = await TenantWithOverdueContactsAsync(2);
        await SavePolicyAsync(tenant, """
            {"schema": "hourglass.policy/v1", "rules": [{"id": "no-tasks", "kind": "cap", "scope": "tenant", "window": "day", "limit": 0}]}
            """);

        // A dry run plans from compliance as last refreshed; refresh as an earlier cycle would have.
        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant);

        var run = await Worker().RunManualAsync(tenant, dryRun: true, hour: null, default);

        var act = (string)(await Db.ScalarAsync("select act_output::text from public.agent_autonomous_runs where id = $1", run.RunId))!;
        Assert.Contains("no-tasks", act, StringComparison.Ordinal);
        Assert.Empty(await ViolationsAsync(tenant));
    }

    [Fact]
    public async Task Save_InvalidDocument_RefusedNamingField_VersionInForceStays()
    {
        var tenant = await Db.CreateTenantAsync();
        await SavePolicyAsync(tenant, """{"schema": "hourglass.policy/v1", "rules": []}""");

        var refused = await Assert.ThrowsAsync<PolicyValidationException>(() => PolicyStore.SaveAsync(DataSource, tenant,
            """{"schema": "hourglass.policy/v1", "rules": [{"id": "c", "kind": "cap", "scope": "tenant", "window": "day", "limit": -1}]}""", "t", null));
        var stale = await Assert.ThrowsAsync<HourglassException>(() => PolicyStore.SaveAsync(DataSource, tenant,
            """{"schema": "hourglass.policy/v1"}""", "t", null, expectedVersion: 0));

        Assert.Contains("rules[0].limit", refused.Message, StringComparison.Ordinal);
        Assert.Contains("the policy in force is version 1, not 0", stale.Message, StringComparison.Ordinal);
        var inForce = await PolicyStore.InForceAsync(DataSource, tenant);
        Assert.Equal(("v1", 0), (inForce.Version, inForce.Document.Rules.Count));
    }

    [Fact]
    public async Task NoDocument_BuiltInDefaultDecides()
    {
        var (tenant, _) = await TenantWithOverdueContactsAsync(1);

        var run = await Worker().RunManualAsync(tenant, false, null, default);

        var act = JsonNode.Parse((string)(await Db.ScalarAsync("select act_output::text from public.agent_autonomous_runs where id = $1", run.RunId))!)!;
        Assert.All(act["actions"]!.AsArray(), a => Assert.Equal("default", (string?)a!["policy_version"]));
    }

    [Fact]
    public async Task ActionOfAKindNoRuleKnows_DeniedByDefault_AllowedOnlyWhenTheDocumentSaysSo()
    {
        // Any proposer — a deterministic part or a model's free-form suggestion — goes through the same evaluator.
        await CycleHarness.EnsureSideEffectTableAsync(Db);
        var tenant = await Db.CreateTenantAsync();
        var target = Guid.NewGuid();
        _h.Part.Targets[tenant] = [target];
        var engine = new CycleEngine(DataSource, [_h.Part], [_h.Handler], _h.Clock, new DocumentPolicyEnforcer(DataSource));
        var worker = new CycleWorker(DataSource, _h.Clock, engine, new CycleWorkerOptions { WorkerId = "kinds" });

        var denied = await worker.RunManualAsync(tenant, false, null, default);
        await SavePolicyAsync(tenant, """{"schema": "hourglass.policy/v1", "default_decision": "allow", "actions": ["touch_task"]}""");
        await _h.SetTimeAsync(s_t0.AddHours(1));
        var allowed = await worker.RunManualAsync(tenant, false, null, default);

        Assert.Equal((0, 1), (denied.ActionsTaken, denied.ActionsBlocked));
        var violation = (await ViolationsAsync(tenant)).Single();
        Assert.Equal(("default_decision", "deny", "default"), (violation.Rule, violation.Decision, violation.Version));
        Assert.Contains("'test_effect' is not one of the actions this policy allows", violation.Message, StringComparison.Ordinal);
        Assert.Equal((1, 0), (allowed.ActionsTaken, allowed.ActionsBlocked));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.test_side_effects where tenant_id = $1", tenant));
    }

    [Fact]
    public async Task ActOutput_ReportsTimeSpentOnPolicy()
    {
        var (tenant, _) = await TenantWithOverdueContactsAsync(2);

        var run = await Worker().RunManualAsync(tenant, false, null, default);

        var act = JsonNode.Parse((string)(await Db.ScalarAsync("select act_output::text from public.agent_autonomous_runs where id = $1", run.RunId))!)!;
        Assert.True(act["policy_ms"]!.GetValue<double>() > 0);
    }

    private CycleWorker Worker() =>
        CycleComposition.CreateWorker(DataSource, _h.Clock, new CycleWorkerOptions { WorkerId = "policy-worker" });

    private async Task SavePolicyAsync(Guid tenant, string json) => await PolicyStore.SaveAsync(DataSource, tenant, json, "test", null);

    // A tenant whose one account has the given number of contacts, all 3+ days overdue (the account too). With
    // email, the contacts have addresses, the tenant an email channel, and a strategy that touches contacts by email.
    private async Task<(Guid Tenant, Guid[] Contacts)> TenantWithOverdueContactsAsync(int count, bool email = false)
    {
        var tenant = await Db.CreateTenantAsync();
        var owner = await Db.AddMemberAsync(tenant, role: "owner");
        var account = (Guid)(await Db.ScalarAsync("insert into public.accounts (tenant_id, name, owner_user_id) values ($1, 'Globex', $2) returning id", tenant, owner))!;
        var contacts = new List<Guid>();
        for (var i = 0; i < count; i++)
        {
            var contact = (Guid)(await Db.ScalarAsync(
                "insert into public.contacts (tenant_id, account_id, name, email) values ($1, $2, $3, $4) returning id",
                tenant, account, $"Contact {i}", email ? $"c{i}@client.example" : (object)DBNull.Value))!;
            contacts.Add(contact);
        }

        await Db.ExecuteAsProductAsync("update public.engagement_clocks set last_touch_at = $2, next_touch_due = $2 + interval '21 days' where tenant_id = $1",
            tenant, s_t0.AddDays(-24).AddHours(-1));
        if (email)
        {
            await Db.EnableContactEmailAsync(tenant);
        }

        return (tenant, contacts.ToArray());
    }

    private async Task<(Guid Id, Guid EntityId, string Body, string ActionKey)?> OpenApprovalAsync(Guid tenant)
    {
        await using var command = Db.DataSource.CreateCommand(
            "select id, entity_id, body, payload ->> 'action_key' from public.cards where tenant_id = $1 and kind = 'approval' and status = 'open'");
        command.Parameters.Add(new() { Value = tenant });
        await using var reader = await command.ExecuteReaderAsync();
        return await reader.ReadAsync() ? (reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3)) : null;
    }

    private async Task<long> OutboxCountAsync(Guid tenant) =>
        (long)(await Db.ScalarAsync("select count(*) from public.message_outbox where tenant_id = $1", tenant))!;

    private async Task<string?> LedgerAsync(Guid tenant, string key) =>
        (string?)await Db.ScalarAsync("select status || ':' || decision from public.agent_actions where tenant_id = $1 and idempotency_key = $2", tenant, key);

    private sealed record Violation(string Rule, string Decision, string Severity, bool Blocked, string? Version, Guid? RunId, string Message);

    private async Task<List<Violation>> ViolationsAsync(Guid tenant)
    {
        await using var command = Db.DataSource.CreateCommand("""
            select policy_key, decision, severity, blocked, policy_version, run_id, message
            from public.agent_policy_violations where tenant_id = $1 order by created_at, policy_key
            """);
        command.Parameters.Add(new() { Value = tenant });
        await using var reader = await command.ExecuteReaderAsync();
        var list = new List<Violation>();
        while (await reader.ReadAsync())
        {
            list.Add(new Violation(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetBoolean(3),
                reader.IsDBNull(4) ? null : reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetGuid(5), reader.GetString(6)));
        }

        return list;
    }
}
