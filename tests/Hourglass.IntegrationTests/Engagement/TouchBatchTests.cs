using System.Text.Json.Nodes;
using Hourglass.Imports;
using Hourglass.Engagement;
using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Engagement;

/// <summary>
/// Touches from outside systems through record_touches / TouchBatch: their own timestamps, idempotency keys, the
/// refuse and skip modes, and the movement counts a cycle reports.
/// </summary>
public sealed class TouchBatchTests : DatabaseTest
{
    private static readonly DateTimeOffset s_now = new(2026, 6, 10, 12, 0, 0, TimeSpan.Zero);
    private Guid _tenant;
    private Guid _account;
    private Guid _contact;

    protected override async Task SeedAsync()
    {
        await Db.FreezeTimeAsync(s_now);
        _tenant = await Db.CreateTenantAsync();
        _account = await Db.CreateAccountAsync(_tenant, "Initrode");
        _contact = await Db.CreateContactAsync(_tenant, _account, "Peter Gibbons");
        // Last touched 30 days ago on a 21-day cadence: 9 days overdue, contact and account alike.
        await Db.ExecuteAsProductAsync("""
            update public.engagement_clocks set last_touch_at = $2, touch_count = 1, next_touch_due = $2 + interval '21 days'
            where tenant_id = $1
            """, _tenant, s_now.AddDays(-30));
        await Db.ScalarAsync("select public.refresh_engagement_compliance($1)", _tenant);
    }

    [Fact]
    public async Task Backdated_NextDueRunsFromItsOwnTime_ContactAndAccountRecoveredCounted()
    {
        var outcomes = await RecordAsync(TouchMode.Refuse, Touch(_contact, "email", at: s_now.AddDays(-2), key: "mail-1"));

        Assert.Equal("recorded", outcomes.Single().Outcome);
        foreach (var (type, id) in new[] { ("contact", _contact), ("account", _account) })
        {
            var clock = await ClockAsync(type, id);
            Assert.Equal((s_now.AddDays(-2), s_now.AddDays(19), 2, "compliant", 0, "email"),
                (clock.LastTouch, clock.NextDue, clock.Count, clock.Status, clock.DaysOverdue, clock.TouchType));
        }

        Assert.Equal((0L, 2L), await MovementAsync(s_now.AddHours(-1)));
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'touch' and idempotency_key = 'mail-1'", _tenant));
    }

    [Fact]
    public async Task BackdatedSoFarItIsStillOverdue_RankedByRefresh_OpenCardKept()
    {
        var card = await OpenCardAsync(_contact);

        await RecordAsync(TouchMode.Refuse, Touch(_contact, "call", at: s_now.AddDays(-25)));

        // 25 days ago + 21: due 4 days ago, so still overdue — with the status, days and priority the refresh gives.
        var clock = await ClockAsync("contact", _contact);
        Assert.Equal((s_now.AddDays(-25), "overdue", 4, 140m), (clock.LastTouch, clock.Status, clock.DaysOverdue, clock.Priority));
        Assert.Equal("open", await Db.ScalarAsync("select status from public.cards where id = $1", card));
        Assert.Equal((0L, 0L), await MovementAsync(s_now.AddHours(-1)));
    }

    [Fact]
    public async Task OlderThanLastTouch_CountedMovesNothingBack()
    {
        await RecordAsync(TouchMode.Refuse, Touch(_contact, "meeting", at: s_now.AddDays(-1)));

        await RecordAsync(TouchMode.Refuse, Touch(_contact, "email", at: s_now.AddDays(-3)));

        var clock = await ClockAsync("contact", _contact);
        Assert.Equal((s_now.AddDays(-1), "meeting", 3), (clock.LastTouch, clock.TouchType, clock.Count));
    }

    [Fact]
    public async Task LiveTouchOlderThanABatchTouchAhead_CountedMovesNothingBack()
    {
        // A phone system's touch, stamped four minutes ahead (within the clock skew)…
        await RecordAsync(TouchMode.Refuse, Touch(_contact, "meeting", at: s_now.AddMinutes(4), by: "pbx"));

        // …then a touch recorded now: counted, but the clock keeps the later touch and the due date from it.
        await Db.ScalarAsync("select public.update_engagement_clock($1, 'contact', $2, 'email', 'sam')", _tenant, _contact);

        var clock = await ClockAsync("contact", _contact);
        Assert.Equal((s_now.AddMinutes(4), "meeting", 3, s_now.AddMinutes(4).AddDays(21)), (clock.LastTouch, clock.TouchType, clock.Count, clock.NextDue));
        Assert.Equal("pbx", await Db.ScalarAsync("select last_touch_by from public.engagement_clocks where entity_id = $1", _contact));
    }

