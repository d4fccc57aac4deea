using System.Globalization;
using Hourglass.Storage;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Cycles;

/// <summary>
/// The operator's levers on the scheduler: a tenant's schedule, and the kill switches (all tenants, or one).
/// Schedules are validated here, on save, naming the bad field; the database keeps only valid ones.
/// </summary>
internal sealed class TenantControl(NpgsqlDataSource dataSource, TimeProvider time)
{
    private readonly TimeProvider _time = time;

    /// <summary>Sets a tenant's cron and time zone (null: the tenant's own) and when it is next due.</summary>
    public async Task<DateTimeOffset> SetScheduleAsync(Guid tenantId, string cron, string? timeZone, CancellationToken cancellationToken)
    {
        var tenantZone = await TenancyStore.TimezoneAsync(dataSource, tenantId, cancellationToken)
            ?? throw new HourglassException($"tenant {tenantId} does not exist");
        var schedule = CycleSchedule.Parse(cron, timeZone ?? tenantZone);
        var next = schedule.NextAfter(_time.GetUtcNow());
        await ScalarAsync("""
            update public.agent_tenant_schedules set cron = $2, timezone = $3, next_due_at = $4, updated_at = $5 where tenant_id = $1
            """, cancellationToken, tenantId, schedule.Cron, (object?)timeZone ?? DBNull.Value, next, _time.GetUtcNow());
        return next;
    }

    public Task PauseTenantAsync(Guid tenantId, string reason, string by, CancellationToken cancellationToken) =>
        RequireTenantAsync(tenantId, """
            update public.agent_tenant_schedules set paused = true, paused_reason = $2, paused_by = $3, paused_at = $4, updated_at = $4
            where tenant_id = $1 returning tenant_id
            """, cancellationToken, Reason(reason), by, _time.GetUtcNow());

    /// <summary>
    /// Pauses a tenant inside the caller's transaction (a critical policy finding pauses it together with the action that
    /// found it); a tenant already paused keeps its first reason.
    /// </summary>
    internal static async Task PauseInTransactionAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string by,
        string reason, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var pause = new NpgsqlCommand("""
            update public.agent_tenant_schedules
            set paused = true, paused_at = $2, paused_by = $4, updated_at = $2, paused_reason = $3
            where tenant_id = $1 and not paused
            """, connection, transaction);
        pause.Parameters.Add(new() { Value = tenantId });
        pause.Parameters.Add(new() { Value = at });
        pause.Parameters.Add(new() { Value = reason });
        pause.Parameters.Add(new() { Value = by });
        await pause.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Resumes a tenant: failures are forgotten and it is next due at its next occurrence (paused hours are not caught up).</summary>
    public async Task ResumeTenantAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        var row = await ScalarAsync("""
            select s.cron || '|' || coalesce(s.timezone, t.timezone) from public.agent_tenant_schedules s
            join public.tenants t on t.id = s.tenant_id where s.tenant_id = $1
            """, cancellationToken, tenantId) as string ?? throw new HourglassException($"tenant {tenantId} does not exist");
        var parts = row.Split('|');
        DateTimeOffset next;
        try
        {
            next = CycleSchedule.Parse(parts[0], parts[1]).NextAfter(_time.GetUtcNow());
        }
        catch (InvalidScheduleException)
        {
            next = _time.GetUtcNow();
        }

