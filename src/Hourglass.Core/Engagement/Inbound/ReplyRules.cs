using System.Text.RegularExpressions;

namespace Hourglass.Engagement.Inbound;

/// <summary>What the rules read in a reply: a <see cref="ReplyLabel"/>, how sure (0–1), what decided it, a return date.</summary>
internal sealed record ReplyVerdict(string Label, decimal Confidence, string Evidence, DateOnly? ReturnOn);

/// <summary>
/// The rules that label a reply (docs/inbound.md, "Reading a reply"), in order, the first that matches deciding:
/// <list type="number">
/// <item>a bounce notice (the sender is a mailer-daemon or postmaster, a delivery-report subject or content type, or an
/// SMTP status in the text);</item>
/// <item>an automatic reply (Auto-Submitted other than "no", X-Autoreply, X-Autorespond, Precedence: auto_reply, or an
/// auto-reply subject): wrong person when it says the person left, otherwise out of office;</item>
/// <item>in what a person wrote (quoted history stripped), the safer label first: unsubscribe request, wrong person,
/// out of office, not now, interested; nothing → other.</item>
/// </list>
/// A strong phrase gives 0.9–0.97, a weak one 0.6–0.75; when a person's reply also holds a strong phrase of a later
/// label ("interested, but not until January"), the earlier (safer) label stands at 0.7, so a configured model is asked.
/// An unsubscribe request is never lowered: words asking to stop always stop.
/// </summary>
internal static partial class ReplyRules
{
    /// <summary>At or above this the rules decide alone and no model is asked.</summary>
    public const decimal Certain = 0.85m;

    private const decimal Conflicted = 0.7m;
    private const decimal OtherConfidence = 0.4m;
    private const RegexOptions Options = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant;
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(2);

    private sealed record Phrase(string Label, decimal Weight, Regex Pattern, bool Leaving = false);

    private static Phrase P(string label, decimal weight, string pattern, bool leaving = false) =>
        new(label, weight, new Regex(pattern, Options, s_timeout), leaving);

    private static readonly Phrase[] s_bounceText =
    [
        P(ReplyLabel.BounceNotice, 0.9m, @"\b[45]\.[0-7]\.\d{1,3}\b"),
        P(ReplyLabel.BounceNotice, 0.8m, @"\b(user unknown|address not found|recipient address rejected|mailbox (unavailable|not found|full)|(message|mail) (could not|couldn't|wasn't|was not) (be )?delivered|delivery has failed|undeliverable|konnte nicht zugestellt werden|unzustellbar|n'a pas pu être (remis|distribué)|no se (pudo|ha podido) entregar)"),
    ];

    private static readonly Phrase[] s_bounceSubject =
    [
        P(ReplyLabel.BounceNotice, 0.97m, @"\b(undelivered mail|undeliverable|delivery status notification \((failure|delay)\)|mail delivery failed|returned mail|failure notice|delivery failure|unzustellbar|nicht zustellbar|non remis|échec de (la )?remise|no se puede entregar|no entregado|entrega fallida)"),
    ];

    private static readonly Phrase[] s_autoSubject =
    [
        P(ReplyLabel.OutOfOffice, 0.9m, @"^\s*(automatic reply|auto-?reply|auto-?response|out of (the )?office|abwesenheitsnotiz|automatische antwort|abwesend|réponse automatique|reponse automatique|absence|absent|respuesta automática|respuesta automatica|fuera de la oficina|ausente)\b"),
    ];

