using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Insights;
using Hourglass.Orders;
using Npgsql;

namespace Hourglass.Simulation;

/// <summary>
/// What the simulation measures as it runs (what only the world knows: the true reply chances, which order had which
/// defect) and reads from the database at the end (what the agent did: caps, order outcomes, runs, its estimates).
/// </summary>
internal sealed class SimulationRecorder(SimWorld world)
{
    private readonly List<HourPoint> _hours = [];
    private readonly Dictionary<int, DayCounts> _days = [];
    private readonly StrategyTally[,] _tally = new StrategyTally[world.Tenants.Count, 2];
    private readonly Dictionary<Guid, OrderDefect> _orders = [];
    private readonly long[] _overdueHours = new long[4];
    private readonly SortedDictionary<string, long> _refused = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, long> _answers = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, long> _outcomes = new(StringComparer.Ordinal);
    private long _sentAfterAnswer;
    private long _repliesMeasured;
    private long _repliesMoved;

    private SimulationOptions Options => world.Options;

    /// <summary>The day from which the compliance goal holds (21, or half the run when it is shorter).</summary>
    public int ComplianceFromDay => Math.Min(21, Options.Days / 2);

    /// <summary>The day from which the strategy goal is measured (60, or two thirds of the run when it is shorter).</summary>
    public int StrategyFromDay => Math.Min(60, Options.Days * 2 / 3);

    private DayCounts Day(DateTimeOffset at)
    {
        var day = (int)Math.Floor((at - Options.Start).TotalDays);
        if (!_days.TryGetValue(day, out var counts))
        {
            _days[day] = counts = new DayCounts();
        }

        return counts;
    }

    public async Task MeasureHourAsync(NpgsqlDataSource dataSource, int hour, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Overdue by what stands for the clock: a touch card a person has not done, an approval not decided, a message not
        // sent, or nothing (the agent has not acted) — to see why a clock is late, not only that it is.
        long overdue = 0, clocks = 0;
        var worst = 0.0;
        (Guid Tenant, OverdueCauses Causes)? worstTenant = null;
        foreach (var (tenant, o, n, card, approval, message) in await EngagementStore.OverdueByCauseAsync(dataSource, now, cancellationToken))
        {
            overdue += o;
            clocks += n;
            var share = n == 0 ? 0 : (double)o / n;
            if (o > 0 && share > worst)
            {
                worst = share;
                worstTenant = (tenant, new OverdueCauses(card, approval, message, Math.Max(0, o - card - approval - message)));
            }

            if (hour >= ComplianceFromDay * 24)
            {
                _overdueHours[0] += card;
                _overdueHours[1] += approval;
                _overdueHours[2] += message;
                _overdueHours[3] += Math.Max(0, o - card - approval - message);
            }
        }

        _hours.Add(new HourPoint(hour, clocks == 0 ? 0 : Math.Round((double)overdue / clocks, 5), Math.Round(worst, 5), overdue,
            worstTenant is { } w ? world.Tenants.First(t => t.Id == w.Tenant).Name : null, worstTenant?.Causes));
    }

    public void Reply(DateTimeOffset at) => Day(at).Replies++;

    /// <summary>A message the transport took that reached no one (a dead address): sent, but no touch of the contact's.</summary>
    public void MessageDelivered(DateTimeOffset at) => Day(at).Messages++;

    /// <summary>A message was sent to a contact after the world had bounced it hard, complained or unsubscribed.</summary>
    public void SentAfterAnswer() => _sentAfterAnswer++;

    /// <summary>What the world answered about an email (its type; an auto-reply apart), and what the inbound recorder did with it.</summary>
    public void Answered(string type, bool autoReply, Engagement.Inbound.InboundOutcome outcome)
    {
        var what = autoReply ? "reply (out of office)" : type;
        _answers[what] = _answers.GetValueOrDefault(what) + 1;
        var did = $"{what}: {outcome.Status}, {outcome.Effect}";
        _outcomes[did] = _outcomes.GetValueOrDefault(did) + 1;
    }

    /// <summary>A reply that arrived this hour: did its contact's clock move to it (or later) by the end of the hour?</summary>
    public void ReplyClock(bool moved)
    {
        _repliesMeasured++;
        _repliesMoved += moved ? 1 : 0;
    }

    public void ManualTouch(DateTimeOffset at) => Day(at).ManualTouches++;

    public void CardCompleted(DateTimeOffset at) => Day(at).Calls++;

