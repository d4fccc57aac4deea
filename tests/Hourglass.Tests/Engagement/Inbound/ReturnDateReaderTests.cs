using System.Globalization;
using Hourglass.Engagement.Inbound;

namespace Hourglass.Tests.Engagement.Inbound;

public sealed class ReturnDateReaderTests
{
    // Monday 7 December 2026.
    private static readonly DateTimeOffset s_received = new(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("I will be back on Monday 14 December.", "2026-12-14")]
    [InlineData("Returning 12/14.", "2026-12-14")]
    [InlineData("I'm away, returning 14/12.", "2026-12-14")]
    [InlineData("I'm away, returning 05/01.", "2027-05-01")]
    [InlineData("Je suis absent, de retour le 05/01.", "2027-01-05")]
    [InlineData("Away until January 5th.", "2027-01-05")]
    [InlineData("Out of office through December 18.", "2026-12-19")]
    [InlineData("Ich bin bis einschließlich 18.12. im Urlaub.", "2026-12-19")]
    [InlineData("Out from 2026-12-07 to 2026-12-11, back 2026-12-14.", "2026-12-14")]
    [InlineData("Out of office 8 December - 11 December.", "2026-12-11")]
    [InlineData("I'm off today, back on Thursday.", "2026-12-10")]
    [InlineData("Estaré de vuelta el 1 de febrero de 2027.", "2027-02-01")]
    [InlineData("Back on 30 February.", null)]
    [InlineData("I was away until 1 December.", null)]
    [InlineData("Back on 3 November.", null)]
    [InlineData("I am out of the office with limited access to email.", null)]
    public void Read_OutOfOfficeText_TheReturnDay(string text, string? expected)
    {
        var date = ReturnDateReader.Read(text, s_received);

        Assert.Equal(expected, date?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Fresh_QuotedHistory_OnlyWhatTheReplierWrote()
    {
        var gmail = ReplyText.Fresh("Not now, thanks.\n\nOn Mon, 7 Dec 2026 at 09:00, Sam Agent <sam@acme.example>\nwrote:\n\n> Shall we talk?\n> Unsubscribe here");
        var outlook = ReplyText.Fresh("Call me.\r\n\r\nFrom: Sam Agent <sam@acme.example>\r\nSent: Monday, 7 December 2026 09:00\r\nTo: Pat\r\nSubject: Offer\r\n\r\nPlease remove me");
        var inline = ReplyText.Fresh("> Would Tuesday work?\nYes, Tuesday works.\n> Or Wednesday?\n-- \nPat | unsubscribe footer");

        Assert.Equal(("Not now, thanks.", "Call me.", "Yes, Tuesday works."), (gmail, outlook, inline));
    }
}
