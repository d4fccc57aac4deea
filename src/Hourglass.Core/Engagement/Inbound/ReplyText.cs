using System.Text;
using System.Text.RegularExpressions;

namespace Hourglass.Engagement.Inbound;

/// <summary>
/// What the replier wrote, without the history their mail client quoted below it (docs/inbound.md, "Reading a reply"):
/// lines starting with "&gt;" are dropped, and the text ends at the first attribution line ("On … wrote:", "Am …
/// schrieb …:", "Le … a écrit :", "El … escribió:"), an "Original Message" separator, an Outlook header block ("From:" /
/// "Von:" / "De :" after the reply) or a signature separator ("-- "). Whitespace is collapsed to single spaces and curly
/// apostrophes made straight, so the rules' phrases match across line breaks.
/// </summary>
internal static partial class ReplyText
{
    /// <summary>Longer replies are read from their start only: what decides a reply is at its top.</summary>
    public const int MaxChars = 20_000;

    public static string Fresh(string text)
    {
        var lines = Limit(text).Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n').Split('\n');
        var kept = new StringBuilder();
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (IsHistoryStart(line, i + 1 < lines.Length ? lines[i + 1].Trim() : "", kept.Length > 0))
            {
                break;
            }

            if (line.StartsWith('>'))
            {
                continue;
            }

            kept.Append(line).Append(' ');
        }

        return Collapse(kept.ToString());
    }

    /// <summary>The whole text, quoted history included, collapsed the same way (bounce notices quote what bounced).</summary>
    public static string Whole(string text) => Collapse(Limit(text));

    private static string Limit(string text) => text.Length > MaxChars ? text[..MaxChars] : text;

    private static string Collapse(string text) =>
        Whitespace().Replace(text.Replace('\u2019', '\'').Replace('\u2018', '\''), " ").Trim();

    private static bool IsHistoryStart(string line, string next, bool afterText)
    {
        if (line == "--" || Separator().IsMatch(line) || Attribution().IsMatch(line))
        {
            return true;
        }

        // Gmail wraps a long attribution: "On Mon, 7 Dec 2026 at 09:00, Sam <sam@example.com>" / "wrote:".
        if (OpeningOfAttribution().IsMatch(line) && WroteAlone().IsMatch(next))
        {
            return true;
        }

        // An Outlook reply: a header block of the quoted message after what the replier wrote.
        return afterText && HeaderLine().IsMatch(line);
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"^(-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|forwarded message|weitergeleitete nachricht)\s*-{2,}|_{10,})$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, 2000)]
    private static partial Regex Separator();

    [GeneratedRegex(@"^((on|am|le|el)\s.{4,300}?\s(wrote|schrieb|a écrit|escribió)\s?:|.{0,200}<[^>@\s]+@[^>\s]+>\s(wrote|schrieb|a écrit|escribió)\s?:)$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, 2000)]
    private static partial Regex Attribution();

    [GeneratedRegex(@"^(on|am|le|el)\s.{4,300}$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, 2000)]
    private static partial Regex OpeningOfAttribution();

    [GeneratedRegex(@"^.{0,120}(wrote|schrieb|a écrit|escribió)\s?:$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, 2000)]
    private static partial Regex WroteAlone();

    [GeneratedRegex(@"^(from|von|de|sent|gesendet|envoyé|enviado)\s?:\s?\S", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, 2000)]
    private static partial Regex HeaderLine();
}
