namespace Hourglass.Simulation;

/// <summary>
/// The synthetic world, generated from the seed before anything runs: tenants with their owners, vacations and
/// holidays; accounts and contacts whose chance of replying depends on the channel, the strategy and the hour of the
/// week; every order each account will place (with its defect, if any); every touch people will make on their own.
/// The agent sees none of this directly — only what reaches the database, as it would in production.
/// </summary>
internal sealed class SimWorld
{
    /// <summary>The three ways to touch someone every tenant starts with, and how well each works in each tenant.</summary>
    public static readonly IReadOnlyList<SimStrategy> Strategies =
    [
        new("checkin-email", "Check-in email", "send_message", "email"),
        new("idea-email", "Idea for the account", "send_message", "email"),
        new("owner-call", "Owner calls", "touch_task", "call"),
    ];

    private static readonly string[] s_zones =
    [
        "America/New_York", "Europe/Berlin", "America/Chicago", "Europe/London", "America/Los_Angeles",
        "Asia/Tokyo", "Australia/Sydney", "Europe/Paris", "America/Denver", "Asia/Singapore",
    ];

    // How well each strategy works, by tenant (index mod 3): the best one differs, so each tenant's agent must learn its own.
    private static readonly double[][] s_quality =
    [
        [0.7, 1.3, 0.9],
        [1.2, 0.8, 0.9],
        [0.8, 0.9, 1.4],
    ];

    private SimWorld(SimulationOptions options)
    {
        Options = options;
        Random = new SimRandom(options.Seed);
    }

    public SimulationOptions Options { get; }

    public SimRandom Random { get; }

    public List<SimTenant> Tenants { get; } = [];

    public Dictionary<Guid, SimContact> Contacts { get; } = [];

    public Dictionary<Guid, SimAccount> Accounts { get; } = [];

    public static SimWorld Generate(SimulationOptions options)
    {
        options.Validate();
        var world = new SimWorld(options);
        var r = world.Random;
        for (var t = 0; t < options.Tenants; t++)
        {
            var tenant = new SimTenant(t, r.Id("tenant", t), $"Sim {t + 1:00} {s_zones[t % s_zones.Length].Split('/')[1].Replace('_', ' ')}",
                s_zones[t % s_zones.Length], options.ApprovalEveryNthTenant > 0 && (t + 1) % options.ApprovalEveryNthTenant == 0, s_quality[t % 3]);
            world.Tenants.Add(tenant);

            for (var o = 0; o < options.OwnersPerTenant; o++)
            {
                // One week away, starting on a Monday somewhere in the run after the first week (runs shorter than four weeks have none).
                var weeks = options.Days / 7 - 2;
                var start = weeks < 2 ? DateOnly.MaxValue.AddDays(-7) : DateOnly.FromDateTime(options.Start.UtcDateTime).AddDays(7 * (1 + r.Next(weeks, "vacation", t, o)));
                tenant.Owners.Add(new SimOwner(r.Id("owner", t, o), $"owner-{o + 1}", start, start.AddDays(7)));
            }

            // Two public holidays on weekdays, a month apart.
            foreach (var day in new[] { 24 + t % 5, 52 + t % 5 })
            {
                var date = DateOnly.FromDateTime(options.Start.UtcDateTime).AddDays(day);
                while (date.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday)
                {
                    date = date.AddDays(1);
                }

                tenant.Holidays.Add(date);
            }

            var accounts = (options.ContactsPerTenant + options.ContactsPerAccount - 1) / options.ContactsPerAccount;
            for (var a = 0; a < accounts; a++)
            {
                var tierDraw = r.Uniform("tier", t, a);
                var account = new SimAccount(r.Id("account", t, a), a, tenant, $"Account {t + 1}-{a + 1}",
                    tierDraw < 0.1 ? "strategic" : tierDraw < 0.4 ? "growth" : "standard", r.Chance(0.3, "requires-po", t, a),
                    tenant.Owners[a % tenant.Owners.Count]);
                tenant.Accounts.Add(account);
                world.Accounts[account.Id] = account;
            }

            for (var c = 0; c < options.ContactsPerTenant; c++)
            {
                var account = tenant.Accounts[c / options.ContactsPerAccount];
                var contact = new SimContact(r.Id("contact", t, c), c, account, $"Contact {t + 1}-{c + 1}",
                    r.Chance(0.2, "foreign-zone", t, c) ? s_zones[r.Next(s_zones.Length, "zone", t, c)] : null)
                {
                    Responsiveness = 0.5 + r.Uniform("responsiveness", t, c),
                    EmailAffinity = 0.6 + 0.8 * r.Uniform("email-affinity", t, c),
                    CallAffinity = 0.6 + 0.8 * r.Uniform("call-affinity", t, c),
                    PeakHour = 8 + r.Next(8, "peak", t, c),
                    // Last touched somewhere in the 24 days before the start: about one in eight starts overdue.
                    InitialTouch = options.Start.AddHours(-Math.Floor(24 * 24 * r.Uniform("initial-touch", t, c))),
                    DeadAddress = r.Chance(options.DeadAddressShare, "dead-address", t, c),
                };
                if (r.Chance(options.OutOfOfficeShare, "out-of-office", t, c))
                {
                    // One spell of 7–14 days, starting at 18:00 UTC of a day of the run (it may run past the end).
                    var from = options.Start.AddDays(r.Next(Math.Max(1, options.Days - 3), "out-of-office-day", t, c)).AddHours(18);
                    contact.AwayFrom = from;
                    contact.AwayUntil = from.AddDays(7 + r.Next(8, "out-of-office-length", t, c));
                }

                account.Contacts.Add(contact);
                tenant.Contacts.Add(contact);
                world.Contacts[contact.Id] = contact;
            }

            world.PlanOrders(tenant);
            world.PlanManualTouches(tenant);
        }

        return world;
    }

