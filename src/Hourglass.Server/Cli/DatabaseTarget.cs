using Hourglass.Storage;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Hourglass.Server.Cli;

/// <summary>
/// The database a command works on: the server named by <c>--database</c> or HOURGLASS_DATABASE_URL, else
/// the embedded cluster, started for the command and stopped after it (unless it was already running).
/// </summary>
internal sealed class DatabaseTarget : IAsyncDisposable
{
    public const string UrlVariable = "HOURGLASS_DATABASE_URL";

    private DatabaseTarget(string connectionString, EmbeddedPostgres? embedded)
    {
        ConnectionString = connectionString;
        Embedded = embedded;
        // No reset on close, and statements prepared automatically on the embedded cluster (ProductDataSource).
        DataSource = ProductDataSource.Create(connectionString, direct: embedded is not null, name: "hourglass");
    }

    public string ConnectionString { get; }

    public EmbeddedPostgres? Embedded { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>What to print about where we are connected, without the password.</summary>
    public string Description => Embedded is { } embedded
        ? $"embedded PostgreSQL {embedded.Binaries.MajorVersion} at 127.0.0.1:{embedded.Port} (data in {embedded.DataDirectory})"
        : DatabaseUrl.Describe(ConnectionString);

    /// <summary>
    /// Another pool on the same database, with the connection string's settings but its own <c>Application Name</c>
    /// (<c>hourglass-{part}</c>, or the string's own name with <c>-{part}</c>) and, when given, its own
    /// <c>Maximum Pool Size</c>: <c>serve</c> gives its API and its worker one each, so that neither can take every
    /// connection the other needs.
    /// </summary>
    public NpgsqlDataSource CreatePool(string part, int? maxPoolSize)
    {
        var builder = new NpgsqlConnectionStringBuilder(ConnectionString);
        builder.ApplicationName = string.IsNullOrEmpty(builder.ApplicationName) ? $"hourglass-{part}" : $"{builder.ApplicationName}-{part}";
        if (maxPoolSize is { } size)
        {
            builder.MaxPoolSize = size;
            builder.MinPoolSize = Math.Min(builder.MinPoolSize, size);
        }

        return ProductDataSource.Create(builder.ConnectionString, direct: Embedded is not null, name: builder.ApplicationName);
    }

    public static async Task<DatabaseTarget> OpenAsync(GlobalOptions options, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var url = options.Database ?? Environment.GetEnvironmentVariable(UrlVariable);
        if (!string.IsNullOrWhiteSpace(url))
        {
            var target = new DatabaseTarget(DatabaseUrl.ToConnectionString(url), null);
            await target.CheckReachableAsync(cancellationToken);
            return target;
        }

        var embedded = await EmbeddedPostgres.StartAsync(
            new EmbeddedPostgresOptions { RootDirectory = options.DataDirectory },
            loggers.CreateLogger("Hourglass.EmbeddedPostgres"),
            cancellationToken);
        return new DatabaseTarget(embedded.ConnectionString, embedded);
    }

    /// <summary>Opens the database and makes sure its schema is in place (see <see cref="EnsureSchemaAsync"/>).</summary>
    public static async Task<DatabaseTarget> OpenMigratedAsync(GlobalOptions options, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var target = await OpenAsync(options, loggers, cancellationToken);
        try
        {
            await target.EnsureSchemaAsync(loggers, cancellationToken);
            return target;
        }
        catch
        {
            await target.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Makes sure the schema is in place: the embedded cluster is ours, so pending migrations are applied; a
    /// configured server is left to its owner, and a missing schema is an error saying what to run.
    /// </summary>
    private async Task EnsureSchemaAsync(ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var migrations = MigrationSource.Embedded();
        var migrator = new Migrator(DataSource, loggers.CreateLogger<Migrator>());
        if (Embedded is not null)
        {
            await migrator.MigrateAsync(migrations, cancellationToken);
            return;
        }

        var applied = await migrator.AppliedVersionsAsync(cancellationToken);
        var pending = migrations.Where(m => !applied.Contains(m.Version)).Select(m => m.FileName).ToList();
        if (pending.Count > 0)
        {
            throw new HourglassException(
                $"the database at {Description} lacks {pending.Count} migration(s) ({string.Join(", ", pending)}): run 'hourglass migrate' first");
        }
    }

    private async Task CheckReachableAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        }
        catch (PostgresException ex)
        {
            throw new HourglassException($"the database at {Description} refused the connection: {ex.MessageText} (SQLSTATE {ex.SqlState})", ex);
        }
        catch (NpgsqlException ex)
        {
            throw new HourglassException($"cannot reach the database at {Description}: {Innermost(ex).Message}", ex);
        }
    }

    private static Exception Innermost(Exception ex) => ex.InnerException is null ? ex : Innermost(ex.InnerException);

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        if (Embedded is not null)
        {
            await Embedded.DisposeAsync();
        }
    }
}

/// <summary>Options every command accepts.</summary>
internal sealed record GlobalOptions(string? Database, string? DataDirectory, bool Verbose);
