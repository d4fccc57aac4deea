namespace Hourglass.IntegrationTests.Security;

/// <summary>The service role (the worker's) reaches every tenant's rows: the control that the isolation above is not blindness.</summary>
public sealed class ServiceRoleTableAccessTests(TwoTenantFixture fixture) : IClassFixture<TwoTenantFixture>
{
    public static TheoryData<string> Tables => TwoTenantFixture.Tables;

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Select_ServiceRoleWithoutFilter_SeesBothTenants(string table)
    {
        var all = await fixture.Rows.CountAsync(table);

        var outcome = await fixture.Api.SelectAllTenantIdsAsync(Principal.ServiceRole, table);

        Assert.True(outcome.Succeeded, $"{table}: select * as service_role {outcome}");
        Assert.Equal(all, outcome.Result!.Count);
        Assert.Contains(fixture.A.TenantId, outcome.Result);
        Assert.Contains(fixture.B.TenantId, outcome.Result);
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Insert_ServiceRoleForEitherTenant_OneRowEach(string table)
    {
        foreach (var tenant in new[] { fixture.A.TenantId, fixture.B.TenantId })
        {
            var insert = await fixture.Rows.PrepareAsync(table, tenant);

            var outcome = await fixture.Api.ExecuteAsync(Principal.ServiceRole, insert.Sql, insert.Parameters);

            // Also proves each sample INSERT is valid SQL for a valid row, so the refusals elsewhere are refusals.
            Assert.Equal(new Outcome<int>(1, null), outcome);
        }
    }
}
