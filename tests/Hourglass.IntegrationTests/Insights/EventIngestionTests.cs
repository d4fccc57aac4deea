using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Hourglass.Imports;
using Hourglass.Insights;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Insights;

/// <summary>
/// Events from outside systems through both paths — ingest_events under a member's RLS (ImportPipeline.RecordAsync with EventImportKind) and
/// the trusted bulk path (EventIngestion.BulkAsync, binary COPY as the service role): idempotency keys, bad lines by
/// number in refuse and skip modes with nothing half-written, times, entities, tenant isolation; and retention.
/// </summary>
public sealed class EventIngestionTests : DatabaseTest
{
    private static readonly DateTimeOffset s_now = new(2026, 6, 10, 12, 0, 0, TimeSpan.Zero);
    private Guid _tenant;
    private Guid _member;
    private Guid _account;
    private Guid _contact;
    private Guid _order;
    private Guid _otherTenant;
    private Guid _othersContact;
    private Guid _othersAccount;
    private Guid _othersOrder;

    public enum Route
    {
        Rls,
        Bulk,
    }

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_now);
        _tenant = await Db.CreateTenantAsync();
        _member = await Db.AddMemberAsync(_tenant);
        _account = await Db.CreateAccountAsync(_tenant, "Initrode");
        _contact = await Db.CreateContactAsync(_tenant, _account, "Peter Gibbons");
        _order = await CreateOrderAsync(_tenant, _account);
        _otherTenant = await Db.CreateTenantAsync();
        _othersAccount = await Db.CreateAccountAsync(_otherTenant, "Chotchkie's");
        _othersContact = await Db.CreateContactAsync(_otherTenant, _othersAccount, "Joanna");
        _othersOrder = await CreateOrderAsync(_otherTenant, _othersAccount);
    }

    [Theory]
    [InlineData(Route.Rls)]
    [InlineData(Route.Bulk)]
    public async Task ResentBatch_WritesNothingTwice_DuplicatesPointAtTheFirstEvents(Route route)
    {
        JsonObject[] batch =
        [
            Event("reply", "contact", _contact, key: "mail-1", at: s_now.AddHours(-2), payload: new JsonObject { ["channel"] = "email" }),
            Event("order_placed", "order", _order, key: "erp-7", payload: new JsonObject { ["total"] = 120.5 }),
            Event("meeting", "account", _account, key: "cal-3", at: s_now.AddDays(-1)),
        ];

        var first = await IngestAsync(route, ImportErrorMode.Refuse, batch);
        // Without its own time, a resent event is the same event whenever it comes.
        await Db.FreezeTimeAsync(s_now.AddMinutes(10));
        var again = await IngestAsync(route, ImportErrorMode.Refuse, batch);

        Assert.Equal(["recorded", "recorded", "recorded"], first.Select(o => o.Outcome));
        Assert.Equal(["duplicate", "duplicate", "duplicate"], again.Select(o => o.Outcome));
        Assert.Equal(first.Select(o => o.EventId), again.Select(o => o.EventId));
        Assert.Equal(3L, await CountAsync(_tenant));
        Assert.Equal($"order_placed|order|{_order}|{{\"total\": 120.5}}|api|{s_now:yyyy-MM-ddTHH:mm:ss}", await Db.ScalarAsync($"""
            select {RowText} from public.warehouse_events where tenant_id = $1 and idempotency_key = 'erp-7' and id = $2
            """, _tenant, first[1].EventId));
    }

    [Fact]
    public async Task EventRecordedByOnePath_ResentByTheOther_Duplicate()
    {
        var recorded = await IngestAsync(Route.Rls, ImportErrorMode.Refuse, Event("reply", "contact", _contact, key: "k", payload: new JsonObject { ["n"] = 1 }));

        // The payload as jsonb compares it: 1.0 is 1, and key order does not matter.
        var resent = await IngestAsync(Route.Bulk, ImportErrorMode.Refuse, Event("reply", "contact", _contact, key: "k", payload: JsonNode.Parse("""{"n": 1.0}""")!.AsObject()));
        var back = await IngestAsync(Route.Rls, ImportErrorMode.Refuse, Event("reply", "contact", _contact, key: "k", payload: JsonNode.Parse("""{"n": 1.0}""")!.AsObject()));

        Assert.Equal(("duplicate", recorded[0].EventId), (resent[0].Outcome, resent[0].EventId));
        Assert.Equal(("duplicate", recorded[0].EventId), (back[0].Outcome, back[0].EventId));
        Assert.Equal(1L, await CountAsync(_tenant));
    }

    [Theory]
    [InlineData(Route.Rls)]
    [InlineData(Route.Bulk)]
    public async Task SameKeyForDifferentEvent_Rejected_RefusedOrSkipped(Route route)
    {
        await IngestAsync(route, ImportErrorMode.Refuse, Event("reply", "contact", _contact, key: "k", at: s_now.AddHours(-1), payload: new JsonObject { ["n"] = 1 }));
        var before = await DigestAsync();

        var refused = await Assert.ThrowsAsync<ImportRefusedException>(() => IngestAsync(route, ImportErrorMode.Refuse,
            Event("meeting", "account", _account, key: "fresh"),
            Event("reply", "contact", _contact, key: "k", at: s_now.AddHours(-1), payload: new JsonObject { ["n"] = 2 })));
        var skipped = await IngestAsync(route, ImportErrorMode.Skip,
            Event("reply", "contact", _contact, key: "k", at: s_now.AddHours(-3), payload: new JsonObject { ["n"] = 1 }),
            Event("reply", "contact", _contact, key: "k2"),
            Event("reply", "contact", _contact, key: "k2", payload: new JsonObject { ["n"] = 9 }),
            Event("reply", "contact", _contact, key: "k2"));

        Assert.Equal((2, "idempotency_key 'k' was already used for a different event"), (refused.Rejected.Single().LineNumber, refused.Rejected.Single().Error));
        Assert.Contains("1 of 2 events rejected, nothing recorded: line 2: idempotency_key 'k'", refused.Message, StringComparison.Ordinal);
        Assert.Equal(["rejected", "recorded", "rejected", "duplicate"], skipped.Select(o => o.Outcome));
        Assert.Equal("idempotency_key 'k' was already used for a different event", skipped[0].Error);
        Assert.Equal("idempotency_key 'k2' appears earlier in the batch for a different event", skipped[2].Error);
        Assert.Equal(skipped[1].EventId, skipped[3].EventId);
        Assert.StartsWith("events:1|", before, StringComparison.Ordinal);
        Assert.Equal(2L, await CountAsync(_tenant));
        Assert.Equal("{\"n\": 1}", await Db.ScalarAsync("select payload::text from public.warehouse_events where idempotency_key = 'k'"));
    }

    [Theory]
    [InlineData(Route.Rls)]
    [InlineData(Route.Bulk)]
    public async Task Refuse_BadLinesAmongGood_EveryBadLineNamedByNumber_NothingWritten(Route route)
    {
        var before = await DigestAsync();
        var unknownOrder = Guid.NewGuid();

        var refused = await Assert.ThrowsAsync<ImportRefusedException>(() => IngestAsync(route, ImportErrorMode.Refuse,
            Event("reply", "contact", _contact, key: "ok-1"),
            Event("reply", "contact", _othersContact),
            Event("reply", "contact", _contact, at: s_now.AddMinutes(6)),
            Event("order_placed", "order", unknownOrder),
            new JsonObject { ["event_type"] = "reply", ["tenant_id"] = _otherTenant.ToString() },
            new JsonObject { ["event_type"] = "reply", ["occurred_at"] = "last tuesday" },
            Event("meeting", "account", _account, key: "ok-2")));

        Assert.Equal([2, 3, 4, 5, 6], refused.Rejected.Select(r => r.LineNumber));
        Assert.Equal([
            $"contact {_othersContact} does not exist in this tenant",
            $"occurred_at '{s_now.AddMinutes(6):yyyy-MM-ddTHH:mm:ss.fffffffzzz}' is in the future (more than 300 seconds ahead of the database clock)",
            $"order {unknownOrder} does not exist in this tenant",
            "unknown field(s) 'tenant_id' (the fields are event_type, entity_type, entity_id, payload, occurred_at, idempotency_key, source)",
            "occurred_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2025-12-01T09:30:00Z (got 'last tuesday')",
        ], refused.Rejected.Select(r => r.Error));
        Assert.StartsWith("5 of 7 events rejected, nothing recorded: line 2: contact", refused.Message, StringComparison.Ordinal);
        Assert.Equal(before, await DigestAsync());
    }

    [Theory]
    [InlineData(Route.Rls)]
    [InlineData(Route.Bulk)]
    public async Task Skip_ValidLinesRecordedWithTheirFields_BadLinesReturnedWithReasons(Route route)
    {
        var outcomes = await IngestAsync(route, ImportErrorMode.Skip,
            Event("reply", "contact", _contact, at: s_now.AddHours(-1), payload: new JsonObject { ["subject"] = "Re: TPS" }, source: "email-sync"),
            new JsonObject { ["event_type"] = "reply", ["entity_type"] = "contact", ["entity_id"] = "nope" },
            Event("churn_signal", "tenant", _tenant),
            Event("churn_signal", "tenant", _otherTenant),
            new JsonObject { ["event_type"] = "note" });

        Assert.Equal(["recorded", "rejected", "recorded", "rejected", "recorded"], outcomes.Select(o => o.Outcome));
        Assert.Equal("entity_id must be a uuid (got 'nope')", outcomes[1].Error);
        Assert.Equal($"tenant {_otherTenant} is not this tenant", outcomes[3].Error);
        Assert.Equal(
            $"reply|contact|{_contact}|{{\"subject\": \"Re: TPS\"}}|email-sync|{s_now.AddHours(-1):yyyy-MM-ddTHH:mm:ss};" +
            $"churn_signal|tenant|{_tenant}|{{}}|api|{s_now:yyyy-MM-ddTHH:mm:ss};note|||{{}}|api|{s_now:yyyy-MM-ddTHH:mm:ss}",
            await Db.ScalarAsync($"""
                select string_agg({RowText}, ';' order by occurred_at, event_type) from public.warehouse_events where tenant_id = $1
                """, _tenant));
    }

    [Theory]
    [InlineData(Route.Rls)]
    [InlineData(Route.Bulk)]
    public async Task LinesPostgresCannotRead_RejectedByNumber_TheRestOfTheBatchRecorded(Route route)
    {
        // Sent as they are, any of these would fail the whole batch (jsonb rejects \u0000; a repeated property would
        // silently lose a value; broken JSON breaks the array).
        EventLine[] lines =
        [
            new(1, """{"event_type":"reply"}""", null),
            new(2, """{"event_type":"reply","payload":{"note":"a\u0000b"}}""", null),
            new(3, """{"event_type":"reply","payload":{"n":1,"n":2}}""", null),
            new(4, """{"event_type":"reply" """, null),
            new(5, """{"event_type":"meeting"}""", null),
        ];

        var outcomes = route == Route.Rls
            ? await Db.AsUserAsync(_member, (c, t) => ImportPipeline.RecordAsync(EventImportKind.Instance, c, t, _tenant, lines, ImportErrorMode.Skip))
            : await BulkAsync(lines, ImportErrorMode.Skip);

        Assert.Equal(["recorded", "rejected", "rejected", "rejected", "recorded"], outcomes.Select(o => o.Outcome));
        Assert.Equal("a string holds the character U+0000, which PostgreSQL cannot store", outcomes[1].Error);
        Assert.Equal("not valid JSON (the property 'n' appears twice in payload)", outcomes[2].Error);
        Assert.StartsWith("not valid JSON (", outcomes[3].Error, StringComparison.Ordinal);
        Assert.Equal(2L, await CountAsync(_tenant));
    }

    [Fact]
    public async Task Bulk_LargeBatchReadOnEveryCore_BadLinesNamedByTheirOwnNumbers()
    {
        var bad = new HashSet<int> { 7, 12_345, 24_999 };
        var lines = Enumerable.Range(1, 25_000).Select(n => EventLine.FromObject(n, bad.Contains(n)
            ? Event("reply", "contact", Guid.NewGuid(), key: $"big-{n}")
            : Event(n % 2 == 0 ? "reply" : "meeting", n % 2 == 0 ? "contact" : "account", n % 2 == 0 ? _contact : _account, key: $"big-{n}",
                at: s_now.AddSeconds(-n)))).ToList();

        var outcomes = await BulkAsync(lines, ImportErrorMode.Skip);

        Assert.Equal(bad.Order(), outcomes.Where(o => o.Outcome == "rejected").Select(o => o.LineNumber));
        Assert.All(outcomes.Where(o => o.Outcome == "rejected"), o => Assert.EndsWith("does not exist in this tenant", o.Error, StringComparison.Ordinal));
        Assert.Equal(24_997L, await CountAsync(_tenant));
        Assert.Equal(s_now.AddSeconds(-24_998).UtcDateTime, await Db.ScalarAsync("select occurred_at from public.warehouse_events where idempotency_key = 'big-24998'"));
    }

    [Fact]
    public async Task Rls_RefuseWithBadLineInLastBatch_EarlierBatchesRolledBackToo()
    {
        var before = await DigestAsync();

        await Assert.ThrowsAsync<ImportRefusedException>(() => IngestAsync(Route.Rls, ImportErrorMode.Refuse, batchSize: 1,
            Event("reply", "contact", _contact, key: "a"), Event("reply", "contact", _contact, key: "b"), Event("reply", "contact", Guid.NewGuid())));

        Assert.Equal(before, await DigestAsync());
    }

    [Theory]
    [InlineData(Route.Rls)]
    [InlineData(Route.Bulk)]
    public async Task FutureTimes_WithinTheTenantsSkewAccepted_BeyondRejected(Route route)
    {
        var within = await IngestAsync(route, ImportErrorMode.Skip, Event("reply", at: s_now.AddMinutes(5)), Event("reply", at: s_now.AddMinutes(5).AddSeconds(1)));
        await Db.ExecuteAsync("update public.tenants set settings = settings || '{\"event_future_skew_seconds\": 0}' where id = $1", _tenant);
        var strict = await IngestAsync(route, ImportErrorMode.Skip, Event("reply", at: s_now), Event("reply", at: s_now.AddSeconds(1)));

        Assert.Equal(["recorded", "rejected"], within.Select(o => o.Outcome));
        Assert.Equal(["recorded", "rejected"], strict.Select(o => o.Outcome));
        Assert.EndsWith("is in the future (more than 0 seconds ahead of the database clock)", strict[1].Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Route.Rls)]
    [InlineData(Route.Bulk)]
    public async Task UnknownAndOtherTenantsEntities_Rejected_NoEventOnThem(Route route)
    {
        var unknown = Guid.NewGuid();

        var outcomes = await IngestAsync(route, ImportErrorMode.Skip,
            Event("reply", "contact", _othersContact), Event("meeting", "account", _othersAccount), Event("order_placed", "order", _othersOrder),
            Event("reply", "contact", unknown), Event("meeting", "account", _contact), Event("order_placed", "order", _account));

        Assert.All(outcomes, o => Assert.Equal("rejected", o.Outcome));
        Assert.Equal([
            $"contact {_othersContact} does not exist in this tenant", $"account {_othersAccount} does not exist in this tenant",
            $"order {_othersOrder} does not exist in this tenant", $"contact {unknown} does not exist in this tenant",
            $"account {_contact} does not exist in this tenant", $"order {_account} does not exist in this tenant",
        ], outcomes.Select(o => o.Error));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.warehouse_events"));
    }

    [Fact]
    public async Task UserOfOtherTenant_CallingIngestEventsForThisTenant_Denied_NothingWritten()
    {
        var stranger = await Db.AddMemberAsync(_otherTenant);
        var before = await DigestAsync();

        var direct = await Assert.ThrowsAsync<PostgresException>(() => Db.AsUserAsync(stranger, (c, t) =>
            TestDb.ScalarAsync(c, t, "select count(*) from public.ingest_events($1, $2::jsonb, 'skip')", _tenant,
                new JsonArray(Event("reply", "contact", _contact)).ToJsonString())));
        var viaRecord = await Assert.ThrowsAsync<PostgresException>(() => Db.AsUserAsync(stranger, (c, t) =>
            ImportPipeline.RecordAsync(EventImportKind.Instance, c, t, _tenant, [EventLine.FromObject(1, Event("reply"))], ImportErrorMode.Skip)));
        // Naming their own tenant does not help with this tenant's contact either.
        var ownTenant = await Db.AsUserAsync(stranger, (c, t) =>
            ImportPipeline.RecordAsync(EventImportKind.Instance, c, t, _otherTenant, [EventLine.FromObject(1, Event("reply", "contact", _contact))], ImportErrorMode.Skip));

        Assert.Equal(("42501", "42501"), (direct.SqlState, viaRecord.SqlState));
        Assert.Equal($"contact {_contact} does not exist in this tenant", ownTenant.Single().Error);
        Assert.Equal(before, await DigestAsync());
    }

    [Fact]
    public async Task Anon_CallingIngestEvents_Denied()
    {
        var error = await Assert.ThrowsAsync<PostgresException>(() => Db.AsRoleAsync("anon", (c, t) =>
            TestDb.ScalarAsync(c, t, "select count(*) from public.ingest_events($1, '[]'::jsonb)", _tenant)));

        Assert.Equal("42501", error.SqlState);
    }

    [Fact]
    public async Task Bulk_NeverWritesAnotherTenantId_EvenWhenTheFileNamesOne()
    {
        var lines = new[]
        {
            """{"event_type":"reply","tenant_id":"{{other}}"}""",
            """{"event_type":"reply","entity_type":"tenant","entity_id":"{{other}}"}""",
            """{"event_type":"reply","entity_type":"contact","entity_id":"{{othersContact}}"}""",
            """{"event_type":"reply","payload":{"tenant_id":"{{other}}"}}""",
        }.Select((json, i) => EventLine.Parse(i + 1, json.Replace("{{other}}", _otherTenant.ToString(), StringComparison.Ordinal)
            .Replace("{{othersContact}}", _othersContact.ToString(), StringComparison.Ordinal))).ToList();

        var outcomes = await BulkAsync(lines, ImportErrorMode.Skip);

        Assert.Equal(["rejected", "rejected", "rejected", "recorded"], outcomes.Select(o => o.Outcome));
        Assert.StartsWith("unknown field(s) 'tenant_id'", outcomes[0].Error, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id <> $1", _tenant));
        // A payload may mention anything; it is data, not the row's tenant.
        Assert.Equal(_tenant, await Db.ScalarAsync("select tenant_id from public.warehouse_events where id = $1", outcomes[3].EventId));
    }

    [Fact]
    public async Task Bulk_AsAuthenticatedMember_Refused_NothingWritten()
    {
        var refused = await Assert.ThrowsAsync<HourglassException>(() => Db.AsUserAsync(_member, (c, t) =>
            EventIngestion.BulkAsync(c, t, _tenant, [EventLine.FromObject(1, Event("reply"))], ImportErrorMode.Skip)));

        Assert.StartsWith("the bulk path writes as a trusted role", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await CountAsync(_tenant));
    }

    [Fact]
    public async Task Bulk_UnknownTenant_RefusedBeforeAnything()
    {
        var error = await Assert.ThrowsAsync<PostgresException>(() => BulkAsync([EventLine.FromObject(1, Event("reply"))], ImportErrorMode.Skip, Guid.NewGuid()));

        Assert.Equal(PostgresErrorCodes.ForeignKeyViolation, error.SqlState);
    }

    [Fact]
    public async Task Bulk_ManyKeysSomeTaken_TakenOnesDuplicateOrRejected_RestRecordedOnce()
    {
        // 1,500 keyed events; two keys already taken, at lines the 1,000-key probe does not look at (it takes 0, 1, 3, …,
        // 1,496, 1,497, 1,499, so not 2 and not 1,498): the COPY straight into the table meets the unique index and the
        // batch goes the careful way. Whichever way it goes, the outcomes must be these.
        await IngestAsync(Route.Bulk, ImportErrorMode.Refuse, Event("reply", "contact", _contact, key: "bulk-0002", at: s_now.AddHours(-2)),
            Event("reply", "contact", _contact, key: "bulk-1498", payload: new JsonObject { ["other"] = true }));
        var batch = Enumerable.Range(0, 1_500).Select(i => Event("reply", "contact", _contact, key: $"bulk-{i:D4}", at: s_now.AddHours(-2))).ToArray();

        var skipped = await IngestAsync(Route.Bulk, ImportErrorMode.Skip, batch);

        Assert.Equal(1_498, skipped.Count(o => o.Outcome == "recorded"));
        Assert.Equal(("duplicate", 3), (skipped[2].Outcome, skipped[2].LineNumber));
        Assert.Equal(("rejected", "idempotency_key 'bulk-1498' was already used for a different event"), (skipped[1_498].Outcome, skipped[1_498].Error));
        Assert.Equal(1_500L, await CountAsync(_tenant));
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from pg_catalog.pg_class where relname = 'hourglass_event_batch'"));
    }

    [Fact]
    public async Task Bulk_ManyChunks_KeysResolvedAcrossChunks_RefuseRollsBackTheChunksAlreadyWritten()
    {
        // 120,000 lines: three chunks of the bulk path's 50,000. Line n has key multi-n.
        await IngestAsync(Route.Bulk, ImportErrorMode.Refuse,
            Event("reply", "contact", _contact, key: "multi-060002", payload: new JsonObject { ["other"] = true }),
            Event("reply", "contact", _contact, key: "multi-070003", at: s_now.AddSeconds(-70_003)));
        JsonObject Line(int n) => n switch
        {
            120_000 => Event("reply", "contact", _contact, key: "multi-000005", at: s_now.AddSeconds(-5)),
            119_999 => Event("reply", "contact", _contact, key: "multi-000006", at: s_now.AddSeconds(-1)),
            _ => Event("reply", "contact", _contact, key: $"multi-{n:D6}", at: s_now.AddSeconds(-n)),
        };
        var lines = Enumerable.Range(1, 120_000).Select(n => EventLine.FromObject(n, Line(n))).ToList();
        var before = await DigestAsync();

        var refused = await Assert.ThrowsAsync<ImportRefusedException>(() => BulkAsync(
            [.. lines.Take(109_999), EventLine.FromObject(110_000, Event("reply", "contact", _othersContact)), .. lines.Skip(110_000)], ImportErrorMode.Refuse));
        var afterRefusal = await DigestAsync();
        var outcomes = await BulkAsync(lines, ImportErrorMode.Skip);

        // Refused for every bad line, in the first chunk as in the last, and the two chunks already written rolled back.
        Assert.Equal([60_002, 110_000, 119_999], refused.Rejected.Select(r => r.LineNumber));
        Assert.Equal(before, afterRefusal);
        Assert.Equal(119_996, outcomes.Count(o => o.Outcome == "recorded"));
        Assert.Equal(("rejected", "idempotency_key 'multi-060002' was already used for a different event"), (outcomes[60_001].Outcome, outcomes[60_001].Error));
        Assert.Equal("duplicate", outcomes[70_002].Outcome);
        Assert.Equal(("duplicate", outcomes[4].EventId), (outcomes[119_999].Outcome, outcomes[119_999].EventId));
        Assert.Equal(("rejected", "idempotency_key 'multi-000006' appears earlier in the batch for a different event"), (outcomes[119_998].Outcome, outcomes[119_998].Error));
        Assert.Equal(119_998L, await CountAsync(_tenant));
    }

    [Fact]
    public async Task Bulk_StreamedFromText_ChunksReadAsWritten_LineNumbersFromTheText()
    {
        // 60,001 events over two chunks, a blank line after the first (so event n is on line n + 1 from then on) and an
        // unknown contact on line 55,002.
        var text = new StringBuilder();
        for (var n = 1; n <= 60_001; n++)
        {
            var contact = n == 55_001 ? Guid.NewGuid() : _contact;
            text.Append(CultureInfo.InvariantCulture, $$"""{"event_type":"reply","entity_type":"contact","entity_id":"{{contact}}","idempotency_key":"s-{{n}}"}""").Append('\n');
            if (n == 1)
            {
                text.Append('\n');
            }
        }

        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await DbSession.BeginAsServiceRoleAsync(connection);
        var outcomes = await EventIngestion.BulkAsync(connection, transaction, _tenant,
            ImportPipeline.StreamNdjsonAsync(EventImportKind.Instance, new StringReader(text.ToString())), ImportErrorMode.Skip);
        await transaction.CommitAsync();

        Assert.Equal(60_001, outcomes.Count);
        Assert.Equal((55_002, "rejected"), (outcomes.Single(o => o.Outcome != "recorded").LineNumber, outcomes.Single(o => o.Outcome != "recorded").Outcome));
        Assert.Equal([1, 3, 60_002], new[] { outcomes[0], outcomes[1], outcomes[^1] }.Select(o => o.LineNumber));
        Assert.Equal(60_000L, await CountAsync(_tenant));
    }

    [Fact]
    public async Task Bulk_RefuseWhenAKeyTurnsOutTakenByAnotherEvent_NothingWritten()
    {
        await IngestAsync(Route.Bulk, ImportErrorMode.Refuse, Event("reply", "contact", _contact, key: "bulk-0002", payload: new JsonObject { ["v"] = 1 }));
        var before = await DigestAsync();
        var batch = Enumerable.Range(0, 1_500).Select(i => Event("reply", "contact", _contact, key: $"bulk-{i:D4}")).ToArray();

        var refused = await Assert.ThrowsAsync<ImportRefusedException>(() => IngestAsync(Route.Bulk, ImportErrorMode.Refuse, batch));

        Assert.Equal((3, "idempotency_key 'bulk-0002' was already used for a different event"), (refused.Rejected.Single().LineNumber, refused.Rejected.Single().Error));
        Assert.Equal(before, await DigestAsync());
    }

    [Fact]
    public async Task ConcurrentBatchesOnBothPaths_SameKeys_EachEventRecordedOnce()
    {
        var events = Enumerable.Range(0, 200).Select(i => Event("reply", "contact", _contact, key: $"race-{i}", at: s_now.AddMinutes(-i))).ToArray();

        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(n =>
            Task.Run(() => IngestAsync(n % 2 == 0 ? Route.Rls : Route.Bulk, ImportErrorMode.Refuse, events))));

        Assert.Equal(200, results.SelectMany(r => r).Count(o => o.Outcome == "recorded"));
        Assert.All(results, r => Assert.All(r, o => Assert.NotEqual("rejected", o.Outcome)));
        // Every caller got the id of the one event recorded under each key.
        Assert.All(results, r => Assert.Equal(results[0].Select(o => o.EventId), r.Select(o => o.EventId)));
        Assert.Equal(200L, await CountAsync(_tenant));
    }

    [Fact]
    public async Task Retention_OldEventsAndRunsDeleted_ReflectionsKeptWithRunIdNulled_OthersUntouched()
    {
        await Db.ExecuteAsync("update public.tenants set settings = settings || '{\"retention_events_days\": 30, \"retention_runs_days\": 7}' where id = $1", _tenant);
        foreach (var tenant in new[] { _tenant, _otherTenant })
        {
            await Db.ExecuteAsync("""
                insert into public.warehouse_events (tenant_id, event_type, occurred_at)
                select $1, 'reply', $2 - d * interval '1 day' from generate_series(0, 40) d
                """, tenant, s_now);
        }

        var oldRun = await RunAsync(_tenant, s_now.AddDays(-8), "completed");
        var oldFailedRun = await RunAsync(_tenant, s_now.AddDays(-30), "failed");
        var stuckRun = await RunAsync(_tenant, s_now.AddDays(-20), "running");
        var recentRun = await RunAsync(_tenant, s_now.AddDays(-6), "completed");
        var othersOldRun = await RunAsync(_otherTenant, s_now.AddDays(-100), "completed");
        foreach (var (run, tenant, daysAgo) in new[] { (oldRun, _tenant, 8), (oldFailedRun, _tenant, 30), (recentRun, _tenant, 6), (othersOldRun, _otherTenant, 100) })
        {
            await Db.ExecuteAsync("insert into public.agent_hourly_reflections (tenant_id, run_id, hour_bucket, summary) values ($1, $2, $3, 'kept')",
                tenant, run, s_now.AddDays(-daysAgo));
        }

        await Db.ExecuteAsync("""
            insert into public.agent_actions (tenant_id, run_id, idempotency_key, hour_bucket, kind, reason, status) values ($1, $2, 'a1', $3, 'touch', 'r', 'succeeded');
            """, _tenant, oldRun, s_now.AddDays(-8));
        await Db.ExecuteAsync("insert into public.cards (tenant_id, kind, title, run_id) values ($1, 'notice', 'n', $2)", _tenant, oldRun);

        var (events, runs) = await RetainAsync(_tenant);

        // Events: 41 days (0 … 40 days ago); those older than 30 days go (31 … 40).
        Assert.Equal((10L, 2L), (events, runs));
        Assert.Equal(31L, await CountAsync(_tenant));
        Assert.Equal(41L, await CountAsync(_otherTenant));
        Assert.Equal([recentRun, stuckRun], await IdsAsync("select id from public.agent_autonomous_runs where tenant_id = $1 order by started_at desc", _tenant));
        Assert.Equal("4 reflections: run ids -, -, kept, kept",
            await Db.ScalarAsync("""
                select count(*) || ' reflections: run ids ' || string_agg(case when run_id is null then '-' else 'kept' end, ', ' order by run_id nulls first, hour_bucket)
                from public.agent_hourly_reflections
                """));
        Assert.Equal(recentRun, await Db.ScalarAsync("select run_id from public.agent_hourly_reflections where tenant_id = $1 and run_id is not null", _tenant));
        Assert.Equal("action:|card:", await Db.ScalarAsync("""
            select 'action:' || coalesce((select run_id::text from public.agent_actions where tenant_id = $1), '')
                || '|card:' || coalesce((select run_id::text from public.cards where tenant_id = $1 and kind = 'notice'), '')
            """, _tenant));
    }

    [Fact]
    public async Task Retention_DefaultsZeroMeansForever_AndAnExplicitPastNow()
    {
        await Db.ExecuteAsync("""
            insert into public.warehouse_events (tenant_id, event_type, occurred_at) values ($1, 'reply', $2 - interval '731 days'), ($1, 'reply', $2 - interval '729 days')
            """, _tenant, s_now);
        await RunAsync(_tenant, s_now.AddDays(-91), "completed");
        await RunAsync(_tenant, s_now.AddDays(-89), "completed");

        var defaults = await RetainAsync(_tenant);
        var asOfEarlier = await RetainAsync(_tenant, s_now.AddDays(-10));
        await Db.ExecuteAsync("update public.tenants set settings = settings || '{\"retention_events_days\": 0, \"retention_runs_days\": 0}' where id = $1", _tenant);
        var forever = await RetainAsync(_tenant, s_now);

        Assert.Equal((1L, 1L), defaults);
        Assert.Equal((0L, 0L), asOfEarlier);
        Assert.Equal((0L, 0L), forever);
        Assert.Equal(1L, await CountAsync(_tenant));
    }

    [Fact]
    public async Task Retention_RefusedToAuthenticatedAndAnon_FutureNowRefused_NothingDeleted()
    {
        await Db.ExecuteAsync("insert into public.warehouse_events (tenant_id, event_type, occurred_at) values ($1, 'reply', $2 - interval '5 years')", _tenant, s_now);
        var owner = await Db.AddMemberAsync(_tenant, role: "owner");

        var asMember = await Assert.ThrowsAsync<PostgresException>(() => Db.AsUserAsync(owner, (c, t) =>
            TestDb.ScalarAsync(c, t, "select events_deleted from public.apply_retention($1)", _tenant)));
        var asAnon = await Assert.ThrowsAsync<PostgresException>(() => Db.AsRoleAsync("anon", (c, t) =>
            TestDb.ScalarAsync(c, t, "select events_deleted from public.apply_retention($1)", _tenant)));
        var future = await Assert.ThrowsAsync<PostgresException>(() => RetainAsync(_tenant, s_now.AddDays(1)));

        Assert.Equal(("42501", "42501", "22023"), (asMember.SqlState, asAnon.SqlState, future.SqlState));
        Assert.StartsWith("apply_retention: p_now must not be in the future", future.MessageText, StringComparison.Ordinal);
        Assert.Equal(1L, await CountAsync(_tenant));
    }

    [Fact]
    public async Task ForeignKeysToRuns_AllSetNullOnTheRunColumnOnly()
    {
        // apply_retention deletes runs: every row that points at one must survive it, losing only the pointer.
        var keys = await Db.ScalarAsync("""
            select string_agg(c.conrelid::regclass || ':' || c.confdeltype::text || ':' || (
                     select string_agg(a.attname, ',') from pg_catalog.pg_attribute a
                     where a.attrelid = c.conrelid and a.attnum = any (c.confdelsetcols)), ' ' order by c.conrelid::regclass::text)
            from pg_catalog.pg_constraint c where c.contype = 'f' and c.confrelid = 'public.agent_autonomous_runs'::regclass
            """);

        Assert.Equal("agent_actions:n:run_id agent_hourly_reflections:n:run_id agent_policy_violations:n:run_id cards:n:run_id message_outbox:n:run_id", keys);
    }

    [Fact]
    public async Task IngestEvents_OverTheLimitOrNotAnArray_ClearError()
    {
        var tooMany = new JsonArray(Enumerable.Range(0, 10_001).Select(_ => (JsonNode)new JsonObject { ["event_type"] = "x" }).ToArray()).ToJsonString();

        var limit = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select count(*) from public.ingest_events($1, $2::jsonb)", _tenant, tooMany));
        var notArray = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select count(*) from public.ingest_events($1, '{}'::jsonb)", _tenant));
        var mode = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select count(*) from public.ingest_events($1, '[]'::jsonb, 'lenient')", _tenant));

        Assert.Equal(("54000", "ingest_events: at most 10000 events per batch (got 10001)"), (limit.SqlState, limit.MessageText));
        Assert.Equal("ingest_events: p_events must be a JSON array of events", notArray.MessageText);
        Assert.Equal("ingest_events: p_on_error must be 'refuse' or 'skip' (got 'lenient')", mode.MessageText);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.ingest_events($1, '[]'::jsonb)", _tenant));
    }

    [Fact]
    public async Task IngestEvents_RefuseNamesTheFirstTwentyBadLines()
    {
        var events = new JsonArray(Enumerable.Range(0, 25).Select(_ => (JsonNode)new JsonObject { ["event_type"] = "" }).ToArray()).ToJsonString();

        var refused = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync("select count(*) from public.ingest_events($1, $2::jsonb)", _tenant, events));

        Assert.Equal("22023", refused.SqlState);
        Assert.StartsWith("ingest_events: 25 of 25 events rejected, nothing recorded: line 1: event_type is required", refused.MessageText, StringComparison.Ordinal);
        Assert.EndsWith("line 20: event_type is required (1-100 characters); …", refused.MessageText, StringComparison.Ordinal);
    }

    // An event row as text, whatever the session's time zone.
    private const string RowText = """
        format('%s|%s|%s|%s|%s|%s', event_type, entity_type, entity_id, payload, source, to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS'))
        """;

    private static JsonObject Event(string type, string? entityType = null, Guid? entityId = null, string? key = null, DateTimeOffset? at = null,
        JsonObject? payload = null, string? source = null)
    {
        var e = new JsonObject { ["event_type"] = type };
        if (entityType is not null)
        {
            e["entity_type"] = entityType;
            e["entity_id"] = entityId?.ToString();
        }

        if (payload is not null)
        {
            e["payload"] = payload;
        }

        if (at is { } when)
        {
            e["occurred_at"] = when.ToString("yyyy-MM-ddTHH:mm:ss.fffffffzzz", System.Globalization.CultureInfo.InvariantCulture);
        }

        if (key is not null)
        {
            e["idempotency_key"] = key;
        }

        if (source is not null)
        {
            e["source"] = source;
        }

        return e;
    }

    private Task<IReadOnlyList<EventOutcome>> IngestAsync(Route route, ImportErrorMode mode, params JsonObject[] events) =>
        IngestAsync(route, mode, 1_000, events);

    // The RLS path as a member of the tenant, in their own session; the bulk path as the service role.
    private async Task<IReadOnlyList<EventOutcome>> IngestAsync(Route route, ImportErrorMode mode, int batchSize, params JsonObject[] events)
    {
        var lines = events.Select((e, i) => EventLine.FromObject(i + 1, e)).ToList();
        return route == Route.Rls
            ? await Db.AsUserAsync(_member, (c, t) => ImportPipeline.RecordAsync(EventImportKind.Instance, c, t, _tenant, lines, mode, batchSize))
            : await BulkAsync(lines, mode);
    }

    private async Task<IReadOnlyList<EventOutcome>> BulkAsync(IReadOnlyList<EventLine> lines, ImportErrorMode mode, Guid? tenant = null)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await DbSession.BeginAsServiceRoleAsync(connection);
        var outcomes = await EventIngestion.BulkAsync(connection, transaction, tenant ?? _tenant, lines, mode);
        await transaction.CommitAsync();
        return outcomes;
    }

    private async Task<(long Events, long Runs)> RetainAsync(Guid tenant, DateTimeOffset? asOf = null) =>
        await Db.AsRoleAsync("service_role", async (c, t) =>
        {
            await using var command = new NpgsqlCommand("select events_deleted, runs_deleted from public.apply_retention($1, $2)", c, t);
            command.Parameters.Add(new() { Value = tenant });
            command.Parameters.Add(new() { Value = (object?)asOf ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz });
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            return (reader.GetInt64(0), reader.GetInt64(1));
        });

    private async Task<Guid> RunAsync(Guid tenant, DateTimeOffset startedAt, string status) =>
        (Guid)(await Db.ScalarAsync("""
            insert into public.agent_autonomous_runs (tenant_id, status, started_at, completed_at)
            values ($1, $3, $2, case when $3 = 'running' then null else $2 + interval '5 minutes' end) returning id
            """, tenant, startedAt, status))!;

    private async Task<Guid> CreateOrderAsync(Guid tenant, Guid account) =>
        (Guid)(await Db.ScalarAsync("insert into public.orders (tenant_id, account_id) values ($1, $2) returning id", tenant, account))!;

    private async Task<long> CountAsync(Guid tenant) =>
        (long)(await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1", tenant))!;

    private async Task<List<Guid>> IdsAsync(string sql, Guid tenant)
    {
        await using var command = Db.DataSource.CreateCommand(sql);
        command.Parameters.Add(new() { Value = tenant });
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new List<Guid>();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetGuid(0));
        }

        return ids;
    }

    // Everything ingestion can write, in both tenants.
    private async Task<string> DigestAsync() =>
        (string)(await Db.ScalarAsync("""
            select 'events:' || count(*) || '|' || coalesce(string_agg(concat_ws(',', tenant_id, event_type, entity_id, idempotency_key, payload, occurred_at), ';' order by id), '')
            from public.warehouse_events
            """))!;
}
