using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Policies;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Bench;

/// <summary>
/// Policy decisions per second in-process — <see cref="PolicyEvaluator.Evaluate"/> over a realistic document, a week of
/// touches and a varied stream of actions, as <see cref="DocumentPolicyEnforcer"/> runs it in a cycle — against the
/// same loop with an allow-everything decision in the same run; and the share of real cycles' time spent on policy
/// (the engine's own <c>policy_ms</c> against the cycle's wall time and phases).
/// </summary>
internal static class PolicyBenchmark
{
    private const string DatabaseName = "hourglass_bench_policies";
    private const int Contacts = 2_000;
    private const int ContactsPerAccount = 10;
    private const int Accounts = Contacts / ContactsPerAccount;
    private const int ActionsPerCycle = 50;
    private const int CyclesPerRound = 800;
    private const int CyclesPerBatch = 25;
    private const int Rounds = 7;
    private const int WarmUpRounds = 3;
    private const int HeavyTouchesPerWeek = 10_000;
    private const double GoalDecisionsPerSecond = 100_000;
    private const string Version = "v1";

    // The cycle part: standard tenants of the `cycles` benchmark, a busy hour (a full budget of 50 touches each).
    private const int CycleTenants = 50;
    private const int CycleRounds = 3;
    private const int HistoryPerTenant = 1_400;

    // Decisions happen every 53 minutes from a Monday midnight UTC: 800 cycles cover 29.4 days, nights, weekends and
    // five of the calendar's holidays, in every zone.
    private static readonly DateTimeOffset s_start = new(2026, 11, 30, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan s_cycleStep = TimeSpan.FromMinutes(53);
    private static readonly TimeSpan s_week = TimeSpan.FromDays(7);
    private static readonly string[] s_zoneIds =
        ["America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney"];

    private static readonly string[] s_holidays =
    [
        "2026-11-26", "2026-11-27", "2026-12-03", "2026-12-10", "2026-12-24", "2026-12-25", "2026-12-26", "2026-12-31", "2027-01-01", "2027-01-18",
        "2027-02-15", "2027-04-02", "2027-04-05", "2027-05-31", "2027-07-05", "2027-09-06", "2027-10-11", "2027-11-11", "2027-11-25", "2027-12-24",
    ];

    private enum Variant
    {
        Evaluator,
        Baseline,
        EvaluateOnly,
        AllCores,
        HeavyHistory,
    }

    private static string Label(Variant variant) => variant switch
    {
        Variant.Evaluator => "(a) PolicyAction.From + facts + PolicyEvaluator.Evaluate + RecordPermitted, one thread",
        Variant.Baseline => "(b) baseline: PolicyAction.From + facts + allow everything + RecordPermitted, one thread",
        Variant.EvaluateOnly => "(c) PolicyEvaluator.Evaluate + RecordPermitted alone (actions and facts prebuilt), one thread",
        Variant.AllCores => $"(d) (a) on all {Environment.ProcessorCount} cores (Parallel.For over cycles)",
        _ => $"(e) (a) with a heavier week: {HeavyTouchesPerWeek:#,0} touches, uniform over the contacts, one thread",
    };

    private static string Tag(Variant variant) => ((char)('a' + (int)variant)).ToString();

    /// <summary>One cycle's input: its moment, the proposed actions, and (for (c)) their policy view and facts resolved in advance.</summary>
    private sealed record CycleInput(DateTimeOffset Now, ProposedAction[] Actions, PolicyAction[] PolicyActions, TargetFacts[] Facts);

    /// <summary>A touch the agent made: when, on which channel, of whom.</summary>
    private readonly record struct PastTouch(DateTimeOffset At, string Channel, Guid Target);

    /// <summary>The tenant the in-process part decides for: the document, the facts of every contact and account, and the stream.</summary>
    private sealed class World
    {
        public required PolicyDocument Document { get; init; }

        public required TimeZoneInfo TenantZone { get; init; }

        public required Guid[] ContactIds { get; init; }

        public required Guid[] AccountIds { get; init; }

        public required Dictionary<Guid, TargetFacts> Facts { get; init; }

        public required CycleInput[] Cycles { get; init; }

        /// <summary>The agent's touches, sorted by time, from a week before the first cycle to the last: each cycle's history is its last 7 days.</summary>
        public required PastTouch[] Touches { get; init; }

        public required PastTouch[] HeavyTouches { get; init; }
    }

    public static async Task<BenchReport> RunAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var json = DocumentJson();
        var world = BuildWorld(PolicyDocument.Parse(json));
        var inProcess = MeasureInProcess(world, cancellationToken);
        var cycles = await MeasureCyclesAsync(dataSource, json, cancellationToken);
        return Report(world, inProcess, cycles);
    }

    // ------------------------------------------------------------------------------------- the world

    // The built-in default set (do-not-contact, one open touch, 3 touches a contact a week, 48 h between touches, 500
    // emails a day, business hours, channel allowlist, order approval above 50,000, auto-fix ceiling, credit hold, a
    // cycle budget of 100) plus what a tenant adds: channel caps, a soft tenant cap that warns, and a holiday calendar.
    private static string DocumentJson()
    {
        var root = JsonNode.Parse(PolicyDocument.DefaultJson)!.AsObject();
        var rules = root["rules"]!.AsArray();
        rules.Add(JsonNode.Parse("""{ "id": "webhook-hourly-cap", "kind": "cap", "scope": "channel", "channel": "webhook", "window": "hour", "limit": 25 }"""));
        rules.Add(JsonNode.Parse("""{ "id": "task-daily-cap", "kind": "cap", "scope": "channel", "channel": "task", "window": "day", "limit": 1000 }"""));
        rules.Add(JsonNode.Parse("""{ "id": "tenant-daily-soft-cap", "kind": "cap", "scope": "tenant", "window": "day", "limit": 1200, "decision": "warn" }"""));
        rules.Add(new JsonObject
        {
            ["id"] = "holidays",
            ["kind"] = "holidays",
            ["dates"] = new JsonArray(s_holidays.Select(d => (JsonNode)d).ToArray()),
            ["description"] = "No messages on the tenant's public holidays.",
        });
        return root.ToJsonString();
    }

    private static Guid NextGuid(Random random)
    {
        Span<byte> bytes = stackalloc byte[16];
        random.NextBytes(bytes);
        return new Guid(bytes);
    }

