using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using System.Text.Unicode;
using Hourglass.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;

namespace Hourglass.Server.Api;

/// <summary>
/// The largest request body a route reads, as endpoint metadata (the route's own, else its group's):
/// HOURGLASS_API_MAX_BATCH_BYTES for the touch and event batches, HOURGLASS_API_MAX_BODY_BYTES for every other route.
/// </summary>
internal sealed record ApiBodyLimit(long Bytes, string Setting)
{
    public const string BodySetting = "HOURGLASS_API_MAX_BODY_BYTES";

    public const string BatchSetting = "HOURGLASS_API_MAX_BATCH_BYTES";

    /// <summary>The default for every route but the batches: 1 MiB, far more than any policy document or action needs.</summary>
    public static readonly ApiBodyLimit DefaultBody = new(1L << 20, BodySetting);

    /// <summary>The default for a batch of touches or events: 10 MiB, some tens of thousands of lines.</summary>
    public static readonly ApiBodyLimit DefaultBatch = new(10L << 20, BatchSetting);

    /// <summary>
    /// Whether the route takes a batch: an array whose lines are judged one by one (a bad line is named by its number
    /// in the batch's outcomes), not refused as a whole body.
    /// </summary>
    public bool TakesLines => Setting == BatchSetting;

    public static (ApiBodyLimit Body, ApiBodyLimit Batch) FromEnvironment() => (Read(DefaultBody), Read(DefaultBatch));

    private static ApiBodyLimit Read(ApiBodyLimit fallback) => Environment.GetEnvironmentVariable(fallback.Setting) switch
    {
        null or "" => fallback,
        var text when long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var bytes) && bytes > 0 => fallback with { Bytes = bytes },
        var text => throw new HourglassException($"{fallback.Setting}: '{text}' is not a positive whole number of bytes (the default is {fallback.Bytes})"),
    };
}

/// <summary>Something read from the request before the handler runs that may be wrong; <see cref="ApiInput.Check"/> answers its error.</summary>
internal interface IApiInput
{
    IResult? Error { get; }
}

/// <summary>
/// A JSON request body, read strictly (<see cref="ApiInput.ReadBodyAsync{T}"/>): a body that is not JSON, too large,
/// of the wrong shape or with a field the type does not have is an error naming the field, answered after the token
/// is checked and before the handler runs. <c>JsonBody&lt;T?&gt;</c> (a nullable type argument) may be left out;
/// <c>JsonBody&lt;JsonElement&gt;</c> takes any JSON, for the handler (or the policy validator) to judge.
/// </summary>
internal sealed class JsonBody<T> : IApiInput, IBindableFromHttpContext<JsonBody<T>>, IEndpointParameterMetadataProvider
{
    // Whether each handler's parameter may be left out, read once from its nullability (not on every request).
    private static readonly ConcurrentDictionary<ParameterInfo, bool> s_optional = new();

    private JsonBody(T? value, IResult? error)
    {
        Value = value;
        Error = error;
    }

    /// <summary>The body; default when it was optional and left out.</summary>
    public T? Value { get; }

    public IResult? Error { get; }

    public static async ValueTask<JsonBody<T>?> BindAsync(HttpContext context, ParameterInfo parameter)
    {
        var (value, error) = await ApiInput.ReadBodyAsync<T>(context, IsOptional(parameter));
        return new JsonBody<T>(value, error);
    }

    // The framework does not see a custom-bound body: documented here for OpenAPI, with the answers only a body has.
    public static void PopulateMetadata(ParameterInfo parameter, EndpointBuilder builder)
    {
        builder.Metadata.Add(new AcceptsMetadata(["application/json"], typeof(T), IsOptional(parameter)));
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status413PayloadTooLarge, typeof(ProblemDetails), ["application/problem+json"]));
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status415UnsupportedMediaType, typeof(ProblemDetails), ["application/problem+json"]));
    }

    private static bool IsOptional(ParameterInfo parameter) => s_optional.GetOrAdd(parameter, p =>
        new NullabilityInfoContext().Create(p).GenericTypeArguments is [{ ReadState: NullabilityState.Nullable }]);
}

