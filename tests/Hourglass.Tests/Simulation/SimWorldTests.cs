using Hourglass.Simulation;

namespace Hourglass.Tests.Simulation;

public sealed class SimWorldTests
{
    [Fact]
    public void Generate_SameSeed_SameWorld_OtherSeed_OtherWorld()
    {
        var options = new SimulationOptions { Tenants = 2, ContactsPerTenant = 300, Days = 40 };

        var a = SimWorld.Generate(options);
        var b = SimWorld.Generate(options);
        var c = SimWorld.Generate(options with { Seed = 7 });

        Assert.Equal(Fingerprint(a), Fingerprint(b));
        Assert.NotEqual(Fingerprint(a), Fingerprint(c));
    }

    [Fact]
    public void Generate_DefaultWorld_HasTheShapeAsked()
    {
        var options = new SimulationOptions();

        var world = SimWorld.Generate(options);

        Assert.Equal(10, world.Tenants.Count);
        Assert.All(world.Tenants, t => Assert.Equal(2_000, t.Contacts.Count));
        Assert.All(world.Tenants, t => Assert.Equal(200, t.Accounts.Count));
        Assert.Equal(20_000, world.Contacts.Count);
        Assert.Equal(3, world.Tenants.Count(t => t.ApprovesMessages));
        // Every contact was last touched within the 24 days before the start: some start overdue (21-day cadence), none in the future.
        var contacts = world.Tenants.SelectMany(t => t.Contacts).ToList();
        Assert.All(contacts, c => Assert.InRange(c.InitialTouch, options.Start.AddDays(-24), options.Start));
        var overdue = contacts.Count(c => c.InitialTouch < options.Start.AddDays(-21)) / (double)contacts.Count;
        Assert.InRange(overdue, 0.09, 0.16);
        // Holidays fall on weekdays inside the run; each owner's vacation is one week inside it.
        Assert.All(world.Tenants.SelectMany(t => t.Holidays), d => Assert.True(d.DayOfWeek is not (DayOfWeek.Saturday or DayOfWeek.Sunday)));
        Assert.All(world.Tenants.SelectMany(t => t.Owners), o => Assert.InRange(o.VacationStart.DayNumber,
            DateOnly.FromDateTime(options.Start.UtcDateTime).DayNumber + 7, DateOnly.FromDateTime(options.End.UtcDateTime).DayNumber - 7));
    }

    [Fact]
    public void Generate_DefaultWorld_DeadAddressesAndOutOfOfficeSpellsAsStated()
    {
        var options = new SimulationOptions();

        var contacts = SimWorld.Generate(options).Tenants.SelectMany(t => t.Contacts).ToList();

        // 1% dead addresses; a quarter of the contacts take one spell of 7–14 days that starts inside the run.
        Assert.InRange(contacts.Count(c => c.DeadAddress) / (double)contacts.Count, 0.008, 0.012);
        var away = contacts.Where(c => c.AwayFrom is not null).ToList();
        Assert.InRange(away.Count / (double)contacts.Count, 0.23, 0.27);
        Assert.All(away, c =>
        {
            Assert.InRange(c.AwayFrom!.Value, options.Start, options.End);
            Assert.InRange((c.AwayUntil!.Value - c.AwayFrom.Value).TotalDays, 7, 14);
            Assert.True(c.Away(c.AwayFrom.Value) && !c.Away(c.AwayUntil.Value));
        });
        Assert.All(contacts.Where(c => c.AwayFrom is null), c => Assert.False(c.Away(options.Start.AddDays(30))));
    }

    [Fact]
    public void Generate_Orders_DefectSharesAsAskedAndUnfixableNeverFixable()
    {
        var world = SimWorld.Generate(new SimulationOptions { Tenants = 3, ContactsPerTenant = 2_000, Days = 90 });
        var orders = world.Tenants.SelectMany(t => t.Orders).ToList();

        var fixable = orders.Count(o => o.Defect.Fixable()) / (double)orders.Count;
        var unfixable = orders.Count(o => o.Defect.Unfixable()) / (double)orders.Count;

        Assert.InRange(orders.Count, 1_500, 2_200);
        Assert.InRange(fixable, 0.17, 0.23);
        Assert.InRange(unfixable, 0.08, 0.12);
        Assert.All(orders.Where(o => o.Defect == OrderDefect.MissingPo), o => Assert.True(o.Account.RequiresPo));
        Assert.All(orders, o => Assert.InRange(o.PlacedAt, world.Options.Start, world.Options.End));
        Assert.Equal(orders.Count, orders.Select(o => o.Id).Distinct().Count());
    }

    [Fact]
    public void ReplyChance_DependsOnHourOfWeekAndChannel()
    {
        var world = SimWorld.Generate(new SimulationOptions { Tenants = 1, ContactsPerTenant = 50, Days = 7 });
        var contact = world.Tenants[0].Contacts[0];
        var zone = contact.Zone(world.Tenants[0]);
        DateTimeOffset Local(int day, int hour) => new(new DateTime(2026, 1, 5 + day, hour, 0, 0), zone.GetUtcOffset(new DateTime(2026, 1, 5 + day, hour, 0, 0)));

        var peak = world.ReplyChance(contact, 0, Local(0, contact.PeakHour));
        var office = world.ReplyChance(contact, 0, Local(0, contact.PeakHour >= 12 ? 8 : 17));
        var night = world.ReplyChance(contact, 0, Local(0, 3));
        var sunday = world.ReplyChance(contact, 0, Local(6, contact.PeakHour));

        Assert.True(peak > office && office > night, $"peak {peak}, office {office}, night {night}");
        Assert.Equal(night, sunday, 6);
        Assert.NotEqual(world.ReplyChance(contact, 0, Local(0, 10)), world.ReplyChance(contact, 2, Local(0, 10)));
    }

    private static string Fingerprint(SimWorld world) => string.Join("|", world.Tenants.Select(t =>
        $"{t.Id}:{t.Contacts.Sum(c => c.InitialTouch.ToUnixTimeSeconds())}:{string.Join(",", t.Orders.Select(o => $"{o.Id}/{o.Defect}/{o.PlacedAt.ToUnixTimeSeconds()}"))}" +
        $":{t.ManualTouches.Count}:{string.Join(",", t.Owners.Select(o => o.VacationStart))}"));
}
