using System.CommandLine;
using Hourglass.Storage;
using Microsoft.Extensions.Logging;

namespace Hourglass.Server.Cli;

/// <summary>
/// <c>hourglass db schema [--out FILE] [--check]</c>: the schema as the migrations leave it (<see cref="SchemaDump"/>),
/// read from a throwaway embedded cluster migrated for the purpose, or from the database named by <c>--database</c>.
/// </summary>
internal static class SchemaCommand
{
    private static readonly Option<string?> s_out = new("--out")
    {
        Description = $"Write the schema to this file (with --check: the file to compare with, default {SchemaDump.RepositoryPath}). Default: standard output.",
    };

    private static readonly Option<bool> s_check = new("--check")
    {
        Description = "Compare with the file instead of writing it: exit 1 naming the first object that differs (and the command that regenerates it).",
    };

    private static readonly Option<string?> s_migrationsDirectory = new("--migrations-dir")
    {
        Description = "Migrate the throwaway database with the *.sql files of this folder instead of the migrations built into hourglass.",
    };

    public static Command Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var command = new Command(
            "schema",
            "Write the schema as migrated (supabase/schema.sql), normalised to read the same on every PostgreSQL major. " +
            "Migrates a throwaway embedded cluster; with --database, reads that database as it stands instead.");
        command.Options.Add(s_out);
        command.Options.Add(s_check);
        command.Options.Add(s_migrationsDirectory);
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            var global = options(parse);
            var migrations = parse.GetValue(s_migrationsDirectory) is { } directory
                ? MigrationSource.FromDirectory(directory)
                : MigrationSource.Embedded();
            var dump = global.Database is { Length: > 0 }
                ? await ReadTargetAsync(global, loggerFactory, migrations, cancellationToken)
                : await ReadThrowawayAsync(loggerFactory, migrations, cancellationToken);

            var file = parse.GetValue(s_out);
            if (parse.GetValue(s_check))
            {
                file ??= SchemaDump.RepositoryPath;
                if (!File.Exists(file))
                {
                    await Console.Error.WriteLineAsync($"{file} does not exist: generate it with '{SchemaDump.RegenerateCommand}'.");
                    return 1;
                }

                if (SchemaDump.Compare(await File.ReadAllTextAsync(file, cancellationToken), dump) is { } difference)
                {
                    await Console.Error.WriteLineAsync(SchemaDump.StaleMessage(file, difference));
                    return 1;
                }

                Console.WriteLine($"{file} is current ({migrations.Count} migrations).");
                return 0;
            }

            if (file is null)
            {
                Console.Write(dump);
                return 0;
            }

            await File.WriteAllTextAsync(file, dump, cancellationToken);
            Console.WriteLine($"Wrote {file} ({migrations.Count} migrations, {dump.Split('\n').Length - 1} lines).");
            return 0;
        });
        return command;
    }

    private static async Task<string> ReadThrowawayAsync(ILoggerFactory loggers, IReadOnlyList<Migration> migrations, CancellationToken cancellationToken)
    {
        await using var cluster = await EmbeddedPostgres.StartThrowawayAsync(logger: loggers.CreateLogger("Hourglass.EmbeddedPostgres"), cancellationToken: cancellationToken);
        await using var dataSource = ProductDataSource.Create(cluster.ConnectionString, direct: true, name: "hourglass-schema");
        await new Migrator(dataSource, loggers.CreateLogger<Migrator>()).MigrateAsync(migrations, cancellationToken);
        return SchemaDump.Render(await SchemaDump.ReadAsync(dataSource, cancellationToken));
    }

    private static async Task<string> ReadTargetAsync(
        GlobalOptions global, ILoggerFactory loggers, IReadOnlyList<Migration> migrations, CancellationToken cancellationToken)
    {
        await using var target = await DatabaseTarget.OpenAsync(global, loggers, cancellationToken);
        var applied = await new Migrator(target.DataSource).AppliedVersionsAsync(cancellationToken);
        var pending = migrations.Where(m => !applied.Contains(m.Version)).Select(m => m.FileName).ToList();
        if (pending.Count > 0)
        {
            await Console.Error.WriteLineAsync(
                $"note: {target.Description} lacks {pending.Count} migration(s) ({string.Join(", ", pending)}); its schema is read as it stands.");
        }

        return SchemaDump.Render(await SchemaDump.ReadAsync(target.DataSource, cancellationToken));
    }
}