    [Fact]
    public async Task TouchBringingClockWithinCadence_ClosesOpenCard()
    {
        var card = await OpenCardAsync(_contact);

        await RecordAsync(TouchMode.Refuse, Touch(_contact, "email", at: s_now.AddMinutes(-5), by: "email-sync"));

        Assert.Equal("done:email-sync", await Db.ScalarAsync("select status || ':' || completed_by from public.cards where id = $1", card));
    }

    [Fact]
    public async Task SameKeyResent_DuplicateNoSecondTouch_InBatchAndAcrossBatches()
    {
        var touch = Touch(_contact, "email", at: s_now.AddHours(-1), key: "sync-42");

        var first = await RecordAsync(TouchMode.Refuse, touch, touch.DeepClone().AsObject());
        var again = await RecordAsync(TouchMode.Refuse, touch);
        // Without its own time, a resent touch is the same touch whenever it comes.
        var untimed = Touch(_contact, "call", key: "sync-43");
        await RecordAsync(TouchMode.Refuse, untimed);
        await Db.FreezeTimeAsync(s_now.AddMinutes(10));
        var untimedAgain = await RecordAsync(TouchMode.Refuse, untimed);

        Assert.Equal(["recorded", "duplicate"], first.Select(o => o.Outcome));
        Assert.Equal("duplicate", again.Single().Outcome);
        Assert.Equal("duplicate", untimedAgain.Single().Outcome);
        Assert.Equal(3, (await ClockAsync("contact", _contact)).Count);
        Assert.Equal(2L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and event_type = 'touch'", _tenant));
    }

    [Fact]
    public async Task SameKeyForDifferentTouch_Rejected()
    {
        await RecordAsync(TouchMode.Refuse, Touch(_contact, "email", at: s_now.AddHours(-1), key: "k"));

        var refused = await Assert.ThrowsAsync<ImportRefusedException>(() =>
            RecordAsync(TouchMode.Refuse, Touch(_contact, "call", at: s_now.AddHours(-1), key: "k")));

        Assert.Contains("line 1: idempotency_key 'k' was already used for a different touch", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Refuse_OneBadLineAmongGood_NamesEveryBadLineAndWritesNothing()
    {
        var otherTenant = await Db.CreateTenantAsync();
        var strangersContact = await Db.CreateContactAsync(otherTenant);
        var before = await DigestAsync();

        var refused = await Assert.ThrowsAsync<ImportRefusedException>(() => RecordAsync(TouchMode.Refuse,
            Touch(_contact, "email", at: s_now.AddHours(-1)),
            Touch(strangersContact, "email"),
            Touch(_contact, "email", at: s_now.AddMinutes(6)),
            new JsonObject { ["entity_type"] = "lead", ["entity_id"] = _contact.ToString(), ["touch_type"] = "email" },
            new JsonObject { ["entity_type"] = "contact", ["entity_id"] = _contact.ToString(), ["touch_type"] = "email", ["occurred_at"] = "last tuesday" },
            Touch(_contact, "email", at: s_now.AddMinutes(4)),
            new JsonObject { ["entity_type"] = "contact", ["entity_id"] = _contact.ToString(), ["touch_type"] = "email", ["tenant_id"] = Guid.NewGuid().ToString(), ["ocurred_at"] = "x" }));

        Assert.Equal([2, 3, 4, 5, 7], refused.Rejected.Select(r => r.LineNumber));
        Assert.StartsWith("unknown field(s) 'ocurred_at', 'tenant_id' (the fields are entity_type, ", refused.Rejected[4].Error, StringComparison.Ordinal);
        Assert.Contains($"contact {strangersContact} does not exist in this tenant", refused.Rejected[0].Error, StringComparison.Ordinal);
        Assert.Contains("is in the future", refused.Rejected[1].Error, StringComparison.Ordinal);
        Assert.Contains("entity_type must be 'contact' or 'account'", refused.Rejected[2].Error, StringComparison.Ordinal);
        Assert.Contains("occurred_at must be an ISO-8601 timestamp", refused.Rejected[3].Error, StringComparison.Ordinal);
        Assert.Equal(before, await DigestAsync());
    }

    [Fact]
    public async Task Refuse_BadLineInLastBatch_EarlierBatchesRolledBackToo()
    {
        var before = await DigestAsync();

        await Assert.ThrowsAsync<ImportRefusedException>(() => RecordAsync(TouchMode.Refuse, batchSize: 1,
            Touch(_contact, "email", at: s_now.AddHours(-2)), Touch(_contact, "email", at: s_now.AddHours(-1)), Touch(Guid.NewGuid(), "email")));

        Assert.Equal(before, await DigestAsync());
    }

    [Fact]
    public async Task Skip_ValidLinesRecorded_BadLinesReturnedWithReasons()
    {
        var outcomes = await RecordAsync(TouchMode.Skip,
            Touch(_contact, "email", at: s_now.AddHours(-1)),
            new JsonObject { ["entity_type"] = "contact", ["entity_id"] = "nope", ["touch_type"] = "email" },
            Touch(_account, "call", type: "account", at: s_now.AddMinutes(-30)));

        Assert.Equal(["recorded", "rejected", "recorded"], outcomes.Select(o => o.Outcome));
        Assert.Contains("entity_id must be a uuid", outcomes[1].Error, StringComparison.Ordinal);
        Assert.Equal(3, (await ClockAsync("account", _account)).Count);
    }

    [Fact]
    public async Task WithinClockSkew_Accepted()
    {
        var outcomes = await RecordAsync(TouchMode.Refuse, Touch(_contact, "email", at: s_now.AddMinutes(4)));

        Assert.Equal("recorded", outcomes.Single().Outcome);
    }

    [Fact]
    public async Task ConcurrentBatchesWithSameKeys_EachTouchRecordedOnce()
    {
        var contacts = new List<Guid>();
        for (var i = 0; i < 20; i++)
        {
            contacts.Add(await Db.CreateContactAsync(_tenant, _account, $"c{i}"));
        }

        var touches = contacts.Select((c, i) => Touch(c, "email", at: s_now.AddMinutes(-i), key: $"c-{i}")).ToArray();

        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => RecordAsync(TouchMode.Refuse, touches))));

        Assert.Equal(20, results.SelectMany(r => r).Count(o => o.Outcome == "recorded"));
        Assert.Equal(20L, await Db.ScalarAsync("select sum(touch_count) from public.engagement_clocks where tenant_id = $1 and entity_id = any($2)", _tenant, contacts.ToArray()));
    }

