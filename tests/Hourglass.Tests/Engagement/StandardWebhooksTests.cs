using System.Net;
using System.Security.Cryptography;
using System.Text;
using Hourglass.Engagement.Outbox;

namespace Hourglass.Tests.Engagement;

public sealed class StandardWebhooksTests
{
    // The example in the Standard Webhooks specification (and its reference libraries' tests); the expected value
    // was checked independently with: printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}'
    //   | openssl dgst -sha256 -mac HMAC -macopt hexkey:<hex of base64-decoded key> -binary | base64
    private const string SpecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string SpecId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const long SpecTimestamp = 1614265330;
    private const string SpecBody = "{\"test\": 2432232314}";

    [Fact]
    public void Sign_SpecExample_MatchesKnownSignature()
    {
        Assert.Equal("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", StandardWebhooks.Sign(SpecSecret, SpecId, SpecTimestamp, SpecBody));
    }

    [Theory]
    [InlineData("whsec_c2VjcmV0LWtleS1ieXRlcw==", "5f3c0b0e-0000-4000-8000-000000000001", 1767225600L, "{\"data\":{\"body\":\"héllo\"}}")]
    [InlineData("whsec_AAEC", "x", 0L, "")]
    public void Sign_AnyInput_EqualsHmacSha256OfIdTimestampBodyComputedHere(string secret, string id, long timestamp, string body)
    {
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        using var hmac = new HMACSHA256(key);
        var expected = "v1," + Convert.ToBase64String(hmac.ComputeHash(Encoding.UTF8.GetBytes(id + "." + timestamp + "." + body)));

        Assert.Equal(expected, StandardWebhooks.Sign(secret, id, timestamp, body));
    }

    [Theory]
    [InlineData("whsec_not base64!")]
    [InlineData("whsec_")]
    public void Sign_MalformedSecret_RefusedNamingSecret(string secret)
    {
        var error = Assert.Throws<InvalidMessageException>(() => StandardWebhooks.Sign(secret, "id", 1, "{}"));

        Assert.Equal("secret", error.Field);
    }

    [Theory]
    [InlineData(HttpStatusCode.OK, "sent")]
    [InlineData(HttpStatusCode.NoContent, "sent")]
    [InlineData(HttpStatusCode.BadRequest, "permanent")]
    [InlineData(HttpStatusCode.Unauthorized, "permanent")]
    [InlineData(HttpStatusCode.NotFound, "permanent")]
    [InlineData(HttpStatusCode.Found, "permanent")]
    [InlineData(HttpStatusCode.RequestTimeout, "transient")]
    [InlineData(HttpStatusCode.TooManyRequests, "transient")]
    [InlineData(HttpStatusCode.InternalServerError, "transient")]
    [InlineData(HttpStatusCode.ServiceUnavailable, "transient")]
    public void Classify_Status_PermanentOnlyForNonRetryable4xxAndRedirects(HttpStatusCode status, string expected)
    {
        var result = WebhookTransport.Classify(status);

        Assert.Equal(expected, result.Sent ? "sent" : result.Permanent ? "permanent" : "transient");
        Assert.Equal((int)status, result.ResponseCode);
    }
}
