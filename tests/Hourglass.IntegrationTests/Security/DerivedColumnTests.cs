using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// A direct write of a column the product derives — by the service role or the database owner, the writers a host
/// integration uses — is honoured (a clock's frequency becomes its override, and stays through touches and rule changes)
/// or refused with SQLSTATE 428C9 naming the column and what to do instead, and nothing is written. The product's own
/// writes keep working, and its setting never outlives the function that set it.
/// </summary>
public sealed class DerivedColumnTests(DatabaseFixture fixture) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private static readonly DateTimeOffset s_t0 = new(2026, 3, 1, 9, 30, 0, TimeSpan.Zero);

    private TestDb Db => fixture.Db;

    public Task InitializeAsync() => Db.FreezeTimeAsync(s_t0);

    public async Task DisposeAsync() => await Db.ExecuteAsync("select hourglass.thaw_time()");

    // ------------------------------------------------------------------------------------------- engagement_clocks

    [Fact]
    public async Task Clock_TouchFrequencyWrittenDirectly_HonouredAsOverride_ThroughTouchesAndRuleChanges()
    {
        var (tenant, account, contact) = await ContactAsync();

        await AsServiceRoleAsync("update public.engagement_clocks set touch_frequency_days = 7 where tenant_id = $1 and entity_id = $2", tenant, contact);

        Assert.Equal((7, 7, "clock", s_t0.AddDays(7)), await FrequencyAsync(contact));

        // The next touch (the write that used to overwrite it) keeps it, and so does a rule for the account's tier.
        await Db.FreezeTimeAsync(s_t0.AddDays(2));
        await Db.ScalarAsync("select public.update_engagement_clock($1, 'contact', $2, 'call')", tenant, contact);
        await Db.ExecuteAsync("insert into public.engagement_frequency_rules (tenant_id, dimension, value, touch_frequency_days) values ($1, 'tier', 'gold', 30)", tenant);
        await Db.ExecuteAsync("update public.accounts set tier = 'gold' where id = $1", account);

        Assert.Equal((7, 7, "clock", s_t0.AddDays(9)), await FrequencyAsync(contact));
        Assert.Equal((30, (int?)null, "tier", s_t0.AddDays(32)), await FrequencyAsync(account));
    }

    [Fact]
    public async Task Clock_TouchFrequencyAndOverrideDisagree_RefusedNothingWritten()
    {
        var (tenant, _, contact) = await ContactAsync();

        var ex = await Assert.ThrowsAsync<PostgresException>(() => AsServiceRoleAsync(
            "update public.engagement_clocks set touch_frequency_days = 7, frequency_override_days = 9 where tenant_id = $1 and entity_id = $2", tenant, contact));

        Assert.Equal("22023", ex.SqlState);
        Assert.Equal("engagement_clocks: touch_frequency_days (7) and frequency_override_days (9) disagree", ex.MessageText);
        Assert.Equal((21, (int?)null, "tenant", s_t0.AddDays(21)), await FrequencyAsync(contact));
    }

    [Theory]
    [InlineData("next_touch_due = now()", "next_touch_due", "is derived (the last touch, or the clock's creation, plus touch_frequency_days)", "set frequency_override_days")]
    [InlineData("frequency_source = 'segment'", "frequency_source", "says where touch_frequency_days comes from (the clock, a segment, a tier or the tenant)", "set frequency_override_days")]
    [InlineData("compliance_status = 'overdue', days_overdue = 3", "compliance_status", "is computed by refresh_engagement_compliance (from next_touch_due, the account's tier weight and churn risk)", "then call refresh_engagement_compliance")]
    [InlineData("days_overdue = 0, priority_score = 500", "priority_score", "is computed by refresh_engagement_compliance (from next_touch_due, the account's tier weight and churn risk)", "tier_weights")]
    [InlineData("priority_reason = 'VIP'", "priority_reason", "is computed by refresh_engagement_compliance (from next_touch_due, the account's tier weight and churn risk)", "tier_weights")]
    [InlineData("last_touch_at = now()", "last_touch_at", "is the clock's touch record, written by a touch", "record_touches")]
    [InlineData("touch_count = 40", "touch_count", "is the clock's touch record, written by a touch", "update_engagement_clock")]
    [InlineData("recovered_at = now()", "recovered_at", "is the clock's touch record, written by a touch", "record_touches")]
    public async Task Clock_DerivedColumnWrittenDirectly_RefusedNamingItAndWhatToDoInstead(string set, string column, string why, string instead)
    {
        var (tenant, _, contact) = await ContactAsync();
        var before = await RowAsync("engagement_clocks", "entity_id", contact);

        foreach (var write in new Func<Task>[]
                 {
                     () => AsServiceRoleAsync($"update public.engagement_clocks set {set} where tenant_id = $1 and entity_id = $2", tenant, contact),
                     () => Db.ExecuteAsync($"update public.engagement_clocks set {set} where tenant_id = $1 and entity_id = $2", tenant, contact),
                 })
        {
            var ex = await Assert.ThrowsAsync<PostgresException>(write);

            Assert.Equal(DerivedColumns.RefusedSqlState, ex.SqlState);
            Assert.Equal($"engagement_clocks.{column} {why} and cannot be written directly", ex.MessageText);
            Assert.Contains(instead, ex.Hint, StringComparison.Ordinal);
        }

        Assert.Equal(before, await RowAsync("engagement_clocks", "entity_id", contact));
    }

    [Fact]
    public async Task Clock_InsertedWithComplianceOrPriority_Refused_WithOwnFrequency_Honoured()
    {
        var tenant = await Db.CreateTenantAsync();
        var entity = Guid.NewGuid();

        var ex = await Assert.ThrowsAsync<PostgresException>(() => Db.ExecuteAsync("""
            insert into public.engagement_clocks (tenant_id, entity_type, entity_id, next_touch_due, compliance_status, days_overdue)
            values ($1, 'contact', $2, now(), 'overdue', 4)
            """, tenant, entity));
        Assert.Equal(DerivedColumns.RefusedSqlState, ex.SqlState);
        Assert.StartsWith("engagement_clocks.compliance_status is computed by refresh_engagement_compliance", ex.MessageText, StringComparison.Ordinal);
        Assert.Contains("insert the clock without it", ex.Hint, StringComparison.Ordinal);

        await Db.ExecuteAsync("""
            insert into public.engagement_clocks (tenant_id, entity_type, entity_id, next_touch_due, touch_frequency_days)
            values ($1, 'contact', $2, $3, 10)
            """, tenant, entity, s_t0.AddDays(10));
        Assert.Equal((10, 10, "clock", s_t0.AddDays(10)), await FrequencyAsync(entity));
    }

    [Fact]
    public async Task Clock_ProductsOwnWrites_Work_AndTheirSettingEndsWithTheFunction()
    {
        var (tenant, _, contact) = await ContactAsync();
        await using var connection = await fixture.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();

        // A touch, a batch and a refresh write the derived columns under the product's setting…
        await TestDb.ScalarAsync(connection, transaction, "select public.update_engagement_clock($1, 'contact', $2, 'call')", tenant, contact);
        await TestDb.ExecuteAsync(connection, transaction, """
            select * from public.record_touches($1, jsonb_build_array(jsonb_build_object('entity_type', 'contact', 'entity_id', $2::text, 'touch_type', 'email')))
            """, tenant, contact);
        await TestDb.ScalarAsync(connection, transaction, "select public.refresh_engagement_compliance($1)", tenant);
        Assert.Equal(2, await TestDb.ScalarAsync(connection, transaction, "select touch_count from public.engagement_clocks where entity_id = $1", contact));

        // …which is gone when each returns: the caller's next statement in the same transaction is guarded as any other.
        Assert.Equal("", await TestDb.ScalarAsync(connection, transaction, "select coalesce(current_setting('hourglass.derived_write', true), '')"));
        var ex = await Assert.ThrowsAsync<PostgresException>(() => TestDb.ExecuteAsync(connection, transaction,
            "update public.engagement_clocks set next_touch_due = now() - interval '9 days' where entity_id = $1", contact));
        Assert.Equal(DerivedColumns.RefusedSqlState, ex.SqlState);
    }

    [Fact]
    public async Task Clock_TouchCardDeleted_ItsReferenceCleared()
    {
        var (tenant, _, contact) = await ContactAsync();
        var card = (Guid)(await Db.ScalarAsync(
            "insert into public.cards (tenant_id, kind, title, entity_type, entity_id) values ($1, 'touch_task', 'Call', 'contact', $2) returning id", tenant, contact))!;
        await Db.ScalarAsync("select public.complete_touch_card($1, 'call')", card);
        Assert.Equal(card, await Db.ScalarAsync("select last_card_id from public.engagement_clocks where entity_id = $1", contact));

        // The foreign key's ON DELETE SET NULL writes last_card_id: a reference dropped, not a touch forged.
        await Db.ExecuteAsync("delete from public.cards where id = $1", card);

        Assert.Null(await Db.ScalarAsync("select last_card_id from public.engagement_clocks where entity_id = $1", contact));
    }

    // ------------------------------------------------------------------------------------- order_processing_queue

    [Fact]
    public async Task Queue_StatusPendingOrCancelled_Honoured_ClaimReleased()
    {
        var (tenant, order) = await QueuedOrderAsync();
        await Db.ExecuteAsProductAsync("""
            update public.order_processing_queue set status = 'validated', pricing_status = 'passed', credit_status = 'failed', requirements_status = 'passed',
              processed_at = now(), validation_results = '{"credit": "over the limit"}'
            where order_id = $1
            """, order);

        // Validate again: the verdict goes back to pending (the checks with it, when the writer says so).
        await AsServiceRoleAsync("update public.order_processing_queue set status = 'pending', credit_status = 'pending' where tenant_id = $1 and order_id = $2", tenant, order);
        Assert.Equal("pending/pending", await Db.ScalarAsync("select status || '/' || credit_status from public.order_processing_queue where order_id = $1", order));

        // A claim as claim_orders makes it, then a release by hand.
        var claimed = await Db.ScalarAsync("select count(*) from public.claim_orders('proc-1', 10, 60, $1)", tenant);
        Assert.Equal(1L, claimed);
        await AsServiceRoleAsync("update public.order_processing_queue set status = 'cancelled' where tenant_id = $1 and order_id = $2", tenant, order);
        Assert.Equal("cancelled//", await Db.ScalarAsync(
            "select status || '/' || coalesce(claimed_by, '') || '/' || coalesce(claimed_until::text, '') from public.order_processing_queue where order_id = $1", order));
    }

    [Theory]
    [InlineData("status = 'validated'", "status", "= 'validated' is the order processor's verdict")]
    [InlineData("status = 'exception'", "status", "= 'exception' is the order processor's verdict")]
    [InlineData("status = 'processing'", "status", "= 'processing' is set by claim_orders, with a claim")]
    [InlineData("credit_status = 'passed'", "credit_status", "is the order processor's finding")]
    [InlineData("status = 'pending', pricing_status = 'fixed'", "pricing_status", "is the order processor's finding")]
    [InlineData("validation_results = '{\"ok\": true}'", "validation_results", "is the order processor's finding")]
    [InlineData("processed_at = now()", "processed_at", "is the order processor's finding")]
    [InlineData("auto_fix_attempts = 2", "auto_fix_attempts", "is the order processor's finding")]
    [InlineData("claimed_by = 'me', claimed_until = now() + interval '1 hour'", "claimed_by", "is the order processor's finding")]
    public async Task Queue_VerdictOrFindingWrittenDirectly_RefusedNamingIt(string set, string column, string why)
    {
        var (tenant, order) = await QueuedOrderAsync();
        var before = await RowAsync("order_processing_queue", "order_id", order);

        var ex = await Assert.ThrowsAsync<PostgresException>(() =>
            AsServiceRoleAsync($"update public.order_processing_queue set {set} where tenant_id = $1 and order_id = $2", tenant, order));

        Assert.Equal(DerivedColumns.RefusedSqlState, ex.SqlState);
        Assert.Equal($"order_processing_queue.{column} {why} and cannot be written directly", ex.MessageText);
        Assert.Contains("status = 'pending'", ex.Hint, StringComparison.Ordinal);
        Assert.Equal(before, await RowAsync("order_processing_queue", "order_id", order));
    }

    [Fact]
    public async Task Queue_SettingsAndTheProcessorsOwnWrites_Allowed()
    {
        var (tenant, order) = await QueuedOrderAsync();

        await AsServiceRoleAsync("update public.order_processing_queue set priority = 9, max_auto_fix_attempts = 5 where tenant_id = $1 and order_id = $2", tenant, order);
        // The order processor's batches write under its own marker (OrderWriter.GuardSql).
        await using (var connection = await fixture.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await TestDb.ExecuteAsync(connection, transaction, Hourglass.Orders.OrderWriter.GuardSql);
            await TestDb.ExecuteAsync(connection, transaction, "update public.order_processing_queue set status = 'validated', processed_at = now() where order_id = $1", order);
            await transaction.CommitAsync();
        }

        Assert.Equal("validated/9/5", await Db.ScalarAsync(
            "select status || '/' || priority || '/' || max_auto_fix_attempts from public.order_processing_queue where order_id = $1", order));
    }

    // ------------------------------------------------------------------------------------------ success_strategies

    [Theory]
    [InlineData("usage_count = 100", "usage_count")]
    [InlineData("success_count = 1", "success_count")]
    [InlineData("effectiveness_score = 0.99", "effectiveness_score")]
    [InlineData("effectiveness_lower = 0.5", "effectiveness_lower")]
    public async Task Strategy_CounterOrScoreWrittenDirectly_RefusedNamingIt(string set, string column)
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.ExecuteAsync("insert into public.success_strategies (tenant_id, strategy_key, name, usage_count, success_count) values ($1, 'k', 'K', 4, 2)", tenant);

        var ex = await Assert.ThrowsAsync<PostgresException>(() =>
            AsServiceRoleAsync($"update public.success_strategies set {set}, name = 'renamed' where tenant_id = $1", tenant));

        Assert.Equal(DerivedColumns.RefusedSqlState, ex.SqlState);
        Assert.Equal($"success_strategies.{column} is counted from judged outcomes (strategy_attributions) by attribute_strategy_outcomes and cannot be written directly",
            ex.MessageText);
        Assert.Contains("new strategy_key", ex.Hint, StringComparison.Ordinal);
        Assert.Equal("K:4:2", await Db.ScalarAsync("select name || ':' || usage_count || ':' || success_count from public.success_strategies where tenant_id = $1", tenant));

        // What a person owns stays theirs to change.
        await AsServiceRoleAsync("update public.success_strategies set name = 'renamed', is_active = false where tenant_id = $1", tenant);
    }

    [Fact]
    public async Task Strategy_InsertedWithHistory_CountsHonoured_AScoreOtherThanTheirsRefused()
    {
        var tenant = await Db.CreateTenantAsync();

        var ex = await Assert.ThrowsAsync<PostgresException>(() => Db.ExecuteAsync(
            "insert into public.success_strategies (tenant_id, strategy_key, name, usage_count, success_count, effectiveness_score) values ($1, 'k', 'K', 10, 6, 0.9)", tenant));
        Assert.Equal(DerivedColumns.RefusedSqlState, ex.SqlState);
        Assert.StartsWith("success_strategies.effectiveness_score is computed from usage_count and success_count", ex.MessageText, StringComparison.Ordinal);

        // The counts' own score ((6 + 1) / (10 + 2), to 4 places) is accepted.
        await Db.ExecuteAsync(
            "insert into public.success_strategies (tenant_id, strategy_key, name, usage_count, success_count, effectiveness_score) values ($1, 'k', 'K', 10, 6, 0.5833)", tenant);
        Assert.Equal("10:6", await Db.ScalarAsync("select usage_count || ':' || success_count from public.success_strategies where tenant_id = $1", tenant));
    }

    // ---------------------------------------------------------------------------------------------- client_patterns

    [Theory]
    [InlineData("confidence = 0.99", "confidence")]
    [InlineData("is_active = false", "is_active")]
    [InlineData("evidence_count = 50", "evidence_count")]
    [InlineData("pattern_data = '{\"risk\": 0}'", "pattern_data")]
    public async Task Pattern_DetectedColumnWrittenDirectly_RefusedNamingIt(string set, string column)
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.ExecuteAsync("""
            insert into public.client_patterns (tenant_id, entity_type, entity_id, pattern_type, pattern_data, confidence, evidence_count)
            values ($1, 'account', gen_random_uuid(), 'churn_risk', '{"risk": 0.7}', 0.7, 5)
            """, tenant);

        var ex = await Assert.ThrowsAsync<PostgresException>(() =>
            AsServiceRoleAsync($"update public.client_patterns set {set} where tenant_id = $1", tenant));

        Assert.Equal(DerivedColumns.RefusedSqlState, ex.SqlState);
        Assert.Equal($"client_patterns.{column} is the insights detectors' finding from warehouse_events and cannot be written directly", ex.MessageText);
        Assert.Contains("ingest_events", ex.Hint, StringComparison.Ordinal);
        Assert.Equal("0.7:5:true", await Db.ScalarAsync(
            "select confidence || ':' || evidence_count || ':' || is_active from public.client_patterns where tenant_id = $1", tenant));
    }

    // ------------------------------------------------------------------------------------------------------ helpers

    private async Task<(Guid Tenant, Guid Account, Guid Contact)> ContactAsync()
    {
        var tenant = await Db.CreateTenantAsync();
        var account = await Db.CreateAccountAsync(tenant);
        return (tenant, account, await Db.CreateContactAsync(tenant, account));
    }

    private async Task<(Guid Tenant, Guid Order)> QueuedOrderAsync()
    {
        var tenant = await Db.CreateTenantAsync();
        var account = await Db.CreateAccountAsync(tenant);
        var order = (Guid)(await Db.ScalarAsync(
            "insert into public.orders (tenant_id, account_id, po_number, placed_at) values ($1, $2, 'PO-1', now()) returning id", tenant, account))!;
        Assert.Equal("pending", await Db.ScalarAsync("select status from public.order_processing_queue where order_id = $1", order));
        return (tenant, order);
    }

    private Task AsServiceRoleAsync(string sql, params object?[] parameters) =>
        Db.AsRoleAsync("service_role", (connection, transaction) => TestDb.ExecuteAsync(connection, transaction, sql, parameters));

    private async Task<(int Days, int? Override, string Source, DateTimeOffset Due)> FrequencyAsync(Guid entity)
    {
        await using var command = fixture.DataSource.CreateCommand(
            "select touch_frequency_days, frequency_override_days, frequency_source, next_touch_due from public.engagement_clocks where entity_id = $1");
        command.Parameters.Add(new() { Value = entity });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetInt32(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3));
    }

    // The row as JSON: "nothing written" is the same text before and after.
    private async Task<string> RowAsync(string table, string keyColumn, Guid key) =>
        (string)(await Db.ScalarAsync($"select to_jsonb(t)::text from public.{table} t where {keyColumn} = $1", key))!;
}
