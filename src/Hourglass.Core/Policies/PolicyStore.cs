using System.Collections.Concurrent;
using Hourglass.Storage;
using Hourglass.Tenancy;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Policies;

/// <summary>A policy document in force (or saved) and its version: <c>v3</c>, or <c>default</c> for the built-in set.</summary>
internal sealed record PolicyVersion(PolicyDocument Document, string Version, int Number, string? CreatedBy, DateTimeOffset? CreatedAt);

/// <summary>
/// Policy documents in <c>tenant_policy_documents</c>: every save a new version, the highest in force, the built-in
/// default for a tenant without one. A document is validated before it is saved; a refused one changes nothing.
/// </summary>
internal static class PolicyStore
{
    // Parsed versions by (database, tenant, version), and the newest version parsed per (database, tenant): a saved version
    // never changes (tenant_policy_documents is insert-only), so it is parsed once per process. The database is part of
    // the key because one process can reach several databases holding the same tenant id with different documents (a
    // simulation and a test side by side, a tenant copied to another project): keyed by tenant alone, one database's
    // policy was applied to the other's cycles.
    private static readonly ConcurrentDictionary<(string Database, Guid Tenant, int Version), PolicyVersion> s_parsed = new();
    private static readonly ConcurrentDictionary<(string Database, Guid Tenant), int> s_newest = new();

    /// <summary>The database a connection reaches (server and database name): the scope of the parsed-version cache.</summary>
    internal static string DatabaseOf(NpgsqlConnection connection) => $"{connection.DataSource}/{connection.Database}";

    /// <summary>The newest version of the tenant's policy parsed in this process for this database (0: none yet).</summary>
    internal static int NewestParsed(string database, Guid tenantId) => s_newest.GetValueOrDefault((database, tenantId));

    /// <summary>A version parsed before in this process for this database (<see cref="NewestParsed"/> said which).</summary>
    internal static PolicyVersion Parsed(string database, Guid tenantId, int number) => s_parsed[(database, tenantId, number)];

    /// <summary>Parses a stored version once and remembers it for this database.</summary>
    internal static PolicyVersion Remember(string database, Guid tenantId, int number, string json, string? createdBy, DateTimeOffset createdAt)
    {
        var parsed = s_parsed.GetOrAdd((database, tenantId, number),
            _ => new PolicyVersion(PolicyDocument.Parse(json), $"v{number}", number, createdBy, createdAt));
        s_newest.AddOrUpdate((database, tenantId), number, (_, seen) => Math.Max(seen, number));
        return parsed;
    }

    public static PolicyVersion BuiltIn { get; } = new(PolicyDocument.Default, "default", 0, null, null);

