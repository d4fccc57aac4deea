using System.Text.Json.Nodes;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Cycles;

/// <summary>
/// The action ledger: the one place that names <c>agent_actions</c> in SQL. One row per (tenant, idempotency key); a
/// key recorded as succeeded is never run or overwritten again, and every earlier attempt is kept in previous_attempts.
/// </summary>
internal sealed class ActionLedger(NpgsqlDataSource dataSource)
{
    /// <summary>The ledger's table, for statements over many tables (ANALYZE) that name it.</summary>
    internal const string Table = "public.agent_actions";

    // Peaks of succeeded actions, checked from the ledger independently of the policy enforcer: every succeeded action
    // against the others of its window (t − window, t], as the policy counts them. (t − 24 h, t] is [t − 24 h + 1 µs, t]:
    // timestamps have microsecond resolution.

    /// <summary>The most messages one tenant sent in any 24 hours. One column.</summary>
    internal const string PeakDailyMessagesSql = """
        select coalesce(max(n), 0) from (
          select count(*) over (partition by tenant_id order by completed_at range between interval '23:59:59.999999' preceding and current row) as n
          from public.agent_actions where kind = 'send_message' and status = 'succeeded') x
        """;

    /// <summary>The most touches (messages and touch tasks) one contact of one tenant got in any 7 days. One column.</summary>
    internal const string PeakWeeklyTouchesPerContactSql = """
        select coalesce(max(n), 0) from (
          select count(*) over (partition by tenant_id, target_id order by completed_at
                                range between interval '6 days 23:59:59.999999' preceding and current row) as n
          from public.agent_actions where kind in ('send_message', 'touch_task') and status = 'succeeded') x
        """;

