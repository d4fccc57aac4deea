using System.Text.Json.Nodes;
using Hourglass.Imports;
using Hourglass.Insights;

namespace Hourglass.Tests.Insights;

/// <summary>
/// Reading event files (every bad line named by its line number and reason, the rest read), and the bulk path's rules,
/// which must say what ingest_events says.
/// </summary>
public sealed class EventImportKindTests
{
    private const string Contact = "6d3c1f4e-0000-4000-8000-000000000001";
    private static readonly DateTime s_now = new(2026, 6, 10, 12, 0, 0, DateTimeKind.Utc);

    [Fact]
    public async Task Ndjson_GoodBadAndBlankLines_LineNumbersFromTheFile_EachBadOneNamedWhenChecked()
    {
        const string text = """
            {"event_type":"reply","entity_type":"contact","entity_id":"6d3c1f4e-0000-4000-8000-000000000001","payload":{"channel":"email"}}

            {"event_type":"reply",
            [1,2]
            {"event_type":"meeting","idempotency_key":"x"} {}
            {"event_type":"meeting","payload":{"a":1,"a":2}}
            {"event_type":"meeting","event_type":"call"}
            {"event_type":"order_placed","idempotency_key":"k-9","source":"erp"}
            """;

        var read = await ImportPipeline.ReadNdjsonAsync(EventImportKind.Instance, new StringReader(text));
        var lines = read.Select(l => EventLine.Parse(l.LineNumber, l.Json!)).ToList();

        Assert.Equal([1, 3, 4, 5, 6, 7, 8], read.Select(l => l.LineNumber));
        Assert.All(read, l => Assert.Null(l.Error));
        Assert.Equal([1, 3, 4, 5, 6, 7, 8], lines.Select(l => l.LineNumber));
        Assert.Null(lines[0].Error);
        Assert.Contains("\"channel\":\"email\"", lines[0].Json, StringComparison.Ordinal);
        Assert.StartsWith("not valid JSON", lines[1].Error, StringComparison.Ordinal);
        Assert.Equal("not a JSON object", lines[2].Error);
        Assert.StartsWith("not valid JSON", lines[3].Error, StringComparison.Ordinal);
        Assert.Equal("not valid JSON (the property 'a' appears twice in payload)", lines[4].Error);
        Assert.Equal("not valid JSON (the property 'event_type' appears twice)", lines[5].Error);
        Assert.Null(lines[6].Error);
        Assert.All(lines.Where(l => l.Error is not null), l => Assert.Null(l.Json));
    }

    [Theory]
    [InlineData("""{"event_type":"x\u0000y"}""")]
    [InlineData("""{"event_type":"x","payload":{"note":"a\u0000"}}""")]
    [InlineData("""{"event_type":"x","payload":{"a\u0000":1}}""")]
    public void Parse_NulCharacter_RefusedAsUnstorable(string json)
    {
        Assert.Equal("a string holds the character U+0000, which PostgreSQL cannot store", EventLine.Parse(1, json).Error);
    }

    [Fact]
    public void Parse_UnpairedSurrogateEscape_Refused_EscapedBackslashBeforeU0000_Accepted()
    {
        Assert.Equal("not valid JSON (a string with an unpaired surrogate)", EventLine.Parse(1, """{"event_type":"x\ud800"}""").Error);
        // "\\u0000" is a backslash followed by u0000: plain text, not the NUL character.
        Assert.Null(EventLine.Parse(1, """{"event_type":"x","payload":{"path":"C:\\u0000"}}""").Error);
    }

    [Fact]
    public void FromObject_CodeBuiltEvent_ReadLikeAFileLine()
    {
        var line = EventLine.FromObject(4, new JsonObject { ["event_type"] = "reply", ["payload"] = new JsonObject { ["n"] = 1 } });

        Assert.Equal((4, null), (line.LineNumber, line.Error));
        Assert.Equal("""{"event_type":"reply","payload":{"n":1}}""", line.Json);
    }

