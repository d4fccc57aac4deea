using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Hourglass.Server.Api;

/// <summary>Who a request is: the role and claims PostgREST would set, from a verified token.</summary>
internal sealed record ApiCaller(string Role, Guid? UserId, IReadOnlyDictionary<string, object> Claims)
{
    public bool IsService => Role == ApiAuth.ServiceRole;
}

/// <summary>How tokens are checked: the keys, the audience and issuer, the clock skew.</summary>
internal sealed record ApiAuthSettings
{
    public const string SecretVariable = "HOURGLASS_JWT_SECRET";
    public const string JwksUrlVariable = "HOURGLASS_JWKS_URL";
    public const string JwksFileVariable = "HOURGLASS_JWKS_FILE";
    public const string AudienceVariable = "HOURGLASS_JWT_AUDIENCE";
    public const string IssuerVariable = "HOURGLASS_JWT_ISSUER";
    public const string JwksRefreshVariable = "HOURGLASS_JWKS_REFRESH_SECONDS";
    public const string JwksRefetchVariable = "HOURGLASS_JWKS_REFETCH_SECONDS";

    /// <summary>The legacy HS256 secret (≥ 32 bytes), or null.</summary>
    public byte[]? Secret { get; init; }

    /// <summary><c>aud</c> must be one of these (Supabase's user tokens: <c>authenticated</c>).</summary>
    public IReadOnlyList<string> Audiences { get; init; } = ["authenticated"];

    /// <summary><c>iss</c> must be one of these when set (Supabase: <c>https://&lt;ref&gt;.supabase.co/auth/v1</c>).</summary>
    public IReadOnlyList<string> Issuers { get; init; } = [];

    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Supabase-compatible authentication through Microsoft.IdentityModel's <see cref="JsonWebTokenHandler"/>: a JWT in
/// <c>Authorization: Bearer …</c> (a user's access token: <c>role</c> authenticated, <c>sub</c> the user) or in the
/// <c>apikey</c> header (the project's service key: <c>role</c> service_role), signed HS256 with the project's legacy
/// JWT secret or ES256/RS256 with a key of its JWKS (<see cref="JwksKeys"/>, chosen by <c>kid</c>). The library checks
/// the signature, the algorithm against the key's type, <c>exp</c>/<c>nbf</c> (30 s of skew), <c>aud</c> and <c>iss</c>;
/// before it, the token's shape is checked here so that a claim of the wrong type is a 401 naming it. Nothing a token
/// holds makes this throw: every refusal is a reason for the 401's detail.
/// </summary>
/// <remarks>
/// Service-role tokens: Supabase's legacy <c>service_role</c> key has no <c>aud</c> and <c>iss</c> "supabase", so a
/// token whose <c>role</c> is service_role is not held to the audience and issuer; its signature and lifetime are
/// checked like any other. Only the holder of the project's signing key can mint one (docs/api.md).
/// </remarks>
internal sealed partial class ApiAuth
{
    public const string ServiceRole = "service_role";
    public const string AuthenticatedRole = "authenticated";

    /// <summary>Where the middleware leaves a request's (caller, error) for the rate limiter and the endpoints.</summary>
    internal const string ResultKey = "Hourglass.Auth";

    // The latest second a NumericDate may name: the end of year 9999, DateTimeOffset's range.
    private const long MaxNumericDate = 253_402_300_799;

    private static readonly string[] s_asymmetric = [SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.RsaSha256];

    private readonly ApiAuthSettings _settings;
    private readonly SymmetricSecurityKey? _secret;
    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };
    private readonly TokenValidationParameters _parameters;

    /// <summary>HS256 with <paramref name="secret"/> only, audience <c>authenticated</c>: tests and tools.</summary>
    public ApiAuth(byte[] secret, TimeProvider time)
        : this(new ApiAuthSettings { Secret = secret }, null, time)
    {
    }

