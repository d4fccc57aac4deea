using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Orders;
using Hourglass.Policies;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Bench;

/// <summary>
/// Where a drain's time goes, from Npgsql's own trace (the "Npgsql" ActivitySource): every command's client-side
/// duration, from send to the last row read, by statement. Listening costs time, so it is only on for untimed runs.
/// </summary>
internal sealed class OrderTrace : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentDictionary<string, (long Count, double Milliseconds)> _statements = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _texts = new(StringComparer.Ordinal);

    public OrderTrace()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                var text = activity.GetTagItem("db.query.text") as string ?? $"({activity.DisplayName})";
                var key = Classify(string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)));
                _texts.TryAdd(key, text);
                var ms = activity.Duration.TotalMilliseconds;
                _statements.AddOrUpdate(key, (1, ms), (_, s) => (s.Count + 1, s.Milliseconds + ms));
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>Statement (by phase name) → how many times it ran and its total client-side time.</summary>
    public IReadOnlyDictionary<string, (long Count, double Milliseconds)> Statements => _statements;

    /// <summary>Phase name → the statement's text as sent (for the write batch, its statements joined by ";\n").</summary>
    public IReadOnlyDictionary<string, string> Texts => _texts;

    public void Dispose() => _listener.Dispose();

    /// <summary>The processor's phases, in the order a batch goes through them.</summary>
    public static readonly string[] Phases =
    [
        "claim", "clock", "load: lines", "load: products", "load: price rules", "load: requirement rules", "load: policy (one query per tenant)",
        "load: orders, accounts, exposure", "write: guard", "write: fenced queue update", "write: the batch (fixes, orders, exceptions, cards, violations, events)",
    ];

    // The processor's statements (src/Hourglass.Core/Orders/OrderProcessor.cs) by phase; anything else by its opening.
    private static string Classify(string text) => text switch
    {
        _ when text.Contains("public.claim_orders(", StringComparison.Ordinal) => Phases[0],
        _ when text.StartsWith("select hourglass.now()", StringComparison.Ordinal) => Phases[1],
        _ when text.StartsWith("select order_id, id, product_id", StringComparison.Ordinal) => Phases[2],
        _ when text.StartsWith("select id, sku, name", StringComparison.Ordinal) => Phases[3],
        _ when text.StartsWith("select tenant_id, id, name, product_id", StringComparison.Ordinal) => Phases[4],
        _ when text.StartsWith("select tenant_id, rule_key", StringComparison.Ordinal) => Phases[5],
        _ when text.StartsWith("select version, document::text", StringComparison.Ordinal) => Phases[6],
        _ when text.StartsWith("select q.id, o.status", StringComparison.Ordinal) => Phases[7],
        _ when text.StartsWith("select set_config('hourglass.order_processor'", StringComparison.Ordinal) => Phases[8],
        _ when text.StartsWith("update public.order_processing_queue q set status = r.status", StringComparison.Ordinal) => Phases[9],
        _ when text.Contains("insert into public.warehouse_events", StringComparison.Ordinal) => Phases[10],
        _ when text.StartsWith("update public.order_processing_queue q set status = 'pending'", StringComparison.Ordinal) => "requeue decided approvals (once per drain)",
        _ => text[..Math.Min(60, text.Length)],
    };
}

/// <summary>Plans of the processor's heavy statements, each run under EXPLAIN ANALYZE in a transaction that is rolled back.</summary>
internal static class OrderPlans
{
    /// <summary>A batch as the processor would claim it next: queue ids, tenants, orders and their totals.</summary>
    public sealed record SampleBatch(Guid[] QueueIds, Guid[] TenantIds, Guid[] OrderIds, decimal[] Subtotals, decimal[] Totals);

