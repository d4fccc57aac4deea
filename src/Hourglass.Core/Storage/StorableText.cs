using System.Globalization;
using System.Text.Json;

namespace Hourglass.Storage;

/// <summary>
/// Text PostgreSQL cannot store, found before it is sent: U+0000 (text and jsonb refuse it, SQLSTATE 22021 and
/// 22P05 — for jsonb the whole value, so a batch would fail as one) and an unpaired UTF-16 surrogate (not Unicode: it
/// has no UTF-8 form, and Npgsql's strict encoder throws). Each is named where it is.
/// </summary>
internal static class StorableText
{
    public const string NulProblem = "holds the character U+0000 (NUL), which PostgreSQL cannot store";

    public const string SurrogateProblem = "holds an unpaired surrogate (a \\uD800–\\uDFFF escape alone), which is not Unicode text";

    /// <summary>Why <paramref name="text"/> cannot be stored, or null when it can.</summary>
    public static string? Problem(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Contains('\0', StringComparison.Ordinal))
        {
            return NulProblem;
        }

        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return SurrogateProblem;
            }
        }

        return null;
    }

    /// <summary>
    /// The first string (or field name) of <paramref name="element"/> that cannot be stored, with its path: <c>$</c> for
    /// the value itself, else as the policy validator names fields (<c>notes</c>, <c>rules[0].message</c>).
    /// </summary>
    public static (string Path, string Problem)? Find(JsonElement element) => Find(element, "");

    private static (string Path, string Problem)? Find(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return Read(element) is { } problem ? (path.Length == 0 ? "$" : path, problem) : null;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (Find(item, string.Create(CultureInfo.InvariantCulture, $"{path}[{index++}]")) is { } found)
                    {
                        return found;
                    }
                }

                return null;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = property.Name;
                    }
                    catch (InvalidOperationException)
                    {
                        return (path.Length == 0 ? "$" : path, "has a field name that " + SurrogateProblem);
                    }

                    if (Problem(name) is { } nameProblem)
                    {
                        return (path.Length == 0 ? "$" : path, "has a field name that " + nameProblem);
                    }

                    if (Find(property.Value, path.Length == 0 ? name : $"{path}.{name}") is { } found)
                    {
                        return found;
                    }
                }

                return null;
            default:
                return null;
        }
    }

    private static string? Read(JsonElement value)
    {
        try
        {
            return Problem(value.GetString()!);
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json will not transcode an escaped unpaired surrogate (\ud800) to a .NET string.
            return SurrogateProblem;
        }
    }
}
