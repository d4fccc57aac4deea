using System.Diagnostics;
using System.Globalization;
using System.Text;
using Hourglass.Imports;
using Hourglass.Insights;
using Hourglass.Orders;
using Hourglass.Storage;
using Hourglass.Tenancy;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Bench;

/// <summary>
/// Events ingested per second. The trusted bulk path (<c>EventIngestion.BulkAsync</c>, binary COPY as the service
/// role, as <c>hourglass events import --bulk</c> runs it) against <c>psql \copy</c> of the same rows into the same table;
/// and the RLS path (<c>public.ingest_events</c> as an authenticated member) against a raw batched INSERT of the same rows
/// as the service role (a member may not write <c>warehouse_events</c> but through the function).
/// </summary>
internal static class IngestBenchmark
{
    private const string DatabaseName = "hourglass_bench_ingest";
    private const int Accounts = 1_000;
    private const int Contacts = 10_000;
    private const int Orders = 5_000;
    /// <summary>What the issue asks for, and the default.</summary>
    private const int IssueEvents = 1_000_000;

    /// <summary>The variable that sets fewer (or more) bulk events, for a quicker run: a multiple of 50,000.</summary>
    private const string EventsVariable = "HOURGLASS_BENCH_INGEST_EVENTS";

    /// <summary>The bulk events; a tenth of them for the bulk warm-up and for each RLS variant.</summary>
    private static readonly int BulkEvents = int.TryParse(Environment.GetEnvironmentVariable(EventsVariable), NumberStyles.None, CultureInfo.InvariantCulture,
        out var events) && events >= 50_000 && events % 50_000 == 0 ? events : IssueEvents;

    private static readonly int BulkWarmUpEvents = BulkEvents / 10;
    private const int BulkRounds = 3;
    private static readonly int RlsEvents = BulkEvents / 10;
    private const int RlsBatchSize = 1_000;
    private const int RlsRounds = 5;
    private static readonly int RlsBatchesPerRound = RlsEvents / RlsBatchSize / RlsRounds;
    private const double Goal = 0.8;
    private const string Source = "bench";

    private const string CopyColumns = "tenant_id, event_type, entity_type, entity_id, payload, source, idempotency_key, occurred_at";


    private enum BulkVariant
    {
        File,
        Lines,
        Staging,
        Psql,
        PsqlRandomIds,
    }

    private enum RlsVariant
    {
        Function,
        RecordApi,
        Baseline,
    }

    private static string Label(BulkVariant variant) => variant switch
    {
        BulkVariant.File => "(a) bulk path from the NDJSON file, streamed: StreamNdjsonAsync → BulkAsync (events import --bulk)",
        BulkVariant.Lines => "(b) bulk path from lines already read: BulkAsync",
        BulkVariant.Staging => "(c) bulk path, careful way (a key taken in each chunk): COPY to a temp table + INSERT … ON CONFLICT",
        BulkVariant.Psql => "(d) baseline: psql \\copy of the same rows (CSV, ids given)",
        _ => "(e) psql \\copy of the same rows without ids (gen_random_uuid())",
    };

    private static string Label(RlsVariant variant) => variant switch
    {
        RlsVariant.Function => "(f) ingest_events(tenant, jsonb, 'skip') as the member, one call per batch",
        RlsVariant.RecordApi => "(g) ImportPipeline.RecordAsync with EventImportKind as the member, one transaction per batch",
        _ => "(h) baseline: one raw INSERT … SELECT FROM unnest(arrays) per batch, as the service role",
    };

    private static string Tag(BulkVariant variant) => ((char)('a' + (int)variant)).ToString();

    private static string Tag(RlsVariant variant) => ((char)('f' + (int)variant)).ToString();

    /// <summary>One tenant's events in every form the variants read: NDJSON lines, parsed lines, CSV for psql, arrays.</summary>
    private sealed class EventSet
    {
        public required string[] Ndjson { get; init; }

        public required string[] Keys { get; init; }

        public required string[] Types { get; init; }

        public required string?[] EntityTypes { get; init; }

        public required Guid?[] EntityIds { get; init; }

        public required string[] Payloads { get; init; }

        public required DateTime[] At { get; init; }
    }

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var psql = Path.Combine(PostgresBinaryLocator.Locate().BinDirectory, "psql");
        if (!File.Exists(psql))
        {
            throw new HourglassException($"ingest: the baseline needs psql, and there is none at {psql}; install the PostgreSQL client.");
        }