    /// <summary>Actions that succeeded since <paramref name="since"/> in hours other than <paramref name="hour"/> (the day's budget).</summary>
    public async Task<int> CountSucceededSinceAsync(Guid tenantId, DateTimeOffset since, DateTimeOffset hour, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(CountSucceededSinceSql);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = since.ToUniversalTime() });
        command.Parameters.Add(new() { Value = hour });
        return (int)(long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>Succeeded actions of tenant $1 since $2 in hours other than $3.</summary>
    internal const string CountSucceededSinceSql = """
        select count(*) from public.agent_actions
        where tenant_id = $1 and status = 'succeeded' and completed_at >= $2 and hour_bucket <> $3
        """;

    /// <summary>The status of tenant $1's key $2, its row locked.</summary>
    internal const string SucceededForUpdateSql = "select status from public.agent_actions where tenant_id = $1 and idempotency_key = $2 for update";

    /// <summary>Whether the key already succeeded, locking its row (if any) for the rest of the transaction.</summary>
    public static async Task<bool> SucceededForUpdateAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, string key,
        CancellationToken cancellationToken)
    {
        await using var existing = new NpgsqlCommand(SucceededForUpdateSql, connection, transaction);
        existing.Parameters.Add(new() { Value = tenantId });
        existing.Parameters.Add(new() { Value = key });
        return await existing.ExecuteScalarAsync(cancellationToken) is string status && status == ActionStatus.Succeeded.Name();
    }

    /// <summary>Records an attempt at the key in the caller's transaction; a key already succeeded is left as it is.</summary>
    /// <summary>Records an attempt at a key; a key already succeeded is left as it is.</summary>
    internal const string RecordSql = """
        insert into public.agent_actions as a (tenant_id, run_id, idempotency_key, hour_bucket, kind, target_type, target_id,
          priority, reason, payload, decision, status, result, error, completed_at)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        on conflict (tenant_id, idempotency_key) do update set
          run_id = excluded.run_id, decision = excluded.decision, status = excluded.status, result = excluded.result,
          error = excluded.error, completed_at = excluded.completed_at, attempts = a.attempts + 1,
          previous_attempts = a.previous_attempts || jsonb_build_array(jsonb_build_object('run_id', a.run_id, 'status', a.status,
            'decision', a.decision, 'result', a.result, 'error', a.error, 'completed_at', a.completed_at))
        where a.status <> 'succeeded'
        """;

    public static async Task RecordAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CycleContext context, ProposedAction action,
        string key, string? decision, ActionStatus status, JsonObject? result, string? error, DateTimeOffset completedAt,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(RecordSql, connection, transaction);
        command.Parameters.Add(new() { Value = context.TenantId });
        command.Parameters.Add(new() { Value = context.RunId });
        command.Parameters.Add(new() { Value = key });
        command.Parameters.Add(new() { Value = context.HourBucket });
        command.Parameters.Add(new() { Value = action.Kind });
        command.Parameters.Add(new() { Value = (object?)action.TargetType ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = (object?)action.TargetId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = action.Priority });
        command.Parameters.Add(new() { Value = action.Reason });
        command.Parameters.Add(RunsStore.Json(action.Payload ?? []));
        command.Parameters.Add(new() { Value = (object?)decision ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = status.Name() });
        command.Parameters.Add(RunsStore.Json(result));
        command.Parameters.Add(new() { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = completedAt });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    // Seeding and inspection (benchmarks): one method per statement, on the caller's connection and transaction

    /// <summary>
    /// A week of the agent's touches made by no run (the history a policy reads): <paramref name="perTenant"/> succeeded touch_task
    /// rows per tenant, row g on the tenant's contact (g x 7919) mod <paramref name="contactsPerTenant"/> (by id), at a time spread over
    /// the week before the last hour; rows by time.
    /// </summary>
    public static Task<int> InsertTouchHistoryAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, int perTenant,
        int contactsPerTenant, CancellationToken cancellationToken) =>
        Storage.StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.agent_actions (tenant_id, idempotency_key, hour_bucket, kind, target_type, target_id, priority, reason, payload,
              decision, status, result, completed_at, created_at)
            select c.tenant_id, pg_catalog.format('bench-history-%s', h.g), pg_catalog.date_trunc('hour', h.at, 'UTC'), 'touch_task', 'contact',
                   c.id, 50, 'overdue', pg_catalog.jsonb_build_object('account_id', c.account_id), 'allow', 'succeeded',
                   pg_catalog.jsonb_build_object('card_id', gen_random_uuid()), h.at, h.at
            from (select t.id as tenant_id, g, (g * 7919) % $3 as n,
                         now() - interval '1 hour' - ((g * 104729) % 1000000) / 1000000.0 * (interval '7 days' - interval '1 hour') as at
                  from unnest($1::uuid[]) as t (id) cross join generate_series(1, $2) as g) h
            join (select k.tenant_id, k.id, k.account_id, pg_catalog.row_number() over (partition by k.tenant_id order by k.id) - 1 as n
                  from public.contacts k where k.tenant_id = any ($1)) c on c.tenant_id = h.tenant_id and c.n = h.n
            order by h.at
            """, cancellationToken, tenants, perTenant, contactsPerTenant);

    /// <summary>The ledger's rows made by no run (history).</summary>
    public static async Task<long> CountWithoutRunAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        await Storage.StoreReads.ScalarAsync<long>(connection, transaction, "select count(*) from public.agent_actions where run_id is null", cancellationToken);

    /// <summary>The tenants' ledger rows made by runs, removed (the history of no run stays).</summary>
    public static Task<int> DeleteRunActionsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants,
        CancellationToken cancellationToken) =>
        Storage.StoreReads.ExecuteAsync(connection, transaction, "delete from public.agent_actions where tenant_id = any ($1) and run_id is not null",
            cancellationToken, tenants);

    // Seeding (simulator, demo, benchmarks): the benchmarks' reset.

    /// <summary>Deletes every ledger row of the tenants.</summary>
    public static Task<int> DeleteAllAsync(NpgsqlConnection connection, Guid[] tenants, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, "delete from public.agent_actions where tenant_id = any ($1)", cancellationToken, tenants);

    // The parts' reads of the ledger (statements moved from the touch part and the policy enforcer). A message that never
    // went out (suppressed when it was enqueued or when it was to be sent, or cancelled) is not counted: they join the
    // Engagement part's outbox for it.

    /// <summary>
    /// How many messages on <paramref name="channel"/> (email when a message names none) the tenant's actions sent in
    /// (<paramref name="from"/>, <paramref name="to"/>]: the touch part's check of a channel's cap.
    /// </summary>
    public static async Task<long> SentMessagesOnChannelAsync(NpgsqlDataSource dataSource, Guid tenantId, DateTimeOffset from, DateTimeOffset to, string channel,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select count(*) from public.agent_actions
            where tenant_id = $1 and status = 'succeeded' and kind = 'send_message' and completed_at > $2 and completed_at <= $3
              and coalesce(payload ->> 'channel', 'email') = $4
              and not (coalesce(result ->> 'suppressed' = 'true', false) or exists (
                select 1 from public.message_outbox m
                where m.tenant_id = $1 and m.id = (result ->> 'message_id')::uuid and m.status in ('suppressed', 'cancelled')))
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = from });
        command.Parameters.Add(new() { Value = to });
        command.Parameters.Add(new() { Value = channel });
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>The statement of <see cref="TouchHistoryAsync"/>: <c>$1</c> the tenant, <c>$2</c> now, <c>$3</c> the hour left out (or null).</summary>
    internal const string TouchHistorySql = """
        select completed_at, target_id,
               case kind when 'touch_task' then 'task' else coalesce(payload ->> 'channel', result ->> 'channel', 'email') end
        from public.agent_actions
        where tenant_id = $1 and status = 'succeeded' and kind in ('touch_task', 'send_message')
          and completed_at > $2 - interval '7 days' and completed_at <= $2
          and ($3::timestamptz is null or hour_bucket <> $3)
          and not (kind = 'send_message' and (coalesce(result ->> 'suppressed' = 'true', false) or exists (
            select 1 from public.message_outbox m
            where m.tenant_id = $1 and m.id = (result ->> 'message_id')::uuid and m.status in ('suppressed', 'cancelled'))))
        order by completed_at
        """;

    /// <summary>
    /// The tenant's touches (touch tasks and messages that went out) in the 7 days before <paramref name="now"/>, outside
    /// the hour <paramref name="excludeHour"/>, oldest first: when, whom, and how ('task' or the message's channel).
    /// </summary>
    public static Task<IReadOnlyList<(DateTimeOffset At, Guid? TargetId, string Channel)>> TouchHistoryAsync(NpgsqlDataSource dataSource, Guid tenantId,
        DateTimeOffset now, DateTimeOffset? excludeHour, CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand(TouchHistorySql);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = now });
        command.Parameters.Add(new() { Value = (object?)excludeHour ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        return StoreReads.ListAsync(command, r => (r.GetFieldValue<DateTimeOffset>(0), r.IsDBNull(1) ? (Guid?)null : r.GetGuid(1), r.GetString(2)),
            cancellationToken);
    }
}
