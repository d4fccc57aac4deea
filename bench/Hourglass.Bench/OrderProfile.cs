using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Orders;
using Hourglass.Policies;
using Hourglass.Tenancy;
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
                var ms = activity.Duration.TotalMilliseconds;
                _statements.AddOrUpdate(key, (1, ms), (_, s) => (s.Count + 1, s.Milliseconds + ms));
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>Statement (by phase name) → how many times it ran and its total client-side time.</summary>
    public IReadOnlyDictionary<string, (long Count, double Milliseconds)> Statements => _statements;

    public void Dispose() => _listener.Dispose();

    /// <summary>The phases of a batch, in order: its three round trips (the processor's, and the same-work baseline's alike); the write's includes its commit.</summary>
    public static readonly string[] Phases =
    [
        "claim (with the clock)", "load: one batch of six reads", "write: the guard and one statement (fenced queue update, everything else), with the commit",
    ];

    // The statements (src/Hourglass.Core/Orders/OrderProcessor.cs and OrderWriter.cs, which the same-work baseline
    // sends too) by phase; a batch is traced as one activity, its statements' texts joined; anything else by its opening.
    private static string Classify(string text) => text switch
    {
        _ when text.Contains("public.claim_orders(", StringComparison.Ordinal) => Phases[0],
        _ when text.Contains(TenancyStore.TenantSettingsSql, StringComparison.Ordinal) => Phases[1],
        _ when text.Contains("set_config('hourglass.order_processor'", StringComparison.Ordinal) => Phases[2],
        // OrderStore.RequeueDecidedApprovalsAsync's statement: the only update that looks for entries waiting on an approval.
        _ when text.StartsWith("update ", StringComparison.Ordinal) && text.Contains("q.status = 'needs_approval'", StringComparison.Ordinal)
            => "requeue decided approvals (once per drain)",
        _ => text[..Math.Min(60, text.Length)],
    };
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
