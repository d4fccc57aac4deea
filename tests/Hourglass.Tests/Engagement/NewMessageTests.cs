using Hourglass.Engagement.Outbox;

namespace Hourglass.Tests.Engagement;

/// <summary>A message's fields are checked before it is queued: a bad one is refused naming the field.</summary>
public sealed class NewMessageTests
{
    [Theory]
    [InlineData("webhook", "https://h.example/x", null)]
    [InlineData("webhook", "http://127.0.0.1:8080/x", null)]
    [InlineData("email", "pat@client.example", null)]
    [InlineData("fax", "x", "channel")]
    [InlineData("email", "", "destination")]
    [InlineData("email", "pat@", "destination")]
    [InlineData("email", "@client.example", "destination")]
    [InlineData("webhook", "javascript:alert(1)", "destination")]
    [InlineData("webhook", "https://h.example/a b", "destination")]
    public void Validate_Fields_RefusesNamingTheField(string channel, string destination, string? field)
    {
        var message = new NewMessage(Guid.NewGuid(), "k", channel, destination, null, "");

        var error = Record.Exception(message.Validate);

        Assert.Equal(field, (error as InvalidMessageException)?.Field);
    }
}