    internal ApiAuth(ApiAuthSettings settings, JwksKeys? jwks, TimeProvider time)
    {
        _settings = settings;
        Jwks = jwks;
        _secret = settings.Secret is { } secret ? new SymmetricSecurityKey(secret) : null;
        if (_secret is null && jwks is null)
        {
            throw new ArgumentException("a JWT secret or a JWKS is required", nameof(settings));
        }

        var clock = time;
        _parameters = new TokenValidationParameters
        {
            ClockSkew = settings.ClockSkew,
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            // The library's own lifetime check reads the wall clock; this is the same rule on the injected clock.
            LifetimeValidator = (notBefore, expires, _, parameters) =>
            {
                var now = clock.GetUtcNow().UtcDateTime;
                return expires is not { } expiry ? throw new SecurityTokenNoExpirationException("the token has no expiry")
                    : notBefore > expiry ? throw new SecurityTokenInvalidLifetimeException("nbf is after exp")
                    // The skew moves now, not the token's times: those may be DateTime's extremes (an absent nbf is MinValue).
                    : expiry < now - parameters.ClockSkew ? throw new SecurityTokenExpiredException("the token has expired") { Expires = expiry }
                    : notBefore is { } start && start > now + parameters.ClockSkew ? throw new SecurityTokenNotYetValidException("the token is not valid yet") { NotBefore = start }
                    : true;
            },
            ValidAlgorithms = [.. Accepted],
            // Keys by algorithm family and kid, never "try them all": an HS256 token is checked against the secret only,
            // an ES256/RS256 token against the JWKS keys of its type only (no algorithm confusion).
            TryAllIssuerSigningKeys = false,
            IssuerSigningKeyResolver = (_, token, kid, _) => KeysFor(((JsonWebToken)token).Alg, kid),
            AlgorithmValidator = (algorithm, key, _, _) => algorithm switch
            {
                SecurityAlgorithms.HmacSha256 => key is SymmetricSecurityKey && ReferenceEquals(key, _secret),
                SecurityAlgorithms.EcdsaSha256 => key is JsonWebKey { Kty: JsonWebAlgorithmsKeyTypes.EllipticCurve },
                SecurityAlgorithms.RsaSha256 => key is JsonWebKey { Kty: JsonWebAlgorithmsKeyTypes.RSA },
                _ => false,
            },
            ValidateAudience = true,
            // The audience is a user token's: the service role is exempt (see remarks), and any other role is refused by
            // name once the signature is known good (the anon key has no aud either).
            AudienceValidator = (audiences, token, _) =>
                !IsRole(token, AuthenticatedRole) || audiences.Any(a => settings.Audiences.Contains(a, StringComparer.Ordinal)),
            ValidateIssuer = settings.Issuers.Count > 0,
            // As the audience. The library calls this whether or not ValidateIssuer is set.
            IssuerValidator = (issuer, token, _) => settings.Issuers.Count == 0 || !IsRole(token, AuthenticatedRole) || settings.Issuers.Contains(issuer, StringComparer.Ordinal)
                ? issuer
                : throw new SecurityTokenInvalidIssuerException(issuer is null or ""
                    ? $"the token has no issuer ('iss'); it must be {Quote(settings.Issuers)}"
                    : $"the token's issuer ('iss') is '{issuer}', not {Quote(settings.Issuers)}"),
            NameClaimType = "sub",
            RoleClaimType = "role",
        };
    }

    /// <summary>The JWKS keys, when configured: <c>serve</c> runs their refresh loop.</summary>
    internal JwksKeys? Jwks { get; }

    /// <summary>The algorithms this server takes, from the keys it has.</summary>
    internal IEnumerable<string> Accepted =>
        (_secret is null ? [] : new[] { SecurityAlgorithms.HmacSha256 }).Concat(Jwks is null ? [] : s_asymmetric);

