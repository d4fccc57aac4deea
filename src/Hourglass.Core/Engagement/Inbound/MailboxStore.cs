using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement.Inbound;

/// <summary>
/// A tenant's shared mailbox as <c>inbound_sources</c> holds it (source 'imap'): where to read, the name of the worker's
/// environment variable that holds the password, and the position reached (UIDVALIDITY and the last UID recorded).
/// </summary>
internal sealed record MailboxSource(
    Guid Id,
    Guid TenantId,
    bool Enabled,
    string Host,
    int Port,
    string Security,
    string Username,
    string Mailbox,
    string SecretRef,
    long? UidValidity,
    long? LastUid,
    DateTimeOffset? LastPolledAt,
    string? LastError);

/// <summary>A mailbox as <c>inbound mailbox set</c> writes it, after validation.</summary>
internal sealed record MailboxSettings(string Host, int Port, string Security, string Username, string Mailbox, string SecretRef);

/// <summary>
/// The mailbox reader's reads and writes of <c>inbound_sources</c> (its 'imap' rows; docs/inbound.md, "Replies from a
/// mailbox (IMAP)"), and the advisory lock that lets one worker at a time poll a mailbox.
/// </summary>
internal static class MailboxStore
{
    // pg_try_advisory_lock(int4, int4)'s first key: the mailbox polls' own space ('imap' as bytes), so they never meet
    // the migrator's lock (a bigint key) or another part's. The second key is the source's id hashed: two mailboxes
    // sharing a hash only take turns.
    private const int PollLockSpace = 0x696d6170;

    private const string Columns = """
        s.id, s.tenant_id, s.enabled, s.imap_host, s.imap_port, s.imap_security, s.imap_username, s.imap_mailbox, s.secret_ref,
        s.imap_uid_validity, s.imap_last_uid, s.last_polled_at, s.last_error
        """;

    /// <summary>The enabled mailboxes of one tenant (or of all, when <paramref name="tenantId"/> is null), oldest poll first.</summary>
    public static async Task<IReadOnlyList<MailboxSource>> EnabledAsync(NpgsqlDataSource dataSource, Guid? tenantId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await StoreReads.ListAsync(StoreReads.ForTenant(connection, null, $"""
            select {Columns}
            from public.inbound_sources s
            where s.source = 'imap' and s.enabled and ($1::uuid is null or s.tenant_id = $1)
            order by s.last_polled_at nulls first, s.id
            """, tenantId), Read, cancellationToken);
    }

    /// <summary>Every mailbox of one tenant (or of all), enabled or not, for <c>inbound mailbox list</c>.</summary>
    public static async Task<IReadOnlyList<MailboxSource>> ListAsync(NpgsqlDataSource dataSource, Guid? tenantId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await StoreReads.ListAsync(StoreReads.ForTenant(connection, null, $"""
            select {Columns}
            from public.inbound_sources s
            where s.source = 'imap' and ($1::uuid is null or s.tenant_id = $1)
            order by s.tenant_id
            """, tenantId), Read, cancellationToken);
    }

    /// <summary>One mailbox by its source id, or null.</summary>
    public static async Task<MailboxSource?> FindAsync(NpgsqlDataSource dataSource, Guid sourceId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var rows = await StoreReads.ListAsync(StoreReads.Command(connection, null, $"""
            select {Columns}
            from public.inbound_sources s
            where s.id = $1 and s.source = 'imap'
            """, sourceId), Read, cancellationToken);
        return rows.Count == 0 ? null : rows[0];
    }