    [Fact]
    public async Task NewlyOverdue_CountsClocksThatFellDueSinceAndAreStillOverdue()
    {
        var fresh = await Db.CreateContactAsync(_tenant, _account, "Samir");
        var touchedSince = await Db.CreateContactAsync(_tenant, _account, "Michael");
        await Db.ExecuteAsProductAsync("update public.engagement_clocks set next_touch_due = $2 where tenant_id = $1 and entity_id = any($3)",
            _tenant, s_now.AddMinutes(-30), new[] { fresh, touchedSince });
        await RecordAsync(TouchMode.Refuse, Touch(touchedSince, "email", at: s_now.AddMinutes(-1)));

        // The first contact and the account fell due long ago; Samir within the hour; Michael did too but was touched.
        Assert.Equal(1L, (await MovementAsync(s_now.AddHours(-1))).NewlyOverdue);
    }

    [Fact]
    public async Task UserOfOtherTenant_Denied_NothingWritten()
    {
        var stranger = await Db.AddMemberAsync(await Db.CreateTenantAsync());
        var before = await DigestAsync();

        var error = await Assert.ThrowsAsync<PostgresException>(() => Db.AsUserAsync(stranger, (c, t) =>
            TestDb.ScalarAsync(c, t, "select count(*) from public.record_touches($1, $2::jsonb)", _tenant,
                new JsonArray(Touch(_contact, "email")).ToJsonString())));

        Assert.Equal("42501", error.SqlState);
        Assert.Equal(before, await DigestAsync());
    }

