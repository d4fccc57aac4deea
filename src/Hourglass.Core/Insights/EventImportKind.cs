using System.Buffers;
using System.Text;
using System.Text.Json;
using Hourglass.Imports;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Insights;

/// <summary>
/// Events as an import kind (docs/imports.md): a line is the event's JSON text, checked when it is recorded; the write
/// is <c>public.ingest_events</c>, under the caller's role and row-level security — the path of a member's session,
/// the CLI and the API. The trusted bulk path for large files is <see cref="EventIngestion.BulkAsync(NpgsqlConnection, NpgsqlTransaction, Guid, IReadOnlyList{EventLine}, ImportErrorMode, CancellationToken)"/>.
/// </summary>
internal sealed class EventImportKind : IImportKind<EventLine, EventOutcome>
{
    /// <summary>The one instance: the kind holds no state.</summary>
    public static readonly EventImportKind Instance = new();

    private EventImportKind()
    {
    }

    public string Records => "events";

    public string Counted => "event(s)";

    public int MaxBatchSize => EventIngestion.MaxBatchSize;

    public IReadOnlyList<string> CsvColumns => EventIngestion.CsvColumns;

    public IReadOnlyList<string> RequiredCsvColumns { get; } = ["event_type"];

    // Checked when it is recorded (on the bulk path, while the lines before are written), not here.
    public EventLine ReadJson(int lineNumber, string json) => new(lineNumber, json, null);

    // One CSV record as the JSON object the other paths read. An empty optional field is left out (the default
    // applies); an empty event_type stays, to be named. The payload goes in as the JSON it is, or the line is refused.
    public EventLine ReadCsv(int lineNumber, IReadOnlyList<string> columns, IReadOnlyList<string> fields)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            for (var i = 0; i < columns.Count; i++)
            {
                if (fields[i].Length == 0 && columns[i] != "event_type")
                {
                    continue;
                }

                if (columns[i] != "payload")
                {
                    writer.WriteString(columns[i], fields[i]);
                    continue;
                }

                try
                {
                    writer.WritePropertyName("payload");
                    writer.WriteRawValue(fields[i]);
                }
                catch (JsonException ex)
                {
                    return new EventLine(lineNumber, null, $"payload is not valid JSON ({EventIngestion.JsonError(ex)})");
                }
            }

            writer.WriteEndObject();
        }

        return new EventLine(lineNumber, Encoding.UTF8.GetString(buffer.WrittenSpan), null);
    }

    public EventLine Unreadable(int lineNumber, string error) => new(lineNumber, null, error);

    public int LineNumber(EventLine line) => line.LineNumber;

    public string? Validate(EventLine line) => line.Error ?? (line.Json is null ? "unreadable" : EventFields.Read(line.Json).Error);

    public EventOutcome Rejected(int lineNumber, string error) => new(lineNumber, ImportOutcome.Rejected, null, null, error);

    public async Task<IReadOnlyList<EventOutcome>> WriteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        IReadOnlyList<EventLine> lines, CancellationToken cancellationToken)
    {
        // The lines' own JSON, joined: nothing is parsed or written again on the way.
        var array = new StringBuilder(lines.Sum(l => l.Json!.Length + 1) + 2).Append('[');
        for (var i = 0; i < lines.Count; i++)
        {
            array.Append(i == 0 ? "" : ",").Append(lines[i].Json);
        }

        var outcomes = new List<EventOutcome>(lines.Count);
        foreach (var (line, outcome, eventId, key, error) in await InsightsStore.IngestEventsAsync(connection, transaction, tenantId,
                     array.Append(']').ToString(), cancellationToken))
        {
            outcomes.Add(new EventOutcome(lines[line - 1].LineNumber, outcome, eventId, key, error));
        }

        return outcomes;
    }
}