    /// <summary>
    /// The settings from the environment (docs/operations.md), with the JWKS read once; null when no key source is set
    /// (the API is then off). Throws <see cref="HourglassException"/> with one line naming the variable that is wrong.
    /// </summary>
    internal static async Task<ApiAuth?> FromEnvironmentAsync(HttpClient http, TimeProvider time, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var logger = loggers.CreateLogger("Hourglass.Api");
        var secretText = Variable(ApiAuthSettings.SecretVariable);
        byte[]? secret = null;
        if (secretText is { Length: >= 32 })
        {
            secret = Encoding.UTF8.GetBytes(secretText);
        }
        else if (secretText is not null)
        {
            LogShortSecret(logger);
        }

        var url = Variable(ApiAuthSettings.JwksUrlVariable);
        var file = Variable(ApiAuthSettings.JwksFileVariable);
        if (url is not null && file is not null)
        {
            throw new HourglassException($"{ApiAuthSettings.JwksUrlVariable} and {ApiAuthSettings.JwksFileVariable} are both set: set one");
        }

        if (secret is null && url is null && file is null)
        {
            return null;
        }

        var refresh = new JwksRefresh(
            Seconds(ApiAuthSettings.JwksRefreshVariable, JwksRefresh.Default.Every),
            Seconds(ApiAuthSettings.JwksRefetchVariable, JwksRefresh.Default.UnknownKidCooldown));
        JwksKeys? jwks = null;
        if (url is not null)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || !(uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback)))
            {
                throw new HourglassException($"{ApiAuthSettings.JwksUrlVariable}: '{url}' is not an https URL (e.g. https://<project-ref>.supabase.co/auth/v1/.well-known/jwks.json; plain http only on loopback)");
            }

            jwks = JwksKeys.FromUrl(uri, http, refresh, time, logger);
            await jwks.LoadAsync(ApiAuthSettings.JwksUrlVariable, cancellationToken);
        }
        else if (file is not null)
        {
            jwks = JwksKeys.FromFile(Path.GetFullPath(file), refresh, time, logger);
            await jwks.LoadAsync(ApiAuthSettings.JwksFileVariable, cancellationToken);
        }

        var settings = new ApiAuthSettings
        {
            Secret = secret,
            Audiences = List(ApiAuthSettings.AudienceVariable) is { Count: > 0 } audiences ? audiences : ["authenticated"],
            Issuers = List(ApiAuthSettings.IssuerVariable),
        };
        return new ApiAuth(settings, jwks, time);
    }

    /// <summary>The caller, or why not (for the 401's detail). Never throws for anything the token holds.</summary>
    public async Task<(ApiCaller? Caller, string? Error)> AuthenticateAsync(string? authorization, string? apiKey, CancellationToken cancellationToken)
    {
        var token = authorization is { } bearer && bearer.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            ? bearer["Bearer ".Length..].Trim()
            : apiKey?.Trim();
        if (string.IsNullOrEmpty(token))
        {
            return (null, "no token: send a user's access token as 'Authorization: Bearer …' or the service key as 'apikey'");
        }

        try
        {
            return await CheckAsync(token, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // A token is the sender's input: whatever the library throws on one is the token's fault, answered 401.
            return (null, "the token is malformed");
        }
    }

    private async Task<(ApiCaller? Caller, string? Error)> CheckAsync(string token, CancellationToken cancellationToken)
    {
        // The library's own reading (three base64url parts; five would be an encrypted JWE, refused below).
        if (!_handler.CanReadToken(token))
        {
            return (null, "the token is not a JWT (three base64url parts separated by dots)");
        }

        var parts = token.Split('.');
        if (parts.Length == 5)
        {
            return (null, "encrypted tokens (JWE) are not accepted: send the signed access token");
        }

        // The token's shape first, so that a claim of the wrong type is refused by name (the library's reader would
        // refuse most of these too, as "malformed"). Decoding is the library's; JSON is System.Text.Json's.
        byte[] header, payload;
        try
        {
            (header, payload) = (Base64UrlEncoder.DecodeBytes(parts[0]), Base64UrlEncoder.DecodeBytes(parts[1]));
        }
        catch (FormatException)
        {
            return (null, "the token is malformed: its header or payload is not base64url");
        }

        try
        {
            if (ShapeError(header, payload) is { } shape)
            {
                return (null, shape);
            }
        }
        catch (JsonException)
        {
            return (null, "the token is malformed: its header or payload is not JSON (UTF-8)");
        }

        JsonWebToken jwt;
        try
        {
            jwt = _handler.ReadJsonWebToken(token);
        }
        catch (ArgumentException)
        {
            return (null, "the token is malformed");
        }

        var alg = jwt.Alg;
        if (alg == SecurityAlgorithms.None || string.Equals(alg, "none", StringComparison.OrdinalIgnoreCase))
        {
            return (null, "the token is unsigned (alg 'none'): only signed tokens are accepted");
        }

        if (!Accepted.Contains(alg, StringComparer.Ordinal))
        {
            return (null, $"the token is signed {alg}; this server accepts {string.Join(" or ", Accepted)}");
        }

        // A kid the JWKS lacks may be a rotation: read the set again (at most once per cool-down) before judging.
        if (Jwks is not null && s_asymmetric.Contains(alg, StringComparer.Ordinal) && jwt.Kid is { Length: > 0 } kid && !Jwks.Has(kid))
        {
            await Jwks.RefetchForUnknownKidAsync(kid, cancellationToken);
        }

        var result = await _handler.ValidateTokenAsync(jwt, _parameters);
        if (!result.IsValid)
        {
            return (null, Reason(result.Exception, jwt));
        }

        using var claimsJson = JsonDocument.Parse(payload);
        var root = claimsJson.RootElement;
        var role = root.TryGetProperty("role", out var r) ? r.GetString() : null;
        var claims = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            claims[property.Name] = property.Value.Clone();
        }

        switch (role)
        {
            case ServiceRole:
                return (new ApiCaller(ServiceRole, null, claims), null);
            case AuthenticatedRole when root.TryGetProperty("sub", out var sub) && Guid.TryParseExact(sub.GetString(), "D", out var user):
                return (new ApiCaller(AuthenticatedRole, user, claims), null);
            case AuthenticatedRole:
                return (null, "the token has no user ('sub' must be the user's id, a UUID)");
            default:
                return (null, $"role '{role ?? "none"}' may not use this API (sign in for an authenticated token)");
        }
    }

    // The token's header and payload as JSON: what the library reads loosely is held to the types Supabase issues here,
    // so that a claim of the wrong type is refused by name instead of being coerced or tripping the library.
    private static string? ShapeError(byte[] headerJson, byte[] payloadJson)
    {
        using var header = JsonDocument.Parse(headerJson);
        if (header.RootElement.ValueKind != JsonValueKind.Object)
        {
            return "the token's header is not a JSON object";
        }

        if (!header.RootElement.TryGetProperty("alg", out var alg) || alg.ValueKind != JsonValueKind.String)
        {
            return "the token's header names no algorithm ('alg' must be a string)";
        }

        if (header.RootElement.TryGetProperty("kid", out var kid) && kid.ValueKind != JsonValueKind.String)
        {
            return "the token's header has a 'kid' that is not a string";
        }

        // RFC 7515 §4.1.11: a recipient that does not understand every extension named in 'crit' must refuse the token.
        if (header.RootElement.TryGetProperty("crit", out _))
        {
            return "the token's header names critical extensions ('crit') this server does not understand";
        }

        using var payload = JsonDocument.Parse(payloadJson);
        var root = payload.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return $"the token's payload is not a JSON object (it is {Kind(root)})";
        }

        foreach (var name in new[] { "exp", "nbf", "iat" })
        {
            if (root.TryGetProperty(name, out var value)
                && (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var seconds) || seconds is < 0 or > MaxNumericDate))
            {
                return $"the token's '{name}' must be a whole number of seconds since 1970 up to the year 9999 (it is {Kind(value)})";
            }
        }

        if (!root.TryGetProperty("exp", out _))
        {
            // Supabase puts exp in every token it issues, the service key included: a token without one never expires.
            return "the token has no expiry ('exp')";
        }

        foreach (var name in new[] { "role", "sub", "iss" })
        {
            if (root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.String)
            {
                return $"the token's '{name}' must be a string (it is {Kind(value)})";
            }
        }

        if (root.TryGetProperty("aud", out var aud)
            && aud.ValueKind != JsonValueKind.String
            && (aud.ValueKind != JsonValueKind.Array || aud.EnumerateArray().Any(a => a.ValueKind != JsonValueKind.String)))
        {
            return $"the token's 'aud' must be a string or an array of strings (it is {Kind(aud)})";
        }

        return null;
    }

    private string Reason(Exception? exception, JsonWebToken jwt) => exception switch
    {
        SecurityTokenExpiredException => "the token has expired",
        SecurityTokenNotYetValidException => "the token is not valid yet ('nbf' is in the future)",
        SecurityTokenNoExpirationException => "the token has no expiry ('exp')",
        SecurityTokenInvalidLifetimeException => "the token's lifetime is not valid ('nbf' after 'exp')",
        SecurityTokenInvalidAudienceException => $"the token's audience ('aud') is not {Quote(_settings.Audiences)} ({ApiAuthSettings.AudienceVariable})",
        SecurityTokenInvalidIssuerException ex => ex.Message.StartsWith("the token", StringComparison.Ordinal)
            ? $"{ex.Message} ({ApiAuthSettings.IssuerVariable})"
            : $"the token's issuer ('iss') is not {Quote(_settings.Issuers)} ({ApiAuthSettings.IssuerVariable})",
        SecurityTokenSignatureKeyNotFoundException when jwt.Alg == SecurityAlgorithms.HmacSha256 => "the token's signature is not valid",
        SecurityTokenSignatureKeyNotFoundException => $"the token is signed with a key this server does not know (kid '{jwt.Kid}'; keys from {Jwks?.Source})",
        SecurityTokenInvalidAlgorithmException => $"the token's algorithm ('alg' {jwt.Alg}) does not match its key",
        SecurityTokenInvalidSignatureException => "the token's signature is not valid",
        _ => "the token is malformed",
    };

    private IEnumerable<SecurityKey> KeysFor(string alg, string? kid) => alg switch
    {
        SecurityAlgorithms.HmacSha256 when _secret is not null => [_secret],
        SecurityAlgorithms.EcdsaSha256 when Jwks is not null => Jwks.Find(kid).OfType<JsonWebKey>().Where(k => k.Kty == JsonWebAlgorithmsKeyTypes.EllipticCurve),
        SecurityAlgorithms.RsaSha256 when Jwks is not null => Jwks.Find(kid).OfType<JsonWebKey>().Where(k => k.Kty == JsonWebAlgorithmsKeyTypes.RSA),
        _ => [],
    };

    private static bool IsRole(SecurityToken token, string role) =>
        token is JsonWebToken jwt && jwt.TryGetPayloadValue<string>("role", out var value) && value == role;

    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    private static string Quote(IEnumerable<string> values) => string.Join(" or ", values.Select(v => $"'{v}'"));

    /// <summary>Signs a token HS256 with the secret (for tests and for tools that mint short-lived service tokens).</summary>
    public string Sign(IReadOnlyDictionary<string, object> claims) =>
        ApiTokens.Sign(claims, _secret ?? throw new InvalidOperationException("no JWT secret to sign with"), SecurityAlgorithms.HmacSha256);

    private static string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

    private static List<string> List(string name) =>
        (Variable(name) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    private static TimeSpan Seconds(string name, TimeSpan fallback) => Variable(name) switch
    {
        null => fallback,
        var text when int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds > 0 => TimeSpan.FromSeconds(seconds),
        var text => throw new HourglassException($"{name}: '{text}' is not a positive whole number of seconds (the default is {fallback.TotalSeconds:0})"),
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "HOURGLASS_JWT_SECRET is shorter than 32 characters and is ignored: HS256 tokens are refused")]
    private static partial void LogShortSecret(ILogger logger);
}

