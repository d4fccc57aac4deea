using System.Diagnostics;
using System.Text.Json.Nodes;
using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.Engagement;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Outbox;
using Hourglass.Insights;
using Hourglass.Orders;
using Hourglass.Policies;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Hourglass.Simulation;

/// <summary>How far a simulation has come, for a progress bar.</summary>
internal sealed record SimulationProgress(string Stage, int Hour, int Hours);

/// <summary>
/// Drives the seeded world through the real cycle engine, the real outbox dispatcher and the real database, one
/// simulated hour at a time, with one clock for both (the application's <see cref="TimeProvider"/> and
/// <c>hourglass.freeze_time</c>). Each hour: the share of clocks overdue is measured (before anyone acts); what
/// happened in the world during the hour arrives (replies, people's own touches, orders); people act on their
/// cards (touch cards, approvals) if they are at work; every due tenant's cycle runs (a <see cref="CycleWorker"/>
/// pass); the outbox is dispatched through a transport that delivers to the simulated contacts.
/// The database must be empty: the clock it moves is the whole database's.
/// </summary>
internal sealed class Simulator
{
    private static readonly TimeSpan s_attributionWindow = TimeSpan.FromDays(7);
    private readonly SimulationOptions _options;
    private readonly NpgsqlDataSource _dataSource;
    private readonly ILoggerFactory _loggers;
    private readonly SimulatedClock _clock;
    private readonly SimWorld _world;
    private readonly PriorityQueue<PendingEvent, (DateTimeOffset, int, int, int)> _events = new();
    private readonly List<(SimContact Contact, DateTimeOffset At)> _repliesThisHour = [];
    private readonly SimulationRecorder _recorder;

    public Simulator(SimulationOptions options, NpgsqlDataSource dataSource, ILoggerFactory? loggers = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _dataSource = dataSource;
        _loggers = loggers ?? NullLoggerFactory.Instance;
        _clock = new SimulatedClock(options.Start.AddMinutes(-30));
        _world = SimWorld.Generate(options);
        _recorder = new SimulationRecorder(_world);
    }

    /// <summary>
    /// Called each hour just before people act on their cards (the hour, the moment): lets a test change the world's
    /// database under the people's feet (e.g. a card expiring before its decision). Null in a real run.
    /// </summary>
    internal Func<int, DateTimeOffset, CancellationToken, Task>? BeforePeopleAct { get; init; }

