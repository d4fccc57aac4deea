using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Hourglass.Server.Api;

/// <summary>
/// Mints tokens as Supabase Auth does, through Microsoft.IdentityModel: for tests, benchmarks and tools (a short-lived
/// service token). The key's <c>KeyId</c>, when set, goes into the header as <c>kid</c>.
/// </summary>
internal static class ApiTokens
{
    // Times are the caller's to set: a token without exp must stay without one.
    private static readonly JsonWebTokenHandler s_handler = new() { SetDefaultTimesOnTokenCreation = false };

    /// <summary>A JWS with <paramref name="claims"/> as its payload (serialized as given), signed with <paramref name="key"/>.</summary>
    public static string Sign(IReadOnlyDictionary<string, object> claims, SecurityKey key, string algorithm) =>
        s_handler.CreateToken(JsonSerializer.Serialize(claims), new SigningCredentials(key, algorithm));

    /// <summary>
    /// A token from a header and a payload given as they are (any bytes, already base64url-encoded), signed over
    /// <c>header.payload</c> with <paramref name="key"/>: for tests of tokens no well-behaved issuer would make.
    /// </summary>
    public static string SignParts(string encodedHeader, string encodedPayload, SecurityKey key, string algorithm)
    {
        var provider = CryptoProviderFactory.Default.CreateForSigning(key, algorithm);
        try
        {
            var signature = provider.Sign(Encoding.ASCII.GetBytes($"{encodedHeader}.{encodedPayload}"));
            return $"{encodedHeader}.{encodedPayload}.{Base64UrlEncoder.Encode(signature)}";
        }
        finally
        {
            CryptoProviderFactory.Default.ReleaseSignatureProvider(provider);
        }
    }

    /// <summary>
    /// A JWKS document (RFC 7517) publishing the public half of each EC or RSA key, with its <c>KeyId</c> as <c>kid</c>:
    /// what a self-hosted issuer serves for HOURGLASS_JWKS_URL or writes for HOURGLASS_JWKS_FILE, and what tests serve.
    /// </summary>
    public static string Jwks(IEnumerable<SecurityKey> keys)
    {
        var published = new List<Dictionary<string, string>>();
        foreach (var key in keys)
        {
            var jwk = key switch
            {
                ECDsaSecurityKey ec => JsonWebKeyConverter.ConvertFromECDsaSecurityKey(ec),
                RsaSecurityKey rsa => JsonWebKeyConverter.ConvertFromRSASecurityKey(rsa),
                JsonWebKey json => json,
                _ => throw new ArgumentException($"a {key.GetType().Name} has no public half to publish", nameof(keys)),
            };
            var entry = new Dictionary<string, string>(StringComparer.Ordinal) { ["kty"] = jwk.Kty, ["use"] = "sig" };
            // Public members only (RFC 7518 §6.2.1, §6.3.1): never d, p, q, dp, dq, qi.
            foreach (var (name, value) in new[] { ("kid", jwk.Kid), ("alg", jwk.Alg), ("crv", jwk.Crv), ("x", jwk.X), ("y", jwk.Y), ("n", jwk.N), ("e", jwk.E) })
            {
                if (!string.IsNullOrEmpty(value))
                {
                    entry[name] = value;
                }
            }

            entry["alg"] = jwk.Kty == JsonWebAlgorithmsKeyTypes.EllipticCurve ? SecurityAlgorithms.EcdsaSha256 : SecurityAlgorithms.RsaSha256;
            published.Add(entry);
        }

        return JsonSerializer.Serialize(new Dictionary<string, object> { ["keys"] = published });
    }

    /// <summary>base64url without padding (RFC 7515 §2), as JWS parts are encoded.</summary>
    public static string Encode(byte[] bytes) => Base64UrlEncoder.Encode(bytes);

    /// <inheritdoc cref="Encode(byte[])"/>
    public static string Encode(string text) => Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(text));
}