        await RequireTenantAsync(tenantId, """
            update public.agent_tenant_schedules
            set paused = false, paused_reason = null, paused_by = null, paused_at = null, consecutive_failures = 0, next_due_at = $2, updated_at = $3
            where tenant_id = $1 returning tenant_id
            """, cancellationToken, next, _time.GetUtcNow());
    }

    public async Task PauseAllAsync(string reason, string by, CancellationToken cancellationToken) =>
        await ScalarAsync("update hourglass.agent_control set paused = true, reason = $1, set_by = $2, set_at = $3 where singleton",
            cancellationToken, Reason(reason), by, _time.GetUtcNow());

    public async Task ResumeAllAsync(string by, CancellationToken cancellationToken) =>
        await ScalarAsync("update hourglass.agent_control set paused = false, reason = null, set_by = $1, set_at = $2 where singleton",
            cancellationToken, by, _time.GetUtcNow());

    /// <summary>
    /// The kill switch that holds <paramref name="tenantId"/> now, if any: the global one first (it holds every tenant),
    /// else the tenant's own; null when neither is on. Read by the database's clock and state, as the workers read them.
    /// </summary>
    public async Task<PauseState?> ReadPauseAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select c.paused, c.set_at, c.set_by, c.reason, s.paused, s.paused_at, s.paused_by, s.paused_reason
            from hourglass.agent_control c
            left join public.agent_tenant_schedules s on s.tenant_id = $1
            where c.singleton
            """);
        command.Parameters.Add(new() { Value = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
        if (reader.GetBoolean(0))
        {
            return new PauseState(true, reader.GetFieldValue<DateTimeOffset>(1), Text(2), Text(3));
        }

        return !reader.IsDBNull(4) && reader.GetBoolean(4)
            ? new PauseState(false, reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5), Text(6), Text(7))
            : null;
    }

    /// <summary>
    /// Why an action of tenant $1 is blocked by a kill switch now ('paused: all tenants (…)' or 'paused: this tenant (…)'),
    /// or null: one short row, read before every side effect of a cycle.
    /// </summary>
    internal const string BlockReasonSql = """
        select case
          when c.paused then 'paused: all tenants (' || coalesce(c.reason, 'no reason given') || ')'
          when s.paused then 'paused: this tenant (' || coalesce(s.paused_reason, 'no reason given') || ')'
        end
        from hourglass.agent_control c
        left join public.agent_tenant_schedules s on s.tenant_id = $1
        where c.singleton
        """;

    /// <summary>Why an action of <paramref name="tenantId"/> is blocked by a kill switch now, or null when neither is on.</summary>
    public async Task<string?> ReadBlockReasonAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(BlockReasonSql);
        command.Parameters.Add(new() { Value = tenantId });
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    /// <summary>The global kill switch, when it is on.</summary>
    public async Task<PauseState?> ReadGlobalPauseAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select paused, set_at, set_by, reason from hourglass.agent_control where singleton");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) && reader.GetBoolean(0)
            ? new PauseState(true, reader.GetFieldValue<DateTimeOffset>(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3))
            : null;
    }

    /// <summary>The global kill switch as the status command reads it in its snapshot. Columns: paused, reason, set at, set by.</summary>
    internal const string GlobalSwitchSql = "select paused, reason, set_at, set_by from hourglass.agent_control where singleton";

    private static string Reason(string reason) =>
        string.IsNullOrWhiteSpace(reason) ? throw new HourglassException("reason: say why you pause (it is shown to everyone who looks)") : reason.Trim();

    private async Task RequireTenantAsync(Guid tenantId, string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        if (await ScalarAsync(sql, cancellationToken, [tenantId, .. parameters]) is null)
        {
            throw new HourglassException($"tenant {tenantId} does not exist");
        }
    }

    private async Task<object?> ScalarAsync(string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        await using var command = dataSource.CreateCommand(sql);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new() { Value = parameter });
        }

        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is DBNull ? null : value;
    }

    // The database clock (hourglass.now()) for the simulator and the benchmarks: frozen at an instant, and thawed.

    /// <summary>Freezes the database clock at <paramref name="at"/> (<c>hourglass.freeze_time</c>): <c>hourglass.now()</c> answers it until thawed.</summary>
    internal static Task FreezeTimeAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, DateTimeOffset at, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "select hourglass.freeze_time($1)", cancellationToken, at);

    /// <summary>Thaws the database clock (<c>hourglass.thaw_time</c>): <c>hourglass.now()</c> is the real time again.</summary>
    internal static Task ThawTimeAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "select hourglass.thaw_time()", cancellationToken);
}

/// <summary>A kill switch that is on: the global one (every tenant) or one tenant's; since when, by whom, and why.</summary>
internal sealed record PauseState(bool Global, DateTimeOffset? Since, string? By, string? Reason)
{
    /// <summary>"all tenants are paused (the global kill switch) since … by …: why", or the same for one tenant.</summary>
    public string Describe(Guid tenantId)
    {
        var what = Global ? "all tenants are paused (the global kill switch)" : $"tenant {tenantId} is paused";
        var since = Since is { } at ? string.Create(CultureInfo.InvariantCulture, $" since {at.UtcDateTime:yyyy-MM-dd HH:mm} UTC") : "";
        return $"{what}{since} by {By ?? "someone unrecorded"}: {Reason ?? "no reason given"}";
    }

    /// <summary>The command that lifts this switch.</summary>
    public string ResumeCommand(Guid tenantId) => Global ? "hourglass resume" : $"hourglass resume --tenant {tenantId}";
}

/// <summary>
/// A side effect refused because a kill switch holds the tenant (a manual run, for one): the message says since when,
/// by whom, why, and how to resume.
/// </summary>
internal sealed class TenantPausedException(Guid tenantId, PauseState pause, string action)
    : HourglassException($"{pause.Describe(tenantId)}. {action} would act while the kill switch is on; resume with '{pause.ResumeCommand(tenantId)}' (a dry run, which has no side effects, still works)")
{
    public Guid TenantId { get; } = tenantId;

    public PauseState Pause { get; } = pause;
}