    private static World BuildWorld(PolicyDocument document)
    {
        var random = new Random(20261130);
        var tenantZone = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
        var zones = s_zoneIds.Select(TimeZoneInfo.FindSystemTimeZoneById).ToArray();
        var accounts = Enumerable.Range(0, Accounts).Select(_ => NextGuid(random)).ToArray();
        var contacts = Enumerable.Range(0, Contacts).Select(_ => NextGuid(random)).ToArray();
        var facts = new Dictionary<Guid, TargetFacts>();
        for (var a = 0; a < Accounts; a++)
        {
            var (zone, source) = a % 4 == 3 ? (tenantZone, "tenant") : (zones[a % zones.Length], "account");
            facts[accounts[a]] = new TargetFacts(zone, source,
                DoNotContactReason: a % 50 == 7 ? "the account is marked do-not-contact" : null,
                CreditHold: a % 20 == 3,
                LastTouchAt: s_start - TimeSpan.FromHours(random.Next(2, 30 * 24)));
        }

        for (var c = 0; c < Contacts; c++)
        {
            var account = c / ContactsPerAccount;
            var accountFacts = facts[accounts[account]];
            var (zone, source) = (c % 10) switch
            {
                < 5 => (zones[(c * 3) % zones.Length], "contact"),
                _ => (accountFacts.Zone, accountFacts.ZoneSource),
            };
            var dnc = c % 37 == 5 ? "the contact opted out on 2026-10-03"
                : c % 53 == 9 ? "the contact is marked do-not-contact"
                : accountFacts.DoNotContactReason;
            facts[contacts[c]] = new TargetFacts(zone, source, dnc, accountFacts.CreditHold, HasOpenTouch: c % 19 == 4,
                LastTouchAt: s_start - TimeSpan.FromHours(random.Next(2, 30 * 24)));
        }

        var end = s_start + s_cycleStep * CyclesPerRound;
        var cycles = new CycleInput[CyclesPerRound];
        for (var k = 0; k < CyclesPerRound; k++)
        {
            var cycleRandom = new Random(7919 * k + 17);
            var actions = new ProposedAction[ActionsPerCycle];
            for (var j = 0; j < ActionsPerCycle; j++)
            {
                actions[j] = NextAction(cycleRandom, contacts, accounts);
            }

            var policyActions = actions.Select(PolicyAction.From).ToArray();
            cycles[k] = new CycleInput(s_start + s_cycleStep * k, actions, policyActions,
                policyActions.Select(p => FactsOf(facts, p, tenantZone)).ToArray());
        }

        return new World
        {
            Document = document,
            TenantZone = tenantZone,
            ContactIds = contacts,
            AccountIds = accounts,
            Facts = facts,
            Cycles = cycles,
            Touches = CadenceTouches(random, contacts, accounts, s_start - s_week, end),
            HeavyTouches = UniformTouches(random, contacts, s_start - s_week, end),
        };
    }

    // The agent's own touches as the default policy lets it make them: each contact on a cadence of its own (every 2.5
    // to 10 days, so at most 3 in any 7 days and never 2 within 48 h), each account weekly; task 70%, email 25%,
    // webhook 5%.
    private static PastTouch[] CadenceTouches(Random random, Guid[] contacts, Guid[] accounts, DateTimeOffset from, DateTimeOffset to)
    {
        double[] cadenceDays = [2.5, 3, 3.5, 5, 7, 10];
        var touches = new List<PastTouch>();
        void Add(Guid target, double everyDays)
        {
            var every = TimeSpan.FromDays(everyDays);
            for (var at = from + every * random.NextDouble(); at <= to; at += every)
            {
                touches.Add(new PastTouch(at, Channel(random), target));
            }
        }

        foreach (var contact in contacts)
        {
            Add(contact, cadenceDays[random.Next(cadenceDays.Length)]);
        }

        foreach (var account in accounts)
        {
            Add(account, 7);
        }

        return [.. touches.OrderBy(t => t.At)];
    }

    // The brief's heavier week: 10,000 touches a week at random times, uniform over the contacts (5 a contact a
    // week: more than the document allows, so most touch proposals meet a full cap).
    private static PastTouch[] UniformTouches(Random random, Guid[] contacts, DateTimeOffset from, DateTimeOffset to)
    {
        var count = (int)(HeavyTouchesPerWeek * ((to - from) / s_week));
        var span = (to - from).Ticks;
        return [.. Enumerable.Range(0, count)
            .Select(_ => new PastTouch(from + TimeSpan.FromTicks((long)(random.NextDouble() * span)), Channel(random), contacts[random.Next(contacts.Length)]))
            .OrderBy(t => t.At)];
    }

    private static string Channel(Random random) => random.NextDouble() switch
    {
        < 0.70 => "task",
        < 0.95 => "email",
        _ => "webhook",
    };

    // The mix: touch_task cards on contacts 55% and accounts 5%; send_message 25% (email 75%, webhook 20%, a channel
    // the allowlist lacks 5%); order auto-fixes 9% and releases 5% (values log-uniform up to 200,000, 2% approved by a
    // person); 1% a kind the document does not list. Payloads as the touch part and the order processor build them.
    private static ProposedAction NextAction(Random random, Guid[] contacts, Guid[] accounts)
    {
        var roll = random.NextDouble();
        var contactIndex = random.Next(contacts.Length);
        var contact = contacts[contactIndex];
        var account = accounts[contactIndex / ContactsPerAccount];
        JsonObject TouchPayload() => new()
        {
            ["account_id"] = account.ToString(),
            ["owner_user_id"] = accounts[(contactIndex * 7) % accounts.Length].ToString(),
            ["compliance_status"] = "overdue",
            ["days_overdue"] = random.Next(0, 12),
            ["next_touch_due"] = (s_start - TimeSpan.FromHours(random.Next(1, 300))).ToString("O", CultureInfo.InvariantCulture),
            ["name"] = string.Create(CultureInfo.InvariantCulture, $"Account {contactIndex / ContactsPerAccount} person {contactIndex}"),
        };
        JsonObject OrderPayload()
        {
            var payload = new JsonObject
            {
                ["account_id"] = account.ToString(),
                ["order_id"] = NextGuid(random).ToString(),
                ["order_value"] = Math.Round((decimal)Math.Exp(random.NextDouble() * Math.Log(200_000)), 2),
            };
            if (random.NextDouble() < 0.02)
            {
                payload["approval"] = new JsonObject { ["approved_by"] = "dana", ["card_id"] = NextGuid(random).ToString() };
            }

            return payload;
        }

        switch (roll)
        {
            case < 0.55:
                return new ProposedAction("touch_task", "contact", contact, 50 + random.Next(50), "overdue 3 days", TouchPayload());
            case < 0.60:
                return new ProposedAction("touch_task", "account", account, 50 + random.Next(50), "account overdue", new JsonObject
                {
                    ["account_id"] = account.ToString(),
                    ["compliance_status"] = "due_soon",
                    ["days_overdue"] = 0,
                });
            case < 0.85:
            {
                var payload = TouchPayload();
                payload["channel"] = random.NextDouble() switch { < 0.75 => "email", < 0.95 => "webhook", _ => "sms" };
                payload["strategy_key"] = "check-in-email";
                payload["subject"] = "Checking in";
                return new ProposedAction("send_message", "contact", contact, 50 + random.Next(50), "overdue; strategy check-in-email", payload);
            }

            case < 0.94:
            {
                var payload = OrderPayload();
                payload["price_change_pct"] = Math.Round((decimal)(random.NextDouble() * 15), 2);
                payload["discount_change_pct"] = Math.Round((decimal)(random.NextDouble() * 8), 2);
                return new ProposedAction("order_auto_fix", "order", NextGuid(random), 40, "price differs from the rule", payload);
            }

            case < 0.99:
                return new ProposedAction("order_release", "order", NextGuid(random), 40, "validated", OrderPayload());
            default:
                return new ProposedAction("offer_discount", "contact", contact, 10, "a model's free-form suggestion", new JsonObject { ["account_id"] = account.ToString() });
        }
    }

