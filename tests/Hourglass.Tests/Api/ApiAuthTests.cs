using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Hourglass.Server.Api;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;

namespace Hourglass.Tests.Api;

/// <summary>
/// ApiAuth without a server: which tokens pass and which are refused with which reason, on a fake clock. HS256 tokens
/// with the legacy secret; ES256 and RS256 tokens with keys from a JWKS file, chosen by kid and read again on rotation.
/// </summary>
public sealed class ApiAuthTests : IDisposable
{
    private const string Secret = "unit-tests-jwt-secret-0123456789abcdef";
    private static readonly DateTimeOffset s_now = new(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);
    private static readonly Guid s_user = Guid.Parse("6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70");

    private readonly FakeTimeProvider _time = new(s_now);
    private readonly SymmetricSecurityKey _secret = new(Encoding.UTF8.GetBytes(Secret));
    private readonly ECDsa _ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly RSA _rsa = RSA.Create(2048);
    private readonly string _jwksFile = Path.Combine(Path.GetTempPath(), $"hourglass-jwks-{Guid.NewGuid():N}.json");

    public void Dispose()
    {
        _ec.Dispose();
        _rsa.Dispose();
        File.Delete(_jwksFile);
    }

    private ECDsaSecurityKey EcKey(string kid = "ec-1") => new(_ec) { KeyId = kid };

    private RsaSecurityKey RsaKey(string kid = "rsa-1") => new(_rsa) { KeyId = kid };

    private ApiAuth Hs256(ApiAuthSettings? settings = null) =>
        new((settings ?? new ApiAuthSettings()) with { Secret = Encoding.UTF8.GetBytes(Secret) }, null, _time);

    private async Task<(ApiAuth Auth, JwksKeys Keys)> WithJwksAsync(TimeSpan? cooldown = null, params SecurityKey[] published)
    {
        await File.WriteAllTextAsync(_jwksFile, ApiTokens.Jwks(published));
        var keys = JwksKeys.FromFile(_jwksFile, new JwksRefresh(TimeSpan.FromMinutes(10), cooldown ?? TimeSpan.FromSeconds(30)), _time);
        await keys.LoadAsync(ApiAuthSettings.JwksFileVariable, CancellationToken.None);
        return (new ApiAuth(new ApiAuthSettings { Secret = Encoding.UTF8.GetBytes(Secret) }, keys, _time), keys);
    }

    private static Dictionary<string, object> User(TimeSpan? lifetime = null) => new(StringComparer.Ordinal)
    {
        ["sub"] = s_user.ToString(),
        ["role"] = "authenticated",
        ["aud"] = "authenticated",
        ["iat"] = s_now.ToUnixTimeSeconds(),
        ["exp"] = s_now.Add(lifetime ?? TimeSpan.FromHours(1)).ToUnixTimeSeconds(),
        ["email"] = "a@example.com",
        ["app_metadata"] = new Dictionary<string, object> { ["provider"] = "email" },
    };

    private static async Task<string?> RefusedAsync(ApiAuth auth, string token)
    {
        var (caller, error) = await auth.AuthenticateAsync($"Bearer {token}", null, CancellationToken.None);
        Assert.Null(caller);
        Assert.False(string.IsNullOrEmpty(error));
        return error;
    }

    // A token whose payload is the given JSON text, validly signed HS256 with the secret.
    private string SignedPayload(string json, string? header = null) =>
        ApiTokens.SignParts(ApiTokens.Encode(header ?? """{"alg":"HS256","typ":"JWT"}"""), ApiTokens.Encode(json), _secret, SecurityAlgorithms.HmacSha256);

    [Fact]
    public async Task AuthenticateAsync_UserTokenHs256_CallerWithUserAndEveryClaimAsJson()
    {
        var auth = Hs256();

        var (caller, error) = await auth.AuthenticateAsync($"Bearer {auth.Sign(User())}", null, CancellationToken.None);

        Assert.Null(error);
        Assert.Equal("authenticated", caller!.Role);
        Assert.Equal(s_user, caller.UserId);
        // As PostgREST sets request.jwt.claims: the payload's JSON, nested objects included.
        var json = JsonSerializer.Serialize(caller.Claims);
        using var claims = JsonDocument.Parse(json);
        Assert.Equal("email", claims.RootElement.GetProperty("app_metadata").GetProperty("provider").GetString());
        Assert.Equal(s_now.Add(TimeSpan.FromHours(1)).ToUnixTimeSeconds(), claims.RootElement.GetProperty("exp").GetInt64());
        Assert.Equal("a@example.com", claims.RootElement.GetProperty("email").GetString());
    }

