using System.Text.RegularExpressions;

namespace Hourglass.IntegrationTests.Security;

/// <summary>What a signed-in user may do with one write to a table: nothing, everything, or only some columns.</summary>
internal sealed record MatrixWrite(bool Allowed, IReadOnlyList<string>? Columns)
{
    public static MatrixWrite Parse(string cell) => cell.Trim() switch
    {
        "no" => new(false, null),
        "yes" => new(true, null),
        var columns => new(true, columns.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)),
    };
}

/// <summary>One row of the documented matrix: a table's insert, update and delete for <c>authenticated</c>, and the capability they need.</summary>
internal sealed record MatrixRow(string Table, MatrixWrite Insert, MatrixWrite Update, MatrixWrite Delete, string? Capability)
{
    public MatrixWrite Write(string privilege) => privilege switch
    {
        "INSERT" => Insert,
        "UPDATE" => Update,
        "DELETE" => Delete,
        _ => throw new ArgumentOutOfRangeException(nameof(privilege), privilege, null),
    };
}

/// <summary>
/// The guardrail matrix as docs/schema.md writes it ("Who may write what", between the guardrail-matrix markers): the
/// document is the contract the tests hold the database to, so the two cannot drift apart.
/// </summary>
internal static partial class GuardrailMatrix
{
    private static readonly Lazy<IReadOnlyDictionary<string, MatrixRow>> s_rows = new(Read);

    public static IReadOnlyDictionary<string, MatrixRow> Rows => s_rows.Value;

    public static string DocumentPath => Path.Combine(RepositoryRoot(), "docs", "schema.md");

    private static Dictionary<string, MatrixRow> Read()
    {
        var text = File.ReadAllText(DocumentPath);
        var begin = text.IndexOf("<!-- guardrail-matrix: begin -->", StringComparison.Ordinal);
        var end = text.IndexOf("<!-- guardrail-matrix: end -->", StringComparison.Ordinal);
        if (begin < 0 || end < begin)
        {
            throw new InvalidOperationException($"{DocumentPath}: no guardrail-matrix markers around the matrix");
        }

        var rows = new Dictionary<string, MatrixRow>(StringComparer.Ordinal);
        foreach (var line in text[begin..end].Split('\n'))
        {
            var match = RowPattern().Match(line);
            if (!match.Success)
            {
                continue;
            }

            var cells = line.Trim().Trim('|').Split('|');
            var capability = cells[4].Trim() is "—" or "" ? null : cells[4].Trim();
            var row = new MatrixRow(match.Groups["table"].Value, MatrixWrite.Parse(cells[1]), MatrixWrite.Parse(cells[2]), MatrixWrite.Parse(cells[3]), capability);
            if (!rows.TryAdd(row.Table, row))
            {
                throw new InvalidOperationException($"{DocumentPath}: the matrix has two rows for {row.Table}");
            }
        }

        return rows;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Hourglass.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no Hourglass.slnx above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"^\|\s*`(?<table>[a-z_]+)`\s*\|")]
    private static partial Regex RowPattern();
}