    [Fact]
    public async Task Csv_HeaderInAnyOrder_QuotedPayloadWithCommasQuotesAndNewlines()
    {
        const string text = "source,event_type,entity_id,entity_type,payload,idempotency_key\r\n" +
                            $"erp,order_placed,{Contact},contact,\"{{\"\"total\"\": 12.5, \"\"note\"\": \"\"a, b\"\"}}\",k-1\r\n" +
                            "\"email-sync\",\"reply\nlate\",,,,\r\n" +
                            "api,meeting,,\r\n";

        var lines = await ImportPipeline.ReadCsvAsync(EventImportKind.Instance, new StringReader(text));

        Assert.Equal([2, 3, 5], lines.Select(l => l.LineNumber));
        var first = JsonNode.Parse(lines[0].Json!)!.AsObject();
        Assert.Equal(12.5m, (decimal)first["payload"]!["total"]!);
        Assert.Equal("a, b", (string?)first["payload"]!["note"]);
        Assert.Equal(("order_placed", "erp", "k-1"), ((string?)first["event_type"], (string?)first["source"], (string?)first["idempotency_key"]));
        // An empty optional field is "not given": the default applies.
        var second = JsonNode.Parse(lines[1].Json!)!.AsObject();
        Assert.Equal(["source", "event_type"], second.Select(p => p.Key));
        Assert.Equal("reply\nlate", (string?)second["event_type"]);
        Assert.Equal("4 field(s), but the header has 6", lines[2].Error);
    }

    [Theory]
    [InlineData("event_type,payload\nreply,{not json}\n", "payload is not valid JSON", null)]
    [InlineData("event_type,payload\nreply,\"[1,2]\"\n", null, "payload must be a JSON object (got array)")]
    [InlineData("event_type,occurred_at\n,2025-12-01T09:30:00Z\n", null, "event_type is required (1-100 characters)")]
    public async Task Csv_PayloadMustBeJson_EmptyEventTypeKeptToBeNamed(string text, string? readError, string? ruleError)
    {
        var line = (await ImportPipeline.ReadCsvAsync(EventImportKind.Instance, new StringReader(text))).Single();

        Assert.Equal(2, line.LineNumber);
        if (readError is not null)
        {
            Assert.StartsWith(readError, line.Error, StringComparison.Ordinal);
            return;
        }

        // Readable: the rules name what is wrong, as ingest_events would.
        var (fields, error) = EventFields.Read(line.Json!);
        Assert.Null(error);
        Assert.Equal(ruleError, EventRules.Check(fields!, s_now, 300).Error);
    }

    [Fact]
    public async Task Csv_UnclosedQuoteAndStrayQuote_NamedByLine()
    {
        const string text = "event_type,source\nrep\"ly,api\nreply,\"never closed\n";

        var lines = await ImportPipeline.ReadCsvAsync(EventImportKind.Instance, new StringReader(text));

        Assert.Equal((2, "a quote inside an unquoted field (field 1)"), (lines[0].LineNumber, lines[0].Error));
        Assert.Equal((3, "a quoted field is never closed"), (lines[1].LineNumber, lines[1].Error));
    }

