using System.Text;
using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Storage;

/// <summary>
/// plpgsql_check lints every PL/pgSQL function of the product (schemas public and hourglass) with its default checks
/// (errors, warnings and extra warnings); a trigger function is checked against every table one of its triggers is on.
/// Any finding fails the test, listed by function, line and message with what to do. The extension is a shared library
/// built per major: Debian packages it for its PostgreSQL (postgresql-&lt;major&gt;-plpgsql-check), the npm binaries CI
/// uses for 17 and 18 have none, so CI runs this test on 15 only (trait Category=PlpgsqlCheck, filtered out on 17 and
/// 18; the functions are the same on every major). Where the extension is missing the test fails, naming the package.
/// </summary>
[Trait("Category", "PlpgsqlCheck")]
public sealed class PlpgsqlCheckTests : DatabaseTest
{
    [Fact]
    public async Task EveryPlpgsqlFunction_PassesPlpgsqlCheck()
    {
        await InstallAsync();

        var findings = new List<string>();
        var checkedCount = 0;
        await using (var command = DataSource.CreateCommand("""
            with functions as (
              select p.oid, p.prorettype = 'trigger'::regtype as is_trigger
              from pg_proc p
              join pg_namespace n on n.oid = p.pronamespace
              join pg_language l on l.oid = p.prolang
              where n.nspname in ('public', 'hourglass') and l.lanname = 'plpgsql'
                and not exists (select 1 from pg_depend d where d.objid = p.oid and d.classid = 'pg_proc'::regclass and d.deptype = 'e')
            ), targets as (
              select f.oid, f.is_trigger, t.tgrelid
              from functions f
              left join lateral (select distinct g.tgrelid from pg_trigger g where g.tgfoid = f.oid and not g.tgisinternal) t on f.is_trigger
            )
            select t.oid::regprocedure::text, t.tgrelid::regclass::text, false, r.lineno, r.level, r.message, r.detail, r.hint
            from targets t
            left join lateral plpgsql_check_function_tb(t.oid, coalesce(t.tgrelid, 0)) r on true
            where not (t.is_trigger and t.tgrelid is null)
            union all
            select t.oid::regprocedure::text, null, true, null, null, null, null, null
            from targets t
            where t.is_trigger and t.tgrelid is null
            order by 1, 2, 4
            """))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            var seen = new HashSet<string>();
            while (await reader.ReadAsync())
            {
                var function = reader.GetString(0);
                var table = reader.IsDBNull(1) ? null : reader.GetString(1);
                if (seen.Add($"{function}|{table}"))
                {
                    checkedCount++;
                }

                if (reader.GetBoolean(2))
                {
                    findings.Add($"{function}: a trigger function no trigger uses, so it cannot be checked. Drop it in a new migration, or attach it.");
                    continue;
                }

                if (reader.IsDBNull(5))
                {
                    continue;
                }

                var finding = new StringBuilder($"{function}{(table is null ? "" : $" (trigger on {table})")}");
                finding.Append($", line {(reader.IsDBNull(3) ? "?" : reader.GetInt32(3).ToString(System.Globalization.CultureInfo.InvariantCulture))}");
                finding.Append($": {reader.GetString(4)}: {reader.GetString(5)}");
                if (!reader.IsDBNull(6))
                {
                    finding.Append($" ({reader.GetString(6)})");
                }

                if (!reader.IsDBNull(7))
                {
                    finding.Append($"; hint: {reader.GetString(7)}");
                }

                findings.Add(finding.ToString());
            }
        }

        Assert.True(checkedCount > 50, $"only {checkedCount} PL/pgSQL functions were checked: the query found too few");
        Assert.True(findings.Count == 0,
            $"plpgsql_check found {findings.Count} problem(s):\n  " + string.Join("\n  ", findings) +
            "\nFix each in a NEW migration named after what it changes (create or replace function with the current definition from " +
            "supabase/schema.sql, corrected), regenerate supabase/schema.sql, and see docs/development.md (plpgsql_check). " +
            "Line numbers count from the line of AS $function$ in supabase/schema.sql.");
    }

    [Fact]
    public async Task AFunctionWithAWarning_IsReported()
    {
        await InstallAsync();
        await Db.ExecuteAsync("""
            create function hourglass.lint_probe(p_unused integer) returns text[] language plpgsql as $$
            declare
              v_list text[] := '{}';
            begin
              return v_list;
            end $$
            """);

        var messages = new List<string>();
        await using var command = DataSource.CreateCommand(
            "select message from plpgsql_check_function_tb('hourglass.lint_probe(integer)'::regprocedure)");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            messages.Add(reader.GetString(0));
        }

        Assert.Contains(messages, m => m.Contains("unused parameter", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("target type is different type than source type", StringComparison.Ordinal));
    }

    private async Task InstallAsync()
    {
        var major = (int)(await Db.ScalarAsync("select current_setting('server_version_num')::int / 10000"))!;
        var available = (bool)(await Db.ScalarAsync(
            "select exists (select 1 from pg_available_extensions where name = 'plpgsql_check')"))!;
        Assert.True(available,
            $"the plpgsql_check extension is not installed for this PostgreSQL {major}: install Debian's postgresql-{major}-plpgsql-check " +
            "(apt-get install postgresql-" + major + "-plpgsql-check), or, where no package exists (the npm binaries for 17 and 18), " +
            "leave this test out with --filter \"Category!=PlpgsqlCheck\" as CI does (docs/development.md)");
        try
        {
            await Db.ExecuteAsync("create extension if not exists plpgsql_check");
        }
        catch (PostgresException ex)
        {
            Assert.Fail($"create extension plpgsql_check failed ({ex.SqlState}: {ex.MessageText}): the package postgresql-{major}-plpgsql-check " +
                        "must match the server's major, and the test database's owner must be allowed to create extensions");
        }
    }
}
