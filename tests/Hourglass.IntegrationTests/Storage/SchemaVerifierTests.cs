using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;

namespace Hourglass.IntegrationTests.Storage;

/// <summary>hourglass verify passes on a migrated database and names each kind of miss.</summary>
public sealed class SchemaVerifierTests : DatabaseTest
{
    [Fact]
    public async Task Verify_MigratedDatabase_EveryCheckPasses()
    {
        var report = await new SchemaVerifier(DataSource).VerifyAsync(MigrationSource.Embedded());

        Assert.True(report.Passed, string.Join("; ", report.Failures.Select(f => $"{f.Section} {f.Subject}: {f.Detail}")));
        Assert.Equal(SchemaContract.AllTables.Count(), report.Checks.Count(c => c.Section == "Tables"));
        Assert.Equal(SchemaContract.AllTables.Count(), report.Checks.Count(c => c.Section == "RLS"));
        Assert.Equal(7, report.Checks.Count(c => c.Section == "Indexes"));
        Assert.Contains(report.Checks, c => c.Section == "Functions" && c.Subject == "public.refresh_engagement_compliance(uuid)");
    }

    [Fact]
    public async Task Verify_RowCounts_Reported()
    {
        var tenant = await Db.CreateTenantAsync();
        await Db.CreateAccountAsync(tenant);
        await Db.CreateAccountAsync(tenant);

        var report = await new SchemaVerifier(DataSource).VerifyAsync(MigrationSource.Embedded());

        Assert.Equal("2 rows", report.Checks.Single(c => c.Section == "Tables" && c.Subject == "accounts").Detail);
    }

    public static TheoryData<string, string[]> Breakages => new()
    {
        { "drop table public.warehouse_events cascade", ["Tables: warehouse_events", "Views: monitoring_order_throughput", "Indexes: idx_warehouse_events_tenant_type"] },
        { "drop index public.idx_engagement_clocks_tenant_due", ["Indexes: idx_engagement_clocks_tenant_due"] },
        { "drop index public.idx_order_processing_pending; create index idx_order_processing_pending on public.order_processing_queue (tenant_id)", ["Indexes: idx_order_processing_pending"] },
        { "drop policy tenant_isolation on public.client_patterns; drop policy service_role_bypass on public.client_patterns", ["RLS: client_patterns"] },
        { "alter table public.agent_tenant_locks disable row level security", ["RLS: agent_tenant_locks"] },
        { "drop function public.release_tenant_lock(uuid, text)", ["Functions: public.release_tenant_lock(uuid, text)"] },
        { "alter function public.refresh_engagement_compliance(uuid) reset search_path", ["Functions: public.refresh_engagement_compliance(uuid)"] },
        { "delete from supabase_migrations.schema_migrations where version = '20251217000100'", ["Migrations: 20251217000100_lease_renewal_and_fencing.sql"] },
        { "update supabase_migrations.schema_migrations set statements[2] = 'select 1' where version = '20251218000000'", ["Migrations: 20251218000000_scheduler.sql"] },
    };

    [Theory]
    [MemberData(nameof(Breakages))]
    public async Task Verify_SomethingDropped_FailsNamingExactlyIt(string breakage, string[] expectedFailures)
    {
        await Db.ExecuteAsync(breakage);

        var report = await new SchemaVerifier(DataSource).VerifyAsync(MigrationSource.Embedded());

        Assert.False(report.Passed);
        Assert.Equal(expectedFailures, report.Failures.Select(f => $"{f.Section}: {f.Subject}"));
    }
}
