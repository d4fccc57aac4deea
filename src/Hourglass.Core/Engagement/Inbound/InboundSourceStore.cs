using Npgsql;

namespace Hourglass.Engagement.Inbound;

/// <summary>A tenant's inbound source as the CLI lists it and the webhook endpoint reads it.</summary>
internal sealed record InboundSourceRow(Guid Id, string Source, bool Enabled, string? SecretRef, DateTimeOffset UpdatedAt);

/// <summary>
/// The webhook sources' statements on <c>inbound_sources</c> (docs/inbound.md, "Setting up a source"): set and list for
/// <c>hourglass inbound</c>, and the endpoint's read of a tenant's source. Secrets are never stored: <c>secret_ref</c>
/// names the server's environment variable holding one.
/// </summary>
internal static class InboundSourceStore
{
    /// <summary>
    /// Creates or replaces a tenant's webhook source (hourglass, resend, sendgrid, postmark) with its secret's variable,
    /// enabled or not; answers the secret_ref it had before (null when new).
    /// </summary>
    public static async Task<(bool Created, string? PreviousSecretRef)> SetWebhookSourceAsync(NpgsqlDataSource dataSource, Guid tenantId, string source,
        string secretRef, bool enabled, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            with previous as (
              select s.secret_ref from public.inbound_sources s where s.tenant_id = $1 and s.source = $2
            )
            insert into public.inbound_sources as s (tenant_id, source, secret_ref, enabled)
            values ($1, $2, $3, $4)
            on conflict (tenant_id, source) do update
              set secret_ref = excluded.secret_ref, enabled = excluded.enabled, updated_at = hourglass.now()
            returning not exists (select from previous), (select p.secret_ref from previous p)
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = source });
        command.Parameters.Add(new() { Value = secretRef });
        command.Parameters.Add(new() { Value = enabled });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetBoolean(0), reader.IsDBNull(1) ? null : reader.GetString(1));
    }

    /// <summary>Switches a tenant's source off, keeping its settings; false when the tenant has no such source.</summary>
    public static async Task<bool> DisableSourceAsync(NpgsqlDataSource dataSource, Guid tenantId, string source, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "update public.inbound_sources set enabled = false, updated_at = hourglass.now() where tenant_id = $1 and source = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = source });
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>A tenant's sources, by name.</summary>
    public static async Task<IReadOnlyList<InboundSourceRow>> SourcesAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "select id, source, enabled, secret_ref, updated_at from public.inbound_sources where tenant_id = $1 order by source");
        command.Parameters.Add(new() { Value = tenantId });
        var rows = new List<InboundSourceRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(Row(reader));
        }

        return rows;
    }

    /// <summary>
    /// The source a webhook is posted to, or null when the tenant has none of that name (or there is no such tenant: the
    /// endpoint answers both alike).
    /// </summary>
    public static async Task<InboundSourceRow?> WebhookSourceAsync(NpgsqlDataSource dataSource, Guid tenantId, string source, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "select id, source, enabled, secret_ref, updated_at from public.inbound_sources where tenant_id = $1 and source = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = source });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Row(reader) : null;
    }

    private static InboundSourceRow Row(NpgsqlDataReader reader) =>
        new(reader.GetGuid(0), reader.GetString(1), reader.GetBoolean(2), reader.IsDBNull(3) ? null : reader.GetString(3),
            reader.GetFieldValue<DateTimeOffset>(4));
}
