using Npgsql;

namespace Hourglass.Cycles;

/// <summary>
/// The operator's levers on the scheduler: a tenant's schedule, and the kill switches (all tenants, or one).
/// Schedules are validated here, on save, naming the bad field; the database keeps only valid ones.
/// </summary>
public sealed class TenantControl(NpgsqlDataSource dataSource, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Sets a tenant's cron and time zone (null: the tenant's own) and when it is next due.</summary>
    public async Task<DateTimeOffset> SetScheduleAsync(Guid tenantId, string cron, string? timeZone, CancellationToken cancellationToken)
    {
        var tenantZone = await ScalarAsync("select timezone from public.tenants where id = $1", cancellationToken, tenantId) as string
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
}
