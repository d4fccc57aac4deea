using System.Diagnostics;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Hourglass.Storage;

/// <summary>One migration file: <c>&lt;14-digit version&gt;_&lt;name&gt;.sql</c>, Supabase's naming.</summary>
internal sealed record Migration(string Version, string Name, string FileName, string Sql)
{
    private IReadOnlyList<string>? _statements;

    /// <summary>The file's statements, split as the Supabase CLI records them.</summary>
    public IReadOnlyList<string> Statements => _statements ??= SqlScript.Split(Sql);
}

/// <summary>Where migrations come from: the copies built into the library, or a folder.</summary>
internal static partial class MigrationSource
{
    /// <summary>The migrations shipped inside this build (from <c>supabase/migrations/</c>).</summary>
    public static IReadOnlyList<Migration> Embedded()
    {
        var assembly = typeof(MigrationSource).Assembly;
        var migrations = new List<Migration>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith("migrations/", StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            migrations.Add(Parse(resource["migrations/".Length..], reader.ReadToEnd()));
        }

        return Ordered(migrations);
    }

    /// <summary>The <c>*.sql</c> files of a folder. Names that do not match the pattern are refused.</summary>
    public static IReadOnlyList<Migration> FromDirectory(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new HourglassException($"migrations folder {directory} does not exist");
        }

        return Ordered(Directory.EnumerateFiles(directory, "*.sql")
            .Select(path => Parse(Path.GetFileName(path), File.ReadAllText(path)))
            .ToList());
    }

    internal static Migration Parse(string fileName, string sql)
    {
        var match = FileNamePattern().Match(fileName);
        if (!match.Success)
        {
            throw new HourglassException(
                $"migration file name '{fileName}' does not follow <YYYYMMDDHHMMSS>_<name>.sql (Supabase's naming)");
        }

        var migration = new Migration(match.Groups[1].Value, match.Groups[2].Value, fileName, sql);
        try
        {
            _ = migration.Statements;
        }
        catch (FormatException ex)
        {
            throw new HourglassException($"migration {fileName} cannot be split into statements: {ex.Message}", ex);
        }

        return migration;
    }

    private static IReadOnlyList<Migration> Ordered(List<Migration> migrations)
    {
        var duplicate = migrations.GroupBy(m => m.Version).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new HourglassException(
                $"two migrations share the version {duplicate.Key}: {string.Join(", ", duplicate.Select(m => m.FileName))}");
        }

        return migrations.OrderBy(m => m.Version, StringComparer.Ordinal).ToList();
    }

    [GeneratedRegex(@"^(\d{14})_([A-Za-z0-9_\-]+)\.sql$")]
    private static partial Regex FileNamePattern();
}

/// <summary>What a migrate run did.</summary>
internal sealed record MigrationReport(IReadOnlyList<Migration> Applied, IReadOnlyList<string> AlreadyApplied, TimeSpan Elapsed);

/// <summary>A migration file that failed; nothing of it was kept.</summary>
internal sealed class MigrationFailedException : HourglassException
{
    public MigrationFailedException(Migration migration, int statementNumber, string statement, PostgresException inner)
        : base(
            $"migration {migration.FileName} failed at statement {statementNumber} of {migration.Statements.Count} " +
            $"(SQLSTATE {inner.SqlState}: {inner.MessageText}); the file was rolled back. Statement: {Excerpt(statement)}",
            inner)
    {
        Migration = migration;
        StatementNumber = statementNumber;
        SqlState = inner.SqlState;
    }

    public Migration Migration { get; }

    public int StatementNumber { get; }

    public string SqlState { get; }

    private static string Excerpt(string statement)
    {
        var oneLine = Regex.Replace(statement, @"\s+", " ");
        return oneLine.Length <= 160 ? oneLine : oneLine[..160] + "…";
    }
}