    // A person's words, in the order the safer label wins.
    private static readonly Phrase[] s_phrases =
    [
        // unsubscribe request
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bunsubscribe\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bremove (me|us|my (e-?mail|address|name)|this address)\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\btake (me|us|my (e-?mail|address|name)) off\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\b(stop|quit|cease) (e-?mailing|contacting|sending|messaging|writing to|spamming) ?(me|us)?\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\b(do not|don't|dont|never) (contact|e-?mail|write to|message) (me|us)\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bno (more|further) (e-?mails|messages)\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bopt (me |us )?out\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bleave (me|us) alone\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.9m, @"\bplease stop\b(?! by)|\bnever (signed|opted) (up|in)\b|\b(delete|erase) (me|my (e-?mail|address|details|data))\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\b(schreiben|senden|schicken|mailen) sie mir (bitte )?(nicht|keine) (mehr|e-?mails|nachrichten)\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bno quiero (recibir )?m[áa]s (correos|e-?mails|mensajes)\b|\bno (me )?(escriba|env[ií]e|contacte) m[áa]s\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\b(abmelden|austragen|abbestellen)\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\baus (ihrem|dem|diesem|eurem) (e-?mail-?)?verteiler\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bkeine (weiteren )?(e-?mails|mails|nachrichten|werbung)\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\b(entfernen|löschen) sie (mich|meine)\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\b(mich )?nicht mehr (kontaktieren|anschreiben)\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bd[ée]sabonn\w*|\bd[ée]sinscri\w*"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\b(retirez|supprimez|enlevez)[- ]moi\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bne (plus (recevoir|me contacter|m'envoyer)|me contactez plus|m'(écrivez|ecrivez|envoyez) plus)\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\b(dar|den|darse|darme|denme)( de)? baja\b|\bbaja de (la|esta|su) lista\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\bno quiero recibir\b|\bno (me )?(env[ií]en|escriban|contacten) m[áa]s\b"),
        P(ReplyLabel.UnsubscribeRequest, 0.95m, @"\b(elim[ií]nen(me)?|b[óo]rren(me)?|s[áa]quen(me)?) de\b|\bcancelar (la |mi )?suscripci[óo]n\b"),

        // wrong person
        P(ReplyLabel.WrongPerson, 0.9m, @"\bnot the (right|correct|best|appropriate|relevant) (person|contact)\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\bwrong (person|contact|guy|department|address)\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\bno longer (with|at|works?|working|employed|part of)\b", leaving: true),
        P(ReplyLabel.WrongPerson, 0.9m, @"\b(has|have) moved on\b|\bmoved on from\b|\bis no longer (at|with|working)\b", leaving: true),
        P(ReplyLabel.WrongPerson, 0.85m, @"\byou (want|need|should talk to|should speak to) my colleague\b|\b(she|he|they) (runs|handles|is responsible for|looks after|manages|owns) (procurement|purchasing|buying|this|that|orders)\b|\b(copying|cc'?ing|looping in) (her|him|them|my colleague)\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\bje ne m'occupe (pas|plus)\b|\bvoyez (plutôt |plutot )?avec\b|\badressez[- ]vous à\b|\bich bin (nicht|nicht mehr) (für|fuer)\b|\bno me (encargo|ocupo) de\b|\bdir[ií]jase a\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\b(has|have) left (the|our) (company|organi[sz]ation|business|firm|team)\b|\bleft the company\b", leaving: true),
        P(ReplyLabel.WrongPerson, 0.9m, @"\bno longer (handle|handles|deal with|responsible|in charge|look after|manage)\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\b(not|no longer) (responsible|in charge) (for|of)\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\b(i|he|she) (don't|doesn't|do not|does not) (handle|deal with|look after|manage|work on)\b"),
        P(ReplyLabel.WrongPerson, 0.85m, @"\b(contact|reach out to|speak (to|with)|talk to|e-?mail)\b[^.!?]{0,80}\binstead\b|\bthe right person (is|would be)\b|\byou should (contact|reach out to|speak (to|with)|talk to)\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\bnicht (der|die) (richtige|zuständige)( ansprechpartner(in)?| person| kontakt)?\b|\bnicht zuständig\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\bnicht mehr (im unternehmen|in unserem unternehmen|bei uns|bei der firma|für (uns|die firma) tätig)\b|\b(hat|haben) (das unternehmen|die firma|uns) verlassen\b", leaving: true),
        P(ReplyLabel.WrongPerson, 0.7m, @"\bwenden sie sich (bitte )?an\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\b(ne suis|n'est|ne suis peut-être) pas la bonne personne\b|\bpas (le bon|la bonne) (interlocut(eur|rice)|contact|personne)\b|\bpas en charge\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\bne (fait|fais) plus partie\b|\bne travaille plus\b|\ba quitt[ée] (l'entreprise|la soci[ée]t[ée])\b", leaving: true),
        P(ReplyLabel.WrongPerson, 0.9m, @"\bno soy (la persona|el contacto) (adecuad[oa]|indicad[oa]|correct[oa])\b|\bno (es|soy) (el|la) (responsable|encargad[oa])\b"),
        P(ReplyLabel.WrongPerson, 0.9m, @"\bya no (trabaja|trabajo|forma parte|est[áa] en)\b|\bdej[óo] la empresa\b", leaving: true),

        // out of office, written by a person (automatic replies are caught by their headers and subject first)
        P(ReplyLabel.OutOfOffice, 0.9m, @"\bout of (the )?office\b|\baway from (the office|my desk)\b|\b(limited|no) access to (my )?e-?mails?\b"),
        P(ReplyLabel.OutOfOffice, 0.9m, @"\bon (annual |parental |maternity |paternity |sick |medical )?(leave|vacation|holidays?)\b|\b(i'm|i am|currently) away\b|\btravell?ing until\b"),
        P(ReplyLabel.OutOfOffice, 0.9m, @"\bnicht im büro\b|\babwesen(d|heit)|\bim urlaub\b|\burlaubsbedingt\b"),
        P(ReplyLabel.OutOfOffice, 0.9m, @"\babsente? du bureau\b|\bje (suis|serai) absente?\b|\ben (congés?|vacances)\b|\bhors du bureau\b"),
        P(ReplyLabel.OutOfOffice, 0.9m, @"\bfuera de (la )?oficina\b|\bde vacaciones\b|\bestoy ausente\b"),
        P(ReplyLabel.OutOfOffice, 0.9m, @"\bbusiness trip\b|\b(sporadic|intermittent) (e-?mail )?access\b|\b(off|out) sick\b|\bsick leave\b|\bback in the office (on|from)\b"),
        P(ReplyLabel.OutOfOffice, 0.9m, @"\bauf dienstreise\b|\ben d[ée]placement\b|\bestar[ée] fuera\b|\bde viaje\b|\bacceso limitado\b"),

        // not now
        P(ReplyLabel.NotNow, 0.9m, @"\bnot (right )?now\b|\bnot at (the|this) (moment|time|point)\b|\bnot (a good|the right) time\b|\btiming (isn't|is not|isnt) right\b"),
        P(ReplyLabel.NotNow, 0.9m, @"\b(circle|check|come) back\b|\b(reach out|follow up|touch base|get in touch|contact (me|us)|try (me|us)) (again )?(in|next|after|later)\b"),
        P(ReplyLabel.NotNow, 0.9m, @"\bmaybe (next|in|after|later)\b|\bnot until\b|\bafter the (holidays|new year|summer)\b|\brevisit\b"),
        P(ReplyLabel.NotNow, 0.9m, @"\bno budget\b|\b(don't|do not) have (the |a |any )?budget\b|\bbudget (is|was|has been) (frozen|spent|cut)\b|\bnot a priority\b|\btoo busy\b"),
        P(ReplyLabel.NotNow, 0.75m, @"\bnext (quarter|year|month|fiscal year)\b|\bin q[1-4]\b|\blater (this|next) year\b|\bfully stocked\b"),
        P(ReplyLabel.NotNow, 0.6m, @"\bnot interested\b|\bno,? thanks?( you)?\b|\bnot (looking|in the market)\b"),
        P(ReplyLabel.NotNow, 0.85m, @"\b(ping|contact|email|e-mail|call|try) (me|us) (again )?(next|in|after|later)\b|\bpick (this|it) up (again )?(in|next|after|later)\b|\bin the new year\b"),
        P(ReplyLabel.NotNow, 0.75m, @"\bnext (autumn|fall|spring|summer|winter|season)\b|\b(signed|went|are going|'re going) with (another|a different|an existing) (supplier|vendor|provider)\b|\b(swamped|snowed under)\b"),
        P(ReplyLabel.NotNow, 0.9m, @"\b(de momento|por ahora|ahora mismo) no\b|\bzurzeit nicht\b|\bvielleicht später\b|\brevenez vers moi\b"),
        P(ReplyLabel.NotNow, 0.75m, @"\bhablamos (en|el pr[óo]ximo|después|despues)\b|\bno lo necesitamos\b"),
        P(ReplyLabel.NotNow, 0.9m, @"\b(derzeit|momentan|aktuell|zurzeit|im moment) (kein(en)? bedarf|nicht)\b|\bnicht jetzt\b|\bim (nächsten|kommenden) (quartal|jahr|monat)\b|\bspäter (wieder )?(melden|kontaktieren)\b"),
        P(ReplyLabel.NotNow, 0.6m, @"\bkein interesse\b|\bnicht interessiert\b"),
        P(ReplyLabel.NotNow, 0.9m, @"\bpas (pour le moment|maintenant|pour l'instant|en ce moment)\b|\b(le |au )?(prochain trimestre|trimestre prochain|l'année prochaine)\b|\brecontactez[- ]moi\b"),
        P(ReplyLabel.NotNow, 0.6m, @"\bpas intéressée?\b|\bplus tard\b"),
        P(ReplyLabel.NotNow, 0.9m, @"\bahora no\b|\bno (es|por) (buen|el) momento\b|\bpor el momento no\b|\bm[áa]s adelante\b|\bel pr[óo]ximo (trimestre|a[ñn]o|mes)\b"),
        P(ReplyLabel.NotNow, 0.6m, @"\bno me interesa\b|\bno estamos interesados\b"),

        // interested
        P(ReplyLabel.Interested, 0.9m, @"\bsounds (good|great|interesting)\b|\blet'?s (talk|chat|meet|discuss|set up|schedule|book|do it|connect|go ahead|proceed)\b"),
        P(ReplyLabel.Interested, 0.9m, @"\bsend (me|us|over) (a |the |your |some )?(quote|quotation|proposal|pricing|prices|price list|offer|catalog(ue)?|details|info|more)\b"),
        P(ReplyLabel.Interested, 0.9m, @"\b(call|ring|phone) me\b|\bgive me a (call|ring)\b|\bhappy to (chat|talk|meet|jump on|hop on|discuss)\b|\b(book|schedule|set up|arrange) a (call|meeting|demo|time)\b"),
        P(ReplyLabel.Interested, 0.9m, @"\bwhat'?s your availability\b|\bwhen are you (free|available)\b|\btell me more\b|\bcount me in\b|\b(i|we)'?d (like|love) to (learn|hear|know|see|order|talk|chat|buy|proceed)\b"),
        P(ReplyLabel.Interested, 0.85m, @"(?<!\bnot )(?<!\bnot really )(?<!n't )\binterested\b"),
        P(ReplyLabel.Interested, 0.75m, @"\byes,? please\b|\bplease (call|send)\b"),
        P(ReplyLabel.Interested, 0.85m, @"\bcan we (find|set up|schedule|have|get|book) (a |some |\d+ )?(minutes|call|time|chat|meeting|slot)\b|\bcan we (talk|speak|meet|chat)\b|\bcould be (useful|interesting|of interest|a fit)\b"),
        P(ReplyLabel.Interested, 0.85m, @"\bgo ahead\b|\bput together a (proposal|quote|quotation|offer)\b"),
        P(ReplyLabel.Interested, 0.85m, @"\bk(ö|oe)nnen wir\b[^.?!]{0,40}\b(telefonieren|sprechen|treffen|reden)\b|\bdas passt\b|\bpourquoi pas\b|\bvos disponibilit[ée]s\b|\b(podemos|podr[ií]amos) (hablar|reunirnos|vernos)\b"),
        P(ReplyLabel.Interested, 0.9m, @"\bklingt (gut|interessant|spannend)\b|\b(schicken|senden) sie mir\b|\brufen sie mich (bitte )?an\b|\blassen sie uns (sprechen|telefonieren|reden)\b"),
        P(ReplyLabel.Interested, 0.85m, @"(?<!\bnicht )(?<!\bnicht so )\binteressiert\b"),
        P(ReplyLabel.Interested, 0.6m, @"\bgerne\b|\bangebot\b"),
        P(ReplyLabel.Interested, 0.9m, @"(?<!\bne )\bm'intéresse\b|(?<!\bpas )\bintéressée?\b|\bappelez[- ]moi\b|\bm'appeler\b|\benvoyez[- ]moi\b|\bça me va\b"),
        P(ReplyLabel.Interested, 0.6m, @"\bdevis\b|\bvolontiers\b"),
        P(ReplyLabel.Interested, 0.9m, @"(?<!\bno )\bme interesa\b|\bsuena bien\b|\bll[áa]me(me)?\b|\bll[áa]mame\b|\benv[ií](e|a)me\b|\bhablemos\b|(?<!\bno estamos )\binteresad[oa]s?\b"),
        P(ReplyLabel.Interested, 0.6m, @"\bcotizaci[óo]n\b"),
    ];

