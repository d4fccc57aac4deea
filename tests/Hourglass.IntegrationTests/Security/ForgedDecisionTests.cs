using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// The attacks a tester made as a plain member through Supabase's REST layer (issue 15), each tried again: a forged
/// decision is refused and leaves nothing behind, and the same decision made the right way (through the function, by
/// a role that may) records who made it from the token.
/// </summary>
public sealed class ForgedDecisionTests(GuardrailFixture fixture) : IClassFixture<GuardrailFixture>
{
    private const string Denied = IsolationAssert.Denied;

    private TwoTenantFixture Tenants => fixture.Tenants;

    private TestDb Db => Tenants.Db;

    private ApiCalls Api => Tenants.Api;

    private Guid A => Tenants.A.TenantId;

    [Fact]
    public async Task ApprovalCard_MemberInsertsOneAlreadyApprovedByTheOwner_RefusedAndNoCard()
    {
        var contact = await Db.CreateContactAsync(A);
        var card = Guid.NewGuid();

        var outcome = await Api.ExecuteAsync(fixture.As("member"), """
            insert into public.cards (id, tenant_id, kind, title, status, completed_at, completed_by, payload)
            values ($1, $2, 'approval', 'Send it', 'done', now(), $3, jsonb_build_object(
              'action_key', 'forged', 'approval', jsonb_build_object('decision', 'approved', 'by', $3),
              'action', jsonb_build_object('kind', 'send_message', 'target_type', 'contact', 'target_id', $4::text,
                'payload', jsonb_build_object('to', 'anyone@example.com'))))
            """, [card, A, $"user:{fixture.UserId("admin")}", contact], commit: true);

        Assert.Equal(Denied, outcome.SqlState);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.cards where id = $1", card));
    }

    [Fact]
    public async Task ApprovalCard_MemberMarksAnOpenOneApproved_RefusedAndStillOpen()
    {
        var card = await OpenApprovalAsync();

        var outcome = await Api.ExecuteAsync(fixture.As("member"),
            "update public.cards set status = 'done', completed_at = now(), completed_by = 'user:owner', payload = payload || '{\"approval\": {\"decision\": \"approved\"}}' where id = $1",
            [card], commit: true);

        Assert.Equal(Denied, outcome.SqlState);
        Assert.Equal("open", await Db.ScalarAsync("select status from public.cards where id = $1", card));
    }

    [Fact]
    public async Task DecideApproval_MemberWithoutApprove_RefusedNamingTheCapability()
    {
        var card = await OpenApprovalAsync();

        var (state, message) = await FunctionAsync(fixture.As("member"), "select public.decide_approval($1, true)", card);

        Assert.Equal(Denied, state);
        Assert.Contains("lacks the capability 'approve'", message, StringComparison.Ordinal);
        Assert.Contains("manager", message, StringComparison.Ordinal);
        Assert.Equal("open", await Db.ScalarAsync("select status from public.cards where id = $1", card));
    }

    [Fact]
    public async Task DecideApproval_ManagerNamingSomeoneElse_RefusedAndStillOpen()
    {
        var card = await OpenApprovalAsync();

        var (state, message) = await FunctionAsync(fixture.As("manager"), "select public.decide_approval($1, true, null, $2)", card, "the owner");

        Assert.Equal(Denied, state);
        Assert.Contains("may not name someone else", message, StringComparison.Ordinal);
        Assert.Equal("open", await Db.ScalarAsync("select status from public.cards where id = $1", card));
    }

    [Fact]
    public async Task DecideApproval_Manager_RecordsTheManagerFromTheToken()
    {
        var card = await OpenApprovalAsync();

        var outcome = await Api.ScalarAsync(fixture.As("manager"), "select public.decide_approval($1, true, 'fine')", [card], commit: true);

        Assert.Equal(new Outcome<object>("approved", null), outcome);
        Assert.Equal($"user:{fixture.UserId("manager")}", await Db.ScalarAsync("select completed_by from public.cards where id = $1", card));
        Assert.Equal($"user:{fixture.UserId("manager")}", await Db.ScalarAsync("select payload -> 'approval' ->> 'by' from public.cards where id = $1", card));
    }

