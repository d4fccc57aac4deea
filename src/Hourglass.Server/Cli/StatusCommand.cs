using System.CommandLine;
using System.Data;
using System.Globalization;
using System.Text;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Orders;
using Hourglass.Policies;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Hourglass.Server.Cli;

/// <summary>
/// <c>hourglass status [--tenant T]</c>: where the agent stands, read from one snapshot of the database — the kill
/// switch and the workers' last hour, then one summary row per tenant, or one tenant in detail (its last runs,
/// engagement compliance, open approvals, policy violations of the last 24 hours, the order queue and its open
/// exceptions, the outbox with its held and suppressed messages, and whether and why it is paused).
/// </summary>
internal static class StatusCommand
{
    // Every run status: the last run is found per status through idx_autonomous_runs_tenant_status (tenant_id, status,
    // started_at desc), a handful of index probes per tenant instead of reading every run a tenant ever had.
    private static readonly string[] s_runStatuses = Enum.GetValues<RunStatus>().Select(s => s.Name()).ToArray();
    private static readonly string[] s_queueStatuses = ["pending", "processing", "validated", "needs_approval", "exception", "cancelled"];
    private static readonly string[] s_severities = ["info", "warning", "error", "critical"];
    private static readonly string[] s_messageStatuses = ["pending", "sending", "sent", "failed", "cancelled", "suppressed"];