    /// <summary>Every order each account places during the run: gaps of mean days between orders (Erlang, shape 4).</summary>
    private void PlanOrders(SimTenant tenant)
    {
        var mean = Options.MeanDaysBetweenOrders;
        foreach (var account in tenant.Accounts)
        {
            var stream = Random.Stream("orders", tenant.Index, account.Index);
            var at = Options.Start.AddDays(mean * stream.NextDouble());
            var n = 0;
            while (at < Options.End)
            {
                var defectDraw = stream.NextDouble();
                var kind = defectDraw < Options.UnfixableShare
                    ? (account.RequiresPo && stream.NextDouble() < 0.4 ? OrderDefect.MissingPo : stream.NextDouble() < 0.5 ? OrderDefect.ZeroQuantity : OrderDefect.PriceFarBelow)
                    : defectDraw < Options.UnfixableShare + Options.FixableShare
                        ? (OrderDefect)(1 + stream.Next(3))
                        : OrderDefect.None;
                var lines = new List<(int Product, int Quantity)>();
                for (var l = 1 + stream.Next(4); l > 0; l--)
                {
                    lines.Add((stream.Next(SimCatalog.Products.Count), 1 + stream.Next(20)));
                }

                var contact = account.Contacts.Count > 0 ? account.Contacts[stream.Next(account.Contacts.Count)] : null;
                tenant.Orders.Add(new SimOrder(Random.Id("order", tenant.Index, account.Index * 10_000L + n), account, contact,
                    new DateTimeOffset(at.UtcTicks - at.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero), kind, lines));
                account.OrderTimes.Add(at);
                n++;
                var gap = 0.0;
                for (var k = 0; k < 4; k++)
                {
                    gap += -Math.Log(1 - stream.NextDouble());
                }

                at = at.AddDays(mean * gap / 4);
            }
        }

        tenant.Orders.Sort((x, y) => x.PlacedAt.CompareTo(y.PlacedAt) is var c && c != 0 ? c : x.Id.CompareTo(y.Id));
    }

    /// <summary>Touches the owners make without being asked: a working hour of theirs, about once a year per contact by default.</summary>
    private void PlanManualTouches(SimTenant tenant)
    {
        for (var day = 0; day < Options.Days; day++)
        {
            foreach (var contact in tenant.Contacts)
            {
                if (!Random.Chance(Options.ManualTouchesPerContactDay, "manual-touch", tenant.Index, contact.Index, day))
                {
                    continue;
                }

                var at = Options.Start.AddDays(day).AddHours(Random.Next(24, "manual-touch-hour", tenant.Index, contact.Index, day))
                    .AddMinutes(Random.Next(60, "manual-touch-minute", tenant.Index, contact.Index, day));
                if (tenant.Works(contact.Account.Owner, at))
                {
                    tenant.ManualTouches.Add(new SimManualTouch(contact, at, Random.Chance(0.5, "manual-touch-kind", tenant.Index, contact.Index, day) ? "call" : "meeting"));
                }
            }
        }

        tenant.ManualTouches.Sort((x, y) => x.At.CompareTo(y.At) is var c && c != 0 ? c : x.Contact.Index.CompareTo(y.Contact.Index));
    }