    // As DocumentPolicyEnforcer.EvaluateAsync: the facts of the action's subject (contact, else account, else target).
    private static TargetFacts FactsOf(Dictionary<Guid, TargetFacts> facts, PolicyAction action, TimeZoneInfo tenantZone) =>
        DocumentPolicyEnforcer.Subject(action) is { } subject && facts.TryGetValue(subject, out var found) ? found : TargetFacts.None(tenantZone);

    // As DocumentPolicyEnforcer.LoadHistoryAsync: the touches of the 7 days before the cycle, oldest first.
    private static PolicyHistory HistoryFor(PastTouch[] touches, DateTimeOffset now)
    {
        var history = new PolicyHistory();
        var first = FirstAfter(touches, now - s_week);
        for (var i = first; i < touches.Length && touches[i].At <= now; i++)
        {
            history.AddPast(touches[i].Channel, touches[i].Target, touches[i].At);
        }

        return history;
    }

    private static int FirstAfter(PastTouch[] touches, DateTimeOffset at)
    {
        int low = 0, high = touches.Length;
        while (low < high)
        {
            var middle = (low + high) >>> 1;
            if (touches[middle].At <= at)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low;
    }

    private static int HistorySize(PastTouch[] touches, DateTimeOffset now) => FirstAfter(touches, now) - FirstAfter(touches, now - s_week);

    // ---------------------------------------------------------------------------------- in-process

    private sealed class InProcessResult
    {
        public Dictionary<Variant, List<double>> Runs { get; } = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<double>());

        public Dictionary<Variant, (long Decisions, double Seconds, long Bytes)> Totals { get; } = [];

        /// <summary>Each variant's fastest batch: the least disturbed by other work on the machine.</summary>
        public Dictionary<Variant, double> BestBatch { get; } = [];

        /// <summary>The verdicts of each variant's round, by round: every round must decide the same.</summary>
        public Dictionary<Variant, List<long[]>> Verdicts { get; } = Enum.GetValues<Variant>().ToDictionary(v => v, _ => new List<long[]>());

        public List<(CycleInput Cycle, int Index, PolicyDecision Decision)> Recorded { get; } = [];

        public Dictionary<PolicyVerdict, List<double>> LatencyByVerdict { get; } = [];

        public Dictionary<string, long> DeterminingRules { get; } = new(StringComparer.Ordinal);

        public double HistoryBuildMs { get; set; }

        public double MeanHistory { get; set; }

        public double MeanHeavyHistory { get; set; }

        public double HistoryMegabytes { get; set; }

        public int Gen0 { get; set; }

        public int Gen2 { get; set; }

        public long Sink { get; set; }
    }

    private static InProcessResult MeasureInProcess(World world, CancellationToken cancellationToken)
    {
        var result = new InProcessResult
        {
            MeanHistory = world.Cycles.Average(c => HistorySize(world.Touches, c.Now)),
            MeanHeavyHistory = world.Cycles.Average(c => HistorySize(world.HeavyTouches, c.Now)),
        };
        var variants = Enum.GetValues<Variant>();
        Console.WriteLine($"  policies: in-process, {CyclesPerRound} cycles x {ActionsPerCycle} actions a round; histories of {result.MeanHistory:#,0} " +
                          $"(heavy: {result.MeanHeavyHistory:#,0}) touches; warm-up round…");
        // Several rounds and pauses, so that tiered compilation (and dynamic PGO) has settled every method the loops call.
        for (var warmUp = 0; warmUp < WarmUpRounds; warmUp++)
        {
            foreach (var variant in variants)
            {
                RunRound(world, variant, record: null, cancellationToken);
            }

            Thread.Sleep(500);
        }

        var gen0 = GC.CollectionCount(0);
        var gen2 = GC.CollectionCount(2);
        for (var round = 0; round < Rounds; round++)
        {
            var perRound = variants.ToDictionary(v => v, _ => (Decisions: 0L, Seconds: 0.0, Bytes: 0L, Verdicts: new long[4]));
            // Batch by batch, the variants take turns (each batch starting with the next): a burst of other work on the
            // machine lands on all of them alike.
            for (var batch = 0; batch < CyclesPerRound / CyclesPerBatch; batch++)
            {
                for (var i = 0; i < variants.Length; i++)
                {
                    var variant = variants[(batch + round + i) % variants.Length];
                    var cycles = world.Cycles.AsSpan(batch * CyclesPerBatch, CyclesPerBatch).ToArray();
                    var measured = RunBatch(world, variant, cycles, round == 0 && variant == Variant.Evaluator ? result.Recorded : null, cancellationToken);
                    var sum = perRound[variant];
                    for (var v = 0; v < 4; v++)
                    {
                        sum.Verdicts[v] += measured.Verdicts[v];
                    }

                    perRound[variant] = (sum.Decisions + measured.Decisions, sum.Seconds + measured.Seconds, sum.Bytes + measured.Bytes, sum.Verdicts);
                    result.BestBatch[variant] = Math.Max(result.BestBatch.GetValueOrDefault(variant), measured.Decisions / measured.Seconds);
                    result.Sink += measured.Sink;
                }
            }

            foreach (var variant in variants)
            {
                var (decisions, seconds, bytes, verdicts) = perRound[variant];
                result.Runs[variant].Add(decisions / seconds);
                result.Verdicts[variant].Add(verdicts);
                var total = result.Totals.GetValueOrDefault(variant);
                result.Totals[variant] = (total.Decisions + decisions, total.Seconds + seconds, total.Bytes + bytes);
                Console.WriteLine($"  policies round {round + 1}/{Rounds}: {Label(variant),-100} {decisions / seconds,12:#,0} decisions/s");
            }
        }

        result.Gen0 = GC.CollectionCount(0) - gen0;
        result.Gen2 = GC.CollectionCount(2) - gen2;

        foreach (var (_, _, decision) in result.Recorded)
        {
            foreach (var rule in decision.DeterminingRules)
            {
                result.DeterminingRules[rule] = result.DeterminingRules.GetValueOrDefault(rule) + 1;
            }
        }

        // Per decision, timed one by one (one more pass of (a), not counted above): what each verdict costs.
        foreach (var verdict in Enum.GetValues<PolicyVerdict>())
        {
            result.LatencyByVerdict[verdict] = [];
        }

        foreach (var cycle in world.Cycles)
        {
            var history = HistoryFor(world.Touches, cycle.Now);
            foreach (var action in cycle.Actions)
            {
                var start = Stopwatch.GetTimestamp();
                var policyAction = PolicyAction.From(action);
                var decision = PolicyEvaluator.Evaluate(world.Document, Version, policyAction, FactsOf(world.Facts, policyAction, world.TenantZone),
                    history, cycle.Now, world.TenantZone);
                if (decision.Permits)
                {
                    history.RecordPermitted(policyAction, cycle.Now);
                }

                result.LatencyByVerdict[decision.Verdict].Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
            }
        }

        // What building a cycle's history costs (the in-process half of LoadHistoryAsync), and what one holds.
        var buildStart = Stopwatch.GetTimestamp();
        foreach (var cycle in world.Cycles)
        {
            result.Sink += HistoryFor(world.Touches, cycle.Now).PermittedThisCycle;
        }

        result.HistoryBuildMs = Stopwatch.GetElapsedTime(buildStart).TotalMilliseconds / world.Cycles.Length;
        var before = GC.GetTotalMemory(true);
        var held = world.Cycles.Take(CyclesPerBatch).Select(c => HistoryFor(world.Touches, c.Now)).ToList();
        result.HistoryMegabytes = (GC.GetTotalMemory(true) - before) / (1024.0 * 1024.0) / held.Count;
        GC.KeepAlive(held);
        return result;
    }

