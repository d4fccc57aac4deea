using System.Collections.Concurrent;
using Hourglass.IntegrationTests.Infrastructure;
using Npgsql;

namespace Hourglass.IntegrationTests.Leases;

/// <summary>The seed's lock functions and the lease functions on top of them, against a real server.</summary>
public sealed class TenantLockTests(DatabaseFixture fixture) : IClassFixture<DatabaseFixture>
{
    private static readonly DateTimeOffset s_t0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private TestDb Db => fixture.Db;

    [Fact]
    public async Task Acquire_DozensOfConnectionsRacing_NeverTwoHoldersAndTokensIncrease()
    {
        var tenant = await Db.CreateTenantAsync();
        var holders = 0;
        var maxHolders = 0;
        var grants = new ConcurrentQueue<long>();
        var tokensInGrantOrder = new List<long>();
        var gate = new object();
        var deadline = DateTime.UtcNow.AddSeconds(4);

        async Task Contend(int worker)
        {
            await using var connection = await fixture.DataSource.OpenConnectionAsync();
            var name = $"worker-{worker}";
            while (DateTime.UtcNow < deadline)
            {
                var token = await TestDb.ScalarAsync(connection, null, "select public.acquire_tenant_lease($1, $2)", tenant, name);
                if (token is not long granted)
                {
                    continue;
                }

                var now = Interlocked.Increment(ref holders);
                lock (gate)
                {
                    maxHolders = Math.Max(maxHolders, now);
                    tokensInGrantOrder.Add(granted);
                }

                grants.Enqueue(granted);
                await Task.Delay(1);
                Interlocked.Decrement(ref holders);
                Assert.True((bool)(await TestDb.ScalarAsync(connection, null, "select public.release_tenant_lock($1, $2)", tenant, name))!);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 40).Select(i => Task.Run(() => Contend(i))));

        Assert.Equal(1, maxHolders);
        Assert.True(grants.Count >= 20, $"only {grants.Count} grants in 4 s: the race barely ran");
        Assert.Equal(tokensInGrantOrder.Order(), tokensInGrantOrder);
        Assert.Equal(tokensInGrantOrder.Count, tokensInGrantOrder.Distinct().Count());
    }

    [Fact]
    public async Task Acquire_HolderAsksAgain_FalseNotReentrant()
    {
        var tenant = await Db.CreateTenantAsync();
        Assert.True(await AcquireAsync(tenant, "a"));
        Assert.False(await AcquireAsync(tenant, "a"));
        Assert.False(await AcquireAsync(tenant, "b"));
    }

    [Fact]
    public async Task Acquire_OtherLockType_IndependentOfCycleLock()
    {
        var tenant = await Db.CreateTenantAsync();
        Assert.True(await AcquireAsync(tenant, "a"));
        Assert.True((bool)(await Db.ScalarAsync("select public.acquire_tenant_lock($1, 'b', 'order_drain', 5)", tenant))!);
    }