/// <summary>
/// Bad input is answered before a handler runs and before anything is written (docs/api.md, "Bad input"): a body
/// (<see cref="JsonBody{T}"/>) that is not UTF-8 or not JSON, too large, of the wrong shape, with unknown fields, with
/// text PostgreSQL cannot store (U+0000, an unpaired surrogate) or a time out of <see cref="TimeBounds"/>; a query
/// parameter the route does not take, given twice, not UTF-8 or holding U+0000, not of its type or out of its range.
/// Every answer is a problem document naming the field or parameter.
/// </summary>
internal static class ApiInput
{
    // Snake_case as the responses, numbers also as strings (as OpenAPI documents them, from the framework's web
    // defaults); otherwise strict: no comments or trailing commas, names matched exactly, null only where the type
    // allows it, no field twice, no field the type does not have.
    private static readonly JsonSerializerOptions s_json = new()
    {
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        AllowDuplicateProperties = false,
    };

    private static readonly JsonDocumentOptions s_document = new() { MaxDepth = 64, AllowDuplicateProperties = false };

    // A query parameter means the same on every route that takes it.
    private static readonly Dictionary<string, Func<string, string?>> s_rules = new(StringComparer.OrdinalIgnoreCase)
    {
        ["limit"] = value => WholeNumber(value, 1, ApiEndpoints.MaxLimit),
        ["top"] = value => WholeNumber(value, 1, 1000),
        ["days"] = value => WholeNumber(value, 1, 366),
        ["cursor"] = value => ApiSession.ReadCursor(value, out _, out _),
        ["on_error"] = value => value is "refuse" or "skip" ? null : $"must be 'refuse' or 'skip' (got '{value}')",
    };

    /// <summary>
    /// The API group's filter, after the token is checked: a body's error, else every query parameter checked at
    /// once. It also answers a value the framework failed to bind, which it reports with a bare 400 and still runs
    /// the filters for.
    /// </summary>
    public static EndpointFilterDelegate Check(EndpointFilterFactoryContext context, EndpointFilterDelegate next)
    {
        var parameters = context.MethodInfo.GetParameters();
        var bodies = Enumerable.Range(0, parameters.Length).Where(i => typeof(IApiInput).IsAssignableFrom(parameters[i].ParameterType)).ToArray();
        // The handler's other values come from the route or the query string; which is which is known per request.
        var values = parameters
            .Where(p => p.ParameterType != typeof(HttpContext) && p.ParameterType != typeof(CancellationToken) && !typeof(IApiInput).IsAssignableFrom(p.ParameterType))
            .Select(p => p.GetCustomAttribute<FromQueryAttribute>()?.Name is { } name ? (Name: name, p.ParameterType) : (Name: p.Name!, p.ParameterType))
            .Select(v => (v.Name, Rule: s_rules.GetValueOrDefault(v.Name) ?? TypeRule(v.ParameterType)))
            .ToArray();
        return async invocation =>
        {
            foreach (var i in bodies)
            {
                if (invocation.Arguments[i] is IApiInput { Error: { } error })
                {
                    return error;
                }
            }

            var http = invocation.HttpContext;
            var query = values.Where(v => !http.Request.RouteValues.ContainsKey(v.Name)).ToArray();
            var errors = UnreadableQuery(http.Request.QueryString);
            foreach (var (name, given) in http.Request.Query)
            {
                var known = query.FirstOrDefault(q => string.Equals(q.Name, name, StringComparison.OrdinalIgnoreCase));
                if (errors.ContainsKey(name))
                {
                    continue;
                }

                if (known.Name is null)
                {
                    errors[name] = [query.Length == 0
                        ? "is not a parameter of this route (it takes none)"
                        : $"is not a parameter of this route (it takes {string.Join(", ", query.Select(q => q.Name))})"];
                }
                else if (given.Count > 1)
                {
                    errors[name] = ["must be given once"];
                }
                else if (known.Rule?.Invoke(given.ToString()) is { } problem)
                {
                    errors[name] = [problem];
                }
            }

            if (errors.Count > 0)
            {
                return ApiSession.Invalid(errors);
            }

            if (http.Response.StatusCode == StatusCodes.Status400BadRequest)
            {
                return ApiSession.Invalid("request", "a value in the path or the query string could not be read");
            }

            return await next(invocation);
        };
    }