    private static void RunRound(World world, Variant variant, List<(CycleInput, int, PolicyDecision)>? record, CancellationToken cancellationToken)
    {
        for (var batch = 0; batch < CyclesPerRound / CyclesPerBatch; batch++)
        {
            RunBatch(world, variant, world.Cycles.AsSpan(batch * CyclesPerBatch, CyclesPerBatch).ToArray(), record, cancellationToken);
        }
    }

    private readonly record struct BatchResult(long Decisions, double Seconds, long Bytes, long[] Verdicts, long Sink);

    // One batch of cycles: each cycle's history built first (untimed: in the product it comes from the database in
    // PrepareAsync), then the cycles decided under the stopwatch.
    private static BatchResult RunBatch(World world, Variant variant, CycleInput[] cycles, List<(CycleInput, int, PolicyDecision)>? record,
        CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var touches = variant == Variant.HeavyHistory ? world.HeavyTouches : world.Touches;
        var histories = cycles.Select(c => HistoryFor(touches, c.Now)).ToArray();
        var verdicts = new long[4];
        long sink = 0;
        if (variant == Variant.AllCores)
        {
            var perCycle = new long[cycles.Length][];
            var start = Stopwatch.GetTimestamp();
            Parallel.For(0, cycles.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, k =>
            {
                var counts = new long[4];
                DecideCycle(world, Variant.Evaluator, cycles[k], histories[k], counts, null);
                perCycle[k] = counts;
            });
            var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            foreach (var counts in perCycle)
            {
                for (var v = 0; v < 4; v++)
                {
                    verdicts[v] += counts[v];
                }
            }

            return new BatchResult(cycles.Length * ActionsPerCycle, seconds, 0, verdicts, 0);
        }

        var bytesBefore = GC.GetAllocatedBytesForCurrentThread();
        var begin = Stopwatch.GetTimestamp();
        for (var k = 0; k < cycles.Length; k++)
        {
            sink += DecideCycle(world, variant, cycles[k], histories[k], verdicts, record);
        }

        var elapsed = Stopwatch.GetElapsedTime(begin).TotalSeconds;
        var bytes = GC.GetAllocatedBytesForCurrentThread() - bytesBefore;
        return new BatchResult(cycles.Length * ActionsPerCycle, elapsed, bytes, verdicts, sink);
    }

    // One cycle's decisions, as DocumentPolicyEnforcer.EvaluateAsync makes them (after PrepareAsync loaded the facts
    // and the history): each permitted action counts from then on.
    private static long DecideCycle(World world, Variant variant, CycleInput cycle, PolicyHistory history, long[] verdicts,
        List<(CycleInput, int, PolicyDecision)>? record)
    {
        long sink = 0;
        var now = cycle.Now;
        for (var i = 0; i < cycle.Actions.Length; i++)
        {
            PolicyAction policyAction;
            PolicyDecision decision;
            switch (variant)
            {
                case Variant.Baseline:
                    policyAction = PolicyAction.From(cycle.Actions[i]);
                    sink += FactsOf(world.Facts, policyAction, world.TenantZone).ZoneSource.Length;
                    decision = new PolicyDecision(PolicyVerdict.Allow, [], null, Version);
                    break;
                case Variant.EvaluateOnly:
                    policyAction = cycle.PolicyActions[i];
                    decision = PolicyEvaluator.Evaluate(world.Document, Version, policyAction, cycle.Facts[i], history, now, world.TenantZone);
                    break;
                default:
                    policyAction = PolicyAction.From(cycle.Actions[i]);
                    decision = PolicyEvaluator.Evaluate(world.Document, Version, policyAction, FactsOf(world.Facts, policyAction, world.TenantZone),
                        history, now, world.TenantZone);
                    break;
            }

            if (decision.Permits)
            {
                history.RecordPermitted(policyAction, now);
            }

            verdicts[(int)decision.Verdict]++;
            record?.Add((cycle, i, decision));
        }

        return sink;
    }

    // ------------------------------------------------------------------------------------ the checks

    // Independent of the evaluator: for every recorded decision of (a)'s first round, the rules that can be judged from
    // the action and its facts alone, written out plainly. Returns how many decisions each check covered.
    private static List<string> CheckDecisions(World world, InProcessResult result)
    {
        var problems = new List<string>();
        var covered = new Dictionary<string, int>(StringComparer.Ordinal);
        void Expect(string check, bool holds, CycleInput cycle, int index, PolicyDecision decision)
        {
            covered[check] = covered.GetValueOrDefault(check) + 1;
            if (!holds && problems.Count < 5)
            {
                var action = cycle.Actions[index];
                problems.Add($"{check}: {action.Kind} {action.TargetId} at {cycle.Now:O} was {decision.VerdictName} ({string.Join(", ", decision.DeterminingRules)})");
            }
        }

        var holidays = s_holidays.Select(d => DateOnly.ParseExact(d, "yyyy-MM-dd", CultureInfo.InvariantCulture)).ToHashSet();
        foreach (var (cycle, index, decision) in result.Recorded)
        {
            var action = cycle.PolicyActions[index];
            var facts = cycle.Facts[index];
            var denied = decision.Verdict == PolicyVerdict.Deny;
            var ruleIds = decision.Findings.Select(f => f.RuleId).ToHashSet(StringComparer.Ordinal);
            if (action.Kind is not ("touch_task" or "send_message" or "order_auto_fix" or "order_release"))
            {
                Expect("a kind the document does not list is denied by its default decision", denied && ruleIds.Contains("default_decision"), cycle, index, decision);
                continue;
            }

            if (action.IsTouch && facts.DoNotContactReason is not null)
            {
                Expect("a touch of a do-not-contact subject is denied by do-not-contact", denied && ruleIds.Contains("do-not-contact"), cycle, index, decision);
            }

            if (action.IsTouch && facts.HasOpenTouch)
            {
                Expect("a touch of a subject with an open touch is denied by one-open-touch", denied && ruleIds.Contains("one-open-touch"), cycle, index, decision);
            }

            if (action.Kind == "send_message")
            {
                var local = TimeZoneInfo.ConvertTime(cycle.Now, facts.Zone);
                var open = local.DayOfWeek is not (DayOfWeek.Saturday or DayOfWeek.Sunday) && local.Hour >= 8 && local.Hour < 18;
                Expect("a message outside Mon-Fri 08:00-18:00 in its zone is denied by business-hours, and one inside is not",
                    open != ruleIds.Contains("business-hours") && (open || denied), cycle, index, decision);
                var holiday = holidays.Contains(DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(cycle.Now, world.TenantZone).DateTime));
                Expect("a message on a holiday of the tenant's calendar is denied by holidays, and one on another day is not",
                    holiday == ruleIds.Contains("holidays") && (!holiday || denied), cycle, index, decision);
                var allowed = action.Channel is "email" or "webhook";
                Expect("a message on a channel outside the allowlist is denied by channels", allowed != ruleIds.Contains("channels") && (allowed || denied),
                    cycle, index, decision);
            }

            if (action.OrderValue is { } value)
            {
                var needsApproval = (value > 50_000 || facts.CreditHold) && action.ApprovedBy is null;
                Expect("an order action above 50,000 or on credit hold, not approved, waits for a person (or is denied); otherwise it does not wait",
                    needsApproval ? decision.Verdict >= PolicyVerdict.RequireApproval : decision.Verdict != PolicyVerdict.RequireApproval, cycle, index, decision);
                var tooLarge = action.PriceChangePct > 10 || action.DiscountChangePct > 5;
                Expect("an auto-fix past the ceiling (10% price, 5 points discount) is denied by auto-fix-ceiling",
                    tooLarge == ruleIds.Contains("auto-fix-ceiling") && (!tooLarge || denied), cycle, index, decision);
            }
        }

