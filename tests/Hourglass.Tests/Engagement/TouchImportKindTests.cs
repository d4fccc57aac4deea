using Hourglass.Imports;
using Hourglass.Engagement;

namespace Hourglass.Tests.Engagement;

/// <summary>Reading touch files: every bad line is named by its line number and reason, the rest read.</summary>
public sealed class TouchImportKindTests
{
    [Fact]
    public async Task Ndjson_GoodBadAndBlankLines_LineNumbersFromTheFile()
    {
        const string text = """
            {"entity_type":"contact","entity_id":"6d3c1f4e-0000-4000-8000-000000000001","touch_type":"email"}

            {"entity_type":"contact",
            [1,2]
            {"entity_type":"account","entity_id":"6d3c1f4e-0000-4000-8000-000000000002","touch_type":"call","idempotency_key":"x"}
            """;

        var lines = await ImportPipeline.ReadNdjsonAsync(TouchImportKind.Instance, new StringReader(text));

        Assert.Equal([1, 3, 4, 5], lines.Select(l => l.LineNumber));
        Assert.Equal("email", (string?)lines[0].Touch!["touch_type"]);
        Assert.StartsWith("not valid JSON", lines[1].Error, StringComparison.Ordinal);
        Assert.Equal("not a JSON object", lines[2].Error);
        Assert.Equal("x", (string?)lines[3].Touch!["idempotency_key"]);
    }

    [Fact]
    public async Task Csv_HeaderInAnyOrder_QuotedFieldsWithCommasQuotesAndNewlines()
    {
        const string text = "touch_type,entity_id,entity_type,touch_by,idempotency_key\r\n" +
                            "email,6d3c1f4e-0000-4000-8000-000000000001,contact,\"Sync, Inc.\",\r\n" +
                            "\"call \"\"quick\"\"\nfollow-up\",6d3c1f4e-0000-4000-8000-000000000002,account,,k-2\r\n" +
                            "call,6d3c1f4e-0000-4000-8000-000000000003,contact,bob\r\n";

        var lines = await ImportPipeline.ReadCsvAsync(TouchImportKind.Instance, new StringReader(text));

        Assert.Equal([2, 3, 5], lines.Select(l => l.LineNumber));
        Assert.Equal("Sync, Inc.", (string?)lines[0].Touch!["touch_by"]);
        // An empty optional field is "not given": the default applies.
        Assert.False(lines[0].Touch!.ContainsKey("idempotency_key"));
        Assert.Equal("call \"quick\"\nfollow-up", (string?)lines[1].Touch!["touch_type"]);
        Assert.False(lines[1].Touch!.ContainsKey("touch_by"));
        Assert.Equal("4 field(s), but the header has 5", lines[2].Error);
    }

    [Fact]
    public async Task Csv_UnclosedQuoteAndStrayQuote_NamedByLine()
    {
        const string text = "entity_type,entity_id,touch_type\ncontact,6d3c1f4e-0000-4000-8000-000000000001,em\"ail\ncontact,x,\"never closed\n";

        var lines = await ImportPipeline.ReadCsvAsync(TouchImportKind.Instance, new StringReader(text));

        Assert.Equal((2, "a quote inside an unquoted field (field 3)"), (lines[0].LineNumber, lines[0].Error));
        Assert.Equal((3, "a quoted field is never closed"), (lines[1].LineNumber, lines[1].Error));
    }

    [Theory]
    [InlineData("entity_type,entity_id,touch_type,when\n", "line 1: unknown column(s) 'when'")]
    [InlineData("entity_type,entity_id\n", "line 1: the header has no 'touch_type' column")]
    [InlineData("entity_type,entity_id,touch_type,touch_type\n", "line 1: the column 'touch_type' appears twice")]
    public async Task Csv_BadHeader_RefusedNamingIt(string text, string error)
    {
        var refused = await Assert.ThrowsAsync<HourglassException>(() => ImportPipeline.ReadCsvAsync(TouchImportKind.Instance, new StringReader(text)));

        Assert.StartsWith(error, refused.Message, StringComparison.Ordinal);
    }
}
