using Hourglass.Engagement.Outbox;

namespace Hourglass.Tests.Engagement;

public sealed class MessageHandlerTests
{
    private const string Hook = "https://hooks.acme.example/in";

    [Theory]
    [InlineData(null, "pat@client.example", true, Hook, "email", "pat@client.example")]
    [InlineData(null, null, true, Hook, "webhook", Hook)]
    [InlineData(null, "not-an-address", true, Hook, "webhook", Hook)]
    [InlineData(null, "pat@client.example", false, Hook, "webhook", Hook)]
    [InlineData("webhook", "pat@client.example", true, Hook, "webhook", Hook)]
    [InlineData("email", "pat@client.example", true, null, "email", "pat@client.example")]
    public void Route_Reachable_PrefersEmailThenWebhook(string? channel, string? email, bool emailEnabled, string? webhook, string expectedChannel, string expectedDestination)
    {
        var (routed, destination, _) = MessageHandler.Route(channel, null, email, emailEnabled, webhook);

        Assert.Equal((expectedChannel, expectedDestination), (routed, destination));
    }

    [Theory]
    [InlineData(null, null, true, null, "the contact has no email address; no enabled webhook channel")]
    [InlineData(null, "pat@client.example", false, null, "no enabled email channel is configured for the tenant; no enabled webhook channel")]
    [InlineData("email", null, true, Hook, "the contact has no email address")]
    [InlineData("webhook", "pat@client.example", true, null, "no enabled webhook channel")]
    public void Route_NoChannel_UnreachableWithEveryReason(string? channel, string? email, bool emailEnabled, string? webhook, string reason)
    {
        var (routed, destination, why) = MessageHandler.Route(channel, null, email, emailEnabled, webhook);

        Assert.Null(routed);
        Assert.Null(destination);
        Assert.StartsWith(reason, why, StringComparison.Ordinal);
    }

    [Fact]
    public void Route_ExplicitDestination_UsedWhenTheChannelIsEnabled()
    {
        Assert.Equal(("email", "ops@acme.example"), Pick(MessageHandler.Route("email", "ops@acme.example", null, true, null)));
        Assert.Equal((null, null), Pick(MessageHandler.Route("email", "ops@acme.example", null, false, Hook)));
    }

    [Fact]
    public void Route_WebhookToAnotherUrl_RefusedSoPayloadsCannotAimTheWorker()
    {
        var ex = Assert.Throws<InvalidMessageException>(() =>
            MessageHandler.Route("webhook", "http://169.254.169.254/latest/meta-data", null, emailEnabled: false, webhookUrl: "https://hooks.example.com/x"));

        Assert.Equal("destination", ex.Field);
        Assert.Equal(("webhook", "https://hooks.example.com/x"),
            Pick(MessageHandler.Route("webhook", "https://hooks.example.com/x", null, emailEnabled: false, webhookUrl: "https://hooks.example.com/x")));
    }

    private static (string?, string?) Pick((string? Channel, string? Destination, string Reason) route) => (route.Channel, route.Destination);
}
