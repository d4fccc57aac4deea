using Hourglass.Policies;

namespace Hourglass.Tests.Policies;

public sealed class PolicyEvaluatorTests
{
    private static readonly TimeZoneInfo s_utc = TimeZoneInfo.Utc;
    private static readonly TimeZoneInfo s_newYork = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
    private static readonly TimeZoneInfo s_tokyo = TimeZoneInfo.FindSystemTimeZoneById("Asia/Tokyo");
    private static readonly Guid s_alice = new("00000000-0000-0000-0000-00000000000a");
    private static readonly Guid s_bob = new("00000000-0000-0000-0000-00000000000b");

    // Monday 2 March 2026, 10:00 UTC: inside any weekday business window in UTC.
    private static readonly DateTimeOffset s_now = new(2026, 3, 2, 10, 0, 0, TimeSpan.Zero);

    // ----- cap -----

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void Cap_Tenant_NthTouchAllowed_NextDenied(int limit)
    {
        var document = Doc($$"""{ "id": "tenant-cap", "kind": "cap", "scope": "tenant", "window": "day", "limit": {{limit}} }""");
        var history = new PolicyHistory();
        for (var n = 0; n < limit; n++)
        {
            // Any contact, any channel: the tenant cap counts them all.
            var action = n % 2 == 0 ? Message(Guid.NewGuid(), "email") : Card(Guid.NewGuid());
            var decision = Evaluate(document, action, s_now.AddMinutes(n), history: history);
            Assert.Equal(PolicyVerdict.Allow, decision.Verdict);
            history.RecordPermitted(action, s_now.AddMinutes(n));
        }

        var over = Evaluate(document, Message(Guid.NewGuid(), "webhook"), s_now.AddMinutes(limit), history: history);

        Assert.Equal(PolicyVerdict.Deny, over.Verdict);
        Assert.Equal(["tenant-cap"], over.DeterminingRules);
        Assert.Equal($"tenant-cap: {limit} touches in the last 24 hours; the cap is {limit}", over.Message);
    }

    [Fact]
    public void Cap_Channel_OtherChannelsDoNotCount()
    {
        var document = Doc("""{ "id": "email-cap", "kind": "cap", "scope": "channel", "channel": "email", "window": "hour", "limit": 2 }""");
        var history = new PolicyHistory();
        for (var n = 0; n < 5; n++)
        {
            history.AddPast("webhook", Guid.NewGuid(), s_now.AddMinutes(-n));
            history.AddPast("task", Guid.NewGuid(), s_now.AddMinutes(-n));
        }

        history.AddPast("email", s_alice, s_now.AddMinutes(-30));
        Assert.True(Evaluate(document, Message(s_bob, "email"), s_now, history: history).Permits);

        history.AddPast("email", s_bob, s_now.AddMinutes(-10));
        var denied = Evaluate(document, Message(Guid.NewGuid(), "email"), s_now, history: history);
        Assert.Equal(PolicyVerdict.Deny, denied.Verdict);
        Assert.Equal("email-cap: 2 email touches in the last hour; the cap is 2", denied.Message);
        Assert.True(Evaluate(document, Message(s_alice, "webhook"), s_now, history: history).Permits);
        Assert.True(Evaluate(document, Card(s_alice), s_now, history: history).Permits);
    }

