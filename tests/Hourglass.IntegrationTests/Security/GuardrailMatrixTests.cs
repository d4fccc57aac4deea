using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// The two tenants of <see cref="TwoTenantFixture"/>, and in tenant A one user for each default role besides A's admin:
/// the people the matrix is walked as.
/// </summary>
public sealed class GuardrailFixture : IAsyncLifetime
{
    public static readonly string[] Roles = ["viewer", "member", "controller", "manager", "admin"];

    private readonly Dictionary<string, Guid> _users = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string[]> _capabilities = new(StringComparer.Ordinal);

    public TwoTenantFixture Tenants { get; } = new();

    internal Principal As(string role) => Principal.User(_users[role]);

    internal Guid UserId(string role) => _users[role];

    internal bool Has(string role, string capability) => _capabilities[role].Contains(capability, StringComparer.Ordinal);

    public async Task InitializeAsync()
    {
        await Tenants.InitializeAsync();
        foreach (var role in Roles)
        {
            _users[role] = role == "admin" ? Tenants.A.UserId : await Tenants.Db.AddMemberAsync(Tenants.A.TenantId, role: role);
            _capabilities[role] = (string[])(await Tenants.Db.ScalarAsync(
                "select capabilities from public.tenant_roles where tenant_id = $1 and role = $2", Tenants.A.TenantId, role))!;
        }
    }

    public Task DisposeAsync() => Tenants.DisposeAsync();
}

/// <summary>
/// docs/schema.md's matrix of who may write what, held against the database: the grants and capability policies say
/// what the document says, and a member of each role going straight to the database (as Supabase's REST layer lets
/// them) can make exactly the writes the matrix and their role allow; every other write is refused or has no effect.
/// </summary>
public sealed class GuardrailMatrixTests(GuardrailFixture fixture) : IClassFixture<GuardrailFixture>
{
    private const string Denied = IsolationAssert.Denied;

    private static readonly string[] s_privileges = ["INSERT", "UPDATE", "DELETE"];

    private TwoTenantFixture Tenants => fixture.Tenants;

    public static TheoryData<string> Tables => TwoTenantFixture.Tables;