/// <summary>What authenticating a request found: the caller, or why there is none.</summary>
internal sealed record ApiAuthResult(ApiCaller? Caller, string? Error);

/// <summary>Marks the API's endpoints (every route under <c>/api/v1</c>): they need a caller.</summary>
internal sealed class ApiRouteMetadata
{
    public static readonly ApiRouteMetadata Instance = new();

    private ApiRouteMetadata()
    {
    }
}

/// <summary>
/// The token is checked once, in middleware, before the rate limiter (which limits per caller) and before a request body
/// is read: an API request without a valid token is answered 401 without reading its body.
/// </summary>
internal static class ApiAuthentication
{
    /// <summary>Authenticates every <c>/api/v1</c> request; put it before <c>UseRateLimiter</c>.</summary>
    public static void UseApiAuthentication(this WebApplication app, ApiAuth auth) => app.Use(async (http, next) =>
    {
        if (http.Request.Path.StartsWithSegments("/api/v1", StringComparison.Ordinal))
        {
            var (caller, error) = await auth.AuthenticateAsync(http.Request.Headers.Authorization, http.Request.Headers["apikey"], http.RequestAborted);
            http.Items[ApiAuth.ResultKey] = new ApiAuthResult(caller, error);
        }

        await next(http);
    });

    /// <summary>Answers 401 for an API route without a caller; put it after <c>UseRateLimiter</c>.</summary>
    public static void UseApiUnauthorized(this WebApplication app) => app.Use(async (http, next) =>
    {
        if (http.GetEndpoint()?.Metadata.GetMetadata<ApiRouteMetadata>() is not null && Result(http) is { Caller: null } result)
        {
            await Unauthorized(http, result.Error).ExecuteAsync(http);
            return;
        }

        await next(http);
    });

