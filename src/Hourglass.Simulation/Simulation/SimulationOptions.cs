using System.Globalization;

namespace Hourglass.Simulation;

/// <summary>
/// The world <c>hourglass simulate</c> builds and how long it runs. Every setting is checked before anything runs
/// (<see cref="Validate"/>): an impossible world is refused with every problem named.
/// </summary>
internal sealed record SimulationOptions
{
    /// <summary>Seeds every random draw of the world (and, through the tenant ids, the agent's Thompson draws).</summary>
    public long Seed { get; init; } = 42;

    public int Tenants { get; init; } = 10;

    public int ContactsPerTenant { get; init; } = 2_000;

    public int ContactsPerAccount { get; init; } = 10;

    public int Days { get; init; } = 90;

    /// <summary>The first simulated hour (UTC, whole hour). Default: Monday 2026-01-05 00:00Z.</summary>
    public DateTimeOffset Start { get; init; } = new(2026, 1, 5, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Sales people per tenant: the account owners who complete touch cards and take vacations.</summary>
    public int OwnersPerTenant { get; init; } = 8;

    /// <summary>
    /// The tenants' <c>due_soon_days</c> setting: how long before a clock is due the agent starts on it. Touch cards need a
    /// person's working hours, and a weekend (or a holiday, or a vacation) can fall in between; 5 gives them that room.
    /// </summary>
    public int DueSoonDays { get; init; } = 5;

    /// <summary>The tenants' <c>level_ahead_days</c> setting: how far ahead leveling looks for a wave the email cap cannot let through (0: off).</summary>
    public int LevelAheadDays { get; init; } = 7;

    /// <summary>The tenants' email cap (policy rule <c>cap</c>, scope channel email, rolling 24 hours).</summary>
    public int EmailDailyCap { get; init; } = 200;

    /// <summary>The tenants' per-contact cap (policy rule <c>cap</c>, scope contact, rolling 7 days).</summary>
    public int ContactWeeklyCap { get; init; } = 2;

    /// <summary>Every this-many-th tenant (1-based: 3, 6, 9 by default) has every message approved by a person first; 0: none.</summary>
    public int ApprovalEveryNthTenant { get; init; } = 3;

    /// <summary>The share of orders with a defect the agent may fix within policy.</summary>
    public double FixableShare { get; init; } = 0.2;

    /// <summary>The share of orders with a defect no auto-fix may repair.</summary>
    public double UnfixableShare { get; init; } = 0.1;

    /// <summary>The mean days between two orders of one account.</summary>
    public double MeanDaysBetweenOrders { get; init; } = 30;

    /// <summary>The chance per working day that a contact's owner touches them without being asked.</summary>
    public double ManualTouchesPerContactDay { get; init; } = 0.004;

    /// <summary>
    /// How many cycles run at once (the worker's MaxConcurrentCycles). 4 on two cores: the default world in 829 s against
    /// 1,185–1,202 s with 2 (docs/simulation.md). 1 makes a report reproducible bit for bit.
    /// </summary>
    public int Concurrency { get; init; } = 4;

    /// <summary>The share of contacts whose address is dead: the first message to it bounces hard.</summary>
    public double DeadAddressShare { get; init; } = 0.01;

    /// <summary>The chance that a delivery bounces soft (the mailbox is full for now); the retry gets through.</summary>
    public double SoftBounceRate { get; init; } = 0.02;

    /// <summary>The chance that a delivered message is reported as spam by its recipient.</summary>
    public double ComplaintRate { get; init; } = 0.0005;

    /// <summary>The chance that a delivered message's recipient unsubscribes.</summary>
    public double UnsubscribeRate { get; init; } = 0.003;

    /// <summary>
    /// The share of contacts who take one out-of-office spell (1–2 weeks, somewhere in the run); an email during it gets an
    /// auto-reply stating the return date, and no answer from the person.
    /// </summary>
    public double OutOfOfficeShare { get; init; } = 0.25;

    public int Hours => Days * 24;

    public DateTimeOffset End => Start.AddHours(Hours);

    /// <summary>Every problem with these settings; empty when the world can be built.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        void Range(string name, double value, double min, double max)
        {
            if (double.IsNaN(value) || value < min || value > max)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"--{name} must be between {min} and {max} (got {value})"));
            }
        }

        Range("tenants", Tenants, 1, 100);
        Range("contacts", ContactsPerTenant, 1, 100_000);
        Range("contacts-per-account", ContactsPerAccount, 1, 1_000);
        Range("days", Days, 1, 366);
        Range("owners", OwnersPerTenant, 1, 1_000);
        Range("due-soon-days", DueSoonDays, 0, 20);
        Range("level-ahead-days", LevelAheadDays, 0, 14);
        Range("email-daily-cap", EmailDailyCap, 0, 1_000_000);
        Range("contact-weekly-cap", ContactWeeklyCap, 0, 1_000);
        Range("approval-every", ApprovalEveryNthTenant, 0, 100);
        Range("fixable-share", FixableShare, 0, 1);
        Range("unfixable-share", UnfixableShare, 0, 1);
        Range("mean-days-between-orders", MeanDaysBetweenOrders, 1, 3_650);
        Range("manual-touch-rate", ManualTouchesPerContactDay, 0, 1);
        Range("concurrency", Concurrency, 1, 64);
        Range("dead-address-share", DeadAddressShare, 0, 1);
        Range("soft-bounce-rate", SoftBounceRate, 0, 1);
        Range("complaint-rate", ComplaintRate, 0, 1);
        Range("unsubscribe-rate", UnsubscribeRate, 0, 1);
        Range("out-of-office-share", OutOfOfficeShare, 0, 1);
        if (FixableShare + UnfixableShare > 1)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"--fixable-share + --unfixable-share must be at most 1 (got {FixableShare} + {UnfixableShare})"));
        }

        if (Start.Offset != TimeSpan.Zero || Start.Minute != 0 || Start.Second != 0 || Start.Millisecond != 0)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"--start must be a whole hour in UTC (got {Start:O})"));
        }

        return problems;
    }

    /// <summary>Throws when the world cannot be built, naming every problem.</summary>
    /// <exception cref="HourglassException">A setting is out of range or contradicts another.</exception>
    public void Validate()
    {
        var problems = Problems();
        if (problems.Count > 0)
        {
            throw new HourglassException("impossible world: " + string.Join("; ", problems));
        }
    }
}
