using System.Globalization;
using System.Text.RegularExpressions;

namespace Hourglass.Engagement.Inbound;

/// <summary>
/// Reads the return date from an out-of-office reply, relative to when it was received (docs/inbound.md, "Reading a
/// reply"). Dates are read in English, German, French and Spanish: ISO (2026-12-14), dotted (14.12. or 14.12.2026,
/// always day first), slashed (12/14 — month first in English unless the first number cannot be a month, day first in
/// the other languages), and with the month's name either side of the day ("14 December", "December 14th", "14.
/// Dezember", "1er janvier", "14 de diciembre"); a bare weekday after "back"/"zurück"/"de retour"/"regreso" ("back on
/// Monday") is the next such day after the received date. A date without a year is in the received year, or the next
/// one when that is at most six months ahead ("until January 5th" in December). When several dates appear, one after a
/// return word ("back", "returning", "zurück", "wieder", "ab dem", "de retour", "regreso") wins over one after an "until"
/// word ("until", "bis", "jusqu'au", "hasta"), which wins over a bare date; among equals the latest. "Through X", "bis
/// einschließlich X", "jusqu'au X inclus" mean back the day after X; "until X" is read as back on X. A date before the
/// received day, or none, is null.
/// </summary>
internal static partial class ReturnDateReader
{
    private enum Language
    {
        English,
        German,
        French,
        Spanish,
    }

    private sealed record Mention(int Index, int End, DateOnly Date);

    private static readonly Dictionary<string, int> s_months = BuildMonths();

    private static readonly Dictionary<string, DayOfWeek> s_weekdays = new(StringComparer.OrdinalIgnoreCase)
    {
        ["monday"] = DayOfWeek.Monday, ["tuesday"] = DayOfWeek.Tuesday, ["wednesday"] = DayOfWeek.Wednesday, ["thursday"] = DayOfWeek.Thursday,
        ["friday"] = DayOfWeek.Friday, ["saturday"] = DayOfWeek.Saturday, ["sunday"] = DayOfWeek.Sunday,
        ["montag"] = DayOfWeek.Monday, ["dienstag"] = DayOfWeek.Tuesday, ["mittwoch"] = DayOfWeek.Wednesday, ["donnerstag"] = DayOfWeek.Thursday,
        ["freitag"] = DayOfWeek.Friday, ["samstag"] = DayOfWeek.Saturday, ["sonntag"] = DayOfWeek.Sunday,
        ["lundi"] = DayOfWeek.Monday, ["mardi"] = DayOfWeek.Tuesday, ["mercredi"] = DayOfWeek.Wednesday, ["jeudi"] = DayOfWeek.Thursday,
        ["vendredi"] = DayOfWeek.Friday, ["samedi"] = DayOfWeek.Saturday, ["dimanche"] = DayOfWeek.Sunday,
        ["lunes"] = DayOfWeek.Monday, ["martes"] = DayOfWeek.Tuesday, ["miércoles"] = DayOfWeek.Wednesday, ["miercoles"] = DayOfWeek.Wednesday,
        ["jueves"] = DayOfWeek.Thursday, ["viernes"] = DayOfWeek.Friday, ["sábado"] = DayOfWeek.Saturday, ["sabado"] = DayOfWeek.Saturday,
        ["domingo"] = DayOfWeek.Sunday,
    };

    public static DateOnly? Read(string text, DateTimeOffset receivedAt)
    {
        var received = DateOnly.FromDateTime(receivedAt.DateTime);
        var language = Guess(text);
        var mentions = Mentions(text, received, language);
        if (mentions.Count == 0)
        {
            return ByWeekday(text, received);
        }

        Mention? best = null;
        var bestScore = -1;
        var bestDate = DateOnly.MinValue;
        var previousEnd = 0;
        foreach (var mention in mentions)
        {
            var before = text[Math.Max(previousEnd, mention.Index - 60)..mention.Index];
            var after = text[mention.End..Math.Min(text.Length, mention.End + 30)];
            var date = mention.Date;
            int score;
            if (ReturnCueBefore().IsMatch(before) || ReturnCueAfter().IsMatch(after))
            {
                score = 3;
            }
            else if (UntilCue().IsMatch(before))
            {
                score = 2;
                if (InclusiveBefore().IsMatch(before) || InclusiveAfter().IsMatch(after))
                {
                    date = date.AddDays(1);
                }
            }
            else
            {
                score = 1;
            }

            if (score > bestScore || (score == bestScore && date > bestDate))
            {
                (best, bestScore, bestDate) = (mention, score, date);
            }

            previousEnd = mention.End;
        }

        return best is null || bestDate < received ? null : bestDate;
    }