    [Fact]
    public async Task DecideApproval_OtherTenantsCard_NotFoundWithoutNamingItsTenant()
    {
        var card = await OpenApprovalAsync(Tenants.B.TenantId);

        var (state, message) = await FunctionAsync(fixture.As("manager"), "select public.decide_approval($1, true)", card);

        Assert.Equal("P0002", state);
        Assert.DoesNotContain(Tenants.B.TenantId.ToString(), message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreditOverride_MemberWritesOverriddenByOwnerOnTheQueue_RefusedAndQueueUnchanged()
    {
        var (_, queue) = await QueuedOrderAsync();

        var outcome = await Api.ExecuteAsync(fixture.As("member"),
            "update public.order_processing_queue set credit_override_by = 'user:owner', credit_override_reason = 'trust me', credit_status = 'passed' where id = $1",
            [queue], commit: true);

        Assert.Equal(Denied, outcome.SqlState);
        Assert.Null(await Db.ScalarAsync("select credit_override_by from public.order_processing_queue where id = $1", queue));
    }

    [Fact]
    public async Task CreditOverride_ThroughTheFunction_ControllerYesMemberNo_AndWhoIsFromTheToken()
    {
        var (order, queue) = await QueuedOrderAsync();

        var (memberState, _) = await FunctionAsync(fixture.As("member"), "select public.override_order_credit($1, 'good customer')", order);
        var (forgedState, _) = await FunctionAsync(fixture.As("controller"), "select public.override_order_credit($1, 'good customer', 'the owner')", order);
        var done = await Api.ScalarAsync(fixture.As("controller"), "select public.override_order_credit($1, 'good customer')", [order], commit: true);

        Assert.Equal(Denied, memberState);
        Assert.Equal(Denied, forgedState);
        Assert.Equal(new Outcome<object>("overridden", null), done);
        Assert.Equal($"user:{fixture.UserId("controller")}", await Db.ScalarAsync("select credit_override_by from public.order_processing_queue where id = $1", queue));
    }

    [Fact]
    public async Task Exception_MemberMarksItResolvedWithAMadeUpResolver_RefusedAndStillOpen()
    {
        var exception = await OpenExceptionAsync();

        var direct = await Api.ExecuteAsync(fixture.As("member"),
            "update public.order_processing_exceptions set resolution_status = 'resolved', resolved_by = 'user:owner', resolved_at = now() where id = $1",
            [exception], commit: true);
        var (functionState, _) = await FunctionAsync(fixture.As("member"), "select public.resolve_order_exception($1, 'resolved', 'fixed it')", exception);

        Assert.Equal(Denied, direct.SqlState);
        Assert.Equal(Denied, functionState);
        Assert.Equal("open", await Db.ScalarAsync("select resolution_status from public.order_processing_exceptions where id = $1", exception));
    }

    [Fact]
    public async Task Exception_ControllerResolves_ResolverIsTheController()
    {
        var exception = await OpenExceptionAsync();

        var outcome = await Api.ScalarAsync(fixture.As("controller"), "select public.resolve_order_exception($1, 'resolved', 'credit raised')", [exception], commit: true);

        Assert.Equal(new Outcome<object>("resolved", null), outcome);
        Assert.Equal($"user:{fixture.UserId("controller")}", await Db.ScalarAsync("select resolved_by from public.order_processing_exceptions where id = $1", exception));
    }

    [Fact]
    public async Task Strategy_AdminSetsItsCounters_RefusedAndCountersUnchanged()
    {
        var strategy = await Db.ScalarAsync(
            "insert into public.success_strategies (tenant_id, strategy_key, name, usage_count, success_count) values ($1, $2, 'Call first', 10, 2) returning id",
            A, $"s-{Guid.NewGuid():N}");

        var outcome = await Api.ExecuteAsync(fixture.As("admin"),
            "update public.success_strategies set success_count = 10, effectiveness_score = 1 where id = $1", [strategy], commit: true);
        var renamed = await Api.ExecuteAsync(fixture.As("admin"), "update public.success_strategies set name = 'Call first, then email' where id = $1", [strategy], commit: true);

        Assert.Equal(Denied, outcome.SqlState);
        Assert.Equal(2, await Db.ScalarAsync("select success_count from public.success_strategies where id = $1", strategy));
        // The same admin may shape the strategy itself.
        Assert.Equal(new Outcome<int>(1, null), renamed);
    }

    [Fact]
    public async Task Clock_MemberRewritesIt_RefusedAndClockUnchanged()
    {
        var contact = await Db.CreateContactAsync(A);
        var before = await Db.ScalarAsync("select to_jsonb(c)::text from public.engagement_clocks c where tenant_id = $1 and entity_id = $2", A, contact);

        var outcome = await Api.ExecuteAsync(fixture.As("member"),
            "update public.engagement_clocks set last_touch_at = now(), next_touch_due = now() + interval '1 year', compliance_status = 'compliant' where entity_id = $1",
            [contact], commit: true);

        Assert.Equal(Denied, outcome.SqlState);
        Assert.Equal(before, await Db.ScalarAsync("select to_jsonb(c)::text from public.engagement_clocks c where tenant_id = $1 and entity_id = $2", A, contact));
    }

    [Fact]
    public async Task Clock_MemberRecordsATouchAsTheAgent_RecordedAsTheMember()
    {
        var contact = await Db.CreateContactAsync(A);

        var outcome = await Api.ScalarAsync(fixture.As("member"),
            "select public.update_engagement_clock($1, 'contact', $2, 'email', 'agent')", [A, contact], commit: true);

        Assert.True(outcome.Succeeded, outcome.ToString());
        Assert.Equal($"user:{fixture.UserId("member")}",
            await Db.ScalarAsync("select last_touch_by from public.engagement_clocks where tenant_id = $1 and entity_type = 'contact' and entity_id = $2", A, contact));
    }

    [Fact]
    public async Task Clock_ViewerRecordsATouch_RefusedNamingTheCapability()
    {
        var contact = await Db.CreateContactAsync(A);

        var (state, message) = await FunctionAsync(fixture.As("viewer"), "select public.update_engagement_clock($1, 'contact', $2, 'email')", A, contact);

        Assert.Equal(Denied, state);
        Assert.Contains("'record_touches'", message, StringComparison.Ordinal);
        Assert.Equal(0, await Db.ScalarAsync("select touch_count from public.engagement_clocks where tenant_id = $1 and entity_id = $2", A, contact));
    }

    [Fact]
    public async Task Events_MemberDeletesOrRewritesThem_RefusedAndEventUnchanged()
    {
        var evt = await Db.ScalarAsync(
            "insert into public.warehouse_events (tenant_id, event_type, payload, idempotency_key) values ($1, 'order_placed', '{\"total\": 10}', $2) returning id",
            A, $"e-{Guid.NewGuid():N}");

        var rewrite = await Api.ExecuteAsync(fixture.As("member"), "update public.warehouse_events set payload = '{\"total\": 99999}' where id = $1", [evt], commit: true);
        var delete = await Api.ExecuteAsync(fixture.As("member"), "delete from public.warehouse_events where id = $1", [evt], commit: true);

        Assert.Equal(Denied, rewrite.SqlState);
        Assert.Equal(Denied, delete.SqlState);
        Assert.Equal("{\"total\": 10}", await Db.ScalarAsync("select payload::text from public.warehouse_events where id = $1", evt));
    }

    [Fact]
    public async Task Card_MemberCompletesSomeoneElsesCard_RefusedButTheirOwnAndUnassignedOnesWork()
    {
        var others = await TouchCardAsync(assignee: fixture.UserId("manager"));
        var own = await TouchCardAsync(assignee: fixture.UserId("member"));
        var unassigned = await TouchCardAsync(assignee: null);

        var (state, message) = await FunctionAsync(fixture.As("member"), "select public.complete_touch_card($1, 'call')", others);
        var ownDone = await Api.ScalarAsync(fixture.As("member"), "select public.complete_touch_card($1, 'call')", [own], commit: true);
        var unassignedDone = await Api.ScalarAsync(fixture.As("member"), "select public.dismiss_card($1, 'left the company')", [unassigned], commit: true);
        var managerDone = await Api.ScalarAsync(fixture.As("manager"), "select public.dismiss_card($1, 'duplicate')", [others], commit: true);

        Assert.Equal(Denied, state);
        Assert.Contains("work_any_card", message, StringComparison.Ordinal);
        Assert.True(ownDone.Succeeded && unassignedDone.Succeeded && managerDone.Succeeded, $"{ownDone}; {unassignedDone}; {managerDone}");
        Assert.Equal($"user:{fixture.UserId("member")}", await Db.ScalarAsync("select completed_by from public.cards where id = $1", own));
        Assert.Equal($"user:{fixture.UserId("manager")}", await Db.ScalarAsync("select completed_by from public.cards where id = $1", others));
    }

    [Fact]
    public async Task OptOut_MemberClearsIt_RefusedButMayRecordOne()
    {
        var optedOut = await Db.CreateContactAsync(A);
        await Db.ExecuteAsync("update public.contacts set opted_out_at = now() - interval '1 day' where id = $1", optedOut);
        var fresh = await Db.CreateContactAsync(A);

        var clear = await Api.ExecuteAsync(fixture.As("member"), "update public.contacts set opted_out_at = null where id = $1", [optedOut], commit: true);
        var record = await Api.ExecuteAsync(fixture.As("member"), "update public.contacts set opted_out_at = now(), do_not_contact = true where id = $1", [fresh], commit: true);

        Assert.Equal(Denied, clear.SqlState);
        Assert.NotNull(await Db.ScalarAsync("select opted_out_at from public.contacts where id = $1", optedOut));
        Assert.Equal(new Outcome<int>(1, null), record);
    }

    [Fact]
    public async Task Members_MemberMakesThemselfOwner_Refused()
    {
        var direct = await Api.ExecuteAsync(fixture.As("member"), "update public.tenant_members set role = 'owner' where user_id = $1", [fixture.UserId("member")], commit: true);
        var (function, message) = await FunctionAsync(fixture.As("member"), "select public.set_tenant_member($1, $2, 'owner')", A, fixture.UserId("member"));

        Assert.Equal(Denied, direct.SqlState);
        Assert.Equal(Denied, function);
        Assert.Contains("manage_members", message, StringComparison.Ordinal);
        Assert.Equal("member", await Db.ScalarAsync("select role from public.tenant_members where tenant_id = $1 and user_id = $2", A, fixture.UserId("member")));
    }

    [Fact]
    public async Task Members_AdminAddsAManagerButNotAnOwner()
    {
        var newcomer = Guid.NewGuid();

        var added = await Api.ScalarAsync(fixture.As("admin"), "select public.set_tenant_member($1, $2, 'manager')", [A, newcomer], commit: true);
        var (owner, message) = await FunctionAsync(fixture.As("admin"), "select public.set_tenant_member($1, $2, 'owner')", A, newcomer);
        var (unknown, unknownMessage) = await FunctionAsync(fixture.As("admin"), "select public.set_tenant_member($1, $2, 'emperor')", A, newcomer);

        Assert.Equal(new Outcome<object>("added", null), added);
        Assert.Equal(Denied, owner);
        Assert.Contains("only an owner", message, StringComparison.Ordinal);
        Assert.Equal("22023", unknown);
        Assert.Contains("viewer", unknownMessage, StringComparison.Ordinal);
        Assert.Equal("manager", await Db.ScalarAsync("select role from public.tenant_members where tenant_id = $1 and user_id = $2", A, newcomer));
    }

    [Fact]
    public async Task Members_LastOwnerCannotLeave_ButCanHandOver()
    {
        var tenant = await Db.CreateTenantAsync("Handover");
        var owner = await Db.AddMemberAsync(tenant, role: "owner");
        var next = Guid.NewGuid();

        var (leave, _) = await FunctionAsync(Principal.User(owner), "select public.remove_tenant_member($1, $2)", tenant, owner);
        var promoted = await Api.ScalarAsync(Principal.User(owner), "select public.set_tenant_member($1, $2, 'owner')", [tenant, next], commit: true);
        var left = await Api.ScalarAsync(Principal.User(owner), "select public.remove_tenant_member($1, $2)", [tenant, owner], commit: true);

        Assert.Equal("55000", leave);
        Assert.Equal(new Outcome<object>("added", null), promoted);
        Assert.Equal(new Outcome<object>(true, null), left);
        Assert.Equal(next, await Db.ScalarAsync("select user_id from public.tenant_members where tenant_id = $1 and role = 'owner'", tenant));
    }

    [Fact]
    public async Task Roles_HostRoleName_WorksThroughItsCapabilities()
    {
        var tenant = await Db.CreateTenantAsync("Host roles");
        await Db.ExecuteAsync("insert into public.tenant_roles (tenant_id, role, capabilities) values ($1, 'Sales Rep', '{read,record_touches}')", tenant);
        var rep = await Db.AddMemberAsync(tenant, role: "Sales Rep");
        var contact = await Db.CreateContactAsync(tenant);

        var touch = await Api.ScalarAsync(Principal.User(rep), "select public.update_engagement_clock($1, 'contact', $2, 'call')", [tenant, contact], commit: true);
        var edit = await Api.ExecuteAsync(Principal.User(rep), "update public.contacts set name = 'Renamed' where id = $1", [contact], commit: true);

        Assert.True(touch.Succeeded, touch.ToString());
        // No edit_crm: the update finds no row it may write.
        Assert.Equal(new Outcome<int>(0, null), edit);
        Assert.Equal("Pat Doe", await Db.ScalarAsync("select name from public.contacts where id = $1", contact));
    }

    [Fact]
    public async Task Roles_NobodyMintsARoleAboveTheirOwn()
    {
        var tenant = await Db.CreateTenantAsync("Role limits");
        await Db.ExecuteAsync("insert into public.tenant_roles (tenant_id, role, capabilities) values ($1, 'team_lead', '{read,manage_members}')", tenant);
        var lead = await Db.AddMemberAsync(tenant, role: "team_lead");

        var (above, message) = await FunctionAsync(Principal.User(lead), "select public.set_tenant_role($1, 'approver', '{read,approve}')", tenant);
        var (unknown, _) = await FunctionAsync(Principal.User(lead), "select public.set_tenant_role($1, 'x', '{read,fly}')", tenant);
        var within = await Api.ScalarAsync(Principal.User(lead), "select public.set_tenant_role($1, 'helper', '{manage_members}')", [tenant], commit: true);

        Assert.Equal(Denied, above);
        Assert.Contains("capabilities you do not have", message, StringComparison.Ordinal);
        Assert.Equal("22023", unknown);
        Assert.Equal(new Outcome<object>("added", null), within);
        Assert.Equal(new[] { "manage_members", "read" },
            (string[])(await Db.ScalarAsync("select capabilities from public.tenant_roles where tenant_id = $1 and role = 'helper'", tenant))!);
    }

    private async Task<Guid> OpenApprovalAsync(Guid? tenant = null) =>
        (Guid)(await Db.ScalarAsync("""
            insert into public.cards (tenant_id, kind, title, payload, due_at)
            values ($1, 'approval', 'Send the renewal email', jsonb_build_object('action_key', gen_random_uuid()::text), now() + interval '1 day')
            returning id
            """, tenant ?? A))!;

    private async Task<Guid> TouchCardAsync(Guid? assignee)
    {
        var contact = await Db.CreateContactAsync(A);
        return (Guid)(await Db.ScalarAsync(
            "insert into public.cards (tenant_id, kind, title, entity_type, entity_id, assignee_user_id) values ($1, 'touch_task', 'Call', 'contact', $2, $3) returning id",
            A, contact, assignee))!;
    }

    private async Task<(Guid Order, Guid Queue)> QueuedOrderAsync()
    {
        var account = await Db.CreateAccountAsync(A);
        var order = (Guid)(await Db.ScalarAsync("insert into public.orders (tenant_id, account_id, status) values ($1, $2, 'placed') returning id", A, account))!;
        var queue = (Guid)(await Db.ScalarAsync("select id from public.order_processing_queue where order_id = $1", order))!;
        // As the processor would leave it (its verdicts are its own to write: see DerivedColumnTests).
        await Db.ExecuteAsProductAsync("update public.order_processing_queue set status = 'exception', credit_status = 'failed' where id = $1", queue);
        return (order, queue);
    }

    private async Task<Guid> OpenExceptionAsync()
    {
        var (order, queue) = await QueuedOrderAsync();
        return (Guid)(await Db.ScalarAsync(
            "insert into public.order_processing_exceptions (tenant_id, queue_id, order_id, exception_type) values ($1, $2, $3, 'credit_hold') returning id",
            A, queue, order))!;
    }

    // A function call that is expected to fail: its SQLSTATE and message.
    private async Task<(string? SqlState, string Message)> FunctionAsync(Principal who, string sql, params object?[] parameters)
    {
        await using var connection = await Tenants.DataSource.OpenConnectionAsync();
        await using var transaction = await who.BeginAsync(connection);
        try
        {
            await TestDb.ScalarAsync(connection, transaction, sql, parameters);
            return (null, "");
        }
        catch (Npgsql.PostgresException ex)
        {
            return (ex.SqlState, ex.MessageText);
        }
    }
}
