using System.CommandLine;
using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.Demo;
using Hourglass.Storage;
using Microsoft.Extensions.Logging;

namespace Hourglass.Server.Cli;

/// <summary>The command tree of the <c>hourglass</c> executable.</summary>
internal static class HourglassCommands
{
    private static readonly Option<string?> s_database = new("--database")
    {
        Description = "PostgreSQL to use: a postgresql:// URL or an Npgsql connection string. Default: HOURGLASS_DATABASE_URL, else the embedded cluster.",
        Recursive = true,
    };

    private static readonly Option<string?> s_dataDirectory = new("--data-dir")
    {
        Description = "Folder of the embedded cluster. Default: HOURGLASS_DATA_DIR/pg<major>, else ~/.local/share/hourglass/pg<major> (/var/lib/hourglass/pg<major> as root).",
        Recursive = true,
    };

    private static readonly Option<bool> s_verbose = new("--verbose", "-v")
    {
        Description = "Log progress (database start-up, each migration) to stderr.",
        Recursive = true,
    };

    private static readonly Option<bool> s_logJson = new("--log-json")
    {
        Description = "Write logs to stderr as JSON lines (structured, with scopes and state), for log shippers.",
        Recursive = true,
    };

    private static readonly Option<string?> s_migrationsDirectory = new("--migrations-dir")
    {
        Description = "Apply the *.sql files of this folder instead of the migrations built into hourglass.",
    };

    public static RootCommand Build()
    {
        var root = new RootCommand(
            "Hourglass: the autonomous account-management agent. Every hour, for every tenant: Plan, Act, React, Reflect.");
        root.Options.Add(s_database);
        root.Options.Add(s_dataDirectory);
        root.Options.Add(s_verbose);
        root.Options.Add(s_logJson);

        var demo = new Command("demo", "Start the embedded database, migrate it, seed a demo tenant and print the verification report.");
        demo.SetAction(DemoAsync);
        root.Subcommands.Add(demo);

        var migrate = new Command("migrate", "Apply pending migrations (supabase/migrations), each file in one transaction.");
        migrate.Options.Add(s_migrationsDirectory);
        migrate.SetAction(MigrateAsync);
        root.Subcommands.Add(migrate);

        var verify = new Command("verify", "Print the verification report: tables, functions, indexes, RLS and service-role bypass. Exits 1 on any miss.");
        verify.Options.Add(s_migrationsDirectory);
        verify.SetAction(VerifyAsync);
        root.Subcommands.Add(verify);

        root.Subcommands.Add(BuildDatabaseCommand());
        root.Subcommands.Add(ServeCommand.Build(Options, CreateLoggers));
        root.Subcommands.Add(StatusCommand.Build(Options, CreateLoggers));
        root.Subcommands.Add(SimulateCommand.Build(Options, CreateLoggers));
        var commands = CycleCommands.Build(Options, CreateLoggers)
            .Concat(EngagementCommands.Build(Options, CreateLoggers))
            .Concat(ChannelCommands.Build(Options, CreateLoggers))
            .Concat(InboundCommands.Build(Options, CreateLoggers))
            .Concat(PolicyCommands.Build(Options, CreateLoggers))
            .Concat(OrderCommands.Build(Options, CreateLoggers))
            .Concat(EventCommands.Build(Options, CreateLoggers))
            .Concat(MemberCommands.Build(Options, CreateLoggers));
        foreach (var command in commands)
        {
            root.Subcommands.Add(command);
        }

        // After the others: 'inbound mailbox' joins the 'inbound' command if another part made it.
        MailboxCommands.AddTo(root, Options, CreateLoggers);

        return root;
    }

    private static Command BuildDatabaseCommand()
    {
        var db = new Command("db", "Manage the embedded PostgreSQL cluster; write the schema as migrated.");

        var start = new Command("start", "Start the embedded cluster (if not running) and print its connection string; it keeps running.");
        start.SetAction(async (parse, cancellationToken) =>
        {
            using var loggers = CreateLoggers(parse);
            var cluster = await EmbeddedPostgres.StartAsync(
                new EmbeddedPostgresOptions { RootDirectory = parse.GetValue(s_dataDirectory) }, loggers.CreateLogger("Hourglass.EmbeddedPostgres"), cancellationToken);
            Console.WriteLine($"PostgreSQL {cluster.Binaries.MajorVersion} is running on 127.0.0.1:{cluster.Port} (data in {cluster.DataDirectory}).");
            Console.WriteLine($"Connection string: {cluster.ConnectionString}");
            Console.WriteLine("Stop it with 'hourglass db stop'.");
            return 0;
        });
        db.Subcommands.Add(start);

        var stop = new Command("stop", "Stop the embedded cluster.");
        stop.SetAction(async (parse, cancellationToken) =>
        {
            var stopped = await EmbeddedPostgres.StopRunningAsync(
                new EmbeddedPostgresOptions { RootDirectory = parse.GetValue(s_dataDirectory) }, cancellationToken);
            Console.WriteLine(stopped is null ? "The embedded cluster is not running." : $"Stopped PostgreSQL ({stopped}).");
            return 0;
        });
        db.Subcommands.Add(stop);
        db.Subcommands.Add(SchemaCommand.Build(Options, CreateLoggers));
        return db;
    }

