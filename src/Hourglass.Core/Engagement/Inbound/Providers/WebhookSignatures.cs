using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Hourglass.Engagement.Inbound.Providers;

/// <summary>What checking a webhook's signature found.</summary>
internal enum SignatureStatus
{
    /// <summary>Signed with the configured secret or key, within the time tolerance.</summary>
    Valid,

    /// <summary>Unsigned, wrongly signed, stale or malformed headers: the caller's fault (401).</summary>
    Refused,

    /// <summary>The configured secret or key cannot be used (not base64, not a public key): the operator's to fix.</summary>
    KeyUnusable,
}

/// <summary>A signature check's result and, unless valid, why (safe to show the caller: never the secret).</summary>
internal sealed record SignatureCheck(SignatureStatus Status, string? Reason)
{
    public static SignatureCheck Valid { get; } = new(SignatureStatus.Valid, null);

    public static SignatureCheck Refused(string reason) => new(SignatureStatus.Refused, reason);

    public static SignatureCheck KeyUnusable(string reason) => new(SignatureStatus.KeyUnusable, reason);
}

/// <summary>
/// Verifies inbound webhooks the way each sender signs them (docs/inbound.md):
/// Standard Webhooks (https://www.standardwebhooks.com, "Verifying webhooks"; Svix, and so Resend, sign the same way
/// under <c>svix-</c> headers) — HMAC-SHA256 over <c>{id}.{timestamp}.{body}</c> with the key a <c>whsec_</c> secret
/// encodes, any of the space-separated <c>v1,</c> signatures may match, the timestamp within five minutes of now; and
/// SendGrid's Signed Event Webhook — ECDSA P-256 with SHA-256 over <c>{timestamp}{body}</c>, the signature DER-encoded
/// (RFC 3279) and base64, checked with the public key SendGrid shows (base64 SubjectPublicKeyInfo).
/// </summary>
/// <remarks>
/// Hand-written on System.Security.Cryptography rather than with the StandardWebhooks package: that package reads the
/// wall clock for the tolerance (this code takes the time as an argument, so the server passes its one clock and tests
/// a fixed one), needs ASP.NET Core's header type in this UI-free library, and stops at the first malformed entry of
/// a multi-signature header where the specification says to try each.
/// </remarks>
internal static class WebhookSignatures
{
    /// <summary>How far a signed timestamp may be from now, either way (the Standard Webhooks recommendation).</summary>
    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    private const string SecretPrefix = "whsec_";

    /// <summary>
    /// Checks a Standard Webhooks signature. <paramref name="headerPrefix"/> is <c>webhook</c> (Hourglass's own format)
    /// or <c>svix</c> (Resend): the headers read are <c>{prefix}-id</c>, <c>{prefix}-timestamp</c>, <c>{prefix}-signature</c>.
    /// </summary>
    public static SignatureCheck VerifyStandard(string secret, string headerPrefix, Func<string, string?> header, ReadOnlySpan<byte> body,
        DateTimeOffset now)
    {
        var key = DecodeSecret(secret);
        if (key is null)
        {
            return SignatureCheck.KeyUnusable("the configured signing secret is not \"whsec_\" followed by base64");
        }

        var (idName, timestampName, signatureName) = ($"{headerPrefix}-id", $"{headerPrefix}-timestamp", $"{headerPrefix}-signature");
        var (id, timestamp, signatures) = (header(idName), header(timestampName), header(signatureName));
        if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(timestamp) || string.IsNullOrEmpty(signatures))
        {
            return SignatureCheck.Refused($"unsigned: the headers {idName}, {timestampName} and {signatureName} are all required");
        }

        if (CheckTimestamp(timestampName, timestamp, now) is { } stale)
        {
            return stale;
        }

        // The signed content is the headers' text as sent, then the body's bytes as received (never re-serialised).
        var prefix = Encoding.UTF8.GetBytes($"{id}.{timestamp}.");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        var expected = HMACSHA256.HashData(key, signed);

        // "v1,<base64> v1,<base64> …": a sender rotating its secret signs with both; any one matching is enough, and
        // entries of other versions (v1a: asymmetric) or malformed ones are skipped, not fatal.
        foreach (var entry in signatures.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!entry.StartsWith("v1,", StringComparison.Ordinal))
            {
                continue;
            }

