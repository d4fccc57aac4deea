using Hourglass.Engagement;
using Hourglass.Imports;
using Hourglass.Insights;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Imports;

/// <summary>
/// The import pipeline's contract, held by every kind alike (docs/imports.md): bad lines named by their number in the
/// file, nothing half-written when a batch is refused (batches already sent included), skip mode recording the valid
/// rest, idempotency keys honoured within a batch and across batches, and the kind's batch limit. Each kind's own rules
/// are tested beside it (EventIngestionTests, TouchBatchTests).
/// </summary>
public sealed class ImportPipelineTests : DatabaseTest
{
    private Guid _tenant;
    private Guid _contact;

    public static TheoryData<string> Kinds => new() { "events", "touches" };

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync("Contract Co");
        _contact = await Db.CreateContactAsync(_tenant, await Db.CreateAccountAsync(_tenant, "Initech"), "Pat Doe");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Refuse_BadLinesNamedByNumber_NothingWrittenAcrossBatches(string kind)
    {
        // Line 2 is blank (skipped, still counted), 3 unreadable, 4 names a contact not in the tenant; batches of one,
        // so lines 1 and 5 were each written by a call of their own before the refusal.
        var text = string.Join('\n', Good(kind, "k1"), "", """{"not": "closed" """, Good(kind, "k4", Guid.NewGuid()), Good(kind, "k5"));

        var refused = await Assert.ThrowsAsync<ImportRefusedException>(() => RunAsync(kind, text, ImportErrorMode.Refuse, batchSize: 1));

        Assert.Equal([3, 4], refused.Rejected.Select(r => r.LineNumber));
        Assert.StartsWith("not valid JSON", refused.Rejected[0].Error, StringComparison.Ordinal);
        Assert.EndsWith("does not exist in this tenant", refused.Rejected[1].Error, StringComparison.Ordinal);
        Assert.StartsWith($"2 of 4 {kind} rejected, nothing recorded: line 3: not valid JSON", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await WrittenAsync());
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Skip_ValidLinesRecorded_BadOnesReturnedByNumber(string kind)
    {
        var text = string.Join('\n', Good(kind, "k1"), "", """{"not": "closed" """, Good(kind, "k4", Guid.NewGuid()), Good(kind, "k5"));

        var outcomes = await RunAsync(kind, text, ImportErrorMode.Skip, batchSize: 2);

        Assert.Equal([(1, "recorded"), (3, "rejected"), (4, "rejected"), (5, "recorded")], outcomes.Select(o => (o.LineNumber, o.Outcome)));
        Assert.Equal(["k1", "k5"], outcomes.Where(o => o.Outcome == ImportOutcome.Recorded).Select(o => o.IdempotencyKey));
        Assert.Equal(2L, await WrittenAsync());
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task SameKeyAgain_DuplicateInTheBatchAndAcrossBatches_WrittenOnce(string kind)
    {
        var line = Good(kind, "k1");

        var first = await RunAsync(kind, line + "\n" + line, ImportErrorMode.Refuse);
        var again = await RunAsync(kind, line, ImportErrorMode.Refuse);

        Assert.Equal(["recorded", "duplicate"], first.Select(o => o.Outcome));
        Assert.Equal("duplicate", again.Single().Outcome);
        Assert.Equal(1L, await WrittenAsync());
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task BatchSizeBeyondTheKindsLimit_RefusedBeforeAnythingIsSent(string kind)
    {
        var max = kind == "events" ? EventImportKind.Instance.MaxBatchSize : TouchImportKind.Instance.MaxBatchSize;

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => RunAsync(kind, Good(kind, "k1"), ImportErrorMode.Skip, batchSize: max + 1));

        Assert.Equal(0L, await WrittenAsync());
    }

    // One line the database accepts (on the tenant's contact, or on the one given).
    private string Good(string kind, string key, Guid? contact = null) => kind == "events"
        ? $$"""{"event_type": "contract_checked", "entity_type": "contact", "entity_id": "{{contact ?? _contact}}", "idempotency_key": "{{key}}", "occurred_at": "2025-12-01T09:30:00Z"}"""
        : $$"""{"entity_type": "contact", "entity_id": "{{contact ?? _contact}}", "touch_type": "email", "idempotency_key": "{{key}}", "occurred_at": "2025-12-01T09:30:00Z"}""";

    private Task<IReadOnlyList<ImportOutcome>> RunAsync(string kind, string ndjson, ImportErrorMode mode, int batchSize = ImportPipeline.DefaultBatchSize) =>
        kind == "events"
            ? RunAsync(EventImportKind.Instance, ndjson, mode, batchSize)
            : RunAsync(TouchImportKind.Instance, ndjson, mode, batchSize);

    // The file read and recorded as every caller does it: one transaction, committed when the pipeline returns.
    private async Task<IReadOnlyList<ImportOutcome>> RunAsync<TLine, TOutcome>(IImportKind<TLine, TOutcome> kind, string ndjson, ImportErrorMode mode, int batchSize)
        where TOutcome : ImportOutcome
    {
        var lines = await ImportPipeline.ReadNdjsonAsync(kind, new StringReader(ndjson));
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var outcomes = await ImportPipeline.RecordAsync(kind, connection, transaction, _tenant, lines, mode, batchSize);
        await transaction.CommitAsync();
        return outcomes;
    }

    // Both kinds leave one event per recorded line (a touch is logged as a 'touch' event).
    private async Task<long> WrittenAsync() =>
        (long)(await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and idempotency_key like 'k%'", _tenant))!;
}