    /// <summary>
    /// Reads the request body within the route's <see cref="ApiBodyLimit"/> and binds it to <typeparamref name="T"/>
    /// strictly; the error names the field (a JSON path such as <c>dry_run</c>, or <c>body</c> for the whole) and,
    /// for malformed JSON, the line and position.
    /// </summary>
    public static async Task<(T? Value, IResult? Error)> ReadBodyAsync<T>(HttpContext http, bool optional)
    {
        var limit = http.GetEndpoint()?.Metadata.GetMetadata<ApiBodyLimit>() ?? ApiBodyLimit.DefaultBody;
        // Kestrel enforces it while the body streams in (a chunked body has no Content-Length to check first).
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limit.Bytes;
        }

        if (http.Request.ContentLength > limit.Bytes)
        {
            // Left unread, the rest of the body makes the connection unusable: say it closes after the answer, as
            // Kestrel does when it refuses a body itself, or a keep-alive client sends its next request into it.
            http.Response.Headers.Connection = "close";
            return (default, TooLarge(limit));
        }

        byte[] bytes;
        try
        {
            using var buffer = new MemoryStream();
            await http.Request.Body.CopyToAsync(buffer, http.RequestAborted);
            bytes = buffer.ToArray();
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (default, TooLarge(limit));
        }
        catch (BadHttpRequestException ex)
        {
            return (default, ApiSession.Invalid("body", $"could not be read: {ex.Message}"));
        }

        if (bytes.Length == 0)
        {
            return optional ? (default, null) : (default, ApiSession.Invalid("body", typeof(T) == typeof(JsonElement) ? "is required" : "is required: a JSON object"));
        }

        if (!http.Request.HasJsonContentType())
        {
            return (default, Results.Problem(title: "Unsupported media type",
                detail: $"Content-Type: the body must be application/json (got '{http.Request.ContentType ?? "none"}')",
                statusCode: StatusCodes.Status415UnsupportedMediaType, type: "https://hourglass.dev/problems/unsupported-media-type"));
        }

