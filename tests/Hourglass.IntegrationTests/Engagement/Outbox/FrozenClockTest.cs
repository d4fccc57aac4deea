using Hourglass.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Hourglass.IntegrationTests.Engagement.Outbox;

/// <summary>
/// An outbox test on its own database whose clock (hourglass.now()) and the product's clock (<see cref="Clock"/>) both
/// stand at <paramref name="start"/>, with an HTTP client that follows no redirect (what a test reads is what the
/// server answered).
/// </summary>
public abstract class FrozenClockTest(DateTimeOffset start) : DatabaseTest
{
    protected FakeTimeProvider Clock { get; } = new(start);

    protected HttpClient Http { get; } = new(new HttpClientHandler { AllowAutoRedirect = false });

    protected override Task SeedAsync() => Db.FreezeTimeAsync(start);

    protected override Task TearDownAsync()
    {
        Http.Dispose();
        return Task.CompletedTask;
    }
}