    [Theory]
    [InlineData("event_type,tenant_id\n", "line 1: unknown column(s) 'tenant_id'")]
    [InlineData("entity_type,entity_id\n", "line 1: the header has no 'event_type' column")]
    [InlineData("event_type,source,source\n", "line 1: the column 'source' appears twice")]
    public async Task Csv_BadHeader_RefusedNamingIt(string text, string error)
    {
        var refused = await Assert.ThrowsAsync<HourglassException>(() => ImportPipeline.ReadCsvAsync(EventImportKind.Instance, new StringReader(text)));

        Assert.StartsWith(error, refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"event_type":"x","tenant_id":"t","Zed":1}""",
        "unknown field(s) 'Zed', 'tenant_id' (the fields are event_type, entity_type, entity_id, payload, occurred_at, idempotency_key, source)")]
    [InlineData("""{"event_type":"x","source":5,"entity_id":true}""", "entity_id must be a string (got boolean)")]
    [InlineData("""{"event_type":"x","payload":"{}"}""", "payload must be a JSON object (got string)")]
    [InlineData("""{"event_type":"   "}""", "event_type is required (1-100 characters)")]
    [InlineData("""{"entity_type":"contact"}""", "event_type is required (1-100 characters)")]
    [InlineData("""{"event_type":"x","entity_type":"lead","entity_id":"6d3c1f4e-0000-4000-8000-000000000001"}""",
        "entity_type must be 'contact', 'account', 'order' or 'tenant' (got 'lead')")]
    [InlineData("""{"event_type":"x","entity_id":"6d3c1f4e-0000-4000-8000-000000000001"}""", "entity_id is given without an entity_type")]
    [InlineData("""{"event_type":"x","entity_type":"order"}""", "entity_id must be a uuid (got nothing)")]
    [InlineData("""{"event_type":"x","entity_type":"order","entity_id":" 6d3c1f4e-0000-4000-8000-00000000001"}""",
        "entity_id must be a uuid (got ' 6d3c1f4e-0000-4000-8000-00000000001')")]
    [InlineData("""{"event_type":"x","source":""}""", "source must be 1-100 characters")]
    [InlineData("""{"event_type":"x","occurred_at":"2025-02-29T10:00:00Z"}""",
        "occurred_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2025-12-01T09:30:00Z (got '2025-02-29T10:00:00Z')")]
    [InlineData("""{"event_type":"x","occurred_at":"2025-12-01T09:30:00"}""",
        "occurred_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2025-12-01T09:30:00Z (got '2025-12-01T09:30:00')")]
    [InlineData("""{"event_type":"x","idempotency_key":" "}""", "idempotency_key must be 1-200 characters")]
    public void Check_BadField_NamedAsIngestEventsNamesIt(string json, string error)
    {
        var (fields, readError) = EventFields.Read(json);
        Assert.Null(readError);

        var (row, ruleError, _) = EventRules.Check(fields!, s_now, 300);

        Assert.Null(row);
        Assert.Equal(error, ruleError);
    }

    [Theory]
    [InlineData("2026-06-10T12:05:00Z", null)]
    [InlineData("2026-06-10T12:05:01Z", "occurred_at '2026-06-10T12:05:01Z' is in the future (more than 300 seconds ahead of the database clock)")]
    [InlineData("2026-06-10T14:05:01+02:00", "occurred_at '2026-06-10T14:05:01+02:00' is in the future (more than 300 seconds ahead of the database clock)")]
    [InlineData("1970-01-01T00:30:00+01:00", "occurred_at '1970-01-01T00:30:00+01:00' is before 1970")]
    [InlineData("9999-12-31T23:59:59-15:59", "occurred_at '9999-12-31T23:59:59-15:59' is in the future (more than 300 seconds ahead of the database clock)")]
    public void Check_TimeOutsideBounds_ErrorRanksBehindEntityChecks(string occurredAt, string? timeError)
    {
        var (fields, _) = EventFields.Read($$"""{"event_type":"x","occurred_at":"{{occurredAt}}"}""");

        var (row, error, time) = EventRules.Check(fields!, s_now, 300);

        Assert.Null(error);
        Assert.Equal(timeError, time);
        Assert.NotNull(row);
    }

    [Theory]
    [InlineData("2025-12-01T09:30:00Z", "2025-12-01T09:30:00.0000000Z")]
    [InlineData("2025-12-01 09:30Z", "2025-12-01T09:30:00.0000000Z")]
    [InlineData("2025-12-01T09:30:00.1234567+0530", "2025-12-01T04:00:00.1234570Z")]
    [InlineData("2024-02-29T23:59:59.9999996-01", "2024-03-01T01:00:00.0000000Z")]
    [InlineData("2025-12-01T09:30:00.5z", "2025-12-01T09:30:00.5000000Z")]
    [InlineData("2025-12-01T00:00:00+15:59", "2025-11-30T08:01:00.0000000Z")]
    public void TryParseTimestamp_AcceptedForms_AsPostgresReadsThem(string text, string utc)
    {
        Assert.True(EventRules.TryParseTimestamp(text, out var ticks));
        Assert.Equal(utc, new DateTime(ticks, DateTimeKind.Utc).ToString("O", System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData("2025-13-01T09:30:00Z")]
    [InlineData("2023-02-29T09:30:00Z")]
    [InlineData("2100-02-29T09:30:00Z")]
    [InlineData("0000-01-01T00:00:00Z")]
    [InlineData("2025-12-01T24:00:00Z")]
    [InlineData("2025-12-01T09:30:60Z")]
    [InlineData("2025-12-01T09:30:00+16:00")]
    [InlineData("2025-12-01T09:30:00.Z")]
    [InlineData("2025-12-01T09:30:00.1234567890Z")]
    [InlineData("2025-12-01T09:30.5Z")]
    [InlineData("2025-12-01t09:30:00Z")]
    [InlineData("2025-12-01T09:30:00+1:00")]
    [InlineData("2025-12-01T09:30:00 +01:00")]
    [InlineData("２０２５-12-01T09:30:00Z")]
    public void TryParseTimestamp_RejectedForms(string text)
    {
        Assert.False(EventRules.TryParseTimestamp(text, out _));
    }

    [Fact]
    public void SameEvent_PayloadComparedAsJsonbComparesIt_TimeOnlyWhenTheLaterLineGivesOne()
    {
        var first = Row("""{"a":1,"b":[1,2]}""", explicitTime: true);

        Assert.True(EventRules.SameEvent(first, Row("""{"b":[1,2],"a":1.0}""", explicitTime: true)));
        Assert.False(EventRules.SameEvent(first, Row("""{"a":1,"b":[2,1]}""", explicitTime: true)));
        Assert.True(EventRules.SameEvent(first, Row("""{"a":1,"b":[1,2]}""", explicitTime: false) with { OccurredAt = s_now.AddHours(1) }));
        Assert.False(EventRules.SameEvent(first, Row("""{"a":1,"b":[1,2]}""", explicitTime: true) with { OccurredAt = s_now.AddHours(1) }));
    }

    [Theory]
    [InlineData("""{"event_type":"reply","payload":{"subject":"Re: TPS","n":1}}""", """{"subject":"Re: TPS","n":1}""")]
    [InlineData("""{"event_type":"réponse","payload":{"sujet":"Ré: café ☕","n":1},"source":"ü"}""", """{"sujet":"Ré: café ☕","n":1}""")]
    [InlineData("""{"event_type":"😀","payload": { "a" : [ 1, {"b":"😀"} ] } }""", """{ "a" : [ 1, {"b":"😀"} ] }""")]
    public void Read_PayloadTextAsGiven_AsciiOrNot(string json, string payload)
    {
        var (fields, error) = EventFields.Read(json);

        Assert.Null(error);
        Assert.Equal(payload, fields!.PayloadJson.ToString());
    }

    [Fact]
    public void EventIds_Version7_IncreasingWithinTheBatch_UniqueAcrossBatches()
    {
        var first = EventIds.Create(70_000, s_now);
        var second = EventIds.Create(70_000, s_now);

        Assert.All(first.Take(100), id => Assert.Equal((7, 2), (id.Version, id.Variant >> 2)));
        // Increasing as PostgreSQL orders uuids: byte by byte, big-endian.
        Assert.True(first.Zip(first.Skip(1)).All(p => BigEndian(p.First).AsSpan().SequenceCompareTo(BigEndian(p.Second)) < 0));
        Assert.Equal(s_now, DateTimeOffset.FromUnixTimeMilliseconds(BitConverter.ToInt64([.. BigEndian(first[^1])[..6].Reverse(), 0, 0])).UtcDateTime);
        Assert.Equal(140_000, first.Concat(second).Distinct().Count());
        // A batch's next chunk continues the counter.
        Assert.True(BigEndian(first[^1]).AsSpan().SequenceCompareTo(BigEndian(EventIds.Create(1, s_now, 70_000)[0])) < 0);
    }

    [Theory]
    [InlineData("it's", "'it''s'")]
    [InlineData(@"C:\x", @"E'C:\\x'")]
    public void Literal_AsQuoteLiteral(string value, string literal) => Assert.Equal(literal, EventRules.Literal(value));

    private static EventRow Row(string payload, bool explicitTime) =>
        new("reply", "contact", Guid.Parse(Contact), payload.AsMemory(), "api", s_now, explicitTime, "k");

    private static byte[] BigEndian(Guid id) => id.ToByteArray(bigEndian: true);
}