    [Fact]
    public void Cap_Task_CountsCards()
    {
        var document = Doc("""{ "id": "cards", "kind": "cap", "scope": "channel", "channel": "task", "window": "day", "limit": 1 }""");
        var history = new PolicyHistory();
        history.RecordPermitted(Card(s_alice), s_now.AddHours(-1));

        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Card(s_bob), s_now, history: history).Verdict);
        Assert.True(Evaluate(document, Message(s_bob, "email"), s_now, history: history).Permits);
    }

    [Fact]
    public void Cap_Contact_OtherContactsDoNotCount()
    {
        var document = Doc("""{ "id": "contact-cap", "kind": "cap", "scope": "contact", "window": "week", "limit": 2 }""");
        var history = new PolicyHistory();
        history.AddPast("email", s_alice, s_now.AddDays(-6));
        for (var n = 0; n < 10; n++)
        {
            history.AddPast("email", s_bob, s_now.AddHours(-n));
        }

        var second = Message(s_alice, "webhook");
        Assert.True(Evaluate(document, second, s_now, history: history).Permits);
        history.RecordPermitted(second, s_now);

        var third = Evaluate(document, Card(s_alice), s_now.AddMinutes(1), history: history);
        Assert.Equal(PolicyVerdict.Deny, third.Verdict);
        Assert.Equal("contact-cap: 2 touches of this contact in the last 7 days; the cap is 2", third.Message);
        Assert.True(Evaluate(document, Message(Guid.NewGuid(), "email"), s_now.AddMinutes(1), history: history).Permits);
    }

    [Fact]
    public void Cap_NotATouch_NotCounted()
    {
        var document = Doc("""{ "id": "cap", "kind": "cap", "scope": "tenant", "window": "day", "limit": 0, "applies_to": ["*"] }""");

        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Message(s_alice, "email"), s_now).Verdict);
        Assert.True(Evaluate(document, Order(100), s_now).Permits);
    }

    // The window is (now - length, now]: a touch exactly one window-length ago has dropped out, one a tick
    // later still counts, and one at this very instant counts.
    [Theory]
    [InlineData("hour", 1)]
    [InlineData("day", 24)]
    [InlineData("week", 168)]
    public void Cap_RollingWindow_OpenAtTheStartClosedAtNow(string window, int hours)
    {
        var document = Doc($$"""{ "id": "cap", "kind": "cap", "scope": "tenant", "window": "{{window}}", "limit": 1 }""");
        var length = TimeSpan.FromHours(hours);
        Assert.Equal(length, PolicyEvaluator.Length(Enum.Parse<PolicyWindow>(window, ignoreCase: true)));

        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now, history: Past(s_now - length)).Permits);
        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Message(s_alice, "email"), s_now, history: Past(s_now - length + TimeSpan.FromTicks(1))).Verdict);
        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Message(s_alice, "email"), s_now, history: Past(s_now)).Verdict);
        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now, history: Past(s_now + TimeSpan.FromTicks(1))).Permits);

        static PolicyHistory Past(DateTimeOffset at)
        {
            var history = new PolicyHistory();
            history.AddPast("email", s_bob, at);
            return history;
        }
    }

    // ----- min_gap -----

    [Fact]
    public void MinGap_JustUnderTheGapDenied_ExactlyAtItAllowed()
    {
        var document = Doc("""{ "id": "gap", "kind": "min_gap", "hours": 48 }""");
        var gap = TimeSpan.FromHours(48);

        var under = Evaluate(document, Message(s_alice, "email"), s_now, Facts(lastTouch: s_now - gap + TimeSpan.FromTicks(1)));
        var at = Evaluate(document, Message(s_alice, "email"), s_now, Facts(lastTouch: s_now - gap));

        Assert.Equal(PolicyVerdict.Deny, under.Verdict);
        Assert.Equal("gap: last touched 48 h ago; at least 48 h between two touches", under.Message);
        Assert.True(at.Permits);
        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now, Facts()).Permits);
    }

    [Fact]
    public void MinGap_FractionalHours()
    {
        var document = Doc("""{ "id": "gap", "kind": "min_gap", "hours": 1.5 }""");

        var denied = Evaluate(document, Card(s_alice), s_now, Facts(lastTouch: s_now.AddMinutes(-30)));

        Assert.Equal("gap: last touched 30 min ago; at least 1.5 h between two touches", denied.Message);
        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Card(s_alice), s_now, Facts(lastTouch: s_now.AddMinutes(-89))).Verdict);
        Assert.True(Evaluate(document, Card(s_alice), s_now, Facts(lastTouch: s_now.AddMinutes(-90))).Permits);
    }

    [Fact]
    public void MinGap_UsesTheLaterOfTheClockAndTheHistory()
    {
        var document = Doc("""{ "id": "gap", "kind": "min_gap", "hours": 48 }""");
        var recent = new PolicyHistory();
        recent.AddPast("email", s_alice, s_now.AddHours(-47));
        var old = new PolicyHistory();
        old.AddPast("email", s_alice, s_now.AddHours(-100));
        var otherContact = new PolicyHistory();
        otherContact.AddPast("email", s_bob, s_now.AddHours(-1));

        // The history is newer than the engagement clock, and the other way round.
        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Message(s_alice, "email"), s_now, Facts(lastTouch: s_now.AddHours(-100)), recent).Verdict);
        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Message(s_alice, "email"), s_now, Facts(lastTouch: s_now.AddHours(-47)), old).Verdict);
        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now, Facts(lastTouch: s_now.AddHours(-49)), old).Permits);
        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now, Facts(), otherContact).Permits);

        // A touch permitted earlier this cycle counts as the last touch from then on.
        var cycle = new PolicyHistory();
        cycle.RecordPermitted(Card(s_alice), s_now);
        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Message(s_alice, "email"), s_now.AddHours(1), Facts(), cycle).Verdict);
    }

    // ----- one_open_touch -----

    [Fact]
    public void OneOpenTouch_OpenCard_Denied()
    {
        var document = Doc("""{ "id": "one", "kind": "one_open_touch" }""");

        var denied = Evaluate(document, Message(s_alice, "email"), s_now, Facts(openTouch: true));

        Assert.Equal(PolicyVerdict.Deny, denied.Verdict);
        Assert.Equal("one: a touch of this contact or account is already open", denied.Message);
        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now, Facts()).Permits);
    }

    [Fact]
    public void OneOpenTouch_SecondActionForTheSameTargetThisCycle_Denied()
    {
        var document = Doc("""{ "id": "one", "kind": "one_open_touch" }""");
        var history = new PolicyHistory();
        history.AddPast("email", s_alice, s_now.AddHours(-1)); // an earlier cycle's touch is not open

        var first = Card(s_alice);
        Assert.True(Evaluate(document, first, s_now, history: history).Permits);
        history.RecordPermitted(first, s_now);

        Assert.True(history.TouchedThisCycle(s_alice));
        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Message(s_alice, "email"), s_now, history: history).Verdict);
        Assert.True(Evaluate(document, Message(s_bob, "email"), s_now, history: history).Permits);
    }

    // ----- send_window -----

    [Fact]
    public void SendWindow_JudgedInTheTargetsZone()
    {
        var document = Doc(BusinessHours);
        // Monday 2 March 2026, 00:30 UTC: 09:30 Monday in Tokyo, 19:30 Sunday in New York.
        var now = new DateTimeOffset(2026, 3, 2, 0, 30, 0, TimeSpan.Zero);

        var contact = Evaluate(document, Message(s_alice, "email"), now, new TargetFacts(s_tokyo, "contact"));
        var account = Evaluate(document, Message(s_alice, "email"), now, new TargetFacts(s_newYork, "account"));
        // The facts carry the zone already resolved; the tenant's zone argument is for holidays only.
        var tenant = Evaluate(document, Message(s_alice, "email"), now, TargetFacts.None(s_utc), tenantZone: s_tokyo);

        Assert.True(contact.Permits);
        Assert.Equal(PolicyVerdict.Deny, account.Verdict);
        Assert.Equal("hours: it is Sun 19:30 in America/New_York (the account's time zone); sends are allowed Mon,Tue,Wed,Thu,Fri 08:00-18:00", account.Message);
        Assert.Equal(PolicyVerdict.Deny, tenant.Verdict);
        Assert.Contains("it is Mon 00:30 in UTC (the tenant's time zone)", tenant.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(2026, 3, 7, false)] // Saturday
    [InlineData(2026, 3, 8, false)] // Sunday
    [InlineData(2026, 3, 9, true)]  // Monday
    [InlineData(2026, 3, 13, true)] // Friday
    public void SendWindow_Weekdays(int year, int month, int day, bool permitted)
    {
        var now = new DateTimeOffset(year, month, day, 12, 0, 0, TimeSpan.Zero);

        Assert.Equal(permitted, Evaluate(Doc(BusinessHours), Message(s_alice, "email"), now).Permits);
    }

    [Theory]
    [InlineData("07:59:59.9999999", false)]
    [InlineData("08:00:00", true)]
    [InlineData("17:59:59.9999999", true)]
    [InlineData("18:00:00", false)]
    [InlineData("23:00:00", false)]
    public void SendWindow_StartInclusive_EndExclusive(string time, bool permitted)
    {
        var now = new DateTimeOffset(new DateOnly(2026, 3, 2), TimeOnly.Parse(time, System.Globalization.CultureInfo.InvariantCulture), TimeSpan.Zero);

        Assert.Equal(permitted, Evaluate(Doc(BusinessHours), Message(s_alice, "email"), now).Permits);
    }

    [Theory]
    [InlineData("19:59:59", false)]
    [InlineData("20:00:00", true)]
    [InlineData("23:59:59.9999999", true)]
    public void SendWindow_EndOfDay(string time, bool permitted)
    {
        var document = Doc("""{ "id": "evenings", "kind": "send_window", "days": ["mon"], "start": "20:00", "end": "24:00" }""");
        var now = new DateTimeOffset(new DateOnly(2026, 3, 2), TimeOnly.Parse(time, System.Globalization.CultureInfo.InvariantCulture), TimeSpan.Zero);

        Assert.Equal(permitted, Evaluate(document, Message(s_alice, "email"), now).Permits);
        Assert.False(Evaluate(document, Message(s_alice, "email"), new DateTimeOffset(2026, 3, 3, 0, 0, 0, TimeSpan.Zero)).Permits); // Tuesday 00:00
    }

    // New York springs forward on Sunday 8 March 2026 (EST, -5, to EDT, -4) and falls back on Sunday
    // 1 November 2026: 08:00 local opens the window on both days, at UTC instants an hour apart.
    [Theory]
    [InlineData(2026, 3, 7, -5)]
    [InlineData(2026, 3, 8, -4)]
    [InlineData(2026, 11, 1, -5)]
    [InlineData(2026, 10, 31, -4)]
    public void SendWindow_AcrossDaylightSavingTime_OpensAtLocalEight(int year, int month, int day, int offsetHours)
    {
        var document = Doc("""{ "id": "hours", "kind": "send_window", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "08:00", "end": "18:00" }""");
        var facts = new TargetFacts(s_newYork, "contact");
        var opens = TimeZoneInfo.ConvertTimeToUtc(new DateTime(year, month, day, 8, 0, 0, DateTimeKind.Unspecified), s_newYork);
        var eight = new DateTimeOffset(opens, TimeSpan.Zero);
        var early = Evaluate(document, Message(s_alice, "email"), eight.AddMinutes(-1), facts);

        Assert.Equal(new DateTimeOffset(year, month, day, 8 - offsetHours, 0, 0, TimeSpan.Zero), eight);
        Assert.True(Evaluate(document, Message(s_alice, "email"), eight, facts).Permits);
        Assert.Equal(PolicyVerdict.Deny, early.Verdict);
        Assert.Contains(" 07:59 in America/New_York (the contact's time zone)", early.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SendWindow_SameUtcClockTime_DifferentVerdictOnEitherSideOfDaylightSavingTime()
    {
        var document = Doc("""{ "id": "hours", "kind": "send_window", "days": ["sun"], "start": "08:00", "end": "18:00" }""");
        var facts = new TargetFacts(s_newYork, "contact");

        // 12:30 UTC is 08:30 EDT on 8 March but 07:30 EST on 1 November.
        Assert.True(Evaluate(document, Message(s_alice, "email"), new DateTimeOffset(2026, 3, 8, 12, 30, 0, TimeSpan.Zero), facts).Permits);
        Assert.False(Evaluate(document, Message(s_alice, "email"), new DateTimeOffset(2026, 11, 1, 12, 30, 0, TimeSpan.Zero), facts).Permits);

        // 08:00 local is 12:00 UTC on the day daylight saving time starts and 13:00 UTC on the day it ends.
        var spring = TimeZoneInfo.ConvertTimeToUtc(new DateTime(2026, 3, 8, 8, 0, 0, DateTimeKind.Unspecified), s_newYork);
        var fall = TimeZoneInfo.ConvertTimeToUtc(new DateTime(2026, 11, 1, 8, 0, 0, DateTimeKind.Unspecified), s_newYork);
        Assert.Equal((TimeSpan.FromHours(12), TimeSpan.FromHours(13)), (spring.TimeOfDay, fall.TimeOfDay));
    }

    [Fact]
    public void SendWindow_CardsAreNotMessages()
    {
        var document = Doc(BusinessHours);
        var trace = new List<RuleTrace>();
        var sunday = new DateTimeOffset(2026, 3, 8, 12, 0, 0, TimeSpan.Zero);

        Assert.True(Evaluate(document, Card(s_alice), sunday, trace: trace).Permits);
        Assert.Equal("not_applicable", Assert.Single(trace).Outcome);
    }

    // ----- holidays -----

    [Fact]
    public void Holidays_ByTheTenantsDate()
    {
        var document = Doc("""{ "id": "holidays", "kind": "holidays", "dates": ["2026-01-01"] }""");
        // 31 December 2025, 15:30 UTC: already 1 January 00:30 in Tokyo.
        var now = new DateTimeOffset(2025, 12, 31, 15, 30, 0, TimeSpan.Zero);

        var tokyo = Evaluate(document, Message(s_alice, "email"), now, tenantZone: s_tokyo);

        Assert.Equal(PolicyVerdict.Deny, tokyo.Verdict);
        Assert.Equal("holidays: 2026-01-01 is a holiday in the tenant's calendar", tokyo.Message);
        Assert.True(Evaluate(document, Message(s_alice, "email"), now, tenantZone: s_utc).Permits);
        // The contact's zone does not decide it: the calendar is the tenant's.
        Assert.True(Evaluate(document, Message(s_alice, "email"), now, new TargetFacts(s_tokyo, "contact"), tenantZone: s_utc).Permits);
        // 1 January 15:00 UTC is already 2 January in Tokyo, still the holiday in UTC.
        var later = new DateTimeOffset(2026, 1, 1, 15, 0, 0, TimeSpan.Zero);
        Assert.True(Evaluate(document, Message(s_alice, "email"), later, tenantZone: s_tokyo).Permits);
        Assert.False(Evaluate(document, Message(s_alice, "email"), later, tenantZone: s_utc).Permits);
    }

    // ----- do_not_contact, channel_allowlist -----

    [Fact]
    public void DoNotContact_ReasonIsTheMessage()
    {
        var document = Doc("""{ "id": "dnc", "kind": "do_not_contact" }""");

        var denied = Evaluate(document, Message(s_alice, "email"), s_now, Facts(doNotContact: "opted out on 2026-02-01"));

        Assert.Equal(PolicyVerdict.Deny, denied.Verdict);
        var finding = Assert.Single(denied.Findings);
        Assert.Equal(("dnc", "do_not_contact", PolicySeverity.Error, "opted out on 2026-02-01"), (finding.RuleId, finding.RuleKind, finding.Severity, finding.Message));
        Assert.Equal("dnc: opted out on 2026-02-01", denied.Message);
        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now, Facts()).Permits);
    }

    [Fact]
    public void DoNotContact_OnlyTouches()
    {
        var document = Doc("""{ "id": "dnc", "kind": "do_not_contact", "applies_to": ["*"] }""");

        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Card(s_alice), s_now, Facts(doNotContact: "do not contact")).Verdict);
        Assert.True(Evaluate(document, Order(10), s_now, Facts(doNotContact: "do not contact")).Permits);
    }

    [Fact]
    public void ChannelAllowlist_OnlyListedChannels_CardsAlwaysPass()
    {
        var document = Doc("""{ "id": "channels", "kind": "channel_allowlist", "channels": ["email"], "applies_to": ["*"] }""");

        var webhook = Evaluate(document, Message(s_alice, "webhook"), s_now);

        Assert.Equal(PolicyVerdict.Deny, webhook.Verdict);
        Assert.Equal("channels: channel 'webhook' is not allowed (allowed: email)", webhook.Message);
        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now).Permits);
        Assert.True(Evaluate(document, Card(s_alice), s_now).Permits);
    }

    // ----- order_value_approval, approvals -----

    [Fact]
    public void OrderValueApproval_AtTheThresholdAllowed_AboveNeedsApproval()
    {
        var document = Doc("""{ "id": "large", "kind": "order_value_approval", "above": 50000 }""");

        var above = Evaluate(document, Order(50000.01m), s_now);

        Assert.Equal(PolicyVerdict.Allow, Evaluate(document, Order(50000m), s_now).Verdict);
        Assert.Equal(PolicyVerdict.RequireApproval, above.Verdict);
        Assert.False(above.Permits);
        Assert.Equal("large: order value 50000.01 is above 50000", above.Message);
        Assert.True(Evaluate(document, new PolicyAction("order_auto_fix"), s_now).Permits); // no order value: nothing to judge
    }

    [Fact]
    public void OrderValueApproval_Approved_Allowed_TraceSaysApproved()
    {
        var document = Doc("""{ "id": "large", "kind": "order_value_approval", "above": 50000 }""");
        var trace = new List<RuleTrace>();

        var approved = Evaluate(document, Order(90000m) with { ApprovedBy = "dana@example.com" }, s_now, trace: trace);

        Assert.Equal(PolicyVerdict.Allow, approved.Verdict);
        Assert.Empty(approved.Findings);
        Assert.Empty(approved.DeterminingRules);
        var entry = Assert.Single(trace);
        Assert.Equal(("large", "approved"), (entry.RuleId, entry.Outcome));
        Assert.Equal("order value 90000 is above 50000 — approved by dana@example.com", entry.Detail);
    }

    [Fact]
    public void Approval_NeverOverridesADeny()
    {
        var document = Doc(
            """{ "id": "large", "kind": "order_value_approval", "above": 50000 }""",
            """{ "id": "hold", "kind": "credit_hold", "decision": "deny" }""",
            """{ "id": "huge", "kind": "order_value_approval", "above": 80000, "decision": "deny" }""");
        var trace = new List<RuleTrace>();

        var decision = Evaluate(document, Order(90000m) with { ApprovedBy = "dana" }, s_now, Facts(creditHold: true), trace: trace);

        Assert.Equal(PolicyVerdict.Deny, decision.Verdict);
        Assert.Equal(["hold", "huge"], decision.DeterminingRules);
        Assert.Equal(["approved", "deny", "deny"], trace.Select(t => t.Outcome));
    }

    // ----- auto_fix_ceiling -----

    [Theory]
    [InlineData(10.0, null, true)]
    [InlineData(-10.0, null, true)]
    [InlineData(10.01, null, false)]
    [InlineData(-10.01, null, false)]
    [InlineData(null, 5.0, true)]
    [InlineData(null, -5.0, true)]
    [InlineData(null, 5.5, false)]
    [InlineData(null, -5.5, false)]
    [InlineData(0.0, 0.0, true)]
    [InlineData(3.0, -7.0, false)]
    public void AutoFixCeiling_AbsoluteChange_AtTheCeilingAllowed(double? price, double? discount, bool permitted)
    {
        var document = Doc("""{ "id": "ceiling", "kind": "auto_fix_ceiling", "max_price_change_pct": 10, "max_discount_change_pct": 5 }""");
        var action = new PolicyAction("order_auto_fix", PriceChangePct: (decimal?)price, DiscountChangePct: (decimal?)discount);

        var decision = Evaluate(document, action, s_now);

        Assert.Equal(permitted ? PolicyVerdict.Allow : PolicyVerdict.Deny, decision.Verdict);
    }

    [Fact]
    public void AutoFixCeiling_OnlyTheLimitsSet_AndSaysWhich()
    {
        var priceOnly = Doc("""{ "id": "ceiling", "kind": "auto_fix_ceiling", "max_price_change_pct": 10 }""");
        var both = Doc("""{ "id": "ceiling", "kind": "auto_fix_ceiling", "max_price_change_pct": 10, "max_discount_change_pct": 5 }""");

        Assert.True(Evaluate(priceOnly, new PolicyAction("order_auto_fix", DiscountChangePct: 90), s_now).Permits);
        Assert.Equal("ceiling: the fix changes a price by -12.5%; the ceiling is 10%",
            Evaluate(both, new PolicyAction("order_auto_fix", PriceChangePct: -12.5m), s_now).Message);
        Assert.Equal("ceiling: the fix changes a discount by 6 points; the ceiling is 5",
            Evaluate(both, new PolicyAction("order_auto_fix", DiscountChangePct: 6), s_now).Message);
    }

    // ----- credit_hold, cycle_budget -----

    [Fact]
    public void CreditHold_OnlyOrderActions()
    {
        var document = Doc("""{ "id": "hold", "kind": "credit_hold" }""");
        var hold = Facts(creditHold: true);

        var order = Evaluate(document, Order(100), s_now, hold);

        Assert.Equal(PolicyVerdict.RequireApproval, order.Verdict);
        Assert.Equal("hold: the account is on credit hold", order.Message);
        Assert.Equal(PolicyVerdict.RequireApproval, Evaluate(document, Order(0), s_now, hold).Verdict);
        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now, hold).Permits);
        Assert.True(Evaluate(document, new PolicyAction("order_auto_fix", PriceChangePct: 1), s_now, hold).Permits);
        Assert.True(Evaluate(document, Order(100), s_now, Facts()).Permits);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void CycleBudget_CountsEveryPermittedAction(int budget)
    {
        var document = Doc($$"""{ "id": "budget", "kind": "cycle_budget", "max_actions": {{budget}} }""");
        var history = new PolicyHistory();
        for (var n = 0; n < budget; n++)
        {
            var action = n % 2 == 0 ? Order(n) : Message(Guid.NewGuid(), "email");
            Assert.True(Evaluate(document, action, s_now, history: history).Permits);
            history.RecordPermitted(action, s_now);
        }

        var over = Evaluate(document, Card(Guid.NewGuid()), s_now, history: history);

        Assert.Equal(budget, history.PermittedThisCycle);
        Assert.Equal(PolicyVerdict.Deny, over.Verdict);
        Assert.Equal($"budget: {budget} actions already taken this cycle; the budget is {budget}", over.Message);
    }

    // ----- combining -----

    [Fact]
    public void Combining_DenyOverridesRequireApprovalOverridesWarn()
    {
        const string Warn = """{ "id": "w", "kind": "cycle_budget", "max_actions": 0, "decision": "warn" }""";
        const string Approve = """{ "id": "r", "kind": "order_value_approval", "above": 0 }""";
        const string Approve2 = """{ "id": "r2", "kind": "credit_hold" }""";
        const string Deny = """{ "id": "d", "kind": "auto_fix_ceiling", "max_price_change_pct": 1 }""";
        var action = new PolicyAction("order_release", OrderValue: 100, PriceChangePct: 50);
        var hold = Facts(creditHold: true);

        var all = Evaluate(Doc(Warn, Approve, Deny, Approve2), action, s_now, hold);
        var noDeny = Evaluate(Doc(Warn, Approve, Approve2), action, s_now, hold);
        var warnOnly = Evaluate(Doc(Warn), action, s_now, hold);

        Assert.Equal((PolicyVerdict.Deny, "d"), (all.Verdict, Assert.Single(all.DeterminingRules)));
        Assert.Equal(["w", "r", "d", "r2"], all.Findings.Select(f => f.RuleId));
        Assert.Equal([PolicyVerdict.Warn, PolicyVerdict.RequireApproval, PolicyVerdict.Deny, PolicyVerdict.RequireApproval], all.Findings.Select(f => f.Verdict));
        Assert.Equal("d: the fix changes a price by 50%; the ceiling is 1%", all.Message);

        Assert.Equal(PolicyVerdict.RequireApproval, noDeny.Verdict);
        Assert.Equal(["r", "r2"], noDeny.DeterminingRules);
        Assert.Equal(3, noDeny.Findings.Count);
        Assert.Equal("r: order value 100 is above 0; r2: the account is on credit hold", noDeny.Message);

        Assert.Equal(PolicyVerdict.Warn, warnOnly.Verdict);
        Assert.True(warnOnly.Permits);
        Assert.Equal(["w"], warnOnly.DeterminingRules);
    }

    [Fact]
    public void Combining_DeterminingRulesAreTheFindingsWithTheFinalVerdict()
    {
        var document = PolicyDocument.Default;
        var saturday = new DateTimeOffset(2026, 3, 7, 12, 0, 0, TimeSpan.Zero);
        var facts = new TargetFacts(s_utc, "tenant", DoNotContactReason: "opted out", HasOpenTouch: true, LastTouchAt: saturday.AddHours(-1));

        var decision = Evaluate(document, Message(s_alice, "sms"), saturday, facts);

        Assert.Equal(PolicyVerdict.Deny, decision.Verdict);
        Assert.Equal(["do-not-contact", "one-open-touch", "min-gap-48h", "business-hours", "channels"], decision.DeterminingRules);
        Assert.Equal(decision.Findings.Where(f => f.Verdict == decision.Verdict).Select(f => f.RuleId), decision.DeterminingRules);
        Assert.All(decision.Findings, f => Assert.NotEqual(PolicyVerdict.Allow, f.Verdict));
    }

    // ----- default decision -----

    [Fact]
    public void DefaultDecision_KindNotInActions_DeniedByDefault()
    {
        var document = PolicyDocument.Parse("""{ "schema": "hourglass.policy/v1", "actions": ["send_message"] }""");
        var trace = new List<RuleTrace>();

        var decision = Evaluate(document, new PolicyAction("delete_account"), s_now, trace: trace);

        Assert.Equal(PolicyVerdict.Deny, decision.Verdict);
        Assert.Equal(["default_decision"], decision.DeterminingRules);
        Assert.Equal("default_decision: 'delete_account' is not one of the actions this policy allows; its default decision is deny", decision.Message);
        Assert.Equal(("default_decision", "deny"), (Assert.Single(trace).RuleId, trace[0].Outcome));
        Assert.True(Evaluate(document, Message(s_alice, "email"), s_now).Permits);
        Assert.Equal(PolicyVerdict.Deny, Evaluate(document, Card(s_alice), s_now).Verdict);
    }

    [Fact]
    public void DefaultDecision_Allow_AllowedWithNoFinding()
    {
        var document = PolicyDocument.Parse("""{ "schema": "hourglass.policy/v1", "default_decision": "allow", "actions": ["send_message"] }""");
        var trace = new List<RuleTrace>();

        var decision = Evaluate(document, new PolicyAction("delete_account"), s_now, trace: trace);

        Assert.Equal(PolicyVerdict.Allow, decision.Verdict);
        Assert.Empty(decision.Findings);
        Assert.Empty(decision.DeterminingRules);
        Assert.Null(decision.Message);
        Assert.Empty(trace);
    }

    [Fact]
    public void DefaultDecision_RequireApproval_SatisfiedByApproval()
    {
        var document = PolicyDocument.Parse("""{ "schema": "hourglass.policy/v1", "default_decision": "require_approval", "actions": [] }""");

        Assert.Equal(PolicyVerdict.RequireApproval, Evaluate(document, new PolicyAction("escalate"), s_now).Verdict);
        Assert.Equal(PolicyVerdict.Allow, Evaluate(document, new PolicyAction("escalate", ApprovedBy: "dana"), s_now).Verdict);
    }

    // ----- trace -----

    [Fact]
    public void Trace_ListsEveryRuleInOrder()
    {
        var document = PolicyDocument.Default;
        var saturday = new DateTimeOffset(2026, 3, 7, 12, 0, 0, TimeSpan.Zero);
        var message = new List<RuleTrace>();
        var order = new List<RuleTrace>();

        Evaluate(document, Message(s_alice, "email"), saturday, trace: message);
        Evaluate(document, Order(60000) with { ApprovedBy = "dana" }, s_now, Facts(creditHold: true), trace: order);

        Assert.Equal(document.Rules.Select(r => (r.Id, r.Kind)), message.Select(t => (t.RuleId, t.RuleKind)));
        Assert.Equal(
            ["passed", "passed", "passed", "passed", "passed", "deny", "passed", "passed", "passed", "passed", "passed"],
            message.Select(t => t.Outcome));
        Assert.Contains("Sat 12:00", message[5].Detail, StringComparison.Ordinal);
        Assert.Equal(document.Rules.Select(r => r.Id), order.Select(t => t.RuleId));
        Assert.Equal(
            ["not_applicable", "not_applicable", "not_applicable", "not_applicable", "not_applicable", "not_applicable", "not_applicable", "approved", "passed", "approved", "passed"],
            order.Select(t => t.Outcome));
        Assert.Equal("applies to send_message, touch_task", order[0].Detail);
    }

    // ----- helpers -----

    private const string BusinessHours = """{ "id": "hours", "kind": "send_window", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00" }""";

    private static PolicyDocument Doc(params string[] rules) => PolicyDocument.Parse($$"""
        {
          "schema": "hourglass.policy/v1",
          "actions": ["touch_task", "send_message", "order_auto_fix", "order_release"],
          "rules": [{{string.Join(", ", rules)}}]
        }
        """);

    private static PolicyAction Message(Guid contact, string channel) => new("send_message", contact, channel, contact);

    private static PolicyAction Card(Guid contact) => new("touch_task", contact, "task", contact);

    private static PolicyAction Order(decimal value) => new("order_release", Guid.NewGuid(), OrderValue: value);

    private static TargetFacts Facts(DateTimeOffset? lastTouch = null, bool openTouch = false, string? doNotContact = null, bool creditHold = false) =>
        new(s_utc, "contact", doNotContact, creditHold, openTouch, lastTouch);

    private static PolicyDecision Evaluate(PolicyDocument document, PolicyAction action, DateTimeOffset now, TargetFacts? facts = null,
        PolicyHistory? history = null, TimeZoneInfo? tenantZone = null, List<RuleTrace>? trace = null) =>
        PolicyEvaluator.Evaluate(document, "test-v1", action, facts ?? TargetFacts.None(tenantZone ?? s_utc), history ?? new PolicyHistory(), now,
            tenantZone ?? s_utc, trace);
}
