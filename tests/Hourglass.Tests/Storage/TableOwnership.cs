using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hourglass.Tests.Storage;

/// <summary>
/// One row of the ownership map: a table (or a SQL function, written <c>schema.name()</c>), the part that owns it, the
/// files that alone may name it in SQL.
/// </summary>
/// <remarks>No store files means the row is pending (its owner has not moved its SQL yet) and is not checked.</remarks>
internal sealed record TableOwner(string Table, string Part, IReadOnlyList<string> StoreFiles)
{
    public bool Pending => StoreFiles.Count == 0;

    /// <summary>A SQL function (<c>public.record_touches()</c>): named in SQL when it is called.</summary>
    public bool IsFunction => Table.EndsWith("()", StringComparison.Ordinal);

    /// <summary>The name without its schema: SQL may name <c>public</c> tables unqualified.</summary>
    public string BareName => Table[(Table.IndexOf('.', StringComparison.Ordinal) + 1)..];
}

/// <summary>A file allowed to keep raw SQL against any table (a benchmark's raw-SQL baseline), and why.</summary>
internal sealed record SqlBaseline(string File, string Reason);

/// <summary>
/// The ownership map kept in docs/development.md between <c>&lt;!-- table-owners --&gt;</c> markers: a markdown
/// table <c>| Table | Owning part | Store file(s) |</c>, a table <c>| Function | Owning part | Store file(s) |</c> (each
/// function written <c>schema.name()</c>) and a table <c>| Baseline file | Why |</c>.
/// </summary>
internal sealed record OwnershipMap(IReadOnlyList<TableOwner> Tables, IReadOnlyList<SqlBaseline> Baselines, IReadOnlyList<TableOwner> Functions)
{
    /// <summary>Tables and functions: everything a statement may name that has one owner.</summary>
    public IEnumerable<TableOwner> Owned => Tables.Concat(Functions);

    public const string StartMarker = "<!-- table-owners -->";
    public const string EndMarker = "<!-- /table-owners -->";

    public static OwnershipMap Parse(string markdown)
    {
        var start = markdown.IndexOf(StartMarker, StringComparison.Ordinal);
        var end = markdown.IndexOf(EndMarker, StringComparison.Ordinal);
        if (start < 0 || end < start)
        {
            throw new InvalidOperationException($"The ownership map needs {StartMarker} … {EndMarker} markers.");
        }

        var tables = new List<TableOwner>();
        var functions = new List<TableOwner>();
        var baselines = new List<SqlBaseline>();
        string? header = null;
        foreach (var raw in markdown[(start + StartMarker.Length)..end].Split('\n'))
        {
            var line = raw.Trim();
            if (!line.StartsWith('|'))
            {
                header = null;
                continue;
            }

            var cells = line.Trim('|').Split('|').Select(c => c.Trim().Trim('`').Trim()).ToArray();
            if (header is null)
            {
                header = cells[0];
                continue;
            }

            if (cells.All(c => c.All(ch => ch is '-' or ':' or ' ')))
            {
                continue;
            }

            if (header.Equals("Table", StringComparison.OrdinalIgnoreCase) || header.Equals("Function", StringComparison.OrdinalIgnoreCase))
            {
                var files = cells[2].Equals("pending", StringComparison.OrdinalIgnoreCase)
                    ? []
                    : cells[2].Split(',').Select(f => f.Trim().Trim('`').Trim()).Where(f => f.Length > 0).ToArray();
                (header.Equals("Table", StringComparison.OrdinalIgnoreCase) ? tables : functions).Add(new TableOwner(cells[0], cells[1], files));
            }
            else if (header.StartsWith("Baseline", StringComparison.OrdinalIgnoreCase))
            {
                baselines.Add(new SqlBaseline(cells[0], cells[1]));
            }
        }

        return new OwnershipMap(tables, baselines, functions);
    }
}

/// <summary>A table named by SQL in a C# string literal, at a 1-based line; <c>Literal</c> numbers the literal in its file.</summary>
internal sealed record SqlTableMention(int Line, string Table, int Literal);

/// <summary>
/// Finds the tables a C# file names in SQL. Only string literals are read (regular, verbatim, raw, interpolated,
/// UTF-8), never comments or identifiers; a literal counts as SQL only when it has the shape of a statement or a
/// clause the way SQL is written (lower or upper case keywords: <c>select … from</c>, <c>insert into</c>,
/// <c>update … set</c>, <c>delete from</c>, <c>copy t (</c>, a schema-qualified <c>from</c>/<c>join</c> …), so a log
/// message or a help text that says "orders" or "Delete from the queue" is not SQL.
/// </summary>
internal static class SqlTableScanner
{
    private static readonly Regex SqlShape = new(
        """
        \b(?:
            select\b[\s\S]*?\bfrom
          | insert\s+into
          | update\s+[\w."]+\s+(?:\w+\s+)?set
          | delete\s+from
          | copy\s+[\w."]+\s*(?:\(|from\b|to\b)
          | truncate
          | lock\s+table
          | (?:create|alter|drop)\s+(?:table|view|index|policy|trigger)
          | (?:from|join)\s+(?:public|hourglass)\.
          | select\s+(?:public|hourglass)\.\w+(?=\s*\()
          | on\s+conflict
          | returning
        )\b
        """,
        RegexOptions.IgnoreCase | RegexOptions.IgnorePatternWhitespace | RegexOptions.CultureInvariant);