    /// <summary>
    /// Admits a member's batch request before its body is read (<see cref="ApiSession.AdmitBatchAsync"/>); put it after
    /// <see cref="UseApiUnauthorized"/>.
    /// </summary>
    public static void UseApiBatchAdmission(this WebApplication app, Npgsql.NpgsqlDataSource dataSource) => app.Use(async (http, next) =>
    {
        if (http.GetEndpoint()?.Metadata.GetMetadata<ApiBatchRoute>() is not null
            && Result(http) is { Caller: { } caller }
            && Guid.TryParse(http.Request.RouteValues["tenantId"] as string, out var tenantId)
            && await ApiSession.AdmitBatchAsync(dataSource, http, caller, tenantId) is { } rejected)
        {
            await rejected.ExecuteAsync(http);
            return;
        }

        await next(http);
    });

    public static ApiAuthResult? Result(HttpContext http) => http.Items[ApiAuth.ResultKey] as ApiAuthResult;

    public static IResult Unauthorized(HttpContext http, string? detail)
    {
        http.Response.Headers.WWWAuthenticate = "Bearer";
        return Results.Problem(title: "Unauthorized", detail: detail, statusCode: StatusCodes.Status401Unauthorized,
            type: "https://hourglass.dev/problems/unauthorized");
    }
}