        if (problems.Count > 0)
        {
            throw new HourglassException($"policies: decisions disagree with the independent checks: {string.Join("; ", problems)}; the numbers are not valid.");
        }

        return [.. covered.Select(c => $"{c.Key}: {c.Value:#,0}")];
    }

    // ---------------------------------------------------------------------------------- in the cycle

    private sealed record CycleRun(Guid RunId, Guid Tenant, int Round, double WallMs, double PolicyMs, double PhasesMs, double PlanMs, double ActMs,
        double ReactMs, double ReflectMs, int Planned, int Taken, int Blocked, double DocumentMs, double HistoryMs, double FactsMs, Dictionary<string, int> BlockedBy)
    {
        public double PrepareMs => DocumentMs + HistoryMs + FactsMs;
    }

    private sealed record CycleShare(IReadOnlyList<CycleRun> Runs, double LoadSeconds, long HistoryRows, long Violations, string FactsPlan);

    // DocumentPolicyEnforcer.LoadFactsAsync's query, the store's own text, for EXPLAIN (the product sends it from its own connection).
    private const string FactsSql = TenancyStore.SubjectFactsSql;

    // The facts query's plan for one run's 50 targets, in one line: each node with its index and rows (per loop) and loops.
    private static async Task<string> FactsPlanAsync(NpgsqlDataSource dataSource, CycleRun run, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var subjects = await RunsStore.ActTargetsAsync(connection, null, run.RunId, cancellationToken);
        await using var command = new NpgsqlCommand($"explain (analyze, buffers, format json) {FactsSql}", connection);
        command.Parameters.Add(new() { Value = run.Tenant });
        command.Parameters.Add(new() { Value = subjects });
        var root = JsonNode.Parse((string)(await command.ExecuteScalarAsync(cancellationToken))!)![0]!;
        static string Shape(JsonNode node)
        {
            var text = node["Node Type"]!.GetValue<string>();
            if (node["Index Name"] is { } index)
            {
                text += $" using {index.GetValue<string>()}";
            }

            var loops = node["Actual Loops"]?.GetValue<double>() ?? 1;
            text += string.Create(CultureInfo.InvariantCulture, $" [{node["Actual Rows"]?.GetValue<double>() ?? 0:0.#} rows x {loops:0} loops");
            if (node["Rows Removed by Filter"] is { } removed)
            {
                text += string.Create(CultureInfo.InvariantCulture, $", {removed.GetValue<double>():#,0} removed by filter");
            }

            if (node["Rows Removed by Index Recheck"] is { } recheck)
            {
                text += string.Create(CultureInfo.InvariantCulture, $", {recheck.GetValue<double>():#,0} removed by recheck");
            }

            text += "]";
            return node["Plans"] is JsonArray children ? $"{text} ← ({string.Join("; ", children.Select(c => Shape(c!)))})" : text;
        }

        return $"{Shape(root["Plan"]!)}; shared buffers hit {root["Plan"]!["Shared Hit Blocks"]}, read {root["Plan"]!["Shared Read Blocks"]}; " +
               $"execution {root["Execution Time"]!.GetValue<double>().ToString("0.00", CultureInfo.InvariantCulture)} ms";
    }

    private static async Task<CycleShare> MeasureCyclesAsync(NpgsqlDataSource admin, string json, CancellationToken cancellationToken)
    {
        Console.WriteLine($"  policies: creating {DatabaseName} with {CycleTenants} standard tenants…");
        await using var database = await ScratchDatabase.CreateAsync(admin, DatabaseName, cancellationToken);
        var dataSource = database.DataSource;
        var watch = Stopwatch.StartNew();
        Guid[] tenants;
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            tenants = await LoadTenantsAsync(connection, cancellationToken);
            // Contacts in zones of their own (40%) and some do-not-contact (2%); a week of the agent's touches (the
            // ledger the enforcer loads: 200 a day, not in the last hour), none of them made by a run of this benchmark.
            await TenancyStore.SetSomeContactZonesAsync(connection, null, tenants, s_zoneIds, cancellationToken);
            await TenancyStore.SetSomeContactsDoNotContactAsync(connection, null, tenants, cancellationToken);
            await ActionLedger.InsertTouchHistoryAsync(connection, null, tenants, HistoryPerTenant, CycleBenchData.StandardContacts, cancellationToken);
            foreach (var tenant in tenants)
            {
                await PolicyStore.SaveAsync(dataSource, tenant, json, "bench", "policies benchmark", 0, cancellationToken);
            }

            await Bench.ExecuteAsync(connection,
                "vacuum analyze public.tenants, public.agent_tenant_schedules, public.accounts, public.contacts, public.engagement_clocks, " +
                "public.agent_actions, public.tenant_policy_documents", cancellationToken);
        }

        var loadSeconds = watch.Elapsed.TotalSeconds;
        var historyRows = 0L;
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            historyRows = await ActionLedger.CountWithoutRunAsync(connection, null, cancellationToken);
        }

        var engine = CycleComposition.CreateEngine(dataSource, TimeProvider.System);
        var runs = new List<CycleRun>();
        for (var round = 0; round <= CycleRounds; round++)
        {
            await PrepareBusyHourAsync(admin, dataSource, tenants, cancellationToken);
            var workerId = round == 0 ? "bench-policies-warm-up" : $"bench-policies-r{round}";
            var worker = new CycleWorker(dataSource, TimeProvider.System, engine, new CycleWorkerOptions { WorkerId = workerId, MaxConcurrentCycles = 1, LeaseMinutes = 2 });
            var wall = new Dictionary<Guid, double>();
            // Tenant order rotates round by round.
            for (var i = 0; i < tenants.Length; i++)
            {
                var tenant = tenants[(i + round * 17) % tenants.Length];
                var start = Stopwatch.GetTimestamp();
                var result = await worker.RunManualAsync(tenant, dryRun: false, hour: null, cancellationToken);
                wall[result.RunId] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (result.Status != "completed")
                {
                    throw new HourglassException($"policies: a cycle ended '{result.Status}' ({result.Error}); the numbers are not valid.");
                }
            }

            var measured = await ReadRunsAsync(dataSource, workerId, round, wall, cancellationToken);
            if (round > 0)
            {
                runs.AddRange(measured);
                Console.WriteLine($"  policies cycles round {round}/{CycleRounds}: policy_ms mean {measured.Average(r => r.PolicyMs):0.00} ms of " +
                                  $"{measured.Average(r => r.WallMs):0.0} ms a cycle ({measured.Average(r => r.PolicyMs / r.WallMs):P1})");
            }
        }

        long violations;
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            violations = await PolicyStore.CountViolationsAsync(connection, null, cancellationToken);
        }

        return new CycleShare(runs, loadSeconds, historyRows, violations, await FactsPlanAsync(dataSource, runs[^1], cancellationToken));
    }

    // The `cycles` benchmark's standard tenants without their orders and events (CycleBenchData.LoadStandardAsync
    // queues its orders by hand, which the orders migration's enqueue trigger now does too: it fails on the queue's
    // unique key): 20 accounts x 100 contacts, every one with an engagement clock (made by the schema's triggers), the
    // contacts' due dates spread over one 21-day cycle from 2 days overdue to 19 ahead, as in `cycles`.
    private static async Task<Guid[]> LoadTenantsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var tenants = await TenancyStore.InsertNumberedTenantsAsync(connection, null, "bench-policies-", CycleTenants, 1, cancellationToken);
        await ScheduleStore.PostponeAYearAsync(connection, null, tenants, cancellationToken);
        await TenancyStore.InsertGoldAccountsAsync(connection, null, tenants, CycleBenchData.StandardAccounts, cancellationToken);
        await TenancyStore.InsertContactsPerAccountAsync(connection, null, tenants, CycleBenchData.StandardContactsPerAccount, ContactLayout.ByAccountId,
            cancellationToken);
        await EngagementStore.SpreadContactClocksAsync(connection, null, tenants, CycleBenchData.StandardContacts, cancellationToken);
        return tenants;
    }

    // Untimed, before a round (as `cycles` prepares its busy hour): the clocks as a refresh an hour ago left them, none
    // of the hour's reflections, ledger rows of earlier runs, violations or cards, so every cycle takes a full budget
    // of touches; the week's history (ledger rows of no run) stays. Then VACUUM and a CHECKPOINT.
    private static async Task PrepareBusyHourAsync(NpgsqlDataSource admin, NpgsqlDataSource dataSource, Guid[] tenants, CancellationToken cancellationToken)
    {
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            await TenantControl.FreezeTimeAsync(connection, null, DateTimeOffset.UtcNow - TimeSpan.FromHours(1), cancellationToken);
            try
            {
                await EngagementStore.RefreshComplianceOfAsync(connection, null, tenants, cancellationToken);
            }
            finally
            {
                await TenantControl.ThawTimeAsync(connection, null, CancellationToken.None);
            }

            await HourlyReflections.DeleteThisHourAsync(connection, null, tenants, cancellationToken);
            await ActionLedger.DeleteRunActionsAsync(connection, null, tenants, cancellationToken);
            await PolicyStore.DeleteViolationsAsync(connection, null, tenants, cancellationToken);
            await EngagementStore.DeleteTouchAndApprovalCardsAsync(connection, null, tenants, cancellationToken);
            await Bench.ExecuteAsync(connection,
                "vacuum analyze public.cards, public.agent_actions, public.agent_policy_violations, public.agent_autonomous_runs, " +
                "public.agent_hourly_reflections, public.engagement_clocks, public.agent_tenant_schedules, public.agent_tenant_locks",
                cancellationToken);
        }

        await using var adminConnection = await admin.OpenConnectionAsync(cancellationToken);
        await Bench.ExecuteAsync(adminConnection, "checkpoint", cancellationToken);
    }

    // The engine's records of a round's runs: policy_ms from act_output, the phases from cycle_metrics; and, for each
    // run, the policy's database reads timed again on their own (document, week of touches, facts of its targets).
    private static async Task<List<CycleRun>> ReadRunsAsync(NpgsqlDataSource dataSource, string workerId, int round, Dictionary<Guid, double> wall,
        CancellationToken cancellationToken)
    {
        var rows = new List<(Guid Id, Guid Tenant, DateTimeOffset Started, DateTimeOffset Hour, JsonObject Act, JsonObject Phases, int Planned, int Taken, int Blocked)>();
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            foreach (var run in await RunsStore.RunsOfWorkerAsync(connection, null, workerId, cancellationToken))
            {
                if (run.Status != "completed")
                {
                    throw new HourglassException($"policies: run {run.Id} is '{run.Status}'; the numbers are not valid.");
                }

                rows.Add((run.Id, run.Tenant, run.Started, run.Hour, JsonNode.Parse(run.Act)!.AsObject(), JsonNode.Parse(run.Phases)!.AsObject(),
                    run.Planned, run.Taken, run.Blocked));
            }
        }

        if (rows.Count != wall.Count || rows.Any(r => !wall.ContainsKey(r.Id)))
        {
            throw new HourglassException($"policies: {workerId} recorded {rows.Count} runs for {wall.Count} cycles run; the numbers are not valid.");
        }

        var runs = new List<CycleRun>();
        foreach (var row in rows)
        {
            double Phase(string name) => JsonNumber(row.Phases[name]?["ms"]);
            var actions = row.Act["actions"]!.AsArray().Select(a => a!.AsObject()).ToList();
            var blockedBy = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var action in actions.Where(a => (string?)a["status"] == "blocked"))
            {
                foreach (var rule in action["rules"]?.AsArray() ?? [])
                {
                    blockedBy[(string)rule!] = blockedBy.GetValueOrDefault((string)rule!) + 1;
                }
            }

            // The enforcer's three reads, again, on their own: the document in force, the week's touches, the targets' facts.
            var subjects = actions.Select(a => Guid.Parse((string)a["target_id"]!)).Distinct().ToArray();
            var start = Stopwatch.GetTimestamp();
            await PolicyStore.InForceAsync(dataSource, row.Tenant, cancellationToken);
            var documentMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            start = Stopwatch.GetTimestamp();
            await DocumentPolicyEnforcer.LoadHistoryAsync(dataSource, row.Tenant, row.Started, row.Hour, new PolicyHistory(), cancellationToken);
            var historyMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            start = Stopwatch.GetTimestamp();
            await DocumentPolicyEnforcer.LoadFactsAsync(dataSource, row.Tenant, TimeZoneInfo.Utc, subjects, cancellationToken);
            var factsMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;

            var (plan, act, react, reflect) = (Phase("plan"), Phase("act"), Phase("react"), Phase("reflect"));
            runs.Add(new CycleRun(row.Id, row.Tenant, round, wall[row.Id], JsonNumber(row.Act["policy_ms"]), plan + act + react + reflect, plan, act,
                react, reflect, row.Planned, row.Taken, row.Blocked, documentMs, historyMs, factsMs, blockedBy));
        }

        return runs;
    }

    private static int HolidaysCovered() => s_holidays
        .Select(d => DateOnly.ParseExact(d, "yyyy-MM-dd", CultureInfo.InvariantCulture))
        .Count(d => d >= DateOnly.FromDateTime(s_start.UtcDateTime) && d <= DateOnly.FromDateTime((s_start + s_cycleStep * CyclesPerRound).UtcDateTime));

    private static double JsonNumber(JsonNode? node) => node is JsonValue v && v.TryGetValue<double>(out var d) ? d : double.NaN;

    // ---------------------------------------------------------------------------------------- report

    private static BenchReport Report(World world, InProcessResult result, CycleShare cycles)
    {
        var checks = CheckDecisions(world, result);
        var variants = Enum.GetValues<Variant>();
        foreach (var variant in variants)
        {
            if (result.Verdicts[variant].Any(v => !v.SequenceEqual(result.Verdicts[variant][0])))
            {
                throw new HourglassException($"policies: ({Tag(variant)}) decided differently from one round to the next; the numbers are not valid.");
            }
        }

        var reference = result.Verdicts[Variant.Evaluator][0];
        if (!result.Verdicts[Variant.EvaluateOnly][0].SequenceEqual(reference) || !result.Verdicts[Variant.AllCores][0].SequenceEqual(reference))
        {
            throw new HourglassException("policies: (a), (c) and (d) decided the same stream differently; the numbers are not valid.");
        }

        var perRound = (long)CyclesPerRound * ActionsPerCycle;
        if (result.Verdicts[Variant.Baseline][0][(int)PolicyVerdict.Allow] != perRound || reference.Sum() != perRound)
        {
            throw new HourglassException("policies: a round did not decide every action once; the numbers are not valid.");
        }

        if (cycles.Runs.Any(r => r.Planned != ActionsPerCycle || r.Taken + r.Blocked != ActionsPerCycle))
        {
            throw new HourglassException($"policies: not every cycle planned {ActionsPerCycle} touches and took or blocked each; the numbers are not valid.");
        }

        static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
        static double Median(IReadOnlyList<double> values) => new Measurement("", "", values).Median;
        static double P95(IEnumerable<double> values)
        {
            var sorted = values.Order().ToArray();
            return sorted[Math.Clamp((int)Math.Ceiling(0.95 * sorted.Length) - 1, 0, sorted.Length - 1)];
        }

        var measurements = variants.Select(v => new Measurement(Label(v), "decisions/s", result.Runs[v])).ToList();
        double BytesPerDecision(Variant v) => (double)result.Totals[v].Bytes / result.Totals[v].Decisions;
        foreach (var variant in new[] { Variant.Evaluator, Variant.Baseline, Variant.EvaluateOnly, Variant.HeavyHistory })
        {
            measurements.Add(new Measurement($"allocated per decision, ({Tag(variant)}) (GC.GetAllocatedBytesForCurrentThread, all rounds)", "bytes",
                [BytesPerDecision(variant)]));
        }

        var runs = cycles.Runs;
        var share = runs.Select(r => r.PolicyMs / r.WallMs).ToList();
        var phaseShare = runs.Select(r => r.PolicyMs / r.PhasesMs).ToList();
        List<double> ByRound(Func<CycleRun, double> f) => [.. runs.GroupBy(r => r.Round).OrderBy(g => g.Key).Select(g => g.Average(f))];
        measurements.Add(new Measurement($"in the cycle: policy_ms (act_output), mean over {runs.Count} busy cycles", "ms", ByRound(r => r.PolicyMs))
        {
            Overall = runs.Average(r => r.PolicyMs),
        });
        measurements.Add(new Measurement("in the cycle: the cycle's wall time (RunManualAsync), mean", "ms", ByRound(r => r.WallMs)) { Overall = runs.Average(r => r.WallMs) });
        measurements.Add(new Measurement("in the cycle: the policy's three reads timed on their own after the round, mean", "ms", ByRound(r => r.PrepareMs))
        {
            Overall = runs.Average(r => r.PrepareMs),
        });

        var (a, b) = (Median(result.Runs[Variant.Evaluator]), Median(result.Runs[Variant.Baseline]));
        var (c, d, e) = (Median(result.Runs[Variant.EvaluateOnly]), Median(result.Runs[Variant.AllCores]), Median(result.Runs[Variant.HeavyHistory]));
        string Us(double decisionsPerSecond) => F(1e6 / decisionsPerSecond, "0.00");
        var verdictNames = Enum.GetValues<PolicyVerdict>();
        string Mix(long[] counts) => string.Join(", ", verdictNames.Select(v => $"{PolicyEvaluator.Name(v)} {counts[(int)v]:#,0}"));
        var latency = string.Join("; ", verdictNames.Where(v => result.LatencyByVerdict[v].Count > 0).Select(v =>
            $"{PolicyEvaluator.Name(v)} {F(result.LatencyByVerdict[v].Average(), "0.00")} µs (n = {result.LatencyByVerdict[v].Count:#,0})"));
        var all = result.LatencyByVerdict.Values.SelectMany(l => l).Order().ToArray();
        var rules = string.Join(", ", result.DeterminingRules.OrderByDescending(r => r.Value).Select(r => $"{r.Key} {r.Value:#,0}"));
        var blocked = runs.SelectMany(r => r.BlockedBy).GroupBy(p => p.Key).Select(g => (Rule: g.Key, Count: g.Sum(p => p.Value)))
            .OrderByDescending(g => g.Count).Select(g => $"{g.Rule} {g.Count:#,0}");
        var heavy = result.Verdicts[Variant.HeavyHistory][0];
        double Share(Guid[] ids, Func<TargetFacts, bool> holds) => 100.0 * ids.Count(id => holds(world.Facts[id])) / ids.Length;
        var inProcessPerCycle = ActionsPerCycle * 1e3 / a;

        return new BenchReport(
            "policies",
            $"In-process: one tenant of {Contacts:#,0} contacts in {Accounts} accounts, under the built-in default document plus three caps (webhooks " +
            "25 an hour, task cards 1,000 a day, a tenant soft cap of 1,200 a day that warns) and a holiday calendar of 20 dates: " +
            $"{world.Document.Rules.Count} rules. Facts per contact and account as the enforcer loads them: time zones (7 zones; contact 50%, else " +
            $"the account's, some accounts the tenant's), do-not-contact {F(Share(world.ContactIds, f => f.DoNotContactReason is not null), "0.0")}% " +
            $"of contacts (their own or their account's), an open touch {F(Share(world.ContactIds, f => f.HasOpenTouch), "0.0")}%, credit hold " +
            $"{F(Share(world.AccountIds, f => f.CreditHold), "0.0")}% of accounts, the last touch by anyone 2 h-30 days ago. {CyclesPerRound} cycles of {ActionsPerCycle} actions, one every 53 " +
            $"minutes from Monday 2026-11-30 00:00 UTC ({F((s_cycleStep * CyclesPerRound).TotalDays, "0.0")} days: nights, weekends, " +
            $"{HolidaysCovered()} of the holidays); each cycle's history, built untimed before it " +
            "as PrepareAsync would load it, holds the agent's touches of the 7 days before it: each contact touched on a cadence of its own " +
            $"(every 2.5-10 days, so within the default caps and gaps; accounts weekly): {F(result.MeanHistory, "#,0")} touches on average " +
            $"(task 70%, email 25%, webhook 5%); (e) uses instead {HeavyTouchesPerWeek:#,0} a week at random times ({F(result.MeanHeavyHistory, "#,0")} " +
            "on average), more than the caps allow. The stream: touch_task on contacts 55% and accounts 5%, send_message 25% (email 75%, webhook " +
            "20%, sms 5%), order_auto_fix 9% and order_release 5% (values log-uniform to 200,000, 2% approved), 1% a kind the document does not " +
            "list; payloads as the touch part builds them. Each action is decided as DocumentPolicyEnforcer.EvaluateAsync decides it: " +
            "PolicyAction.From(action), the subject's facts from a dictionary, Evaluate, and RecordPermitted when it permits. Batches of " +
            $"{CyclesPerBatch} cycles, variants in rotating order batch by batch; {WarmUpRounds} warm-up rounds (with pauses, so tiered compilation settles), then {Rounds} rounds of {perRound:#,0} " +
            "decisions per variant; decisions/s = decisions / time in the timed loops; median of the rounds. In the cycle: a scratch database " +
            $"(`{DatabaseName}`) with {CycleTenants} tenants loaded as the `cycles` benchmark's standard ones, without their orders and events " +
            $"(20 accounts x 100 contacts, clocks due over 21 days from 2 days overdue; 40% of contacts in zones of their own, 2% do-not-contact), each with this document saved (PolicyStore.SaveAsync) and a week of the agent's touches in the ledger " +
            $"({HistoryPerTenant:#,0} a tenant, none in the last hour); loaded in {F(cycles.LoadSeconds, "0")} s. A busy hour as `cycles` prepares it " +
            "(clocks as an hour-old refresh left them, no open cards, this benchmark's ledger rows, violations and reflections removed, VACUUM, " +
            $"CHECKPOINT), then `CycleComposition.CreateEngine` + `CycleWorker.RunManualAsync` for each tenant in turn: a warm-up round, then {CycleRounds} " +
            "rounds. Each cycle plans 50 touches; policy_ms is the engine's own figure (PrepareAsync's three reads and the 50 decisions); wall time " +
            "is RunManualAsync's, lease included.",
            measurements,
            "(a)/(b) time per decision",
            b / a,
            "no goal set for the ratio (the issue's goal is on (a)'s decisions/s, below)",
            true,
            [
                $"time per decision, µs: (a) {Us(a)}, (b) {Us(b)}, (c) {Us(c)}, (e) {Us(e)}; the evaluator's own cost (a) - (b) = {F(1e6 / a - 1e6 / b, "0.00")} µs; " +
                $"(d)/(a) = {F(d / a, "0.00")} on {Environment.ProcessorCount} cores",
                $"fastest batch of {CyclesPerBatch * ActionsPerCycle:#,0} decisions (the least disturbed by other work), decisions/s: " +
                string.Join(", ", variants.Select(v => $"({Tag(v)}) {F(result.BestBatch[v], "#,0")}")),
                $"allocated per decision, bytes: (a) {F(BytesPerDecision(Variant.Evaluator), "#,0")}, (b) {F(BytesPerDecision(Variant.Baseline), "#,0")}, " +
                $"(c) {F(BytesPerDecision(Variant.EvaluateOnly), "#,0")}, (e) {F(BytesPerDecision(Variant.HeavyHistory), "#,0")}; collections during the rounds " +
                $"(history building included): gen0 {result.Gen0:#,0}, gen2 {result.Gen2:#,0}",
                $"verdicts of a round of (a), (c) and (d) (the same in every round and variant): {Mix(reference)}; of (e): {Mix(heavy)}",
                $"determining rules of a round of (a): {rules}",
                $"each decision timed on its own (one more pass of (a), {all.Length:#,0} decisions): {latency}; p50 {F(all[all.Length / 2], "0.00")} µs, " +
                $"p99 {F(all[(int)(all.Length * 0.99)], "0.00")} µs, max {F(all[^1], "0.0")} µs",
                $"building a cycle's history in-process (AddPast of {F(result.MeanHistory, "#,0")} touches, untimed above): {F(result.HistoryBuildMs, "0.000")} ms; " +
                $"a history holds about {F(result.HistoryMegabytes, "0.00")} MB",
                "checked against plain code for every decision of (a)'s first round (no disagreement): " + string.Join("; ", checks),
                $"in the cycle: {runs.Count} cycles ({CycleRounds} rounds x {CycleTenants} tenants), all 'completed', each planned {ActionsPerCycle} touches; " +
                $"taken {runs.Sum(r => r.Taken):#,0}, blocked {runs.Sum(r => r.Blocked):#,0} (by {string.Join(", ", blocked)}); " +
                $"{cycles.Violations:#,0} violation rows in the last round; the ledger's week: {cycles.HistoryRows:#,0} rows",
                $"policy share of a cycle: policy_ms / wall time mean {F(share.Average() * 100, "0.0")}%, p95 {F(P95(share) * 100, "0.0")}%; " +
                $"policy_ms / sum of the phases (plan+act+react+reflect) mean {F(phaseShare.Average() * 100, "0.0")}%, p95 {F(P95(phaseShare) * 100, "0.0")}%",
                $"in the cycle, ms (means): policy_ms {F(runs.Average(r => r.PolicyMs), "0.00")} (p95 {F(P95(runs.Select(r => r.PolicyMs)), "0.00")}), wall " +
                $"{F(runs.Average(r => r.WallMs), "0.0")} (p95 {F(P95(runs.Select(r => r.WallMs)), "0.0")}); phases plan {F(runs.Average(r => r.PlanMs), "0.0")}, " +
                $"act {F(runs.Average(r => r.ActMs), "0.0")}, react {F(runs.Average(r => r.ReactMs), "0.0")}, reflect {F(runs.Average(r => r.ReflectMs), "0.0")}",
                $"where policy_ms goes: the three reads timed on their own {F(runs.Average(r => r.PrepareMs), "0.00")} ms (document in force " +
                $"{F(runs.Average(r => r.DocumentMs), "0.00")}, the week's touches {F(runs.Average(r => r.HistoryMs), "0.00")}, the 50 targets' facts " +
                $"{F(runs.Average(r => r.FactsMs), "0.00")}); 50 decisions in-process at (a)'s rate {F(inProcessPerCycle, "0.000")} ms",
                $"plan of LoadFactsAsync's query for one run's 50 targets (copied, EXPLAIN ANALYZE): {cycles.FactsPlan}",
            ])
        {
            HasGoal = false,
            FurtherGoals =
            [
                new FurtherGoal("(a) decisions/s, one thread", F(a, "#,0"), $">= {F(GoalDecisionsPerSecond, "#,0")}", a >= GoalDecisionsPerSecond),
            ],
        };
    }
}
