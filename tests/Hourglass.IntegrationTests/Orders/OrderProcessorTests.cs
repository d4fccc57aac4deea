using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Orders;
using Hourglass.Policies;
using Npgsql;

namespace Hourglass.IntegrationTests.Orders;

/// <summary>The order processor end to end on a real database: queue, validators, bounded auto-fix, exceptions, credit.</summary>
public sealed class OrderProcessorTests : DatabaseTest
{
    private OrderWorld _w = null!;

    protected override async Task SeedAsync()
    {
        _w = await new OrderWorld(Db, Database).CreateAsync();
    }

    [Fact]
    public async Task Queue_PlacedEnqueued_DraftNot_ChangeRequeues_CancelCancels()
    {
        var draft = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], status: "draft");
        var placed = await _w.PlaceAsync((_w.Widget, 1m, 10m, 0m));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.order_processing_queue where order_id = $1", draft));
        Assert.Equal("pending", (await _w.QueueAsync(placed)).Status);

        await _w.ProcessAsync();
        Assert.Equal("validated", (await _w.QueueAsync(placed)).Status);
        await Db.ExecuteAsync("update public.order_lines set quantity = 2 where order_id = $1", placed);
        Assert.Equal("pending", (await _w.QueueAsync(placed)).Status);
        await Db.ExecuteAsync("update public.orders set status = 'cancelled' where id = $1", placed);
        Assert.Equal("cancelled", (await _w.QueueAsync(placed)).Status);
    }

    [Fact]
    public async Task ProcessorsSetting_SkipsTheQueueForTheProcessorsRole_NotForAMemberWhoSetsIt()
    {
        var order = await _w.PlaceAsync((_w.Widget, 1m, 10m, 0m));
        await _w.ProcessAsync();
        Assert.Equal("validated", (await _w.QueueAsync(order)).Status);

        // A member changing a line under the processor's own setting: the order goes back to the queue all the same.
        var member = await Db.AddMemberAsync(_w.Tenant);
        Assert.Equal(1, await Db.AsUserAsync(member, async (c, t) =>
        {
            await TestDb.ScalarAsync(c, t, "select set_config('hourglass.order_processor', 'on', true)");
            return await TestDb.ExecuteAsync(c, t, "update public.order_lines set quantity = 2 where order_id = $1", order);
        }));
        Assert.Equal("pending", (await _w.QueueAsync(order)).Status);

        // The processor's own role under it: no re-queue (its fixes would otherwise queue every fixed order again).
        await _w.ProcessAsync();
        Assert.Equal("validated", (await _w.QueueAsync(order)).Status);
        await using (var connection = await DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await TestDb.ScalarAsync(connection, transaction, "select set_config('hourglass.order_processor', 'on', true)");
            await TestDb.ExecuteAsync(connection, transaction, "update public.order_lines set quantity = 3 where order_id = $1", order);
            await transaction.CommitAsync();
        }

        Assert.Equal("validated", (await _w.QueueAsync(order)).Status);
    }

    [Fact]
    public async Task CleanOrder_ValidatedAllPassed_HostStatusAndEvent()
    {
        var order = await _w.PlaceAsync((_w.Widget, 3m, 10m, 0m), (_w.Gadget, 1m, 100m, 0m));

        var pass = await _w.ProcessAsync();

        Assert.Equal((1, 1, 0), (pass.Claimed, pass.Validated, pass.Exceptions));
        Assert.Equal(("validated", "passed", "passed", "passed", 0), await _w.QueueAsync(order));
        Assert.Equal("validated", await Db.ScalarAsync("select status from public.orders where id = $1", order));
        Assert.Contains("order_validated", await _w.EventsAsync(order));
    }

    [Fact]
    public async Task PriceRules_PriorityThenSpecificityThenQuantityBreak_ValidityDates()
    {
        await Db.ExecuteAsync("""
            insert into public.price_rules (tenant_id, name, product_id, tier, discount_pct, min_quantity, priority) values ($1, 'growth 10%', $2, 'growth', 10, 0, 0);
            """, _w.Tenant, _w.Widget);
        await Db.ExecuteAsync("insert into public.price_rules (tenant_id, name, product_id, tier, unit_price, min_quantity) values ($1, 'growth 100+', $2, 'growth', 8, 100)", _w.Tenant, _w.Widget);
        await Db.ExecuteAsync("insert into public.price_rules (tenant_id, name, product_id, account_id, unit_price, valid_to) values ($1, 'expired deal', $2, $3, 5, '2026-01-31')", _w.Tenant, _w.Widget, _w.Account);
        await Db.ExecuteAsync("insert into public.price_rules (tenant_id, name, unit_price, priority, currency) values ($1, 'all products in EUR', 1, 99, 'EUR')", _w.Tenant);

        var small = await _w.PlaceAsync((_w.Widget, 10m, 9m, 0m));        // growth 10%: 9.00
        var large = await _w.PlaceAsync((_w.Widget, 100m, 8m, 0m));       // quantity break: 8.00
        var listed = await _w.PlaceAsync((_w.Widget, 10m, 10m, 0m));      // list price, but the tier rule says 9.00: a 10% fix, at the ceiling
        await _w.ProcessAsync();

        Assert.Equal("validated", (await _w.QueueAsync(small)).Status);
        Assert.Equal("validated", (await _w.QueueAsync(large)).Status);
        Assert.Equal(("validated", "fixed"), ((await _w.QueueAsync(listed)).Status, (await _w.QueueAsync(listed)).Pricing));
        var fixes = await _w.FixesAsync(listed);
        Assert.Equal(["apply_rule_price", "recompute_totals"], fixes.Select(f => f.Type));
        Assert.Equal((10m, 9m), (fixes[0].Before["unit_price"]!.GetValue<decimal>(), fixes[0].After["unit_price"]!.GetValue<decimal>()));
        Assert.Equal("price rule 'growth 10%'", (string?)fixes[0].After["source"]);
        Assert.Equal((100m, 90m), (fixes[1].Before["total"]!.GetValue<decimal>(), fixes[1].After["total"]!.GetValue<decimal>()));
        Assert.Equal(90m, await Db.ScalarAsync("select total from public.orders where id = $1", listed));
        Assert.Equal(9m, await Db.ScalarAsync("select unit_price from public.order_lines where order_id = $1", listed));
        // The fix did not queue the order again: the processor's own writes do not trigger re-validation.
        Assert.Equal("validated", (await _w.QueueAsync(listed)).Status);
    }

    [Fact]
    public async Task FixBeyondCeiling_NeverApplied_ExceptionWithReviewCardAndViolation()
    {
        var order = await _w.PlaceAsync((_w.Gadget, 1m, 85m, 0m));   // list 100: a 17.6% change, ceiling 10%

        await _w.ProcessAsync();

        Assert.Equal(("exception", "failed"), ((await _w.QueueAsync(order)).Status, (await _w.QueueAsync(order)).Pricing));
        var exception = Assert.Single(await _w.ExceptionsAsync(order));
        Assert.Equal(("price_mismatch", "open"), (exception.Type, exception.Status));
        Assert.Contains("the fix was not applied: beyond policy (auto-fix-ceiling: the fix changes a price by 17.65%; the ceiling is 10%)", exception.Message, StringComparison.Ordinal);
        Assert.Equal(85m, await Db.ScalarAsync("select unit_price from public.order_lines where order_id = $1", order));
        Assert.Empty(await _w.FixesAsync(order));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.cards where kind = 'exception_review' and status = 'open' and payload ->> 'exception_id' = $1", exception.Id.ToString()));
        Assert.Equal("deny:auto-fix-ceiling:default", await Db.ScalarAsync(
            "select decision || ':' || policy_key || ':' || policy_version from public.agent_policy_violations where tenant_id = $1 and action_type = 'order_auto_fix'", _w.Tenant));
        Assert.Equal("on_hold", await Db.ScalarAsync("select status from public.orders where id = $1", order));
    }

    [Fact]
    public async Task BelowFloor_Exception_EvenAtTheRulePrice()
    {
        await Db.ExecuteAsync("update public.tenants set settings = '{\"min_margin_pct\": 20}' where id = $1", _w.Tenant);
        await Db.ExecuteAsync("insert into public.price_rules (tenant_id, name, product_id, unit_price) values ($1, 'clearance', $2, 90)", _w.Tenant, _w.Gadget);
        var order = await _w.PlaceAsync((_w.Gadget, 1m, 90m, 0m));   // cost 80 + 20% = floor 96

        await _w.ProcessAsync();

        var exception = Assert.Single(await _w.ExceptionsAsync(order));
        Assert.Equal("below_floor", exception.Type);
        Assert.Contains("price rule 'clearance' 90.00 is below the floor 96.00", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MaxAutoFixAttemptsZero_FixableBecomesException()
    {
        var order = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], total: 12m);
        await Db.ExecuteAsync("update public.order_processing_queue set max_auto_fix_attempts = 0 where order_id = $1", order);

        await _w.ProcessAsync();

        var exception = Assert.Single(await _w.ExceptionsAsync(order));
        Assert.Equal("totals_mismatch", exception.Type);
        Assert.Contains("not fixed within 0 auto-fix attempts", exception.Message, StringComparison.Ordinal);
        Assert.Equal(12m, await Db.ScalarAsync("select total from public.orders where id = $1", order));
    }

    [Fact]
    public async Task Requirements_EachBuiltInAndATenantRule_NamedExceptions()
    {
        var retired = await _w.ProductAsync("OLD-1", 5m, 1m, active: false);
        await Db.ExecuteAsync("update public.accounts set requires_po = true where id = $1", _w.Account);
        await Db.ExecuteAsync("""
            insert into public.order_requirement_rules (tenant_id, rule_key, description, condition)
            values ($1, 'domestic-only', 'We ship within the US', '{"field": "ship_to.country", "op": "in", "value": ["US"]}')
            """, _w.Tenant);

        var noLines = await _w.PlaceAsync([]);
        var zero = await _w.PlaceAsync((_w.Widget, 0m, 10m, 0m));
        var unknown = await _w.PlaceAsync((null, 1m, 10m, 0m));
        var inactive = await _w.PlaceAsync((retired, 1m, 5m, 0m));
        var noPo = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], po: null);
        var soon = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], shipDate: DateOnly.FromDateTime(OrderWorld.Now.UtcDateTime).AddDays(1));
        var euros = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], currency: "EUR");
        var abroad = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], shipTo: """{"line1": "1 Rue", "city": "Paris", "postal_code": "75001", "country": "FR"}""");
        var noAddress = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], shipTo: """{"line1": "1 Main St"}""");

        await _w.ProcessAsync();

        async Task<string> TypeOf(Guid order) => string.Join(",", (await _w.ExceptionsAsync(order)).Select(e => e.Type));
        Assert.Equal("no_lines", await TypeOf(noLines));
        Assert.Equal("non_positive_quantity", await TypeOf(zero));
        Assert.Equal("unknown_product", await TypeOf(unknown));
        Assert.Equal("inactive_product", await TypeOf(inactive));
        Assert.Equal("missing_po", await TypeOf(noPo));
        Assert.Equal("lead_time", await TypeOf(soon));
        Assert.Equal("unsupported_currency", await TypeOf(euros));
        Assert.Equal("domestic-only", await TypeOf(abroad));
        Assert.Contains("lacks city, postal_code, country and the account has no complete default address",
            (await _w.ExceptionsAsync(noAddress)).Single(e => e.Type == "incomplete_ship_to").Message, StringComparison.Ordinal);
        // Without a country, the tenant's rule fails too: every failing requirement is its own exception.
        Assert.Equal("domestic-only,incomplete_ship_to", string.Join(",", (await _w.ExceptionsAsync(noAddress)).Select(e => e.Type).Order(StringComparer.Ordinal)));
        foreach (var order in new[] { noLines, zero, unknown, inactive, noPo, soon, euros, abroad, noAddress })
        {
            Assert.Equal(("exception", "failed"), ((await _w.QueueAsync(order)).Status, (await _w.QueueAsync(order)).Requirements));
        }
    }

    [Fact]
    public async Task IncompleteShipTo_FilledFromAccountDefault_RecordedBeforeAndAfter()
    {
        await Db.ExecuteAsync("update public.accounts set default_ship_to = $2::jsonb where id = $1", _w.Account, OrderWorld.ShipTo);
        var order = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], shipTo: null);

        await _w.ProcessAsync();

        Assert.Equal(("validated", "fixed"), ((await _w.QueueAsync(order)).Status, (await _w.QueueAsync(order)).Requirements));
        var fix = Assert.Single(await _w.FixesAsync(order));
        Assert.Equal("fill_ship_to", fix.Type);
        Assert.Equal("Springfield", (string?)fix.After["ship_to"]!["city"]);
        Assert.Equal("Springfield", await Db.ScalarAsync("select ship_to ->> 'city' from public.orders where id = $1", order));
    }

    [Fact]
    public async Task Credit_LimitByPrecedence_ExposureCountsOpenOrdersAndBalance()
    {
        // Account limit null → tier limit 500; another open order of 300 and an unpaid balance of 150.
        await Db.ExecuteAsync("update public.tenants set settings = '{\"credit_limits_by_tier\": {\"growth\": 500}, \"default_credit_limit\": 100000}' where id = $1", _w.Tenant);
        await Db.ExecuteAsync("update public.accounts set open_balance = 150 where id = $1", _w.Account);
        var earlier = await _w.PlaceAsync((_w.Gadget, 3m, 100m, 0m));
        var within = await _w.PlaceAsync((_w.Widget, 5m, 10m, 0m));   // 300 + 150 + 50 = 500: at the limit, within it
        await _w.ProcessAsync();
        var over = await _w.PlaceAsync((_w.Widget, 1m, 10m, 0m));     // 300 + 50 + 150 + 10 = 510: over
        await _w.ProcessAsync();

        Assert.Equal("validated", (await _w.QueueAsync(within)).Status);
        Assert.Equal(("needs_approval", "failed"), ((await _w.QueueAsync(over)).Status, (await _w.QueueAsync(over)).Credit));
        var card = (Guid)(await Db.ScalarAsync("select id from public.cards where kind = 'approval' and status = 'open' and entity_id = $1", over))!;
        Assert.Contains("exposure 510.00 against tier growth's limit 500.00: 10.00 over", (string?)await Db.ScalarAsync("select body from public.cards where id = $1", card), StringComparison.Ordinal);

        // Approved: re-validated with the approval, released.
        await Db.ScalarAsync("select public.decide_approval($1, true, 'good customer', 'cfo')", card);
        await _w.ProcessAsync();
        Assert.Equal(("validated", "passed"), ((await _w.QueueAsync(over)).Status, (await _w.QueueAsync(over)).Credit));
        Assert.Contains("approved by service:cfo", (string?)await Db.ScalarAsync("select validation_results ->> 'credit' from public.order_processing_queue where order_id = $1", over), StringComparison.Ordinal);
        Assert.Equal("validated", (await _w.QueueAsync(earlier)).Status);
    }

    [Fact]
    public async Task Credit_AccountLimitZeroMeansNoLimit_ExceptionModeAndOverride()
    {
        await Db.ExecuteAsync("update public.tenants set settings = '{\"credit_over_limit\": \"exception\", \"default_credit_limit\": 50}' where id = $1", _w.Tenant);
        var other = (Guid)(await Db.ScalarAsync("insert into public.accounts (tenant_id, name, credit_limit) values ($1, 'Unlimited', 0) returning id", _w.Tenant))!;
        var unlimited = await _w.PlaceAsync([(_w.Gadget, 5m, 100m, 0m)], account: other);
        var limited = await _w.PlaceAsync((_w.Gadget, 1m, 100m, 0m));
        await _w.ProcessAsync();

        Assert.Equal("validated", (await _w.QueueAsync(unlimited)).Status);
        Assert.Equal("credit_limit", Assert.Single(await _w.ExceptionsAsync(limited)).Type);

        // A plain member may not override; a controller may, and the order is validated again with it.
        var member = await Db.AddMemberAsync(_w.Tenant);
        var controller = await Db.AddMemberAsync(_w.Tenant, role: "controller");
        var refused = await Assert.ThrowsAsync<PostgresException>(() => Db.AsUserAsync(member, (c, t) =>
            TestDb.ScalarAsync(c, t, "select public.override_order_credit($1, 'please')", limited)));
        Assert.Equal("42501", refused.SqlState);
        await Db.AsUserAsync(controller, (c, t) => TestDb.ScalarAsync(c, t, "select public.override_order_credit($1, 'prepaid by wire')", limited));
        await _w.ProcessAsync();

        Assert.Equal(("validated", "passed"), ((await _w.QueueAsync(limited)).Status, (await _w.QueueAsync(limited)).Credit));
        Assert.Equal($"user:{controller}:prepaid by wire", await Db.ScalarAsync(
            "select credit_override_by || ':' || credit_override_reason from public.order_processing_queue where order_id = $1", limited));
        // Validated again, the credit exception no longer applies and closed itself.
        Assert.Equal("resolved", Assert.Single(await _w.ExceptionsAsync(limited)).Status);
    }

    [Fact]
    public async Task CreditOverride_OrderGrowsPastTheOverriddenAmount_OverrideLapses_ShrinkingKeepsIt()
    {
        await Db.ExecuteAsync("update public.tenants set settings = '{\"credit_over_limit\": \"exception\", \"default_credit_limit\": 50}' where id = $1", _w.Tenant);
        var kept = await _w.PlaceAsync((_w.Gadget, 1m, 100m, 0m));
        var grown = await _w.PlaceAsync((_w.Gadget, 1m, 100m, 0m));
        await _w.ProcessAsync();
        foreach (var order in new[] { kept, grown })
        {
            await Db.ExecuteAsync("select public.override_order_credit($1, 'prepaid by wire', 'cfo')", order);
        }

        await _w.ProcessAsync();
        Assert.Equal("passed", (await _w.QueueAsync(grown)).Credit);
        Assert.Equal(100m, await Db.ScalarAsync("select credit_override_total from public.order_processing_queue where order_id = $1", grown));

        // The host changes the orders: one shrinks, one grows far past the amount the override was given for.
        await Db.ExecuteAsync("update public.orders set total = 90, subtotal = 90 where id = $1", kept);
        await Db.ExecuteAsync("update public.order_lines set quantity = 500 where order_id = $1", grown);
        await Db.ExecuteAsync("update public.orders set total = 50000, subtotal = 50000 where id = $1", grown);

        Assert.Equal("service:cfo", await Db.ScalarAsync("select credit_override_by from public.order_processing_queue where order_id = $1", kept));
        Assert.Null(await Db.ScalarAsync("select credit_override_by from public.order_processing_queue where order_id = $1", grown));
        Assert.Equal("""{"total": 50000, "overridden_by": "service:cfo", "overridden_total": 100}""", await Db.ScalarAsync(
            "select payload::text from public.warehouse_events where entity_id = $1 and event_type = 'order_credit_override_lapsed'", grown));

        // Judged again without the override: over the limit, an exception once more; the shrunk order still passes.
        await _w.ProcessAsync();
        Assert.Equal("failed", (await _w.QueueAsync(grown)).Credit);
        Assert.Contains(await _w.ExceptionsAsync(grown), e => e is { Type: "credit_limit", Status: "open" });
        Assert.Equal("passed", (await _w.QueueAsync(kept)).Credit);
    }

    [Fact]
    public async Task LargeOrder_PolicyRequiresApproval_CreditHoldToo()
    {
        var large = await _w.PlaceAsync((_w.Gadget, 600m, 100m, 0m));   // 60,000 > the default policy's 50,000
        await _w.ProcessAsync();

        Assert.Equal("needs_approval", (await _w.QueueAsync(large)).Status);
        Assert.Contains("large-orders: order value 60000 is above 50000", (string?)await Db.ScalarAsync(
            "select body from public.cards where kind = 'approval' and entity_id = $1", large), StringComparison.Ordinal);

        await Db.ExecuteAsync("update public.accounts set credit_hold = true where id = $1", _w.Account);
        var held = await _w.PlaceAsync((_w.Widget, 1m, 10m, 0m));
        await _w.ProcessAsync();
        Assert.Equal("needs_approval", (await _w.QueueAsync(held)).Status);
    }

    [Fact]
    public async Task ExceptionWorkflow_ReviewThenResolve_Revalidates_DismissCancels_EventsAndCards()
    {
        var order = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], po: null);
        var other = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], po: null);
        await Db.ExecuteAsync("update public.accounts set requires_po = true where id = $1", _w.Account);
        await Db.ExecuteAsync("update public.order_processing_queue set status = 'pending' where tenant_id = $1", _w.Tenant);
        await _w.ProcessAsync();
        var exception = Assert.Single(await _w.ExceptionsAsync(order)).Id;
        var otherException = Assert.Single(await _w.ExceptionsAsync(other)).Id;

        Assert.Equal("in_review", await Db.ScalarAsync("select public.review_order_exception($1, 'sam')", exception));
        var twice = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select public.review_order_exception($1, 'sam')", exception));
        Assert.Equal("55000", twice.SqlState);
        // The person gets the PO number, and resolves: the order is validated again.
        await Db.ExecuteAsync("update public.orders set po_number = 'PO-77' where id = $1", order);
        await Db.ExecuteAsProductAsync("update public.order_processing_queue set status = 'exception' where order_id = $1", order);
        Assert.Equal("resolved", await Db.ScalarAsync("select public.resolve_order_exception($1, 'resolved', 'PO received by phone', 'sam')", exception));
        Assert.Equal("pending", (await _w.QueueAsync(order)).Status);
        await _w.ProcessAsync();
        Assert.Equal("validated", (await _w.QueueAsync(order)).Status);
        Assert.Equal("resolved:service:sam:PO received by phone", await Db.ScalarAsync(
            "select resolution_status || ':' || resolved_by || ':' || resolution_notes from public.order_processing_exceptions where id = $1", exception));
        Assert.Equal("done", await Db.ScalarAsync("select status from public.cards where payload ->> 'exception_id' = $1", exception.ToString()));

        Assert.Equal("dismissed", await Db.ScalarAsync("select public.resolve_order_exception($1, 'dismissed', 'customer cancelled by phone', 'sam')", otherException));
        Assert.Equal("cancelled", (await _w.QueueAsync(other)).Status);
        var noNotes = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select public.resolve_order_exception($1, 'resolved', ' ')", otherException));
        Assert.Equal("22023", noNotes.SqlState);

        var events = await _w.EventsAsync(order);
        foreach (var expected in new[] { "order_exception", "order_exception_in_review", "order_exception_resolved", "order_validated" })
        {
            Assert.Contains(expected, events);
        }
    }

    [Fact]
    public async Task Dismissed_OrderChangedAfterwards_StaysWithdrawn_UntilQueuedAgainByHand()
    {
        var order = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], po: null);
        await Db.ExecuteAsync("update public.accounts set requires_po = true where id = $1", _w.Account);
        await Db.ExecuteAsync("update public.order_processing_queue set status = 'pending' where order_id = $1", order);
        await _w.ProcessAsync();
        var exception = Assert.Single(await _w.ExceptionsAsync(order)).Id;
        await Db.ScalarAsync("select public.resolve_order_exception($1, 'dismissed', 'handled by hand', 'sam')", exception);

        // The person handling it edits the order: the agent leaves it to them.
        await Db.ExecuteAsync("update public.orders set po_number = 'PO-9' where id = $1", order);
        await Db.ExecuteAsync("insert into public.order_lines (tenant_id, order_id, product_id, quantity, unit_price) values ($1, $2, $3, 2, 10)",
            _w.Tenant, order, _w.Widget);
        await _w.ProcessAsync();
        Assert.Equal("cancelled", (await _w.QueueAsync(order)).Status);

        // Queued again by hand (a status the queue honours), it is validated as any order.
        await Db.ExecuteAsync("update public.order_processing_queue set status = 'pending' where order_id = $1", order);
        await _w.ProcessAsync();
        Assert.Equal("validated", (await _w.QueueAsync(order)).Status);
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(128, true)]
    public async Task Processor_PreparesItsStatementsOnlyWhereTheConnectionStringAllowsIt(int maxAutoPrepare, bool prepared)
    {
        // One server connection, so what the processor prepared is what the check sees. Max Auto Prepare=0 is how a
        // transaction-mode pooler's connection string reads (Supavisor on 6543 has no prepared statements).
        var builder = new NpgsqlConnectionStringBuilder(ConnectionString) { MaxPoolSize = 1, MaxAutoPrepare = maxAutoPrepare, NoResetOnClose = true };
        await using var source = NpgsqlDataSource.Create(builder.ConnectionString);
        var order = await _w.PlaceAsync((_w.Widget, 3m, 10m, 0m));

        var pass = await new OrderProcessor(source, new OrderProcessorOptions { WorkerId = "prepared" }).DrainAsync(_w.Tenant, null, 100, default);

        Assert.Equal(1, pass.Validated);
        Assert.Equal("validated", (await _w.QueueAsync(order)).Status);
        await using var connection = await source.OpenConnectionAsync();
        await using var count = new NpgsqlCommand("select count(*) from pg_catalog.pg_prepared_statements", connection);
        Assert.Equal(prepared, (long)(await count.ExecuteScalarAsync())! > 0);
    }

    [Fact]
    public async Task ConcurrentProcessors_EachOrderProcessedOnce()
    {
        var orders = new List<Guid>();
        for (var i = 0; i < 120; i++)
        {
            // Every third one has wrong totals: one fix each.
            orders.Add(await _w.PlaceAsync([(_w.Widget, 1m + i % 5, 10m, 0m)], total: i % 3 == 0 ? 1m : null));
        }

        var passes = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Task.Run(() =>
            new OrderProcessor(DataSource, new OrderProcessorOptions { WorkerId = $"p{i}", BatchSize = 7 }).DrainAsync(_w.Tenant, null, 10_000, default))));

        Assert.Equal(120, passes.Sum(p => p.Claimed));
        Assert.Equal(0, passes.Sum(p => p.LostClaims));
        Assert.Equal(40L, await Db.ScalarAsync("select count(*) from public.order_processing_fixes where tenant_id = $1", _w.Tenant));
        Assert.Equal(120L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'order_validated'", _w.Tenant));
        Assert.Equal(120L, await Db.ScalarAsync("select count(*) from public.order_processing_queue where tenant_id = $1 and status = 'validated'", _w.Tenant));
        Assert.True(passes.Count(p => p.Claimed > 0) >= 2, "the work was shared");
    }

    [Fact]
    public async Task LapsedClaim_TakenOver_StaleWriterFencedOut()
    {
        var order = await _w.PlaceAsync([(_w.Widget, 1m, 10m, 0m)], total: 99m);
        // A processor claims and never writes (it died): its claim lapses after the visibility timeout.
        await Db.ScalarAsync("select count(*) from public.claim_orders('dead-processor', 10, 30, $1)", _w.Tenant);
        Assert.Equal(0, (await _w.ProcessAsync()).Claimed);

        await Db.FreezeTimeAsync(OrderWorld.Now.AddSeconds(31));
        var pass = await _w.ProcessAsync("successor");

        Assert.Equal(1, pass.Claimed);
        Assert.Equal("validated", (await _w.QueueAsync(order)).Status);
        // The dead processor's late write would carry its old token: it matches nothing.
        Assert.Equal(0, await Db.ExecuteAsync(
            "update public.order_processing_queue set status = 'exception' where order_id = $1 and status = 'processing' and claimed_by = 'dead-processor'", order));
    }

    [Fact]
    public async Task OrderChangedWhileProcessing_WriteFencedOut_ValidatedAgain()
    {
        var order = await _w.PlaceAsync((_w.Widget, 1m, 10m, 0m));
        await Db.ScalarAsync("select count(*) from public.claim_orders('slow-processor', 10, 300, $1)", _w.Tenant);
        // Someone edits the order mid-processing: its entry goes back to pending, so the slow processor's claim is void.
        await Db.ExecuteAsync("update public.order_lines set quantity = 3 where order_id = $1", order);

        var pass = await _w.ProcessAsync();

        Assert.Equal(1, pass.Claimed);
        Assert.Equal("validated", (await _w.QueueAsync(order)).Status);
        // Validated as it is now: three of them, the totals recomputed.
        Assert.Equal(30m, await Db.ScalarAsync("select total from public.orders where id = $1", order));
    }

    [Fact]
    public async Task TenantPolicyWithoutOrderKinds_DefaultDenyHoldsOrders()
    {
        await PolicyStore.SaveAsync(DataSource, _w.Tenant, """{"schema": "hourglass.policy/v1", "actions": ["touch_task"]}""", "test", null);
        var order = await _w.PlaceAsync((_w.Widget, 1m, 10m, 0m));

        await _w.ProcessAsync();

        var exception = Assert.Single(await _w.ExceptionsAsync(order));
        Assert.Equal("policy", exception.Type);
        Assert.Contains("'order_release' is not one of the actions this policy allows", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SameProcessor_PolicyAndSettingsChangedBetweenBatches_NextBatchUsesThem()
    {
        // One processor instance keeps parsed policies and settings between batches; a change must still count.
        var processor = new OrderProcessor(DataSource, new OrderProcessorOptions { WorkerId = "long-lived" });
        var first = await _w.PlaceAsync((_w.Gadget, 1m, 95m, 0m));   // list 100, cost 80: a 5% fix, within the ceiling
        await processor.DrainAsync(_w.Tenant, null, 100, default);
        Assert.Equal(("validated", "fixed"), ((await _w.QueueAsync(first)).Status, (await _w.QueueAsync(first)).Pricing));

        // A floor above the list price: the same order now cannot be priced.
        await Db.ExecuteAsync("update public.tenants set settings = '{\"min_margin_pct\": 30}' where id = $1", _w.Tenant);
        var second = await _w.PlaceAsync((_w.Gadget, 1m, 100m, 0m));
        await processor.DrainAsync(_w.Tenant, null, 100, default);
        Assert.Equal("below_floor", Assert.Single(await _w.ExceptionsAsync(second)).Type);

        // A saved policy that never considered orders holds the next one.
        await Db.ExecuteAsync("update public.tenants set settings = '{}' where id = $1", _w.Tenant);
        await PolicyStore.SaveAsync(DataSource, _w.Tenant, """{"schema": "hourglass.policy/v1", "actions": ["touch_task"]}""", "test", null);
        var third = await _w.PlaceAsync((_w.Widget, 1m, 10m, 0m));
        await processor.DrainAsync(_w.Tenant, null, 100, default);
        Assert.Equal("policy", Assert.Single(await _w.ExceptionsAsync(third)).Type);
        Assert.Contains("\"policy_version\": \"v1\"", (string?)await Db.ScalarAsync(
            "select validation_results::text from public.order_processing_queue where order_id = $1", third), StringComparison.Ordinal);

        // And a newer version after that one, too.
        await PolicyStore.SaveAsync(DataSource, _w.Tenant, """{"schema": "hourglass.policy/v1", "actions": ["order_auto_fix", "order_release"]}""", "test", null);
        var fourth = await _w.PlaceAsync((_w.Widget, 1m, 10m, 0m));
        await processor.DrainAsync(_w.Tenant, null, 100, default);
        Assert.Equal("validated", (await _w.QueueAsync(fourth)).Status);
    }
}