    /// <summary>The version in force for a tenant (the highest saved), or the built-in default.</summary>
    public static async Task<PolicyVersion> InForceAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadAsync(connection, null, tenantId, null, cancellationToken) ?? BuiltIn;
    }

    /// <summary>
    /// The document of version <paramref name="number"/> (0: the built-in default), parsed once per process: a saved
    /// version never changes, so only a version not seen yet is read.
    /// </summary>
    /// <exception cref="PolicyValidationException">The stored document does not parse (it was written around the checks).</exception>
    public static async Task<PolicyDocument> DocumentAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int number,
        CancellationToken cancellationToken = default)
    {
        if (number == 0)
        {
            return BuiltIn.Document;
        }

        return s_parsed.TryGetValue((DatabaseOf(connection), tenantId, number), out var parsed)
            ? parsed.Document
            : (await ReadAsync(connection, transaction, tenantId, number, cancellationToken))?.Document ?? BuiltIn.Document;
    }

    /// <summary>One version (or the one in force when <paramref name="number"/> is null); null if there is none.</summary>
    public static async Task<PolicyVersion?> ReadAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int? number,
        CancellationToken cancellationToken = default)
    {
        await using var command = new NpgsqlCommand("""
            select version, document::text, created_by, created_at from public.tenant_policy_documents
            where tenant_id = $1 and ($2::integer is null or version = $2)
            order by version desc limit 1
            """, connection, transaction);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = (object?)number ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return Remember(DatabaseOf(connection), tenantId, reader.GetInt32(0), reader.GetString(1), reader.GetString(2),
            reader.GetFieldValue<DateTimeOffset>(3));
    }

    /// <summary>
    /// Validates and saves a new version. <paramref name="expectedVersion"/> (0 for "none saved yet") makes the save
    /// conditional, like an HTTP If-Match: if someone saved in between, nothing is saved and the error says so.
    /// </summary>
    /// <exception cref="PolicyValidationException">The document is malformed or contradicts itself; the version in force stays.</exception>
    public static async Task<PolicyVersion> SaveAsync(NpgsqlDataSource dataSource, Guid tenantId, string json, string author, string? comment,
        int? expectedVersion = null, CancellationToken cancellationToken = default)
    {
        var document = PolicyDocument.Parse(json);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Saves for one tenant queue behind each other: the version numbers have no gaps and no races.
        if (!await TenancyStore.LockTenantAsync(connection, transaction, tenantId, cancellationToken))
        {
            throw new HourglassException($"tenant {tenantId} does not exist");
        }

        var current = (await ReadAsync(connection, transaction, tenantId, null, cancellationToken))?.Number ?? 0;
        if (expectedVersion is { } expected && expected != current)
        {
            throw new HourglassException($"the policy in force is version {current}, not {expected}: someone saved in between; review it and save again");
        }

        await using var insert = new NpgsqlCommand("""
            insert into public.tenant_policy_documents (tenant_id, version, document, created_by, comment, created_at)
            values ($1, $2, $3, $4, $5, hourglass.now())
            returning created_at
            """, connection, transaction);
        insert.Parameters.Add(new() { Value = tenantId });
        insert.Parameters.Add(new() { Value = current + 1 });
        insert.Parameters.Add(new() { Value = document.Source.ToJsonString(), NpgsqlDbType = NpgsqlDbType.Jsonb });
        insert.Parameters.Add(new() { Value = author });
        insert.Parameters.Add(new() { Value = (object?)comment ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        var createdAt = (DateTime)(await insert.ExecuteScalarAsync(cancellationToken))!;
        await transaction.CommitAsync(cancellationToken);
        return new PolicyVersion(document, $"v{current + 1}", current + 1, author, new DateTimeOffset(createdAt, TimeSpan.Zero));
    }

    /// <summary>A tenant's saved versions, newest first.</summary>
    internal static async Task<IReadOnlyList<PolicyHistoryEntry>> HistoryAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select version, created_at, created_by, coalesce(comment, ''), jsonb_array_length(coalesce(document -> 'rules', '[]'))
            from public.tenant_policy_documents where tenant_id = $1 order by version desc
            """);
        command.Parameters.Add(new() { Value = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<PolicyHistoryEntry>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new(reader.GetInt32(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4)));
        }

        return rows;
    }

    /// <summary>A tenant's recorded violations since <paramref name="from"/>, newest first, optionally of one rule, severity or decision.</summary>
    internal static async Task<IReadOnlyList<PolicyViolationRow>> ViolationsAsync(NpgsqlDataSource dataSource, Guid tenantId, DateTimeOffset from,
        string? rule, string? severity, string? decision, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select created_at, policy_key, severity, decision, action_type, coalesce(message, ''), coalesce(policy_version, ''), blocked
            from public.agent_policy_violations
            where tenant_id = $1 and created_at >= $2 and ($3::text is null or policy_key = $3)
              and ($4::text is null or severity = $4) and ($5::text is null or decision = $5)
            order by created_at desc, id limit $6
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = from.ToUniversalTime() });
        command.Parameters.Add(new() { Value = (object?)rule ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = (object?)severity ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = (object?)decision ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = limit });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<PolicyViolationRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new(reader.GetFieldValue<DateTimeOffset>(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                reader.GetString(5), reader.GetString(6), reader.GetBoolean(7)));
        }

        return rows;
    }

    /// <summary>Violations of the 24 hours up to <paramref name="now"/>, (now - 24 h, now] as the policy caps count them, per tenant and severity.</summary>
    internal static Task<IReadOnlyList<(Guid TenantId, string Severity, long Count, long Blocked)>> ViolationCountsAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid? tenantId, DateTimeOffset now, CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.ForTenant(connection, transaction, """
            select t.id, v.severity, count(*), count(*) filter (where v.blocked)
            from public.tenants t
            join public.agent_policy_violations v on v.tenant_id = t.id and v.created_at > $2 - interval '24 hours' and v.created_at <= $2
            where ($1::uuid is null or t.id = $1)
            group by t.id, v.severity
            """, tenantId, now), r => (r.GetGuid(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3)), cancellationToken);

    /// <summary>The version in force as JSON (version, document, created_by, created_at), or null when none is saved.</summary>
    internal static Task<string?> InForceJsonAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, CancellationToken cancellationToken) =>
        StoreReads.JsonAsync(connection, transaction, """
            select json_build_object('version', version, 'document', document, 'created_by', created_by, 'created_at', created_at)::text
            from public.tenant_policy_documents where tenant_id = $1 order by version desc limit 1
            """, cancellationToken, tenantId);

    /// <summary>A page of a tenant's violations, optionally of one rule, severity and decision.</summary>
    internal static Task<JsonPage> ViolationsPageAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, PageRequest page,
        string? rule, string? severity, string? decision, CancellationToken cancellationToken) =>
        StoreReads.PageAsync(connection, transaction, """
            select id, run_id, policy_key, rule_kind, action_type, action, decision, severity, blocked, message, policy_version, created_at
            from public.agent_policy_violations
            where tenant_id = $1 and ($4::text is null or policy_key = $4) and ($5::text is null or severity = $5) and ($6::text is null or decision = $6)
            """, tenantId, page, cancellationToken, rule, severity, decision);

    /// <summary>Records one finding of a decision; a finding already recorded for the same action key and rule is kept as it was.</summary>
    internal static async Task RecordViolationAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, PolicyViolationRecord v,
        CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand("""
            insert into public.agent_policy_violations (tenant_id, run_id, policy_key, rule_kind, action_type, action, action_key, decision,
              severity, blocked, message, policy_version, created_at)
            values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            on conflict (tenant_id, action_key, policy_key) where action_key is not null do nothing
            """, connection, transaction);
        insert.Parameters.Add(new() { Value = v.TenantId });
        insert.Parameters.Add(new() { Value = v.RunId });
        insert.Parameters.Add(new() { Value = v.PolicyKey });
        insert.Parameters.Add(new() { Value = v.RuleKind });
        insert.Parameters.Add(new() { Value = v.ActionType });
        insert.Parameters.Add(new() { Value = v.ActionJson, NpgsqlDbType = NpgsqlDbType.Jsonb });
        insert.Parameters.Add(new() { Value = v.ActionKey });
        insert.Parameters.Add(new() { Value = v.Decision });
        insert.Parameters.Add(new() { Value = v.Severity });
        insert.Parameters.Add(new() { Value = v.Blocked });
        insert.Parameters.Add(new() { Value = v.Message });
        insert.Parameters.Add(new() { Value = v.PolicyVersion });
        insert.Parameters.Add(new() { Value = v.CreatedAt });
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    // The policy in force per tenant; its text only when this process has not parsed that version yet.
    internal const string InForceBatchSql = """
        select k.tenant_id, d.version, d.created_by, d.created_at, case when d.version = k.known then null else d.document::text end
        from unnest($1::uuid[], $2::integer[]) as k(tenant_id, known)
        cross join lateral (select p.version, p.created_by, p.created_at, p.document from public.tenant_policy_documents p
                            where p.tenant_id = k.tenant_id order by p.version desc limit 1) d
        """;

    // Seeding and inspection (benchmarks): one method per statement, on the caller's connection and transaction

    /// <summary><paramref name="count"/> blocked weekly-cap violations of the tenant, one every 17 minutes back from now.</summary>
    internal static Task<int> InsertSampleViolationsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int count,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.agent_policy_violations (tenant_id, policy_key, rule_kind, action_type, decision, severity, blocked, message, policy_version, created_at)
            select $1, 'contact-weekly-cap', 'cap', 'touch_task', 'deny', 'warning', true, 'cap reached', 'v1', now() - g * interval '17 minutes'
            from pg_catalog.generate_series(1, $2) g
            """, cancellationToken, tenantId, count);

    /// <summary>Every violation of every tenant.</summary>
    internal static async Task<long> CountViolationsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction, "select count(*) from public.agent_policy_violations", cancellationToken);

    /// <summary>The tenants' violations, removed.</summary>
    internal static Task<int> DeleteViolationsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "delete from public.agent_policy_violations where tenant_id = any ($1)", cancellationToken, tenants);

    // Seeding (simulator, demo, benchmarks): what the benchmarks check.

    /// <summary>How many violations were recorded of actions on the orders in <paramref name="orderIds"/> (the action's <c>order_id</c>).</summary>
    public static async Task<long> OrderViolationCountAsync(NpgsqlConnection connection, Guid[] orderIds, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, null, """
            select count(*) from public.agent_policy_violations v
            join unnest($1::uuid[]) o(id) on o.id = (v.action ->> 'order_id')::uuid
            """, cancellationToken, orderIds);

    // Violation trends (policy_violation_trends), run by the API in the caller's session and by the CLI.

    /// <summary>Tenant $1's violations per day (its time zone) by rule, severity and decision over $2 days, as one JSON array.</summary>
    internal const string ViolationTrendsJsonSql = "select coalesce(json_agg(t), '[]')::text from public.policy_violation_trends($1, $2) t";

    /// <summary>The same as rows. Columns: day, policy_key, severity, decision, violations.</summary>
    internal const string ViolationTrendsSql = "select day, policy_key, severity, decision, violations from public.policy_violation_trends($1, $2)";
}

/// <summary>One saved policy version: its number, when and by whom, the comment and how many rules it has.</summary>
internal sealed record PolicyHistoryEntry(int Version, DateTimeOffset CreatedAt, string CreatedBy, string Comment, int Rules);

/// <summary>One recorded policy violation.</summary>
internal sealed record PolicyViolationRow(DateTimeOffset CreatedAt, string PolicyKey, string Severity, string Decision, string ActionType,
    string Message, string PolicyVersion, bool Blocked);

/// <summary>One finding of a policy decision, as recorded in <c>agent_policy_violations</c>.</summary>
internal sealed record PolicyViolationRecord(Guid TenantId, Guid RunId, string PolicyKey, string RuleKind, string ActionType, string ActionJson,
    string ActionKey, string Decision, string Severity, bool Blocked, string Message, string PolicyVersion, DateTimeOffset CreatedAt);
