using System.Diagnostics;
using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// The database's guardrail tests as a Supabase user runs them (<c>supabase test db</c>): the pgTAP files under
/// <c>supabase/tests</c>, through <c>pg_prove</c>, against a fresh migrated database on this run's PostgreSQL (15 from
/// Debian, 18 from npm on CI's second pass; docs/development.md). Any pgTAP failure fails this test with pg_prove's
/// output; a machine without pg_prove or the pgtap extension fails it too, naming what to install — never a skip.
/// </summary>
public sealed class PgTapTests
{
    [Fact]
    public async Task SupabaseTests_PgProveOnAFreshMigratedDatabase_AllPass()
    {
        var pgProve = FindOnPath("pg_prove")
            ?? throw new Xunit.Sdk.XunitException("pg_prove is not installed: install Debian's libtap-parser-sourcehandler-pgtap-perl " +
                                                  "(or TAP::Parser::SourceHandler::pgTAP from CPAN) to run the pgTAP tests in supabase/tests");
        var tests = RepositoryDirectory("supabase", "tests");
        var connectionString = await TestServer.CreateDatabaseAsync();
        try
        {
            await InstallPgTapAsync(connectionString);
            var connection = new NpgsqlConnectionStringBuilder(connectionString);
            var start = new ProcessStartInfo(pgProve)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                // As `supabase test db` runs them: every .sql and .pg file under supabase/tests, recursively.
                ArgumentList = { "--ext", ".pg", "--ext", ".sql", "-r", tests },
                Environment =
                {
                    ["PGHOST"] = connection.Host,
                    ["PGPORT"] = connection.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["PGUSER"] = connection.Username,
                    ["PGPASSWORD"] = connection.Password,
                    ["PGDATABASE"] = connection.Database,
                    // Supabase's search path: pgTAP's functions live in the extensions schema.
                    ["PGOPTIONS"] = "-c search_path=public,extensions",
                },
            };
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            await process.WaitForExitAsync(timeout.Token);
            var report = $"{await output}\n{await errors}";

            Assert.True(process.ExitCode == 0, $"pg_prove {tests} failed (exit {process.ExitCode}):\n{report}");
            Assert.Contains("All tests successful.", report, StringComparison.Ordinal);
            // Every file ran its plan: no file is empty, and the four of today are all there.
            Assert.Matches(@"Files=([4-9]|\d\d+), Tests=\d{3,}", report);
        }
        finally
        {
            await TestServer.DropDatabaseAsync(connectionString);
        }
    }

    // As the Supabase CLI does before it runs pg_prove (create extension if not exists pgtap with schema extensions);
    // here also the schema, which a Supabase project has from the start.
    private static async Task InstallPgTapAsync(string connectionString)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using (var check = dataSource.CreateCommand(
            "select exists (select 1 from pg_catalog.pg_available_extensions where name = 'pgtap'), current_setting('server_version_num')::integer / 10000"))
        await using (var reader = await check.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            if (!reader.GetBoolean(0))
            {
                var major = reader.GetInt32(1);
                throw new Xunit.Sdk.XunitException(
                    $"the pgtap extension is not installed for PostgreSQL {major}: install Debian's postgresql-{major}-pgtap, or copy pgTAP's " +
                    "extension files (pgtap.control, pgtap--*.sql: plain SQL) into that server's share/extension folder, as .ci/run does for " +
                    "PostgreSQL 18 from npm");
            }
        }

        await using var install = dataSource.CreateCommand("""
            create schema if not exists extensions;
            grant usage on schema extensions to anon, authenticated, service_role;
            create extension if not exists pgtap with schema extensions;
            """);
        await install.ExecuteNonQueryAsync();
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);

    // The tests run from their build output (tests/…/bin/…): the repository is the nearest folder up that has the path.
    private static string RepositoryDirectory(params string[] parts)
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine([directory.FullName, .. parts]);
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new Xunit.Sdk.XunitException($"{Path.Combine(parts)} not found above {AppContext.BaseDirectory}: run the tests from the repository");
    }
}