    /// <summary>The chance that <paramref name="contact"/> answers a touch by this strategy at this moment.</summary>
    public double ReplyChance(SimContact contact, int strategy, DateTimeOffset at)
    {
        var tenant = contact.Account.Tenant;
        var channel = Strategies[strategy].Channel == "call" ? contact.CallAffinity : contact.EmailAffinity;
        var local = TimeZoneInfo.ConvertTime(at, contact.Zone(tenant));
        var weekday = local.DayOfWeek is not (DayOfWeek.Saturday or DayOfWeek.Sunday);
        var hourFactor = !weekday || local.Hour < 8 || local.Hour >= 18 ? 0.4
            : Math.Abs(local.Hour - contact.PeakHour) <= 1 ? 1.6
            : 1.0;
        return Math.Clamp(0.22 * contact.Responsiveness * channel * tenant.Quality[strategy] * hourFactor, 0, 0.9);
    }

    /// <summary>Whether the contact's account places an order within <paramref name="window"/> after <paramref name="at"/>.</summary>
    public static bool OrdersWithin(SimAccount account, DateTimeOffset at, TimeSpan window) =>
        account.OrderTimes.Exists(t => t > at && t <= at + window);

    public static int StrategyIndex(string? key)
    {
        for (var i = 0; i < Strategies.Count; i++)
        {
            if (Strategies[i].Key == key)
            {
                return i;
            }
        }

        return -1;
    }
}

internal sealed record SimStrategy(string Key, string Name, string Kind, string Channel);

internal enum OrderDefect
{
    None = 0,
    WrongTotals = 1,
    PriceSlightlyOff = 2,
    MissingShipTo = 3,
    ZeroQuantity = 4,
    PriceFarBelow = 5,
    MissingPo = 6,
}

internal static class OrderDefects
{
    public static bool Fixable(this OrderDefect defect) => defect is OrderDefect.WrongTotals or OrderDefect.PriceSlightlyOff or OrderDefect.MissingShipTo;

    public static bool Unfixable(this OrderDefect defect) => defect is OrderDefect.ZeroQuantity or OrderDefect.PriceFarBelow or OrderDefect.MissingPo;
}

internal sealed class SimTenant(int index, Guid id, string name, string zone, bool approvesMessages, double[] quality)
{
    private readonly TimeZoneInfo _zone = TimeZoneInfo.FindSystemTimeZoneById(zone);

    public int Index { get; } = index;

    public Guid Id { get; } = id;

    public string Name { get; } = name;

    public string ZoneName { get; } = zone;

    public TimeZoneInfo Zone => _zone;

    /// <summary>Every message needs a person's approval first (a policy rule).</summary>
    public bool ApprovesMessages { get; } = approvesMessages;

    public double[] Quality { get; } = quality;

    public List<SimOwner> Owners { get; } = [];

    public List<DateOnly> Holidays { get; } = [];

    public List<SimAccount> Accounts { get; } = [];

    public List<SimContact> Contacts { get; } = [];

    public List<SimOrder> Orders { get; } = [];

    public List<SimManualTouch> ManualTouches { get; } = [];

    /// <summary>A working hour for the tenant's people: a weekday, 09:00–17:00 local, not a holiday.</summary>
    public bool WorkingHour(DateTimeOffset at)
    {
        var local = TimeZoneInfo.ConvertTime(at, _zone);
        return local.DayOfWeek is not (DayOfWeek.Saturday or DayOfWeek.Sunday) && local.Hour is >= 9 and < 17
               && !Holidays.Contains(DateOnly.FromDateTime(local.DateTime));
    }

    /// <summary>Whether <paramref name="owner"/> is at work at this moment (a working hour and not on vacation).</summary>
    public bool Works(SimOwner owner, DateTimeOffset at) => WorkingHour(at) && !Away(owner, at);

