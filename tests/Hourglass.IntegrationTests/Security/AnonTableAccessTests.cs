namespace Hourglass.IntegrationTests.Security;

/// <summary>The anonymous API role, table by table: it reads nothing and writes nothing, whoever's rows they are.</summary>
public sealed class AnonTableAccessTests(TwoTenantFixture fixture) : IClassFixture<TwoTenantFixture>
{
    private const string Denied = IsolationAssert.Denied;

    private SampleRowFactory Rows => fixture.Rows;

    private ApiCalls Api => fixture.Api;

    public static TheoryData<string> Tables => TwoTenantFixture.Tables;

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Select_AnonWithoutFilter_EmptyWhereGrantedElseDenied(string table)
    {
        Assert.True(await Rows.CountAsync(table) >= 2, $"{table}: the test needs rows to hide");

        var outcome = await Api.SelectAllTenantIdsAsync(Principal.Anon, table);

        if (await fixture.HasTablePrivilegeAsync("anon", table, "SELECT"))
        {
            Assert.True(outcome.Succeeded, $"{table}: anon holds SELECT, so the query should run; it {outcome}");
            Assert.Empty(outcome.Result!);
        }
        else
        {
            Assert.True(outcome.SqlState == Denied, $"{table}: anon lacks SELECT, so 42501 was expected; the query {outcome}");
        }
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Insert_Anon_DeniedAndNoRowWritten(string table)
    {
        var insert = await Rows.PrepareAsync(table, fixture.A.TenantId);

        var outcome = await Api.ExecuteAsync(Principal.Anon, insert.Sql, insert.Parameters, commit: true);

        // No policy admits anon, so even with INSERT the WITH CHECK default (deny) gives 42501.
        Assert.True(outcome.SqlState == Denied, $"{table}: insert as anon {outcome}");
        Assert.Null(await Rows.SnapshotAsync(insert.Row));
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Update_Anon_NoRowsOrDeniedAndRowUnchanged(string table)
    {
        var row = fixture.A.Rows[table];
        var before = await Rows.SnapshotAsync(row);

        var outcome = await Api.ExecuteAsync(Principal.Anon, row.UpdateSql, row.KeyValues, commit: true);

        await IsolationAssert.RowsOrDeniedAsync(fixture, "anon", table, "UPDATE", outcome, rowsWhenGranted: 0);
        Assert.NotNull(before);
        Assert.Equal(before, await Rows.SnapshotAsync(row));
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Delete_Anon_NoRowsOrDeniedAndRowKept(string table)
    {
        var row = fixture.A.Rows[table];
        var before = await Rows.SnapshotAsync(row);

        var outcome = await Api.ExecuteAsync(Principal.Anon, row.DeleteSql, row.KeyValues, commit: true);

        await IsolationAssert.RowsOrDeniedAsync(fixture, "anon", table, "DELETE", outcome, rowsWhenGranted: 0);
        Assert.NotNull(before);
        Assert.Equal(before, await Rows.SnapshotAsync(row));
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Truncate_Anon_DeniedAndRowsKept(string table)
    {
        var before = await fixture.DigestAsync(fixture.A.TenantId);

        var outcome = await Api.ExecuteAsync(Principal.Anon, $"truncate {SampleRow.Qualified(table)} cascade", [], commit: true);

        Assert.True(outcome.SqlState == Denied, $"{table}: truncate as anon {outcome}");
        Assert.Equal(before, await fixture.DigestAsync(fixture.A.TenantId));
    }
}
