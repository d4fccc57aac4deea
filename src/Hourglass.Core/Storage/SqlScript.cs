namespace Hourglass.Storage;

/// <summary>
/// Splits a SQL script into statements at top-level semicolons, as psql and the Supabase CLI do: semicolons
/// inside quoted strings (including E'' escapes), quoted identifiers, dollar-quoted bodies and comments do
/// not end a statement. Statements that hold only comments and white space are dropped.
/// </summary>
internal static class SqlScript
{
    public static IReadOnlyList<string> Split(string script)
    {
        ArgumentNullException.ThrowIfNull(script);
        var statements = new List<string>();
        var start = 0;
        var hasCode = false;
        var i = 0;
        while (i < script.Length)
        {
            var c = script[i];
            if (c == '-' && Next(script, i) == '-')
            {
                i = SkipLineComment(script, i);
                continue;
            }

            if (c == '/' && Next(script, i) == '*')
            {
                i = SkipBlockComment(script, i);
                continue;
            }

            if (c == ';')
            {
                Add(statements, script[start..i], hasCode);
                start = i + 1;
                hasCode = false;
                i++;
                continue;
            }

            if (!char.IsWhiteSpace(c))
            {
                hasCode = true;
            }

            if (c == '\'')
            {
                var escapes = i > 0 && (script[i - 1] is 'E' or 'e') && (i < 2 || !IsIdentifierChar(script[i - 2]));
                i = SkipQuoted(script, i, '\'', escapes);
            }
            else if (c == '"')
            {
                i = SkipQuoted(script, i, '"', backslashEscapes: false);
            }
            else if (c == '$' && TryReadDollarTag(script, i, out var tag))
            {
                var end = script.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                if (end < 0)
                {
                    throw new FormatException($"unterminated dollar-quoted string starting with {tag} at offset {i}");
                }

                i = end + tag.Length;
            }
            else
            {
                i++;
            }
        }

        Add(statements, script[start..], hasCode);
        return statements;
    }

    private static void Add(List<string> statements, string text, bool hasCode)
    {
        if (hasCode)
        {
            statements.Add(text.Trim());
        }
    }

    private static char Next(string s, int i) => i + 1 < s.Length ? s[i + 1] : '\0';

    private static int SkipLineComment(string s, int i)
    {
        var end = s.IndexOf('\n', i);
        return end < 0 ? s.Length : end + 1;
    }

    // Block comments nest in PostgreSQL (unlike the SQL standard's).
    private static int SkipBlockComment(string s, int i)
    {
        var depth = 0;
        while (i < s.Length)
        {
            if (s[i] == '/' && Next(s, i) == '*')
            {
                depth++;
                i += 2;
            }
            else if (s[i] == '*' && Next(s, i) == '/')
            {
                depth--;
                i += 2;
                if (depth == 0)
                {
                    return i;
                }
            }
            else
            {
                i++;
            }
        }

        throw new FormatException("unterminated /* comment");
    }

    private static int SkipQuoted(string s, int i, char quote, bool backslashEscapes)
    {
        var opening = i;
        i++;
        while (i < s.Length)
        {
            if (backslashEscapes && s[i] == '\\')
            {
                i += 2;
                continue;
            }

            if (s[i] == quote)
            {
                // A doubled quote is an escaped quote inside the string.
                if (Next(s, i) == quote)
                {
                    i += 2;
                    continue;
                }

                return i + 1;
            }

            i++;
        }

        throw new FormatException($"unterminated {(quote == '"' ? "quoted identifier" : "string")} starting at offset {opening}");
    }

    // $tag$ or $$; a tag follows identifier rules and cannot start with a digit ($1 is a parameter), and a
    // '$' inside an identifier (a$b) starts no quote (PostgreSQL docs, 4.1.2.4).
    private static bool TryReadDollarTag(string s, int i, out string tag)
    {
        tag = "";
        if (i > 0 && IsIdentifierChar(s[i - 1]))
        {
            return false;
        }

        var j = i + 1;
        if (j < s.Length && char.IsDigit(s[j]))
        {
            return false;
        }

        while (j < s.Length && (char.IsLetterOrDigit(s[j]) || s[j] == '_'))
        {
            j++;
        }

        if (j < s.Length && s[j] == '$')
        {
            tag = s[i..(j + 1)];
            return true;
        }

        return false;
    }

    private static bool IsIdentifierChar(char c) => char.IsLetterOrDigit(c) || c == '_' || c == '$';
}
