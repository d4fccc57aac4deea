using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Hourglass.Cycles;

namespace Hourglass.Tests.Cycles;

public sealed class CycleScheduleTests
{
    private static DateTimeOffset Utc(int month, int day, int hour, int minute = 0) => new(2026, month, day, hour, minute, 0, TimeSpan.Zero);

    [Fact]
    public void NextAfter_Hourly_NextFullHourInUtc()
    {
        var schedule = CycleSchedule.Parse(CycleSchedule.Hourly, "Asia/Kolkata");

        var next = schedule.NextAfter(Utc(5, 1, 10, 15));

        // Kolkata is UTC+05:30: its full hours fall on UTC half hours.
        Assert.Equal(Utc(5, 1, 10, 30), next);
        Assert.Equal(TimeSpan.Zero, next.Offset);
    }

    [Fact]
    public void Between_BoundsInclusive()
    {
        var schedule = CycleSchedule.Parse(CycleSchedule.Hourly, "UTC");

        Assert.Equal([Utc(5, 1, 10), Utc(5, 1, 11), Utc(5, 1, 12)], schedule.Between(Utc(5, 1, 10), Utc(5, 1, 12)));
        Assert.Equal([Utc(5, 1, 10)], schedule.Between(Utc(5, 1, 10), Utc(5, 1, 10)));
        Assert.Empty(schedule.Between(Utc(5, 1, 10, 1), Utc(5, 1, 10, 59)));
        Assert.Equal(2, schedule.Between(Utc(5, 1, 0), Utc(5, 2, 0), limit: 2).Count);
    }

    [Theory]
    [InlineData(3, 8)]  // New York springs forward at 07:00Z
    [InlineData(11, 1)] // and falls back at 06:00Z
    public void Hourly_AcrossDst_EveryUtcHourExactlyOnce(int month, int day)
    {
        var schedule = CycleSchedule.Parse(CycleSchedule.Hourly, "America/New_York");

        var hours = schedule.Between(Utc(month, day, 0), Utc(month, day, 12));

        Assert.Equal(Enumerable.Range(0, 13).Select(h => Utc(month, day, h)), hours);
    }

    [Fact]
    public void Daily_AcrossSpringForward_SameLocalTimeOnceADay()
    {
        var schedule = CycleSchedule.Parse("0 9 * * *", "America/New_York");

        Assert.Equal([Utc(3, 7, 14), Utc(3, 8, 13), Utc(3, 9, 13)], schedule.Between(Utc(3, 7, 0), Utc(3, 9, 23)));
    }

    [Fact]
    public void Daily_InTheSkippedHour_RunsOnceThatDay()
    {
        // 02:30 does not exist in New York on 2026-03-08: the cycle runs once, at the end of the gap.
        var schedule = CycleSchedule.Parse("30 2 * * *", "America/New_York");

        var that = schedule.Between(Utc(3, 8, 5), Utc(3, 9, 5));

        Assert.Single(that);
        Assert.Equal(Utc(3, 8, 7), that[0]);
    }

    [Fact]
    public void Daily_InTheRepeatedHour_RunsOnceThatDay()
    {
        // 01:30 happens twice in New York on 2026-11-01; a daily cycle runs at the first.
        var schedule = CycleSchedule.Parse("30 1 * * *", "America/New_York");

        Assert.Equal([Utc(11, 1, 5, 30)], schedule.Between(Utc(11, 1, 4), Utc(11, 2, 4)));
    }

    [Theory]
    [InlineData(null, "UTC", "cron")]
    [InlineData("", "UTC", "cron")]
    [InlineData("every hour", "UTC", "cron")]
    [InlineData("0 * * *", "UTC", "cron")]
    [InlineData("0 24 * * *", "UTC", "cron")]
    [InlineData("0 * * * *", null, "timezone")]
    [InlineData("0 * * * *", "Not/AZone", "timezone")]
    public void Parse_Invalid_NamesTheField(string? cron, string? zone, string field)
    {
        var ex = Assert.Throws<InvalidScheduleException>(() => CycleSchedule.Parse(cron, zone));

        Assert.Equal(field, ex.Field);
        Assert.StartsWith(field + ": ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HourBucket_TruncatesToUtcHour()
    {
        Assert.Equal(Utc(5, 1, 10), CycleSchedule.HourBucket(new DateTimeOffset(2026, 5, 1, 12, 59, 59, TimeSpan.FromHours(2))));
    }

    // Whatever the expression, zone and start: occurrences are strictly increasing UTC instants, and each is
    // the next after the one before it (so a worker that advances by NextAfter never skips or repeats one).
    [Property(MaxTest = 200)]
    public Property Between_ConsistentWithNextAfter()
    {
        var crons = Gen.Elements("0 * * * *", "*/15 * * * *", "0 9-17 * * 1-5", "30 2 * * *", "0 0 1 * *", "45 1 * * 0");
        var zones = Gen.Elements("UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu");
        var starts = Gen.Choose(0, 365 * 24 * 4).Select(quarterHours => Utc(1, 1, 0).AddMinutes(15 * quarterHours));
        var inputs = from cron in crons from zone in zones from start in starts select (cron, zone, start);
        return Prop.ForAll(inputs.ToArbitrary(), input =>
        {
            var (cron, zone, start) = input;
            var schedule = CycleSchedule.Parse(cron, zone);
            var occurrences = schedule.Between(start, start.AddDays(40));
            var consistent = occurrences.Zip(occurrences.Skip(1)).All(p => p.First < p.Second && schedule.NextAfter(p.First) == p.Second);
            return consistent && occurrences.All(o => o.Offset == TimeSpan.Zero && o >= start);
        });
    }
}
