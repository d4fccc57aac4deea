using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Hourglass.Insights;

/// <summary>An event's fields as read from its JSON, before any rule is applied. Strings as given; the payload as its JSON text.</summary>
internal sealed class EventFields
{
    public static readonly string[] Names = ["event_type", "entity_type", "entity_id", "payload", "occurred_at", "idempotency_key", "source"];

    private const int Payload = 3;
    private const string NulError = "a string holds the character U+0000, which PostgreSQL cannot store";
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private static readonly byte[][] s_utf8Names = [.. Names.Select(Encoding.UTF8.GetBytes)];

    // The payload's property names, per open object (reused: a million lines must not mean a million sets). An object
    // with many properties gets a set, so a hostile payload costs linear time, not quadratic.
    [ThreadStatic]
    private static List<string>? t_names;

    [ThreadStatic]
    private static List<(int Start, HashSet<string>? Set)>? t_frames;

    private const int LinearScanLimit = 16;

    private readonly string?[] _strings = new string?[Names.Length];

    public string? EventType => _strings[0];

    public string? EntityType => _strings[1];

    public string? EntityId => _strings[2];

    public string? OccurredAt => _strings[4];

    public string? IdempotencyKey => _strings[5];

    public string? Source => _strings[6];

    /// <summary>
    /// The payload's JSON text when it is an object (null when absent or JSON null): a slice of the line itself when the
    /// line is ASCII (UTF-8 offsets are then character offsets), so a million rows do not hold a million more strings.
    /// </summary>
    public ReadOnlyMemory<char>? PayloadJson { get; private set; }

    /// <summary>What ingest_events would say first about the line's shape (unknown fields, a field of the wrong JSON type), or null.</summary>
    public string? ShapeError { get; private set; }

    /// <summary>Reads a line's JSON text: its fields, or why it cannot be read (not JSON, not an object, a repeated property, text PostgreSQL cannot store).</summary>
    public static (EventFields? Fields, string? Error) Read(string json)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(s_strictUtf8.GetMaxByteCount(json.Length));
        try
        {
            int length;
            try
            {
                length = s_strictUtf8.GetBytes(json, buffer);
            }
            catch (EncoderFallbackException)
            {
                return (null, "not valid text (an unpaired surrogate)");
            }

            try
            {
                // As many bytes as characters: all ASCII, so a byte range of the UTF-8 is the same range of the text.
                return Read(buffer.AsSpan(0, length), length == json.Length ? json : null);
            }
            catch (JsonException ex)
            {
                return (null, $"not valid JSON ({EventIngestion.JsonError(ex)})");
            }
            catch (InvalidOperationException)
            {
                // Utf8JsonReader.GetString on an escaped unpaired surrogate (\ud800).
                return (null, "not valid JSON (a string with an unpaired surrogate)");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static (EventFields?, string?) Read(ReadOnlySpan<byte> bytes, string? asciiText)
    {
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { MaxDepth = 64 });
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            EnsureEnd(ref reader);
            return (null, "not a JSON object");
        }

        var fields = new EventFields();
        Span<JsonTokenType> kinds = stackalloc JsonTokenType[Names.Length];
        var seen = 0;
        List<string>? unknown = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var index = FieldIndex(ref reader);
            var name = index >= 0 ? Names[index] : reader.GetString()!;
            if (index >= 0 ? (seen & (1 << index)) != 0 : unknown?.Contains(name, StringComparer.Ordinal) == true)
            {
                return (null, $"not valid JSON (the property {EventRules.Literal(name)} appears twice)");
            }

            reader.Read();
            if (index < 0)
            {
                (unknown ??= []).Add(name);
                reader.Skip();
                continue;
            }

            seen |= 1 << index;
            kinds[index] = reader.TokenType;
            if (index == Payload && reader.TokenType == JsonTokenType.StartObject)
            {
                var start = (int)reader.TokenStartIndex;
                if (CheckPayload(ref reader) is { } error)
                {
                    return (null, error);
                }

                var end = (int)reader.BytesConsumed;
                fields.PayloadJson = asciiText?.AsMemory(start, end - start) ?? Encoding.UTF8.GetString(bytes[start..end]).AsMemory();
            }
            else if (reader.TokenType == JsonTokenType.String)
            {
                var value = reader.GetString()!;
                if (reader.ValueIsEscaped && value.Contains('\0', StringComparison.Ordinal))
                {
                    return (null, NulError);
                }

                fields._strings[index] = value;
            }
            else
            {
                reader.Skip();
            }
        }