    public static async Task<SampleBatch> NextBatchAsync(NpgsqlConnection connection, int size, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            select q.id, q.tenant_id, q.order_id, o.subtotal, o.total
            from public.order_processing_queue q join public.orders o on o.tenant_id = q.tenant_id and o.id = q.order_id
            where q.status = 'pending' order by q.priority desc, q.created_at limit $1
            """, connection);
        command.Parameters.Add(new() { Value = size });
        var rows = new List<(Guid, Guid, Guid, decimal, decimal)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add((reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetDecimal(3), reader.GetDecimal(4)));
        }

        return new SampleBatch(rows.Select(r => r.Item1).ToArray(), rows.Select(r => r.Item2).ToArray(), rows.Select(r => r.Item3).ToArray(),
            rows.Select(r => r.Item4).ToArray(), rows.Select(r => r.Item5).ToArray());
    }

    /// <summary>A plan in one line, and the statement's execution time.</summary>
    public sealed record Plan(string Shape, double Milliseconds)
    {
        public override string ToString() => $"{Shape}; {Ms(Milliseconds)} ms";
    }

    /// <summary>
    /// EXPLAIN (ANALYZE, BUFFERS) of one statement in a transaction that sets the processor's guard, as its writes do,
    /// after the <paramref name="setup"/> statements (a what-if index, say), and is then rolled back.
    /// </summary>
    public static async Task<Plan> ExplainAsync(NpgsqlConnection connection, string sql, object[] parameters, CancellationToken cancellationToken,
        params string[] setup)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        foreach (var statement in setup.Prepend("select set_config('hourglass.order_processor', 'on', true)"))
        {
            await using var command = new NpgsqlCommand(statement, connection, transaction);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var explain = new NpgsqlCommand($"explain (analyze, buffers, format json) {sql}", connection, transaction);
        foreach (var parameter in parameters)
        {
            explain.Parameters.Add(parameter as NpgsqlParameter ?? new NpgsqlParameter { Value = parameter });
        }

        var json = (string)(await explain.ExecuteScalarAsync(cancellationToken))!;
        await transaction.RollbackAsync(cancellationToken);
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement[0];
        return new Plan(Summary(root), root.GetProperty("Execution Time").GetDouble());
    }

    /// <summary>
    /// The plan of the claim inside <c>claim_orders</c>, by auto_explain (nested statements), on a claim that is
    /// rolled back, after the <paramref name="setup"/> statements.
    /// </summary>
    public static async Task<Plan> ExplainClaimAsync(NpgsqlConnection connection, int size, int visibilitySeconds, CancellationToken cancellationToken,
        params string[] setup)
    {
        var notices = new List<string>();
        void OnNotice(object? sender, NpgsqlNoticeEventArgs e) => notices.Add(e.Notice.MessageText);
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            foreach (var statement in setup.Concat(
            [
                "load 'auto_explain'", "set local auto_explain.log_min_duration = 0", "set local auto_explain.log_nested_statements = on",
                "set local auto_explain.log_analyze = on", "set local auto_explain.log_buffers = on", "set local auto_explain.log_format = json",
                "set local auto_explain.log_level = notice", "set local client_min_messages = notice",
            ]))
            {
                await using var command = new NpgsqlCommand(statement, connection, transaction);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            connection.Notice += OnNotice;
            try
            {
                await using var claim = new NpgsqlCommand("select count(*) from public.claim_orders('bench-explain', $1, $2, null)", connection, transaction);
                claim.Parameters.Add(new() { Value = size });
                claim.Parameters.Add(new() { Value = visibilitySeconds });
                await claim.ExecuteScalarAsync(cancellationToken);
            }
            finally
            {
                connection.Notice -= OnNotice;
            }

            await transaction.RollbackAsync(cancellationToken);
        }

        foreach (var notice in notices)
        {
            var start = notice.IndexOf('{', StringComparison.Ordinal);
            if (start < 0)
            {
                continue;
            }

            using var document = JsonDocument.Parse(notice[start..]);
            var root = document.RootElement;
            if ((root.GetProperty("Query Text").GetString() ?? "").Contains("with pending as", StringComparison.Ordinal))
            {
                var duration = notice[..start].Replace("plan:", "", StringComparison.Ordinal).Replace("duration:", "", StringComparison.Ordinal).Replace("ms", "", StringComparison.Ordinal).Trim().TrimEnd(',');
                return new Plan(Summary(root) + " (instrumented)", double.Parse(duration, CultureInfo.InvariantCulture));
            }
        }

        throw new HourglassException($"orders: auto_explain did not report claim_orders' query ({notices.Count} notices).");
    }

    private static string Summary(JsonElement root)
    {
        var plan = root.GetProperty("Plan");
        var triggers = root.TryGetProperty("Triggers", out var list)
            ? string.Concat(list.EnumerateArray().Select(t =>
                $"; trigger {t.GetProperty("Trigger Name").GetString()} {t.GetProperty("Calls").GetDouble():0} calls {Ms(t.GetProperty("Time").GetDouble())} ms"))
            : "";
        return $"{Shape(plan)}; shared hit={Blocks(plan, "Shared Hit Blocks")} read={Blocks(plan, "Shared Read Blocks")}{triggers}";
    }

    public static string Ms(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);

    private static long Blocks(JsonElement plan, string name) => plan.TryGetProperty(name, out var value) ? value.GetInt64() : 0;

    // A plan in one line, outermost node first, each node with its index or table, its actual rows (per loop) and
    // loops, and its own time where it is large; CTEs and subplans are named.
    private static string Shape(JsonElement node)
    {
        var text = new StringBuilder();
        if (node.TryGetProperty("Subplan Name", out var subplan))
        {
            text.Append(CultureInfo.InvariantCulture, $"{subplan.GetString()}: ");
        }

        text.Append(node.GetProperty("Node Type").GetString());
        if (node.TryGetProperty("Join Type", out var join) && join.GetString() is { } joinType && joinType != "Inner")
        {
            text.Append(CultureInfo.InvariantCulture, $" ({joinType})");
        }

        if (node.TryGetProperty("Index Name", out var index))
        {
            text.Append(CultureInfo.InvariantCulture, $" using {index.GetString()}");
        }
        else if (node.TryGetProperty("Relation Name", out var relation))
        {
            text.Append(CultureInfo.InvariantCulture, $" on {relation.GetString()}");
        }
        else if (node.TryGetProperty("CTE Name", out var cte))
        {
            text.Append(CultureInfo.InvariantCulture, $" on {cte.GetString()}");
        }

        if (node.TryGetProperty("Sort Method", out var method))
        {
            text.Append(CultureInfo.InvariantCulture, $" ({method.GetString()})");
        }

        if (node.TryGetProperty("Actual Rows", out var rows))
        {
            var loops = node.TryGetProperty("Actual Loops", out var l) ? l.GetInt64() : 1;
            text.Append(loops > 1
                ? string.Create(CultureInfo.InvariantCulture, $" [{rows.GetDouble():0} rows x {loops} loops")
                : string.Create(CultureInfo.InvariantCulture, $" [{rows.GetDouble():0} rows"));
            if (node.TryGetProperty("Rows Removed by Filter", out var removed) && removed.GetDouble() > 0)
            {
                text.Append(CultureInfo.InvariantCulture, $", {removed.GetDouble():0} filtered");
            }

            if (node.TryGetProperty("Heap Fetches", out var fetches) && fetches.GetDouble() > 0)
            {
                text.Append(CultureInfo.InvariantCulture, $", {fetches.GetDouble():0} heap fetches");
            }

            if (node.TryGetProperty("Actual Total Time", out var total) && total.GetDouble() * loops >= 1)
            {
                text.Append(CultureInfo.InvariantCulture, $", {Ms(total.GetDouble() * loops)} ms");
            }

            text.Append(']');
        }

        if (node.TryGetProperty("Plans", out var children))
        {
            var shapes = children.EnumerateArray().Select(Shape).ToList();
            text.Append(shapes.Count == 1 ? $" ← {shapes[0]}" : $" ← ({string.Join("; ", shapes)})");
        }

        return text.ToString();
    }

    /// <summary>The write batch's statements, one by one (the trace gives them joined by ";\n"), keyed by their opening.</summary>
    public static string Statement(string batch, string opening) =>
        batch.Split(";\n").Select(s => s.Trim()).FirstOrDefault(s => s.StartsWith(opening, StringComparison.Ordinal))
        ?? throw new HourglassException($"orders: the processor's write batch no longer has a statement starting '{opening}'; update bench/Hourglass.Bench/OrderProfile.cs.");

    /// <summary>A typed array parameter for texts that may be null.</summary>
    public static NpgsqlParameter Texts(string?[] values) => new() { Value = values, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text };
}

/// <summary>
/// What deciding costs in this process, without the database: <see cref="OrderDecider.Decide"/> on an order in
/// memory, as the processor calls it for each order of a batch, against a tenant's worth of price rules.
/// </summary>
internal static class OrderDecideTiming
{
    private const int Rules = 400;
    private const int WarmUp = 2_000;
    private const int Calls = 20_000;

    /// <summary>Microseconds per call: a clean 3-line order, and one whose first line is priced 5% off its rule.</summary>
    public static (double Clean, double Fixable) Measure()
    {
        var tenant = Guid.NewGuid();
        var account = new AccountData(Guid.NewGuid(), "Account 001", "standard", null, true,
            new JsonObject { ["line1"] = "1 Industrial Way", ["city"] = "Springfield", ["postal_code"] = "10001", ["country"] = "US" }, 1_370m, false);
        var products = Enumerable.Range(0, 300).Select(j => new ProductData(Guid.NewGuid(), $"SKU-{j:D4}", $"Product {j}", 5m + j, (5m + j) / 2, true))
            .ToDictionary(p => p.Id);
        var ids = products.Keys.ToArray();
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var rules = new List<PriceRule>
        {
            new(Guid.NewGuid(), "strategic tier", null, null, "strategic", "USD", 0, null, 12, null, null, 0),
            new(Guid.NewGuid(), "growth tier", null, null, "growth", "USD", 0, null, 5, null, null, 0),
        };
        for (var j = 0; rules.Count < Rules; j++)
        {
            var product = ids[j % ids.Length];
            rules.Add((j % 4) switch
            {
                0 => new PriceRule(Guid.NewGuid(), $"10+ of {j}", product, null, null, "USD", 10, null, 8, null, null, 0),
                1 => new PriceRule(Guid.NewGuid(), $"contract {j}", product, Guid.NewGuid(), null, "USD", 0, products[product].ListPrice * 0.9m, null, null, null, 10),
                2 => new PriceRule(Guid.NewGuid(), $"20+ of {j}", product, null, null, "USD", 20, null, 10, null, null, 0),
                _ => new PriceRule(Guid.NewGuid(), $"promotion {j}", product, null, null, "USD", 0, null, 30, today.AddDays(-90), today.AddDays(-30), 20),
            });
        }

        var shipTo = new JsonObject { ["line1"] = "1 Commerce St", ["city"] = "Springfield", ["postal_code"] = "62701", ["country"] = "US" };
        OrderSnapshot Order(decimal firstLineFactor)
        {
            var draft = new OrderSnapshot(Guid.NewGuid(), tenant, Guid.NewGuid(), 1, 0, 3, "placed", "USD", "PO-1", shipTo, today.AddDays(10), today,
                0, 0, 15, 0, account, [], products, rules, [], OrderSettings.From(null), 0, null, null, null, null);
            var lines = new List<OrderLineData>();
            foreach (var (product, quantity) in new[] { (ids[3], 4m), (ids[10], 12m), (ids[200], 1m) })
            {
                var line = new OrderLineData(Guid.NewGuid(), product, quantity, 0, 0);
                var price = OrderValidator.ExpectedPrice(draft with { Lines = [line] }, line, products[product])!.Value.Price;
                lines.Add(line with { UnitPrice = lines.Count == 0 ? Math.Round(price * firstLineFactor, 4) : price });
            }

            var subtotal = lines.Sum(l => l.Net);
            return draft with { Lines = lines, Subtotal = subtotal, Total = subtotal + 15 };
        }

        var clean = Order(1m);
        var fixable = Order(1.05m);
        var outcomes = (OrderDecider.Decide(clean, PolicyStore.BuiltIn, TimeZoneInfo.Utc, DateTimeOffset.UtcNow),
            OrderDecider.Decide(fixable, PolicyStore.BuiltIn, TimeZoneInfo.Utc, DateTimeOffset.UtcNow));
        if (outcomes.Item1 is not { Status: "validated", Fixes.Count: 0 } || outcomes.Item2 is not { Status: "validated", Fixes.Count: 2 })
        {
            throw new HourglassException(
                $"orders: the in-memory orders decided {outcomes.Item1.Status} with {outcomes.Item1.Fixes.Count} fixes and {outcomes.Item2.Status} with " +
                $"{outcomes.Item2.Fixes.Count}; expected validated with 0 and 2.");
        }

        return (Time(clean), Time(fixable));
    }

    private static double Time(OrderSnapshot order)
    {
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < WarmUp; i++)
        {
            OrderDecider.Decide(order, PolicyStore.BuiltIn, TimeZoneInfo.Utc, now);
        }

        var watch = Stopwatch.StartNew();
        for (var i = 0; i < Calls; i++)
        {
            OrderDecider.Decide(order, PolicyStore.BuiltIn, TimeZoneInfo.Utc, now);
        }

        return watch.Elapsed.TotalMicroseconds / Calls;
    }
}