    private static readonly string[] s_labelOrder =
        [ReplyLabel.UnsubscribeRequest, ReplyLabel.WrongPerson, ReplyLabel.OutOfOffice, ReplyLabel.NotNow, ReplyLabel.Interested];

    public static ReplyVerdict Classify(InboundReply reply, DateTimeOffset receivedAt)
    {
        try
        {
            return Read(reply, receivedAt);
        }
        catch (RegexMatchTimeoutException)
        {
            // A text built to make a pattern backtrack is not read further; a reply is never lost to its reading.
            return new ReplyVerdict(ReplyLabel.Other, OtherConfidence, "the text could not be read in time", null);
        }
    }

    private static ReplyVerdict Read(InboundReply reply, DateTimeOffset receivedAt)
    {
        var fresh = ReplyText.Fresh(reply.Text);
        var subject = ReplyText.Whole(reply.Subject ?? "");

        if (Bounce(reply, subject) is { } bounce)
        {
            return bounce;
        }

        var auto = AutoReply(reply.Headers, subject);
        if (auto is not null)
        {
            var leaving = s_phrases.Where(p => p.Leaving).Select(p => (p, m: p.Pattern.Match(fresh))).FirstOrDefault(x => x.m.Success);
            if (leaving.m is { Success: true })
            {
                return new ReplyVerdict(ReplyLabel.WrongPerson, leaving.p.Weight, Quote(leaving.m.Value), null);
            }

            var phrase = First(s_phrases.Where(p => p.Label == ReplyLabel.OutOfOffice), fresh);
            // A header or subject alone may be a ticket system's acknowledgement: out of office, not certain.
            return new ReplyVerdict(ReplyLabel.OutOfOffice, phrase is null ? 0.8m : 0.95m, phrase is null ? auto : $"{auto}; {Quote(phrase.Value.Match.Value)}",
                ReturnDateReader.Read(fresh, receivedAt));
        }

        // The strongest match of each label, then the first label in the safer order.
        var best = new Dictionary<string, (decimal Weight, string Text)>();
        foreach (var phrase in s_phrases)
        {
            var match = phrase.Pattern.Match(fresh);
            if (match.Success && (!best.TryGetValue(phrase.Label, out var seen) || seen.Weight < phrase.Weight))
            {
                best[phrase.Label] = (phrase.Weight, match.Value);
            }
        }

        foreach (var label in s_labelOrder)
        {
            if (!best.TryGetValue(label, out var decided))
            {
                continue;
            }

            var confidence = decided.Weight;
            var rival = s_labelOrder.SkipWhile(l => l != label).Skip(1).FirstOrDefault(l => best.TryGetValue(l, out var r) && r.Weight >= Certain);
            if (rival is not null && label != ReplyLabel.UnsubscribeRequest)
            {
                confidence = Math.Min(confidence, Conflicted);
            }

            var evidence = Quote(decided.Text);
            return new ReplyVerdict(label, confidence, evidence,
                label == ReplyLabel.OutOfOffice ? ReturnDateReader.Read(fresh, receivedAt) : null);
        }

        return new ReplyVerdict(ReplyLabel.Other, OtherConfidence, "no rule matched", null);
    }

