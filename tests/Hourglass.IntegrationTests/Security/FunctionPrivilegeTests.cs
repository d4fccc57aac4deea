using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// Who may call the seed's and the leases' functions and the clock override, and for which tenant. A refusal is 42501,
/// from "permission denied for function" or from the function's own tenant check, and leaves everything as it was.
/// </summary>
public sealed class FunctionPrivilegeTests(TwoTenantFixture fixture) : IClassFixture<TwoTenantFixture>
{
    private const string Denied = IsolationAssert.Denied;
    private const string FreezeTime = "hourglass.freeze_time(timestamptz)";
    private const string ThawTime = "hourglass.thaw_time()";
    private static readonly DateTimeOffset s_farFuture = new(2099, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>What a call needs of the tenant it acts for: its sample contact, sample lock and an open touch card.</summary>
    private sealed record Target(
        Guid TenantId, Guid ContactId, string LockType, long LockToken, Guid TouchCardId, Guid ApprovalCardId, Guid ExceptionId, Guid OrderId, Guid UserId);

    /// <summary>
    /// A call of one function for a target, and what a successful call returns. A call for another tenant's data is
    /// refused with <c>OtherTenantState</c>: insufficient privilege where the tenant is an argument, "not found"
    /// where only the row's id is (complete_touch_card: under RLS the card does not exist for the caller).
    /// </summary>
    private sealed record Call(string Sql, Func<Target, object?[]> Arguments, Func<object?, bool> IsSuccessResult, string OtherTenantState = Denied);

    private static readonly Dictionary<string, Call> s_calls = new(StringComparer.Ordinal)
    {
        ["public.acquire_tenant_lock(uuid, text, text, integer)"] = new(
            "select public.acquire_tenant_lock($1, 'security-probe', $2, 5)", t => [t.TenantId, $"probe-{Guid.NewGuid():N}"], r => r is true),
        ["public.release_tenant_lock(uuid, text)"] = new(
            "select public.release_tenant_lock($1, $2)", t => [t.TenantId, SampleRowFactory.LockHolder], r => r is true),
        ["public.update_engagement_clock(uuid, text, uuid, text, text, uuid)"] = new(
            "select public.update_engagement_clock($1, 'contact', $2, 'call')", t => [t.TenantId, t.ContactId], r => r is Guid),
        ["public.refresh_engagement_compliance(uuid)"] = new(
            "select public.refresh_engagement_compliance($1)", t => [t.TenantId], r => r is int),
        ["public.acquire_tenant_lease(uuid, text, text, integer)"] = new(
            "select public.acquire_tenant_lease($1, 'security-probe', $2, 5)", t => [t.TenantId, $"probe-{Guid.NewGuid():N}"], r => r is long),
        ["public.renew_tenant_lock(uuid, text, bigint, text, integer)"] = new(
            "select public.renew_tenant_lock($1, $2, $3, $4, 30)", t => [t.TenantId, SampleRowFactory.LockHolder, t.LockToken, t.LockType], r => r is true),
        ["public.is_lock_token_current(uuid, bigint, text)"] = new(
            "select public.is_lock_token_current($1, $2, $3)", t => [t.TenantId, t.LockToken, t.LockType], r => r is true),
        ["public.assert_lock_token(uuid, bigint, text)"] = new(
            "select public.assert_lock_token($1, $2, $3)", t => [t.TenantId, t.LockToken, t.LockType], r => r is null),
        ["public.engagement_queue(uuid, integer)"] = new(
            "select count(*) from public.engagement_queue($1, 10)", t => [t.TenantId], r => r is long),
        ["public.complete_touch_card(uuid, text, text)"] = new(
            "select public.complete_touch_card($1, 'call', 'probe')", t => [t.TouchCardId], r => r is Guid, OtherTenantState: "P0002"),
        ["public.record_touches(uuid, jsonb, text)"] = new(
            "select count(*) filter (where outcome = 'recorded') from public.record_touches($1, jsonb_build_array(jsonb_build_object('entity_type', 'contact', 'entity_id', $2::uuid, 'touch_type', 'call')))",
            t => [t.TenantId, t.ContactId], r => r is 1L),
        ["public.engagement_movement(uuid, timestamp with time zone)"] = new(
            "select recovered from public.engagement_movement($1, now() - interval '1 day')", t => [t.TenantId], r => r is long),
        ["public.decide_approval(uuid, boolean, text, text)"] = new(
            "select public.decide_approval($1, true, 'probe')", t => [t.ApprovalCardId], r => r is "approved", OtherTenantState: "P0002"),
        ["public.policy_violation_trends(uuid, integer)"] = new(
            "select count(*) from public.policy_violation_trends($1, 30)", t => [t.TenantId], r => r is long),
        ["public.review_order_exception(uuid, text)"] = new(
            "select public.review_order_exception($1)", t => [t.ExceptionId], r => r is "in_review", OtherTenantState: "P0002"),
        ["public.resolve_order_exception(uuid, text, text, text)"] = new(
            "select public.resolve_order_exception($1, 'resolved', 'probe')", t => [t.ExceptionId], r => r is "resolved", OtherTenantState: "P0002"),
        ["public.override_order_credit(uuid, text, text)"] = new(
            "select public.override_order_credit($1, 'probe')", t => [t.OrderId], r => r is "overridden", OtherTenantState: "P0002"),
        ["public.attribute_strategy_outcomes(uuid)"] = new(
            "select judged from public.attribute_strategy_outcomes($1)", t => [t.TenantId], r => r is long),
        ["public.ingest_events(uuid, jsonb, text)"] = new(
            "select count(*) filter (where outcome = 'recorded') from public.ingest_events($1, jsonb_build_array(jsonb_build_object('event_type', 'reply', 'entity_type', 'contact', 'entity_id', $2::uuid)))",
            t => [t.TenantId, t.ContactId], r => r is 1L),
        ["public.apply_retention(uuid, timestamp with time zone)"] = new(
            "select events_deleted from public.apply_retention($1)", t => [t.TenantId], r => r is long),
        ["public.dismiss_card(uuid, text)"] = new(
            "select public.dismiss_card($1, 'probe')", t => [t.TouchCardId], r => r is "dismissed", OtherTenantState: "P0002"),
        ["public.set_clock_frequency(uuid, text, uuid, integer)"] = new(
            "select public.set_clock_frequency($1, 'contact', $2, 14)", t => [t.TenantId, t.ContactId], r => r is 14),
        ["public.set_tenant_member(uuid, uuid, text)"] = new(
            "select public.set_tenant_member($1, $2, 'viewer')", t => [t.TenantId, Guid.NewGuid()], r => r is "added"),
        ["public.remove_tenant_member(uuid, uuid)"] = new(
            "select public.remove_tenant_member($1, $2)", t => [t.TenantId, t.UserId], r => r is true),
        ["public.set_tenant_role(uuid, text, text[], text)"] = new(
            "select public.set_tenant_role($1, 'probe_role', '{read,record_touches}')", t => [t.TenantId], r => r is "added"),
        // No member of either tenant is a viewer here.
        ["public.remove_tenant_role(uuid, text)"] = new(
            "select public.remove_tenant_role($1, 'viewer')", t => [t.TenantId], r => r is true),
        [FreezeTime] = new("select hourglass.freeze_time($1)", _ => [s_farFuture], r => r is DateTime),
        [ThawTime] = new("select hourglass.thaw_time()", _ => [], r => r is null),
    };

    private static IEnumerable<string> AllFunctions =>
        SchemaContract.ApiFunctions.Append(FreezeTime).Append(ThawTime);

    public static TheoryData<string> Functions
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var function in AllFunctions)
            {
                data.Add(function);
            }