    /// <summary>The tables (of <paramref name="tables"/>, schema-qualified names) the source names in SQL.</summary>
    public static IReadOnlyList<SqlTableMention> Scan(string source, IReadOnlyCollection<string> tables)
    {
        var patterns = tables.ToDictionary(t => t, TablePattern);
        var tree = CSharpSyntaxTree.ParseText(source);
        var text = tree.GetText();
        var mentions = new List<SqlTableMention>();
        var ordinal = 0;
        foreach (var literal in SqlLiterals(tree.GetRoot()))
        {
            ordinal++;
            if (!LooksLikeSql(literal.Select(t => t.Value)))
            {
                continue;
            }

            foreach (var (start, value) in literal)
            {
                foreach (var (table, pattern) in patterns)
                {
                    foreach (Match match in pattern.Matches(value))
                    {
                        var line = text.Lines.GetLineFromPosition(start + match.Index).LineNumber + 1;
                        mentions.Add(new SqlTableMention(line, table, ordinal));
                    }
                }
            }
        }

        return mentions.Distinct().OrderBy(m => m.Line).ThenBy(m => m.Table, StringComparer.Ordinal).ToList();
    }

    /// <summary>Whether the text of one literal has the shape of SQL.</summary>
    public static bool LooksLikeSql(IEnumerable<string> parts)
    {
        var text = string.Concat(parts);
        foreach (Match match in SqlShape.Matches(text))
        {
            // SQL is written in lower (or upper) case keywords; a capitalised first word is a sentence.
            var first = match.Value.TakeWhile(char.IsLetter).ToArray();
            var sentence = first.Length > 1 && char.IsUpper(first[0]) && first.Skip(1).Any(char.IsLower);
            if (!sentence)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// A table as a whole word, optionally schema-qualified or double-quoted; not a column of an alias
    /// (<c>o.orders</c>) and not a longer name (<c>orders_archive</c>). A function (<c>schema.name()</c>) likewise, and
    /// only where it is called (its name followed by an opening parenthesis).
    /// </summary>
    private static Regex TablePattern(string qualified)
    {
        var function = qualified.EndsWith("()", StringComparison.Ordinal);
        qualified = function ? qualified[..^2] : qualified;
        var dot = qualified.IndexOf('.', StringComparison.Ordinal);
        var schema = Regex.Escape(qualified[..dot]);
        var name = Regex.Escape(qualified[(dot + 1)..]);
        var schemaPart = qualified.StartsWith("public.", StringComparison.Ordinal)
            ? $"(?:\"?{schema}\"?\\.)?"
            : $"(?:\"?{schema}\"?\\.)";
        return new Regex(
            // A function's name inside a SQL string ('ingest_events (bulk)', a message) is not a call.
            (function ? "(?<![\\w.$\"'])" : "(?<![\\w.$\"])") + $"{schemaPart}\"?{name}\"?" + (function ? "\\s*\\(" : "(?![\\w$])"),
            RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    }

    /// <summary>
    /// Each string literal as its text pieces with their source positions; escapes in regular literals are
    /// blanked to the same length so a word after <c>\n</c> stays a word and positions stay exact.
    /// </summary>
    private static IEnumerable<List<(int Start, string Value)>> SqlLiterals(SyntaxNode root)
    {
        foreach (var node in root.DescendantNodes())
        {
            switch (node)
            {
                case LiteralExpressionSyntax literal when literal.Token.IsKind(SyntaxKind.StringLiteralToken)
                    || literal.Token.IsKind(SyntaxKind.Utf8StringLiteralToken)
                    || literal.Token.IsKind(SyntaxKind.SingleLineRawStringLiteralToken)
                    || literal.Token.IsKind(SyntaxKind.MultiLineRawStringLiteralToken)
                    || literal.Token.IsKind(SyntaxKind.Utf8SingleLineRawStringLiteralToken)
                    || literal.Token.IsKind(SyntaxKind.Utf8MultiLineRawStringLiteralToken):
                    yield return [(literal.Token.SpanStart, Blank(literal.Token.Text, verbatim: IsVerbatimOrRaw(literal.Token.Text)))];
                    break;
                case InterpolatedStringExpressionSyntax interpolated:
                    var verbatim = interpolated.StringStartToken.Text.Contains('@', StringComparison.Ordinal)
                        || interpolated.StringStartToken.Text.Contains("\"\"\"", StringComparison.Ordinal);
                    yield return interpolated.Contents
                        .OfType<InterpolatedStringTextSyntax>()
                        .Select(t => (t.TextToken.SpanStart, Blank(t.TextToken.Text, verbatim)))
                        .ToList();
                    break;
            }
        }
    }

    private static bool IsVerbatimOrRaw(string token) =>
        token.StartsWith('@') || token.StartsWith("\"\"\"", StringComparison.Ordinal);

    private static string Blank(string token, bool verbatim)
    {
        if (verbatim)
        {
            return token;
        }

        var builder = new StringBuilder(token);
        for (var i = 0; i < builder.Length - 1; i++)
        {
            if (builder[i] == '\\')
            {
                builder[i] = ' ';
                builder[i + 1] = ' ';
                i++;
            }
        }

        return builder.ToString();
    }
}
