namespace Hourglass.Tests.Engagement.Inbound;

/// <summary>
/// Realistic replies to an outreach email, each with the label a person would give it and (out of office) the return
/// date, all received on Monday 7 December 2026 at 10:00 UTC. Headers are written "Name: value" one a line.
/// </summary>
internal static class ReplyCorpus
{
    public static readonly DateTimeOffset ReceivedAt = new(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);

    internal sealed record Case(string Id, string Label, string? ReturnOn, string? From, string? Subject, string Text, string? Headers = null);

    public static readonly IReadOnlyList<Case> Cases =
    [
        // interested
        new("int-en-1", "interested", null, "anna@acme.test", "Re: Spring restock", "Sounds good, let's talk. Does Thursday at 2pm work for you?\n\nAnna\n\nOn Mon, Dec 7, 2026 at 9:00 AM Sam <sam@hourglass.test> wrote:\n> Would you like to restock before spring?\n> Please remove me if not relevant"),
        new("int-en-2", "interested", null, "bob@acme.test", "Re: Pricing", "Hi Sam,\n\nPlease send me a quote for 200 units of the blue model.\n\nThanks,\nBob"),
        new("int-en-3", "interested", null, "carla@acme.test", "Re: Quick question", "Yes, I'm interested. Call me tomorrow morning on 555 0101."),
        new("int-en-4", "interested", null, "dan@acme.test", "RE: New catalogue", "Thanks for reaching out. Could you tell me more about the volume discounts? Happy to jump on a call next week.\n\n-----Original Message-----\nFrom: Sam\nSent: Monday\nSubject: New catalogue\n\nWe are not the right person to ask"),
        new("int-en-5", "interested", null, "eve@acme.test", "Re: Demo", "Let's set up a demo. What's your availability on Wednesday?"),
        new("int-de-1", "interested", null, "jonas@firma.test", "AW: Frühjahrsbestellung", "Hallo Sam,\n\nklingt gut! Schicken Sie mir bitte ein Angebot für 50 Stück.\n\nViele Grüße\nJonas\n\nAm 07.12.2026 um 09:00 schrieb Sam <sam@hourglass.test>:\n> Hallo Jonas"),
        new("int-fr-1", "interested", null, "claire@societe.test", "RE: Réassort", "Bonjour,\n\nCela m'intéresse. Pouvez-vous m'appeler demain ?\n\nCordialement,\nClaire"),
        new("int-es-1", "interested", null, "lucia@empresa.test", "RE: Pedido de primavera", "Hola Sam, me interesa. Envíeme una cotización por favor.\n\nSaludos,\nLucía"),

        // not now
        new("nn-en-1", "not_now", null, "frank@acme.test", "Re: Spring restock", "Not right now, we're fully stocked. Maybe next quarter."),
        new("nn-en-2", "not_now", null, "gina@acme.test", "Re: Catalogue", "Thanks Sam. Can you circle back in February? We're in the middle of a system migration."),
        new("nn-en-3", "not_now", null, "hank@acme.test", "Re: Offer", "We don't have budget for this until next year. Please reach out again in Q2."),
        new("nn-en-4", "not_now", null, "ivy@acme.test", "Re: Follow up", "The timing isn't right for us at the moment, but feel free to check back in a few months."),
        new("nn-en-5", "not_now", null, "jack@acme.test", "Re: Demo", "Interested, but not until after the holidays. Let's revisit in January."),
        new("nn-de-1", "not_now", null, "lena@firma.test", "AW: Angebot", "Derzeit kein Bedarf. Melden Sie sich gerne im nächsten Quartal wieder."),
        new("nn-fr-1", "not_now", null, "marc@societe.test", "RE: Offre", "Pas pour le moment, merci. Recontactez-moi au prochain trimestre."),
        new("nn-es-1", "not_now", null, "pablo@empresa.test", "RE: Oferta", "Ahora no es buen momento. Escríbame más adelante, quizás el próximo trimestre."),

        // wrong person
        new("wp-en-1", "wrong_person", null, "kim@acme.test", "Re: Spring restock", "I'm not the right person for this. You should contact Laura Smith in purchasing instead: laura@acme.test"),
        new("wp-en-2", "wrong_person", null, "leo@acme.test", "Re: Catalogue", "Hi, I no longer handle purchasing. Please reach out to mike@acme.test."),
        new("wp-en-3", "wrong_person", null, "mia@acme.test", "Automatic reply: Catalogue", "Mia Jones is no longer with the company. For purchasing questions please contact orders@acme.test.", "Auto-Submitted: auto-replied"),
        new("wp-en-4", "wrong_person", null, "ned@acme.test", "Re: Offer", "Wrong person, sorry - I work in IT. Try our operations manager."),
        new("wp-de-1", "wrong_person", null, "olaf@firma.test", "AW: Angebot", "Dafür bin ich nicht zuständig. Bitte wenden Sie sich an Frau Keller (einkauf@firma.test)."),
        new("wp-de-2", "wrong_person", null, "petra@firma.test", "Automatische Antwort: Angebot", "Frau Petra Wolf ist nicht mehr im Unternehmen tätig. Ihre E-Mail wird nicht weitergeleitet.", "Auto-Submitted: auto-replied"),
        new("wp-fr-1", "wrong_person", null, "remi@societe.test", "RE: Offre", "Je ne suis pas la bonne personne pour ce sujet. Veuillez contacter notre service achats."),
        new("wp-es-1", "wrong_person", null, "sara@empresa.test", "RE: Oferta", "No soy la persona adecuada. Por favor contacte con compras@empresa.test."),

        // unsubscribe request
        new("un-en-1", "unsubscribe_request", null, "tom@acme.test", "Re: Spring restock", "Please remove me from your mailing list."),
        new("un-en-2", "unsubscribe_request", null, "uma@acme.test", "Re: Catalogue", "Stop emailing me."),
        new("un-en-3", "unsubscribe_request", null, "vic@acme.test", "unsubscribe", "unsubscribe"),
        new("un-en-4", "unsubscribe_request", null, "wes@acme.test", "Re: Offer", "I'm interested in the product but please take me off this list, I get too many emails."),
        new("un-en-5", "unsubscribe_request", null, "xena@acme.test", "Re: Demo", "Not interested. Do not contact me again."),
        new("un-de-1", "unsubscribe_request", null, "yvonne@firma.test", "AW: Angebot", "Bitte nehmen Sie mich aus Ihrem Verteiler. Ich möchte keine weiteren E-Mails erhalten."),
        new("un-fr-1", "unsubscribe_request", null, "zoe@societe.test", "RE: Offre", "Merci de me désinscrire de votre liste de diffusion."),
        new("un-es-1", "unsubscribe_request", null, "ana@empresa.test", "RE: Oferta", "Por favor, denme de baja de esta lista. No quiero recibir más correos."),

        // out of office
        new("ooo-en-1", "out_of_office", "2026-12-14", "ben@acme.test", "Automatic reply: Spring restock", "Thank you for your email. I am out of the office and will be back on Monday 14 December. For urgent matters please contact sales@acme.test.", "Auto-Submitted: auto-replied\nX-Auto-Response-Suppress: All"),
        new("ooo-en-2", "out_of_office", "2026-12-14", "cat@acme.test", "Out of Office: Catalogue", "I'm currently on annual leave, returning 12/14. I will have limited access to email."),
        new("ooo-en-3", "out_of_office", "2027-01-05", "dave@acme.test", "Out of office", "I am away until January 5th with no access to email. I'll respond when I'm back.", "X-Autoreply: yes"),
        new("ooo-en-4", "out_of_office", null, "erin@acme.test", "Automatic reply: Offer", "I'm out of the office with limited access to email. I will reply as soon as possible.", "Auto-Submitted: auto-replied"),
        new("ooo-en-5", "out_of_office", null, "fred@acme.test", "Out of office", "I was out of the office until 1 December. I'm back now and catching up.", "Precedence: auto_reply"),
        new("ooo-en-6", "out_of_office", "2026-12-09", "gail@acme.test", "Automatic reply: Demo", "I'm travelling until Wednesday, 9 December 2026 and will reply on my return.", "Auto-Submitted: auto-replied"),
        new("ooo-de-1", "out_of_office", "2026-12-14", "hans@firma.test", "Abwesenheitsnotiz: Angebot", "Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich 11.12. nicht im Büro und ab dem 14.12. wieder erreichbar. In dringenden Fällen wenden Sie sich bitte an info@firma.test.", "Auto-Submitted: auto-replied"),
        new("ooo-de-2", "out_of_office", "2026-12-14", "ines@firma.test", "Automatische Antwort: Angebot", "Ich bin im Urlaub und zurück am 14.12.2026. Ihre E-Mail wird nicht weitergeleitet."),
        new("ooo-de-3", "out_of_office", "2027-01-04", "jan@firma.test", "Abwesend", "Ich bin bis zum 4. Januar abwesend.", "Auto-Submitted: auto-replied"),
        new("ooo-fr-1", "out_of_office", "2026-12-14", "luc@societe.test", "Réponse automatique : Offre", "Bonjour, je suis absent du bureau et serai de retour le 14 décembre. Pour toute urgence, contactez accueil@societe.test.", "Auto-Submitted: auto-replied"),
        new("ooo-fr-2", "out_of_office", "2027-01-05", "mona@societe.test", "Absence", "Je suis en congé jusqu'au 4 janvier 2027 inclus, avec un accès limité à mes e-mails.", "X-Autoreply: yes"),
        new("ooo-es-1", "out_of_office", "2026-12-14", "nora@empresa.test", "Respuesta automática: Oferta", "Gracias por su mensaje. Estoy fuera de la oficina y regresaré el 14 de diciembre.", "Auto-Submitted: auto-replied"),
        new("ooo-es-2", "out_of_office", "2027-01-07", "oscar@empresa.test", "Fuera de la oficina", "Estoy de vacaciones hasta el 07/01/2027. Para asuntos urgentes, escriba a ventas@empresa.test."),

        // bounce notices
        new("bn-en-1", "bounce_notice", null, "MAILER-DAEMON@mx.acme.test", "Undelivered Mail Returned to Sender", "This is the mail system at host mx.acme.test.\n\nI'm sorry to have to inform you that your message could not be delivered to one or more recipients.\n\n<quinn@acme.test>: host mx.acme.test said: 550 5.1.1 <quinn@acme.test>: Recipient address rejected: User unknown in local recipient table", "Auto-Submitted: auto-replied\nContent-Type: multipart/report; report-type=delivery-status"),
        new("bn-en-2", "bounce_notice", null, "mailer-daemon@googlemail.com", "Delivery Status Notification (Failure)", "Address not found\n\nYour message wasn't delivered to rory@acme.test because the address couldn't be found, or is unable to receive mail."),
        new("bn-en-3", "bounce_notice", null, "postmaster@acme.test", "Undeliverable: Spring restock", "Delivery has failed to these recipients or groups:\n\nsue@acme.test\nThe email address you entered couldn't be found. Please check the recipient's email address and try to resend the message."),
        new("bn-de-1", "bounce_notice", null, "MAILER-DAEMON@mail.firma.test", "Unzustellbar: Angebot", "Ihre Nachricht konnte nicht zugestellt werden. Der Empfänger wurde nicht gefunden."),

        // other
        new("oth-en-1", "other", null, "tina@acme.test", "Re: Spring restock", "Thanks, received."),
        new("oth-en-2", "other", null, "ugo@acme.test", "Re: Invoice 1234", "Can you resend the invoice from last month? The PDF was corrupted."),
        new("oth-en-3", "other", null, "vera@acme.test", "Re: Catalogue", "Who is this?"),
        new("oth-de-1", "other", null, "walter@firma.test", "AW: Angebot", "Danke, habe ich erhalten."),
    ];

