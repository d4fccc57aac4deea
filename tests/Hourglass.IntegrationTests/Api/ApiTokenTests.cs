using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Server.Api;
using Microsoft.IdentityModel.Tokens;

namespace Hourglass.IntegrationTests.Api;

/// <summary>
/// Tokens against a real <c>hourglass serve</c> whose keys are the legacy HS256 secret and a JWKS served by a real HTTP
/// listener on 127.0.0.1 (EC P-256 and RSA keys, as Supabase's asymmetric signing keys): a seeded fuzz of mutated tokens
/// (every one a 401 problem, none a 5xx or a 200), key rotation, a flood of unknown kids, and a JWKS that cannot be read.
/// </summary>
public sealed class ApiTokenTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private const int FuzzSeed = 15;
    private const int FuzzedTokens = 1_200;

    private ApiTenant A => fixture.A;

    /// <summary>Keys and the JWKS listener serving the public half of <see cref="Published"/>.</summary>
    private sealed class Issuer : IDisposable
    {
        private readonly List<IDisposable> _owned = [];

        public Issuer(params string[] kids)
        {
            Published = [.. kids.Select(Key)];
            Jwks = new LoopbackHttpServer(_ => ("application/json", Encoding.UTF8.GetBytes(ApiTokens.Jwks(Published))));
        }

        public volatile SecurityKey[] Published;

        public LoopbackHttpServer Jwks { get; }

        public string Url => Jwks.BaseUrl + "/auth/v1/.well-known/jwks.json";

        public int Fetches => Jwks.Requests.Count;

        /// <summary>A new key pair: "ec-…" kids are P-256, "rsa-…" kids RSA 2048.</summary>
        public SecurityKey Key(string kid)
        {
            if (kid.StartsWith("ec", StringComparison.Ordinal))
            {
                var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                _owned.Add(ec);
                return new ECDsaSecurityKey(ec) { KeyId = kid };
            }

            var rsa = RSA.Create(2048);
            _owned.Add(rsa);
            return new RsaSecurityKey(rsa) { KeyId = kid };
        }

        public void Dispose()
        {
            Jwks.Dispose();
            _owned.ForEach(o => o.Dispose());
        }
    }

    private static string Algorithm(SecurityKey key) => key is ECDsaSecurityKey ? SecurityAlgorithms.EcdsaSha256 : SecurityAlgorithms.RsaSha256;

    private static Dictionary<string, object> UserClaims(Guid user) => new(StringComparer.Ordinal)
    {
        ["sub"] = user.ToString(),
        ["role"] = "authenticated",
        ["aud"] = "authenticated",
        ["iat"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
        ["exp"] = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds(),
    };

    [Fact]
    public async Task Fuzz_ThousandsOfMutatedTokens_Every_One_401Problem_NoneServerErrorOrOk()
    {
        using var issuer = new Issuer("ec-fuzz", "rsa-fuzz");
        await using var server = await ApiServer.StartAsync(fixture.ConnectionString, new Dictionary<string, string?>
        {
            ["HOURGLASS_JWKS_URL"] = issuer.Url,
            ["HOURGLASS_API_RATE_LIMIT"] = "1000000",
            // One refetch for the whole run however many unknown kids the fuzz sends.
            ["HOURGLASS_JWKS_REFETCH_SECONDS"] = "3600",
        });
        var fuzz = new TokenFuzzer(new Random(FuzzSeed), new SymmetricSecurityKey(Encoding.UTF8.GetBytes(ApiServer.Secret)), issuer.Published, A.MemberId);
        var cases = Enumerable.Range(0, FuzzedTokens).Select(_ => fuzz.Next()).ToList();

        // The unmutated tokens the fuzz starts from are accepted: what makes each case a 401 is its mutation.
        foreach (var valid in fuzz.Originals())
        {
            var ok = await server.GetAsync(A.Path, valid);
            Assert.True(ok.Code == 200, ok.ToString());
        }

        var failures = new ConcurrentBag<string>();
        var statuses = new ConcurrentDictionary<int, int>();
        await Parallel.ForEachAsync(cases, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (fuzzed, _) =>
        {
            var response = await server.SendAsync(HttpMethod.Get, A.Path, token: null, configure: request =>
            {
                // Sent as they are: the client must not tidy up what the fuzz made.
                request.Headers.TryAddWithoutValidation(fuzzed.InApikey ? "apikey" : "Authorization", fuzzed.InApikey ? fuzzed.Token : $"Bearer {fuzzed.Token}");
            });
            statuses.AddOrUpdate(response.Code, 1, (_, n) => n + 1);
            string? type = null;
            try
            {
                type = (string?)JsonNode.Parse(response.Body)?["type"];
            }
            catch (JsonException)
            {
            }

            if (response.Code != 401 || response.ContentType != "application/problem+json" || type != "https://hourglass.dev/problems/unauthorized")
            {
                failures.Add($"{fuzzed.Mutation}: {response} — token {(fuzzed.Token.Length > 200 ? fuzzed.Token[..200] + "…" : fuzzed.Token)}");
            }
        });

        Assert.True(failures.IsEmpty, $"{failures.Count} of {cases.Count} not a 401 problem:\n{string.Join("\n", failures.Take(20))}");
        Assert.Equal(cases.Count, statuses.GetValueOrDefault(401));
        // Every family of mutation was sent, many times each.
        Assert.All(TokenFuzzer.Families, family => Assert.True(cases.Count(c => c.Mutation.StartsWith(family, StringComparison.Ordinal)) >= 50, family));
        // Hundreds of tokens named kids the JWKS lacks: the start-up read and at most one refetch reached the endpoint.
        Assert.InRange(issuer.Fetches, 1, 2);
        // The server is still well: the originals still pass.
        foreach (var valid in fuzz.Originals())
        {
            var ok = await server.GetAsync(A.Path, valid);
            Assert.True(ok.Code == 200, ok.ToString());
        }
    }

    [Fact]
    public async Task Jwks_Rotation_NewKeysAcceptedAfterRotation_RetiredKeysRefused_Hs256StillAccepted()
    {
        using var issuer = new Issuer("ec-1", "rsa-1");
        await using var server = await ApiServer.StartAsync(fixture.ConnectionString, new Dictionary<string, string?>
        {
            ["HOURGLASS_JWKS_URL"] = issuer.Url,
        });
        var (ec1, rsa1) = (issuer.Published[0], issuer.Published[1]);
        string TokenBy(SecurityKey key) => ApiTokens.Sign(UserClaims(A.MemberId), key, Algorithm(key));

        var beforeEc = await server.GetAsync(A.Path, TokenBy(ec1));
        var beforeRsa = await server.GetAsync(A.Path, TokenBy(rsa1));
        Assert.True(beforeEc.Code == 200, beforeEc.ToString());
        Assert.True(beforeRsa.Code == 200, beforeRsa.ToString());
        var fetchesBefore = issuer.Fetches;

        // Both keys rotate: the set now publishes ec-2 and rsa-2 only.
        var (ec2, rsa2) = (issuer.Key("ec-2"), issuer.Key("rsa-2"));
        issuer.Published = [ec2, rsa2];
        var afterEc = await server.GetAsync(A.Path, TokenBy(ec2));
        var afterRsa = await server.GetAsync(A.Path, TokenBy(rsa2));
        var retiredEc = await server.GetAsync(A.Path, TokenBy(ec1));
        var retiredRsa = await server.GetAsync(A.Path, TokenBy(rsa1));
        var legacy = await server.GetAsync(A.Path, A.MemberToken);

        Assert.True(afterEc.Code == 200, afterEc.ToString());
        Assert.True(afterRsa.Code == 200, afterRsa.ToString());
        Assert.Equal(fetchesBefore + 1, issuer.Fetches);
        foreach (var (retired, kid) in new[] { (retiredEc, "ec-1"), (retiredRsa, "rsa-1") })
        {
            var problem = ApiRouteTests.AssertProblem(retired, 401, "https://hourglass.dev/problems/unauthorized");
            Assert.Contains($"signed with a key this server does not know (kid '{kid}'", (string?)problem["detail"], StringComparison.Ordinal);
        }

        Assert.True(legacy.Code == 200, legacy.ToString());
    }

    [Fact]
    public async Task Jwks_AudienceAndIssuerSettings_Honoured()
    {
        using var issuer = new Issuer("ec-aud");
        await using var server = await ApiServer.StartAsync(fixture.ConnectionString, new Dictionary<string, string?>
        {
            ["HOURGLASS_JWKS_URL"] = issuer.Url,
            ["HOURGLASS_JWT_AUDIENCE"] = "hourglass-crm",
            ["HOURGLASS_JWT_ISSUER"] = "https://abcd.supabase.co/auth/v1",
        });
        var key = issuer.Published[0];
        var claims = UserClaims(A.MemberId);
        claims["aud"] = "hourglass-crm";
        claims["iss"] = "https://abcd.supabase.co/auth/v1";
        var wrongAudience = new Dictionary<string, object>(claims) { ["aud"] = "authenticated" };
        var wrongIssuer = new Dictionary<string, object>(claims) { ["iss"] = "https://other.supabase.co/auth/v1" };

        var ok = await server.GetAsync(A.Path, ApiTokens.Sign(claims, key, SecurityAlgorithms.EcdsaSha256));
        var audience = await server.GetAsync(A.Path, ApiTokens.Sign(wrongAudience, key, SecurityAlgorithms.EcdsaSha256));
        var issuerRefused = await server.GetAsync(A.Path, ApiTokens.Sign(wrongIssuer, key, SecurityAlgorithms.EcdsaSha256));
        // The legacy service key: no aud, iss "supabase" — service-role tokens are not held to either.
        var service = await server.SendAsync(HttpMethod.Get, A.Path, null, configure: r => r.Headers.Add("apikey", ApiServer.ServiceToken()));

        Assert.True(ok.Code == 200, ok.ToString());
        Assert.Contains("audience ('aud') is not 'hourglass-crm' (HOURGLASS_JWT_AUDIENCE)",
            (string?)ApiRouteTests.AssertProblem(audience, 401, "https://hourglass.dev/problems/unauthorized")["detail"], StringComparison.Ordinal);
        Assert.Contains("issuer ('iss') is 'https://other.supabase.co/auth/v1'",
            (string?)ApiRouteTests.AssertProblem(issuerRefused, 401, "https://hourglass.dev/problems/unauthorized")["detail"], StringComparison.Ordinal);
        Assert.True(service.Code == 200, service.ToString());
    }

    [Theory]
    [InlineData("unreachable")]
    [InlineData("not-a-jwks")]
    [InlineData("both")]
    public async Task Jwks_CannotBeRead_ServeStopsWithOneLine_BeforeAnythingStarts(string what)
    {
        using var html = new LoopbackHttpServer(_ => ("text/html", "<html>hello</html>"u8.ToArray()));
        var environment = new Dictionary<string, string?> { ["HOURGLASS_JWT_SECRET"] = ApiServer.Secret };
        string expected;
        switch (what)
        {
            case "unreachable":
                // A port nothing listens on (the listener that found it is gone).
                using (var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
                {
                    probe.Start();
                    environment["HOURGLASS_JWKS_URL"] = $"http://127.0.0.1:{((System.Net.IPEndPoint)probe.LocalEndpoint).Port}/jwks.json";
                }

                expected = $"hourglass: HOURGLASS_JWKS_URL: cannot read the JWKS at {environment["HOURGLASS_JWKS_URL"]}: ";
                break;
            case "not-a-jwks":
                environment["HOURGLASS_JWKS_URL"] = html.BaseUrl + "/jwks.json";
                expected = $"hourglass: HOURGLASS_JWKS_URL: cannot read the JWKS at {html.BaseUrl}/jwks.json: not a JWKS document";
                break;
            default:
                environment["HOURGLASS_JWKS_URL"] = html.BaseUrl + "/jwks.json";
                environment["HOURGLASS_JWKS_FILE"] = "/nonexistent/jwks.json";
                expected = "hourglass: HOURGLASS_JWKS_URL and HOURGLASS_JWKS_FILE are both set: set one";
                break;
        }

        var result = await HourglassProcess.RunAsync(environment, "serve", "--urls", "http://127.0.0.1:0", "--database", fixture.ConnectionString);

        Assert.Equal(1, result.ExitCode);
        var line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain("Serving on", result.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }
}

/// <summary>One fuzzed token, how it is sent, and the mutation that made it (its family first).</summary>
internal sealed record FuzzedToken(string Mutation, string Token, bool InApikey);

/// <summary>
/// Seeded mutations of valid tokens (HS256 with the secret, ES256 and RS256 with the JWKS keys), each of which must make
/// the token unacceptable: odd headers, claims of the wrong type or out of range, broken encodings, oversized parts,
/// payloads that are not objects, signatures that do not match. Where a mutation needs a valid signature to reach the
/// check it aims at, the token is re-signed over the mutated parts.
/// </summary>
internal sealed class TokenFuzzer(Random random, SymmetricSecurityKey secret, IReadOnlyList<SecurityKey> jwks, Guid user)
{
    public static readonly string[] Families = ["header", "claims", "payload", "encoding", "signature", "size"];

    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    private readonly List<Func<string>> _mutations = [];

    public IEnumerable<string> Originals()
    {
        yield return HmacOver("""{"alg":"HS256","typ":"JWT"}""", Json(Claims()));
        foreach (var key in jwks)
        {
            yield return SignedWith(key, Json(Claims()));
        }
    }

    public FuzzedToken Next()
    {
        var family = Families[random.Next(Families.Length)];
        var (name, token) = family switch
        {
            "header" => Header(),
            "claims" => Claim(),
            "payload" => Payload(),
            "encoding" => Encoding(),
            "signature" => Signature(),
            _ => Size(),
        };
        return new FuzzedToken($"{family}: {name}", token, random.Next(4) == 0);
    }

    private Dictionary<string, object?> Claims() => new(StringComparer.Ordinal)
    {
        ["sub"] = user.ToString(),
        ["role"] = "authenticated",
        ["aud"] = "authenticated",
        ["iat"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
        ["exp"] = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds(),
    };

    private static string Json(object? value) => JsonSerializer.Serialize(value);

    // Signs header and payload JSON with a key of the header's family (the secret for HS*, the JWKS keys otherwise).
    private string Signed(string header, string payload) => SignedBytes(System.Text.Encoding.UTF8.GetBytes(header), System.Text.Encoding.UTF8.GetBytes(payload));

    private string SignedBytes(byte[] header, byte[] payload)
    {
        var (key, alg) = random.Next(3) switch
        {
            0 => ((SecurityKey)secret, SecurityAlgorithms.HmacSha256),
            _ when jwks.Count > 0 && random.Next(2) == 0 => (jwks[0], Algorithm(jwks[0])),
            _ when jwks.Count > 1 => (jwks[1], Algorithm(jwks[1])),
            _ => (secret, SecurityAlgorithms.HmacSha256),
        };
        return ApiTokens.SignParts(ApiTokens.Encode(header), ApiTokens.Encode(payload), key, alg);
    }

    private static string Algorithm(SecurityKey key) => key is ECDsaSecurityKey ? SecurityAlgorithms.EcdsaSha256 : SecurityAlgorithms.RsaSha256;

    private static string HeaderFor(SecurityKey key, string alg) => Json(new Dictionary<string, object?> { ["alg"] = alg, ["typ"] = "JWT", ["kid"] = key.KeyId });

    private (string, string) Header()
    {
        var payload = Json(Claims());
        var kid = jwks.Count > 0 ? jwks[random.Next(jwks.Count)].KeyId : "none";
        object? odd = Odd();
        return random.Next(12) switch
        {
            0 => ("[]", HmacOver("[]", payload)),
            1 => ("{}", HmacOver("{}", payload)),
            2 => ("alg none", $"{ApiTokens.Encode("""{"alg":"none","typ":"JWT"}""")}.{ApiTokens.Encode(payload)}.{(random.Next(2) == 0 ? "" : RandomPart(43))}"),
            3 => ("alg HS512", HmacOver("""{"alg":"HS512","typ":"JWT"}""", payload)),
            4 => ("alg RS256, HMAC signature", HmacOver(Json(new { alg = "RS256", kid }), payload)),
            5 => ("HS256 with the public key as secret", ApiTokens.SignParts(ApiTokens.Encode(Json(new { alg = "HS256", kid })), ApiTokens.Encode(payload),
                new SymmetricSecurityKey(PublicKeyBytes()), SecurityAlgorithms.HmacSha256)),
            6 => ("unknown alg", HmacOver(Json(new { alg = RandomText(random.Next(1, 12)) }), payload)),
            7 => ($"kid {Kind(odd)}", HmacOver(Json(new Dictionary<string, object?> { ["alg"] = "HS256", ["kid"] = odd }), payload)),
            8 => ("crit", Signed(Json(new Dictionary<string, object?> { ["alg"] = "HS256", ["crit"] = random.Next(2) == 0 ? new[] { "exp" } : new[] { "b64" }, ["b64"] = false }), payload)),
            9 => ($"alg {Kind(odd)}", HmacOver(Json(new Dictionary<string, object?> { ["alg"] = odd }), payload)),
            10 => ("unknown kid", ApiTokens.SignParts(ApiTokens.Encode(Json(new { alg = "ES256", kid = $"rotated-{random.Next()}" })), ApiTokens.Encode(payload),
                Unknown(), SecurityAlgorithms.EcdsaSha256)),
            _ => ("ES256 header, signed by another key", ApiTokens.SignParts(ApiTokens.Encode(Json(new { alg = "ES256", kid })), ApiTokens.Encode(payload),
                Unknown(), SecurityAlgorithms.EcdsaSha256)),
        };
    }

    private string HmacOver(string header, string payload) =>
        ApiTokens.SignParts(ApiTokens.Encode(header), ApiTokens.Encode(payload), secret, SecurityAlgorithms.HmacSha256);

    private (string, string) Claim()
    {
        var claims = Claims();
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string name;
        switch (random.Next(16))
        {
            case 0: claims["exp"] = (now + 3600).ToString(System.Globalization.CultureInfo.InvariantCulture); name = "exp string"; break;
            case 1: claims["exp"] = now + 3600.5; name = "exp float"; break;
            case 2: claims["exp"] = random.Next(2) == 0 ? 1e300 : decimal.MaxValue; name = "exp huge"; break;
            case 3: claims["exp"] = -random.Next(1, int.MaxValue); name = "exp negative"; break;
            case 4: claims["exp"] = now - random.Next(120, 100_000); name = "exp past"; break;
            case 5: claims.Remove("exp"); name = "no exp"; break;
            case 6: claims["nbf"] = random.Next(2) == 0 ? now + random.Next(600, 100_000) : (object)"0"; name = "nbf future or string"; break;
            case 7: claims["sub"] = random.Next(3) switch { 0 => random.Next(), 1 => new[] { user.ToString() }, _ => null }; name = "sub number/array/null"; break;
            case 8: claims["sub"] = random.Next(2) == 0 ? RandomText(36) : user.ToString("N"); name = "sub not a UUID"; break;
            case 9: claims["role"] = random.Next(3) switch { 0 => random.Next(), 1 => new[] { "authenticated" }, _ => null }; name = "role number/array/null"; break;
            case 10: claims["role"] = new[] { "anon", "postgres", "supabase_admin", "Authenticated", "" }[random.Next(5)]; name = "role not allowed"; break;
            case 11: claims["aud"] = random.Next(3) switch { 0 => Array.Empty<string>(), 1 => new[] { "other", RandomText(5) }, _ => new object[] { "authenticated", 1 } }; name = "aud array"; break;
            case 12: claims["aud"] = random.Next(2) == 0 ? random.Next() : new Dictionary<string, object> { ["aud"] = "authenticated" }; name = "aud number/object"; break;
            case 13: claims["iat"] = "yesterday"; name = "iat string"; break;
            case 14: claims["role"] = "service_role"; claims["exp"] = now - 3600; name = "service role expired"; break;
            default: claims.Remove("aud"); name = "no aud"; break;
        }

        return (name, random.Next(2) == 0 ? HmacOver("""{"alg":"HS256","typ":"JWT"}""", Json(claims)) : SignedAsymmetric(Json(claims)));
    }

    // The same payload signed with a JWKS key (header with its kid), so the asymmetric path meets every claim too.
    private string SignedAsymmetric(string payload)
    {
        if (jwks.Count == 0)
        {
            return HmacOver("""{"alg":"HS256","typ":"JWT"}""", payload);
        }

        return SignedWith(jwks[random.Next(jwks.Count)], payload);
    }

    private string SignedWith(SecurityKey key, string payload) =>
        ApiTokens.SignParts(ApiTokens.Encode(HeaderFor(key, Algorithm(key))), ApiTokens.Encode(payload), key, Algorithm(key));

    private (string, string) Payload()
    {
        var (name, payload) = random.Next(7) switch
        {
            0 => ("array", Json(new object[] { Claims() })),
            1 => ("empty array", "[]"),
            2 => ("number", random.Next().ToString(System.Globalization.CultureInfo.InvariantCulture)),
            3 => ("string", "\"authenticated\""),
            4 => ("null", "null"),
            5 => ("boolean", "true"),
            _ => ("empty object", "{}"),
        };
        return (name, random.Next(2) == 0 ? HmacOver("""{"alg":"HS256","typ":"JWT"}""", payload) : SignedAsymmetric(payload));
    }

    private (string, string) Encoding()
    {
        var valid = Originals().ElementAt(random.Next(1 + jwks.Count));
        var parts = valid.Split('.');
        switch (random.Next(9))
        {
            case 0:
            {
                var part = random.Next(3);
                var at = random.Next(parts[part].Length + 1);
                // Not a space: around the token it is whitespace, trimmed as HTTP trims header values ("whitespace inside" has those).
                parts[part] = parts[part].Insert(at, "+/*!~=%"[random.Next(7)].ToString());
                return ("bad base64url character", string.Join('.', parts));
            }

            case 1:
                parts[random.Next(3)] += new string('=', random.Next(1, 3));
                return ("padding", string.Join('.', parts));
            case 2:
                return ("extra segment", string.Join('.', parts.Append(RandomPart(random.Next(0, 20)))));
            case 3:
                return ("missing segment", string.Join('.', parts.Take(random.Next(1, 3))));
            case 4:
                return ("five segments (JWE shape)", string.Join('.', parts.Concat([RandomPart(10), RandomPart(10)])));
            case 5:
            {
                var bytes = new byte[random.Next(1, 40)];
                random.NextBytes(bytes);
                bytes[0] = 0xff;
                return random.Next(2) == 0
                    ? ("non-UTF-8 header", SignedBytes([.. "{\"alg\":\"HS256\",\"x\":\""u8.ToArray(), .. bytes, .. "\"}"u8.ToArray()], System.Text.Encoding.UTF8.GetBytes(Json(Claims()))))
                    : ("non-UTF-8 payload", SignedBytes("{\"alg\":\"HS256\"}"u8.ToArray(), [.. System.Text.Encoding.UTF8.GetBytes(Json(Claims()))[..^1], .. ",\"x\":\""u8.ToArray(), .. bytes, .. "\"}"u8.ToArray()]));
            }

            case 6:
                return ("empty parts", new[] { "..", "...", ".", $"{parts[0]}..{parts[2]}", $".{parts[1]}.{parts[2]}" }[random.Next(5)]);
            case 7:
                return ("not JSON", HmacOver(RandomText(random.Next(1, 30)), RandomText(random.Next(1, 30))));
            default:
                return ("whitespace inside", valid.Insert(random.Next(1, valid.Length), " "));
        }
    }

    private (string, string) Signature()
    {
        var valid = Originals().ElementAt(random.Next(1 + jwks.Count));
        var parts = valid.Split('.');
        switch (random.Next(5))
        {
            case 0:
                parts[2] = parts[2][..random.Next(parts[2].Length)];
                return ("truncated signature", string.Join('.', parts));
            case 1:
                parts[2] = Flip(parts[2]);
                return ("flipped signature character", string.Join('.', parts));
            case 2:
                parts[1] = Flip(parts[1]);
                return ("flipped payload character", string.Join('.', parts));
            case 3:
                parts[1] = ApiTokens.Encode(Json(new Dictionary<string, object?>(Claims()) { ["role"] = "service_role" }));
                return ("payload swapped for a service role's", string.Join('.', parts));
            default:
                parts[2] = RandomPart(random.Next(0, 400));
                return ("random signature", string.Join('.', parts));
        }
    }

    private (string, string) Size()
    {
        var big = RandomText(random.Next(4_000, 12_000));
        var claims = Claims();
        claims["padding"] = big;
        switch (random.Next(4))
        {
            case 0:
                claims["exp"] = DateTimeOffset.UtcNow.AddDays(-1).ToUnixTimeSeconds();
                return ("large expired payload", Signed("""{"alg":"HS256"}""", Json(claims)));
            case 1:
                return ("large header, wrong alg", HmacOver(Json(new { alg = "HS384", padding = big }), Json(Claims())));
            case 2:
                var parts = HmacOver("""{"alg":"HS256","typ":"JWT"}""", Json(claims)).Split('.');
                return ("large payload, bad signature", $"{parts[0]}.{parts[1]}.{Flip(parts[2])}");
            default:
                return ("large signature", $"{ApiTokens.Encode("""{"alg":"HS256"}""")}.{ApiTokens.Encode(Json(Claims()))}.{RandomPart(big.Length)}");
        }
    }

    private object? Odd() => random.Next(6) switch
    {
        0 => random.Next(),
        1 => new[] { "a", "b" },
        2 => new Dictionary<string, object> { ["kid"] = "x" },
        3 => true,
        4 => 1.5,
        _ => null,
    };

    private static string Kind(object? value) => value switch
    {
        null => "null",
        string => "string",
        bool => "boolean",
        int or double => "number",
        Array => "array",
        _ => "object",
    };

    private byte[] PublicKeyBytes() => jwks.OfType<RsaSecurityKey>().FirstOrDefault()?.Rsa?.ExportSubjectPublicKeyInfo() ?? System.Text.Encoding.UTF8.GetBytes(RandomText(64));

    private static ECDsaSecurityKey Unknown() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256)) { KeyId = "unknown" };

    private string Flip(string part)
    {
        if (part.Length == 0)
        {
            return "A";
        }

        var at = random.Next(part.Length);
        var replacement = Alphabet[(Alphabet.IndexOf(part[at], StringComparison.Ordinal) + 1 + random.Next(Alphabet.Length - 1)) % Alphabet.Length];
        return part[..at] + replacement + part[(at + 1)..];
    }

    private string RandomPart(int length) => new(Enumerable.Range(0, length).Select(_ => Alphabet[random.Next(Alphabet.Length)]).ToArray());

    private string RandomText(int length) => new(Enumerable.Range(0, length).Select(_ => (char)random.Next(0x21, 0x7f)).ToArray());
}