    private static ReplyVerdict? Bounce(InboundReply reply, string subject)
    {
        if (reply.From is { } from && DaemonSender().Match(from) is { Success: true } daemon)
        {
            return new ReplyVerdict(ReplyLabel.BounceNotice, 0.97m, $"From: {Short(daemon.Value)}", null);
        }

        if (Header(reply.Headers, "Content-Type") is { } type && DeliveryReport().IsMatch(type))
        {
            return new ReplyVerdict(ReplyLabel.BounceNotice, 0.97m, $"Content-Type: {Short(type)}", null);
        }

        if (First(s_bounceSubject, subject) is { } bySubject)
        {
            return new ReplyVerdict(ReplyLabel.BounceNotice, bySubject.Phrase.Weight, $"Subject: {Short(bySubject.Match.Value)}", null);
        }

        // A notice quotes what bounced, so its whole text is read; a status code or a delivery phrase alone is likelier
        // a notice than a person, but not certain.
        var whole = ReplyText.Whole(reply.Text);
        var fresh = ReplyText.Fresh(reply.Text);
        var byText = First(s_bounceText, whole);
        return byText is { } found && Header(reply.Headers, "Auto-Submitted") is null && First(s_phrases, fresh) is null
            ? new ReplyVerdict(ReplyLabel.BounceNotice, found.Phrase.Weight == 0.9m ? 0.8m : 0.75m, Quote(found.Match.Value), null)
            : null;
    }

