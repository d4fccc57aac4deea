using System.Data;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Engagement.Inbound;
using Hourglass.Orders;
using Hourglass.Policies;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    // Every run status: the last run is found per status through idx_autonomous_runs_tenant_status (tenant_id, status,
    // started_at desc), a handful of index probes per tenant instead of reading every run a tenant ever had.
    /// <summary>How many days of answers (bounces, complaints, unsubscribes, replies) one tenant's status shows.</summary>
    internal const int InboundDays = 7;

    private static readonly string[] s_runStatuses = Enum.GetValues<RunStatus>().Select(s => s.Name()).ToArray();

    internal sealed record GlobalControl(bool Paused, string? Reason, DateTimeOffset SetAt, string? SetBy);

    internal sealed record WorkerActivity(string WorkerId, long Runs, long Completed, long Partial, long Failed, long Skipped, long Abandoned, long Running,
        long Claims, DateTimeOffset? LastStartedAt);

    internal sealed record TenantState(Guid Id, string Name, string Timezone, string Cron, string? ScheduleZone, DateTimeOffset? NextDueAt, bool Paused,
        string? PausedReason, string? PausedBy, DateTimeOffset? PausedAt, int ConsecutiveFailures, int AutoPauseAfter, string? ClaimedBy);

    internal sealed record RunSummary(Guid TenantId, string Status, string Trigger, DateTimeOffset StartedAt, DateTimeOffset? CompletedAt, int Planned, int Taken,
        int Blocked, string? Error, bool DryRun, string? WorkerId);

    internal sealed record EngagementCounts(long Clocks, long Compliant, long DueSoon, long Overdue)
    {
        public static readonly EngagementCounts None = new(0, 0, 0, 0);

        /// <summary>As the engagement part reports it for "what moved": clocks not overdue, of all clocks.</summary>
        public decimal? CompliancePct => Clocks == 0 ? null : Math.Round(100m * (Clocks - Overdue) / Clocks, 2);
    }

    internal sealed record ApprovalCounts(long Open, long PastDue, DateTimeOffset? NextDueAt);

    internal sealed record ReflectionSummary(DateTimeOffset Hour, int Runs, string? Summary);

    internal sealed record ExceptionCounts(string Type, long Open, long InReview);

    internal sealed record SuppressedCounts(string Code, long Count, DateTimeOffset LastAt, string LastReason);

    /// <summary>Everything <c>status</c> prints, read in one read-only, repeatable-read transaction: one consistent snapshot.</summary>
    internal sealed class StatusSnapshot
    {
        public DateTimeOffset Now { get; private set; }

        public GlobalControl Control { get; private set; } = new(false, null, DateTimeOffset.MinValue, null);

        public List<WorkerActivity> Workers { get; } = [];

        public List<TenantState> Tenants { get; } = [];

        public Dictionary<Guid, RunSummary> LastRuns { get; } = [];

        public List<RunSummary> RecentRuns { get; } = [];

        public ReflectionSummary? LastReflection { get; private set; }

        public Dictionary<Guid, EngagementCounts> Engagement { get; } = [];

        public Dictionary<Guid, ApprovalCounts> Approvals { get; } = [];

        public Dictionary<Guid, Dictionary<string, (long Count, long Blocked)>> Violations { get; } = [];

        public Dictionary<Guid, Dictionary<string, long>> Queue { get; } = [];

        public Dictionary<Guid, List<ExceptionCounts>> Exceptions { get; } = [];

        /// <summary>Messages by tenant and status (all tenants: only pending and sending), and how many pending wait for their send window.</summary>
        public Dictionary<Guid, Dictionary<string, (long Count, long Held)>> Messages { get; } = [];

        public Dictionary<Guid, List<SuppressedCounts>> Suppressed { get; } = [];

        /// <summary>What the world answered per day over the last <see cref="InboundDays"/> days (one tenant's status only).</summary>
        public Dictionary<Guid, IReadOnlyList<InboundDay>> Inbound { get; } = [];

        public static async Task<StatusSnapshot> ReadAsync(NpgsqlDataSource dataSource, Guid? tenantId, CancellationToken cancellationToken)
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
            var snapshot = new StatusSnapshot();
            var reader = new Reader(connection, transaction, tenantId);
            await reader.ExecuteAsync("set transaction read only", cancellationToken);

            await reader.EachAsync("select hourglass.now()", r => snapshot.Now = r.GetFieldValue<DateTimeOffset>(0), cancellationToken);
            await reader.EachAsync(TenantControl.GlobalSwitchSql,
                r => snapshot.Control = new GlobalControl(r.GetBoolean(0), Text(r, 1), r.GetFieldValue<DateTimeOffset>(2), Text(r, 3)), cancellationToken);

            // Workers: every cycle started in the last hour (dry runs are what-ifs, not cycles), whatever tenant, by the
            // worker that ran it; and the claims each holds now. Probed per tenant and status on idx_autonomous_runs_tenant_status.
            await reader.EachAsync(RunsStore.WorkerActivitySql,
                r => snapshot.Workers.Add(new WorkerActivity(r.GetString(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5),
                    r.GetInt64(6), r.GetInt64(7), r.GetInt64(8), r.IsDBNull(9) ? null : r.GetFieldValue<DateTimeOffset>(9))),
                cancellationToken, (object)s_runStatuses, snapshot.Now);

            await reader.EachAsync(ScheduleStore.StatusSql,
                r => snapshot.Tenants.Add(new TenantState(r.GetGuid(0), r.GetString(1), r.GetString(2), r.GetString(3), Text(r, 4), r.GetFieldValue<DateTimeOffset>(5),
                    r.GetBoolean(6), Text(r, 7), Text(r, 8), r.IsDBNull(9) ? null : r.GetFieldValue<DateTimeOffset>(9), r.GetInt32(10), r.GetInt32(11), Text(r, 12))),
                cancellationToken, snapshot.Now);

            // A tenant's last run: the newest of its newest run in each status. Dry runs are what-ifs, not cycles.
            await reader.EachAsync(RunsStore.LastRunPerTenantSql,
                r => snapshot.LastRuns[r.GetGuid(0)] = ReadRun(r), cancellationToken, (object)s_runStatuses);

            if (tenantId is not null)
            {
                await reader.EachAsync(RunsStore.RecentRunsSql, r => snapshot.RecentRuns.Add(ReadRun(r)), cancellationToken);
                await reader.EachAsync(HourlyReflections.LatestSql, r => snapshot.LastReflection = new ReflectionSummary(r.GetFieldValue<DateTimeOffset>(0), r.GetInt32(1), Text(r, 2)), cancellationToken);
            }

            // Compliance as the engagement part measures it for "what moved" (EngagementCompliancePart).
            foreach (var c in await EngagementStore.ComplianceCountsAsync(connection, transaction, tenantId, cancellationToken))
            {
                snapshot.Engagement[c.TenantId] = new EngagementCounts(c.Clocks, c.Compliant, c.DueSoon, c.Overdue);
            }

            // Open approval cards (an approval past its due time can no longer be decided; the next cycle expires it).
            foreach (var a in await EngagementStore.OpenApprovalCountsAsync(connection, transaction, tenantId, snapshot.Now, cancellationToken))
            {
                snapshot.Approvals[a.TenantId] = new ApprovalCounts(a.Open, a.PastDue, a.NextDueAt);
            }

            // Violations of the last 24 hours, (now - 24 h, now], as the rolling windows of the policy caps count.
            foreach (var v in await PolicyStore.ViolationCountsAsync(connection, transaction, tenantId, snapshot.Now, cancellationToken))
            {
                Slot(snapshot.Violations, v.TenantId)[v.Severity] = (v.Count, v.Blocked);
            }

            foreach (var q in await OrderStore.QueueCountsAsync(connection, transaction, tenantId, cancellationToken))
            {
                Slot(snapshot.Queue, q.TenantId)[q.Status] = q.Count;
            }

            foreach (var e in await OrderStore.OpenExceptionCountsAsync(connection, transaction, tenantId, cancellationToken))
            {
                if (!snapshot.Exceptions.TryGetValue(e.TenantId, out var list))
                {
                    snapshot.Exceptions[e.TenantId] = list = [];
                }

                list.Add(new ExceptionCounts(e.Type, e.Open, e.InReview));
            }

            foreach (var m in await EngagementStore.OutboxCountsAsync(connection, transaction, tenantId, cancellationToken))
            {
                Slot(snapshot.Messages, m.TenantId)[m.Status] = (m.Count, m.Held);
            }

            if (tenantId is { } one)
            {
                snapshot.Suppressed[one] = (await EngagementStore.SuppressedCountsAsync(connection, transaction, one, cancellationToken))
                    .Select(s => new SuppressedCounts(s.Code, s.Count, s.LastAt, s.LastReason))
                    .ToList();
                if (snapshot.Suppressed[one].Count == 0)
                {
                    snapshot.Suppressed.Remove(one);
                }

                snapshot.Inbound[one] = await InboundStore.TrendsAsync(connection, transaction, one, InboundDays, cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            return snapshot;
        }

        private static RunSummary ReadRun(NpgsqlDataReader r) => new(r.GetGuid(0), r.GetString(1), r.GetString(2), r.GetFieldValue<DateTimeOffset>(3),
            r.IsDBNull(4) ? null : r.GetFieldValue<DateTimeOffset>(4), r.GetInt32(5), r.GetInt32(6), r.GetInt32(7), Text(r, 8), r.GetBoolean(9), Text(r, 10));

        private static string? Text(NpgsqlDataReader r, int ordinal) => r.IsDBNull(ordinal) ? null : r.GetString(ordinal);

        private static Dictionary<string, TValue> Slot<TValue>(Dictionary<Guid, Dictionary<string, TValue>> map, Guid tenantId)
        {
            if (!map.TryGetValue(tenantId, out var slot))
            {
                map[tenantId] = slot = new Dictionary<string, TValue>(StringComparer.Ordinal);
            }

            return slot;
        }

        // Runs the snapshot's statements: $1 is always the tenant (null for all; typed, so a statement may ignore it), then the extra parameters.
        private sealed class Reader(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid? tenantId)
        {
            public async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
            {
                await using var command = new NpgsqlCommand(sql, connection, transaction);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            public async Task EachAsync(string sql, Action<NpgsqlDataReader> row, CancellationToken cancellationToken, params object[] parameters)
            {
                await using var command = new NpgsqlCommand(sql, connection, transaction);
                command.Parameters.Add(new NpgsqlParameter { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
                foreach (var parameter in parameters)
                {
                    command.Parameters.Add(new NpgsqlParameter { Value = parameter });
                }

                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    row(reader);
                }
            }
        }
    }
}
