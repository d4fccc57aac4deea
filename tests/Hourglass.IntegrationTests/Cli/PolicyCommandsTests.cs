using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>hourglass policies … and approvals …, run as a person runs them.</summary>
public sealed class PolicyCommandsTests : DatabaseTest
{
    private const string Policy = """
        {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
         "rules": [
           {"id": "dnc", "kind": "do_not_contact", "severity": "error"},
           {"id": "weekdays", "kind": "send_window", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
         ]}
        """;

    private readonly List<string> _files = [];
    private Guid _tenant;
    private Guid _contact;

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync("Policy Co");
        var account = await Db.CreateAccountAsync(_tenant, "Initech");
        _contact = await Db.CreateContactAsync(_tenant, account, "Bill Lumbergh");
        await Db.ExecuteAsync("update public.contacts set timezone = 'America/Chicago' where id = $1", _contact);
    }

    protected override Task TearDownAsync()
    {
        foreach (var file in _files)
        {
            File.Delete(file);
        }

        return Task.CompletedTask;
    }

    [Fact]
    public async Task Set_BadDocument_RefusedNamingField_NothingSaved_ThenValidSavedShownAndListed()
    {
        var bad = await FileAsync("""{"schema": "hourglass.policy/v1", "rules": [{"id": "c", "kind": "cap", "scope": "tenant", "window": "fortnight", "limit": 2}]}""");
        var good = await FileAsync(Policy);

        var refused = await RunAsync("policies", "set", "--tenant", "Policy Co", "--file", bad);
        var historyBefore = await RunAsync("policies", "history", "--tenant", "Policy Co");
        var saved = await RunAsync("policies", "set", "--tenant", "Policy Co", "--file", good, "--by", "ops@policy.example", "--comment", "weekday sends");
        var stale = await RunAsync("policies", "set", "--tenant", "Policy Co", "--file", good, "--expected-version", "0");
        var show = await RunAsync("policies", "show", "--tenant", "Policy Co");
        var history = await RunAsync("policies", "history", "--tenant", "Policy Co");

        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("policy document refused: rules[0].window: must be one of hour, day, week (got 'fortnight')", refused.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", refused.StandardError, StringComparison.Ordinal);
        Assert.Contains("No versions saved", historyBefore.StandardOutput, StringComparison.Ordinal);
        Assert.True(saved.ExitCode == 0, saved.StandardError);
        Assert.Contains("Saved policy version 1 (2 rules)", saved.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("the policy in force is version 1, not 0", stale.StandardError, StringComparison.Ordinal);
        Assert.Contains("\"id\": \"weekdays\"", show.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Version 1", show.StandardError, StringComparison.Ordinal);
        Assert.Contains("ops@policy.example", history.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("weekday sends", history.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.tenant_policy_documents where tenant_id = $1", _tenant));
    }

    [Fact]
    public async Task Explain_SendWindowInContactsZone_AndOptedOut_EveryRuleWithItsVerdict()
    {
        await RunAsync("policies", "set", "--tenant", "Policy Co", "--file", await FileAsync(Policy));

        // 15:30 UTC on a Monday is 09:30 in Chicago (CST, UTC-6): inside the window.
        var inside = await RunAsync("policies", "explain", "--tenant", "Policy Co", "--kind", "send_message", "--contact", _contact.ToString(), "--at", "2026-11-30T15:30:00Z");
        // 14:30 UTC is 08:30 there: before it opens.
        var before = await RunAsync("policies", "explain", "--tenant", "Policy Co", "--kind", "send_message", "--contact", _contact.ToString(), "--at", "2026-11-30T14:30:00Z");
        await Db.ExecuteAsync("update public.contacts set opted_out_at = '2026-11-01' where id = $1", _contact);
        var optedOut = await RunAsync("policies", "explain", "--tenant", "Policy Co", "--kind", "touch_task", "--contact", _contact.ToString(), "--at", "2026-11-30T15:30:00Z");
        var unknown = await RunAsync("policies", "explain", "--tenant", "Policy Co", "--kind", "touch_task", "--contact", Guid.NewGuid().ToString());

        Assert.True(inside.ExitCode == 0, inside.StandardError);
        Assert.StartsWith("Decision: ALLOW under policy v1", inside.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("America/Chicago (contact)", inside.StandardOutput, StringComparison.Ordinal);
        Assert.StartsWith("Decision: DENY under policy v1, decided by weekdays", before.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("it is Mon 08:30 in America/Chicago", before.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Decision: DENY under policy v1, decided by dnc", optedOut.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("not_applicable", optedOut.StandardOutput, StringComparison.Ordinal);
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("--contact:", unknown.StandardError, StringComparison.Ordinal);
        Assert.Contains("does not exist in this tenant", unknown.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Violations_FilteredBySeverity_AndTrendsPerDay()
    {
        foreach (var (rule, severity, at) in new[] { ("dnc", "error", "2026-11-20T10:00:00Z"), ("dnc", "error", "2026-11-20T11:00:00Z"), ("weekdays", "info", "2026-11-21T10:00:00Z") })
        {
            await Db.ExecuteAsync("""
                insert into public.agent_policy_violations (tenant_id, policy_key, action_type, decision, severity, message, policy_version, created_at)
                values ($1, $2, 'send_message', 'deny', $3, 'probe', 'v1', $4::timestamptz)
                """, _tenant, rule, severity, at);
        }

        await Db.FreezeTimeAsync(new DateTimeOffset(2026, 11, 22, 0, 0, 0, TimeSpan.Zero));

        var errors = await RunAsync("policies", "violations", "--tenant", "Policy Co", "--since", "2026-11-01", "--severity", "error");
        var trends = await RunAsync("policies", "trends", "--tenant", "Policy Co", "--days", "7");
        var badSeverity = await RunAsync("policies", "violations", "--tenant", "Policy Co", "--severity", "dire");

        Assert.True(errors.ExitCode == 0, errors.StandardError);
        Assert.Equal(2, errors.StandardOutput.Split('\n').Count(l => l.Contains(" dnc ", StringComparison.Ordinal)));
        Assert.DoesNotContain("weekdays", errors.StandardOutput, StringComparison.Ordinal);
        Assert.Matches(@"2026-11-20\s+dnc\s+error\s+deny\s+2", trends.StandardOutput);
        Assert.Matches(@"2026-11-21\s+weekdays\s+info\s+deny\s+1", trends.StandardOutput);
        Assert.NotEqual(0, badSeverity.ExitCode);
        Assert.Contains("dire", badSeverity.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Approvals_ListApproveReject_WhoIsRecorded_DecidedCardRefused()
    {
        async Task<Guid> CardAsync(string key) => (Guid)(await Db.ScalarAsync("""
            insert into public.cards (tenant_id, kind, title, body, entity_type, entity_id, due_at, payload)
            values ($1, 'approval', 'Approve: send message for Bill', 'Needs approval: review', 'contact', $2, now() + interval '1 day', jsonb_build_object('action_key', $3::text))
            returning id
            """, _tenant, _contact, key))!;
        var first = await CardAsync("k1");
        var second = await CardAsync("k2");

        var list = await RunAsync("approvals", "list", "--tenant", "Policy Co");
        var approve = await RunAsync("approvals", "approve", "--card", first.ToString(), "--by", "dana");
        var reject = await RunAsync("approvals", "reject", "--card", second.ToString(), "--by", "sam", "--reason", "wrong contact");
        var again = await RunAsync("approvals", "reject", "--card", first.ToString(), "--by", "sam", "--reason", "changed my mind");
        var noReason = await RunAsync("approvals", "reject", "--card", first.ToString(), "--by", "sam");

        Assert.Equal(2, list.StandardOutput.Split('\n').Count(l => l.Contains("Approve: send message for Bill  [open, expires", StringComparison.Ordinal)));
        Assert.True(approve.ExitCode == 0, approve.StandardError);
        Assert.Contains("approved", approve.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("rejected", reject.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("done:service:dana", await Db.ScalarAsync("select status || ':' || completed_by from public.cards where id = $1", first));
        Assert.Equal("dismissed:wrong contact", await Db.ScalarAsync("select status || ':' || (payload -> 'approval' ->> 'note') from public.cards where id = $1", second));
        Assert.NotEqual(0, again.ExitCode);
        Assert.Contains("is done, not open", again.StandardError, StringComparison.Ordinal);
        Assert.NotEqual(0, noReason.ExitCode);
        Assert.Contains("--reason", noReason.StandardError, StringComparison.Ordinal);
    }

    private Task<HourglassProcess.Result> RunAsync(params string[] arguments) =>
        HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);

    private async Task<string> FileAsync(string text)
    {
        var path = Path.Combine(Path.GetTempPath(), $"policy-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(path, text);
        _files.Add(path);
        return path;
    }
}
