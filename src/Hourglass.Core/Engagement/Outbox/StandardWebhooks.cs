using System.Security.Cryptography;
using System.Text;

namespace Hourglass.Engagement.Outbox;

/// <summary>
/// Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme"): the secret is
/// <c>whsec_</c> + base64 of the key; the signature is <c>v1,</c> + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))
/// with the timestamp in Unix seconds, sent as <c>webhook-signature</c> beside <c>webhook-id</c> and <c>webhook-timestamp</c>.
/// </summary>
internal static class StandardWebhooks
{
    public const string IdHeader = "webhook-id";
    public const string TimestampHeader = "webhook-timestamp";
    public const string SignatureHeader = "webhook-signature";
    private const string SecretPrefix = "whsec_";

    /// <summary>The key bytes of a <c>whsec_…</c> secret.</summary>
    /// <exception cref="InvalidMessageException">The secret is not "whsec_" + base64.</exception>
    public static byte[] DecodeSecret(string secret)
    {
        var encoded = secret.StartsWith(SecretPrefix, StringComparison.Ordinal) ? secret[SecretPrefix.Length..] : secret;
        try
        {
            var key = Convert.FromBase64String(encoded);
            return key.Length > 0 ? key : throw new FormatException("empty key");
        }
        catch (FormatException)
        {
            throw new InvalidMessageException("secret", "a webhook signing secret must be \"whsec_\" followed by base64");
        }
    }

    public static string Sign(string secret, string id, long unixSeconds, string body)
    {
        var signed = Encoding.UTF8.GetBytes($"{id}.{unixSeconds}.{body}");
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(DecodeSecret(secret), signed));
    }
}
