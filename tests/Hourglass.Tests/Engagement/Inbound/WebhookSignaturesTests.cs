using System.Security.Cryptography;
using System.Text;
using Hourglass.Engagement.Inbound.Providers;
using Hourglass.Engagement.Outbox;

namespace Hourglass.Tests.Engagement.Inbound;

public sealed class WebhookSignaturesTests
{
    // The example of the Standard Webhooks specification (the outbound side's tests check the same signature).
    private const string SpecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string SpecId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const string SpecTimestamp = "1614265330";
    private const string SpecBody = "{\"test\": 2432232314}";
    private const string SpecSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    private static readonly DateTimeOffset s_specTime = DateTimeOffset.FromUnixTimeSeconds(1614265330);

    // SendGrid's published test vector (the tests of its Node.js library, @sendgrid/eventwebhook): the key SendGrid would
    // show, the signature it sent, its timestamp and the body it signed.
    private const string SendGridKey = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    private const string SendGridSignature = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    private const string SendGridTimestamp = "1588788367";
    private const string SendGridBody = "{\"category\":\"example_payload\",\"event\":\"test_event\",\"message_id\":\"message_id\"}";
    private static readonly DateTimeOffset s_sendGridTime = DateTimeOffset.FromUnixTimeSeconds(1588788367);

    [Theory]
    [InlineData("webhook")]
    [InlineData("svix")]
    public void VerifyStandard_SpecExample_Valid(string prefix)
    {
        var check = WebhookSignatures.VerifyStandard(SpecSecret, prefix, Headers(prefix, SpecId, SpecTimestamp, SpecSignature), Bytes(SpecBody), s_specTime);

        Assert.Equal(SignatureStatus.Valid, check.Status);
    }

    [Fact]
    public void VerifyStandard_SignedByTheOutboundSigner_Valid()
    {
        var secret = "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
        var body = "{\"events\":[{\"id\":\"é\"}]}";
        var signature = StandardWebhooks.Sign(secret, "evt_1", 1767225600, body);

        var check = WebhookSignatures.VerifyStandard(secret, "webhook", Headers("webhook", "evt_1", "1767225600", signature), Bytes(body),
            DateTimeOffset.FromUnixTimeSeconds(1767225600 + 299));

        Assert.Equal(SignatureStatus.Valid, check.Status);
    }

    [Fact]
    public void VerifyStandard_SeveralSignaturesOneMatching_Valid()
    {
        // A sender rotating its secret signs with the old and the new; an unknown version and junk are skipped, not fatal.
        var header = $"v1a,abc junk v1,{Convert.ToBase64String(new byte[32])} {SpecSignature}";

        var check = WebhookSignatures.VerifyStandard(SpecSecret, "webhook", Headers("webhook", SpecId, SpecTimestamp, header), Bytes(SpecBody), s_specTime);

        Assert.Equal(SignatureStatus.Valid, check.Status);
    }

