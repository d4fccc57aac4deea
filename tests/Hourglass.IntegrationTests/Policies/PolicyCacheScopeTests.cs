using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Policies;

namespace Hourglass.IntegrationTests.Policies;

/// <summary>
/// Parsed policy versions are cached per process, and one process can reach two databases holding the same tenant id with
/// different documents (a simulation beside a test, a tenant copied to another project): each database's cycles, sends
/// and orders read that database's own document, whichever was parsed first.
/// </summary>
public sealed class PolicyCacheScopeTests : DatabaseTest
{
    private readonly DatabaseFixture _other = new();

    protected override Task SeedAsync() => _other.InitializeAsync();

    protected override Task TearDownAsync() => _other.DisposeAsync();

    [Fact]
    public async Task SameTenantAndVersionInTwoDatabases_EachReadsItsOwnDocument()
    {
        var tenant = Guid.NewGuid();
        foreach (var db in new[] { Db, _other.Db })
        {
            await db.ExecuteAsync("insert into public.tenants (id, name) values ($1, 'Same id')", tenant);
        }

        await PolicyStore.SaveAsync(DataSource, tenant, Document("here-cap", 3), "test", null);
        await PolicyStore.SaveAsync(_other.DataSource, tenant, Document("there-cap", 7), "test", null);

        // Version 1 of the tenant parsed from this database first, then read from the other by number (the send-time path)
        // and "in force" (the cycle's path); the order processor's batch shares the same cache and key.
        Assert.Equal("here-cap", Rule(await PolicyStore.InForceAsync(DataSource, tenant)));
        await using (var connection = await _other.DataSource.OpenConnectionAsync())
        {
            Assert.Equal("there-cap", (await PolicyStore.DocumentAsync(connection, null, tenant, 1)).Rules.Single().Id);
        }

        Assert.Equal("there-cap", Rule(await PolicyStore.InForceAsync(_other.DataSource, tenant)));
        await using (var connection = await DataSource.OpenConnectionAsync())
        {
            Assert.Equal("here-cap", (await PolicyStore.DocumentAsync(connection, null, tenant, 1)).Rules.Single().Id);
        }
    }

    private static string Rule(PolicyVersion version) => version.Document.Rules.Single().Id;

    private static string Document(string id, int limit) => $$"""
        {"schema": "hourglass.policy/v1", "actions": ["touch_task", "send_message"],
         "rules": [{"id": "{{id}}", "kind": "cap", "scope": "contact", "window": "week", "limit": {{limit}}}]}
        """;
}