    private static List<Mention> Mentions(string text, DateOnly received, Language language)
    {
        var found = new List<Mention>();
        foreach (Match m in Iso().Matches(text))
        {
            Add(found, m, received, Num(m, 1), Num(m, 2), Num(m, 3));
        }

        foreach (Match m in Dotted().Matches(text))
        {
            Add(found, m, received, Year(m, 3), Num(m, 2), Num(m, 1));
        }

        foreach (Match m in Slashed().Matches(text))
        {
            var (first, second) = (Num(m, 1), Num(m, 2));
            var monthFirst = language == Language.English ? first <= 12 : second > 12;
            Add(found, m, received, Year(m, 3), monthFirst ? first : second, monthFirst ? second : first);
        }

        foreach (Match m in DayMonth().Matches(text))
        {
            if (s_months.TryGetValue(m.Groups[2].Value, out var month))
            {
                Add(found, m, received, Year(m, 3), month, Num(m, 1));
            }
        }

        foreach (Match m in MonthDay().Matches(text))
        {
            if (s_months.TryGetValue(m.Groups[1].Value, out var month))
            {
                Add(found, m, received, Year(m, 3), month, Num(m, 2));
            }
        }

        // One place in the text is one mention: "14 December 2026" is not also "December 2026".
        found.Sort((a, b) => a.Index != b.Index ? a.Index.CompareTo(b.Index) : b.End.CompareTo(a.End));
        var kept = new List<Mention>();
        foreach (var mention in found)
        {
            if (kept.Count == 0 || mention.Index >= kept[^1].End)
            {
                kept.Add(mention);
            }
        }

        return kept;
    }

    private static void Add(List<Mention> found, Match match, DateOnly received, int? year, int month, int day)
    {
        if (month is < 1 or > 12 || day < 1 || day > 31)
        {
            return;
        }

        DateOnly date;
        if (year is { } y)
        {
            if (y < 100)
            {
                y += 2000;
            }

            if (day > DateTime.DaysInMonth(y, month))
            {
                return;
            }

            date = new DateOnly(y, month, day);
        }
        else
        {
            // A date without a year that has passed this year is next year's when that is close ("until January 5th" in
            // December); otherwise it is this year's, past.
            var thisYear = Dated(received.Year, month, day);
            var next = Dated(received.Year + 1, month, day);
            if (thisYear is { } d && (d >= received || next is null || next > received.AddMonths(6)))
            {
                date = d;
            }
            else if (next is { } n && n <= received.AddMonths(6))
            {
                date = n;
            }
            else
            {
                return;
            }
        }

        found.Add(new Mention(match.Index, match.Index + match.Length, date));
    }

    private static DateOnly? Dated(int year, int month, int day) =>
        day <= DateTime.DaysInMonth(year, month) ? new DateOnly(year, month, day) : null;

    private static DateOnly? ByWeekday(string text, DateOnly received)
    {
        var match = BackOnWeekday().Match(text);
        if (!match.Success || !s_weekdays.TryGetValue(match.Groups[1].Value, out var weekday))
        {
            return null;
        }

        var days = ((int)weekday - (int)received.DayOfWeek + 7) % 7;
        return received.AddDays(days == 0 ? 7 : days);
    }

    private static int Num(Match match, int group) => int.Parse(match.Groups[group].ValueSpan, CultureInfo.InvariantCulture);

    private static int? Year(Match match, int group) => match.Groups[group].Success ? Num(match, group) : null;

    private static Language Guess(string text)
    {
        var counts = new[]
        {
            (Language.English, English().Count(text)),
            (Language.German, German().Count(text)),
            (Language.French, French().Count(text)),
            (Language.Spanish, Spanish().Count(text)),
        };
        var best = counts.MaxBy(c => c.Item2);
        return best.Item2 > counts[0].Item2 ? best.Item1 : Language.English;
    }