    public async Task<SimulationReport> RunAsync(IProgress<SimulationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var stopwatch = Stopwatch.StartNew();
        progress?.Report(new SimulationProgress("seeding", 0, _options.Hours));
        await FreezeAsync(_clock.Now, cancellationToken);
        await SimulationSeeder.SeedAsync(_dataSource, _world, cancellationToken);
        var seeded = stopwatch.Elapsed;

        var worker = CycleComposition.CreateWorker(_dataSource, _clock, new CycleWorkerOptions
        {
            WorkerId = "simulator",
            MaxConcurrentCycles = _options.Concurrency,
            // The only worker: every due tenant in one pass, so the cycles run back to back.
            MaxClaimedPerPass = _options.Tenants,
            LeaseMinutes = 5,
        }, loggers: _loggers);
        var dispatcher = new OutboxDispatcher(_dataSource, [new SimulatedTransport(this)], _clock,
            new OutboxDispatcherOptions { WorkerId = "simulator:outbox", BatchSize = 500, MaxParallelSends = _options.Concurrency }, _ => null,
            new Random(unchecked((int)_options.Seed)), _loggers.CreateLogger<OutboxDispatcher>());

        var stages = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        async Task TimedAsync(string stage, Func<Task> work)
        {
            var started = Stopwatch.GetTimestamp();
            await work();
            stages[stage] = stages.GetValueOrDefault(stage) + Stopwatch.GetElapsedTime(started);
        }

        var orderIndex = new int[_world.Tenants.Count];
        var touchIndex = new int[_world.Tenants.Count];
        for (var hour = 0; hour < _options.Hours; hour++)
        {
            var now = _options.Start.AddHours(hour);
            _clock.Now = now;
            await FreezeAsync(now, cancellationToken);
            var at = hour;
            await TimedAsync("measure", () => _recorder.MeasureHourAsync(_dataSource, at, now, cancellationToken));
            await TimedAsync("world", () => ArriveAsync(now, orderIndex, touchIndex, cancellationToken));
            if (BeforePeopleAct is { } before)
            {
                await before(at, now, cancellationToken);
            }

            await TimedAsync("people", () => PeopleActAsync(at, now, cancellationToken));
            await TimedAsync("cycles", async () =>
            {
                // Pass until every due tenant has had its cycle (one pass claims them all; a second finds none due).
                while (await worker.RunOnceAsync(cancellationToken) > 0)
                {
                }
            });
            await TimedAsync("dispatch", async () =>
            {
                while (await dispatcher.DispatchOnceAsync(cancellationToken) > 0)
                {
                }
            });
            await TimedAsync("measure", () => MeasureRepliesAsync(cancellationToken));

            // What autovacuum does in real time, at the simulated pace: a simulated day passes in seconds, so the planner's
            // statistics would otherwise describe the empty tables of the start for most of the run (seen: a reply lookup
            // planned as a sequential scan of warehouse_events, 80 ms a cycle).
            // Each time the tables have about doubled while they are young, then every ten simulated days (the planner scales
            // the row counts it last saw by the tables' current size; what it needs fresh is their shape); the tables the
            // cycle's plans depend on.
            if (hour is 1 or 3 or 7 or 15 or 31 or 63 or 127 || hour % 240 == 239)
            {
                await TimedAsync("analyze", async () =>
                {
                    await using var analyze = _dataSource.CreateCommand($"""
                        analyze public.warehouse_events, {ActionLedger.Table}, public.cards, public.message_outbox, public.engagement_clocks,
                          public.orders, public.order_lines, public.order_processing_queue, public.strategy_attributions, public.client_patterns,
                          {RunsStore.Table}
                        """);
                    await analyze.ExecuteNonQueryAsync(cancellationToken);
                });
            }

            if (hour % 24 == 23)
            {
                progress?.Report(new SimulationProgress("running", hour + 1, _options.Hours));
            }
        }

        progress?.Report(new SimulationProgress("reporting", _options.Hours, _options.Hours));
        _clock.Now = _options.End;
        await FreezeAsync(_options.End, cancellationToken);
        var reading = Stopwatch.GetTimestamp();
        var report = await _recorder.ReportAsync(_dataSource, _options, cancellationToken);
        stages["report"] = Stopwatch.GetElapsedTime(reading);
        var phases = await _recorder.PhaseMillisecondsAsync(_dataSource, cancellationToken);
        await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken))
        {
            await TenantControl.ThawTimeAsync(connection, null, cancellationToken);
        }

        var cycles = report.Cycles.Runs.Values.Sum();
        return report with
        {
            Timing = new SimulationTiming(Math.Round(stopwatch.Elapsed.TotalSeconds, 1), Math.Round(seeded.TotalSeconds, 1),
                stages.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(p => p.Key, p => Math.Round(p.Value.TotalSeconds, 1)),
                stages.TryGetValue("cycles", out var inCycles) && inCycles > TimeSpan.Zero ? Math.Round(cycles / inCycles.TotalSeconds, 1) : 0, phases),
        };
    }

    private async Task FreezeAsync(DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await TenantControl.FreezeTimeAsync(connection, null, at, cancellationToken);
    }

    // ----------------------------------------------------------------------------------- the world's hour

    /// <summary>What happened during the hour before <paramref name="now"/>: replies, people's own touches, new orders.</summary>
    private async Task ArriveAsync(DateTimeOffset now, int[] orderIndex, int[] touchIndex, CancellationToken cancellationToken)
    {
        // What the world answered by email (bounces, complaints, unsubscribes, replies, auto-replies) arrives as any source's
        // events do, through the inbound recorder: each tenant's in the order they happened, the tenants side by side.
        // Answers to calls have no message to answer: they arrive as reply events of the event store, as a CRM's would.
        var replies = new Dictionary<SimTenant, JsonArray>();
        var inbound = new Dictionary<SimTenant, List<PendingEvent>>();
        while (_events.TryPeek(out var answer, out var when) && when.Item1 <= now)
        {
            _events.Dequeue();
            var tenant = answer.Contact.Account.Tenant;
            if (answer.Type == DeliveryEventType.Reply && answer.ReturnOn is null)
            {
                _recorder.Reply(answer.At);
            }

            if (answer.MessageId is not null)
            {
                (inbound.TryGetValue(tenant, out var list) ? list : inbound[tenant] = []).Add(answer);
                continue;
            }

            if (!replies.TryGetValue(tenant, out var lines))
            {
                replies[tenant] = lines = [];
            }

            lines.Add(new JsonObject
            {
                ["event_type"] = "reply",
                ["entity_type"] = "contact",
                ["entity_id"] = answer.Contact.Id.ToString(),
                ["occurred_at"] = answer.At.ToString("O"),
                ["idempotency_key"] = $"sim-reply-{tenant.Index}-{answer.Contact.Index}-{answer.At.ToUnixTimeSeconds()}",
                ["source"] = "email-sync",
                ["payload"] = new JsonObject { ["channel"] = answer.Channel },
            });
        }

        var outcomes = new Dictionary<SimTenant, List<InboundOutcome>>();
        await Parallel.ForEachAsync(inbound, new ParallelOptions { MaxDegreeOfParallelism = _options.Concurrency, CancellationToken = cancellationToken },
            async (pair, token) =>
            {
                // The hour's events of one tenant in one transaction (the recorder's overload for batches).
                var results = new List<InboundOutcome>(pair.Value.Count);
                await using var connection = await _dataSource.OpenConnectionAsync(token);
                await using var transaction = await connection.BeginTransactionAsync(token);
                foreach (var answer in pair.Value)
                {
                    results.Add(await InboundRecorder.RecordAsync(connection, transaction, pair.Key.Id, ToDeliveryEvent(answer), token));
                }

                await transaction.CommitAsync(token);
                lock (outcomes)
                {
                    outcomes[pair.Key] = results;
                }
            });
        foreach (var (tenant, answers) in inbound.OrderBy(p => p.Key.Index))
        {
            for (var i = 0; i < answers.Count; i++)
            {
                var answer = answers[i];
                _recorder.Answered(answer.Type, answer.ReturnOn is not null, outcomes[tenant][i]);
                if (answer.Type is DeliveryEventType.HardBounce or DeliveryEventType.Complaint or DeliveryEventType.Unsubscribe)
                {
                    answer.Contact.Unreachable ??= answer.At;
                }
                else if (answer.Type == DeliveryEventType.Reply && answer.ReturnOn is null)
                {
                    _repliesThisHour.Add((answer.Contact, answer.At));
                }
            }
        }

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        foreach (var (tenant, lines) in replies.OrderBy(p => p.Key.Index))
        {
            await InsightsStore.IngestEventsOrRefuseAsync(connection, transaction, tenant.Id, lines.ToJsonString(), cancellationToken);
        }

        foreach (var tenant in _world.Tenants)
        {
            var touches = new JsonArray();
            while (touchIndex[tenant.Index] < tenant.ManualTouches.Count && tenant.ManualTouches[touchIndex[tenant.Index]].At <= now)
            {
                var touch = tenant.ManualTouches[touchIndex[tenant.Index]++];
                touches.Add(new JsonObject
                {
                    ["entity_type"] = "contact",
                    ["entity_id"] = touch.Contact.Id.ToString(),
                    ["touch_type"] = touch.TouchType,
                    ["touch_by"] = touch.Contact.Account.Owner.Name,
                    ["occurred_at"] = touch.At.ToString("O"),
                    ["idempotency_key"] = $"sim-manual-{tenant.Index}-{touch.Contact.Index}-{touch.At.ToUnixTimeSeconds()}",
                    ["source"] = "crm",
                });
                _recorder.ManualTouch(touch.At);
            }

            if (touches.Count > 0)
            {
                await EngagementStore.RecordTouchesOrRefuseAsync(connection, transaction, tenant.Id, touches.ToJsonString(), cancellationToken);
            }

            var orders = new List<SimOrder>();
            while (orderIndex[tenant.Index] < tenant.Orders.Count && tenant.Orders[orderIndex[tenant.Index]].PlacedAt <= now)
            {
                orders.Add(tenant.Orders[orderIndex[tenant.Index]++]);
            }

            if (orders.Count > 0)
            {
                await PlaceOrdersAsync(connection, transaction, tenant, orders, cancellationToken);
            }
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Orders arrive as a host writes them: a draft with its lines, then placed (the trigger queues it).</summary>
    private async Task PlaceOrdersAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, SimTenant tenant, List<SimOrder> orders,
        CancellationToken cancellationToken)
    {
        var lineOrders = new List<Guid>();
        var lineProducts = new List<Guid>();
        var lineQuantities = new List<decimal>();
        var linePrices = new List<decimal>();
        var subtotals = new List<decimal>();
        var totals = new List<decimal>();
        var shipTos = new List<string?>();
        var pos = new List<string?>();
        foreach (var order in orders)
        {
            var subtotal = 0m;
            for (var i = 0; i < order.Lines.Count; i++)
            {
                var (product, quantity) = order.Lines[i];
                var price = SimCatalog.RulePrice(order.Account, product);
                var qty = (decimal)quantity;
                if (i == 0)
                {
                    switch (order.Defect)
                    {
                        case OrderDefect.PriceSlightlyOff:
                            price = Math.Round(price * 0.95m, 2);
                            break;
                        case OrderDefect.PriceFarBelow:
                            price = Math.Round(price * 0.7m, 2);
                            break;
                        case OrderDefect.ZeroQuantity:
                            qty = 0;
                            break;
                    }
                }

                lineOrders.Add(order.Id);
                lineProducts.Add(SimulationSeeder.ProductId(_world, tenant, product));
                lineQuantities.Add(qty);
                linePrices.Add(price);
                subtotal += Math.Round(qty * price, 2, MidpointRounding.AwayFromZero);
            }

            subtotals.Add(subtotal);
            totals.Add(order.Defect == OrderDefect.WrongTotals ? subtotal + 7.50m : subtotal);
            shipTos.Add(order.Defect == OrderDefect.MissingShipTo ? null
                : $$"""{"line1": "{{order.Account.Name}} dock 1", "city": "Springfield", "postal_code": "62701", "country": "US"}""");
            pos.Add(order.Defect == OrderDefect.MissingPo ? null : $"PO-{order.Id.ToString()[..8]}");
            _recorder.OrderPlaced(order);
        }

        var ids = orders.Select(o => o.Id).ToArray();
        await OrderStore.InsertDraftOrdersAsync(connection, transaction, tenant.Id, ids, orders.Select(o => o.Account.Id).ToArray(),
            orders.Select(o => o.Contact?.Id).ToArray(), pos.ToArray(), shipTos.ToArray(), orders.Select(o => o.PlacedAt).ToArray(), cancellationToken);
        await OrderStore.InsertOrderLinesAsync(connection, transaction, tenant.Id, lineOrders.ToArray(), lineProducts.ToArray(), lineQuantities.ToArray(),
            linePrices.ToArray(), cancellationToken);
        await OrderStore.PlaceOrdersAsync(connection, transaction, tenant.Id, ids, subtotals.ToArray(), totals.ToArray(), cancellationToken);
    }

    /// <summary>
    /// People at work act on their open cards: an owner makes the touch a touch card asks for
    /// (<see cref="SimTenant.CardChance"/>), a manager decides approvals (half of them each working hour; 1 in 20 rejected).
    /// </summary>
    private async Task PeopleActAsync(int hour, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var tenantsById = _world.Tenants.ToDictionary(t => t.Id);
        var cards = new List<(Guid Id, SimTenant Tenant, string Kind, string? EntityType, Guid? EntityId, string? Strategy)>();
        foreach (var (id, tenantId, kind, entityType, entityId, strategy) in await EngagementStore.OpenCardsAsync(_dataSource, cancellationToken))
        {
            cards.Add((id, tenantsById[tenantId], kind, entityType, entityId, strategy));
        }

        // The same order whatever order the database returned them in: the draws depend on the entity, not the row.
        cards.Sort((x, y) => (x.Tenant.Index, x.Kind, x.EntityId ?? Guid.Empty).CompareTo((y.Tenant.Index, y.Kind, y.EntityId ?? Guid.Empty)));
        // Who does what is drawn card by card, in that order; the database hears it as one batch per tenant, the tenants'
        // batches side by side (each batch is all or nothing; the cards of different tenants touch different rows). What
        // follows from a decision (the call's answer, the counts) waits for the database's answer: a card can have expired
        // or been closed since it was read, and people meet that refusal as real ones do.
        var r = _world.Random;
        var work = new Dictionary<SimTenant, List<CardWork>>();
        List<CardWork> WorkOf(SimTenant tenant) => work.TryGetValue(tenant, out var w) ? w : work[tenant] = [];
        foreach (var card in cards)
        {
            var key = SimRandom.Key(card.EntityId ?? card.Id);
            if (card.Kind == "touch_task")
            {
                var owner = card.EntityId is { } id
                    ? _world.Contacts.TryGetValue(id, out var c) ? c.Account.Owner : _world.Accounts.TryGetValue(id, out var a) ? a.Owner : null
                    : null;
                if (owner is null || !r.Chance(card.Tenant.CardChance(owner, now), "card-done", key, hour))
                {
                    continue;
                }

                var contact = card.EntityId is { } contactId && _world.Contacts.TryGetValue(contactId, out var k) ? k : null;
                var strategy = SimWorld.StrategyIndex(card.Strategy) is var s and >= 0 ? s : 2;
                WorkOf(card.Tenant).Add(new CardWork(() => EngagementStore.CompleteTouchCardCommand(card.Id, "call", "simulated owner"), () =>
                {
                    _recorder.CardCompleted(now);
                    if (contact is not null)
                    {
                        Touched(contact, strategy, now, "call");
                    }
                }));
            }
            else if (card.Tenant.WorkingHour(now) && r.Chance(0.5, "approval-decided", key, hour))
            {
                var approve = !r.Chance(0.05, "approval-rejected", key, hour);
                WorkOf(card.Tenant).Add(new CardWork(() => ApprovalCardStore.DecideApprovalAsCommand(card.Id, approve, approve ? "looks good" : "not now", "sim-manager"),
                    () => _recorder.ApprovalDecided(approve)));
            }
        }

        var refusals = new Dictionary<SimTenant, List<(CardWork Work, string Reason)>>();
        await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = _options.Concurrency, CancellationToken = cancellationToken },
            async (pair, token) =>
            {
                var refused = await ActOnCardsAsync(pair.Value, token);
                lock (refusals)
                {
                    refusals[pair.Key] = refused;
                }
            });

        // What followed from each decision, in the order the decisions were drawn (the same whatever order the batches finished in).
        foreach (var (tenant, items) in work.OrderBy(p => p.Key.Index))
        {
            var refused = refusals[tenant];
            foreach (var item in items)
            {
                var refusal = refused.Find(x => ReferenceEquals(x.Work, item));
                if (refusal.Work is null)
                {
                    item.Done();
                }
                else
                {
                    _recorder.Refused(refusal.Reason);
                }
            }
        }
    }

    /// <summary>
    /// One tenant's card work as one batch; when the database refuses a decision as a person would be refused (the card is
    /// no longer open: <see cref="SimRefusals.Reason"/>), the batch rolled back whole and each call is made on its own, the
    /// refused ones returned with their reason. Any other error is a fault and ends the run.
    /// </summary>
    private async Task<List<(CardWork Work, string Reason)>> ActOnCardsAsync(List<CardWork> items, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using (var batch = new NpgsqlBatch(connection))
        {
            foreach (var item in items)
            {
                batch.BatchCommands.Add(item.Command());
            }

            try
            {
                await batch.ExecuteNonQueryAsync(cancellationToken);
                return [];
            }
            catch (PostgresException error) when (SimRefusals.Reason(error) is not null)
            {
                // Without a transaction of its own, a batch is one implicit transaction: nothing of it was written.
            }
        }

        var refused = new List<(CardWork, string)>();
        foreach (var item in items)
        {
            await using var single = new NpgsqlBatch(connection);
            single.BatchCommands.Add(item.Command());
            try
            {
                await single.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (PostgresException error) when (SimRefusals.Reason(error) is { } reason)
            {
                refused.Add((item, reason));
            }
        }

        return refused;
    }

    /// <summary>
    /// The agent's message left for the contact (the outbox dispatcher handed it to the simulated transport): what the
    /// world answers. A dead address bounces hard; a delivery may bounce soft (not a retry: the retry gets through); a contact out
    /// of office sends an auto-reply with the return date; otherwise the message arrives, and its reader may complain,
    /// unsubscribe, or answer (<see cref="Touched"/>). Every draw is addressed by the contact and the moment of the send.
    /// </summary>
    internal void Delivered(SimContact contact, int strategy, Guid messageId, bool retry)
    {
        lock (_events)
        {
            // Draws addressed by the contact and the moment, not the message: outbox ids are the database's random uuids.
            var at = _clock.Now;
            var r = _world.Random;
            var key = SimRandom.Key(contact.Id) ^ at.ToUnixTimeSeconds();
            if (contact.Unreachable <= at)
            {
                _recorder.SentAfterAnswer();
            }

            if (contact.DeadAddress)
            {
                _recorder.MessageDelivered(at);
                Answer(contact, at.AddMinutes(1 + r.Next(15, "hard-bounce-delay", key)), DeliveryEventType.HardBounce, messageId);
                return;
            }

            if (!retry && r.Chance(_options.SoftBounceRate, "soft-bounce", key))
            {
                // Sent, but it reaches no one; the recorder queues a retry (a message of its own), which gets through.
                _recorder.MessageDelivered(at);
                Answer(contact, at.AddMinutes(1 + r.Next(30, "soft-bounce-delay", key)), DeliveryEventType.SoftBounce, messageId);
                return;
            }

            if (contact.Away(at))
            {
                var back = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(contact.AwayUntil!.Value, contact.Zone(contact.Account.Tenant)).DateTime);
                Answer(contact, at.AddMinutes(1 + r.Next(5, "auto-reply-delay", key)), DeliveryEventType.Reply, messageId, back);
                TouchedLocked(contact, strategy, at, "email", messageId, canReply: false);
                return;
            }

            var complains = r.Chance(_options.ComplaintRate, "complaint", key);
            var unsubscribes = !complains && r.Chance(_options.UnsubscribeRate, "unsubscribe", key);
            if (complains || unsubscribes)
            {
                var delay = TimeSpan.FromMinutes(Math.Min(5 + r.Exponential(180, "opt-out-delay", key), 3 * 24 * 60));
                Answer(contact, at + delay, complains ? DeliveryEventType.Complaint : DeliveryEventType.Unsubscribe, messageId);
            }

            TouchedLocked(contact, strategy, at, "email", messageId, canReply: !(complains || unsubscribes));
        }
    }

    /// <summary>The agent's touch reached the contact (a call made on a touch card): will they answer, and when?</summary>
    internal void Touched(SimContact contact, int strategy, DateTimeOffset at, string channel)
    {
        lock (_events)
        {
            TouchedLocked(contact, strategy, at, channel, null, canReply: true);
        }
    }

    private void TouchedLocked(SimContact contact, int strategy, DateTimeOffset at, string channel, Guid? messageId, bool canReply)
    {
        var r = _world.Random;
        var key = SimRandom.Key(contact.Id);
        var chances = new double[SimWorld.Strategies.Count];
        for (var s = 0; s < chances.Length; s++)
        {
            chances[s] = _world.ReplyChance(contact, s, at);
        }

        var ordered = SimWorld.OrdersWithin(contact.Account, at, s_attributionWindow);
        var replied = r.Uniform("reply", key, at.ToUnixTimeSeconds(), strategy) < chances[strategy] && canReply;
        _recorder.AgentTouch(contact, strategy, channel, at, chances, ordered, replied);
        if (replied)
        {
            // Most answers come within a day or two; a few take most of a week.
            var delay = TimeSpan.FromHours(Math.Min(1 + r.Exponential(20, "reply-delay", key, at.ToUnixTimeSeconds()), 6 * 24));
            Answer(contact, at + delay, DeliveryEventType.Reply, messageId, channel: channel);
        }
    }

    private void Answer(SimContact contact, DateTimeOffset when, string type, Guid? messageId, DateOnly? returnOn = null, string channel = "email")
    {
        when = new DateTimeOffset(when.UtcTicks - when.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
        _events.Enqueue(new PendingEvent(contact, when, type, messageId, channel, returnOn),
            (when, contact.Account.Tenant.Index, contact.Index, DeliveryEventType.All.ToList().IndexOf(type)));
    }

    /// <summary>The world's answer as a source reports it: Hourglass's outbox id names the message, as a provider's metadata would.</summary>
    private static DeliveryEvent ToDeliveryEvent(PendingEvent answer)
    {
        var messageId = answer.MessageId!.Value;
        var id = $"sim-{answer.Type}-{messageId:N}-{answer.At.ToUnixTimeSeconds()}";
        var reference = new MessageReference(OutboxId: messageId);
        var email = answer.Contact.Email;
        return answer.Type switch
        {
            DeliveryEventType.HardBounce => new(InboundSourceKind.Simulator, id, answer.Type, answer.At, reference, email, "550 5.1.1 the email account does not exist"),
            DeliveryEventType.SoftBounce => new(InboundSourceKind.Simulator, id, answer.Type, answer.At, reference, email, "452 4.2.2 mailbox full"),
            DeliveryEventType.Reply when answer.ReturnOn is { } back => new(InboundSourceKind.Simulator, id, answer.Type, answer.At, reference, email,
                Reply: new InboundReply(email, "Automatic reply: out of office",
                    string.Create(System.Globalization.CultureInfo.InvariantCulture,
                        $"Thank you for your message. I am out of the office until {back:dddd, d MMMM yyyy} with no access to email, and will reply when I am back."),
                    ReplyLabel.OutOfOffice, 1m, "an automatic reply of the simulated world", InboundSourceKind.Simulator, back)),
            DeliveryEventType.Reply => new(InboundSourceKind.Simulator, id, answer.Type, answer.At, reference, email,
                Reply: new InboundReply(email, "Re: your message", "Thanks for getting in touch. Good timing: let's talk next week, Tuesday works for me.",
                    ReplyLabel.Interested, 1m, "a reply of the simulated world", InboundSourceKind.Simulator)),
            _ => new(InboundSourceKind.Simulator, id, answer.Type, answer.At, reference, email),
        };
    }

    /// <summary>
    /// At the end of the hour: did every reply that arrived in it move its contact's clock (the clock's last touch at or
    /// after the reply's time)?
    /// </summary>
    private async Task MeasureRepliesAsync(CancellationToken cancellationToken)
    {
        if (_repliesThisHour.Count == 0)
        {
            return;
        }

        var contacts = _repliesThisHour.Select(r => r.Contact).Distinct().ToList();
        var lastTouches = await EngagementStore.LastTouchesAsync(_dataSource, "contact", contacts.Select(c => c.Account.Tenant.Id).ToArray(),
            contacts.Select(c => c.Id).ToArray(), cancellationToken);
        foreach (var (contact, at) in _repliesThisHour)
        {
            _recorder.ReplyClock(lastTouches.TryGetValue(contact.Id, out var last) && last >= at);
        }

        _repliesThisHour.Clear();
    }

    internal SimContact? ContactFor(JsonObject payload) =>
        payload["target_type"]?.GetValue<string>() == "contact" && Guid.TryParse((string?)payload["target_id"], out var id)
            && _world.Contacts.TryGetValue(id, out var contact) ? contact : null;

    internal DateTimeOffset Now => _clock.Now;

    /// <summary>
    /// Something the world will answer, and when: a delivery event about an email (<c>MessageId</c>), or an answer to a call
    /// (no message). A reply with <c>ReturnOn</c> is an out-of-office auto-reply.
    /// </summary>
    private sealed record PendingEvent(SimContact Contact, DateTimeOffset At, string Type, Guid? MessageId, string Channel, DateOnly? ReturnOn);

    /// <summary>A person's call on a card, and what follows from it once the database has accepted it.</summary>
    private sealed record CardWork(Func<NpgsqlBatchCommand> Command, Action Done);

    /// <summary>One clock for the application, moved by the simulator (the database's is moved with it).</summary>
    private sealed class SimulatedClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;

        public override DateTimeOffset GetUtcNow() => Now;

        public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
    }
}

/// <summary>The outbox's email channel in the simulation: a delivered message reaches the simulated contact.</summary>
internal sealed class SimulatedTransport(Simulator simulator) : IMessageTransport
{
    public string Channel => MessageChannel.Email;

    public Task<DeliveryResult> SendAsync(OutboxMessage message, string? secret, CancellationToken cancellationToken)
    {
        if (simulator.ContactFor(message.Payload) is not { } contact)
        {
            return Task.FromResult(DeliveryResult.PermanentFailure("the simulated world has no such contact", 550));
        }

        var strategy = SimWorld.StrategyIndex((string?)message.Payload["strategy_key"]);
        simulator.Delivered(contact, strategy >= 0 ? strategy : 0, message.Id, retry: message.Payload["retry_of"] is not null);
        return Task.FromResult(DeliveryResult.Success(250, $"sim-{message.Id:N}"));
    }
}