            var candidate = new byte[expected.Length];
            if (Convert.TryFromBase64String(entry[3..], candidate, out var written) && written == expected.Length
                && CryptographicOperations.FixedTimeEquals(candidate, expected))
            {
                return SignatureCheck.Valid;
            }
        }

        return SignatureCheck.Refused($"wrongly signed: no v1 signature in {signatureName} matches (another secret, or the body was changed on the way)");
    }

    /// <summary>
    /// Checks SendGrid's Signed Event Webhook: <c>X-Twilio-Email-Event-Webhook-Signature</c> (base64 DER ECDSA signature)
    /// over <c>X-Twilio-Email-Event-Webhook-Timestamp</c> followed by the body, with the verification key (base64).
    /// </summary>
    public static SignatureCheck VerifySendGrid(string publicKey, Func<string, string?> header, ReadOnlySpan<byte> body, DateTimeOffset now)
    {
        using var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportSubjectPublicKeyInfo(Convert.FromBase64String(publicKey.Trim()), out _);
        }
        catch (Exception ex) when (ex is FormatException or CryptographicException)
        {
            return SignatureCheck.KeyUnusable("the configured verification key is not the base64 public key SendGrid shows");
        }

        var (signatureName, timestampName) = (SendGridSignatureHeader, SendGridTimestampHeader);
        var (signature, timestamp) = (header(signatureName), header(timestampName));
        if (string.IsNullOrEmpty(signature) || string.IsNullOrEmpty(timestamp))
        {
            return SignatureCheck.Refused($"unsigned: the headers {signatureName} and {timestampName} are both required");
        }

        if (CheckTimestamp(timestampName, timestamp, now) is { } stale)
        {
            return stale;
        }

        var signatureBytes = new byte[signature.Length];
        if (!Convert.TryFromBase64String(signature, signatureBytes, out var length))
        {
            return SignatureCheck.Refused($"wrongly signed: {signatureName} is not base64");
        }

        var prefix = Encoding.UTF8.GetBytes(timestamp);
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        // A malformed DER sequence verifies false (it does not throw) with DSASignatureFormat.Rfc3279DerSequence.
        return ecdsa.VerifyData(signed, signatureBytes.AsSpan(0, length), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence)
            ? SignatureCheck.Valid
            : SignatureCheck.Refused($"wrongly signed: {signatureName} does not verify with the configured key (another key, or the body was changed on the way)");
    }

    /// <summary>
    /// Checks Postmark's basic authentication: Postmark does not sign its webhooks but sends the credentials written into
    /// the webhook's URL (<c>https://user:password@host/…</c>) as an <c>Authorization: Basic</c> header, compared here in
    /// fixed time with the configured <c>user:password</c>.
    /// </summary>
    public static SignatureCheck VerifyBasic(string credentials, Func<string, string?> header)
    {
        if (credentials.IndexOf(':', StringComparison.Ordinal) <= 0)
        {
            return SignatureCheck.KeyUnusable("the configured credentials are not user:password");
        }

        const string scheme = "Basic ";
        var authorization = header("Authorization");
        if (authorization is null || !authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return SignatureCheck.Refused("unsigned: no Authorization: Basic header (put the credentials in the webhook's URL, https://user:password@…)");
        }

        var sent = new byte[authorization.Length];
        if (!Convert.TryFromBase64String(authorization[scheme.Length..].Trim(), sent, out var length))
        {
            return SignatureCheck.Refused("wrongly signed: the Authorization header is not base64");
        }

        // Hashed first so the comparison takes the same time whatever the lengths.
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(sent.AsSpan(0, length)), SHA256.HashData(Encoding.UTF8.GetBytes(credentials)))
            ? SignatureCheck.Valid
            : SignatureCheck.Refused("wrongly signed: the credentials do not match the configured ones");
    }

    public const string SendGridSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature";
    public const string SendGridTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp";

    /// <summary>The key bytes of a <c>whsec_…</c> secret (the prefix optional), or null when it is not base64.</summary>
    public static byte[]? DecodeSecret(string secret)
    {
        var encoded = secret.Trim();
        encoded = encoded.StartsWith(SecretPrefix, StringComparison.Ordinal) ? encoded[SecretPrefix.Length..] : encoded;
        var key = new byte[encoded.Length];
        return encoded.Length > 0 && Convert.TryFromBase64String(encoded, key, out var written) && written > 0 ? key[..written] : null;
    }

    // Seconds since the epoch, within the tolerance either way: an old request replayed, or a forged clock, is refused.
    private static SignatureCheck? CheckTimestamp(string name, string value, DateTimeOffset now)
    {
        if (value.Length > 11 || !long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            return SignatureCheck.Refused($"{name} is not a time in seconds since 1970-01-01 UTC");
        }

        var skew = DateTimeOffset.FromUnixTimeSeconds(seconds) - now;
        return skew.Duration() <= Tolerance
            ? null
            : SignatureCheck.Refused($"stale: {name} is {(long)skew.Duration().TotalSeconds} s {(skew < TimeSpan.Zero ? "behind" : "ahead of")} " +
                                     $"the server's clock (tolerance {(long)Tolerance.TotalSeconds} s); a replay, or a clock to fix");
    }
}