    [Theory]
    [InlineData("", "wrongly signed")]
    [InlineData("{\"test\": 2432232315}", "wrongly signed")]
    public void VerifyStandard_BodyChanged_Refused(string body, string reason)
    {
        var check = WebhookSignatures.VerifyStandard(SpecSecret, "webhook", Headers("webhook", SpecId, SpecTimestamp, SpecSignature), Bytes(body), s_specTime);

        Assert.Equal(SignatureStatus.Refused, check.Status);
        Assert.Contains(reason, check.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void VerifyStandard_AnotherSecret_RefusedAsWronglySigned()
    {
        var other = "whsec_" + Convert.ToBase64String(Encoding.UTF8.GetBytes("another tenant's secret"));

        var check = WebhookSignatures.VerifyStandard(other, "webhook", Headers("webhook", SpecId, SpecTimestamp, SpecSignature), Bytes(SpecBody), s_specTime);

        Assert.Equal(SignatureStatus.Refused, check.Status);
        Assert.StartsWith("wrongly signed", check.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, SpecTimestamp, SpecSignature)]
    [InlineData(SpecId, null, SpecSignature)]
    [InlineData(SpecId, SpecTimestamp, null)]
    [InlineData(SpecId, SpecTimestamp, "")]
    public void VerifyStandard_MissingHeader_RefusedAsUnsigned(string? id, string? timestamp, string? signature)
    {
        var check = WebhookSignatures.VerifyStandard(SpecSecret, "webhook", Headers("webhook", id, timestamp, signature), Bytes(SpecBody), s_specTime);

        Assert.Equal(SignatureStatus.Refused, check.Status);
        Assert.Equal("unsigned: the headers webhook-id, webhook-timestamp and webhook-signature are all required", check.Reason);
    }

    [Theory]
    [InlineData(-301, "301 s ahead of")]
    [InlineData(301, "301 s behind")]
    [InlineData(86_400, "86400 s behind")]
    public void VerifyStandard_TimestampOutsideFiveMinutes_RefusedAsStale(int secondsLater, string reason)
    {
        // Checked before the signature: a validly signed request replayed later is refused all the same.
        var check = WebhookSignatures.VerifyStandard(SpecSecret, "webhook", Headers("webhook", SpecId, SpecTimestamp, SpecSignature), Bytes(SpecBody),
            s_specTime.AddSeconds(secondsLater));

        Assert.Equal(SignatureStatus.Refused, check.Status);
        Assert.StartsWith("stale: webhook-timestamp is " + reason, check.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-300)]
    [InlineData(300)]
    public void VerifyStandard_TimestampAtTheTolerance_Valid(int secondsLater)
    {
        var check = WebhookSignatures.VerifyStandard(SpecSecret, "webhook", Headers("webhook", SpecId, SpecTimestamp, SpecSignature), Bytes(SpecBody),
            s_specTime.AddSeconds(secondsLater));

        Assert.Equal(SignatureStatus.Valid, check.Status);
    }

    [Theory]
    [InlineData("2021-02-25T15:02:10Z")]
    [InlineData("-1614265330")]
    [InlineData("999999999999999999999")]
    public void VerifyStandard_TimestampNotUnixSeconds_Refused(string timestamp)
    {
        var check = WebhookSignatures.VerifyStandard(SpecSecret, "webhook", Headers("webhook", SpecId, timestamp, SpecSignature), Bytes(SpecBody), s_specTime);

        Assert.Equal(SignatureStatus.Refused, check.Status);
        Assert.Equal("webhook-timestamp is not a time in seconds since 1970-01-01 UTC", check.Reason);
    }

    [Theory]
    [InlineData("whsec_not base64!")]
    [InlineData("whsec_")]
    public void VerifyStandard_SecretNotBase64_KeyUnusable(string secret)
    {
        var check = WebhookSignatures.VerifyStandard(secret, "webhook", Headers("webhook", SpecId, SpecTimestamp, SpecSignature), Bytes(SpecBody), s_specTime);

        Assert.Equal(SignatureStatus.KeyUnusable, check.Status);
    }

    [Fact]
    public void VerifySendGrid_PublishedVector_Valid()
    {
        var check = WebhookSignatures.VerifySendGrid(SendGridKey, SendGridHeaders(SendGridSignature, SendGridTimestamp), Bytes(SendGridBody), s_sendGridTime);

        Assert.Equal(SignatureStatus.Valid, check.Status);
    }

    [Fact]
    public void VerifySendGrid_SignedWithAFreshKeyInDer_Valid_AndNotWithAnotherKey()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var body = "[{\"email\":\"pat@client.example\",\"event\":\"bounce\",\"sg_event_id\":\"e1\"}]\r\n";
        const string timestamp = "1767225600";
        var signature = Convert.ToBase64String(key.SignData(Bytes(timestamp + body), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));
        var now = DateTimeOffset.FromUnixTimeSeconds(1767225600);

        Assert.Equal(SignatureStatus.Valid,
            WebhookSignatures.VerifySendGrid(Convert.ToBase64String(key.ExportSubjectPublicKeyInfo()), SendGridHeaders(signature, timestamp), Bytes(body), now).Status);
        Assert.Equal(SignatureStatus.Refused,
            WebhookSignatures.VerifySendGrid(Convert.ToBase64String(other.ExportSubjectPublicKeyInfo()), SendGridHeaders(signature, timestamp), Bytes(body), now).Status);
    }

    [Theory]
    [InlineData(SendGridSignature, "1588788368", SendGridBody, "wrongly signed")]
    [InlineData(SendGridSignature, SendGridTimestamp, "payload", "wrongly signed")]
    [InlineData("MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=", SendGridTimestamp, SendGridBody, "wrongly signed")]
    [InlineData("not base64!", SendGridTimestamp, SendGridBody, "is not base64")]
    [InlineData("AAAA", SendGridTimestamp, SendGridBody, "wrongly signed")]
    [InlineData(SendGridSignature, "timestamp", SendGridBody, "is not a time in seconds")]
    [InlineData(null, SendGridTimestamp, SendGridBody, "unsigned")]
    [InlineData(SendGridSignature, null, SendGridBody, "unsigned")]
    public void VerifySendGrid_AlteredOrMissing_Refused(string? signature, string? timestamp, string body, string reason)
    {
        var check = WebhookSignatures.VerifySendGrid(SendGridKey, SendGridHeaders(signature, timestamp), Bytes(body), s_sendGridTime);

        Assert.Equal(SignatureStatus.Refused, check.Status);
        Assert.Contains(reason, check.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void VerifySendGrid_Stale_Refused()
    {
        var check = WebhookSignatures.VerifySendGrid(SendGridKey, SendGridHeaders(SendGridSignature, SendGridTimestamp), Bytes(SendGridBody),
            s_sendGridTime.AddMinutes(6));

        Assert.Equal(SignatureStatus.Refused, check.Status);
        Assert.StartsWith("stale: X-Twilio-Email-Event-Webhook-Timestamp is 360 s behind", check.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not a key")]
    [InlineData("AAAA")]
    [InlineData("")]
    public void VerifySendGrid_KeyNotAPublicKey_KeyUnusable(string key)
    {
        var check = WebhookSignatures.VerifySendGrid(key, SendGridHeaders(SendGridSignature, SendGridTimestamp), Bytes(SendGridBody), s_sendGridTime);

        Assert.Equal(SignatureStatus.KeyUnusable, check.Status);
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    private static Func<string, string?> Headers(string prefix, string? id, string? timestamp, string? signature) => name =>
        name == $"{prefix}-id" ? id : name == $"{prefix}-timestamp" ? timestamp : name == $"{prefix}-signature" ? signature : null;

    private static Func<string, string?> SendGridHeaders(string? signature, string? timestamp) => name => name switch
    {
        WebhookSignatures.SendGridSignatureHeader => signature,
        WebhookSignatures.SendGridTimestampHeader => timestamp,
        _ => null,
    };
}