            return data;
        }
    }

    public static TheoryData<string, string> FunctionsForEitherTenant
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var function in AllFunctions)
            {
                data.Add(function, "A");
                data.Add(function, "B");
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Functions))]
    public async Task Call_UserForOtherTenant_DeniedAndNothingWritten(string function)
    {
        var call = s_calls[function];
        var target = await TargetAsync(fixture.B);
        var before = await fixture.DigestAsync(fixture.B.TenantId);

        var outcome = await fixture.Api.ScalarAsync(fixture.A.User, call.Sql, call.Arguments(target), commit: true);

        Assert.True(outcome.SqlState == call.OtherTenantState, $"{function} for B as uA {outcome}");
        Assert.Equal(before, await fixture.DigestAsync(fixture.B.TenantId));
    }

    [Theory]
    [MemberData(nameof(Functions))]
    public async Task Call_Anon_DeniedAndNothingWritten(string function)
    {
        var call = s_calls[function];
        var target = await TargetAsync(fixture.A);
        var before = await fixture.DigestAsync(fixture.A.TenantId);

        var outcome = await fixture.Api.ScalarAsync(Principal.Anon, call.Sql, call.Arguments(target), commit: true);

        Assert.True(outcome.SqlState == Denied, $"{function} as anon {outcome}");
        Assert.Equal(before, await fixture.DigestAsync(fixture.A.TenantId));
    }

    [Theory]
    [MemberData(nameof(FunctionsForEitherTenant))]
    public async Task Call_ServiceRoleForEitherTenant_Succeeds(string function, string tenant)
    {
        var call = s_calls[function];
        var target = await TargetAsync(tenant == "A" ? fixture.A : fixture.B);

        // Rolled back: the control only has to show the call is allowed and works.
        var outcome = await fixture.Api.ScalarAsync(Principal.ServiceRole, call.Sql, call.Arguments(target));

        Assert.True(outcome.Succeeded, $"{function} for {tenant} as service_role {outcome}");
        Assert.True(call.IsSuccessResult(outcome.Result), $"{function} for {tenant} as service_role returned {outcome.Result ?? "null"}");
    }

    [Fact]
    public async Task UpdateEngagementClock_UserForOwnTenant_CreatesClockInOwnTenant()
    {
        var contact = await fixture.Rows.CreateAsync("contacts", fixture.A.TenantId);

        var outcome = await fixture.Api.ScalarAsync(fixture.A.User,
            "select public.update_engagement_clock($1, 'contact', $2, 'call', 'uA')", [fixture.A.TenantId, contact.Id], commit: true);

        Assert.True(outcome.Result is Guid, $"update_engagement_clock for A as uA {outcome}");
        // Who touched is the signed-in user, whatever p_touch_by says.
        Assert.Equal($"1:user:{fixture.A.UserId}", await fixture.Db.ScalarAsync(
            "select touch_count || ':' || last_touch_by from public.engagement_clocks where id = $1 and tenant_id = $2 and entity_id = $3",
            outcome.Result, fixture.A.TenantId, contact.Id));
    }

    [Fact]
    public async Task UpdateEngagementClock_UserForOwnTenantWithOtherTenantsContact_RefusedAndNoClock()
    {
        var contactOfB = fixture.B.Rows["contacts"].Id;

        var outcome = await fixture.Api.ScalarAsync(fixture.A.User,
            "select public.update_engagement_clock($1, 'contact', $2, 'call')", [fixture.A.TenantId, contactOfB], commit: true);

        Assert.Equal(PostgresErrorCodes.ForeignKeyViolation, outcome.SqlState);
        Assert.Equal(0L, await fixture.Db.ScalarAsync(
            "select count(*) from public.engagement_clocks where tenant_id = $1 and entity_id = $2", fixture.A.TenantId, contactOfB));
    }

    [Fact]
    public async Task RefreshEngagementCompliance_UserForOwnTenant_UpdatesOwnOverdueClockOnly()
    {
        var overdueA = await CreateOverdueClockAsync(fixture.A.TenantId);
        var overdueB = await CreateOverdueClockAsync(fixture.B.TenantId);

        var outcome = await fixture.Api.ScalarAsync(fixture.A.User,
            "select public.refresh_engagement_compliance($1)", [fixture.A.TenantId], commit: true);

        Assert.True(outcome.Result is >= 1, $"refresh_engagement_compliance for A as uA {outcome}");
        Assert.Equal("overdue:5", await ComplianceAsync(overdueA));
        Assert.Equal("compliant:0", await ComplianceAsync(overdueB));
    }

    [Fact]
    public async Task FreezeTime_User_DeniedAndClockUnmoved()
    {
        var outcome = await fixture.Api.ScalarAsync(fixture.A.User, "select hourglass.freeze_time($1)", [s_farFuture], commit: true);

        Assert.Equal(Denied, outcome.SqlState);
        Assert.Equal(0L, await fixture.Db.ScalarAsync("select count(*) from hourglass.clock_override"));
        // uA can read the clock, and it is still the real one (hourglass.now() = now(), the transaction's start).
        Assert.Equal(new Outcome<object>(true, null), await fixture.Api.ScalarAsync(fixture.A.User, "select hourglass.now() = pg_catalog.now()", []));
    }

    [Fact]
    public async Task ThawTime_UserWhileClockFrozen_DeniedAndOverrideKept()
    {
        var frozenAt = new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
        await fixture.Db.FreezeTimeAsync(frozenAt);
        try
        {
            var outcome = await fixture.Api.ScalarAsync(fixture.A.User, "select hourglass.thaw_time()", [], commit: true);

            Assert.Equal(Denied, outcome.SqlState);
            var seenByUser = await fixture.Api.ScalarAsync(fixture.A.User, "select hourglass.now()", []);
            Assert.Equal(frozenAt, new DateTimeOffset((DateTime)seenByUser.Result!));
        }
        finally
        {
            await fixture.Db.ExecuteAsync("select hourglass.thaw_time()");
        }
    }

    [Fact]
    public async Task HourglassOverrideTable_User_DeniedWriteAndRead()
    {
        var write = await fixture.Api.ExecuteAsync(fixture.A.User,
            "insert into hourglass.clock_override (frozen_at) values ($1)", [s_farFuture], commit: true);
        var read = await fixture.Api.ScalarAsync(fixture.A.User, "select count(*) from hourglass.clock_override", []);

        // The override is reachable only through freeze_time: not by writing its table directly.
        Assert.Equal(Denied, write.SqlState);
        Assert.Equal(Denied, read.SqlState);
        Assert.Equal(0L, await fixture.Db.ScalarAsync("select count(*) from hourglass.clock_override"));
    }

    private async Task<Target> TargetAsync(TenantSide side)
    {
        var lockRow = side.Rows["agent_tenant_locks"];
        var token = (long)(await fixture.Db.ScalarAsync(
            $"select lock_token from public.agent_tenant_locks where {lockRow.KeyPredicate}", lockRow.KeyValues))!;
        var card = (Guid)(await fixture.Db.ScalarAsync("""
            with opened as (
              insert into public.cards (tenant_id, kind, title, entity_type, entity_id) values ($1, 'touch_task', 'probe', 'contact', $2)
              on conflict (tenant_id, entity_type, entity_id) where kind = 'touch_task' and status = 'open' do nothing
              returning id)
            select id from opened
            union all
            select id from public.cards where tenant_id = $1 and kind = 'touch_task' and status = 'open' and entity_type = 'contact' and entity_id = $2
            limit 1
            """, side.TenantId, side.Rows["contacts"].Id))!;
        var approval = (Guid)(await fixture.Db.ScalarAsync("""
            with opened as (
              insert into public.cards (tenant_id, kind, title, entity_type, entity_id, due_at, payload)
              values ($1, 'approval', 'probe', 'contact', $2, now() + interval '1 day', '{"action_key": "probe-approval"}')
              on conflict (tenant_id, (payload ->> 'action_key')) where kind = 'approval' and status = 'open' do nothing
              returning id)
            select id from opened
            union all
            select id from public.cards where tenant_id = $1 and kind = 'approval' and status = 'open' and payload ->> 'action_key' = 'probe-approval'
            limit 1
            """, side.TenantId, side.Rows["contacts"].Id))!;
        var exception = side.Rows["order_processing_exceptions"].Id;
        await fixture.Db.ExecuteAsync("update public.order_processing_exceptions set resolution_status = 'open', resolved_at = null where id = $1", exception);
        // The processor's verdict for the entry, as a fixture: written directly, a verdict is refused (docs/schema.md).
        await fixture.Db.ExecuteAsProductAsync(
            "update public.order_processing_queue set status = 'exception' where id = (select queue_id from public.order_processing_exceptions where id = $1)",
            exception);
        var order = (Guid)(await fixture.Db.ScalarAsync(
            "select order_id from public.order_processing_queue where id = (select queue_id from public.order_processing_exceptions where id = $1)",
            exception))!;
        return new Target(side.TenantId, side.Rows["contacts"].Id, (string)lockRow.KeyValues[1], token, card, approval, exception, order, side.UserId);
    }

    private async Task<Guid> CreateOverdueClockAsync(Guid tenantId)
    {
        var contact = await fixture.Rows.CreateAsync("contacts", tenantId);
        // The contact's clock exists from its creation; make it overdue (a fixture: the due date is derived).
        await fixture.Db.ExecuteAsProductAsync(
            "update public.engagement_clocks set next_touch_due = now() - interval '5 days 1 hour' " +
            "where tenant_id = $1 and entity_type = 'contact' and entity_id = $2", tenantId, contact.Id);
        return (Guid)(await fixture.Db.ScalarAsync(
            "select id from public.engagement_clocks where tenant_id = $1 and entity_type = 'contact' and entity_id = $2", tenantId, contact.Id))!;
    }

    private async Task<string?> ComplianceAsync(Guid clockId) =>
        (string?)await fixture.Db.ScalarAsync(
            "select compliance_status || ':' || days_overdue from public.engagement_clocks where id = $1", clockId);
}