        Console.WriteLine($"  ingest: creating {DatabaseName}…");
        await using var database = await ScratchDatabase.CreateAsync(dataSource, DatabaseName, cancellationToken);
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
        var (tenant, member) = await LoadAsync(connection, cancellationToken);
        var now = await Bench.ScalarAsync<DateTime>(connection, "select pg_catalog.now()", cancellationToken);
        var end = new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerMillisecond), DateTimeKind.Utc);

        var directory = Directory.CreateTempSubdirectory("hourglass-bench-ingest-");
        try
        {
            Console.WriteLine($"  ingest: writing {BulkEvents:#,0} events as NDJSON and CSV…");
            var events = await EventsAsync(connection, tenant, end, "evt", BulkEvents, cancellationToken);
            var warmUp = await EventsAsync(connection, tenant, end, "warm", BulkWarmUpEvents, cancellationToken);
            var files = new Files(directory.FullName, tenant, events, end);
            var warmUpFiles = new Files(Path.Combine(directory.FullName, "warm"), tenant, warmUp, end);
            await files.WriteAsync(cancellationToken);
            await warmUpFiles.WriteAsync(cancellationToken);
            var psqlCommand = new PsqlCommand(psql, database.DataSource.ConnectionString, await BackendCpuAsync(connection, cancellationToken) is not null);

            Console.WriteLine("  ingest: bulk warm-up…");
            foreach (var variant in Enum.GetValues<BulkVariant>())
            {
                await BulkRunAsync(database.DataSource, connection, variant, tenant, warmUpFiles, psqlCommand, cancellationToken);
            }

            var bulkRuns = Enum.GetValues<BulkVariant>().ToDictionary(v => v, _ => new List<double>());
            var serverCpu = Enum.GetValues<BulkVariant>().ToDictionary(v => v, _ => new List<double>());
            var clientCpu = Enum.GetValues<BulkVariant>().ToDictionary(v => v, _ => new List<double>());
            var fingerprints = new Dictionary<BulkVariant, string>();
            var variants = Enum.GetValues<BulkVariant>();
            for (var round = 0; round < BulkRounds; round++)
            {
                for (var i = 0; i < variants.Length; i++)
                {
                    var variant = variants[(round + i) % variants.Length];
                    var (seconds, server, client) = await BulkRunAsync(database.DataSource, connection, variant, tenant, files, psqlCommand, cancellationToken);
                    bulkRuns[variant].Add(BulkEvents / seconds);
                    if (server is { } serverSeconds)
                    {
                        serverCpu[variant].Add(serverSeconds);
                    }

                    if (client is { } clientSeconds)
                    {
                        clientCpu[variant].Add(clientSeconds);
                    }

                    Console.WriteLine($"  ingest bulk round {round + 1}/{BulkRounds}: {Label(variant),-100} {BulkEvents / seconds,10:#,0} events/s " +
                                      $"({seconds:0.00} s; backend CPU {server?.ToString("0.00", CultureInfo.InvariantCulture) ?? "n/a"} s)");
                    if (round == 0)
                    {
                        fingerprints[variant] = await Bench.ScalarAsync<string>(connection, InsightsStore.EventsFingerprintSql, cancellationToken, tenant);
                    }
                }
            }

            if (fingerprints.Values.Distinct().Count() != 1)
            {
                throw new HourglassException("ingest: the bulk variants wrote different rows; the comparison is not valid.");
            }

            var rls = await RlsAsync(database.DataSource, connection, tenant, member, end, cancellationToken);
            return Report(bulkRuns, serverCpu, clientCpu, rls);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    // One bulk variant over an emptied table, from the start of reading to the commit; checked to have written every row.
    // Besides the time: the CPU its database backend used (contention on a shared machine stretches the time, not this)
    // and, for the bulk path, this process's CPU.
    private static async Task<(double Seconds, double? ServerCpu, double? ClientCpu)> BulkRunAsync(NpgsqlDataSource dataSource, NpgsqlConnection connection,
        BulkVariant variant, Guid tenant, Files files, PsqlCommand psql, CancellationToken cancellationToken)
    {
        await Bench.ExecuteAsync(connection, InsightsStore.TruncateEventsSql, cancellationToken);
        if (variant == BulkVariant.Staging)
        {
            // The first event of every chunk already recorded: each chunk's probe finds its key, and every chunk goes
            // through the temporary table.
            await Bench.ExecuteAsync(connection, InsightsStore.InsertEventObjectsSql, cancellationToken, tenant, files.Events.Ndjson.Where((_, i) => i % EventBulkBatch.ChunkSize == 0).ToArray());
        }

        await Bench.ExecuteAsync(connection, "checkpoint", cancellationToken);
        var lines = variant is BulkVariant.Lines or BulkVariant.Staging ? files.Lines() : null;
        double? serverCpu = null;
        double? clientCpu = null;
        var recorded = files.Events.Keys.Length;
        var start = Stopwatch.GetTimestamp();
        switch (variant)
        {
            case BulkVariant.Psql:
                serverCpu = await psql.CopyAsync($"\\copy {InsightsStore.EventsTable} (id, {CopyColumns}) from '{files.CsvWithIds}' with (format csv)", cancellationToken);
                break;
            case BulkVariant.PsqlRandomIds:
                serverCpu = await psql.CopyAsync($"\\copy {InsightsStore.EventsTable} ({CopyColumns}) from '{files.Csv}' with (format csv)", cancellationToken);
                break;
            default:
            {
                var process = Process.GetCurrentProcess();
                var client = process.TotalProcessorTime;
                await using var session = await dataSource.OpenConnectionAsync(cancellationToken);
                var server = await BackendCpuAsync(session, cancellationToken);
                // (a) as `events import --bulk` runs: the file read while the lines before are written.
                using var reader = new StreamReader(files.Ndjson, Encoding.UTF8, true, 1 << 16);
                await using (var transaction = await DbSession.BeginAsServiceRoleAsync(session, cancellationToken))
                {
                    var outcomes = lines is null
                        ? await EventIngestion.BulkAsync(session, transaction, tenant, ImportPipeline.StreamNdjsonAsync(EventImportKind.Instance, reader, cancellationToken), ImportErrorMode.Refuse, cancellationToken)
                        : await EventIngestion.BulkAsync(session, transaction, tenant, lines, ImportErrorMode.Refuse, cancellationToken);
                    await transaction.CommitAsync(cancellationToken);
                    recorded = outcomes.Count(o => o.Outcome == "recorded");
                }

                serverCpu = await BackendCpuAsync(session, cancellationToken) - server;
                process.Refresh();
                clientCpu = (process.TotalProcessorTime - client).TotalSeconds;
                break;
            }
        }

        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var expected = files.Events.Keys.Length;
        var rows = await Bench.ScalarAsync<long>(connection, InsightsStore.CountEventsSql, cancellationToken, tenant);
        if (rows != expected || recorded != (variant == BulkVariant.Staging ? expected - TakenKeys(expected) : expected))
        {
            throw new HourglassException($"ingest: ({Tag(variant)}) left {rows:#,0} rows and recorded {recorded:#,0} of {expected:#,0} events; the numbers are not valid.");
        }

        return (seconds, serverCpu, clientCpu);
    }

    private static int TakenKeys(int events) => (events + EventBulkBatch.ChunkSize - 1) / EventBulkBatch.ChunkSize;

    // The CPU seconds (user + system) the connection's backend has used: fields 14 and 15 of /proc/self/stat, read by the
    // backend itself (pg_read_file needs a superuser or pg_read_server_files; without it, or off Linux, there is none).
    private static async Task<double?> BackendCpuAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            return ProcStatCpu(await Bench.ScalarAsync<string>(connection, "select pg_catalog.pg_read_file('/proc/self/stat')", cancellationToken));
        }
        catch (PostgresException)
        {
            return null;
        }
    }

    private static double ProcStatCpu(string stat)
    {
        // After the command name in parentheses: state is field 3, utime 14, stime 15 (in clock ticks, 100 a second).
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture)) / 100;
    }

    private static async Task<Dictionary<RlsVariant, List<double>>> RlsAsync(NpgsqlDataSource dataSource, NpgsqlConnection connection, Guid tenant, Guid member,
        DateTime end, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  ingest: RLS path, {RlsEvents:#,0} events per variant…");
        await Bench.ExecuteAsync(connection, InsightsStore.TruncateEventsSql, cancellationToken);
        var streams = new Dictionary<RlsVariant, EventSet>();
        foreach (var variant in Enum.GetValues<RlsVariant>())
        {
            streams[variant] = await EventsAsync(connection, tenant, end, $"rls-{Tag(variant)}", RlsEvents, cancellationToken);
        }

        var warmUp = await EventsAsync(connection, tenant, end, "rls-warm", RlsBatchSize * 3 * 3, cancellationToken);
        await using var session = await dataSource.OpenConnectionAsync(cancellationToken);
        foreach (var variant in Enum.GetValues<RlsVariant>())
        {
            for (var b = 0; b < 3; b++)
            {
                await RlsBatchAsync(session, variant, tenant, member, warmUp, (((int)variant) * 3) + b, cancellationToken);
            }
        }

        var runs = Enum.GetValues<RlsVariant>().ToDictionary(v => v, _ => new List<double>());
        var variants = Enum.GetValues<RlsVariant>();
        for (var round = 0; round < RlsRounds; round++)
        {
            await Bench.ExecuteAsync(connection, "checkpoint", cancellationToken);
            for (var i = 0; i < variants.Length; i++)
            {
                var variant = variants[(round + i) % variants.Length];
                var start = Stopwatch.GetTimestamp();
                for (var b = round * RlsBatchesPerRound; b < (round + 1) * RlsBatchesPerRound; b++)
                {
                    await RlsBatchAsync(session, variant, tenant, member, streams[variant], b, cancellationToken);
                }

                var perSecond = RlsBatchesPerRound * RlsBatchSize / Stopwatch.GetElapsedTime(start).TotalSeconds;
                runs[variant].Add(perSecond);
                Console.WriteLine($"  ingest RLS round {round + 1}/{RlsRounds}: {Label(variant),-100} {perSecond,10:#,0} events/s");
            }
        }

        foreach (var variant in variants)
        {
            var written = await Bench.ScalarAsync<long>(connection, InsightsStore.CountEventsByKeySql,
                cancellationToken, tenant, $"rls-{Tag(variant)}-%");
            if (written != RlsEvents)
            {
                throw new HourglassException($"ingest: ({Tag(variant)}) wrote {written:#,0} of {RlsEvents:#,0} events; the numbers are not valid.");
            }
        }

        return runs;
    }

    private static async Task RlsBatchAsync(NpgsqlConnection session, RlsVariant variant, Guid tenant, Guid member, EventSet events, int batch,
        CancellationToken cancellationToken)
    {
        var from = batch * RlsBatchSize;
        // A member writes events only through ingest_events (issue 15 took their INSERT on warehouse_events away: 42501), so the
        // raw baseline runs as the trusted service role, which RLS does not hold up either: (f)/(h) is all the member path costs.
        await using var transaction = variant == RlsVariant.Baseline
            ? await DbSession.BeginAsServiceRoleAsync(session, cancellationToken)
            : await DbSession.BeginAsUserAsync(session, member, cancellationToken);
        var recorded = 0;
        switch (variant)
        {
            case RlsVariant.Function:
            {
                await using var command = new NpgsqlCommand(InsightsStore.IngestEventsRecordedCountSql, session, transaction);
                command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenant });
                command.Parameters.Add(new NpgsqlParameter<string>
                {
                    TypedValue = "[" + string.Join(',', events.Ndjson, from, RlsBatchSize) + "]",
                    NpgsqlDbType = NpgsqlDbType.Jsonb,
                });
                recorded = (int)(await command.ExecuteScalarAsync(cancellationToken))!;
                break;
            }

            case RlsVariant.RecordApi:
            {
                var lines = Enumerable.Range(from, RlsBatchSize).Select(i => EventLine.Parse(i + 1, events.Ndjson[i])).ToList();
                var outcomes = await ImportPipeline.RecordAsync(EventImportKind.Instance, session, transaction, tenant, lines, ImportErrorMode.Skip, RlsBatchSize, cancellationToken);
                recorded = outcomes.Count(o => o.Outcome == "recorded");
                break;
            }

            default:
            {
                await using var command = new NpgsqlCommand(InsightsStore.InsertEventArraysSql, session, transaction);
                command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenant });
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = events.Types[from..(from + RlsBatchSize)] });
                command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = events.EntityTypes[from..(from + RlsBatchSize)] });
                command.Parameters.Add(new NpgsqlParameter<Guid?[]> { TypedValue = events.EntityIds[from..(from + RlsBatchSize)] });
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = events.Payloads[from..(from + RlsBatchSize)] });
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = events.Keys[from..(from + RlsBatchSize)] });
                command.Parameters.Add(new NpgsqlParameter<DateTime[]>
                {
                    TypedValue = events.At[from..(from + RlsBatchSize)],
                    NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz,
                });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Source });
                recorded = await command.ExecuteNonQueryAsync(cancellationToken);
                break;
            }
        }

        await transaction.CommitAsync(cancellationToken);
        if (recorded != RlsBatchSize)
        {
            throw new HourglassException($"ingest: ({Tag(variant)}) batch {batch + 1} recorded {recorded} of {RlsBatchSize}; the numbers are not valid.");
        }
    }

    private static BenchReport Report(Dictionary<BulkVariant, List<double>> bulk, Dictionary<BulkVariant, List<double>> serverCpu,
        Dictionary<BulkVariant, List<double>> clientCpu, Dictionary<RlsVariant, List<double>> rls)
    {
        var measurements = Enum.GetValues<BulkVariant>().Select(v => new Measurement(Label(v), "events/s", bulk[v]))
            .Concat(Enum.GetValues<RlsVariant>().Select(v => new Measurement(Label(v), "events/s", rls[v])))
            .ToList();
        double Median(IReadOnlyList<double> runs) => new Measurement("", "", runs).Median;
        string F2(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        string Cpu(Dictionary<BulkVariant, List<double>> cpu, IEnumerable<BulkVariant> variants) =>
            string.Join(", ", variants.Select(v => $"({Tag(v)}) {(cpu[v].Count > 0 ? F2(Median(cpu[v])) : "n/a")}"));
        var ratio = Median(bulk[BulkVariant.File]) / Median(bulk[BulkVariant.Psql]);
        return new BenchReport(
            "ingest",
            $"A scratch database (`{DatabaseName}`) with one tenant of {Accounts:#,0} accounts, {Contacts:#,0} contacts and {Orders:#,0} orders, and " +
            $"one member. Bulk: {BulkEvents:#,0} events of that tenant — 60% on a contact (reply, email_opened, meeting), 20% on an account " +
            "(meeting), 15% on an order (order_placed), 5% on none (note) — each with its own idempotency key, a small JSON payload and an " +
            "occurred_at within the 30 days before the run; written once as NDJSON (for the bulk path) and as CSV (for psql). Every bulk " +
            $"run starts from an emptied warehouse_events (truncated, then a CHECKPOINT) and ends with its commit; {BulkRounds} rounds, the variants in " +
            $"rotating order, after a warm-up of {BulkWarmUpEvents:#,0} events each. (a) is what `hourglass events import --bulk` does: " +
            $"in chunks of {EventBulkBatch.ChunkSize:#,0} lines, each read from the file and checked on another thread while the one before is " +
            "written: look up the chunk's entities, probe its keys, one binary COPY straight into warehouse_events; as the service role, " +
            "in one transaction. (b) is the same from lines already read (the file's, untimed). (c) has the first event of every chunk already recorded, so " +
            "every chunk's probe finds a key taken and its rows go through the temporary table and one INSERT … ON CONFLICT DO NOTHING " +
            $"({BulkEvents - TakenKeys(BulkEvents):#,0} recorded, {TakenKeys(BulkEvents)} duplicates). (d) is psql's \\copy of a CSV of the same rows with the " +
            "same kind of ids (version 7, increasing, made by the bulk path's own generator), as the database owner; (e) the same " +
            "without ids, so each row takes gen_random_uuid(). Checked: every variant left the same rows (compared by key: type, entity, " +
            $"payload, source, time). RLS: {RlsEvents:#,0} events per variant, the same mix, in batches of {RlsBatchSize:#,0}, each its own " +
            "transaction, (f) and (g) as the member (hourglass.DbSession: role authenticated, JWT claims), (h) as the service role, on one connection; " +
            $"{RlsRounds} rounds of {RlsBatchesPerRound} batches, rotating. (f) sends a prebuilt JSON array; (g) is the C# API from the " +
            "file's lines; (h) sends six arrays and one INSERT, without validation, keys or outcomes, as the service role: a member may not " +
            "write warehouse_events itself (only ingest_events writes it for them), so the baseline is the same rows written raw by the trusted role, " +
            "and (f)/(h) is what the member's path costs in all (validation, keys, outcomes, RLS). Value: the median of the runs; " +
            "Runs: each run's events/s.",
            measurements,
            "(a)/(d) events/s, bulk path from the file vs psql \\copy",
            ratio,
            $"≥ {Goal.ToString("0.0", CultureInfo.InvariantCulture)}",
            ratio >= Goal,
            [
                $"(b)/(d) = {F2(Median(bulk[BulkVariant.Lines]) / Median(bulk[BulkVariant.Psql]))}; (c)/(d) = {F2(Median(bulk[BulkVariant.Staging]) / Median(bulk[BulkVariant.Psql]))}; " +
                $"(d)/(e) = {F2(Median(bulk[BulkVariant.Psql]) / Median(bulk[BulkVariant.PsqlRandomIds]))}",
                $"RLS path: (f)/(h) = {F2(Median(rls[RlsVariant.Function]) / Median(rls[RlsVariant.Baseline]))}; " +
                $"(g)/(h) = {F2(Median(rls[RlsVariant.RecordApi]) / Median(rls[RlsVariant.Baseline]))} (no goal set in the issue)",
                $"CPU seconds per {BulkEvents:#,0} events (median), which a busy machine does not stretch: the database backend " +
                $"{Cpu(serverCpu, Enum.GetValues<BulkVariant>())}; this process (reading, checking, COPY) " +
                $"{Cpu(clientCpu, [BulkVariant.File, BulkVariant.Lines, BulkVariant.Staging])}",
                $"every bulk variant wrote the same rows (fingerprint by key); every RLS variant wrote its {RlsEvents:#,0} events",
            ]);
    }

    private static async Task<(Guid Tenant, Guid Member)> LoadAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var tenant = await TenancyStore.InsertTenantAsync(connection, null, "bench-ingest", cancellationToken);
        var member = Guid.CreateVersion7();
        await TenancyStore.InsertMemberAsync(connection, null, tenant, member, "member", cancellationToken);
        await TenancyStore.InsertNamedAccountsAsync(connection, null, tenant, Accounts, cancellationToken);
        await TenancyStore.InsertContactsOfNamedAccountsAsync(connection, null, tenant, Contacts, Accounts, cancellationToken);
        await OrderStore.InsertOrdersOfNamedAccountsAsync(connection, null, tenant, Orders, Accounts, cancellationToken);
        foreach (var table in new[] { "tenants", "tenant_members", "accounts", "contacts", "orders", "engagement_clocks" })
        {
            await Bench.ExecuteAsync(connection, $"vacuum analyze public.{table}", cancellationToken);
        }

        return (tenant, member);
    }

    // Event i: by i mod 20, on a contact (12 of 20), an account (4), an order (3) or nothing (1); entities by fixed permutations.
    private static async Task<EventSet> EventsAsync(NpgsqlConnection connection, Guid tenant, DateTime end, string prefix, int count,
        CancellationToken cancellationToken)
    {
        var contacts = await TenancyStore.ContactIdsByNameAsync(connection, null, tenant, cancellationToken);
        var accounts = await TenancyStore.AccountIdsByNameAsync(connection, null, tenant, cancellationToken);
        var orders = await OrderStore.OrderIdsByPoNumberAsync(connection, null, tenant, cancellationToken);
        var set = new EventSet
        {
            Ndjson = new string[count],
            Keys = new string[count],
            Types = new string[count],
            EntityTypes = new string?[count],
            EntityIds = new Guid?[count],
            Payloads = new string[count],
            At = new DateTime[count],
        };
        for (var i = 0; i < count; i++)
        {
            var (type, entityType, entityId, payload) = (i % 20) switch
            {
                < 12 => ((i / 20 % 3) switch { 0 => "reply", 1 => "email_opened", _ => "meeting" }, "contact", contacts[(int)((long)i * 7919 % contacts.Length)],
                    string.Create(CultureInfo.InvariantCulture, $$"""{"channel":"email","thread":{{i % 977}}}""")),
                < 16 => ("meeting", "account", accounts[(int)((long)i * 104_729 % accounts.Length)],
                    string.Create(CultureInfo.InvariantCulture, $$"""{"minutes":{{15 + (i % 4 * 15)}},"with":"owner"}""")),
                < 19 => ("order_placed", "order", orders[(int)((long)i * 15_485_863 % orders.Length)],
                    string.Create(CultureInfo.InvariantCulture, $$"""{"total":{{i % 5_000}}.50,"currency":"USD"}""")),
                _ => ("note", (string?)null, (Guid?)null, """{"text":"imported"}"""),
            };
            var at = end.AddMilliseconds(-((long)i * 104_729 % (30L * 24 * 3_600_000)));
            var key = string.Create(CultureInfo.InvariantCulture, $"{prefix}-{i:D7}");
            var atText = at.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
            set.Ndjson[i] = entityType is null
                ? $$"""{"event_type":"{{type}}","payload":{{payload}},"occurred_at":"{{atText}}","idempotency_key":"{{key}}","source":"{{Source}}"}"""
                : $$"""{"event_type":"{{type}}","entity_type":"{{entityType}}","entity_id":"{{entityId}}","payload":{{payload}},"occurred_at":"{{atText}}","idempotency_key":"{{key}}","source":"{{Source}}"}""";
            (set.Keys[i], set.Types[i], set.EntityTypes[i], set.EntityIds[i], set.Payloads[i], set.At[i]) = (key, type, entityType, entityId, payload, at);
        }

        return set;
    }

    /// <summary>The files of one event set: NDJSON for the bulk path, CSV (with and without ids) for psql.</summary>
    private sealed class Files(string directory, Guid tenant, EventSet events, DateTime stamp)
    {
        public EventSet Events { get; } = events;

        public string Ndjson { get; } = Path.Combine(directory, "events.ndjson");

        public string Csv { get; } = Path.Combine(directory, "events.csv");

        public string CsvWithIds { get; } = Path.Combine(directory, "events-with-ids.csv");

        /// <summary>The NDJSON lines as ReadNdjsonAsync returns them (parsed, untimed).</summary>
        public List<EventLine> Lines() => [.. Events.Ndjson.Select((json, i) => EventLine.Parse(i + 1, json))];

        public async Task WriteAsync(CancellationToken cancellationToken)
        {
            Directory.CreateDirectory(directory);
            await File.WriteAllLinesAsync(Ndjson, Events.Ndjson, cancellationToken);
            await using var csv = new StreamWriter(Csv, false, new UTF8Encoding(false));
            await using var withIds = new StreamWriter(CsvWithIds, false, new UTF8Encoding(false));
            // Ids of the kind the bulk path makes (increasing version 7, one time for the batch), made the same way.
            var ids = EventIds.Create(Events.Keys.Length, stamp);
            for (var i = 0; i < Events.Keys.Length; i++)
            {
                // CSV as PostgreSQL reads it: an empty unquoted field is NULL; the payload quoted, its quotes doubled.
                var row = string.Create(CultureInfo.InvariantCulture,
                    $"{tenant},{Events.Types[i]},{Events.EntityTypes[i]},{Events.EntityIds[i]},\"{Events.Payloads[i].Replace("\"", "\"\"", StringComparison.Ordinal)}\",{Source},{Events.Keys[i]},{Events.At[i]:yyyy-MM-dd'T'HH:mm:ss.fff'Z'}");
                await csv.WriteLineAsync(row);
                await withIds.WriteLineAsync($"{ids[i]},{row}");
            }
        }
    }

    /// <summary>psql against the scratch database, as its owner, the password in the environment.</summary>
    private sealed class PsqlCommand(string psql, string connectionString, bool measureCpu)
    {
        /// <summary>Runs the \copy and returns the CPU seconds its backend used (null when it cannot read /proc/self/stat).</summary>
        public async Task<double?> CopyAsync(string meta, CancellationToken cancellationToken)
        {
            const string stat = "select pg_catalog.pg_read_file('/proc/self/stat')";
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            var start = new ProcessStartInfo(psql)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            string[] commands = measureCpu ? ["-c", stat, "-c", meta, "-c", stat] : ["-c", meta];
            foreach (var argument in new[] { "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", builder.Host!, "-p", builder.Port.ToString(CultureInfo.InvariantCulture),
                         "-U", builder.Username!, "-d", builder.Database! }.Concat(commands))
            {
                start.ArgumentList.Add(argument);
            }

            start.Environment["PGPASSWORD"] = builder.Password;
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            if (process.ExitCode != 0)
            {
                throw new HourglassException($"ingest: psql failed ({process.ExitCode}): {(await stderr).Trim()} {(await stdout).Trim()}");
            }

            var stats = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.Contains(") ", StringComparison.Ordinal)).ToList();
            return stats.Count == 2 ? ProcStatCpu(stats[1]) - ProcStatCpu(stats[0]) : null;
        }
    }
}