    private static string? AutoReply(IReadOnlyDictionary<string, string>? headers, string subject)
    {
        // RFC 3834: Auto-Submitted other than "no" marks a message no person wrote.
        if (Header(headers, "Auto-Submitted") is { } submitted && !submitted.Trim().StartsWith("no", StringComparison.OrdinalIgnoreCase))
        {
            return $"Auto-Submitted: {Short(submitted.Trim())}";
        }

        if (Header(headers, "X-Autoreply") is { } autoreply && !autoreply.Trim().Equals("no", StringComparison.OrdinalIgnoreCase))
        {
            return $"X-Autoreply: {Short(autoreply.Trim())}";
        }

        if (Header(headers, "X-Autorespond") is { } autorespond)
        {
            return $"X-Autorespond: {Short(autorespond.Trim())}";
        }

        if (Header(headers, "Precedence") is { } precedence && precedence.Trim().Equals("auto_reply", StringComparison.OrdinalIgnoreCase))
        {
            return "Precedence: auto_reply";
        }

        return First(s_autoSubject, subject) is { } bySubject ? $"Subject: {Short(bySubject.Match.Value.Trim())}" : null;
    }

    private static (Phrase Phrase, Match Match)? First(IEnumerable<Phrase> phrases, string text)
    {
        foreach (var phrase in phrases)
        {
            var match = phrase.Pattern.Match(text);
            if (match.Success)
            {
                return (phrase, match);
            }
        }

        return null;
    }

    private static string? Header(IReadOnlyDictionary<string, string>? headers, string name) =>
        headers?.FirstOrDefault(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

    private static string Quote(string text) => $"\"{Short(text.Trim())}\"";

    private static string Short(string text) => text.Length <= 80 ? text : text[..80] + "…";

    [GeneratedRegex(@"\b(mailer-daemon|postmaster|mail delivery (subsystem|system))\b[^\s>]*", Options, 2000)]
    private static partial Regex DaemonSender();

    [GeneratedRegex(@"multipart/report\s*;.*report-type\s*=\s*""?delivery-status", Options, 2000)]
    private static partial Regex DeliveryReport();
}
