using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// Catalog rules every object must keep: each foreign key has an index to serve it, and each function pins an
/// empty search_path and is not executable by PUBLIC. Each rule is first shown to catch a planted violation.
/// </summary>
public sealed class CatalogTests(DatabaseFixture fixture) : IClassFixture<DatabaseFixture>
{
    private const string PinnedEmptySearchPath = "search_path=\"\"";

    [Fact]
    public async Task ForeignKeys_InPublic_EachHasCoveringIndex()
    {
        await using var connection = await fixture.DataSource.OpenConnectionAsync();

        var problems = await UncoveredForeignKeysAsync(connection, null);

        Assert.Empty(problems);
        Assert.True(await CountAsync(connection, null, "select count(*) from pg_catalog.pg_constraint where contype = 'f' and connamespace = 'public'::regnamespace") >= 20,
            "expected the schema's composite foreign keys to be there to check");
    }

    [Fact]
    public async Task ForeignKeys_PlantedUnindexedOrWrongOrder_Reported()
    {
        await using var connection = await fixture.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await TestDb.ExecuteAsync(connection, transaction, """
            create table public.probe_parent (a uuid, b uuid, primary key (a, b));
            create table public.probe_bare (a uuid, b uuid, foreign key (a, b) references public.probe_parent (a, b));
            create table public.probe_second (a uuid, b uuid, c uuid, foreign key (a, b) references public.probe_parent (a, b));
            create index probe_second_idx on public.probe_second (a, c, b);
            create table public.probe_partial (a uuid, b uuid, s text, foreign key (a, b) references public.probe_parent (a, b));
            create index probe_partial_idx on public.probe_partial (a, b) where s = 'x';
            create table public.probe_reversed (a uuid, b uuid, foreign key (a, b) references public.probe_parent (a, b));
            create index probe_reversed_idx on public.probe_reversed (b, a) where a is not null;
            """);

        var problems = await UncoveredForeignKeysAsync(connection, transaction);

        // A bare FK, one whose columns are not the index's leading ones, and one served only by a partial index
        // the FK's lookups cannot use are reported; (b, a) with a predicate the FK implies is accepted.
        Assert.Equal(["probe_bare", "probe_partial", "probe_second"], problems.Select(p => p.Split(' ')[0]).Order().ToArray());
    }

    [Fact]
    public async Task Functions_InPublicAndHourglass_PinEmptySearchPathAndNotExecutableByPublic()
    {
        await using var connection = await fixture.DataSource.OpenConnectionAsync();

        var functions = await FunctionsAsync(connection, null);

        var expected = SchemaContract.ApiFunctions
            .Append("hourglass.freeze_time(timestamp with time zone)").Append("hourglass.current_tenant_ids()");
        Assert.Empty(expected.Except(functions.Select(f => f.Signature)));
        Assert.Empty(functions.Where(f => !f.PinsEmptySearchPath).Select(f => f.Signature));
        Assert.Empty(functions.Where(f => f.ExecutableByPublic).Select(f => f.Signature));
    }

    [Fact]
    public async Task Functions_PlantedUnpinnedAndDefaultAcl_Reported()
    {
        await using var connection = await fixture.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await TestDb.ExecuteAsync(connection, transaction, """
            create function public.probe_default() returns integer language sql as 'select 1';
            create function hourglass.probe_granted() returns integer language sql set search_path = '' as 'select 1';
            revoke execute on function hourglass.probe_granted() from public;
            grant execute on function hourglass.probe_granted() to public;
            create function hourglass.probe_other_path() returns integer language sql set search_path = 'public' as 'select 1';
            revoke execute on function hourglass.probe_other_path() from public;
            """);

        var functions = (await FunctionsAsync(connection, transaction)).Where(f => f.Signature.Contains("probe_", StringComparison.Ordinal)).ToList();

        // The default ACL (proacl null) means PUBLIC may execute, as surely as an explicit grant does.
        Assert.Equal(["hourglass.probe_other_path()", "public.probe_default()"],
            functions.Where(f => !f.PinsEmptySearchPath).Select(f => f.Signature).Order().ToArray());
        Assert.Equal(["hourglass.probe_granted()", "public.probe_default()"],
            functions.Where(f => f.ExecutableByPublic).Select(f => f.Signature).Order().ToArray());
    }

