namespace Hourglass.Engagement.Outbox;

/// <summary>
/// How long to wait before attempt n+1 after attempt n failed: exponential (base × 2^(n-1), capped) with
/// "equal jitter" — half the delay fixed, half drawn at random — so retries of many messages that failed
/// together spread out, yet no retry comes sooner than half its step
/// (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
/// </summary>
internal static class OutboxBackoff
{
    public static TimeSpan Delay(int failedAttempt, TimeSpan baseDelay, TimeSpan maxDelay, Random random)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(failedAttempt, 1);
        // In double, so a large attempt number saturates at the cap instead of overflowing.
        var step = (long)Math.Min(maxDelay.Ticks, baseDelay.Ticks * Math.Pow(2, failedAttempt - 1));
        var half = step / 2;
        return TimeSpan.FromTicks(half + (long)(random.NextDouble() * (step - half)));
    }
}
