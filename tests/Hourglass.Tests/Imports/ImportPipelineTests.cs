using System.Text;
using System.Text.Json;
using Hourglass.Imports;
using Npgsql;

namespace Hourglass.Tests.Imports;

/// <summary>
/// The pipeline's reading, for any kind: a kind made up here (notes, which no part has) gets line numbers, the CSV
/// header's checks and the outcome's JSON from the pipeline alone — what a new kind (accounts, contacts, orders) gets
/// without code of its own. Writing is tested against PostgreSQL (IntegrationTests/Imports/ImportPipelineTests).
/// </summary>
public sealed class ImportPipelineTests
{
    [Fact]
    public async Task Ndjson_LinesNumberedAsInTheFile_BlankLinesSkipped()
    {
        var lines = await ImportPipeline.ReadNdjsonAsync(NoteKind.Instance, new StringReader("{\"title\":\"a\"}\n\n   \n{\"title\":\"b\"}\n"));

        Assert.Equal([(1, "{\"title\":\"a\"}"), (4, "{\"title\":\"b\"}")], lines.Select(l => (l.LineNumber, l.Text)));
    }

    [Theory]
    [InlineData("title,colour\na,b\n", "line 1: unknown column(s) 'colour'; the columns are title, body, idempotency_key")]
    [InlineData("body\nb\n", "line 1: the header has no 'title' column")]
    [InlineData("title,body,TITLE\na,b,c\n", "line 1: the column 'title' appears twice")]
    public async Task Csv_BadHeader_FileRefusedNamingItsLine(string text, string message)
    {
        var refused = await Assert.ThrowsAsync<HourglassException>(() => ImportPipeline.ReadCsvAsync(NoteKind.Instance, new StringReader(text)));

        Assert.Equal(message, refused.Message);
    }

    [Fact]
    public async Task Csv_RecordsInTheHeadersOrder_WrongFieldCountUnreadableByNumber()
    {
        const string text = "body,title\n\"two\nlines\",first\n\nonly-one\nx,last\n";

        var lines = await ImportPipeline.ReadCsvAsync(NoteKind.Instance, new StringReader(text));

        Assert.Equal([2, 5, 6], lines.Select(l => l.LineNumber));
        Assert.Equal("title=first|body=two\nlines", lines[0].Text);
        Assert.Equal(("1 field(s), but the header has 2", null), (lines[1].Error, lines[1].Text));
        Assert.Equal("title=last|body=x", lines[2].Text);
    }

    [Fact]
    public void Outcome_WrittenInTheFunctionsColumns_KindsOwnBetween()
    {
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            new NoteOutcome(3, ImportOutcome.Rejected, null, "k-3", "title is required").WriteTo(writer);
        }

        Assert.Equal("""{"line":3,"outcome":"rejected","note_id":null,"idempotency_key":"k-3","error":"title is required"}""",
            Encoding.UTF8.GetString(buffer.ToArray()));
    }

    private sealed record NoteLine(int LineNumber, string? Text, string? Error);

    private sealed record NoteOutcome(int LineNumber, string Outcome, Guid? NoteId, string? IdempotencyKey, string? Error)
        : ImportOutcome(LineNumber, Outcome, IdempotencyKey, Error)
    {
        protected override void WriteKindColumns(Utf8JsonWriter writer)
        {
            if (NoteId is { } id)
            {
                writer.WriteString("note_id", id);
            }
            else
            {
                writer.WriteNull("note_id");
            }
        }
    }

    // A kind with no database behind it: reading only.
    private sealed class NoteKind : IImportKind<NoteLine, NoteOutcome>
    {
        public static readonly NoteKind Instance = new();

        public string Records => "notes";

        public string Counted => "note(s)";

        public int MaxBatchSize => 10;

        public IReadOnlyList<string> CsvColumns { get; } = ["title", "body", "idempotency_key"];

        public IReadOnlyList<string> RequiredCsvColumns { get; } = ["title"];

        public NoteLine ReadJson(int lineNumber, string json) => new(lineNumber, json, null);

        public NoteLine ReadCsv(int lineNumber, IReadOnlyList<string> columns, IReadOnlyList<string> fields) =>
            new(lineNumber, string.Join('|', new[] { "title", "body" }.Where(columns.Contains).Select(c => $"{c}={fields[columns.ToList().IndexOf(c)]}")), null);

        public NoteLine Unreadable(int lineNumber, string error) => new(lineNumber, null, error);

        public int LineNumber(NoteLine line) => line.LineNumber;

        public string? Validate(NoteLine line) => line.Error;

        public NoteOutcome Rejected(int lineNumber, string error) => new(lineNumber, ImportOutcome.Rejected, null, null, error);

        public Task<IReadOnlyList<NoteOutcome>> WriteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
            IReadOnlyList<NoteLine> lines, CancellationToken cancellationToken) => throw new NotSupportedException("reading only");
    }
}
