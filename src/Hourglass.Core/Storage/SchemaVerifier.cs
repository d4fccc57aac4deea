using Npgsql;

namespace Hourglass.Storage;

/// <summary>One line of the verification report.</summary>
internal sealed record VerificationCheck(string Section, string Subject, bool Passed, string Detail);

/// <summary>The verification report for one database.</summary>
internal sealed record VerificationReport(string Server, IReadOnlyList<VerificationCheck> Checks)
{
    public bool Passed => Checks.All(c => c.Passed);

    public IEnumerable<VerificationCheck> Failures => Checks.Where(c => !c.Passed);
}

/// <summary>
/// The customer's verification report for any database: every table with its row count, every function,
/// every index, RLS enabled with at least one policy on every table, and the service role's bypass.
/// </summary>
internal sealed class SchemaVerifier
{
    private readonly NpgsqlDataSource _dataSource;

    public SchemaVerifier(NpgsqlDataSource dataSource) => _dataSource = dataSource;

    public async Task<VerificationReport> VerifyAsync(IReadOnlyList<Migration> migrations, CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        var checks = new List<VerificationCheck>();
        var server = (string)(await ScalarAsync(connection, "select current_database() || ' on PostgreSQL ' || current_setting('server_version')", cancellationToken))!;

        var serviceRoleBypasses = false;
        foreach (var role in SchemaContract.ApiRoles)
        {
            var row = await RowAsync(connection, "select rolbypassrls from pg_roles where rolname = $1", cancellationToken, role);
            var exists = row is not null;
            checks.Add(new("Roles", role, exists, exists ? "present" : "missing"));
            if (role == "service_role" && exists)
            {
                serviceRoleBypasses = (bool)row![0];
            }
        }

        foreach (var function in new[] { "auth.uid()", "auth.jwt()", "auth.role()" })
        {
            var exists = await ScalarAsync(connection, "select to_regprocedure($1) is not null", cancellationToken, function) is true;
            checks.Add(new("Functions", function, exists, exists ? "present" : "missing"));
        }

        foreach (var table in SchemaContract.AllTables)
        {
            await CheckTableAsync(connection, table, serviceRoleBypasses, checks, cancellationToken);
        }

        foreach (var function in SchemaContract.ApiFunctions)
        {
            var row = await RowAsync(connection,
                "select p.proconfig from pg_proc p where p.oid = to_regprocedure($1)", cancellationToken, function);
            if (row is null)
            {
                checks.Add(new("Functions", function, false, "missing (or its signature differs)"));
                continue;
            }

            var config = row[0] as string[] ?? [];
            var pinned = config.Any(c => c is "search_path=\"\"" or "search_path=");
            checks.Add(new("Functions", function, pinned, pinned ? "present, search_path pinned" : "present, but search_path is not set to ''"));
        }

        foreach (var view in SchemaContract.MonitoringViews)
        {
            var row = await RowAsync(connection,
                "select coalesce(array_to_string(c.reloptions, ','), '') from pg_class c where c.oid = to_regclass($1) and c.relkind = 'v'",
                cancellationToken, "public." + view);
            var invoker = row is not null && ((string)row[0]!).Contains("security_invoker=true", StringComparison.Ordinal);
            checks.Add(new("Views", view, invoker, row is null ? "missing" : invoker ? "present, security_invoker" : "present, but not security_invoker: it would bypass RLS"));
        }

        foreach (var (index, table, partial) in SchemaContract.SeedIndexes)
        {
            var row = await RowAsync(connection, """
                select t.relname, i.indpred is not null
                from pg_class c
                join pg_index i on i.indexrelid = c.oid
                join pg_class t on t.oid = i.indrelid
                where c.oid = to_regclass('public.' || $1)
                """, cancellationToken, index);
            var ok = row is not null && (string)row[0] == table && (!partial || (bool)row[1]);
            var detail = row is null ? "missing"
                : (string)row[0] != table ? $"on {row[0]}, expected on {table}"
                : partial && !(bool)row[1] ? "present, but not partial" : $"on {table}{(partial ? " (partial)" : "")}";
            checks.Add(new("Indexes", index, ok, detail));
        }

        var applied = await ScalarAsync(connection, "select to_regclass('supabase_migrations.schema_migrations') is not null", cancellationToken) is true
            ? await AppliedStatementsAsync(connection, cancellationToken)
            : new Dictionary<string, string[]?>();
        foreach (var migration in migrations)
        {
            if (!applied.TryGetValue(migration.Version, out var statements))
            {
                checks.Add(new("Migrations", migration.FileName, false, "not applied"));
                continue;
            }

            // A file edited after it was applied means this database does not have what the file now says.
            var changed = statements is not null && !statements.SequenceEqual(migration.Statements);
            checks.Add(new("Migrations", migration.FileName, !changed,
                changed ? "applied, but the file has changed since: add a new migration instead of editing an applied one" : "applied"));
        }

        return new VerificationReport(server, checks);
    }

    private static async Task<Dictionary<string, string[]?>> AppliedStatementsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var applied = new Dictionary<string, string[]?>(StringComparer.Ordinal);
        await using var command = new NpgsqlCommand("select version, statements from supabase_migrations.schema_migrations", connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            applied[reader.GetString(0)] = reader.IsDBNull(1) ? null : reader.GetFieldValue<string[]>(1);
        }

        return applied;
    }

    private static async Task CheckTableAsync(
        NpgsqlConnection connection, string table, bool serviceRoleBypasses, List<VerificationCheck> checks, CancellationToken cancellationToken)
    {
        var row = await RowAsync(connection, """
            select c.relrowsecurity,
                   (select count(*) from pg_policy p where p.polrelid = c.oid),
                   exists (select 1 from pg_policy p
                           where p.polrelid = c.oid and p.polpermissive
                             and (select oid from pg_roles where rolname = 'service_role') = any (p.polroles))
            from pg_class c where c.oid = to_regclass('public.' || $1)
            """, cancellationToken, table);
        if (row is null)
        {
            checks.Add(new("Tables", table, false, "missing"));
            return;
        }

        var rows = (long)(await ScalarAsync(connection, $"select count(*) from public.{SqlIdentifier.Quote(table)}", cancellationToken))!;
        checks.Add(new("Tables", table, true, $"{rows} rows"));

        var rlsEnabled = (bool)row[0];
        var policies = (long)row[1];
        checks.Add(new("RLS", table, rlsEnabled && policies > 0,
            !rlsEnabled ? "row level security is disabled" : policies == 0 ? "enabled, but no policy (nobody but the owner sees rows)" : $"enabled, {policies} policies"));

        var servicePolicy = (bool)row[2];
        checks.Add(new("Service role", table, serviceRoleBypasses || servicePolicy,
            serviceRoleBypasses && servicePolicy ? "BYPASSRLS and a service_role policy"
            : serviceRoleBypasses ? "BYPASSRLS"
            : servicePolicy ? "service_role policy"
            : "service_role can neither bypass RLS nor has a policy"));
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = Command(connection, sql, parameters);
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is DBNull ? null : value;
    }

    private static async Task<object[]?> RowAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = Command(connection, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        var values = new object[reader.FieldCount];
        reader.GetValues(values);
        return values;
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, object[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new() { Value = parameter });
        }

        return command;
    }
}
