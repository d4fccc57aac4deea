using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>hourglass members … and roles …, and a decision made with <c>--by</c> a member's id, run as a person runs them.</summary>
public sealed class MemberCommandsTests : DatabaseTest
{
    private Guid _tenant;
    private Guid _owner;

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync("Roles Co");
        _owner = await Db.AddMemberAsync(_tenant, role: "owner");
    }

    [Fact]
    public async Task Members_SetListRemove_KeepTheRules()
    {
        var rep = Guid.NewGuid();

        var defined = await RunAsync("roles", "set", "--tenant", "Roles Co", "--role", "sales_rep", "--capabilities", "record_touches, edit_crm",
            "--description", "Field sales");
        var added = await RunAsync("members", "set", "--tenant", "Roles Co", "--user", rep.ToString(), "--role", "sales_rep");
        var unknownRole = await RunAsync("members", "set", "--tenant", "Roles Co", "--user", rep.ToString(), "--role", "emperor");
        var badCapability = await RunAsync("roles", "set", "--tenant", "Roles Co", "--role", "x", "--capabilities", "read,fly");
        var roleInUse = await RunAsync("roles", "remove", "--tenant", "Roles Co", "--role", "sales_rep");
        var lastOwner = await RunAsync("members", "remove", "--tenant", "Roles Co", "--user", _owner.ToString());
        var list = await RunAsync("members", "list", "--tenant", "Roles Co");
        var roles = await RunAsync("roles", "list", "--tenant", "Roles Co");

        Assert.True(defined.ExitCode == 0, defined.StandardError);
        Assert.Contains("Role sales_rep added", defined.StandardOutput, StringComparison.Ordinal);
        Assert.True(added.ExitCode == 0, added.StandardError);
        Assert.Equal(1, unknownRole.ExitCode);
        Assert.Contains("'emperor' is not a role of the tenant (roles: admin, controller, manager, member, owner, sales_rep, viewer)", unknownRole.StandardError, StringComparison.Ordinal);
        Assert.Equal(1, badCapability.ExitCode);
        Assert.Contains("unknown capability", badCapability.StandardError, StringComparison.Ordinal);
        Assert.Equal(1, roleInUse.ExitCode);
        Assert.Contains("members still have the role", roleInUse.StandardError, StringComparison.Ordinal);
        Assert.Equal(1, lastOwner.ExitCode);
        Assert.Contains("last owner", lastOwner.StandardError, StringComparison.Ordinal);
        Assert.Contains(rep.ToString(), list.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("edit_crm, read, record_touches", list.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Field sales", roles.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("sales_rep", await Db.ScalarAsync("select role from public.tenant_members where tenant_id = $1 and user_id = $2", _tenant, rep));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.tenant_roles where tenant_id = $1 and role = 'x'", _tenant));

        var removed = await RunAsync("members", "remove", "--tenant", "Roles Co", "--user", rep.ToString());
        Assert.True(removed.ExitCode == 0, removed.StandardError);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.tenant_members where tenant_id = $1 and user_id = $2", _tenant, rep));
    }

    [Fact]
    public async Task Approve_ByAMembersId_TheMembersRoleDecides()
    {
        var member = await Db.AddMemberAsync(_tenant, role: "member");
        var manager = await Db.AddMemberAsync(_tenant, role: "manager");
        var card = (Guid)(await Db.ScalarAsync(
            "insert into public.cards (tenant_id, kind, title, payload, due_at) values ($1, 'approval', 'Send it', '{\"action_key\": \"k1\"}', now() + interval '1 day') returning id",
            _tenant))!;

        var refused = await RunAsync("approvals", "approve", "--card", card.ToString(), "--by", member.ToString());
        var stillOpen = await Db.ScalarAsync("select status from public.cards where id = $1", card);
        var approved = await RunAsync("approvals", "approve", "--card", card.ToString(), "--by", manager.ToString());

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("lacks the capability 'approve'", refused.StandardError, StringComparison.Ordinal);
        Assert.Equal("open", stillOpen);
        Assert.True(approved.ExitCode == 0, approved.StandardError);
        Assert.Equal($"user:{manager}", await Db.ScalarAsync("select completed_by from public.cards where id = $1", card));
    }

    [Fact]
    public async Task Approve_ByAName_TheOperatorDecidesForTheRecord()
    {
        var card = (Guid)(await Db.ScalarAsync(
            "insert into public.cards (tenant_id, kind, title, payload, due_at) values ($1, 'approval', 'Send it', '{\"action_key\": \"k2\"}', now() + interval '1 day') returning id",
            _tenant))!;

        var approved = await RunAsync("approvals", "approve", "--card", card.ToString(), "--by", "dana");

        Assert.True(approved.ExitCode == 0, approved.StandardError);
        Assert.Equal("service:dana", await Db.ScalarAsync("select completed_by from public.cards where id = $1", card));
    }

    private Task<HourglassProcess.Result> RunAsync(params string[] arguments) =>
        HourglassProcess.RunAsync([.. arguments, "--database", ConnectionString]);
}
