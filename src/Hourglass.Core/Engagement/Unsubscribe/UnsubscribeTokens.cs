using System.Globalization;
using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Hourglass.Engagement.Unsubscribe;

/// <summary>What an unsubscribe token names: the tenant, the contact and the message that carried it.</summary>
internal sealed record UnsubscribeClaims(Guid TenantId, Guid ContactId, Guid MessageId);

/// <summary>
/// Makes and checks the signed per-contact tokens of one-click unsubscribe links (RFC 8058; docs/unsubscribe.md): a
/// JWT signed HS256 with the operator's secret by Microsoft.IdentityModel's <see cref="JsonWebTokenHandler"/>, with the
/// tenant (<c>tid</c>), the contact (<c>sub</c>), the message (<c>mid</c>) and an expiry. Its own issuer and audience
/// keep it apart from API tokens even if an operator were to reuse a secret.
/// </summary>
internal sealed class UnsubscribeTokens
{
    public const string SecretVariable = "HOURGLASS_UNSUBSCRIBE_SECRET";
    public const string PublicUrlVariable = "HOURGLASS_PUBLIC_URL";
    public const string LifetimeVariable = "HOURGLASS_UNSUBSCRIBE_TOKEN_DAYS";
    public const int MinimumSecretLength = 32;

    private const string Issuer = "hourglass";
    private const string Audience = "hourglass-unsubscribe";

    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false, SetDefaultTimesOnTokenCreation = false };
    private readonly SymmetricSecurityKey _key;
    private readonly TokenValidationParameters _parameters;
    private readonly TimeProvider _time;

    public UnsubscribeTokens(byte[] secret, Uri publicUrl, TimeSpan lifetime, TimeProvider time)
    {
        if (secret.Length < MinimumSecretLength)
        {
            throw new ArgumentException($"the unsubscribe secret needs at least {MinimumSecretLength} bytes", nameof(secret));
        }

        _key = new SymmetricSecurityKey(secret);
        PublicUrl = publicUrl;
        Lifetime = lifetime;
        _time = time;
        _parameters = new TokenValidationParameters
        {
            IssuerSigningKey = _key,
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            ClockSkew = TimeSpan.Zero,
            // The library's own lifetime check reads the wall clock; the same rule on the injected clock.
            LifetimeValidator = (_, expires, _, _) => expires is not { } expiry
                ? throw new SecurityTokenNoExpirationException("the token has no expiry")
                : expiry < _time.GetUtcNow().UtcDateTime ? throw new SecurityTokenExpiredException("the token has expired") { Expires = expiry }
                : true,
            ValidIssuer = Issuer,
            ValidAudience = Audience,
        };
    }

    /// <summary>The public base URL the links point at (<c>HOURGLASS_PUBLIC_URL</c>).</summary>
    public Uri PublicUrl { get; }

    public TimeSpan Lifetime { get; }

    /// <summary>
    /// The tokens configured by the environment, or null when <c>HOURGLASS_UNSUBSCRIBE_SECRET</c> and
    /// <c>HOURGLASS_PUBLIC_URL</c> are both unset (email then goes out without the headers; docs/unsubscribe.md).
    /// One set without the other, a short secret or a bad URL or lifetime is a configuration error naming the variable.
    /// </summary>
    public static UnsubscribeTokens? FromEnvironment(TimeProvider time, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var secret = environment(SecretVariable);
        var url = environment(PublicUrlVariable);
        var days = environment(LifetimeVariable);
        if (string.IsNullOrEmpty(secret) && string.IsNullOrEmpty(url))
        {
            return null;
        }

        if (string.IsNullOrEmpty(secret) || secret.Length < MinimumSecretLength)
        {
            throw new HourglassException($"{SecretVariable}: set a secret of at least {MinimumSecretLength} characters to sign unsubscribe links " +
                                         $"(or unset {PublicUrlVariable} to send email without them)");
        }

        if (string.IsNullOrEmpty(url) || !Uri.TryCreate(url, UriKind.Absolute, out var publicUrl) || publicUrl.Scheme is not ("https" or "http"))
        {
            throw new HourglassException($"{PublicUrlVariable}: set the public base URL of 'hourglass serve' (https://…) that unsubscribe links point at");
        }

        var lifetime = TimeSpan.FromDays(90);
        if (!string.IsNullOrEmpty(days))
        {
            if (!int.TryParse(days, NumberStyles.None, CultureInfo.InvariantCulture, out var d) || d is < 1 or > 3650)
            {
                throw new HourglassException($"{LifetimeVariable}: '{days}' is not a number of days from 1 to 3650");
            }

            lifetime = TimeSpan.FromDays(d);
        }

        return new UnsubscribeTokens(System.Text.Encoding.UTF8.GetBytes(secret), publicUrl, lifetime, time);
    }

    /// <summary>A token for <paramref name="claims"/>, valid for <see cref="Lifetime"/> from now.</summary>
    public string Create(UnsubscribeClaims claims)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            IssuedAt = now,
            Expires = now + Lifetime,
            Subject = new ClaimsIdentity([new Claim("sub", claims.ContactId.ToString("D"))]),
            Claims = new Dictionary<string, object>
            {
                ["tid"] = claims.TenantId.ToString("D"),
                ["mid"] = claims.MessageId.ToString("D"),
            },
            SigningCredentials = new SigningCredentials(_key, SecurityAlgorithms.HmacSha256),
        });
    }

    /// <summary>The one-click link for <paramref name="token"/>: the public URL's <c>/unsubscribe/TOKEN</c>.</summary>
    public Uri UrlFor(string token) => new(PublicUrl, $"{PublicUrl.AbsolutePath.TrimEnd('/')}/unsubscribe/{Uri.EscapeDataString(token)}");

    /// <summary>The claims of a good token, or the reason it is refused (forged, tampered, expired, malformed).</summary>
    public async Task<(UnsubscribeClaims? Claims, string? Error)> ValidateAsync(string token)
    {
        if (!_handler.CanReadToken(token))
        {
            return (null, "the unsubscribe link is malformed (not a token this server issues)");
        }

        var result = await _handler.ValidateTokenAsync(token, _parameters);
        if (!result.IsValid)
        {
            return (null, result.Exception switch
            {
                SecurityTokenExpiredException => "the unsubscribe link has expired",
                SecurityTokenNoExpirationException => "the unsubscribe link has no expiry",
                SecurityTokenInvalidSignatureException or SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidAlgorithmException
                    => "the unsubscribe link's signature is not valid (forged or altered)",
                SecurityTokenInvalidAudienceException or SecurityTokenInvalidIssuerException => "the token is not an unsubscribe link",
                _ => "the unsubscribe link is not valid",
            });
        }

        var jwt = (JsonWebToken)result.SecurityToken;
        return jwt.TryGetPayloadValue<string>("tid", out var tid) && Guid.TryParseExact(tid, "D", out var tenant)
               && Guid.TryParseExact(jwt.Subject, "D", out var contact)
               && jwt.TryGetPayloadValue<string>("mid", out var mid) && Guid.TryParseExact(mid, "D", out var message)
            ? (new UnsubscribeClaims(tenant, contact, message), null)
            : (null, "the unsubscribe link does not name a tenant, contact and message");
    }
}