    /// <summary>
    /// Creates or replaces the tenant's mailbox and enables it. The position is kept when the same mailbox (host, user and
    /// folder) is set again, and forgotten when it points elsewhere (another mailbox's UIDs mean nothing here).
    /// </summary>
    public static async Task<Guid> SetAsync(NpgsqlDataSource dataSource, Guid tenantId, MailboxSettings settings, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            insert into public.inbound_sources (tenant_id, source, enabled, secret_ref, imap_host, imap_port, imap_security, imap_username, imap_mailbox)
            values ($1, 'imap', true, $2, $3, $4, $5, $6, $7)
            on conflict (tenant_id, source) do update
            set enabled = true, secret_ref = excluded.secret_ref, imap_port = excluded.imap_port, imap_security = excluded.imap_security,
                imap_host = excluded.imap_host, imap_username = excluded.imap_username, imap_mailbox = excluded.imap_mailbox,
                imap_uid_validity = case when (inbound_sources.imap_host, inbound_sources.imap_username, inbound_sources.imap_mailbox)
                                              is not distinct from (excluded.imap_host, excluded.imap_username, excluded.imap_mailbox)
                                         then inbound_sources.imap_uid_validity end,
                imap_last_uid = case when (inbound_sources.imap_host, inbound_sources.imap_username, inbound_sources.imap_mailbox)
                                          is not distinct from (excluded.imap_host, excluded.imap_username, excluded.imap_mailbox)
                                     then inbound_sources.imap_last_uid end,
                last_error = null, updated_at = hourglass.now()
            returning id
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = settings.SecretRef });
        command.Parameters.Add(new() { Value = settings.Host });
        command.Parameters.Add(new() { Value = settings.Port, NpgsqlDbType = NpgsqlDbType.Integer });
        command.Parameters.Add(new() { Value = settings.Security });
        command.Parameters.Add(new() { Value = settings.Username });
        command.Parameters.Add(new() { Value = settings.Mailbox });
        return (Guid)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>Switches the tenant's mailbox off (its settings and position are kept). False when it has none.</summary>
    public static async Task<bool> DisableAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            update public.inbound_sources set enabled = false, updated_at = hourglass.now()
            where tenant_id = $1 and source = 'imap'
            """);
        command.Parameters.Add(new() { Value = tenantId });
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>
    /// Takes the mailbox's poll lock on <paramref name="connection"/> (a session-level advisory lock: released by
    /// <see cref="UnlockAsync"/>, or by PostgreSQL when the session ends, so a crashed worker holds nothing). False when
    /// another worker is polling it now.
    /// </summary>
    public static async Task<bool> TryLockAsync(NpgsqlConnection connection, Guid sourceId, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<bool>(connection, null, "select pg_try_advisory_lock($1, hashtext($2))", cancellationToken, PollLockSpace, sourceId.ToString());

    /// <summary>Releases the lock <see cref="TryLockAsync"/> took.</summary>
    public static async Task UnlockAsync(NpgsqlConnection connection, Guid sourceId, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<bool>(connection, null, "select pg_advisory_unlock($1, hashtext($2))", cancellationToken, PollLockSpace, sourceId.ToString());

    /// <summary>
    /// The mailbox's position after a message was recorded (or skipped): UIDVALIDITY and the last UID handled. Never moves
    /// back within one UIDVALIDITY, so a slow poller that lost its lock cannot undo a faster one's progress.
    /// </summary>
    public static async Task SavePositionAsync(NpgsqlConnection connection, Guid sourceId, long uidValidity, long lastUid, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, null, """
            update public.inbound_sources
            set imap_uid_validity = $2,
                imap_last_uid = case when imap_uid_validity = $2 then greatest(coalesce(imap_last_uid, 0), $3) else $3 end,
                updated_at = hourglass.now()
            where id = $1 and source = 'imap'
            """, sourceId, uidValidity, lastUid);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The end of a poll: when it ran and what went wrong (null: nothing), the only write a failed poll makes.</summary>
    public static async Task SavePollAsync(NpgsqlConnection connection, Guid sourceId, string? lastError, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, null, """
            update public.inbound_sources
            set last_polled_at = hourglass.now(), last_error = $2, updated_at = hourglass.now()
            where id = $1 and source = 'imap'
            """, sourceId, lastError);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static MailboxSource Read(NpgsqlDataReader r) => new(
        r.GetGuid(0), r.GetGuid(1), r.GetBoolean(2), r.GetString(3), r.GetInt32(4), r.GetString(5), r.GetString(6), r.GetString(7), r.GetString(8),
        r.IsDBNull(9) ? null : r.GetInt64(9),
        r.IsDBNull(10) ? null : r.GetInt64(10),
        r.IsDBNull(11) ? null : r.GetFieldValue<DateTimeOffset>(11),
        r.IsDBNull(12) ? null : r.GetString(12));
}
