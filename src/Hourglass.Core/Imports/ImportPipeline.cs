using System.Globalization;
using System.Runtime.CompilerServices;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.Imports;

/// <summary>
/// The one import pipeline, for every <see cref="IImportKind{TLine, TOutcome}"/>: NDJSON and CSV read into lines
/// numbered as in the file, and lines recorded in batches in the caller's transaction, refused as a whole or the bad
/// ones skipped (docs/imports.md).
/// </summary>
internal static class ImportPipeline
{
    /// <summary>Lines per database call when the caller does not say.</summary>
    public const int DefaultBatchSize = 1_000;

    /// <summary>Reads newline-delimited JSON: one object per line, numbered as in the file; blank lines are skipped.</summary>
    public static async Task<IReadOnlyList<TLine>> ReadNdjsonAsync<TLine, TOutcome>(IImportKind<TLine, TOutcome> kind, TextReader reader,
        CancellationToken cancellationToken = default)
        where TOutcome : ImportOutcome
    {
        var lines = new List<TLine>();
        await foreach (var line in StreamNdjsonAsync(kind, reader, cancellationToken))
        {
            lines.Add(line);
        }

        return lines;
    }

    /// <summary><see cref="ReadNdjsonAsync"/>, line by line as the reader yields them (a file is read while it is written).</summary>
    public static async IAsyncEnumerable<TLine> StreamNdjsonAsync<TLine, TOutcome>(IImportKind<TLine, TOutcome> kind, TextReader reader,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
        where TOutcome : ImportOutcome
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(reader);
        var number = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } text)
        {
            number++;
            if (!string.IsNullOrWhiteSpace(text))
            {
                yield return kind.ReadJson(number, text);
            }
        }
    }

    /// <summary>
    /// Reads CSV (RFC 4180: quoted fields may hold commas, quotes and line breaks) with a header naming the kind's
    /// columns. A bad header refuses the file (<see cref="HourglassException"/> naming its line); a bad record is a
    /// line with its error.
    /// </summary>
    public static async Task<IReadOnlyList<TLine>> ReadCsvAsync<TLine, TOutcome>(IImportKind<TLine, TOutcome> kind, TextReader reader,
        CancellationToken cancellationToken = default)
        where TOutcome : ImportOutcome
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(reader);
        var text = await reader.ReadToEndAsync(cancellationToken);
        var records = CsvText.Records(text).ToList();
        if (records.Count == 0)
        {
            return [];
        }

        var (headerLine, header, headerError) = records[0];
        if (headerError is not null)
        {
            throw new HourglassException($"line {headerLine}: {headerError}");
        }

        var columns = header.Select(h => h.Trim().ToLowerInvariant()).ToList();
        var unknown = columns.Where(c => !kind.CsvColumns.Contains(c)).ToList();
        if (unknown.Count > 0)
        {
            throw new HourglassException(
                $"line {headerLine}: unknown column(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}; the columns are {string.Join(", ", kind.CsvColumns)}");
        }

        if (kind.RequiredCsvColumns.FirstOrDefault(r => !columns.Contains(r)) is { } missing)
        {
            throw new HourglassException($"line {headerLine}: the header has no '{missing}' column");
        }

        var duplicated = columns.GroupBy(c => c).FirstOrDefault(g => g.Count() > 1);
        if (duplicated is not null)
        {
            throw new HourglassException($"line {headerLine}: the column '{duplicated.Key}' appears twice");
        }

        var lines = new List<TLine>(records.Count - 1);
        foreach (var (line, fields, error) in records.Skip(1))
        {
            if (error is not null)
            {
                lines.Add(kind.Unreadable(line, error));
            }
            else if (fields.Count == 1 && fields[0].Length == 0)
            {
                continue; // a blank line
            }
            else if (fields.Count != columns.Count)
            {
                lines.Add(kind.Unreadable(line, string.Create(CultureInfo.InvariantCulture, $"{fields.Count} field(s), but the header has {columns.Count}")));
            }
            else
            {
                lines.Add(kind.ReadCsv(line, columns, fields));
            }
        }

        return lines;
    }

    /// <summary>
    /// Records <paramref name="lines"/> for a tenant in the caller's transaction, in batches of at most
    /// <paramref name="batchSize"/>. In <see cref="ImportErrorMode.Refuse"/> mode any bad line — unreadable here or
    /// rejected by the database — throws <see cref="ImportRefusedException"/> and nothing is written (the batches already
    /// sent are rolled back to a savepoint). In <see cref="ImportErrorMode.Skip"/> mode the valid lines are recorded and
    /// every bad one comes back rejected, with its line number and reason. Outcomes in line order.
    /// </summary>
    public static async Task<IReadOnlyList<TOutcome>> RecordAsync<TLine, TOutcome>(IImportKind<TLine, TOutcome> kind, NpgsqlConnection connection,
        NpgsqlTransaction transaction, Guid tenantId, IReadOnlyList<TLine> lines, ImportErrorMode mode, int batchSize = DefaultBatchSize,
        CancellationToken cancellationToken = default)
        where TOutcome : ImportOutcome
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(lines);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batchSize, kind.MaxBatchSize);
        var outcomes = new List<TOutcome>(lines.Count);
        var valid = new List<TLine>(lines.Count);
        foreach (var line in lines)
        {
            // Checked here: one unreadable line would make the whole batch's jsonb unreadable.
            if (kind.Validate(line) is { } error)
            {
                outcomes.Add(kind.Rejected(kind.LineNumber(line), error));
            }
            else
            {
                valid.Add(line);
            }
        }

        // Refuse: every batch is written in 'skip' mode inside one savepoint; a bad line anywhere (unreadable, or in the
        // last batch as in the first) rolls all of them back, and every bad line is reported. One pass, no separate
        // validation round.
        const string savepoint = "import_batch";
        if (mode == ImportErrorMode.Refuse)
        {
            await transaction.SaveAsync(savepoint, cancellationToken);
        }

        // With no valid line the kind is still called, with none: its checks of the caller (tenant, capability) hold
        // for an empty batch as for any other.
        IEnumerable<TLine[]> chunks = valid.Count == 0 ? [[]] : valid.Chunk(batchSize);
        foreach (var chunk in chunks)
        {
            outcomes.AddRange(await kind.WriteAsync(connection, transaction, tenantId, chunk, cancellationToken));
        }

        if (mode == ImportErrorMode.Refuse)
        {
            var rejected = outcomes.Where(o => o.Outcome == ImportOutcome.Rejected).OrderBy(o => o.LineNumber).ToList();
            if (rejected.Count > 0)
            {
                await transaction.RollbackAsync(savepoint, cancellationToken);
                throw new ImportRefusedException(kind.Records, rejected, lines.Count);
            }

            await transaction.ReleaseAsync(savepoint, cancellationToken);
        }

        return [.. outcomes.OrderBy(o => o.LineNumber)];
    }
}