        EnsureEnd(ref reader);
        fields.ShapeError = ShapeErrorOf(unknown, kinds);
        return (fields, null);
    }

    // ingest_events' order: unknown fields, then the first field (in Names' order) of the wrong JSON type.
    private static string? ShapeErrorOf(List<string>? unknown, ReadOnlySpan<JsonTokenType> kinds)
    {
        if (unknown is not null)
        {
            return $"unknown field(s) {string.Join(", ", unknown.Order(StringComparer.Ordinal).Select(EventRules.Literal))} (the fields are {string.Join(", ", Names)})";
        }

        for (var i = 0; i < Names.Length; i++)
        {
            if (i != Payload && kinds[i] is not (JsonTokenType.None or JsonTokenType.String or JsonTokenType.Null))
            {
                return $"{Names[i]} must be a string (got {TypeName(kinds[i])})";
            }
        }

        return kinds[Payload] is JsonTokenType.None or JsonTokenType.StartObject or JsonTokenType.Null
            ? null
            : $"payload must be a JSON object (got {TypeName(kinds[Payload])})";
    }

    // jsonb_typeof's names.
    private static string TypeName(JsonTokenType kind) => kind switch
    {
        JsonTokenType.StartObject => "object",
        JsonTokenType.StartArray => "array",
        JsonTokenType.String => "string",
        JsonTokenType.Number => "number",
        JsonTokenType.True or JsonTokenType.False => "boolean",
        _ => "null",
    };

    private static int FieldIndex(ref Utf8JsonReader reader)
    {
        for (var i = 0; i < s_utf8Names.Length; i++)
        {
            if (reader.ValueTextEquals(s_utf8Names[i]))
            {
                return i;
            }
        }

        return -1;
    }

    // Walks the payload object to its end: every object's property names once each (jsonb would silently keep only the
    // last of a repeated one), and no U+0000 in any string.
    private static string? CheckPayload(ref Utf8JsonReader reader)
    {
        var names = t_names ??= [];
        var frames = t_frames ??= [];
        names.Clear();
        frames.Clear();
        var depth = reader.CurrentDepth;
        while (true)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    frames.Add((names.Count, null));
                    break;
                case JsonTokenType.EndObject:
                    names.RemoveRange(frames[^1].Start, names.Count - frames[^1].Start);
                    frames.RemoveAt(frames.Count - 1);
                    if (reader.CurrentDepth == depth)
                    {
                        return null;
                    }

                    break;
                case JsonTokenType.PropertyName:
                    var name = reader.GetString()!;
                    var (start, set) = frames[^1];
                    if (set is null && names.Count - start >= LinearScanLimit)
                    {
                        set = new HashSet<string>(names.Skip(start), StringComparer.Ordinal);
                        frames[^1] = (start, set);
                    }

                    if (set is null ? names.IndexOf(name, start) >= 0 : !set.Add(name))
                    {
                        return $"not valid JSON (the property {EventRules.Literal(name)} appears twice in payload)";
                    }

                    names.Add(name);
                    if (reader.ValueIsEscaped && name.Contains('\0', StringComparison.Ordinal))
                    {
                        return NulError;
                    }

                    break;
                case JsonTokenType.String when reader.ValueIsEscaped && reader.GetString()!.Contains('\0', StringComparison.Ordinal):
                    return NulError;
            }

            reader.Read();
        }
    }

    private static void EnsureEnd(ref Utf8JsonReader reader)
    {
        // Trailing text after the value: the reader throws for anything but whitespace.
        if (reader.Read())
        {
            throw new JsonException("more than one JSON value on the line");
        }
    }
}