        // JSON is UTF-8 (RFC 8259 section 8.1). The reader would pass bytes that are not inside a string and fail later,
        // transcoding one to a .NET string, as a server error.
        if (FirstInvalidUtf8(bytes) is { } offset)
        {
            return (default, ApiSession.Invalid("body", string.Create(CultureInfo.InvariantCulture,
                $"the body is not valid UTF-8 (byte {offset + 1} of {bytes.Length} starts no UTF-8 character): send JSON in UTF-8")));
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes, s_document);
        }
        catch (JsonException ex)
        {
            return (default, ApiSession.Invalid("body", $"is not valid JSON: {Reason(ex)}{(Position(ex) is { } where ? $" ({where})" : "")}"));
        }

        using (document)
        {
            var root = document.RootElement;
            // A batch's lines are judged one by one, a bad one named by its number (ApiEndpoints.BatchAsync); any other
            // body is refused whole, naming the field whose text PostgreSQL could not store.
            if (!limit.TakesLines && StorableText.Find(root) is var (path, problem))
            {
                // Named as the body's other errors are: the whole is "body" for a typed body, "$" for a free-form document.
                return (default, ApiSession.Invalid(path == "$" && typeof(T) != typeof(JsonElement) ? "body" : path, problem));
            }

            if (typeof(T) == typeof(JsonElement))
            {
                return ((T)(object)root.Clone(), null);
            }

            if (root.ValueKind == JsonValueKind.Null && optional)
            {
                return (default, null);
            }

            if (root.ValueKind != JsonValueKind.Object)
            {
                return (default, ApiSession.Invalid("body", $"must be a JSON object, not {Kind(root)}"));
            }

            var fields = s_json.GetTypeInfo(typeof(T)).Properties.ToDictionary(p => p.Name, p => p.PropertyType, StringComparer.Ordinal);
            var unknown = root.EnumerateObject().Select(p => p.Name).Where(name => !fields.ContainsKey(name)).Distinct(StringComparer.Ordinal).ToList();
            if (unknown.Count > 0)
            {
                var known = $"is not a field of this body (its fields: {string.Join(", ", fields.Keys)})";
                return (default, ApiSession.Invalid(unknown.ToDictionary(name => name, _ => new[] { known }, StringComparer.Ordinal)));
            }

            T? value;
            try
            {
                // From the bytes rather than the parsed document, so the position of a wrong value is the client's.
                value = JsonSerializer.Deserialize<T>(bytes, s_json);
            }
            catch (JsonException ex)
            {
                // "$.capabilities[1]": the field is the path's first name.
                var field = ex.Path is ['$', '.', .. var rest] && rest.Split('[', '.')[0] is var name && fields.ContainsKey(name) ? name : null;
                if (field is null)
                {
                    return (default, ApiSession.Invalid("body", $"has a value of the wrong type at {ex.Path ?? "$"}{(Position(ex) is { } where ? $" ({where})" : "")}"));
                }

                var given = root.GetProperty(field);
                var got = given.ValueKind == JsonValueKind.Null ? "" : $"got {(given.GetRawText() is { Length: > 40 } text ? text[..40] + "…" : given.GetRawText())} ";
                return (default, ApiSession.Invalid(field, $"{Mismatch(fields[field], given)} ({got}at {ex.Path}{(Position(ex) is { } position ? ", " + position : "")})"));
            }

            return OutOfRangeTimes(value) is { Count: > 0 } outOfRange ? (default, ApiSession.Invalid(outOfRange)) : (value, null);
        }
    }

    // Every time a body gives is within TimeBounds: year 1 or 9999 parses as a DateTimeOffset and overflows later.
    private static Dictionary<string, string[]>? OutOfRangeTimes<T>(T? value)
    {
        if (value is null)
        {
            return null;
        }

        Dictionary<string, string[]>? errors = null;
        foreach (var property in s_json.GetTypeInfo(typeof(T)).Properties)
        {
            if ((Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType) == typeof(DateTimeOffset)
                && property.Get?.Invoke(value) is DateTimeOffset at && TimeBounds.Problem(at) is { } problem)
            {
                (errors ??= new Dictionary<string, string[]>(StringComparer.Ordinal))[property.Name] = [problem];
            }
        }

        return errors;
    }

    /// <summary>The offset of the first byte that is not part of a well-formed UTF-8 character, or null when all are.</summary>
    internal static int? FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        if (Utf8.IsValid(bytes))
        {
            return null;
        }

        var offset = 0;
        while (offset < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[offset..], out _, out var consumed) != OperationStatus.Done)
            {
                return offset;
            }

            offset += consumed;
        }

        return null;
    }

    // Kestrel decodes the query string leniently: bytes that are not UTF-8 become U+FFFD, and %00 a NUL that PostgreSQL
    // refuses (22021) as a server error. Each name and value is decoded again here, strictly, from the string as sent.
    private static Dictionary<string, string[]> UnreadableQuery(QueryString query)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (query.Value is not { Length: > 1 } raw)
        {
            return errors;
        }

        foreach (var pair in raw[1..].Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var cut = pair.IndexOf('=', StringComparison.Ordinal);
            var (name, nameProblem) = DecodeQueryPart(cut < 0 ? pair : pair[..cut]);
            var valueProblem = cut < 0 ? null : DecodeQueryPart(pair[(cut + 1)..]).Problem;
            if (nameProblem is not null)
            {
                errors["query"] = [$"a parameter's name {nameProblem}"];
            }
            else if (valueProblem is not null)
            {
                errors[name!] = [valueProblem];
            }
        }

        return errors;
    }

    private static (string? Text, string? Problem) DecodeQueryPart(string encoded)
    {
        var ascii = Encoding.UTF8.GetBytes(encoded);
        var bytes = WebUtility.UrlDecodeToBytes(ascii, 0, ascii.Length);
        if (FirstInvalidUtf8(bytes) is { } offset)
        {
            return (null, string.Create(CultureInfo.InvariantCulture,
                $"is not valid UTF-8 once percent-decoded (byte {offset + 1} starts no UTF-8 character): percent-encode its UTF-8 bytes"));
        }

        var text = Encoding.UTF8.GetString(bytes);
        return (text, StorableText.Problem(text));
    }

    private static IResult TooLarge(ApiBodyLimit limit) =>
        Results.Problem(title: "Request body too large",
            detail: $"body: larger than this route's limit of {limit.Bytes.ToString(CultureInfo.InvariantCulture)} bytes ({limit.Setting}); send less at a time",
            statusCode: StatusCodes.Status413PayloadTooLarge, type: "https://hourglass.dev/problems/too-large",
            extensions: new Dictionary<string, object?> { ["limit_bytes"] = limit.Bytes });

    private static string? WholeNumber(string value, int min, int max) =>
        int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number) && number >= min && number <= max
            ? null
            : $"must be a whole number from {min} to {max} (got '{value}')";

    // A query value with no rule of its own is checked against its parameter's type (strings are free).
    private static Func<string, string?>? TypeRule(Type type) => (Nullable.GetUnderlyingType(type) ?? type) switch
    {
        var t when t == typeof(int) => value => WholeNumber(value, int.MinValue, int.MaxValue),
        var t when t == typeof(bool) => value => bool.TryParse(value, out _) ? null : $"must be true or false (got '{value}')",
        var t when t == typeof(Guid) => value => Guid.TryParse(value, out _) ? null : $"must be a UUID (got '{value}')",
        var t when t == typeof(DateTimeOffset) => value => DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at)
            ? TimeBounds.Problem(at)
            : $"must be an ISO 8601 date and time, e.g. 2026-01-05T09:00:00Z (got '{value}')",
        _ => null,
    };

    // The reader's own words without its zero-based position, which Position gives one-based.
    private static string Reason(JsonException ex) =>
        ex.Message.IndexOf(" LineNumber:", StringComparison.Ordinal) is > 0 and var cut ? ex.Message[..cut].TrimEnd('.') : ex.Message;

    private static string? Position(JsonException ex) => ex.LineNumber is { } line
        ? string.Create(CultureInfo.InvariantCulture, $"line {line + 1}, position {(ex.BytePositionInLine ?? 0) + 1}")
        : null;

    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    // What a field's value should have been: null where it may not be, the wrong kind of value, or the right kind
    // that does not parse (a string that is not a UUID, a number out of range).
    private static string Mismatch(Type type, JsonElement given)
    {
        var (words, kind) = (Nullable.GetUnderlyingType(type) ?? type) switch
        {
            var t when t == typeof(bool) => ("true or false", JsonValueKind.True),
            var t when t == typeof(string) => ("a string", JsonValueKind.String),
            var t when t == typeof(Guid) => ("a UUID string", JsonValueKind.String),
            var t when t == typeof(DateTimeOffset) => ("an ISO 8601 date and time string, e.g. \"2026-01-05T09:00:00Z\"", JsonValueKind.String),
            var t when t == typeof(decimal) || t == typeof(int) || t == typeof(long) || t == typeof(double) => ("a number", JsonValueKind.Number),
            var t when t == typeof(string[]) => ("an array of strings", JsonValueKind.Array),
            _ => ("another kind of value", JsonValueKind.Undefined),
        };
        return given.ValueKind switch
        {
            JsonValueKind.Null => "must not be null",
            JsonValueKind.Number when kind == JsonValueKind.Number => "is out of range",
            var k when k == kind || (k == JsonValueKind.String && kind == JsonValueKind.Number) => $"must be {words}",
            _ => $"must be {words}, not {Kind(given)}",
        };
    }

    /// <summary>
    /// <c>ProblemDetailsOptions.CustomizeProblemDetails</c>: the answers the framework gives before any route of ours
    /// runs — no route matches (an id in the path that is not a UUID, too), a method the path does not take, a body
    /// that is not JSON — say what was wrong, as ours do.
    /// </summary>
    public static void DescribeFrameworkProblem(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        var request = context.HttpContext.Request;
        problem.Detail ??= problem.Status switch
        {
            StatusCodes.Status404NotFound => $"no route answers {request.Method} {request.Path}: check the path (the ids in it are UUIDs)",
            StatusCodes.Status405MethodNotAllowed => $"{request.Path} does not take {request.Method}",
            StatusCodes.Status415UnsupportedMediaType => $"Content-Type: the body must be application/json (got '{request.ContentType}')",
            _ => null,
        };
    }
}
