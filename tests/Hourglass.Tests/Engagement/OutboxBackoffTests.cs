using Hourglass.Engagement.Outbox;

namespace Hourglass.Tests.Engagement;

public sealed class OutboxBackoffTests
{
    private static readonly TimeSpan s_base = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_max = TimeSpan.FromHours(1);

    [Fact]
    public void Delay_EachAttempt_BetweenHalfAndAllOfDoublingStepCapped()
    {
        var random = new Random(7);
        for (var attempt = 1; attempt <= 40; attempt++)
        {
            var step = TimeSpan.FromTicks((long)Math.Min(s_max.Ticks, s_base.Ticks * Math.Pow(2, attempt - 1)));

            var delay = OutboxBackoff.Delay(attempt, s_base, s_max, random);

            Assert.InRange(delay, step / 2, step);
        }
    }

    [Fact]
    public void Delay_DefaultSettings_ScheduleIsThirtySecondsDoublingToAnHour()
    {
        // The upper bounds of the default schedule for max_attempts 8: 30 s, 1, 2, 4, 8, 16, 32 min, then the cap.
        TimeSpan[] steps = [.. new[] { 0.5, 1, 2, 4, 8, 16, 32, 60, 60 }.Select(TimeSpan.FromMinutes)];

        Assert.Equal(steps, Enumerable.Range(1, steps.Length).Select(n => OutboxBackoff.Delay(n, s_base, s_max, new FixedRandom(1.0 - 1e-12)))
            .Select(d => TimeSpan.FromSeconds(Math.Round(d.TotalSeconds))));
        Assert.Equal(steps.Select(s => s / 2), Enumerable.Range(1, steps.Length).Select(n => OutboxBackoff.Delay(n, s_base, s_max, new FixedRandom(0))));
    }

    [Fact]
    public void Delay_SameSeed_SameSchedule_OtherSeed_Different()
    {
        TimeSpan[] Schedule(int seed)
        {
            var random = new Random(seed);
            return [.. Enumerable.Range(1, 8).Select(n => OutboxBackoff.Delay(n, s_base, s_max, random))];
        }

        Assert.Equal(Schedule(42), Schedule(42));
        Assert.NotEqual(Schedule(42), Schedule(43));
    }

    [Fact]
    public void Delay_HugeAttempt_SaturatesAtCapWithoutOverflow()
    {
        Assert.InRange(OutboxBackoff.Delay(int.MaxValue, s_base, s_max, new Random(1)), s_max / 2, s_max);
        Assert.Throws<ArgumentOutOfRangeException>(() => OutboxBackoff.Delay(0, s_base, s_max, new Random(1)));
    }

    private sealed class FixedRandom(double value) : Random
    {
        public override double NextDouble() => value;
    }
}
