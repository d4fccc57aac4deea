using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Api;

/// <summary>
/// Bad input against a real <c>hourglass serve</c> (docs/api.md, "Bad input"): malformed, truncated or oversized
/// bodies, values of the wrong type, nulls where a value is required, unknown fields, query values out of type or
/// range, unknown query parameters and malformed ids in the path. Every one is a 400, 404, 413 or 415 problem
/// document naming the field — never a 5xx — and writes nothing. The table is generated for every route of
/// <see cref="ApiRouteTests.Routes"/> from what the OpenAPI document says the route takes, so a new route or
/// parameter is covered without adding a line here.
/// </summary>
public sealed partial class ApiBadInputTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private const string ProblemJson = "application/problem+json";

    // The documented ranges (docs/api.md); their bounds are accepted, one past them refused.
    private static readonly Dictionary<string, (int Min, int Max)> s_ranges = new(StringComparer.Ordinal)
    {
        ["limit"] = (1, 500),
        ["top"] = (1, 1000),
        ["days"] = (1, 366),
    };

    private ApiServer Server => fixture.Server;

    private ApiTenant A => fixture.A;

    private ApiTenant B => fixture.B;

    public static TheoryData<string> AllRoutes
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var route in ApiRouteTests.Routes)
            {
                data.Add(route.Name);
            }

            return data;
        }
    }

    /// <summary>
    /// One malformed request and what it must get: a status, and for a 400 the field its problem names. <see cref="Bytes"/>,
    /// when set, is the body as sent (bytes that are not UTF-8), in place of <see cref="Body"/>.
    /// </summary>
    private sealed record BadInput(string What, string Path, string? Body, int Status, string[] Fields, string? ContentType = "application/json",
        string? DetailContains = null, byte[]? Bytes = null);

    // The accepted range of every time the API takes (TimeBounds), as its errors name it.
    private const string TimeRange = "from 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z";

    // Bytes that are no UTF-8: a lone continuation byte, a lead byte cut short, an overlong '/', a surrogate's encoding.
    private static readonly string[] s_notUtf8 = ["%FF", "%C3%28", "%C0%AF", "%ED%A0%80"];

    [Theory]
    [MemberData(nameof(AllRoutes))]
    public async Task EveryBadInput_4xxProblemNamingTheField_NeverServerError_NothingWritten(string name)
    {
        var route = ApiRouteTests.Routes.Single(r => r.Name == name);
        var document = JsonNode.Parse((await Server.GetAsync("/openapi/v1.json", token: null)).Body)!;
        var operation = document["paths"]![route.Template]![route.Method.ToLowerInvariant()]!.AsObject();
        // Every write but a DELETE takes a body, so none escapes the body half of the table.
        Assert.True(route.Method is "GET" or "DELETE" || operation["requestBody"] is not null, $"{route} documents no request body");
        var cases = QueryCases(route, operation).Concat(BodyCases(route, operation, document)).Concat(PathCases(route)).ToList();
        var beforeA = await fixture.DigestAsync(A.TenantId);
        var beforeB = await fixture.DigestAsync(B.TenantId);

        var failures = new List<string>();
        foreach (var bad in cases)
        {
            var response = await SendAsync(route, bad);
            if (Mismatch(bad, response) is { } why)
            {
                failures.Add($"{route.Method} {bad.Path} — {bad.What}: {why}; got {response}");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} bad requests answered wrongly:\n{string.Join("\n", failures)}");
        // Bad input is refused before anything runs: neither tenant changed (rows and their contents).
        Assert.Equal(beforeA, await fixture.DigestAsync(A.TenantId));
        Assert.Equal(beforeB, await fixture.DigestAsync(B.TenantId));
    }

    [Fact]
    public async Task MalformedJson_400NamingTheBody_WithLineAndPosition()
    {
        var response = await Server.SendAsync(HttpMethod.Post, $"{A.Path}/runs", A.OwnerToken, "{\n  \"dry_run\": tru\n}");

        var problem = ApiRouteTests.AssertProblem(response, 400, "https://hourglass.dev/problems/validation");
        var error = (string)problem["errors"]!["body"]![0]!;
        Assert.StartsWith("is not valid JSON", error, StringComparison.Ordinal);
        Assert.Contains("line 2, position", error, StringComparison.Ordinal);
        Assert.Contains("body: is not valid JSON", (string?)problem["detail"], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/runs", """{"dry_run": "yes"}""", "dry_run", "must be true or false")]
    [InlineData("/runs", """{"hour": "yesterday", "dry_run": true}""", "hour", "must be an ISO 8601 date and time")]
    [InlineData("/policy/explain", """{"kind": "send_message", "contact_id": "nobody"}""", "contact_id", "must be a UUID")]
    [InlineData("/policy/explain", """{"kind": "send_message", "order_value": [100]}""", "order_value", "must be a number, not an array")]
    [InlineData("/policy/explain", """{"kind": null}""", "kind", "must not be null")]
    [InlineData("/cards/00000000-0000-4000-8000-000000000001/complete", """{"notes": {"text": "hi"}}""", "notes", "must be a string, not an object")]
    public async Task WrongTypeOrNull_400NamingTheFieldAndItsPath(string path, string body, string field, string problem)
    {
        var response = await Server.SendAsync(HttpMethod.Post, A.Path + path, A.OwnerToken, body);

        var error = (string)ApiRouteTests.AssertProblem(response, 400, "https://hourglass.dev/problems/validation")["errors"]![field]![0]!;
        Assert.StartsWith(problem, error, StringComparison.Ordinal);
        Assert.Contains($"at $.{field}, line 1, position", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownField_RefusedNamingItAndTheFieldsThereAre_NotIgnored()
    {
        // Ignored, "dryrun" would leave a real run asked for — a 409 on this --no-worker server.
        var response = await Server.SendAsync(HttpMethod.Post, $"{A.Path}/runs", A.OwnerToken, """{"dryrun": true}""");

        var problem = ApiRouteTests.AssertProblem(response, 400, "https://hourglass.dev/problems/validation");
        Assert.Equal("is not a field of this body (its fields: dry_run, hour)", (string?)problem["errors"]!["dryrun"]![0]);
    }

    [Fact]
    public async Task FreeFormJson_StillTaken_EventPayloadsAndNumbersAsStrings()
    {
        // The typed envelope is strict; an event's payload is anyone's JSON, and numbers may come as strings (as
        // the OpenAPI document allows).
        var events = await Server.SendAsync(HttpMethod.Post, $"{A.Path}/events", A.MemberToken, $$"""
            [{"event_type": "custom", "payload": {"anything": [1, {"nested": null}], "Unknown_Case": true}, "idempotency_key": "free-{{Guid.NewGuid():N}}"}]
            """);
        var explain = await Server.SendAsync(HttpMethod.Post, $"{A.Path}/policy/explain", A.MemberToken, """{"kind": "send_message", "order_value": "100"}""");

        Assert.True(events.Code == 200, events.ToString());
        Assert.Equal("recorded", (string?)JsonNode.Parse(events.Body)![0]!["outcome"]);
        Assert.True(explain.Code == 200, explain.ToString());
    }

    [Theory]
    [InlineData("touches")]
    [InlineData("events")]
    public async Task BatchLineWithNul_SkipMode_ThatLineRejectedByNumber_TheOthersRecorded(string batch)
    {
        var keys = Enumerable.Range(1, 3).Select(i => $"nul-{i}-{Guid.NewGuid():N}").ToArray();
        string Line(int i, string key) => batch == "touches"
            ? $$"""{"entity_type": "contact", "entity_id": "{{A.TouchContactId}}", "touch_type": "email", "idempotency_key": "{{key}}"}"""
            : $$"""{"event_type": "reply", "entity_type": "contact", "entity_id": "{{A.TouchContactId}}", "idempotency_key": "{{key}}"}""";
        var body = $"[{Line(1, keys[0])}, {Line(2, keys[1] + "\\u0000")}, {Line(3, keys[2])}]";

        var response = await Server.SendAsync(HttpMethod.Post, $"{A.Path}/{batch}?on_error=skip", A.MemberToken, body);

        Assert.True(response.Code == 200, response.ToString());
        var outcomes = JsonNode.Parse(response.Body)!.AsArray().Select(o => o!.AsObject()).ToList();
        Assert.Equal([1, 2, 3], outcomes.Select(o => (int)o["line"]!));
        Assert.Equal(["recorded", "rejected", "recorded"], outcomes.Select(o => (string?)o["outcome"]));
        Assert.Equal("idempotency_key: holds the character U+0000 (NUL), which PostgreSQL cannot store", (string?)outcomes[1]["error"]);
        // The line judged here has the shape of the others.
        Assert.Equal(outcomes[0].Select(p => p.Key), outcomes[1].Select(p => p.Key));
        Assert.Equal(2L, await fixture.Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1 and idempotency_key = any($2)",
            A.TenantId, keys));
    }

    [Fact]
    public async Task BadInputWithoutAToken_401First()
    {
        var query = await Server.GetAsync($"{A.Path}/runs?limit=abc", token: null);
        var body = await Server.SendAsync(HttpMethod.Post, $"{A.Path}/runs", token: null, "{not json");

        ApiRouteTests.AssertProblem(query, 401, "https://hourglass.dev/problems/unauthorized");
        ApiRouteTests.AssertProblem(body, 401, "https://hourglass.dev/problems/unauthorized");
    }

    [Fact]
    public async Task BodyLimits_OverTheRoutesLimit413NamingIt_BatchesTakeTheirOwn_NothingWritten()
    {
        await using var limited = await ApiServer.StartAsync(fixture.ConnectionString, new Dictionary<string, string?>
        {
            ["HOURGLASS_API_MAX_BODY_BYTES"] = "2048",
            ["HOURGLASS_API_MAX_BATCH_BYTES"] = "8192",
            ["HOURGLASS_API_RATE_LIMIT"] = "10000",
        });
        var before = await fixture.DigestAsync(A.TenantId);

        foreach (var route in ApiRouteTests.Routes.Where(r => r.Method is not ("GET" or "DELETE")))
        {
            var batch = route.Name is "RecordTouches" or "IngestEvents";
            var (limit, setting) = batch ? (8192, "HOURGLASS_API_MAX_BATCH_BYTES") : (2048, "HOURGLASS_API_MAX_BODY_BYTES");
            // Valid JSON, only too long: whitespace padding. With a Content-Length, and streamed without one.
            var body = Padded(batch ? "[]" : "{}", limit + 1);
            foreach (var chunked in new[] { false, true })
            {
                var response = await limited.SendAsync(route.HttpMethod, route.Path(A, A), route.Capability is null ? A.MemberToken : A.OwnerToken, configure: r =>
                {
                    r.Content = Json(body);
                    r.Headers.TransferEncodingChunked = chunked;
                });

                var problem = ApiRouteTests.AssertProblem(response, 413, "https://hourglass.dev/problems/too-large");
                Assert.Contains($"limit of {limit} bytes ({setting})", (string?)problem["detail"], StringComparison.Ordinal);
                Assert.Equal(limit, (int)problem["limit_bytes"]!);
            }
        }

        Assert.Equal(before, await fixture.DigestAsync(A.TenantId));

        // A body at the limit is read; a batch between the two limits is taken — the batch routes' own limit wins.
        var explain = await limited.SendAsync(HttpMethod.Post, $"{A.Path}/policy/explain", A.MemberToken,
            configure: r => r.Content = Json(Padded("""{"kind": "send_message"}""", 2048)));
        var touches = Enumerable.Range(0, 40).Select(i => $$"""
            {"entity_type": "contact", "entity_id": "{{A.TouchContactId}}", "touch_type": "email", "idempotency_key": "limit-{{i}}-{{Guid.NewGuid():N}}"}
            """.Trim());
        var batchBody = $"[{string.Join(",", touches)}]";
        var recorded = await limited.SendAsync(HttpMethod.Post, $"{A.Path}/touches", A.MemberToken, batchBody);

        Assert.True(explain.Code == 200, explain.ToString());
        Assert.InRange(Encoding.UTF8.GetByteCount(batchBody), 2049, 8192);
        Assert.True(recorded.Code == 200, recorded.ToString());
        Assert.All(JsonNode.Parse(recorded.Body)!.AsArray(), o => Assert.Equal("recorded", (string?)o!["outcome"]));
    }

    [Theory]
    [InlineData("HOURGLASS_API_MAX_BODY_BYTES", "1MB")]
    [InlineData("HOURGLASS_API_MAX_BATCH_BYTES", "0")]
    public async Task BodyLimitNotAPositiveNumber_ServeRefusesToStart_NamingTheSetting(string setting, string value)
    {
        var result = await HourglassProcess.RunAsync(
            new Dictionary<string, string?> { ["HOURGLASS_JWT_SECRET"] = ApiServer.Secret, [setting] = value },
            "serve", "--no-worker", "--urls", "http://127.0.0.1:0", "--database", fixture.ConnectionString);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains($"{setting}: '{value}' is not a positive whole number of bytes", result.StandardOutput + result.StandardError, StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------------------------------------------------
    // The table, from the OpenAPI document
    // ---------------------------------------------------------------------------------------------------------

    private IEnumerable<BadInput> QueryCases(ApiRoute route, JsonObject operation)
    {
        var path = route.Path(A, A).Split('?')[0];
        var parameters = operation["parameters"]?.AsArray().Select(p => p!.AsObject()).Where(p => (string?)p["in"] == "query").ToList() ?? [];

        yield return new BadInput("a query parameter the route does not take", $"{path}?colour=blue", route.Body(A), 400, ["colour"]);
        // Text PostgreSQL cannot store, or bytes that are not UTF-8, in a name or a value: named, whatever the parameter.
        yield return new BadInput("a parameter's name not UTF-8", $"{path}?%FF=1", route.Body(A), 400, ["query"], DetailContains: "UTF-8");
        yield return new BadInput("a parameter's name with a NUL", $"{path}?co%00lour=1", route.Body(A), 400, ["query"], DetailContains: "U+0000");
        foreach (var name in parameters.Select(p => (string)p["name"]!).DefaultIfEmpty("colour"))
        {
            yield return new BadInput($"{name} with a NUL", $"{path}?{name}=a%00b", route.Body(A), 400, [name], DetailContains: "U+0000");
            foreach (var bytes in s_notUtf8)
            {
                yield return new BadInput($"{name}={bytes}", $"{path}?{name}={bytes}", route.Body(A), 400, [name], DetailContains: "not valid UTF-8");
            }
        }

        foreach (var parameter in parameters)
        {
            var name = (string)parameter["name"]!;
            var types = Types(parameter["schema"]!);
            yield return new BadInput($"{name} twice", $"{path}?{name}=1&{name}=1", route.Body(A), 400, [name]);
            if (types.Contains("integer"))
            {
                foreach (var value in new[] { "abc", "1.5", "", "99999999999", "1e3", "0x10" })
                {
                    yield return new BadInput($"{name}={value}", $"{path}?{name}={Uri.EscapeDataString(value)}", route.Body(A), 400, [name]);
                }

                if (s_ranges.TryGetValue(name, out var range))
                {
                    yield return new BadInput($"{name} below its range", $"{path}?{name}={range.Min - 1}", route.Body(A), 400, [name]);
                    yield return new BadInput($"{name} above its range", $"{path}?{name}={range.Max + 1}", route.Body(A), 400, [name]);
                    yield return new BadInput($"{name} at its lowest", $"{path}?{name}={range.Min}", route.Body(A), route.Ok, []);
                    yield return new BadInput($"{name} at its highest", $"{path}?{name}={range.Max}", route.Body(A), route.Ok, []);
                }
            }
            else if (name == "cursor")
            {
                foreach (var value in new[] { "not a cursor", "%%%", Base64("123|not-a-uuid"), Base64($"soon|{Guid.NewGuid()}"), Base64("123") })
                {
                    yield return new BadInput($"cursor {value}", $"{path}?cursor={Uri.EscapeDataString(value)}", route.Body(A), 400, ["cursor"]);
                }

                // Well-formed, but a time no row has: past .NET's year 9999, year 1, year 9999, the day before the range.
                foreach (var ticks in new[] { long.MaxValue, 0, new DateTime(9999, 12, 31).Ticks, new DateTime(1969, 12, 31, 23, 59, 59).Ticks })
                {
                    yield return new BadInput($"cursor at ticks {ticks}", $"{path}?cursor={Uri.EscapeDataString(Base64($"{ticks}|{Guid.NewGuid()}"))}",
                        route.Body(A), 400, ["cursor"], DetailContains: TimeRange);
                }
            }
            else if (name == "on_error")
            {
                yield return new BadInput("on_error=sometimes", $"{path}?on_error=sometimes", route.Body(A), 400, ["on_error"]);
            }
            else if (route.Method == "GET")
            {
                // A free-text filter: any text is a value to compare, never SQL.
                foreach (var value in new[] { "'; drop table public.cards; --", "ünïcødé ✓", new string('x', 2000) })
                {
                    yield return new BadInput($"{name} free text", $"{path}?{name}={Uri.EscapeDataString(value)}", null, route.Ok, []);
                }
            }
        }
    }

    private IEnumerable<BadInput> BodyCases(ApiRoute route, JsonObject operation, JsonNode document)
    {
        if (operation["requestBody"] is not { } requestBody)
        {
            yield break;
        }

        var path = route.Path(A, A);
        var valid = route.Body(A) ?? "{}";
        var required = (bool?)requestBody["required"] ?? false;
        var schema = requestBody["content"]!["application/json"]!["schema"]!;
        if ((string?)schema["$ref"] is { } reference)
        {
            schema = document["components"]!["schemas"]![reference.Split('/')[^1]]!;
        }

        // Any body: not JSON at all, cut short, followed by something, with a comment, nested too deep, not sent
        // as JSON.
        yield return new BadInput("not JSON", path, "{not json", 400, ["body"], DetailContains: "line 1, position");
        yield return new BadInput("not JSON on line 3", path, "{\n  \"a\": 1,\n  oops\n}", 400, ["body"], DetailContains: "line 3, position");
        yield return new BadInput("truncated", path, valid[..(valid.Length / 2)], 400, ["body"], DetailContains: "line");
        yield return new BadInput("trailing garbage", path, valid + " x", 400, ["body"]);
        yield return new BadInput("a comment", path, "// hello\n" + valid, 400, ["body"]);
        yield return new BadInput("nested 100 deep", path, new string('[', 100) + new string(']', 100), 400, ["body"]);
        yield return new BadInput("text/plain", path, valid, 415, [], ContentType: "text/plain", DetailContains: "Content-Type");
        foreach (var bytes in s_notUtf8)
        {
            // Inside a string, where a JSON reader does not look at them, and loose in the text.
            var inString = Encoding.UTF8.GetBytes(JsonNode.Parse(valid) is JsonArray ? "[\"x\"]" : "{\"x\": \"y\"}").ToList();
            inString.InsertRange(inString.LastIndexOf((byte)'"'), Convert.FromHexString(bytes.Replace("%", "", StringComparison.Ordinal)));
            yield return new BadInput($"{bytes} in a string", path, null, 400, ["body"], DetailContains: "not valid UTF-8", Bytes: [.. inString]);
            yield return new BadInput($"{bytes} alone", path, null, 400, ["body"], DetailContains: "not valid UTF-8",
                Bytes: Convert.FromHexString(bytes.Replace("%", "", StringComparison.Ordinal)));
        }

        yield return new BadInput("no Content-Type", path, valid, 415, [], ContentType: null, DetailContains: "Content-Type");
        if (required)
        {
            yield return new BadInput("no body", path, "", 400, ["body"]);
        }

        if (schema["properties"] is JsonObject properties)
        {
            var body = JsonNode.Parse(valid)!.AsObject();
            foreach (var root in new[] { "[]", "[{}]", "\"text\"", "42", "true" })
            {
                yield return new BadInput($"{root} for an object", path, root, 400, ["body"]);
            }

            if (required)
            {
                yield return new BadInput("null for an object", path, "null", 400, ["body"]);
            }

            yield return new BadInput("an unknown field", path, With(body, "colour", JsonValue.Create("blue")), 400, ["colour"]);
            var first = properties.First().Key;
            yield return new BadInput("a field in the wrong case", path, With(body, first.ToUpperInvariant(), JsonValue.Create("x")), 400, [first.ToUpperInvariant()]);
            var requiredFields = schema["required"]?.AsArray().Select(r => (string)r!).ToHashSet(StringComparer.Ordinal) ?? [];
            foreach (var (field, fieldSchema) in properties)
            {
                foreach (var wrong in WrongValues(fieldSchema!))
                {
                    yield return new BadInput($"{field}: {wrong}", path, With(body, field, JsonNode.Parse(wrong)), 400, [field]);
                }

                if (requiredFields.Contains(field))
                {
                    yield return new BadInput($"{field}: null", path, With(body, field, null), 400, [field]);
                }

                if (Types(fieldSchema!).Contains("string") && (string?)fieldSchema!["format"] is null)
                {
                    yield return new BadInput($"{field}: a NUL", path, With(body, field, JsonValue.Create("a\u0000b")), 400, [field], DetailContains: "U+0000");
                    yield return new BadInput($"{field}: an unpaired surrogate", path, WithRaw(body, field, "\"\\ud800\""), 400, [field],
                        DetailContains: "unpaired surrogate");
                }

                if ((string?)fieldSchema!["format"] == "date-time")
                {
                    foreach (var time in new[] { "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z" })
                    {
                        yield return new BadInput($"{field}: {time}", path, With(body, field, JsonValue.Create(time)), 400, [field], DetailContains: TimeRange);
                    }

                    // The bounds themselves are taken (and reach the handler without a server error).
                    foreach (var time in new[] { "1970-01-01T00:00:00Z", "2999-12-31T23:59:59Z" })
                    {
                        yield return new BadInput($"{field}: {time}", path, With(With(body, "dry_run", route.Name == "RunNow" ? JsonValue.Create(true) : null, keep: true),
                            field, JsonValue.Create(time)), route.Ok, []);
                    }
                }
            }

            yield return new BadInput("a field name with a NUL", path, WithRaw(body, "no\\u0000tes", "\"x\""), 400, ["body"], DetailContains: "U+0000");
        }
        else if (route.Name is "RecordTouches" or "IngestEvents")
        {
            // A batch is an array of lines; each line is the database's to judge, by line number.
            foreach (var root in new[] { "{}", "\"text\"", "42", "null" })
            {
                yield return new BadInput($"{root} for a batch", path, root, 400, ["body"]);
            }

            foreach (var line in new[] { "[1]", "[null]", "[[]]", "[{}]", """[{"entity_type": null, "event_type": null, "touch_type": null}]""" })
            {
                yield return new BadInput($"line {line}", path, line, 400, [], DetailContains: "line 1");
            }

            // A line with text PostgreSQL cannot store is that line's error, as the database names the others: the
            // valid line before it is not recorded either (refuse mode).
            var good = JsonNode.Parse(valid)!.AsArray()[0]!.AsObject();
            var nul = With(good, "idempotency_key", JsonValue.Create("key\u0000"));
            yield return new BadInput("a line with a NUL", path, $"[{nul}]", 400, [], DetailContains: "line 1: idempotency_key: holds the character U+0000");
            yield return new BadInput("line 2 with a NUL", path, $"[{With(good, "idempotency_key", JsonValue.Create($"k-{Guid.NewGuid():N}"))}, {nul}]", 400, [],
                DetailContains: "1 of 2");
            yield return new BadInput("a line with a NUL deep in it", path, $"[{With(good, "payload", JsonNode.Parse("""{"a": [{"b": "\u0000"}]}"""))}]", 400, [],
                DetailContains: "line 1: payload.a[0].b: holds the character U+0000");
            yield return new BadInput("a line with an unpaired surrogate", path, $"[{WithRaw(good, "idempotency_key", "\"\\udc00\"")}]", 400, [],
                DetailContains: "line 1: idempotency_key: holds an unpaired surrogate");
            foreach (var time in new[] { "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0000-06-01T00:00:00Z", "2025-02-30T00:00:00Z", "2025-06-01T00:00:00+99:00", "9999-12-31T23:59:59Z" })
            {
                yield return new BadInput($"occurred_at {time}", path, $"[{With(good, "occurred_at", JsonValue.Create(time))}]", 400, [], DetailContains: "line 1: occurred_at");
            }
        }
        else
        {
            // A policy document: its own validator names the field ("$" for the whole).
            foreach (var root in new[] { "[1, 2]", "\"text\"", "42", "null" })
            {
                yield return new BadInput($"{root} for a document", path, root, 400, ["$"]);
            }

            yield return new BadInput("an unknown field", path, With(JsonNode.Parse(valid)!.AsObject(), "colour", JsonValue.Create("blue")), 400, ["colour"]);
            var policy = JsonNode.Parse(valid)!.AsObject();
            yield return new BadInput("a NUL in the document", path, With(policy, "colour", JsonValue.Create("\u0000")), 400, ["colour"], DetailContains: "U+0000");
            yield return new BadInput("a NUL deep in the document", path, With(policy, "rules", JsonNode.Parse("""[{"id": "a\u0000"}]""")), 400, ["rules[0].id"],
                DetailContains: "U+0000");
            yield return new BadInput("a NUL for the document", path, "\"\\u0000\"", 400, ["$"], DetailContains: "U+0000");
        }
    }

    private IEnumerable<BadInput> PathCases(ApiRoute route)
    {
        var path = route.Path(A, A).Split('?')[0];
        if (route.TenantScoped)
        {
            yield return new BadInput("a tenant id that is not a UUID", path.Replace(A.TenantId.ToString(), "not-a-uuid", StringComparison.Ordinal),
                route.Body(A), 404, [], DetailContains: "UUID");
        }

        if (route.TakesObjectId)
        {
            var id = GuidPattern().Matches(path)[^1].Value;
            yield return new BadInput("an object id that is not a UUID", path.Replace(id, "12345", StringComparison.Ordinal), route.Body(A), 404, [], DetailContains: "UUID");
        }
    }

    // Values of another kind than the field's schema allows (OpenAPI 3.1: "type" may list several, "null" among them).
    private static IEnumerable<string> WrongValues(JsonNode schema)
    {
        var types = Types(schema);
        var format = (string?)schema["format"];
        if (types.Contains("boolean"))
        {
            return ["\"yes\"", "1", "[]"];
        }

        if (types.Contains("number") || types.Contains("integer"))
        {
            return ["\"many\"", "true", "[]", "{}", "1e400"];
        }

        if (types.Contains("array"))
        {
            return ["12", "\"read\"", "{}", "[1]"];
        }

        return format switch
        {
            "uuid" => ["\"not-a-uuid\"", "12", "[]"],
            "date-time" => ["\"yesterday\"", "\"2026-13-45T99:00:00Z\"", "12"],
            _ => ["12", "true", "{}", "[]"],
        };
    }

    private static HashSet<string> Types(JsonNode schema) => schema["type"] switch
    {
        JsonArray many => many.Select(t => (string)t!).ToHashSet(StringComparer.Ordinal),
        JsonValue one => [(string)one!],
        _ => [],
    };

    // ---------------------------------------------------------------------------------------------------------

    private Task<ApiResponse> SendAsync(ApiRoute route, BadInput bad) =>
        Server.SendAsync(route.HttpMethod, bad.Path, route.Capability is null ? A.MemberToken : A.OwnerToken, configure: request =>
        {
            if ((bad.Bytes ?? (bad.Body is null ? null : Encoding.UTF8.GetBytes(bad.Body))) is not { } body)
            {
                return;
            }

            request.Content = new ByteArrayContent(body);
            if (bad.ContentType is not null)
            {
                request.Content.Headers.ContentType = new MediaTypeHeaderValue(bad.ContentType) { CharSet = "utf-8" };
            }
        });

    // Why the response is not what the bad input must get, or null when it is.
    private static string? Mismatch(BadInput bad, ApiResponse response)
    {
        if (response.Code >= 500)
        {
            return "a server error";
        }

        if (response.Code != bad.Status)
        {
            return $"expected {bad.Status}";
        }

        if (response.Code < 400)
        {
            return null;
        }

        if (response.ContentType != ProblemJson)
        {
            return "not a problem document";
        }

        var problem = JsonNode.Parse(response.Body)!.AsObject();
        var detail = (string?)problem["detail"] ?? "";
        if ((int?)problem["status"] != bad.Status || detail.Length == 0)
        {
            return "a problem without its status or a detail";
        }

        if (bad.Fields.Length > 0)
        {
            var errors = problem["errors"]?.AsObject();
            if (errors is null || !bad.Fields.Any(f => errors.ContainsKey(f) && detail.Contains(f, StringComparison.Ordinal)))
            {
                return $"no error naming {string.Join(" or ", bad.Fields)}";
            }
        }

        return bad.DetailContains is { } expected && !detail.Contains(expected, StringComparison.Ordinal) ? $"the detail does not say '{expected}'" : null;
    }

    private static string With(JsonObject body, string field, JsonNode? value) => With(body, field, value, keep: false).ToJsonString();

    // keep: a null value leaves the field as it was (absent stays absent).
    private static JsonObject With(JsonObject body, string field, JsonNode? value, bool keep)
    {
        var copy = body.DeepClone().AsObject();
        if (value is not null || !keep)
        {
            copy[field] = value;
        }

        return copy;
    }

    // A field set to JSON text as written (an escape System.Text.Json would not write, such as a lone surrogate).
    private static string WithRaw(JsonObject body, string field, string json)
    {
        var copy = body.DeepClone().AsObject();
        copy.Remove(field);
        var rest = copy.ToJsonString();
        return rest.Length == 2 ? $"{{\"{field}\": {json}}}" : $"{{\"{field}\": {json}, {rest[1..]}";
    }

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static string Padded(string json, int bytes) => json[..^1] + new string(' ', bytes - json.Length) + json[^1];

    private static ByteArrayContent Json(string body)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    [GeneratedRegex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")]
    private static partial Regex GuidPattern();
}
