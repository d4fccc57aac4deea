using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Storage;

/// <summary>hourglass migrate against empty databases: order, history, idempotence, failure.</summary>
public sealed class MigratorTests : IAsyncLifetime
{
    private string _connectionString = "";
    private NpgsqlDataSource _dataSource = null!;

    public async Task InitializeAsync()
    {
        _connectionString = await TestServer.CreateDatabaseAsync(migrated: false);
        _dataSource = NpgsqlDataSource.Create(_connectionString);
    }

    public async Task DisposeAsync()
    {
        await _dataSource.DisposeAsync();
        await TestServer.DropDatabaseAsync(_connectionString);
    }

    [Fact]
    public async Task Migrate_EmptyDatabase_AppliesAllInOrderAndRecordsThemAsSupabaseDoes()
    {
        var migrations = MigrationSource.Embedded();

        var report = await new Migrator(_dataSource).MigrateAsync(migrations);

        Assert.Equal(migrations.Select(m => m.FileName), report.Applied.Select(m => m.FileName));
        Assert.Equal(migrations.Select(m => m.Version).Order(StringComparer.Ordinal), report.Applied.Select(m => m.Version));
        var db = new TestDb(_dataSource);
        foreach (var migration in migrations)
        {
            Assert.Equal(migration.Name, await db.ScalarAsync("select name from supabase_migrations.schema_migrations where version = $1", migration.Version));
            Assert.Equal(migration.Statements.ToArray(),
                (string[])(await db.ScalarAsync("select statements from supabase_migrations.schema_migrations where version = $1", migration.Version))!);
        }

        Assert.Contains("20251217000000_autonomous_agent_system.sql", migrations.Select(m => m.FileName));
    }

    [Fact]
    public async Task Migrate_Twice_SecondRunChangesNothing()
    {
        var migrator = new Migrator(_dataSource);
        await migrator.MigrateAsync(MigrationSource.Embedded());
        var before = await SchemaFingerprintAsync();

        var second = await migrator.MigrateAsync(MigrationSource.Embedded());

        Assert.Empty(second.Applied);
        Assert.Equal(MigrationSource.Embedded().Count, second.AlreadyApplied.Count);
        Assert.Equal(before, await SchemaFingerprintAsync());
    }

    [Fact]
    public async Task Migrate_ConcurrentRuns_EachFileAppliedOnce()
    {
        var runs = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => new Migrator(_dataSource).MigrateAsync(MigrationSource.Embedded()))));

        Assert.Equal(MigrationSource.Embedded().Count, runs.Sum(r => r.Applied.Count));
    }

    [Fact]
    public async Task Migrate_FailingFile_RolledBackWithFileAndStatementNamed()
    {
        var directory = Directory.CreateTempSubdirectory("hg-migrations-");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "20250101000000_good.sql"), "create table public.good (id int);");
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "20250102000000_bad.sql"), """
                create table public.half_done (id int);
                insert into public.half_done values (1);
                -- a typo in the third statement
                alter table public.half_done add column note txet;
                """);
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "20250103000000_after.sql"), "create table public.after (id int);");

            var ex = await Assert.ThrowsAsync<MigrationFailedException>(() => new Migrator(_dataSource).MigrateAsync(MigrationSource.FromDirectory(directory.FullName)));

            Assert.Equal("20250102000000_bad.sql", ex.Migration.FileName);
            Assert.Equal(3, ex.StatementNumber);
            Assert.Equal("42704", ex.SqlState);
            Assert.Contains("20250102000000_bad.sql", ex.Message, StringComparison.Ordinal);
            Assert.Contains("statement 3 of 3", ex.Message, StringComparison.Ordinal);
            Assert.Contains("alter table public.half_done add column note txet", ex.Message, StringComparison.Ordinal);

            var db = new TestDb(_dataSource);
            Assert.NotNull(await db.ScalarAsync("select to_regclass('public.good')::text"));
            Assert.Null(await db.ScalarAsync("select to_regclass('public.half_done')::text"));
            Assert.Null(await db.ScalarAsync("select to_regclass('public.after')::text"));
            Assert.Equal(new[] { "20250101000000" }, await AppliedAsync());
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Migrate_HistoryWrittenByOtherTool_SkipsWhatItApplied()
    {
        // The Supabase CLI's table, with a row for the first file as if `supabase db push` had applied it.
        var db = new TestDb(_dataSource);
        await db.ExecuteAsync("create schema supabase_migrations");
        await db.ExecuteAsync("create table supabase_migrations.schema_migrations (version text not null primary key, statements text[], name text)");
        var directory = Directory.CreateTempSubdirectory("hg-migrations-");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "20250101000000_first.sql"), "create table public.first_by_cli (id int);");
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "20250102000000_second.sql"), "create table public.second (id int);");
            await db.ExecuteAsync("create table public.first_by_cli (id int)");
            await db.ExecuteAsync("insert into supabase_migrations.schema_migrations (version, name) values ('20250101000000', 'first')");

            var report = await new Migrator(_dataSource).MigrateAsync(MigrationSource.FromDirectory(directory.FullName));

            Assert.Equal(new[] { "20250102000000_second.sql" }, report.Applied.Select(m => m.FileName));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("2025_bad.sql")]
    [InlineData("20250101000000.sql")]
    [InlineData("20250101000000_has space.sql")]
    public void FromDirectory_BadFileName_RefusedWithName(string fileName)
    {
        var directory = Directory.CreateTempSubdirectory("hg-migrations-");
        try
        {
            File.WriteAllText(Path.Combine(directory.FullName, fileName), "select 1;");
            var ex = Assert.Throws<HourglassException>(() => MigrationSource.FromDirectory(directory.FullName));
            Assert.Contains(fileName, ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private async Task<string[]> AppliedAsync()
    {
        var db = new TestDb(_dataSource);
        return (string[])(await db.ScalarAsync("select array_agg(version order by version) from supabase_migrations.schema_migrations"))!;
    }

    // Every relation, column, function, policy and index definition in the migrated schemas, hashed.
    private async Task<string> SchemaFingerprintAsync()
    {
        var db = new TestDb(_dataSource);
        return (string)(await db.ScalarAsync("""
            select md5(string_agg(x, '|' order by x)) from (
              select 'rel:' || c.oid::regclass::text || ':' || c.relkind::text || ':' || c.relrowsecurity as x
              from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where n.nspname in ('public', 'hourglass', 'auth', 'supabase_migrations')
              union all
              select 'col:' || attrelid::regclass::text || '.' || attname || ':' || format_type(atttypid, atttypmod)
              from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
              where n.nspname in ('public', 'hourglass') and attnum > 0 and not attisdropped
              union all
              select 'fn:' || p.oid::regprocedure::text || ':' || md5(p.prosrc) || ':' || coalesce(p.proacl::text, '')
              from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('public', 'hourglass', 'auth')
              union all
              select 'pol:' || polrelid::regclass::text || '.' || polname || ':' || pg_get_expr(polqual, polrelid) from pg_policy
              union all
              select 'idx:' || indexrelid::regclass::text || ':' || pg_get_indexdef(indexrelid) from pg_index i
              join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'
              union all
              select 'mig:' || version || ':' || coalesce(name, '') from supabase_migrations.schema_migrations
            ) s
            """))!;
    }
}