    public static TheoryData<string, string> TablesByRole
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var table in SchemaContract.AllTables)
            {
                foreach (var role in GuardrailFixture.Roles)
                {
                    data.Add(table, role);
                }
            }

            return data;
        }
    }

    [Fact]
    public void Matrix_HasOneRowForEveryTableOfTheSchema()
    {
        var documented = GuardrailMatrix.Rows.Keys.Order(StringComparer.Ordinal).ToArray();
        var tables = SchemaContract.AllTables.Order(StringComparer.Ordinal).ToArray();

        Assert.True(tables.SequenceEqual(documented),
            $"{GuardrailMatrix.DocumentPath}: the matrix must list every table of the schema, and only those. " +
            $"Missing: {string.Join(", ", tables.Except(documented))}; not tables: {string.Join(", ", documented.Except(tables))}");
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Grants_ForAuthenticated_AreWhatTheMatrixSays(string table)
    {
        var row = GuardrailMatrix.Rows[table];
        foreach (var privilege in s_privileges)
        {
            var write = row.Write(privilege);
            var tableLevel = await Tenants.HasTablePrivilegeAsync("authenticated", table, privilege);
            // DELETE has no column privileges: it is the whole row or nothing.
            var columns = privilege == "DELETE" ? [] : await ColumnsWithAsync("authenticated", table, privilege);
            if (!write.Allowed)
            {
                Assert.False(tableLevel, $"{table}: the matrix says no {privilege}, but authenticated holds it on the table");
                Assert.True(columns.Count == 0, $"{table}: the matrix says no {privilege}, but authenticated holds it on {string.Join(", ", columns)}");
            }
            else if (write.Columns is null)
            {
                Assert.True(tableLevel, $"{table}: the matrix says {privilege} is allowed, but authenticated lacks it");
            }
            else
            {
                Assert.False(tableLevel, $"{table}: the matrix limits {privilege} to columns, but authenticated holds it on the whole table");
                Assert.Equal(write.Columns.Order(StringComparer.Ordinal), columns.Order(StringComparer.Ordinal));
            }
        }

        Assert.False(await Tenants.HasTablePrivilegeAsync("authenticated", table, "TRUNCATE"), $"{table}: authenticated may truncate");
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task CapabilityPolicies_AreWhatTheMatrixSays(string table)
    {
        var row = GuardrailMatrix.Rows[table];
        var policies = (string[]?)await Tenants.Db.ScalarAsync("""
            select array_agg(policyname || ':' || cmd || ':' || coalesce(qual, '') || coalesce(with_check, '') order by policyname)
            from pg_policies where schemaname = 'public' and tablename = $1 and permissive = 'RESTRICTIVE'
            """, table) ?? [];

        if (row.Capability is null)
        {
            Assert.Empty(policies);
            return;
        }

        // One restrictive policy per write command, each naming the capability.
        Assert.Equal(["capability_delete:DELETE", "capability_insert:INSERT", "capability_update:UPDATE"], policies.Select(p => string.Join(':', p.Split(':')[..2])));
        Assert.All(policies, policy => Assert.Contains($"tenant_ids_with('{row.Capability}'", policy, StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(TablesByRole))]
    public async Task Insert_AsRoleOnOwnTenant_AllowedExactlyWhereMatrixAndRoleSay(string table, string role)
    {
        var row = GuardrailMatrix.Rows[table];
        var insert = await Tenants.Rows.PrepareAsync(table, Tenants.A.TenantId);

        var outcome = await Tenants.Api.ExecuteAsync(fixture.As(role), insert.Sql, insert.Parameters, commit: !Expected(row, row.Insert, role));

        if (Expected(row, row.Insert, role))
        {
            Assert.True(outcome is { Succeeded: true, Result: 1 }, $"{table}: insert as {role} should succeed; it {outcome}");
        }
        else
        {
            Assert.True(outcome.SqlState == Denied, $"{table}: insert as {role} should be refused with 42501; it {outcome}");
            Assert.Null(await Tenants.Rows.SnapshotAsync(insert.Row));
        }
    }

    [Theory]
    [MemberData(nameof(TablesByRole))]
    public async Task Update_AsRoleOnOwnTenant_AllowedExactlyWhereMatrixAndRoleSay(string table, string role)
    {
        var row = GuardrailMatrix.Rows[table];
        var sample = await Tenants.Rows.CreateAsync(table, Tenants.A.TenantId);
        // A column the grant names where it names columns (set to itself: the write, not the value, is under test).
        var sql = row.Update.Columns is { } columns
            ? $"update {sample.QualifiedTable} set {columns[^1]} = {columns[^1]} where {sample.KeyPredicate}"
            : sample.UpdateSql;
        var before = await Tenants.Rows.SnapshotAsync(sample);

        var outcome = await Tenants.Api.ExecuteAsync(fixture.As(role), sql, sample.KeyValues, commit: !Expected(row, row.Update, role));

        await AssertWriteAsync(table, "update", role, Expected(row, row.Update, role), outcome, sample, before);
        if (row.Update.Columns is not null)
        {
            // Outside the named columns nobody writes, whatever their role (here: a derived column, the row's age).
            var other = await Tenants.Api.ExecuteAsync(fixture.As(role), sample.UpdateSql, sample.KeyValues, commit: true);
            Assert.True(other.SqlState == Denied, $"{table}: created_at is not among the columns users update, yet as {role} it {other}");
            Assert.Equal(before, await Tenants.Rows.SnapshotAsync(sample));
        }
    }

    [Theory]
    [MemberData(nameof(TablesByRole))]
    public async Task Delete_AsRoleOnOwnTenant_AllowedExactlyWhereMatrixAndRoleSay(string table, string role)
    {
        var row = GuardrailMatrix.Rows[table];
        var sample = await Tenants.Rows.CreateAsync(table, Tenants.A.TenantId);
        var before = await Tenants.Rows.SnapshotAsync(sample);

        var outcome = await Tenants.Api.ExecuteAsync(fixture.As(role), sample.DeleteSql, sample.KeyValues, commit: !Expected(row, row.Delete, role));

        await AssertWriteAsync(table, "delete", role, Expected(row, row.Delete, role), outcome, sample, before);
    }

    // Allowed when the matrix allows the write and the role holds the capability it names (if any).
    private bool Expected(MatrixRow row, MatrixWrite write, string role) => write.Allowed && (row.Capability is null || fixture.Has(role, row.Capability));

    // Allowed: the statement reached the row (and was rolled back). Refused: 42501, or no row touched, and the row as it was.
    private async Task AssertWriteAsync(string table, string verb, string role, bool allowed, Outcome<int> outcome, SampleRow sample, string? before)
    {
        if (allowed)
        {
            Assert.True(outcome is { Succeeded: true, Result: 1 }, $"{table}: {verb} as {role} should reach the row; it {outcome}");
            return;
        }

        Assert.True(outcome.SqlState == Denied || outcome is { Succeeded: true, Result: 0 }, $"{table}: {verb} as {role} should be refused or touch nothing; it {outcome}");
        Assert.NotNull(before);
        Assert.Equal(before, await Tenants.Rows.SnapshotAsync(sample));
    }

    private async Task<IReadOnlyList<string>> ColumnsWithAsync(string role, string table, string privilege) =>
        (string[]?)await Tenants.Db.ScalarAsync("""
            select array_agg(a.attname::text order by a.attname) from pg_attribute a
            where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped and has_column_privilege($2, a.attrelid, a.attnum, $3)
            """, SampleRow.Qualified(table), role, privilege) ?? [];
}
