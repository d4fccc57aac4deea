using System.Collections.Concurrent;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Policies;

/// <summary>A policy document in force (or saved) and its version: <c>v3</c>, or <c>default</c> for the built-in set.</summary>
public sealed record PolicyVersion(PolicyDocument Document, string Version, int Number, string? CreatedBy, DateTimeOffset? CreatedAt);

/// <summary>
/// Policy documents in <c>tenant_policy_documents</c>: every save a new version, the highest in force, the built-in
/// default for a tenant without one. A document is validated before it is saved; a refused one changes nothing.
/// </summary>
public static class PolicyStore
{
    // Parsed documents by (tenant, version): a version never changes once saved.
    private static readonly ConcurrentDictionary<(Guid, int), PolicyDocument> s_parsed = new();

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

        return s_parsed.TryGetValue((tenantId, number), out var parsed)
            ? parsed
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

        var version = reader.GetInt32(0);
        var json = reader.GetString(1);
        var document = s_parsed.GetOrAdd((tenantId, version), _ => PolicyDocument.Parse(json));
        return new PolicyVersion(document, $"v{version}", version, reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3));
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
        await using (var lockTenant = new NpgsqlCommand("select id from public.tenants where id = $1 for update", connection, transaction))
        {
            lockTenant.Parameters.Add(new() { Value = tenantId });
            if (await lockTenant.ExecuteScalarAsync(cancellationToken) is null)
            {
                throw new HourglassException($"tenant {tenantId} does not exist");
            }
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
}
