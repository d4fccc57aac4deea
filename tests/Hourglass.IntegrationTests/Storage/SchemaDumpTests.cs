using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;

namespace Hourglass.IntegrationTests.Storage;

/// <summary>
/// supabase/schema.sql is the schema as the migrations leave it (<see cref="SchemaDump"/>): the test fails when a
/// migration changed the schema and the file was not regenerated. CI runs it on PostgreSQL 15, 17 and 18 against the
/// one committed file, which proves the dump reads the same on each major.
/// </summary>
public sealed class SchemaDumpTests : DatabaseTest
{
    [Fact]
    public async Task SchemaSql_IsTheSchemaAsMigrated()
    {
        var committed = await File.ReadAllTextAsync(Path.Combine(RepositoryRoot(), SchemaDump.RepositoryPath));
        var current = SchemaDump.Render(await SchemaDump.ReadAsync(DataSource));

        var difference = SchemaDump.Compare(committed, current);

        Assert.True(difference is null, difference is null ? "" : SchemaDump.StaleMessage(SchemaDump.RepositoryPath, difference));
    }

    [Fact]
    public async Task Dump_HoldsEveryFunctionsCurrentDefinition_Grants_AndTablesParts()
    {
        var dump = SchemaDump.Render(await SchemaDump.ReadAsync(DataSource));

        var functions = (long)(await Db.ScalarAsync(
            "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('public', 'hourglass')"))!;
        Assert.Equal(functions, dump.Split('\n').Count(l => l.StartsWith("-- function ", StringComparison.Ordinal)));
        Assert.Contains("-- function public.record_touches(uuid,jsonb,text)", dump);
        Assert.Contains("grant execute on function public.refresh_engagement_compliance(uuid) to service_role;", dump);
        Assert.Contains("alter table public.accounts enable row level security;", dump);
        Assert.Contains("create policy service_role_bypass on public.accounts as permissive for all to service_role", dump);
        Assert.Contains("create view public.monitoring_order_throughput with (security_invoker=true) as", dump);
        Assert.DoesNotContain("MAINTAIN", dump, StringComparison.OrdinalIgnoreCase);
        // PostgreSQL 18 keeps not-null constraints as catalog rows: they show as the columns' "not null", never as constraints.
        Assert.DoesNotMatch(@"add constraint \S+ NOT NULL", dump);
    }

    [Fact]
    public async Task Compare_AChangedFunction_NamesItAndTheCommand()
    {
        var before = SchemaDump.Render(await SchemaDump.ReadAsync(DataSource));
        await Db.ExecuteAsync("""
            create or replace function hourglass.is_iana_timezone(p_name text) returns boolean
            language sql stable set search_path = '' as $$ select false $$
            """);
        await Db.ExecuteAsync("create table public.schema_dump_probe (id integer primary key)");
        var after = SchemaDump.Render(await SchemaDump.ReadAsync(DataSource));

        var changed = SchemaDump.Compare(before, after);
        Assert.NotNull(changed);
        var message = SchemaDump.StaleMessage("supabase/schema.sql", changed);
        Assert.Contains("table public.schema_dump_probe", message);
        Assert.Contains("added", message);
        Assert.Contains(SchemaDump.RegenerateCommand, message);

        await Db.ExecuteAsync("drop table public.schema_dump_probe");
        var functionOnly = SchemaDump.Compare(before, SchemaDump.Render(await SchemaDump.ReadAsync(DataSource)));
        Assert.NotNull(functionOnly);
        Assert.Equal("function hourglass.is_iana_timezone(text)", functionOnly.Object);
        Assert.Contains("LANGUAGE sql", functionOnly.Detail);
    }

    [Fact]
    public void UnqualifySingleRelation_TakesOffPostgres15sAlias_OnlyOutsideLiterals()
    {
        const string fifteen = " SELECT e.tenant_id,\n    count(*) FILTER (WHERE e.kind = 'e.x'::text) AS n\n   FROM public.events e\n  GROUP BY e.tenant_id;";
        const string sixteen = " SELECT tenant_id,\n    count(*) FILTER (WHERE kind = 'e.x'::text) AS n\n   FROM public.events e\n  GROUP BY tenant_id;";
        Assert.Equal(sixteen, SchemaDump.UnqualifySingleRelation(fifteen));

        const string join = " SELECT e.id\n   FROM public.events e\n     JOIN public.tenants t ON t.id = e.tenant_id;";
        Assert.Equal(join, SchemaDump.UnqualifySingleRelation(join));
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Hourglass.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no Hourglass.slnx above {AppContext.BaseDirectory}");
    }
}