    private static async Task<int> DemoAsync(ParseResult parse, CancellationToken cancellationToken)
    {
        using var loggers = CreateLoggers(parse);
        await using var target = await DatabaseTarget.OpenAsync(Options(parse), loggers, cancellationToken);
        Console.WriteLine($"Database: {target.Description}");

        var migrations = MigrationSource.Embedded();
        var migrated = await new Migrator(target.DataSource, loggers.CreateLogger<Migrator>()).MigrateAsync(migrations, cancellationToken);
        PrintMigrationReport(migrated);

        var demo = await new DemoSeeder(target.DataSource).SeedAsync(cancellationToken);
        Console.WriteLine();
        Console.WriteLine($"Demo tenant: {demo.TenantName} ({demo.TenantId}){(demo.Created ? "" : ", already seeded")}");
        Console.WriteLine($"  {demo.Accounts} accounts, {demo.Contacts} contacts, {demo.Products} products, {demo.Orders} orders ({demo.QueuedOrders} queued for validation)");
        Console.WriteLine($"  {demo.Clocks} engagement clocks: {demo.Compliant} compliant, {demo.DueSoon} due soon, {demo.Overdue} overdue " +
                          $"(refresh_engagement_compliance changed {demo.ClocksChangedByRefresh})");

        // One cycle for the demo tenant, as the worker would run it at the top of the hour.
        var worker = CycleComposition.CreateWorker(target.DataSource, ProductClock.Time, summaries: Narrative.FromEnvironment(loggers), loggers: loggers);
        var cycle = await worker.RunManualAsync(demo.TenantId, dryRun: false, hour: null, cancellationToken);
        Console.WriteLine($"Cycle: run {cycle.RunId} {cycle.Status}");
        if (await HourlyReflections.LatestSummaryAsync(target.DataSource, demo.TenantId, cancellationToken) is { } summary)
        {
            Console.WriteLine($"  {summary}");
        }

        Console.WriteLine();

        var report = await new SchemaVerifier(target.DataSource).VerifyAsync(migrations, cancellationToken);
        VerificationPrinter.Print(report, Console.Out);
        return report.Passed ? 0 : 1;
    }

    private static async Task<object?> ScalarAsync(DatabaseTarget target, string sql, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = target.DataSource.CreateCommand(sql);
        command.Parameters.Add(new() { Value = tenantId });
        return await command.ExecuteScalarAsync(cancellationToken);
    }

    private static async Task<int> MigrateAsync(ParseResult parse, CancellationToken cancellationToken)
    {
        using var loggers = CreateLoggers(parse);
        var migrations = LoadMigrations(parse);
        await using var target = await DatabaseTarget.OpenAsync(Options(parse), loggers, cancellationToken);
        Console.WriteLine($"Database: {target.Description}");
        var report = await new Migrator(target.DataSource, loggers.CreateLogger<Migrator>()).MigrateAsync(migrations, cancellationToken);
        PrintMigrationReport(report);
        return 0;
    }

    private static async Task<int> VerifyAsync(ParseResult parse, CancellationToken cancellationToken)
    {
        using var loggers = CreateLoggers(parse);
        var migrations = LoadMigrations(parse);
        await using var target = await DatabaseTarget.OpenAsync(Options(parse), loggers, cancellationToken);
        var report = await new SchemaVerifier(target.DataSource).VerifyAsync(migrations, cancellationToken);
        VerificationPrinter.Print(report, Console.Out);
        return report.Passed ? 0 : 1;
    }

    private static IReadOnlyList<Migration> LoadMigrations(ParseResult parse) =>
        parse.GetValue(s_migrationsDirectory) is { } directory ? MigrationSource.FromDirectory(directory) : MigrationSource.Embedded();

    private static void PrintMigrationReport(MigrationReport report)
    {
        foreach (var migration in report.Applied)
        {
            Console.WriteLine($"  applied {migration.FileName} ({migration.Statements.Count} statements)");
        }

        Console.WriteLine(report.Applied.Count == 0
            ? $"Migrations: up to date ({report.AlreadyApplied.Count} applied before)."
            : $"Migrations: applied {report.Applied.Count} in {report.Elapsed.TotalSeconds:F1} s ({report.AlreadyApplied.Count} applied before).");
    }

    private static GlobalOptions Options(ParseResult parse) =>
        new(parse.GetValue(s_database), parse.GetValue(s_dataDirectory), parse.GetValue(s_verbose));

    private static ILoggerFactory CreateLoggers(ParseResult parse) =>
        LoggerFactory.Create(builder =>
        {
            builder.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            if (parse.GetValue(s_logJson))
            {
                builder.AddJsonConsole(o => o.IncludeScopes = true);
            }
            else
            {
                builder.AddSimpleConsole(o => o.SingleLine = true);
            }

            builder.AddFilter(level => level >= (parse.GetValue(s_verbose) || parse.GetValue(s_logJson) ? LogLevel.Information : LogLevel.Warning));
        });
}
