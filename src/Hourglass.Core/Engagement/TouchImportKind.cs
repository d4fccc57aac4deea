using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.Imports;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement;

/// <summary>
/// Touches from outside systems as an import kind (docs/imports.md): a line is read into its JSON object at once (a
/// bad one named by its number), and the batch is written by <c>public.record_touches</c>, which checks every line
/// against the tenant's data, honours idempotency keys and each touch's own time, and writes set-based. See
/// docs/engagement.md.
/// </summary>
internal sealed class TouchImportKind : IImportKind<TouchLine, TouchOutcome>
{
    /// <summary>The most touches one <c>record_touches</c> call takes.</summary>
    public const int MaxBatch = 10_000;

    /// <summary>The one instance: the kind holds no state.</summary>
    public static readonly TouchImportKind Instance = new();

    private static readonly string[] s_required = ["entity_type", "entity_id", "touch_type"];

    private TouchImportKind()
    {
    }

    public string Records => "touches";

    public string Counted => "touch(es)";

    public int MaxBatchSize => MaxBatch;

    /// <summary>entity_type, entity_id and touch_type are required.</summary>
    public IReadOnlyList<string> CsvColumns { get; } = ["entity_type", "entity_id", "touch_type", "touch_by", "occurred_at", "idempotency_key", "source"];

    public IReadOnlyList<string> RequiredCsvColumns => s_required;

    public TouchLine ReadJson(int lineNumber, string json)
    {
        try
        {
            // Text PostgreSQL cannot store (U+0000) is this line's error here: sent on, its jsonb would refuse the batch.
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            return root.ValueKind != JsonValueKind.Object ? new TouchLine(lineNumber, null, "not a JSON object")
                : StorableText.Find(root) is var (path, problem) ? new TouchLine(lineNumber, null, $"{path}: {problem}")
                : new TouchLine(lineNumber, JsonObject.Create(root.Clone())!, null);
        }
        catch (JsonException ex)
        {
            return new TouchLine(lineNumber, null, $"not valid JSON ({ex.Message.Split(" LineNumber", 2)[0].TrimEnd('.')})");
        }
    }

    public TouchLine ReadCsv(int lineNumber, IReadOnlyList<string> columns, IReadOnlyList<string> fields)
    {
        if (fields.Select((f, i) => (Column: columns[i], Problem: StorableText.Problem(f))).FirstOrDefault(f => f.Problem is not null) is { Problem: { } problem } bad)
        {
            return new TouchLine(lineNumber, null, $"{bad.Column}: {problem}");
        }

        var touch = new JsonObject();
        for (var i = 0; i < columns.Count; i++)
        {
            // An empty optional field means "not given" (the default applies); an empty required one stays, to be named.
            if (fields[i].Length > 0 || s_required.Contains(columns[i]))
            {
                touch[columns[i]] = fields[i];
            }
        }

        return new TouchLine(lineNumber, touch, null);
    }

    public TouchLine Unreadable(int lineNumber, string error) => new(lineNumber, null, error);

    public int LineNumber(TouchLine line) => line.LineNumber;

    public string? Validate(TouchLine line) => line.Touch is null ? line.Error ?? "unreadable" : null;

    public TouchOutcome Rejected(int lineNumber, string error) => new(lineNumber, ImportOutcome.Rejected, null, null, null, error);

    public async Task<IReadOnlyList<TouchOutcome>> WriteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        IReadOnlyList<TouchLine> lines, CancellationToken cancellationToken)
    {
        var array = new JsonArray(lines.Select(l => (JsonNode)l.Touch!.DeepClone()).ToArray());
        var outcomes = new List<TouchOutcome>(lines.Count);
        foreach (var row in await EngagementStore.RecordTouchesAsync(connection, transaction, tenantId, array.ToJsonString(), cancellationToken))
        {
            outcomes.Add(new TouchOutcome(lines[row.Line - 1].LineNumber, row.Outcome, row.EntityType, row.EntityId, row.IdempotencyKey, row.Error));
        }

        return outcomes;
    }
}
