using System.Text;
using Hourglass.Engagement.Unsubscribe;
using Microsoft.Extensions.Time.Testing;

namespace Hourglass.Tests.Engagement;

/// <summary>The signed one-click unsubscribe tokens: a round trip, and each way a token is refused.</summary>
public sealed class UnsubscribeTokensTests
{
    private static readonly byte[] s_secret = Encoding.UTF8.GetBytes("unsubscribe-tests-secret-0123456789abcdef");
    private static readonly Uri s_public = new("https://hourglass.example/");
    private static readonly UnsubscribeClaims s_claims = new(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());

    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public async Task Validate_TokenJustMade_ReturnsItsTenantContactAndMessage()
    {
        var tokens = Tokens();

        var (claims, error) = await tokens.ValidateAsync(tokens.Create(s_claims));

        Assert.Null(error);
        Assert.Equal(s_claims, claims);
    }

    [Fact]
    public async Task Validate_AfterItsLifetime_RefusedAsExpired()
    {
        var tokens = Tokens();
        var token = tokens.Create(s_claims);

        _clock.Advance(TimeSpan.FromDays(90) - TimeSpan.FromSeconds(1));
        Assert.Null((await tokens.ValidateAsync(token)).Error);
        _clock.Advance(TimeSpan.FromSeconds(2));
        var (claims, error) = await tokens.ValidateAsync(token);

        Assert.Null(claims);
        Assert.Equal("the unsubscribe link has expired", error);
    }

    [Fact]
    public async Task Validate_SignedWithAnotherSecret_RefusedAsForged()
    {
        var other = new UnsubscribeTokens(Encoding.UTF8.GetBytes("another-secret-entirely-0123456789abcdef"), s_public, TimeSpan.FromDays(90), _clock);

        var (claims, error) = await Tokens().ValidateAsync(other.Create(s_claims));

        Assert.Null(claims);
        Assert.Equal("the unsubscribe link's signature is not valid (forged or altered)", error);
    }

    [Fact]
    public async Task Validate_PayloadAltered_RefusedAsForged()
    {
        var tokens = Tokens();
        var parts = tokens.Create(s_claims).Split('.');
        // Another contact's id in the payload, the signature kept.
        var payload = Encoding.UTF8.GetString(Base64UrlDecode(parts[1])).Replace(s_claims.ContactId.ToString("D"), Guid.NewGuid().ToString("D"), StringComparison.Ordinal);
        var tampered = $"{parts[0]}.{Base64UrlEncode(Encoding.UTF8.GetBytes(payload))}.{parts[2]}";

        var (claims, error) = await tokens.ValidateAsync(tampered);

        Assert.Null(claims);
        Assert.Equal("the unsubscribe link's signature is not valid (forged or altered)", error);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not-a-token")]
    [InlineData("a.b.c")]
    public async Task Validate_Garbage_Refused(string token)
    {
        var (claims, error) = await Tokens().ValidateAsync(token);

        Assert.Null(claims);
        Assert.NotNull(error);
    }

    [Fact]
    public void UrlFor_BaseWithPath_LinkUnderIt()
    {
        var tokens = new UnsubscribeTokens(s_secret, new Uri("https://hourglass.example/agent/"), TimeSpan.FromDays(1), _clock);

        Assert.Equal("https://hourglass.example/agent/unsubscribe/a.b.c", tokens.UrlFor("a.b.c").AbsoluteUri);
    }

    [Fact]
    public void FromEnvironment_NothingSet_Null_HalfSetOrShortSecret_ErrorNamingTheVariable()
    {
        Assert.Null(UnsubscribeTokens.FromEnvironment(_clock, _ => null));

        var noUrl = Assert.Throws<HourglassException>(() => UnsubscribeTokens.FromEnvironment(_clock,
            name => name == UnsubscribeTokens.SecretVariable ? "unsubscribe-tests-secret-0123456789abcdef" : null));
        Assert.StartsWith(UnsubscribeTokens.PublicUrlVariable, noUrl.Message, StringComparison.Ordinal);

        var shortSecret = Assert.Throws<HourglassException>(() => UnsubscribeTokens.FromEnvironment(_clock, name => name switch
        {
            UnsubscribeTokens.SecretVariable => "short",
            UnsubscribeTokens.PublicUrlVariable => "https://hourglass.example",
            _ => null,
        }));
        Assert.StartsWith(UnsubscribeTokens.SecretVariable, shortSecret.Message, StringComparison.Ordinal);

        var days = UnsubscribeTokens.FromEnvironment(_clock, name => name switch
        {
            UnsubscribeTokens.SecretVariable => "unsubscribe-tests-secret-0123456789abcdef",
            UnsubscribeTokens.PublicUrlVariable => "https://hourglass.example",
            UnsubscribeTokens.LifetimeVariable => "30",
            _ => null,
        });
        Assert.Equal(TimeSpan.FromDays(30), days!.Lifetime);
    }

    private UnsubscribeTokens Tokens() => new(s_secret, s_public, TimeSpan.FromDays(90), _clock);

    private static byte[] Base64UrlDecode(string text) =>
        Convert.FromBase64String(text.Replace('-', '+').Replace('_', '/') + new string('=', (4 - text.Length % 4) % 4));

    private static string Base64UrlEncode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
