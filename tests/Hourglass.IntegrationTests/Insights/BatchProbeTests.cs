using System.Text.Json.Nodes;
using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Insights;

/// <summary>
/// The batch functions look up a batch's entities and idempotency keys one index probe per line, whatever the planner
/// would prefer (a planner that thinks joins cheaper hashed a whole table for a small batch).
/// </summary>
public sealed class BatchProbeTests : DatabaseTest
{
    private static readonly DateTimeOffset s_now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private const int BigTableEvents = 150_000;
    private const int BatchLines = 50;

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_now);
    }

    [Fact]
    public async Task IngestEvents_ResentBatchOverABigTable_ProbesEachLine_WhenThePlannerWouldRatherHash()
    {
        var (tenant, contact) = await BigTenantAsync("ingest");
        var batch = new JsonArray([.. Enumerable.Range(0, BatchLines).Select(i => (JsonNode)new JsonObject
        {
            ["event_type"] = "reply", ["entity_type"] = "contact", ["entity_id"] = contact.ToString(), ["idempotency_key"] = $"big-{i * 997}",
        })]);

        var (buffers, outcomes) = await MeasureAsync("select outcome from public.ingest_events($1, $2::jsonb, 'skip')", tenant, batch.ToJsonString());

        // Every line was already recorded under its key by the big load: all duplicates, nothing written.
        Assert.Equal(Enumerable.Repeat("duplicate", BatchLines), outcomes);
        await AssertProbedAsync(buffers);
    }

    [Fact]
    public async Task RecordTouches_ResentBatchOverABigTable_ProbesEachLine_WhenThePlannerWouldRatherHash()
    {
        var (tenant, contact) = await BigTenantAsync("touches");
        var batch = new JsonArray([.. Enumerable.Range(0, BatchLines).Select(i => (JsonNode)new JsonObject
        {
            ["entity_type"] = "contact", ["entity_id"] = contact.ToString(), ["touch_type"] = "email", ["idempotency_key"] = $"big-{i * 997}",
        })]);
        // The big load's events under these keys, made touches of the same contact, so that the batch is a resend.
        await Db.ExecuteAsync("""
            update public.warehouse_events set event_type = 'touch', payload = '{"touch_type": "email", "touch_by": "api"}'
            where tenant_id = $1 and idempotency_key = any ($2)
            """, tenant, Enumerable.Range(0, BatchLines).Select(i => $"big-{i * 997}").ToArray());

        var (buffers, outcomes) = await MeasureAsync("select outcome from public.record_touches($1, $2::jsonb, 'skip')", tenant, batch.ToJsonString());

        Assert.Equal(Enumerable.Repeat("duplicate", BatchLines), outcomes);
        await AssertProbedAsync(buffers);
    }

    // A tenant with a contact and a big event log: events with idempotency keys big-0 … big-N (replies of the
    // contact), loaded set-based and analyzed.
    private async Task<(Guid Tenant, Guid Contact)> BigTenantAsync(string name)
    {
        var (tenant, account) = await TenantAsync(name);
        var contact = await Db.CreateContactAsync(tenant, account, $"{name} contact");
        await Db.ExecuteAsync("""
            insert into public.warehouse_events (tenant_id, event_type, entity_type, entity_id, payload, idempotency_key, source, occurred_at)
            select $1, 'reply', 'contact', $2, '{}', 'big-' || g, 'api', $3::timestamptz - g * interval '1 minute'
            from generate_series(0, $4 - 1) g
            """, tenant, contact, s_now, BigTableEvents);
        await Db.ExecuteAsync("analyze public.warehouse_events");
        return (tenant, contact);
    }

    private async Task<(Guid Tenant, Guid Account)> TenantAsync(string name)
    {
        var tenant = await Db.CreateTenantAsync(name);
        return (tenant, await Db.CreateAccountAsync(tenant, $"{name} account"));
    }

    // The call's outcomes, and then the shared buffers the same call touches (EXPLAIN ANALYZE's count includes the
    // statements run inside the function; the first call, which also planned them, is not counted), with the planner
    // told to avoid nested loops wherever it has another way — as a planner misled by stale statistics does.
    private async Task<(long Buffers, List<string> Outcomes)> MeasureAsync(string sql, Guid tenant, string batch)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await TestDb.ExecuteAsync(connection, transaction, "set local enable_nestloop = off");
        var outcomes = new List<string>();
        await using (var command = new NpgsqlCommand(sql, connection, transaction))
        {
            command.Parameters.Add(new() { Value = tenant });
            command.Parameters.Add(new() { Value = batch });
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                outcomes.Add(reader.GetString(0));
            }
        }

        var plan = JsonNode.Parse((string)(await TestDb.ScalarAsync(connection, transaction, $"explain (analyze, buffers, format json) {sql}", tenant, batch))!)!;
        var top = plan[0]!["Plan"]!;
        await transaction.RollbackAsync();
        return (top["Shared Hit Blocks"]!.GetValue<long>() + top["Shared Read Blocks"]!.GetValue<long>(), outcomes);
    }

    // A probe per line costs a handful of buffers (an index descent and a heap page, for the contact and for the key);
    // hashing the events table instead reads every one of its pages.
    private async Task AssertProbedAsync(long buffers)
    {
        var tablePages = (long)(await Db.ScalarAsync("select pg_catalog.pg_relation_size('public.warehouse_events') / 8192"))!;
        Assert.True(tablePages > 40L * BatchLines, $"the table ({tablePages} pages) is too small for the test to tell");
        Assert.True(buffers < 20L * BatchLines, $"{buffers} buffers for {BatchLines} lines (the events table has {tablePages} pages)");
    }
}
