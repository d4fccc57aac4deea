using Npgsql;

namespace Hourglass.Imports;

/// <summary>
/// One kind of record the product accepts in batches (events, touches; accounts, contacts and orders next). The kind
/// says how one line reads and what a bad one is; <see cref="ImportPipeline"/> does the rest the same way for every
/// kind: the NDJSON and CSV readers, bad lines named by number, refuse or skip, the batch written atomically, one
/// outcome per line. See docs/imports.md.
/// </summary>
/// <typeparam name="TLine">One line as the kind holds it until it is written (read, or why it could not be).</typeparam>
/// <typeparam name="TOutcome">What became of one line.</typeparam>
internal interface IImportKind<TLine, TOutcome>
    where TOutcome : ImportOutcome
{
    /// <summary>What the records are called in messages, plural ("events").</summary>
    string Records { get; }

    /// <summary>How a count of them is written in a summary ("event(s)").</summary>
    string Counted { get; }

    /// <summary>The most lines one <see cref="WriteAsync"/> call takes.</summary>
    int MaxBatchSize { get; }

    /// <summary>The columns a CSV file may have; a header line names them, in any order.</summary>
    IReadOnlyList<string> CsvColumns { get; }

    /// <summary>The columns a CSV header must name.</summary>
    IReadOnlyList<string> RequiredCsvColumns { get; }

    /// <summary>One NDJSON line (never blank). A line that cannot be read carries its error, to be rejected by number.</summary>
    TLine ReadJson(int lineNumber, string json);

    /// <summary>One CSV record, its fields in the header's order (as many as there are columns).</summary>
    TLine ReadCsv(int lineNumber, IReadOnlyList<string> columns, IReadOnlyList<string> fields);

    /// <summary>A line the reader could not read, with why.</summary>
    TLine Unreadable(int lineNumber, string error);

    /// <summary>The line's number in its file or batch.</summary>
    int LineNumber(TLine line);

    /// <summary>Why the line cannot be sent to the database at all (it could not be read), or null.</summary>
    string? Validate(TLine line);

    /// <summary>The outcome of a line rejected before it reached the database.</summary>
    TOutcome Rejected(int lineNumber, string error);

    /// <summary>
    /// Writes valid lines (at most <see cref="MaxBatchSize"/>) for a tenant in the caller's transaction, each line
    /// judged alone: a bad one comes back rejected and the rest are written (the pipeline rolls back when the batch
    /// is refused). One outcome per line, numbered as the lines are.
    /// </summary>
    Task<IReadOnlyList<TOutcome>> WriteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId, IReadOnlyList<TLine> lines,
        CancellationToken cancellationToken);
}