    [Fact]
    public async Task AuthenticateAsync_LegacyServiceKeyWithoutAud_ServiceRole()
    {
        // Supabase's legacy service_role key: iss "supabase", a project ref, no aud.
        var auth = Hs256(new ApiAuthSettings { Issuers = ["https://abcd.supabase.co/auth/v1"] });
        var token = auth.Sign(new Dictionary<string, object>
        {
            ["iss"] = "supabase", ["ref"] = "abcd", ["role"] = "service_role", ["iat"] = s_now.ToUnixTimeSeconds(), ["exp"] = s_now.AddYears(10).ToUnixTimeSeconds(),
        });

        var (caller, error) = await auth.AuthenticateAsync(null, token, CancellationToken.None);

        Assert.Null(error);
        Assert.True(caller!.IsService);
        Assert.Null(caller.UserId);
    }

    [Fact]
    public async Task AuthenticateAsync_BearerAndApikey_BearerIsTheCaller()
    {
        var auth = Hs256();
        var service = auth.Sign(new Dictionary<string, object> { ["role"] = "service_role", ["exp"] = s_now.AddHours(1).ToUnixTimeSeconds() });

        var (caller, _) = await auth.AuthenticateAsync($"Bearer {auth.Sign(User())}", service, CancellationToken.None);

        Assert.Equal(s_user, caller!.UserId);
    }