/// <summary>
/// Applies pending migrations in version order, each file in one transaction, and records each in
/// <c>supabase_migrations.schema_migrations (version, name, statements)</c> as the Supabase CLI does, so
/// either tool sees what the other applied. Concurrent runs serialise on an advisory lock.
/// </summary>
internal sealed partial class Migrator
{
    // pg_advisory_lock key for migrate runs: 'hourglass' as bytes, arbitrary but fixed.
    private const long AdvisoryLockKey = 0x686f7572676c6173;
    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger _logger;

    public Migrator(NpgsqlDataSource dataSource, ILogger? logger = null)
    {
        _dataSource = dataSource;
        _logger = logger ?? NullLogger.Instance;
    }

    public async Task<MigrationReport> MigrateAsync(IReadOnlyList<Migration> migrations, CancellationToken cancellationToken = default)
    {
        var stopwatch = Stopwatch.StartNew();
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(connection, "select pg_advisory_lock($1)", cancellationToken, AdvisoryLockKey);
        try
        {
            await EnsureHistoryTableAsync(connection, cancellationToken);
            var applied = await ReadAppliedVersionsAsync(connection, cancellationToken);
            var done = new List<Migration>();
            foreach (var migration in migrations.Where(m => !applied.Contains(m.Version)))
            {
                await ApplyAsync(connection, migration, cancellationToken);
                LogApplied(_logger, migration.FileName, migration.Statements.Count);
                done.Add(migration);
            }

            return new MigrationReport(done, migrations.Where(m => applied.Contains(m.Version)).Select(m => m.FileName).ToList(), stopwatch.Elapsed);
        }
        finally
        {
            await ExecuteAsync(connection, "select pg_advisory_unlock($1)", CancellationToken.None, AdvisoryLockKey);
        }
    }

    /// <summary>The versions recorded in the history table (empty when it does not exist).</summary>
    public async Task<IReadOnlySet<string>> AppliedVersionsAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var exists = new NpgsqlCommand("select to_regclass('supabase_migrations.schema_migrations') is not null", connection);
        return (bool)(await exists.ExecuteScalarAsync(cancellationToken))!
            ? await ReadAppliedVersionsAsync(connection, cancellationToken)
            : new HashSet<string>();
    }

    private static async Task ApplyAsync(NpgsqlConnection connection, Migration migration, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        for (var i = 0; i < migration.Statements.Count; i++)
        {
            try
            {
                await using var command = new NpgsqlCommand(migration.Statements[i], connection, transaction);
                command.CommandTimeout = 0;
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (PostgresException ex)
            {
                await transaction.RollbackAsync(CancellationToken.None);
                throw new MigrationFailedException(migration, i + 1, migration.Statements[i], ex);
            }
        }

        await using (var record = new NpgsqlCommand(
            "insert into supabase_migrations.schema_migrations (version, name, statements) values ($1, $2, $3)",
            connection, transaction))
        {
            record.Parameters.Add(new() { Value = migration.Version });
            record.Parameters.Add(new() { Value = migration.Name });
            record.Parameters.Add(new() { Value = migration.Statements.ToArray() });
            await record.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    // The Supabase CLI's own definition: the table, then the columns it added over time.
    private static Task EnsureHistoryTableAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        ExecuteAsync(connection, """
            create schema if not exists supabase_migrations;
            create table if not exists supabase_migrations.schema_migrations (version text not null primary key);
            alter table supabase_migrations.schema_migrations add column if not exists statements text[];
            alter table supabase_migrations.schema_migrations add column if not exists name text;
            """, cancellationToken);

    private static async Task<IReadOnlySet<string>> ReadAppliedVersionsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var versions = new HashSet<string>(StringComparer.Ordinal);
        await using var command = new NpgsqlCommand("select version from supabase_migrations.schema_migrations", connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            versions.Add(reader.GetString(0));
        }

        return versions;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new() { Value = parameter });
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Applied {FileName} ({Statements} statements)")]
    private static partial void LogApplied(ILogger logger, string fileName, int statements);
}
