using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>One tenant's side of the fixture: the tenant, its only user, and its sample row of every table.</summary>
internal sealed record TenantSide(Guid TenantId, Guid UserId, IReadOnlyDictionary<string, SampleRow> Rows)
{
    public Principal User => Principal.User(UserId);
}

/// <summary>
/// A fresh migrated database holding tenants A and B, each with a row in every table of the schema contract;
/// user uA is an admin of A only and uB of B only. One per test class.
/// </summary>
public sealed class TwoTenantFixture : IAsyncLifetime
{
    private readonly DatabaseFixture _database = new();
    private TenantSide? _a;
    private TenantSide? _b;

    public NpgsqlDataSource DataSource => _database.DataSource;

    public TestDb Db => _database.Db;

    internal SampleRowFactory Rows => new(DataSource);

    internal ApiCalls Api => new(DataSource);

    internal TenantSide A => _a ?? throw new InvalidOperationException("fixture not initialised");

    internal TenantSide B => _b ?? throw new InvalidOperationException("fixture not initialised");

    public static TheoryData<string> Tables
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var table in SchemaContract.AllTables)
            {
                data.Add(table);
            }

            return data;
        }
    }

    public async Task InitializeAsync()
    {
        await _database.InitializeAsync();
        _a = await CreateSideAsync("Tenant A");
        _b = await CreateSideAsync("Tenant B");
    }

    public Task DisposeAsync() => _database.DisposeAsync();

    /// <summary>
    /// A digest of everything <paramref name="tenantId"/> owns, table by table, plus the database clock override;
    /// read as the superuser. Equal digests before and after an attempt mean the attempt wrote nothing there.
    /// </summary>
    internal async Task<IReadOnlyDictionary<string, string>> DigestAsync(Guid tenantId)
    {
        var digest = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var table in SchemaContract.AllTables)
        {
            digest[table] = (string)(await Db.ScalarAsync(
                $"select count(*) || ':' || coalesce(md5(string_agg(to_jsonb(t)::text, ',' order by to_jsonb(t)::text)), '') " +
                $"from {SampleRow.Qualified(table)} t where {SampleRow.TenantColumn(table)} = $1", tenantId))!;
        }

        digest["hourglass.clock_override"] = (string?)await Db.ScalarAsync(
            "select string_agg(to_jsonb(o)::text, ',') from hourglass.clock_override o") ?? "";
        return digest;
    }

    /// <summary>Whether <paramref name="role"/> holds <paramref name="privilege"/> on the table: what decides "denied" or "0 rows".</summary>
    internal async Task<bool> HasTablePrivilegeAsync(string role, string table, string privilege) =>
        (bool)(await Db.ScalarAsync("select has_table_privilege($1, $2, $3)", role, SampleRow.Qualified(table), privilege))!;

    private async Task<TenantSide> CreateSideAsync(string name)
    {
        var tenant = await Db.CreateTenantAsync(name);
        // An admin: every capability, so a write on the user's own tenant fails only where the grants forbid it, and the
        // isolation tests see tenant isolation alone. What each role may do is GuardrailMatrixTests' subject.
        var user = await Db.AddMemberAsync(tenant, role: "admin");
        var rows = new Dictionary<string, SampleRow>(StringComparer.Ordinal)
        {
            ["tenants"] = SampleRow.ById("tenants", tenant, tenant),
            ["tenant_members"] = new("tenant_members", tenant, "tenant_id = $1 and user_id = $2", [tenant, user]),
        };
        foreach (var table in SchemaContract.AllTables.Where(t => !rows.ContainsKey(t)))
        {
            rows[table] = await Rows.CreateAsync(table, tenant);
        }

        return new TenantSide(tenant, user, rows);
    }
}