    private static Dictionary<string, int> BuildMonths()
    {
        var names = new[]
        {
            "january jan januar janv janvier enero ene",
            "february feb februar fevrier février févr fevr febrero",
            "march mar märz maerz marz mars marzo",
            "april apr avril avr abril abr",
            "may mai mayo",
            "june jun juni juin junio",
            "july jul juli juillet juil julio",
            "august aug août aout agosto",
            "september sep sept septembre septiembre setiembre",
            "october oct oktober okt octobre octubre",
            "november nov novembre noviembre",
            "december dec dezember dez décembre decembre déc diciembre dic",
        };
        var months = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < names.Length; i++)
        {
            foreach (var name in names[i].Split(' '))
            {
                months[name] = i + 1;
            }
        }

        return months;
    }

    private const string MonthNames =
        "january|janvier|januar|janv|jan|enero|ene|february|februar|février|fevrier|febrero|févr|fevr|feb|march|märz|maerz|marz|mars|marzo|mar|" +
        "april|avril|abril|apr|avr|abr|may|mayo|mai|june|juni|juin|junio|jun|july|juli|juillet|julio|juil|jul|august|août|aout|agosto|aug|" +
        "september|septembre|septiembre|setiembre|sept|sep|october|oktober|octobre|octubre|oct|okt|november|novembre|noviembre|nov|" +
        "december|dezember|décembre|decembre|diciembre|déc|dec|dez|dic";

    private const RegexOptions Options = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant;

    [GeneratedRegex(@"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", Options, 2000)]
    private static partial Regex Iso();

    [GeneratedRegex(@"\b(\d{1,2})\.(\d{1,2})\.(?:(\d{4}|\d{2})\b)?", Options, 2000)]
    private static partial Regex Dotted();

    [GeneratedRegex(@"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b", Options, 2000)]
    private static partial Regex Slashed();

    [GeneratedRegex(@"\b(\d{1,2})(?:st|nd|rd|th|er|\.|º)?\s(?:de\s)?(" + MonthNames + @")\b\.?(?:,?\s(?:de\s)?(\d{4})\b)?", Options, 2000)]
    private static partial Regex DayMonth();

    [GeneratedRegex(@"\b(" + MonthNames + @")\b\.?\s(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s(\d{4})\b)?", Options, 2000)]
    private static partial Regex MonthDay();

    [GeneratedRegex(@"\b(back|return|returning|returns|in the office|zurück|zurueck|wieder|ab dem|ab|retour|reprendrai|reprise|regreso|regresaré|regresare|vuelta|volveré|volvere|reincorporo)\b[^.!?\d]{0,40}$", Options, 2000)]
    private static partial Regex ReturnCueBefore();

    [GeneratedRegex(@"^\.?\s?(wieder|zurück|zurueck)\b", Options, 2000)]
    private static partial Regex ReturnCueAfter();

    [GeneratedRegex(@"\b(until|till|til|through|thru|bis|jusqu'au|jusqu'à|jusqu’au|hasta)\b[^.!?\d]{0,40}$", Options, 2000)]
    private static partial Regex UntilCue();

    [GeneratedRegex(@"\b(through|thru|einschließlich|einschliesslich|inklusive)\b[^.!?\d]{0,20}$", Options, 2000)]
    private static partial Regex InclusiveBefore();

    [GeneratedRegex(@"^[.,]?\s?(inclus|incluse|inclusive|incluido|inclusive|included)\b", Options, 2000)]
    private static partial Regex InclusiveAfter();

    [GeneratedRegex(@"\b(?:back|return|returning|zurück|zurueck|wieder|retour|regreso|regresaré|vuelta)\b[^.!?\d]{0,20}?\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|lunes|martes|miércoles|miercoles|jueves|viernes|sábado|sabado|domingo)\b", Options, 2000)]
    private static partial Regex BackOnWeekday();

    [GeneratedRegex(@"\b(i|i'm|am|the|and|back|until|office|will|thank|you|my|with)\b", Options, 2000)]
    private static partial Regex English();

    [GeneratedRegex(@"\b(ich|bin|nicht|und|zurück|urlaub|büro|abwesend|bis|wieder|vielen|dank|ihre|sie)\b", Options, 2000)]
    private static partial Regex German();

    [GeneratedRegex(@"\b(je|suis|nous|retour|bureau|absent|absente|jusqu|congé|merci|vous|le|du)\b", Options, 2000)]
    private static partial Regex French();

    [GeneratedRegex(@"\b(estoy|estaré|oficina|hasta|regreso|regresaré|vacaciones|gracias|usted|su|el|por)\b", Options, 2000)]
    private static partial Regex Spanish();
}