    public static Command Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string?>("--tenant") { Description = "One tenant in detail (its id, or its exact name); without it, one summary row per tenant." };
        var command = new Command("status",
            "Where the agent stands: the kill switch, the workers' last hour, and each tenant's last run, engagement compliance, approvals, " +
            "policy violations (24 h), order queue and exceptions; --tenant for one tenant in detail.")
        {
            tenant,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            Guid? tenantId = parse.GetValue(tenant) is { } name ? await CycleCommands.ResolveTenantAsync(target.DataSource, name, cancellationToken) : null;
            var snapshot = await StatusSnapshot.ReadAsync(target.DataSource, tenantId, cancellationToken);
            var console = CreateConsole();
            console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Hourglass status at {snapshot.Now:yyyy-MM-dd HH:mm:ss} UTC (database clock); database {target.Description}."));
            PrintGlobal(console, snapshot);
            if (tenantId is { } id)
            {
                PrintTenant(console, snapshot, snapshot.Tenants.SingleOrDefault(t => t.Id == id)
                    ?? throw new HourglassException($"--tenant: tenant {id} was deleted while its status was being read"));
            }
            else
            {
                PrintSummary(console, snapshot);
            }

            console.Profile.Out.Writer.Flush();
            return 0;
        });
        return command;
    }

    /// <summary>
    /// Standard output as Spectre.Console sees it; when it is redirected (a file, a pipe, a test), plain text: no
    /// colours or cursor movement, Markdown tables, and wide enough that rows do not wrap.
    /// </summary>
    internal static IAnsiConsole CreateConsole()
    {
        if (!Console.IsOutputRedirected)
        {
            return AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        }

        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(new PlainLines(Console.Out)),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 240;
        return console;
    }

    /// <summary>
    /// Plain output's lines without trailing spaces, and without the lines of spaces Spectre draws for a Markdown
    /// table's invisible top and bottom borders: text for files, diffs and grep.
    /// </summary>
    private sealed class PlainLines(TextWriter inner) : TextWriter
    {
        private readonly StringBuilder _line = new();

        public override Encoding Encoding => inner.Encoding;

        public override void Write(char value)
        {
            if (value != '\n')
            {
                _line.Append(value);
                return;
            }

            var line = _line.ToString();
            _line.Clear();
            var text = line.TrimEnd(' ', '\r');
            if (text.Length > 0 || line.Length == 0)
            {
                inner.Write(text);
                inner.Write('\n');
            }
        }

        public override void Flush()
        {
            inner.Write(_line.ToString());
            _line.Clear();
            inner.Flush();
        }
    }

    private static void PrintGlobal(IAnsiConsole console, StatusSnapshot snapshot)
    {
        console.WriteLine();
        var control = snapshot.Control;
        if (control.Paused)
        {
            console.Write(new Text(
                string.Create(CultureInfo.InvariantCulture, $"Global kill switch: PAUSED since {Time(control.SetAt)} ({Ago(snapshot.Now, control.SetAt)}) by {control.SetBy ?? "?"}: {control.Reason}"),
                new Style(Color.Red, decoration: Decoration.Bold)));
            console.WriteLine();
            console.WriteLine("No worker claims a tenant or takes an action, no queued message is sent and no order is processed until 'hourglass resume'.");
        }
        else
        {
            console.WriteLine("Global kill switch: off (cycles run).");
        }

        console.WriteLine();
        console.WriteLine("Workers: cycles started in the last hour (dry runs aside), and the tenants each has claimed now");
        if (snapshot.Workers.Count == 0)
        {
            console.WriteLine("No cycle started in the last hour, and no tenant is claimed.");
            return;
        }

        var table = NewTable("worker", ">runs", ">completed", ">partial", ">failed", ">skipped", ">abandoned", ">running", ">claims now", "last run started");
        foreach (var worker in snapshot.Workers)
        {
            AddRow(table, worker.WorkerId.Length == 0 ? "(none)" : worker.WorkerId, N(worker.Runs), N(worker.Completed), N(worker.Partial), N(worker.Failed),
                N(worker.Skipped), N(worker.Abandoned), N(worker.Running), N(worker.Claims),
                worker.LastStartedAt is { } last ? $"{Time(last)} ({Ago(snapshot.Now, last)})" : "-");
        }

        console.Write(table);
    }

    private static void PrintSummary(IAnsiConsole console, StatusSnapshot snapshot)
    {
        console.WriteLine();
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Tenants: {snapshot.Tenants.Count:N0}, {snapshot.Tenants.Count(t => t.Paused):N0} paused. Taken and blocked: the last run's actions; orders queued: pending or processing; exceptions: open or in review. 'hourglass status --tenant T' for one in detail."));
        if (snapshot.Tenants.Count == 0)
        {
            console.WriteLine("No tenants yet.");
            return;
        }

        var table = NewTable("tenant", "state", "last run", "ago", ">taken", ">blocked", ">clocks", ">overdue", ">due soon", ">compliance %",
            ">approvals", ">violations 24h", ">orders queued", ">exceptions", ">messages queued");
        foreach (var tenant in snapshot.Tenants)
        {
            var run = snapshot.LastRuns.GetValueOrDefault(tenant.Id);
            var engagement = snapshot.Engagement.GetValueOrDefault(tenant.Id) ?? EngagementCounts.None;
            var queue = snapshot.Queue.GetValueOrDefault(tenant.Id);
            table.AddRow(
                new Text(tenant.Name),
                tenant.Paused ? new Text(Truncate($"paused: {tenant.PausedReason}", 40), new Style(Color.Red)) : new Text("active"),
                run is null ? new Text("-") : StatusText(run.Status),
                new Text(run is null ? "-" : Ago(snapshot.Now, run.StartedAt)),
                new Text(run is null ? "-" : N(run.Taken)),
                new Text(run is null ? "-" : N(run.Blocked)),
                new Text(N(engagement.Clocks)),
                new Text(N(engagement.Overdue)),
                new Text(N(engagement.DueSoon)),
                new Text(Percent(engagement.CompliancePct)),
                new Text(N(snapshot.Approvals.GetValueOrDefault(tenant.Id)?.Open ?? 0)),
                new Text(N(snapshot.Violations.GetValueOrDefault(tenant.Id)?.Sum(v => v.Value.Count) ?? 0)),
                new Text(N((queue?.GetValueOrDefault("pending") ?? 0) + (queue?.GetValueOrDefault("processing") ?? 0))),
                new Text(N(snapshot.Exceptions.GetValueOrDefault(tenant.Id)?.Sum(e => e.Open + e.InReview) ?? 0)),
                new Text(N(snapshot.Messages.GetValueOrDefault(tenant.Id)?.Where(m => m.Key is "pending" or "sending").Sum(m => m.Value.Count) ?? 0)));
        }

        console.Write(table);
    }

    private static void PrintTenant(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine($"Tenant {tenant.Name} ({tenant.Id}), time zone {tenant.Timezone}");
        if (tenant.Paused)
        {
            console.Write(new Text(
                string.Create(CultureInfo.InvariantCulture, $"State: PAUSED since {Time(tenant.PausedAt)} ({Ago(snapshot.Now, tenant.PausedAt)}) by {tenant.PausedBy ?? "?"}: {tenant.PausedReason}"),
                new Style(Color.Red, decoration: Decoration.Bold)));
            console.WriteLine();
            console.WriteLine($"Resume with 'hourglass resume --tenant {tenant.Id}'.");
        }
        else
        {
            console.WriteLine(snapshot.Control.Paused ? "State: active, but held by the global kill switch." : "State: active.");
        }

        var claim = tenant.ClaimedBy is { } claimedBy ? $"; claimed by {claimedBy}" : "";
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Schedule: '{tenant.Cron}' in {tenant.ScheduleZone ?? tenant.Timezone}; next cycle due {Time(tenant.NextDueAt)} ({Ago(snapshot.Now, tenant.NextDueAt)}); {tenant.ConsecutiveFailures} consecutive failure(s) (auto-pause after {tenant.AutoPauseAfter}){claim}."));

        console.WriteLine();
        console.WriteLine("Last runs");
        var runs = snapshot.RecentRuns.Where(r => r.TenantId == tenant.Id).ToList();
        if (runs.Count == 0)
        {
            console.WriteLine("No runs yet.");
        }
        else
        {
            var table = NewTable("started", "ago", "status", "trigger", ">planned", ">taken", ">blocked", ">took", "worker", "note");
            foreach (var run in runs)
            {
                table.AddRow(new Text(Time(run.StartedAt)), new Text(Ago(snapshot.Now, run.StartedAt)), StatusText(run.Status), new Text(run.Trigger),
                    new Text(N(run.Planned)), new Text(N(run.Taken)), new Text(N(run.Blocked)),
                    new Text(run.CompletedAt is { } done ? Duration(done - run.StartedAt) : "-"), new Text(run.WorkerId ?? "-"),
                    new Text(Truncate(string.Join("; ", new[] { run.DryRun ? "dry run" : null, run.Error }.OfType<string>()), 80)));
            }

            console.Write(table);
        }

        console.WriteLine();
        if (snapshot.LastReflection is { } reflection)
        {
            // The hour's reflection rolls up every run of the hour (each run's own is in its run record).
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Last reflection: hour {Time(reflection.Hour)} UTC, {reflection.Runs} run{(reflection.Runs == 1 ? "" : "s")}"));
            console.Write(new Text(reflection.Summary ?? "(no summary written)"));
            console.WriteLine();
        }
        else
        {
            console.WriteLine("Last reflection: none yet.");
        }

        console.WriteLine();
        console.WriteLine("Engagement (as of the last compliance refresh)");
        var engagement = snapshot.Engagement.GetValueOrDefault(tenant.Id) ?? EngagementCounts.None;
        var clocks = NewTable(">clocks", ">compliant", ">due soon", ">overdue", ">compliance %");
        AddRow(clocks, N(engagement.Clocks), N(engagement.Compliant), N(engagement.DueSoon), N(engagement.Overdue), Percent(engagement.CompliancePct));
        console.Write(clocks);

        console.WriteLine();
        console.WriteLine("Approvals");
        var approvals = snapshot.Approvals.GetValueOrDefault(tenant.Id) ?? new ApprovalCounts(0, 0, null);
        var approvalTable = NewTable(">open", ">past due", "next due");
        AddRow(approvalTable, N(approvals.Open), N(approvals.PastDue),
            approvals.NextDueAt is { } next ? $"{Time(next)} ({Ago(snapshot.Now, next)})" : "-");
        console.Write(approvalTable);

        console.WriteLine();
        console.WriteLine("Policy violations, last 24 hours");
        var violations = snapshot.Violations.GetValueOrDefault(tenant.Id) ?? [];
        var violationTable = NewTable("severity", ">violations", ">blocked");
        foreach (var severity in s_severities)
        {
            var count = violations.GetValueOrDefault(severity);
            AddRow(violationTable, severity, N(count.Count), N(count.Blocked));
        }

        AddRow(violationTable, "total", N(violations.Sum(v => v.Value.Count)), N(violations.Sum(v => v.Value.Blocked)));
        console.Write(violationTable);

        console.WriteLine();
        console.WriteLine("Order queue");
        var queue = snapshot.Queue.GetValueOrDefault(tenant.Id) ?? [];
        var queueTable = NewTable("status", ">orders");
        foreach (var status in s_queueStatuses)
        {
            AddRow(queueTable, status, N(queue.GetValueOrDefault(status)));
        }

        console.Write(queueTable);

        PrintOutbox(console, snapshot, tenant);

        console.WriteLine();
        console.WriteLine("Open order exceptions");
        var exceptions = snapshot.Exceptions.GetValueOrDefault(tenant.Id) ?? [];
        if (exceptions.Count == 0)
        {
            console.WriteLine("None.");
            return;
        }

        var exceptionTable = NewTable("type", ">open", ">in review");
        foreach (var exception in exceptions)
        {
            AddRow(exceptionTable, exception.Type, N(exception.Open), N(exception.InReview));
        }

        AddRow(exceptionTable, "total", N(exceptions.Sum(e => e.Open)), N(exceptions.Sum(e => e.InReview)));
        console.Write(exceptionTable);
    }

    // The tenant's messages by status; those held (by a kill switch, or until their send window opens); and those
    // suppressed at the moment of sending, by reason (docs/outbox.md).
    private static void PrintOutbox(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)
    {
        console.WriteLine();
        console.WriteLine("Outbox");
        var messages = snapshot.Messages.GetValueOrDefault(tenant.Id) ?? [];
        var table = NewTable("message status", ">messages", ">held for the send window");
        foreach (var status in s_messageStatuses)
        {
            var count = messages.GetValueOrDefault(status);
            AddRow(table, status, N(count.Count), status == "pending" ? N(count.Held) : "");
        }

        console.Write(table);
        var queued = messages.Where(m => m.Key is "pending" or "sending").Sum(m => m.Value.Count);
        if (queued > 0 && (tenant.Paused || snapshot.Control.Paused))
        {
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{queued:N0} queued message(s) held by the kill switch: neither sent nor failed, their attempts untouched; they go out after the resume if still allowed."));
        }

        var suppressed = snapshot.Suppressed.GetValueOrDefault(tenant.Id) ?? [];
        if (suppressed.Count == 0)
        {
            return;
        }

        console.WriteLine();
        console.WriteLine("Suppressed at the moment of sending, by reason");
        var reasons = NewTable("reason", ">messages", "last", "last reason");
        foreach (var reason in suppressed)
        {
            AddRow(reasons, reason.Code, N(reason.Count), $"{Time(reason.LastAt)} ({Ago(snapshot.Now, reason.LastAt)})", Truncate(reason.LastReason, 80));
        }

        console.Write(reasons);
    }

    internal static Table NewTable(params string[] columns)
    {
        var table = new Table { Border = Console.IsOutputRedirected ? TableBorder.Markdown : TableBorder.Rounded };
        foreach (var column in columns)
        {
            // A header starting with '>' is a column of numbers: right-aligned, and on a terminal its header takes a
            // line per word, so narrow numbers do not make a wide table. Plain output keeps one header line.
            table.AddColumn(column.StartsWith('>')
                ? new TableColumn(new Text(Console.IsOutputRedirected ? column[1..] : column[1..].Replace(' ', '\n'))) { Alignment = Justify.Right }
                : new TableColumn(new Text(column)));
        }

        return table;
    }

    // Cells are text, never markup: tenant names, reasons and errors may hold '[' and ']'.
    internal static void AddRow(Table table, params string[] cells) => table.AddRow(cells.Select(c => (IRenderable)new Text(c)));

    private static Text StatusText(string status) => new(status, status switch
    {
        "completed" => new Style(Color.Green),
        "partial" or "skipped" or "running" => new Style(Color.Yellow),
        "failed" or "abandoned" => new Style(Color.Red),
        _ => Style.Plain,
    });

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Percent(decimal? value) => value?.ToString("0.00", CultureInfo.InvariantCulture) ?? "-";

    private static string Time(DateTimeOffset? at) => at?.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) ?? "-";

    private static string Ago(DateTimeOffset now, DateTimeOffset? at)
    {
        if (at is not { } then)
        {
            return "-";
        }

        var span = now - then;
        var text = Duration(span.Duration());
        return span < TimeSpan.Zero ? $"in {text}" : $"{text} ago";
    }

    private static string Duration(TimeSpan span) => span switch
    {
        { TotalSeconds: < 10 } => string.Create(CultureInfo.InvariantCulture, $"{span.TotalSeconds:0.0} s"),
        { TotalSeconds: < 60 } => string.Create(CultureInfo.InvariantCulture, $"{span.TotalSeconds:0} s"),
        { TotalMinutes: < 60 } => string.Create(CultureInfo.InvariantCulture, $"{span.TotalMinutes:0} min"),
        { TotalHours: < 48 } => string.Create(CultureInfo.InvariantCulture, $"{span.TotalHours:0.#} h"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{span.TotalDays:0.#} d"),
    };

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";

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