    [Fact]
    public async Task Acquire_AfterExpiry_ReclaimedWithLargerToken()
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.FreezeTimeAsync(s_t0);
        try
        {
            var first = (long)(await Db.ScalarAsync("select public.acquire_tenant_lease($1, 'a', 'autonomous_cycle', 1)", tenant))!;
            await Db.FreezeTimeAsync(s_t0.AddSeconds(59));
            Assert.False(await AcquireAsync(tenant, "b"));

            await Db.FreezeTimeAsync(s_t0.AddMinutes(1));
            var second = (long)(await Db.ScalarAsync("select public.acquire_tenant_lease($1, 'b', 'autonomous_cycle', 1)", tenant))!;

            Assert.True(second > first);
            Assert.Equal("b", await Db.ScalarAsync("select locked_by from public.agent_tenant_locks where tenant_id = $1", tenant));
            // The expired holder's release finds nothing of its own and leaves b's lock.
            Assert.False((bool)(await Db.ScalarAsync("select public.release_tenant_lock($1, 'a')", tenant))!);
            Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.agent_tenant_locks where tenant_id = $1", tenant));
        }
        finally
        {
            await Db.ExecuteAsync("select hourglass.thaw_time()");
        }
    }

    [Fact]
    public async Task Release_ByNonHolder_FalseAndLockKept()
    {
        var tenant = await Db.CreateTenantAsync();
        Assert.True(await AcquireAsync(tenant, "a"));

        Assert.False((bool)(await Db.ScalarAsync("select public.release_tenant_lock($1, 'b')", tenant))!);
        Assert.Equal("a", await Db.ScalarAsync("select locked_by from public.agent_tenant_locks where tenant_id = $1", tenant));
        Assert.True((bool)(await Db.ScalarAsync("select public.release_tenant_lock($1, 'a')", tenant))!);
        Assert.False((bool)(await Db.ScalarAsync("select public.release_tenant_lock($1, 'a')", tenant))!);
    }

    [Fact]
    public async Task Renew_Holder_ExtendsLease_NonHolderAndStaleTokenFail()
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.FreezeTimeAsync(s_t0);
        try
        {
            var token = (long)(await Db.ScalarAsync("select public.acquire_tenant_lease($1, 'a', 'autonomous_cycle', 10)", tenant))!;
            await Db.FreezeTimeAsync(s_t0.AddMinutes(8));

            Assert.True(await RenewAsync(tenant, "a", token, 10));
            Assert.Equal(s_t0.AddMinutes(18), await ExpiresAtAsync(tenant));

            Assert.False(await RenewAsync(tenant, "b", token, 10));
            Assert.False(await RenewAsync(tenant, "a", token + 1, 10));
            Assert.Equal(s_t0.AddMinutes(18), await ExpiresAtAsync(tenant));

            // Past the deadline the lease is lost, even before anyone else takes it.
            await Db.FreezeTimeAsync(s_t0.AddMinutes(18));
            Assert.False(await RenewAsync(tenant, "a", token, 10));
        }
        finally
        {
            await Db.ExecuteAsync("select hourglass.thaw_time()");
        }
    }

    [Fact]
    public async Task TokenCurrent_TrueForHolder_FalseAfterExpiryAndForPredecessor()
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.FreezeTimeAsync(s_t0);
        try
        {
            var first = (long)(await Db.ScalarAsync("select public.acquire_tenant_lease($1, 'a', 'autonomous_cycle', 5)", tenant))!;
            Assert.True(await IsCurrentAsync(tenant, first));

            await Db.FreezeTimeAsync(s_t0.AddMinutes(5));
            Assert.False(await IsCurrentAsync(tenant, first));

            var second = (long)(await Db.ScalarAsync("select public.acquire_tenant_lease($1, 'b', 'autonomous_cycle', 5)", tenant))!;
            Assert.True(await IsCurrentAsync(tenant, second));
            Assert.False(await IsCurrentAsync(tenant, first));

            var ex = await Assert.ThrowsAsync<PostgresException>(() => Db.ExecuteAsync("select public.assert_lock_token($1, $2)", tenant, first));
            Assert.Equal("HG001", ex.SqlState);
            await Db.ExecuteAsync("select public.assert_lock_token($1, $2)", tenant, second);
        }
        finally
        {
            await Db.ExecuteAsync("select hourglass.thaw_time()");
        }
    }

    [Fact]
    public async Task Fencing_StaleHolderMidWrite_SuccessorWaitsUntilItEnds()
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.FreezeTimeAsync(s_t0);
        try
        {
            var token = (long)(await Db.ScalarAsync("select public.acquire_tenant_lease($1, 'a', 'autonomous_cycle', 1)", tenant))!;

            // a starts a fenced write while its lease is valid...
            await using var stale = await fixture.DataSource.OpenConnectionAsync();
            await using var write = await stale.BeginTransactionAsync();
            await TestDb.ExecuteAsync(stale, write, "select public.assert_lock_token($1, $2)", tenant, token);

            // ...then stalls past its lease. The successor is not granted while that write is in flight.
            await Db.FreezeTimeAsync(s_t0.AddMinutes(2));
            Assert.False(await AcquireAsync(tenant, "b"));

            await write.RollbackAsync();
            Assert.True(await AcquireAsync(tenant, "b"));

            // And a's next fenced write is refused.
            var ex = await Assert.ThrowsAsync<PostgresException>(() => Db.ExecuteAsync("select public.assert_lock_token($1, $2)", tenant, token));
            Assert.Equal("HG001", ex.SqlState);
        }
        finally
        {
            await Db.ExecuteAsync("select hourglass.thaw_time()");
        }
    }

    [Fact]
    public async Task Renew_WhileFencedWriteInFlight_NotBlocked()
    {
        var tenant = await Db.CreateTenantAsync();
        var token = (long)(await Db.ScalarAsync("select public.acquire_tenant_lease($1, 'a')", tenant))!;
        await using var writer = await fixture.DataSource.OpenConnectionAsync();
        await using var write = await writer.BeginTransactionAsync();
        await TestDb.ExecuteAsync(writer, write, "select public.assert_lock_token($1, $2)", tenant, token);

        await using var renewer = await fixture.DataSource.OpenConnectionAsync();
        await TestDb.ExecuteAsync(renewer, null, "set lock_timeout = '2s'");
        Assert.True((bool)(await TestDb.ScalarAsync(renewer, null, "select public.renew_tenant_lock($1, 'a', $2)", tenant, token))!);
        await write.CommitAsync();
    }

    public static TheoryData<string, object?[], string> BadCalls => new()
    {
        { "select public.acquire_tenant_lock($1, $2)", [null, "w"], "22004" },
        { "select public.acquire_tenant_lock($1, $2)", [Guid.NewGuid(), "w"], "23503" },
        { "select public.acquire_tenant_lock($1, $2)", [TenantPlaceholder, ""], "22023" },
        { "select public.acquire_tenant_lock($1, $2)", [TenantPlaceholder, "  "], "22023" },
        { "select public.acquire_tenant_lock($1, $2, 'autonomous_cycle', 0)", [TenantPlaceholder, "w"], "22023" },
        { "select public.acquire_tenant_lock($1, $2, 'autonomous_cycle', -5)", [TenantPlaceholder, "w"], "22023" },
        { "select public.acquire_tenant_lock($1, $2, '', 5)", [TenantPlaceholder, "w"], "22023" },
        { "select public.release_tenant_lock($1, $2)", [TenantPlaceholder, ""], "22023" },
        { "select public.release_tenant_lock($1, $2)", [null, "w"], "22004" },
        { "select public.renew_tenant_lock($1, $2, null)", [TenantPlaceholder, "w"], "22004" },
        { "select public.renew_tenant_lock($1, $2, 1, 'autonomous_cycle', 0)", [TenantPlaceholder, "w"], "22023" },
    };

    private const string TenantPlaceholder = "<tenant>";

    [Theory]
    [MemberData(nameof(BadCalls))]
    public async Task BadInput_ClearErrorWithSqlState_NothingWritten(string sql, object?[] arguments, string sqlState)
    {
        var tenant = await Db.CreateTenantAsync();
        var bound = arguments.Select(a => a is TenantPlaceholder ? tenant : a).ToArray();

        var ex = await Assert.ThrowsAsync<PostgresException>(() => Db.ScalarAsync(sql, bound));

        Assert.Equal(sqlState, ex.SqlState);
        Assert.Matches("^(acquire|release|renew)_tenant_lock: ", ex.MessageText);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.agent_tenant_locks where tenant_id = $1", tenant));
    }

    private async Task<bool> AcquireAsync(Guid tenant, string holder) =>
        (bool)(await Db.ScalarAsync("select public.acquire_tenant_lock($1, $2)", tenant, holder))!;

    private async Task<bool> RenewAsync(Guid tenant, string holder, long token, int minutes) =>
        (bool)(await Db.ScalarAsync("select public.renew_tenant_lock($1, $2, $3, 'autonomous_cycle', $4)", tenant, holder, token, minutes))!;

    private async Task<bool> IsCurrentAsync(Guid tenant, long token) =>
        (bool)(await Db.ScalarAsync("select public.is_lock_token_current($1, $2)", tenant, token))!;

    private async Task<DateTimeOffset> ExpiresAtAsync(Guid tenant) =>
        new((DateTime)(await Db.ScalarAsync("select expires_at from public.agent_tenant_locks where tenant_id = $1", tenant))!);
}