    public void ApprovalDecided(bool approved)
    {
        if (approved)
        {
            Approved++;
        }
        else
        {
            Rejected++;
        }
    }

    public int Approved { get; private set; }

    /// <summary>A person's decision the database refused because the card was no longer open (<see cref="SimRefusals"/>).</summary>
    public void Refused(string reason) => _refused[reason] = _refused.GetValueOrDefault(reason) + 1;

    public int Rejected { get; private set; }

    public void OrderPlaced(SimOrder order)
    {
        _orders[order.Id] = order.Defect;
        Day(order.PlacedAt).Orders++;
    }

    /// <summary>
    /// An agent's touch with <paramref name="chosen"/>: its success chance (a reply, or an order within the attribution
    /// window — the same "success" the agent learns from) against every strategy's at the same moment.
    /// </summary>
    public void AgentTouch(SimContact contact, int chosen, string channel, DateTimeOffset at, double[] replyChances, bool ordered, bool replied)
    {
        // Calls are counted when the card is completed, whatever strategy the card carries out (a card can carry an email
        // strategy's key: the owner makes the touch when email cannot, e.g. to a suppressed address).
        if (channel == "email")
        {
            Day(at).Messages++;
        }

        var day = (at - Options.Start).TotalDays;
        var period = day >= StrategyFromDay ? 1 : 0;
        ref var tally = ref _tally[contact.Account.Tenant.Index, period];
        tally ??= new StrategyTally(replyChances.Length);
        tally.Touches++;
        tally.ChosenChance += Success(replyChances[chosen], ordered);
        tally.Successes += replied || ordered ? 1 : 0;
        tally.Chosen[chosen]++;
        for (var s = 0; s < replyChances.Length; s++)
        {
            tally.ChanceSum[s] += Success(replyChances[s], ordered);
        }
    }

    private static double Success(double reply, bool ordered) => ordered ? 1 : reply;

