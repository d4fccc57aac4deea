using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Storage;

/// <summary>
/// What every store's bulk load repeats: rows written by one binary <c>COPY … from stdin</c> on the caller's connection
/// (and so inside its open transaction). COPY fires the tables' row triggers as an insert does
/// (https://www.postgresql.org/docs/current/sql-copy.html, "COPY FROM will invoke any triggers"), so what the schema
/// derives from a row (a contact's engagement clock, a tenant's schedule and roles, an order's queue entry) is derived
/// just the same.
/// </summary>
internal static class BulkCopy
{
    /// <summary>
    /// Writes <paramref name="rows"/> with <paramref name="copy"/> (a <c>copy t (columns) from stdin (format binary)</c>),
    /// each row's <paramref name="values"/> typed in column order by <paramref name="types"/>; a null value is SQL null.
    /// Returns how many rows were written.
    /// </summary>
    public static async Task<ulong> ImportAsync<T>(NpgsqlConnection connection, string copy, NpgsqlDbType[] types, IEnumerable<T> rows,
        Func<T, object?[]> values, CancellationToken cancellationToken)
    {
        await using var importer = await connection.BeginBinaryImportAsync(copy, cancellationToken);
        foreach (var row in rows)
        {
            var columns = values(row);
            if (columns.Length != types.Length)
            {
                throw new ArgumentException($"a row has {columns.Length} values for {types.Length} columns", nameof(values));
            }

            await importer.StartRowAsync(cancellationToken);
            for (var i = 0; i < columns.Length; i++)
            {
                await WriteAsync(importer, columns[i], types[i], cancellationToken);
            }
        }

        return await importer.CompleteAsync(cancellationToken);
    }

    // Each value written as its own type (Write<Guid>, Write<string> …), not as object: measured on the orders benchmark's
    // load, the typed writes take about two thirds of the time.
    private static Task WriteAsync(NpgsqlBinaryImporter importer, object? value, NpgsqlDbType type, CancellationToken cancellationToken) => value switch
    {
        null => importer.WriteNullAsync(cancellationToken),
        Guid v => importer.WriteAsync(v, type, cancellationToken),
        string v => importer.WriteAsync(v, type, cancellationToken),
        decimal v => importer.WriteAsync(v, type, cancellationToken),
        int v => importer.WriteAsync(v, type, cancellationToken),
        bool v => importer.WriteAsync(v, type, cancellationToken),
        DateTimeOffset v => importer.WriteAsync(v, type, cancellationToken),
        DateOnly v => importer.WriteAsync(v, type, cancellationToken),
        _ => importer.WriteAsync(value, type, cancellationToken),
    };
}
