using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>The two acceptable refusals of a write, told apart by the grants.</summary>
internal static class IsolationAssert
{
    public const string Denied = PostgresErrorCodes.InsufficientPrivilege;

    /// <summary>
    /// With the privilege, the statement must run and touch exactly <paramref name="rowsWhenGranted"/> rows (row-level
    /// security filtered it); without it, it must fail with 42501. Either way it is the grants that say which.
    /// </summary>
    public static async Task RowsOrDeniedAsync(
        TwoTenantFixture fixture, string role, string table, string privilege, Outcome<int> outcome, int rowsWhenGranted)
    {
        // An INSERT may be granted on some columns only (success_strategies): the sample rows insert only those.
        var granted = privilege == "INSERT"
            ? (bool)(await fixture.Db.ScalarAsync("select has_any_column_privilege($1, $2, 'INSERT')", role, SampleRow.Qualified(table)))!
            : await fixture.HasTablePrivilegeAsync(role, table, privilege);
        if (granted)
        {
            Assert.True(outcome.Succeeded, $"{role} holds {privilege} on {table}, so the statement should run; it {outcome}");
            Assert.Equal(rowsWhenGranted, outcome.Result);
        }
        else
        {
            Assert.True(outcome.SqlState == Denied, $"{role} lacks {privilege} on {table}, so 42501 was expected; the statement {outcome}");
        }
    }
}
