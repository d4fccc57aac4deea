using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// Tenant isolation for a signed-in user, table by table: uA (member of A only) against B's rows, as the API runs
/// uA's requests. Every refusal is checked against the grants, and every "nothing changed" as the superuser.
/// </summary>
public sealed class UserTableIsolationTests(TwoTenantFixture fixture) : IClassFixture<TwoTenantFixture>
{
    private const string Denied = IsolationAssert.Denied;

    private TenantSide A => fixture.A;

    private TenantSide B => fixture.B;

    private SampleRowFactory Rows => fixture.Rows;

    private ApiCalls Api => fixture.Api;

    public static TheoryData<string> Tables => TwoTenantFixture.Tables;

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Select_UserWithoutTenantFilter_ReturnsOnlyOwnTenantRows(string table)
    {
        var own = await Rows.CountAsync(table, A.TenantId);
        var all = await Rows.CountAsync(table);
        Assert.True(own >= 1 && all > own, $"{table}: A has {own} of {all} rows; the test needs rows on both sides");

        var outcome = await Api.SelectAllTenantIdsAsync(A.User, table);

        Assert.True(outcome.Succeeded, $"{table}: select * as uA {outcome}");
        Assert.Equal(own, outcome.Result!.Count);
        Assert.All(outcome.Result, tenant => Assert.Equal(A.TenantId, tenant));
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Select_UserOtherTenantRowByKey_ReturnsNothing(string table)
    {
        var row = B.Rows[table];

        var asIntruder = await Api.ScalarAsync(A.User, row.CountSql, row.KeyValues);
        var asOwner = await Api.ScalarAsync(B.User, row.CountSql, row.KeyValues);

        Assert.Equal(new Outcome<object>(0L, null), asIntruder);
        // The same query finds the row for its own tenant's user: it is RLS, not the query, that hid it.
        Assert.Equal(new Outcome<object>(1L, null), asOwner);
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Update_UserOnOtherTenantRow_NoRowsOrDeniedAndRowUnchanged(string table)
    {
        var row = B.Rows[table];
        var before = await Rows.SnapshotAsync(row);

        var outcome = await Api.ExecuteAsync(A.User, row.UpdateSql, row.KeyValues, commit: true);

        await IsolationAssert.RowsOrDeniedAsync(fixture, "authenticated", table, "UPDATE", outcome, rowsWhenGranted: 0);
        Assert.NotNull(before);
        Assert.Equal(before, await Rows.SnapshotAsync(row));
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Update_UserOnOwnRow_OneRowWhereGrantedElseDenied(string table)
    {
        var row = A.Rows[table];

        var outcome = await Api.ExecuteAsync(A.User, row.UpdateSql, row.KeyValues);

        // The positive control of the test above: the same statement does reach a row uA may see.
        await IsolationAssert.RowsOrDeniedAsync(fixture, "authenticated", table, "UPDATE", outcome, rowsWhenGranted: 1);
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Delete_UserOnOtherTenantRow_NoRowsOrDeniedAndRowKept(string table)
    {
        var row = B.Rows[table];
        var before = await Rows.SnapshotAsync(row);

        var outcome = await Api.ExecuteAsync(A.User, row.DeleteSql, row.KeyValues, commit: true);

        await IsolationAssert.RowsOrDeniedAsync(fixture, "authenticated", table, "DELETE", outcome, rowsWhenGranted: 0);
        Assert.NotNull(before);
        Assert.Equal(before, await Rows.SnapshotAsync(row));
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Delete_UserOnOwnRow_OneRowWhereGrantedElseDenied(string table)
    {
        var row = A.Rows[table];

        var outcome = await Api.ExecuteAsync(A.User, row.DeleteSql, row.KeyValues);

        await IsolationAssert.RowsOrDeniedAsync(fixture, "authenticated", table, "DELETE", outcome, rowsWhenGranted: 1);
        Assert.NotNull(await Rows.SnapshotAsync(row));
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Insert_UserForOtherTenant_DeniedAndNoRowWritten(string table)
    {
        var insert = await Rows.PrepareAsync(table, B.TenantId);

        var outcome = await Api.ExecuteAsync(A.User, insert.Sql, insert.Parameters, commit: true);

        // 42501 either way: "permission denied for table" without INSERT, "new row violates row-level security
        // policy" (WITH CHECK) with it.
        Assert.True(outcome.SqlState == Denied, $"{table}: insert for B as uA {outcome}");
        Assert.Null(await Rows.SnapshotAsync(insert.Row));
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Insert_UserForOwnTenant_SucceedsWhereGrantedElseDenied(string table)
    {
        var insert = await Rows.PrepareAsync(table, A.TenantId);

        var outcome = await Api.ExecuteAsync(A.User, insert.Sql, insert.Parameters);

        // The positive control of the test above: the same INSERT, for uA's own tenant, passes where granted.
        // (A tenants row is a new tenant uA does not belong to: users have no INSERT there.)
        await IsolationAssert.RowsOrDeniedAsync(fixture, "authenticated", table, "INSERT", outcome, rowsWhenGranted: 1);
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Update_UserMovesOwnRowToOtherTenant_RefusedAndRowStaysInOwnTenant(string table)
    {
        var row = A.Rows[table];
        var before = await Rows.SnapshotAsync(row);

        var outcome = await Api.ExecuteAsync(A.User, row.MoveToTenantSql, row.KeyThen(B.TenantId), commit: true);

        // 42501 (no UPDATE, or WITH CHECK refuses the new row) or 23503 (a composite foreign key refuses it).
        Assert.True(outcome.SqlState is Denied or PostgresErrorCodes.ForeignKeyViolation, $"{table}: moving A's row to B as uA {outcome}");
        Assert.NotNull(before);
        Assert.Equal(before, await Rows.SnapshotAsync(row));
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Truncate_User_DeniedAndOtherTenantRowsKept(string table)
    {
        var before = await fixture.DigestAsync(B.TenantId);

        // TRUNCATE ignores row-level security: only the missing privilege stands between a user and every tenant's rows.
        var outcome = await Api.ExecuteAsync(A.User, $"truncate {SampleRow.Qualified(table)} cascade", [], commit: true);

        Assert.True(outcome.SqlState == Denied, $"{table}: truncate as uA {outcome}");
        Assert.Equal(before, await fixture.DigestAsync(B.TenantId));
    }

    [Fact]
    public async Task Insert_UserMakesSelfMemberOfOtherTenant_DeniedAndStillSeesOnlyOwnTenant()
    {
        var outcome = await Api.ExecuteAsync(A.User,
            "insert into public.tenant_members (tenant_id, user_id, role) values ($1, $2, 'owner')", [B.TenantId, A.UserId], commit: true);

        Assert.Equal(Denied, outcome.SqlState);
        Assert.Equal(0L, await fixture.Db.ScalarAsync(
            "select count(*) from public.tenant_members where tenant_id = $1 and user_id = $2", B.TenantId, A.UserId));
        var visible = await Api.SelectAllTenantIdsAsync(A.User, "tenants");
        Assert.Equal([A.TenantId], visible.Result!);
    }

    [Fact]
    public async Task Session_NextTransactionOnSameConnection_DoesNotInheritPreviousUser()
    {
        await using var connection = await fixture.DataSource.OpenConnectionAsync();
        await using (var asA = await DbSession.BeginAsUserAsync(connection, A.UserId))
        {
            Assert.Equal(A.TenantId, await TestDb.ScalarAsync(connection, asA, "select id from public.tenants"));
            await asA.CommitAsync();
        }

        // set_config(…, true) lasts for the transaction: a pooled connection handed to the next request carries
        // neither uA's role nor uA's claims.
        await using (var asB = await DbSession.BeginAsUserAsync(connection, B.UserId))
        {
            Assert.Equal(B.TenantId, await TestDb.ScalarAsync(connection, asB, "select id from public.tenants"));
            await asB.CommitAsync();
        }

        Assert.Equal("", await TestDb.ScalarAsync(connection, null, "select coalesce(current_setting('request.jwt.claims', true), '')"));
        Assert.Equal(await TestDb.ScalarAsync(connection, null, "select session_user::text"), await TestDb.ScalarAsync(connection, null, "select current_user::text"));
    }
}
