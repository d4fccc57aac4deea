using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Cycles;

/// <summary>A claimed, due tenant.</summary>
internal sealed record DueTenant(Guid TenantId, string Cron, string TimeZone, DateTimeOffset NextDueAt);

/// <summary>What a cycle may do for a tenant: its time zone (for the day's budget) and its budgets.</summary>
internal sealed record TenantLimits(TimeZoneInfo Zone, int MaxActionsPerCycle, int MaxActionsPerDay);

/// <summary>
/// The schedules store: how workers claim due tenants in <c>agent_tenant_schedules</c> and hand them back. The operator's
/// levers on the same rows (schedule, pause, resume) are <see cref="TenantControl"/>; the lease's claim renewal is
/// <see cref="TenantLease"/>. Whether a tenant is due and whether a claim has expired is judged by the database's clock
/// (hourglass.now()): the one clock all workers share, whatever each machine's own clock says.
/// </summary>
internal sealed class ScheduleStore(NpgsqlDataSource dataSource)
{
    /// <summary>Claims up to <paramref name="limit"/> due, unpaused, unclaimed tenants with FOR UPDATE SKIP LOCKED.</summary>
    public async Task<IReadOnlyList<DueTenant>> ClaimDueAsync(string workerId, int limit, int leaseMinutes, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(ClaimDueSql);
        command.Parameters.Add(new() { Value = workerId });
        command.Parameters.Add(new() { Value = limit });
        command.Parameters.Add(new() { Value = leaseMinutes });
        var claimed = new List<DueTenant>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            claimed.Add(new DueTenant(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3)));
        }

        return claimed;
    }

    /// <summary>Claims up to $2 due tenants for worker $1 for $3 minutes.</summary>
    internal const string ClaimDueSql = """
        with due as (
          select s.tenant_id from public.agent_tenant_schedules s
          where s.next_due_at <= hourglass.now() and not s.paused
            and (s.claimed_until is null or s.claimed_until <= hourglass.now())
            and not (select c.paused from hourglass.agent_control c where c.singleton)
          order by s.next_due_at
          limit $2
          for update of s skip locked)
        update public.agent_tenant_schedules s
        set claimed_by = $1, claimed_until = hourglass.now() + make_interval(mins => $3), updated_at = hourglass.now()
        from due, public.tenants t
        where s.tenant_id = due.tenant_id and t.id = s.tenant_id
        returning s.tenant_id, s.cron, coalesce(s.timezone, t.timezone), s.next_due_at
        """;

    /// <summary>
    /// Advances the schedule past a cycle and releases the claim. Failures count towards the automatic pause; the claim
    /// guard keeps a worker that lost its claim from overwriting its successor's state. Returns the pause reason when
    /// this failure paused the tenant.
    /// </summary>
    public async Task<string?> CompleteClaimAsync(Guid tenantId, string workerId, DateTimeOffset? scheduledFor, DateTimeOffset nextDue, bool failed,
        string? error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(CompleteClaimSql);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = workerId });
        command.Parameters.Add(new() { Value = (object?)scheduledFor ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new() { Value = nextDue });
        command.Parameters.Add(new() { Value = failed });
        command.Parameters.Add(new() { Value = now });
        command.Parameters.Add(new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) && reader.GetBoolean(0) && failed
            ? (reader.IsDBNull(1) ? "" : reader.GetString(1))
            : null;
    }

    /// <summary>Advances tenant $1's schedule and releases worker $2's claim.</summary>
    internal const string CompleteClaimSql = """
        update public.agent_tenant_schedules s
        set last_scheduled_for = coalesce($3, s.last_scheduled_for),
            next_due_at = $4,
            claimed_by = null,
            claimed_until = null,
            consecutive_failures = case when $5 then s.consecutive_failures + 1 else 0 end,
            paused = s.paused or ($5 and s.consecutive_failures + 1 >= s.auto_pause_after_failures),
            paused_at = case when not s.paused and $5 and s.consecutive_failures + 1 >= s.auto_pause_after_failures then $6 else s.paused_at end,
            paused_by = case when not s.paused and $5 and s.consecutive_failures + 1 >= s.auto_pause_after_failures then 'hourglass' else s.paused_by end,
            paused_reason = case when not s.paused and $5 and s.consecutive_failures + 1 >= s.auto_pause_after_failures
              then format('automatically paused after %s consecutive failed cycles; last error: %s', s.consecutive_failures + 1, coalesce($7, 'unknown'))
              else s.paused_reason end,
            updated_at = $6
        where s.tenant_id = $1 and s.claimed_by = $2
        returning s.paused, s.paused_reason
        """;

    /// <summary>Gives a claimed tenant back at once (a worker shutting down mid-cycle).</summary>
    public async Task ReleaseClaimAsync(Guid tenantId, string workerId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "update public.agent_tenant_schedules set claimed_by = null, claimed_until = null where tenant_id = $1 and claimed_by = $2");
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = workerId });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The tenant's time zone and action budgets (defaults where it has no schedule row).</summary>
    public async Task<TenantLimits> LimitsAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(LimitsSql);
        command.Parameters.Add(new() { Value = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            throw new HourglassException($"tenant {tenantId} does not exist");
        }

        var zone = TimeZoneInfo.TryFindSystemTimeZoneById(reader.GetString(0), out var found) ? found : TimeZoneInfo.Utc;
        return new TenantLimits(zone, reader.GetInt32(1), reader.GetInt32(2));
    }

    /// <summary>Tenant $1's time zone and budgets.</summary>
    internal const string LimitsSql = """
        select t.timezone, coalesce(s.max_actions_per_cycle, 50), coalesce(s.max_actions_per_day, 500)
        from public.tenants t left join public.agent_tenant_schedules s on s.tenant_id = t.id
        where t.id = $1
        """;

    /// <summary>
    /// Every tenant with its schedule ($1 one tenant, or null for all), as the status command shows it; the claim only while
    /// it lasts past $2. Columns: id, name, tenant zone, cron, schedule zone, next due, paused, reason, by, at, consecutive
    /// failures, auto-pause threshold, claimed by.
    /// </summary>
    internal const string StatusSql = """
        select t.id, t.name, t.timezone, s.cron, s.timezone, s.next_due_at, s.paused, s.paused_reason, s.paused_by, s.paused_at,
               s.consecutive_failures, s.auto_pause_after_failures, case when s.claimed_until > $2 then s.claimed_by end
        from public.tenants t join public.agent_tenant_schedules s on s.tenant_id = t.id
        where ($1::uuid is null or t.id = $1)
        order by t.name, t.id
        """;

    // Seeding and inspection (benchmarks): one method per statement, on the caller's connection and transaction

    /// <summary>Puts the tenants' next cycle a year from now, out of the worker's way.</summary>
    public static Task<int> PostponeAYearAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants,
        CancellationToken cancellationToken) =>
        Storage.StoreReads.ExecuteAsync(connection, transaction,
            "update public.agent_tenant_schedules set next_due_at = now() + interval '1 year' where tenant_id = any ($1)", cancellationToken, tenants);

    /// <summary>Makes the tenants due at the top of the current hour (UTC, by the database's clock), as an hourly cron's occurrence.</summary>
    public static Task<int> MakeDueThisHourAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants,
        CancellationToken cancellationToken) =>
        Storage.StoreReads.ExecuteAsync(connection, transaction,
            "update public.agent_tenant_schedules set next_due_at = pg_catalog.date_trunc('hour', hourglass.now(), 'UTC') where tenant_id = any ($1)",
            cancellationToken, tenants);

    /// <summary>How many of the tenants are due now.</summary>
    public static async Task<long> CountDueAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants,
        CancellationToken cancellationToken) =>
        await Storage.StoreReads.ScalarAsync<long>(connection, transaction,
            "select count(*) from public.agent_tenant_schedules where tenant_id = any ($1) and next_due_at <= now()", cancellationToken, tenants);

    // The lease and the API (statements moved from TenantLease and ApiEndpoints).

    /// <summary>
    /// The lease's renewal of the tenant's claim (a statement of its batch, after <c>renew_tenant_lock</c>): the claim of
    /// <paramref name="holder"/> lasts <paramref name="minutes"/> more from now.
    /// </summary>
    public static NpgsqlBatchCommand ExtendClaimCommand(Guid tenantId, string holder, int minutes) =>
        new("""
            update public.agent_tenant_schedules
            set claimed_until = hourglass.now() + make_interval(mins => $3)
            where tenant_id = $1 and claimed_by = $2
            """)
        {
            Parameters = { new() { Value = tenantId }, new() { Value = holder }, new() { Value = minutes } },
        };

    /// <summary>
    /// The tenant ($1) as the API shows it, one JSON object (no row when the caller cannot see the tenant): its id, name,
    /// time zone, settings, and its schedule (null without one). It returns the tenant's row with this store's schedule,
    /// so it lives here; the API runs it in the caller's session.
    /// </summary>
    internal const string TenantJsonSql = """
        select json_build_object('id', t.id, 'name', t.name, 'timezone', t.timezone, 'settings', t.settings,
          'schedule', (select json_build_object('cron', c.cron, 'timezone', c.timezone, 'next_due_at', c.next_due_at, 'paused', c.paused,
                               'paused_reason', c.paused_reason, 'max_actions_per_cycle', c.max_actions_per_cycle,
                               'max_actions_per_day', c.max_actions_per_day)
                       from public.agent_tenant_schedules c where c.tenant_id = t.id))::text
        from public.tenants t where t.id = $1
        """;
}
