using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Hourglass.Server.Api;

/// <summary>Who a request is: the role and claims PostgREST would set, from a verified token.</summary>
public sealed record ApiCaller(string Role, Guid? UserId, IReadOnlyDictionary<string, object> Claims)
{
    public bool IsService => Role == "service_role";
}

/// <summary>
/// Supabase-compatible authentication: a JWT signed HS256 with the project's JWT secret, in
/// <c>Authorization: Bearer …</c> (a user's access token: <c>role</c> authenticated, <c>sub</c> the user) or in the
/// <c>apikey</c> header (the project's service key: <c>role</c> service_role). The signature, <c>exp</c> and
/// <c>nbf</c> are checked (with 30 s of clock skew); the anon key is not enough for this API.
/// </summary>
public sealed class ApiAuth(byte[] secret, TimeProvider? time = null)
{
    private static readonly TimeSpan s_skew = TimeSpan.FromSeconds(30);
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>The secret from HOURGLASS_JWT_SECRET (Supabase: Project Settings → API → JWT secret); null when unset.</summary>
    public static ApiAuth? FromEnvironment() =>
        Environment.GetEnvironmentVariable("HOURGLASS_JWT_SECRET") is { Length: >= 32 } secret ? new ApiAuth(Encoding.UTF8.GetBytes(secret)) : null;

    /// <summary>The caller, or why not (for the 401's detail).</summary>
    public (ApiCaller? Caller, string? Error) Authenticate(string? authorization, string? apiKey)
    {
        var token = authorization is { } bearer && bearer.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            ? bearer["Bearer ".Length..].Trim()
            : apiKey?.Trim();
        if (string.IsNullOrEmpty(token))
        {
            return (null, "no token: send a user's access token as 'Authorization: Bearer …' or the service key as 'apikey'");
        }

        var parts = token.Split('.');
        if (parts.Length != 3)
        {
            return (null, "the token is not a JWT");
        }

        try
        {
            using var header = JsonDocument.Parse(Base64Url(parts[0]));
            if (!header.RootElement.TryGetProperty("alg", out var alg) || alg.GetString() != "HS256")
            {
                return (null, "the token is not signed HS256");
            }

            var expected = HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes($"{parts[0]}.{parts[1]}"));
            if (!CryptographicOperations.FixedTimeEquals(expected, Base64Url(parts[2])))
            {
                return (null, "the token's signature is not valid");
            }

            using var payload = JsonDocument.Parse(Base64Url(parts[1]));
            var root = payload.RootElement;
            var now = _time.GetUtcNow();
            // Supabase puts exp in every token it issues, the service key included: a token without one never expires.
            if (!root.TryGetProperty("exp", out var exp) || !exp.TryGetInt64(out var expires))
            {
                return (null, "the token has no expiry ('exp')");
            }

            if (DateTimeOffset.FromUnixTimeSeconds(expires) + s_skew < now)
            {
                return (null, "the token has expired");
            }

            if (root.TryGetProperty("nbf", out var nbf) && nbf.TryGetInt64(out var notBefore) && DateTimeOffset.FromUnixTimeSeconds(notBefore) - s_skew > now)
            {
                return (null, "the token is not valid yet");
            }

            var role = root.TryGetProperty("role", out var r) ? r.GetString() : null;
            var claims = new Dictionary<string, object>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                claims[property.Name] = property.Value.Clone();
            }

            switch (role)
            {
                case "service_role":
                    return (new ApiCaller("service_role", null, claims), null);
                case "authenticated" when root.TryGetProperty("sub", out var sub) && Guid.TryParse(sub.GetString(), out var user):
                    return (new ApiCaller("authenticated", user, claims), null);
                case "authenticated":
                    return (null, "the token has no user ('sub' must be the user's id)");
                default:
                    return (null, $"role '{role ?? "none"}' may not use this API (sign in for an authenticated token)");
            }
        }
        catch (Exception ex) when (ex is JsonException or FormatException)
        {
            return (null, "the token is malformed");
        }
    }

    /// <summary>Signs a token (for tests and for `hourglass` tools that mint short-lived service tokens).</summary>
    public string Sign(IReadOnlyDictionary<string, object> claims)
    {
        var header = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["alg"] = "HS256", ["typ"] = "JWT" }));
        var payload = Base64Url(JsonSerializer.SerializeToUtf8Bytes(claims));
        var signature = Base64Url(HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes($"{header}.{payload}")));
        return $"{header}.{payload}.{signature}";
    }

    private static byte[] Base64Url(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        padded += (padded.Length % 4) switch { 2 => "==", 3 => "=", _ => "" };
        return Convert.FromBase64String(padded);
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