    /// <summary>
    /// Written after the rules were, to measure them on wording they were not built from (docs/inbound.md gives the
    /// first-run numbers); the misses found there were then fixed, so these too are held to their labels now.
    /// </summary>
    public static readonly IReadOnlyList<Case> Later =
    [
        new("later-int-1", "interested", null, "amy@acme.test", "Re: Restock", "This could be useful for us. Can we find 30 minutes next Tuesday?"),
        new("later-int-2", "interested", null, "bert@acme.test", "Re: Offer", "Yes - please go ahead and put together a proposal for the Berlin office."),
        new("later-int-3", "interested", null, "cora@firma.test", "AW: Katalog", "Das passt gut. Können wir nächste Woche telefonieren?"),
        new("later-int-4", "interested", null, "didier@societe.test", "RE: Catalogue", "Oui, pourquoi pas. Quelles sont vos disponibilités jeudi ?"),
        new("later-nn-1", "not_now", null, "ed@acme.test", "Re: Restock", "We just signed with another supplier for this year. Ping me again next autumn."),
        new("later-nn-2", "not_now", null, "fay@acme.test", "Re: Offer", "Swamped with year-end close. Let's pick this up in the new year."),
        new("later-nn-3", "not_now", null, "gus@empresa.test", "RE: Oferta", "Gracias, de momento no lo necesitamos. Hablamos en marzo."),
        new("later-wp-1", "wrong_person", null, "hal@acme.test", "Re: Restock", "I think you want my colleague Priya, she runs procurement. Copying her here."),
        new("later-wp-2", "wrong_person", null, "iris@acme.test", "Automatic reply: Restock", "Thank you for your message. Iris has moved on from Acme. Please send future correspondence to purchasing@acme.test.", "Auto-Submitted: auto-replied"),
        new("later-wp-3", "wrong_person", null, "jo@societe.test", "RE: Offre", "Je ne m'occupe pas des achats, voyez plutôt avec Mme Martin."),
        new("later-un-1", "unsubscribe_request", null, "ken@acme.test", "Re: Restock", "Please stop. I never signed up for this."),
        new("later-un-2", "unsubscribe_request", null, "lia@acme.test", "Re: Offer", "Kindly remove my address from your database."),
        new("later-un-3", "unsubscribe_request", null, "max@firma.test", "AW: Angebot", "Bitte schreiben Sie mir nicht mehr."),
        new("later-un-4", "unsubscribe_request", null, "noe@empresa.test", "RE: Oferta", "No me interesa y no quiero más correos suyos."),
        new("later-ooo-1", "out_of_office", "2026-12-21", "oli@acme.test", "Auto: Restock", "Hi, I'm on a business trip with sporadic email access and will be back in the office on December 21.", "Auto-Submitted: auto-replied"),
        new("later-ooo-2", "out_of_office", "2026-12-10", "pia@acme.test", "Re: Restock", "I'm off sick today and tomorrow, back Thursday 10 December. Will reply then."),
        new("later-ooo-3", "out_of_office", "2027-01-11", "quentin@societe.test", "Absence du bureau", "Je serai absent jusqu'au 08/01/2027 inclus. Retour le 11/01/2027.", "X-Autoreply: yes"),
        new("later-ooo-4", "out_of_office", "2026-12-15", "rosa@empresa.test", "Respuesta automática", "Estaré fuera hasta el martes 15 de diciembre, con acceso limitado al correo.", "Auto-Submitted: auto-replied"),
        new("later-bn-1", "bounce_notice", null, "Mail Delivery Subsystem <mailer-daemon@google.com>", "Delivery Status Notification (Delay)", "Message not delivered yet. Gmail will keep trying to deliver your message for 47 hours."),
        new("later-bn-2", "bounce_notice", null, "postmaster@outlook.com", "Non remis : Offre", "Votre message n'a pas pu être remis à ces destinataires."),
        new("later-oth-1", "other", null, "sam@acme.test", "Re: Invoice", "Our accounts team needs your VAT number on the next invoice."),
        new("later-oth-2", "other", null, "tess@acme.test", "Re: Restock", "ok"),
    ];
}