    public async Task<SimulationReport> ReportAsync(NpgsqlDataSource dataSource, SimulationOptions options, CancellationToken cancellationToken)
    {
        var tenants = world.Tenants.ToDictionary(t => t.Id);
        var names = world.Tenants.ToDictionary(t => t.Id, t => t.Name);

        // Caps, checked from the ledger independently of the enforcer (ActionLedger says how the windows are counted).
        var emailPeak = await PeakAsync(dataSource, ActionLedger.PeakDailyMessagesSql, cancellationToken);
        var contactPeak = await PeakAsync(dataSource, ActionLedger.PeakWeeklyTouchesPerContactSql, cancellationToken);
        // The outbox's own record of what was sent, by the same 24-hour window.
        var sentPeak = await EngagementStore.PeakSentPerDayAsync(dataSource, cancellationToken);
        var sendsOutsideWindow = await EngagementStore.SentOutsideBusinessHoursAsync(dataSource, cancellationToken);
        var sentAfterSuppression = await EngagementStore.SentAfterSuppressionAsync(dataSource, cancellationToken);

        // Orders: what became of each, by the defect the world gave it.
        var outcomes = new Dictionary<OrderDefect, OrderTally>();
        foreach (var (orderId, status, hasException, fixes) in await OrderStore.QueueOutcomesAsync(dataSource, cancellationToken))
        {
            if (!_orders.TryGetValue(orderId, out var defect))
            {
                continue;
            }

            var tally = outcomes.TryGetValue(defect, out var t) ? t : outcomes[defect] = new OrderTally();
            tally.Placed++;
            if (status == "validated" && !hasException)
            {
                tally.AutoResolved++;
                tally.Fixed += fixes > 0 ? 1 : 0;
            }
            else if (status == "exception")
            {
                tally.Exceptions++;
            }
            else if (status is "pending" or "processing")
            {
                tally.Unprocessed++;
            }
            else
            {
                tally.Other++;
            }
        }

        var runs = await new RunsStore(dataSource).CountByStatusAsync(cancellationToken);

        var estimates = new List<StrategyEstimate>();
        await using (var command = dataSource.CreateCommand(InsightsStore.StrategyEstimatesSql))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                estimates.Add(new StrategyEstimate(reader.GetGuid(0), reader.GetString(1), reader.GetInt32(2), reader.GetInt32(3),
                    Math.Round(reader.GetDecimal(4), 4)));
            }
        }

        var strategies = new List<TenantStrategies>();
        double chosenSum = 0, bestSum = 0, successes = 0, touches = 0;
        foreach (var tenant in world.Tenants)
        {
            var late = _tally[tenant.Index, 1] ?? new StrategyTally(SimWorld.Strategies.Count);
            var early = _tally[tenant.Index, 0] ?? new StrategyTally(SimWorld.Strategies.Count);
            var rows = SimWorld.Strategies.Select((s, i) =>
            {
                var estimate = estimates.FirstOrDefault(e => e.TenantId == tenant.Id && e.Key == s.Key);
                return new StrategyRow(s.Key, Rate(late.ChanceSum[i], late.Touches), early.Chosen[i] + late.Chosen[i], late.Chosen[i],
                    estimate?.Uses ?? 0, estimate?.Successes ?? 0, estimate?.Score ?? 0);
            }).ToList();
            var best = late.Touches == 0 ? 0 : late.ChanceSum.Max() / late.Touches;
            var chosen = late.Touches == 0 ? 0 : late.ChosenChance / late.Touches;
            strategies.Add(new TenantStrategies(tenant.Name, rows, SimWorld.Strategies[Array.IndexOf(late.ChanceSum, late.ChanceSum.Max())].Key,
                Math.Round(chosen, 4), Math.Round(best, 4), best == 0 ? 0 : Math.Round(chosen / best, 4), late.Touches,
                Rate(late.Successes, late.Touches)));
            chosenSum += late.ChosenChance;
            bestSum += late.ChanceSum.Max();
            successes += late.Successes;
            touches += late.Touches;
        }

        var hourly = _hours;
        var fromHour = ComplianceFromDay * 24;
        var afterWarmup = hourly.Where(h => h.Hour >= fromHour).ToList();
        var worstOverall = afterWarmup.Count == 0 ? 0 : afterWarmup.Max(h => h.OverdueShare);
        var worstTenant = afterWarmup.Count == 0 ? 0 : afterWarmup.Max(h => h.WorstTenantShare);
        var fixable = Sum(outcomes, d => d.Fixable());
        var unfixable = Sum(outcomes, d => d.Unfixable());
        var clean = outcomes.TryGetValue(OrderDefect.None, out var c) ? c : new OrderTally();
        var strategyRatio = bestSum == 0 ? 0 : chosenSum / bestSum;

        var goals = new List<SimulationGoal>
        {
            new("compliance", $"share of clocks overdue at every hour from day {ComplianceFromDay}", "<= 1%",
                $"{worstOverall:P2} all tenants; {worstTenant:P2} worst tenant", worstOverall <= 0.01),
            new("tenant_compliance", $"share of clocks overdue in any one tenant at every hour from day {ComplianceFromDay}", "<= 2%",
                $"{worstTenant:P2} worst tenant", worstTenant <= 0.02),
            new("caps", "no policy cap exceeded (email per 24 h, touches per contact per 7 days; from the ledger)",
                $"<= {options.EmailDailyCap} and <= {options.ContactWeeklyCap}", $"{emailPeak} and {contactPeak}",
                emailPeak <= options.EmailDailyCap && contactPeak <= options.ContactWeeklyCap),
            new("fixable_orders", "fixable orders resolved automatically", ">= 90%",
                $"{Rate(fixable.AutoResolved, fixable.Placed):P1} ({fixable.AutoResolved} of {fixable.Placed})",
                fixable.Placed == 0 || (double)fixable.AutoResolved / fixable.Placed >= 0.9),
            new("unfixable_orders", "unfixable orders released automatically", "0",
                $"{unfixable.AutoResolved} of {unfixable.Placed}", unfixable.AutoResolved == 0),
            new("strategies", $"chosen strategies' true success rate against the best strategy's, from day {StrategyFromDay}", ">= 90%",
                $"{strategyRatio:P1}", strategyRatio >= 0.9),
            new("no_sends_after_opt_out", "emails sent at or after their address was suppressed or their contact opted out (hard bounce, complaint, unsubscribe; from the outbox)",
                "0", $"{sentAfterSuppression}", sentAfterSuppression == 0),
            new("replies_move_clock", "replies whose contact's clock moved to the reply within the hour it arrived", "100%",
                $"{Rate(_repliesMoved, _repliesMeasured):P1} ({_repliesMoved} of {_repliesMeasured})", _repliesMoved == _repliesMeasured),
        };

        return new SimulationReport(
            new SimulationSettings(options.Seed, options.Tenants, options.ContactsPerTenant, options.ContactsPerAccount, options.Days, options.Start,
                options.OwnersPerTenant, options.DueSoonDays, options.EmailDailyCap, options.ContactWeeklyCap, options.ApprovalEveryNthTenant, options.FixableShare,
                options.UnfixableShare, options.MeanDaysBetweenOrders, options.ManualTouchesPerContactDay, options.Concurrency, options.DeadAddressShare,
                options.SoftBounceRate, options.ComplaintRate, options.UnsubscribeRate, options.OutOfOfficeShare, options.LevelAheadDays),
            world.Tenants.Select(t => new TenantSummary(t.Name, t.ZoneName, t.ApprovesMessages, t.Accounts.Count, t.Contacts.Count, t.Orders.Count,
                t.Holidays.Select(h => h.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture)).ToList())).ToList(),
            goals,
            new ComplianceResult(ComplianceFromDay, hourly.Count == 0 ? 0 : hourly[0].OverdueShare, worstOverall, worstTenant,
                afterWarmup.Count(h => h.OverdueShare > 0.01),
                new OverdueCauses(_overdueHours[0], _overdueHours[1], _overdueHours[2], _overdueHours[3]), hourly),
            new CapResult(options.EmailDailyCap, emailPeak, sentPeak, options.ContactWeeklyCap, contactPeak, sendsOutsideWindow),
            _days.OrderBy(d => d.Key).Select(d => new DayPoint(d.Key, d.Value.Messages, d.Value.Calls, d.Value.ManualTouches, d.Value.Replies, d.Value.Orders)).ToList(),
            new OrderResult(clean.Placed, clean.AutoResolved, fixable.Placed, fixable.AutoResolved, fixable.Exceptions, unfixable.Placed, unfixable.AutoResolved,
                unfixable.Exceptions, outcomes.Values.Sum(o => o.Unprocessed),
                outcomes.OrderBy(o => o.Key).Select(o => new DefectRow(o.Key.ToString(), o.Value.Placed, o.Value.AutoResolved, o.Value.Fixed,
                    o.Value.Exceptions, o.Value.Unprocessed + o.Value.Other)).ToList()),
            new StrategyResult(StrategyFromDay, Math.Round(strategyRatio, 4), Rate(successes, touches), (long)touches, strategies),
            new CycleOutcomes(runs, Approved, Rejected, new SortedDictionary<string, long>(_refused, StringComparer.Ordinal)),
            new InboundResult(new SortedDictionary<string, long>(_answers, StringComparer.Ordinal), new SortedDictionary<string, long>(_outcomes, StringComparer.Ordinal),
                sentAfterSuppression, _sentAfterAnswer, _repliesMeasured, _repliesMoved),
            null);
    }

    /// <summary>The runs' mean time per phase (plan, act, react, reflect), per part of Plan, and for policy in Act, in milliseconds.</summary>
    public async Task<IReadOnlyDictionary<string, double>> PhaseMillisecondsAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken) =>
        await new RunsStore(dataSource).MeanPhaseMillisecondsAsync(cancellationToken);

    private static double Rate(double part, double whole) => whole == 0 ? 0 : Math.Round(part / whole, 4);

    private static OrderTally Sum(Dictionary<OrderDefect, OrderTally> outcomes, Func<OrderDefect, bool> which)
    {
        var sum = new OrderTally();
        foreach (var (defect, tally) in outcomes.Where(o => which(o.Key)))
        {
            sum.Placed += tally.Placed;
            sum.AutoResolved += tally.AutoResolved;
            sum.Exceptions += tally.Exceptions;
            sum.Unprocessed += tally.Unprocessed;
        }

        return sum;
    }

    private static async Task<long> PeakAsync(NpgsqlDataSource dataSource, string sql, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(sql);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    private sealed class DayCounts
    {
        public int Messages { get; set; }

        public int Calls { get; set; }

        public int ManualTouches { get; set; }

        public int Replies { get; set; }

        public int Orders { get; set; }
    }

    private sealed class StrategyTally(int strategies)
    {
        public long Touches { get; set; }

        public double ChosenChance { get; set; }

        public long Successes { get; set; }

        public long[] Chosen { get; } = new long[strategies];

        public double[] ChanceSum { get; } = new double[strategies];
    }

    private sealed class OrderTally
    {
        public long Placed { get; set; }

        public long AutoResolved { get; set; }

        public long Fixed { get; set; }

        public long Exceptions { get; set; }

        public long Unprocessed { get; set; }

        public long Other { get; set; }
    }

    private sealed record StrategyEstimate(Guid TenantId, string Key, int Uses, int Successes, decimal Score);
}
