using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// Two databases migrated by the same files: a plain one, and one that first gets the default privileges a Supabase
/// project's <c>postgres</c> role has in schema public (every new table, sequence and function: ALL to anon,
/// authenticated and service_role; see the project's pg_dump, "DEFAULT PRIVILEGES … Owner: postgres", and Supabase's
/// troubleshooting note "Tables and functions that you create get the default privileges of postgres").
/// </summary>
public sealed class SupabaseLikeDatabasesFixture : IAsyncLifetime
{
    private string? _plain;
    private string? _supabaseLike;

    public NpgsqlDataSource Plain { get; private set; } = null!;

    public NpgsqlDataSource SupabaseLike { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _plain = await TestServer.CreateDatabaseAsync();
        Plain = NpgsqlDataSource.Create(_plain);

        _supabaseLike = await TestServer.CreateDatabaseAsync(migrated: false);
        SupabaseLike = NpgsqlDataSource.Create(_supabaseLike);
        await using (var command = SupabaseLike.CreateCommand("""
            alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
            alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
            alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
            """))
        {
            await command.ExecuteNonQueryAsync();
        }

        await new Migrator(SupabaseLike).MigrateAsync(MigrationSource.Embedded());
    }

    public async Task DisposeAsync()
    {
        foreach (var (dataSource, connectionString) in new[] { (Plain, _plain), (SupabaseLike, _supabaseLike) })
        {
            if (dataSource is not null)
            {
                await dataSource.DisposeAsync();
            }

            if (connectionString is not null)
            {
                await TestServer.DropDatabaseAsync(connectionString);
            }
        }
    }
}

/// <summary>
/// The migrations must give the API roles the same privileges on Supabase as on a plain server: a privilege they
/// inherit from Supabase's default ACL and do not revoke is one the plain-server tests never see. TRUNCATE matters
/// most, because row-level security does not apply to it.
/// </summary>
public sealed class SupabaseDefaultPrivilegesTests(SupabaseLikeDatabasesFixture fixture) : IClassFixture<SupabaseLikeDatabasesFixture>
{
    [Fact]
    public async Task Migrations_OnSupabaseDefaultPrivileges_ApiRolesGetNoMoreThanOnPlainServer()
    {
        var plain = await ApiRolePrivilegesAsync(fixture.Plain);
        var supabaseLike = await ApiRolePrivilegesAsync(fixture.SupabaseLike);

        Assert.Contains("authenticated SELECT public.engagement_clocks", plain);
        var extra = supabaseLike.Except(plain).Order(StringComparer.Ordinal).ToList();
        Assert.True(extra.Count == 0,
            $"{extra.Count} privileges come from Supabase's default ACL and are never revoked:\n{string.Join('\n', extra)}");
    }

    [Fact]
    public async Task Truncate_UserOnSupabaseDefaultPrivileges_DeniedAndEveryTenantKept()
    {
        var db = new TestDb(fixture.SupabaseLike);
        var tenantA = await db.CreateTenantAsync("A");
        var userA = await db.AddMemberAsync(tenantA);
        var tenantB = await db.CreateTenantAsync("B");
        await db.CreateAccountAsync(tenantB);

        var outcome = await new ApiCalls(fixture.SupabaseLike).ExecuteAsync(Principal.User(userA), "truncate public.tenants cascade", [], commit: true);

        Assert.True(outcome.SqlState == IsolationAssert.Denied, $"truncate public.tenants cascade as a member of A {outcome}");
        Assert.Equal(1L, await db.ScalarAsync("select count(*) from public.accounts where tenant_id = $1", tenantB));
    }

    /// <summary>"role PRIVILEGE schema.object" for every privilege anon or authenticated holds in public and hourglass.</summary>
    private static async Task<HashSet<string>> ApiRolePrivilegesAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("""
            with role(name) as (values ('anon'), ('authenticated')),
            relation as (
              select c.oid, n.nspname || '.' || c.relname as name, c.relkind
              from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
              where n.nspname in ('public', 'hourglass') and c.relkind in ('r', 'p', 'v', 'm', 'S'))
            select r.name || ' ' || p.privilege || ' ' || x.name
            from role r cross join relation x
            cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p(privilege)
            where x.relkind <> 'S' and pg_catalog.has_table_privilege(r.name, x.oid, p.privilege)
            union all
            select r.name || ' ' || p.privilege || ' ' || x.name
            from role r cross join relation x cross join unnest(array['USAGE', 'SELECT', 'UPDATE']) p(privilege)
            where x.relkind = 'S' and pg_catalog.has_sequence_privilege(r.name, x.oid, p.privilege)
            union all
            select r.name || ' EXECUTE ' || n.nspname || '.' || f.proname || '(' || pg_catalog.oidvectortypes(f.proargtypes) || ')'
            from role r cross join pg_catalog.pg_proc f join pg_catalog.pg_namespace n on n.oid = f.pronamespace
            where n.nspname in ('public', 'hourglass') and pg_catalog.has_function_privilege(r.name, f.oid, 'EXECUTE')
            """);
        var privileges = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            privileges.Add(reader.GetString(0));
        }

        return privileges;
    }
}