    [Fact]
    public async Task Functions_UsersMayCall_EachNamesACapabilityAndNoStaleOneIsListed()
    {
        await using var connection = await fixture.DataSource.OpenConnectionAsync();

        // The names functions give assert_tenant_access, for the functions a signed-in user may execute (directly, or
        // behind a SECURITY DEFINER function users may execute: record_engagement_touch behind update_engagement_clock).
        var named = (string[])(await TestDb.ScalarAsync(connection, null, """
            select array_agg(distinct m[1] order by m[1])
            from pg_catalog.pg_proc p
            join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            cross join lateral regexp_matches(p.prosrc, $re$assert_tenant_access\(\s*[^,]+,\s*'([a-z_]+)'$re$, 'g') m
            where n.nspname in ('public', 'hourglass')
              and (has_function_privilege('authenticated', p.oid, 'EXECUTE') or p.oid = 'hourglass.record_engagement_touch'::regproc)
            """))!;
        var listed = (string[])(await TestDb.ScalarAsync(connection, null,
            "select array_agg(function_name order by function_name) from hourglass.function_capabilities"))!;

        Assert.True(named.Length >= 15, $"expected the user-callable functions to be found; found {string.Join(", ", named)}");
        Assert.Empty(named.Except(listed));
        Assert.Empty(listed.Except(named));
    }

    private sealed record FunctionInfo(string Signature, bool PinsEmptySearchPath, bool ExecutableByPublic);

    private static async Task<List<FunctionInfo>> FunctionsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction)
    {
        // proacl null is the default ACL, which grants EXECUTE to PUBLIC; otherwise an aclexplode entry with grantee 0
        // is PUBLIC. has_function_privilege('public', …) must agree. Extension members are the extension's business.
        await using var command = new NpgsqlCommand("""
            select n.nspname || '.' || p.proname || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')',
                   coalesce(p.proconfig, '{}'),
                   p.proacl is null
                     or exists (select 1 from pg_catalog.aclexplode(p.proacl) a where a.grantee = 0 and a.privilege_type = 'EXECUTE'),
                   pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')
            from pg_catalog.pg_proc p
            join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('public', 'hourglass')
              and not exists (select 1 from pg_catalog.pg_depend d
                              where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
            order by 1
            """, connection, transaction);
        await using var reader = await command.ExecuteReaderAsync();
        var functions = new List<FunctionInfo>();
        while (await reader.ReadAsync())
        {
            var signature = reader.GetString(0);
            var aclSaysPublic = reader.GetBoolean(2);
            var privilegeSaysPublic = reader.GetBoolean(3);
            Assert.True(aclSaysPublic == privilegeSaysPublic, $"{signature}: proacl and has_function_privilege disagree about PUBLIC");
            functions.Add(new FunctionInfo(signature, reader.GetFieldValue<string[]>(1).Contains(PinnedEmptySearchPath), aclSaysPublic));
        }

        return functions;
    }

    private sealed record ForeignKey(string Table, string Name, string[] Columns);

    private sealed record IndexInfo(string Table, string Name, string[] KeyColumns, string? Predicate);

    /// <summary>
    /// FKs with no valid index whose leading key columns are the FK's columns (in any order). A partial index counts
    /// only when its predicate is "&lt;an FK column&gt; IS NOT NULL", which every FK lookup implies.
    /// </summary>
    private static async Task<List<string>> UncoveredForeignKeysAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction)
    {
        var foreignKeys = new List<ForeignKey>();
        await using (var command = new NpgsqlCommand("""
            select c.conrelid::regclass::text, c.conname::text,
                   array(select a.attname::text from unnest(c.conkey) k(attnum)
                         join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum)
            from pg_catalog.pg_constraint c
            where c.contype = 'f' and c.connamespace = 'public'::regnamespace
            """, connection, transaction))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                foreignKeys.Add(new ForeignKey(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<string[]>(2)));
            }
        }

        var indexes = new List<IndexInfo>();
        await using (var command = new NpgsqlCommand("""
            select i.indrelid::regclass::text, i.indexrelid::regclass::text,
                   array(select coalesce(a.attname::text, '<expression>')
                         from unnest(i.indkey::int2[]) with ordinality k(attnum, n)
                         left join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum and k.attnum > 0
                         where k.n <= i.indnkeyatts
                         order by k.n),
                   pg_catalog.pg_get_expr(i.indpred, i.indrelid)
            from pg_catalog.pg_index i
            join pg_catalog.pg_class t on t.oid = i.indrelid
            where t.relnamespace = 'public'::regnamespace and i.indisvalid
            """, connection, transaction))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                indexes.Add(new IndexInfo(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<string[]>(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
            }
        }

        return foreignKeys
            .Where(fk => !indexes.Any(index => index.Table == fk.Table && Covers(index, fk)))
            .Select(fk => $"{fk.Table} {fk.Name} ({string.Join(", ", fk.Columns)}) has no covering index")
            .ToList();
    }

    private static bool Covers(IndexInfo index, ForeignKey fk) =>
        index.KeyColumns.Length >= fk.Columns.Length
        && index.KeyColumns.Take(fk.Columns.Length).Order(StringComparer.Ordinal).SequenceEqual(fk.Columns.Order(StringComparer.Ordinal))
        && (index.Predicate is null || fk.Columns.Any(column => index.Predicate == $"({column} IS NOT NULL)"));

    private static async Task<long> CountAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql) =>
        (long)(await TestDb.ScalarAsync(connection, transaction, sql))!;
}
