using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement;

/// <summary>A tenant's message channel as stored: where it sends, how it signs in, the name of its secret's variable.</summary>
internal sealed record MessageChannelSettings(string Channel, bool Enabled, string? WebhookUrl, string? SmtpHost, int? SmtpPort, string SmtpSecurity,
    string? SmtpUsername, string? SmtpFrom, string? SecretRef, string? SmtpTlsPin);

/// <summary>
/// The only code that names the engagement tables in SQL: clocks and frequency rules, <c>cards</c>, message
/// channels, the outbox and its attempts, and <c>monitoring_engagement_compliance</c>
/// (docs/development.md, "Where SQL goes").
/// </summary>
internal static class EngagementStore
{
    /// <summary>
    /// Makes the tenant's channel exactly <paramref name="channel"/> (enabled), and returns the optional settings the
    /// previous one had and this one leaves out (a TLS pin, a login, a secret), so none is dropped without a word.
    /// </summary>
    public static async Task<string[]> ReplaceMessageChannelAsync(NpgsqlDataSource dataSource, Guid tenantId, MessageChannelSettings channel,
        CancellationToken cancellationToken)
    {
        // The CTE sees the row as it was before the upsert (a data-modifying statement's snapshot).
        await using var command = dataSource.CreateCommand("""
            with previous as (
              select c.smtp_username, c.secret_ref, c.smtp_tls_pin_sha256 from public.message_channels c where c.tenant_id = $1 and c.channel = $2
            )
            insert into public.message_channels (tenant_id, channel, enabled, webhook_url, smtp_host, smtp_port, smtp_security, smtp_username,
                                                 smtp_from, secret_ref, smtp_tls_pin_sha256)
            values ($1, $2, true, $3, $4, $5, $6, $7, $8, $9, $10)
            on conflict (tenant_id, channel) do update
            set enabled = true, webhook_url = excluded.webhook_url, smtp_host = excluded.smtp_host, smtp_port = excluded.smtp_port,
                smtp_security = excluded.smtp_security, smtp_username = excluded.smtp_username, smtp_from = excluded.smtp_from,
                secret_ref = excluded.secret_ref, smtp_tls_pin_sha256 = excluded.smtp_tls_pin_sha256, updated_at = hourglass.now()
            returning array_remove(array[
              case when (select p.smtp_tls_pin_sha256 from previous p) is not null and smtp_tls_pin_sha256 is null
                   then 'the TLS pin (sha256:' || (select p.smtp_tls_pin_sha256 from previous p) || ')' end,
              case when (select p.smtp_username from previous p) is not null and smtp_username is null
                   then 'the login ' || (select p.smtp_username from previous p) end,
              case when (select p.secret_ref from previous p) is not null and secret_ref is null
                   then 'the secret ref ' || (select p.secret_ref from previous p) end], null)
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = channel.Channel });
        command.Parameters.Add(Text(channel.WebhookUrl));
        command.Parameters.Add(Text(channel.SmtpHost));
        command.Parameters.Add(new() { Value = (object?)channel.SmtpPort ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        command.Parameters.Add(Text(channel.SmtpSecurity));
        command.Parameters.Add(Text(channel.SmtpUsername));
        command.Parameters.Add(Text(channel.SmtpFrom));
        command.Parameters.Add(Text(channel.SecretRef));
        command.Parameters.Add(Text(channel.SmtpTlsPin));
        return (string[])(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>A tenant's channels by name.</summary>
    public static async Task<IReadOnlyList<MessageChannelSettings>> MessageChannelsAsync(NpgsqlDataSource dataSource, Guid tenantId,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select channel, enabled, webhook_url, smtp_host, smtp_port, smtp_security, smtp_username, smtp_from, secret_ref, smtp_tls_pin_sha256
            from public.message_channels where tenant_id = $1 order by channel
            """);
        command.Parameters.Add(new() { Value = tenantId });
        var rows = new List<MessageChannelSettings>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
            rows.Add(new(reader.GetString(0), reader.GetBoolean(1), Text(2), Text(3), reader.IsDBNull(4) ? null : reader.GetInt32(4), reader.GetString(5),
                Text(6), Text(7), Text(8), Text(9)));
        }

        return rows;
    }

    /// <summary>Switches a tenant's channel off, keeping its settings; false when the tenant has no such channel.</summary>
    public static async Task<bool> DisableMessageChannelAsync(NpgsqlDataSource dataSource, Guid tenantId, string channel, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "update public.message_channels set enabled = false, updated_at = hourglass.now() where tenant_id = $1 and channel = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = channel });
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };
}