    public bool Away(SimOwner owner, DateTimeOffset at)
    {
        var day = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(at, _zone).DateTime);
        return day >= owner.VacationStart && day < owner.VacationEnd;
    }

    /// <summary>
    /// The chance that an open touch card of <paramref name="owner"/>'s is done in this hour: about a third of them each
    /// working hour; while the owner is away a colleague covers, more slowly; none outside working hours.
    /// </summary>
    public double CardChance(SimOwner owner, DateTimeOffset at) => !WorkingHour(at) ? 0 : Away(owner, at) ? 0.1 : 0.35;
}

internal sealed record SimOwner(Guid UserId, string Name, DateOnly VacationStart, DateOnly VacationEnd);

internal sealed class SimAccount(Guid id, int index, SimTenant tenant, string name, string tier, bool requiresPo, SimOwner owner)
{
    public Guid Id { get; } = id;

    public int Index { get; } = index;

    public SimTenant Tenant { get; } = tenant;

    public string Name { get; } = name;

    public string Tier { get; } = tier;

    public bool RequiresPo { get; } = requiresPo;

    public SimOwner Owner { get; } = owner;

    public List<SimContact> Contacts { get; } = [];

    public List<DateTimeOffset> OrderTimes { get; } = [];
}

internal sealed class SimContact(Guid id, int index, SimAccount account, string name, string? zone)
{
    public Guid Id { get; } = id;

    public int Index { get; } = index;

    public SimAccount Account { get; } = account;

    public string Name { get; } = name;

    /// <summary>The contact's own time zone; null: the tenant's.</summary>
    public string? ZoneName { get; } = zone;

    public double Responsiveness { get; init; }

    public double EmailAffinity { get; init; }

    public double CallAffinity { get; init; }

    /// <summary>The local hour (8–15) around which the contact answers best on weekdays.</summary>
    public int PeakHour { get; init; }

    public DateTimeOffset InitialTouch { get; init; }

    /// <summary>The contact's address is dead: every message to it bounces hard.</summary>
    public bool DeadAddress { get; init; }

    /// <summary>The contact's out-of-office spell, if they take one: away from this moment…</summary>
    public DateTimeOffset? AwayFrom { get; set; }

    /// <summary>…until this one (back at work on its date).</summary>
    public DateTimeOffset? AwayUntil { get; set; }

    /// <summary>When the world answered one of this contact's messages with a hard bounce, a complaint or an unsubscribe.</summary>
    public DateTimeOffset? Unreachable { get; set; }

    /// <summary>Whether the contact is out of office at this moment.</summary>
    public bool Away(DateTimeOffset at) => AwayFrom <= at && at < AwayUntil;

    public string Email => $"c{Index + 1}.t{Account.Tenant.Index + 1}@sim.example";

    public TimeZoneInfo Zone(SimTenant tenant) => ZoneName is null ? tenant.Zone : TimeZoneInfo.FindSystemTimeZoneById(ZoneName);
}

internal sealed record SimOrder(Guid Id, SimAccount Account, SimContact? Contact, DateTimeOffset PlacedAt, OrderDefect Defect,
    IReadOnlyList<(int Product, int Quantity)> Lines);

internal sealed record SimManualTouch(SimContact Contact, DateTimeOffset At, string TouchType);

/// <summary>The catalogue every simulated tenant sells: whole-dollar list prices (so a 10% discount is exact in cents), cost 60% of list.</summary>
internal static class SimCatalog
{
    public static readonly IReadOnlyList<(string Sku, string Name, decimal ListPrice)> Products =
    [
        ("SIM-100", "Pallet wrap", 25m), ("SIM-101", "Shipping cartons", 39m), ("SIM-102", "Label ribbon", 12m),
        ("SIM-103", "Hand truck", 189m), ("SIM-104", "Safety gloves", 28m), ("SIM-105", "Barcode scanner", 249m),
        ("SIM-106", "Film dispenser", 64m), ("SIM-107", "Packing tape", 54m), ("SIM-108", "Void fill", 47m),
        ("SIM-109", "Shelving bay", 420m), ("SIM-110", "Pallet jack", 310m), ("SIM-111", "Stretch hood", 18m),
    ];

    /// <summary>The price the tenant's rules give: strategic accounts get 10% off everything.</summary>
    public static decimal RulePrice(SimAccount account, int product) =>
        account.Tier == "strategic" ? Products[product].ListPrice * 0.9m : Products[product].ListPrice;
}