    [Fact]
    public async Task MemberOfTenant_RecordsUnderRls()
    {
        var member = await Db.AddMemberAsync(_tenant);

        var recorded = await Db.AsUserAsync(member, (c, t) =>
            TestDb.ScalarAsync(c, t, "select count(*) filter (where outcome = 'recorded') from public.record_touches($1, $2::jsonb)", _tenant,
                new JsonArray(Touch(_contact, "email", at: s_now.AddMinutes(-1))).ToJsonString()));

        Assert.Equal(1L, recorded);
        Assert.Equal("compliant", (await ClockAsync("contact", _contact)).Status);
    }

    [Theory]
    [InlineData("{}", "p_touches must be a JSON array")]
    [InlineData("[]", null)]
    public async Task NotAnArray_ClearError_EmptyArray_NoOp(string json, string? error)
    {
        var call = () => Db.ScalarAsync("select count(*) from public.record_touches($1, $2::jsonb)", _tenant, json);
        if (error is null)
        {
            Assert.Equal(0L, await call());
        }
        else
        {
            Assert.Contains(error, (await Assert.ThrowsAsync<PostgresException>(call)).MessageText, StringComparison.Ordinal);
        }
    }

    private enum TouchMode
    {
        Refuse,
        Skip,
    }

    private static JsonObject Touch(Guid entity, string touchType, DateTimeOffset? at = null, string? key = null, string? by = null, string type = "contact")
    {
        var touch = new JsonObject { ["entity_type"] = type, ["entity_id"] = entity.ToString(), ["touch_type"] = touchType };
        if (at is { } when)
        {
            touch["occurred_at"] = when.ToString("O");
        }

        if (key is not null)
        {
            touch["idempotency_key"] = key;
        }

        if (by is not null)
        {
            touch["touch_by"] = by;
        }

        return touch;
    }

    private Task<IReadOnlyList<TouchOutcome>> RecordAsync(TouchMode mode, params JsonObject[] touches) => RecordAsync(mode, 1_000, touches);

    private async Task<IReadOnlyList<TouchOutcome>> RecordAsync(TouchMode mode, int batchSize, params JsonObject[] touches)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var outcomes = await ImportPipeline.RecordAsync(TouchImportKind.Instance, connection, transaction, _tenant,
            touches.Select((t, i) => new TouchLine(i + 1, t, null)).ToList(),
            mode == TouchMode.Refuse ? ImportErrorMode.Refuse : ImportErrorMode.Skip, batchSize);
        await transaction.CommitAsync();
        return outcomes;
    }

    private async Task<(DateTimeOffset LastTouch, DateTimeOffset NextDue, int Count, string Status, int DaysOverdue, string? TouchType, decimal Priority)> ClockAsync(string type, Guid id)
    {
        await using var command = Db.DataSource.CreateCommand("""
            select last_touch_at, next_touch_due, touch_count, compliance_status, days_overdue, last_touch_type, priority_score
            from public.engagement_clocks where tenant_id = $1 and entity_type = $2 and entity_id = $3
            """);
        command.Parameters.Add(new() { Value = _tenant });
        command.Parameters.Add(new() { Value = type });
        command.Parameters.Add(new() { Value = id });
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return (reader.GetFieldValue<DateTimeOffset>(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetInt32(2), reader.GetString(3),
            reader.GetInt32(4), reader.IsDBNull(5) ? null : reader.GetString(5), reader.GetDecimal(6));
    }

    private async Task<(long NewlyOverdue, long Recovered)> MovementAsync(DateTimeOffset since)
    {
        await using var command = Db.DataSource.CreateCommand("select newly_overdue, recovered from public.engagement_movement($1, $2)");
        command.Parameters.Add(new() { Value = _tenant });
        command.Parameters.Add(new() { Value = since });
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private async Task<Guid> OpenCardAsync(Guid contact) =>
        (Guid)(await Db.ScalarAsync(
            "insert into public.cards (tenant_id, kind, title, entity_type, entity_id) values ($1, 'touch_task', 'call them', 'contact', $2) returning id",
            _tenant, contact))!;

    // Everything a touch can write: clocks, events, cards.
    private async Task<string> DigestAsync() =>
        (string)(await Db.ScalarAsync("""
            select concat_ws('|',
              (select string_agg(concat_ws(',', entity_id, last_touch_at, touch_count, compliance_status, next_touch_due), ';' order by id) from public.engagement_clocks),
              (select count(*) from public.warehouse_events),
              (select string_agg(status, ',' order by id) from public.cards))
            """))!;
}
