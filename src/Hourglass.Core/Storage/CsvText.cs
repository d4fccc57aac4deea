using System.Globalization;
using System.Text;

namespace Hourglass.Storage;

/// <summary>CSV as the import commands read it (touches, events): RFC 4180 records, each with the line it starts on.</summary>
internal static class CsvText
{
    // RFC 4180 records with the line each starts on. An unterminated quote is an error for that record (and the rest
    // of the file, which it swallowed).
    public static IEnumerable<(int Line, List<string> Fields, string? Error)> Records(string text)
    {
        var position = 0;
        var line = 1;
        while (position < text.Length)
        {
            var start = line;
            var fields = new List<string>();
            var field = new StringBuilder();
            string? error = null;
            var quoted = false;
            var atFieldStart = true;
            while (position < text.Length)
            {
                var c = text[position];
                if (quoted)
                {
                    if (c == '"' && position + 1 < text.Length && text[position + 1] == '"')
                    {
                        field.Append('"');
                        position += 2;
                        continue;
                    }

                    if (c == '"')
                    {
                        quoted = false;
                        position++;
                        continue;
                    }

                    if (c == '\n')
                    {
                        line++;
                    }

                    field.Append(c);
                    position++;
                    continue;
                }

                if (c == '"' && atFieldStart)
                {
                    quoted = true;
                    atFieldStart = false;
                    position++;
                    continue;
                }

                if (c == ',')
                {
                    fields.Add(field.ToString());
                    field.Clear();
                    atFieldStart = true;
                    position++;
                    continue;
                }

                if (c is '\r' or '\n')
                {
                    position += c == '\r' && position + 1 < text.Length && text[position + 1] == '\n' ? 2 : 1;
                    line++;
                    break;
                }

                if (c == '"')
                {
                    error ??= string.Create(CultureInfo.InvariantCulture, $"a quote inside an unquoted field (field {fields.Count + 1})");
                }

                field.Append(c);
                atFieldStart = false;
                position++;
            }

            if (quoted)
            {
                error = "a quoted field is never closed";
            }

            fields.Add(field.ToString());
            yield return (start, fields, error);
        }
    }
}