    [Theory]
    [InlineData("other", "audience ('aud') is not 'authenticated'")]
    [InlineData(null, "audience ('aud') is not 'authenticated'")]
    public async Task AuthenticateAsync_UserTokenForAnotherAudience_Refused(string? audience, string reason)
    {
        var auth = Hs256();
        var claims = User();
        claims.Remove("aud");
        if (audience is not null)
        {
            claims["aud"] = audience;
        }

        Assert.Contains(reason, await RefusedAsync(auth, auth.Sign(claims)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuthenticateAsync_ConfiguredAudiences_AnyOfThemAndArraysAccepted()
    {
        var auth = Hs256(new ApiAuthSettings { Audiences = ["crm", "authenticated"] });
        var claims = User();
        claims["aud"] = new[] { "somewhere-else", "crm" };

        var (caller, error) = await auth.AuthenticateAsync($"Bearer {auth.Sign(claims)}", null, CancellationToken.None);

        Assert.Null(error);
        Assert.NotNull(caller);
    }

    [Fact]
    public async Task AuthenticateAsync_IssuerConfigured_OtherIssuerRefused_ThatIssuerAccepted()
    {
        var auth = Hs256(new ApiAuthSettings { Issuers = ["https://abcd.supabase.co/auth/v1"] });
        var claims = User();
        claims["iss"] = "https://evil.example/auth/v1";
        var right = User();
        right["iss"] = "https://abcd.supabase.co/auth/v1";

        Assert.Contains("issuer ('iss') is 'https://evil.example/auth/v1'", await RefusedAsync(auth, auth.Sign(claims)), StringComparison.Ordinal);
        Assert.NotNull((await auth.AuthenticateAsync($"Bearer {auth.Sign(right)}", null, CancellationToken.None)).Caller);
        right.Remove("iss");
        Assert.Contains("issuer", await RefusedAsync(auth, auth.Sign(right)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuthenticateAsync_Lifetime_OnTheInjectedClock_WithThirtySecondsOfSkew()
    {
        var auth = Hs256();
        var token = auth.Sign(User(TimeSpan.FromMinutes(5)));

        _time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(29));
        Assert.NotNull((await auth.AuthenticateAsync($"Bearer {token}", null, CancellationToken.None)).Caller);
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal("the token has expired", await RefusedAsync(auth, token));

        var early = User();
        early["nbf"] = s_now.AddMinutes(10).ToUnixTimeSeconds();
        early["exp"] = s_now.AddMinutes(20).ToUnixTimeSeconds();
        Assert.Contains("not valid yet", await RefusedAsync(auth, auth.Sign(early)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":"authenticated","exp":"1796644800"}""", "'exp' must be a whole number")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":"authenticated","exp":1796644800.5}""", "'exp' must be a whole number")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":"authenticated","exp":1e300}""", "'exp' must be a whole number")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":"authenticated","exp":99999999999999999999}""", "'exp' must be a whole number")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":"authenticated","exp":253402300800}""", "'exp' must be a whole number")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":"authenticated","exp":-1}""", "'exp' must be a whole number")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":"authenticated","exp":null}""", "'exp' must be a whole number")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":"authenticated","exp":1796644800,"nbf":"0"}""", "'nbf' must be a whole number")]
    [InlineData("""{"sub":42,"role":"authenticated","aud":"authenticated","exp":1796644800}""", "'sub' must be a string (it is the number 42)")]
    [InlineData("""{"sub":["6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70"],"role":"authenticated","aud":"authenticated","exp":1796644800}""", "'sub' must be a string (it is an array)")]
    [InlineData("""{"sub":null,"role":"authenticated","aud":"authenticated","exp":1796644800}""", "'sub' must be a string (it is null)")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":7,"aud":"authenticated","exp":1796644800}""", "'role' must be a string")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":5,"exp":1796644800}""", "'aud' must be a string or an array of strings")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":["authenticated",1],"exp":1796644800}""", "'aud' must be a string or an array of strings")]
    [InlineData("""{"sub":"6f1c2b3a-9d84-4e0f-8a11-2b3c4d5e6f70","role":"authenticated","aud":"authenticated"}""", "no expiry")]
    [InlineData("""{"sub":"not-a-uuid","role":"authenticated","aud":"authenticated","exp":1796644800}""", "no user ('sub' must be the user's id")]
    [InlineData("""{"role":"anon","aud":"authenticated","exp":1796644800}""", "role 'anon' may not use this API")]
    [InlineData("""[{"role":"service_role","exp":1796644800}]""", "payload is not a JSON object (it is an array)")]
    [InlineData("42", "payload is not a JSON object")]
    [InlineData("\"service_role\"", "payload is not a JSON object")]
    public async Task AuthenticateAsync_ValidlySignedClaimOfTheWrongType_RefusedNamingIt(string payload, string reason)
    {
        var refused = await RefusedAsync(Hs256(), SignedPayload(payload));

        Assert.Contains(reason, refused, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[]", "")]
    [InlineData("{}", "names no algorithm")]
    [InlineData("""{"alg":null}""", "names no algorithm")]
    [InlineData("""{"alg":"HS256","kid":7}""", "'kid' that is not a string")]
    [InlineData("""{"alg":"HS256","kid":{"a":1}}""", "'kid' that is not a string")]
    [InlineData("""{"alg":"HS256","crit":["exp"]}""", "critical extensions")]
    [InlineData("""{"alg":"none"}""", "")]
    [InlineData("""{"alg":"HS512"}""", "is signed HS512; this server accepts HS256")]
    [InlineData("""{"alg":"RS256"}""", "is signed RS256; this server accepts HS256")]
    [InlineData("""{"alg":"XY999"}""", "is signed XY999")]
    public async Task AuthenticateAsync_OddHeader_Refused(string header, string reason)
    {
        var payload = JsonSerializer.Serialize(User());

        var refused = await RefusedAsync(Hs256(), SignedPayload(payload, header));

        Assert.Contains(reason, refused, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not-a-jwt", "not a JWT")]
    [InlineData("a.b", "not a JWT")]
    [InlineData("a.b.c.d", "not a JWT")]
    [InlineData("e30.e30.AAAA", "names no algorithm")]
    [InlineData("W10.e30.", "")]
    [InlineData("eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.", "")]
    [InlineData("eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ", "not a JWT")]
    [InlineData("e30=.e30=.AAAA", "")]
    [InlineData("eyJhbGciOiJIUzI1NiJ9.//8.AAAA", "")]
    [InlineData("a.b.c.d.e", "")]
    public async Task AuthenticateAsync_BadEncoding_Refused(string token, string reason)
    {
        Assert.Contains(reason, await RefusedAsync(Hs256(), token), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuthenticateAsync_NoToken_RefusedSayingHowToSendOne()
    {
        var (caller, error) = await Hs256().AuthenticateAsync(null, null, CancellationToken.None);

        Assert.Null(caller);
        Assert.StartsWith("no token", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuthenticateAsync_OtherSecret_SignatureNotValid()
    {
        var forged = new ApiAuth(Encoding.UTF8.GetBytes("another-secret-0123456789abcdefghijkl"), _time).Sign(User());

        Assert.Equal("the token's signature is not valid", await RefusedAsync(Hs256(), forged));
    }

    [Fact]
    public async Task AuthenticateAsync_Es256AndRs256FromTheJwks_ChosenByKid()
    {
        var (auth, _) = await WithJwksAsync(null, EcKey(), RsaKey());

        foreach (var (key, alg) in new (SecurityKey, string)[] { (EcKey(), SecurityAlgorithms.EcdsaSha256), (RsaKey(), SecurityAlgorithms.RsaSha256) })
        {
            var (caller, error) = await auth.AuthenticateAsync($"Bearer {ApiTokens.Sign(User(), key, alg)}", null, CancellationToken.None);
            Assert.Null(error);
            Assert.Equal(s_user, caller!.UserId);
        }

        // The right key under another key's kid: the kid decides, and that key does not verify it.
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        Assert.Contains("signature", await RefusedAsync(auth, ApiTokens.Sign(User(), new ECDsaSecurityKey(other) { KeyId = "ec-1" }, SecurityAlgorithms.EcdsaSha256)),
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuthenticateAsync_AlgorithmConfusion_HmacWithThePublicKeyOrMismatchedFamily_Refused()
    {
        var (auth, _) = await WithJwksAsync(null, EcKey(), RsaKey());
        // The classic attack: HS256 "signed" with the RSA public key's bytes, under the RSA key's kid.
        var publicKeyBytes = _rsa.ExportSubjectPublicKeyInfo();
        var confused = ApiTokens.SignParts(ApiTokens.Encode("""{"alg":"HS256","kid":"rsa-1"}"""), ApiTokens.Encode(JsonSerializer.Serialize(User())),
            new SymmetricSecurityKey(publicKeyBytes), SecurityAlgorithms.HmacSha256);
        // An ES256 header naming the RSA key, signed with the EC key.
        var family = ApiTokens.SignParts(ApiTokens.Encode("""{"alg":"ES256","kid":"rsa-1"}"""), ApiTokens.Encode(JsonSerializer.Serialize(User())),
            EcKey(), SecurityAlgorithms.EcdsaSha256);

        Assert.Equal("the token's signature is not valid", await RefusedAsync(auth, confused));
        Assert.Contains("key this server does not know", await RefusedAsync(auth, family), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuthenticateAsync_JwksOnly_Hs256Refused()
    {
        await File.WriteAllTextAsync(_jwksFile, ApiTokens.Jwks([EcKey()]));
        var keys = JwksKeys.FromFile(_jwksFile, JwksRefresh.Default, _time);
        await keys.LoadAsync(ApiAuthSettings.JwksFileVariable, CancellationToken.None);
        var auth = new ApiAuth(new ApiAuthSettings(), keys, _time);

        Assert.Contains("is signed HS256; this server accepts ES256 or RS256", await RefusedAsync(auth, Hs256().Sign(User())), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuthenticateAsync_Rotation_UnknownKidRereadsTheSet_RetiredKeyRefused()
    {
        var (auth, keys) = await WithJwksAsync(null, EcKey("old"));
        using var next = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var newKey = new ECDsaSecurityKey(next) { KeyId = "new" };
        var oldToken = ApiTokens.Sign(User(), EcKey("old"), SecurityAlgorithms.EcdsaSha256);
        Assert.NotNull((await auth.AuthenticateAsync($"Bearer {oldToken}", null, CancellationToken.None)).Caller);

        await File.WriteAllTextAsync(_jwksFile, ApiTokens.Jwks([newKey]));
        var (caller, error) = await auth.AuthenticateAsync($"Bearer {ApiTokens.Sign(User(), newKey, SecurityAlgorithms.EcdsaSha256)}", null, CancellationToken.None);

        Assert.Null(error);
        Assert.NotNull(caller);
        Assert.Equal(2, keys.Fetches);
        Assert.Contains("key this server does not know (kid 'old'", await RefusedAsync(auth, oldToken), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RefetchForUnknownKidAsync_FloodOfBogusKids_OneReadPerCooldown()
    {
        var (auth, keys) = await WithJwksAsync(TimeSpan.FromSeconds(30), EcKey());
        using var bogus = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        for (var i = 0; i < 200; i++)
        {
            await RefusedAsync(auth, ApiTokens.Sign(User(), new ECDsaSecurityKey(bogus) { KeyId = $"bogus-{i}" }, SecurityAlgorithms.EcdsaSha256));
        }

        Assert.Equal(2, keys.Fetches);
        _time.Advance(TimeSpan.FromSeconds(31));
        await RefusedAsync(auth, ApiTokens.Sign(User(TimeSpan.FromHours(2)), new ECDsaSecurityKey(bogus) { KeyId = "bogus-late" }, SecurityAlgorithms.EcdsaSha256));
        Assert.Equal(3, keys.Fetches);
    }

    [Fact]
    public async Task RunRefreshLoopAsync_EveryInterval_PicksUpANewSet()
    {
        var (auth, keys) = await WithJwksAsync(null, EcKey("first"));
        using var cancellation = new CancellationTokenSource();
        var loop = keys.RunRefreshLoopAsync(cancellation.Token);
        await File.WriteAllTextAsync(_jwksFile, ApiTokens.Jwks([EcKey("second")]));

        _time.Advance(TimeSpan.FromMinutes(10));
        for (var i = 0; i < 200 && keys.Fetches < 2; i++)
        {
            await Task.Delay(10);
        }

        await cancellation.CancelAsync();
        await loop;
        Assert.Equal(2, keys.Fetches);
        Assert.True(keys.Has("second"));
        Assert.False(keys.Has("first"));
        Assert.NotNull((await auth.AuthenticateAsync($"Bearer {ApiTokens.Sign(User(), EcKey("second"), SecurityAlgorithms.EcdsaSha256)}", null, CancellationToken.None)).Caller);
    }

    [Theory]
    [InlineData("not json", "not a JWKS document")]
    [InlineData("""{"keys": 5}""", "not a JWKS document")]
    public async Task LoadAsync_NotAJwks_OneLineNamingTheSetting(string content, string reason)
    {
        await File.WriteAllTextAsync(_jwksFile, content);
        var keys = JwksKeys.FromFile(_jwksFile, JwksRefresh.Default, _time);

        var error = await Assert.ThrowsAsync<HourglassException>(() => keys.LoadAsync(ApiAuthSettings.JwksFileVariable, CancellationToken.None));

        Assert.StartsWith($"HOURGLASS_JWKS_FILE: cannot read the JWKS at {_jwksFile}: {reason}", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public async Task LoadAsync_MissingFile_OneLine()
    {
        var keys = JwksKeys.FromFile(_jwksFile + ".missing", JwksRefresh.Default, _time);

        var error = await Assert.ThrowsAsync<HourglassException>(() => keys.LoadAsync(ApiAuthSettings.JwksFileVariable, CancellationToken.None));

        Assert.Equal($"HOURGLASS_JWKS_FILE: cannot read the JWKS at {_jwksFile}.missing: no such file", error.Message);
    }

    [Fact]
    public void Usable_KeepsOnlyPublicEs256AndRs256SigningKeys()
    {
        var json = """
            {"keys": [
              {"kty": "oct", "kid": "sym", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
              {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AAAA", "y": "AAAA"},
              {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}
            ]}
            """;
        var published = JsonSerializer.Deserialize<Dictionary<string, JsonElement[]>>(ApiTokens.Jwks([EcKey(), RsaKey()]))!["keys"];
        var withPublished = json.Replace("]}", "," + string.Join(",", published.Select(k => k.GetRawText())) + "]}", StringComparison.Ordinal);

        var keys = JwksKeys.Usable(withPublished);

        Assert.Equal(["ec-1", "rsa-1"], keys.Select(k => k.KeyId).Order(StringComparer.Ordinal));
        Assert.DoesNotContain("\"d\"", ApiTokens.Jwks([EcKey(), RsaKey()]), StringComparison.Ordinal);
    }
}
