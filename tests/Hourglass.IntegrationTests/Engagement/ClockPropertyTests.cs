using FsCheck;
using FsCheck.Fluent;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Engagement;

/// <summary>
/// The clock maths as a property, in the real database: whatever sequence of touches, overrides, clock steps
/// and refreshes happens, each clock's next due date is its last touch (or creation) plus its frequency, its
/// days overdue are never negative, and after a refresh its status agrees with both.
/// </summary>
public sealed class ClockPropertyTests(DatabaseFixture fixture) : IClassFixture<DatabaseFixture>
{
    private static readonly DateTimeOffset s_t0 = new(2026, 1, 10, 12, 0, 0, TimeSpan.Zero);

    private abstract record Step;

    private sealed record Touch(int Contact) : Step;

    private sealed record Advance(int Hours) : Step;

    private sealed record Override(int Contact, int? Days) : Step;

    private sealed record Refresh : Step;

    [Fact]
    public void AnySequenceOfTouchesAndSteps_KeepsClockInvariants()
    {
        var step = Gen.OneOf(
            Gen.Choose(0, 2).Select(c => (Step)new Touch(c)),
            Gen.Choose(1, 24 * 12).Select(h => (Step)new Advance(h)),
            Gen.Choose(0, 2).SelectMany(c => Gen.Elements<int?>(null, 1, 5, 30).Select(d => (Step)new Override(c, d))),
            Gen.Constant((Step)new Refresh()));
        var property = Prop.ForAll(Gen.ListOf(step).Select(l => l.Take(25).ToList()).ToArbitrary(), steps => RunAsync(steps).GetAwaiter().GetResult());

        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(40), property);
    }

    private async Task<bool> RunAsync(List<Step> steps)
    {
        var db = fixture.Db;
        var now = s_t0;
        await db.FreezeTimeAsync(now);
        var tenant = await db.CreateTenantAsync();
        var account = await db.CreateAccountAsync(tenant);
        var contacts = new[] { await db.CreateContactAsync(tenant, account), await db.CreateContactAsync(tenant, account), await db.CreateContactAsync(tenant) };
        var touches = new int[3];
        foreach (var step in steps)
        {
            switch (step)
            {
                case Touch t:
                    await db.ScalarAsync("select public.update_engagement_clock($1, 'contact', $2, 'call')", tenant, contacts[t.Contact]);
                    touches[t.Contact]++;
                    break;
                case Advance a:
                    now = now.AddHours(a.Hours);
                    await db.FreezeTimeAsync(now);
                    break;
                case Override o:
                    await db.ExecuteAsync("update public.engagement_clocks set frequency_override_days = $3 where tenant_id = $1 and entity_id = $2",
                        tenant, contacts[o.Contact], o.Days);
                    break;
                case Refresh:
                    await db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant);
                    await AssertConsistentAsync(db, tenant, now);
                    break;
            }

            // Always: next due = last touch (or creation) + frequency; never negative days.
            Assert.Equal(0L, await db.ScalarAsync("""
                select count(*) from public.engagement_clocks
                where tenant_id = $1 and (next_touch_due <> coalesce(last_touch_at, created_at) + make_interval(days => touch_frequency_days)
                                          or days_overdue < 0 or touch_frequency_days <> coalesce(frequency_override_days, touch_frequency_days))
                """, tenant));
        }

        for (var i = 0; i < contacts.Length; i++)
        {
            Assert.Equal(touches[i], await db.ScalarAsync("select touch_count from public.engagement_clocks where tenant_id = $1 and entity_id = $2", tenant, contacts[i]));
        }

        // The account counts its contacts' touches (the third contact has no account).
        Assert.Equal(touches[0] + touches[1], await db.ScalarAsync("select touch_count from public.engagement_clocks where tenant_id = $1 and entity_id = $2", tenant, account));
        await db.ScalarAsync("select public.refresh_engagement_compliance($1)", tenant);
        await AssertConsistentAsync(db, tenant, now);
        return true;
    }

    private static async Task AssertConsistentAsync(TestDb db, Guid tenant, DateTimeOffset now) =>
        Assert.Equal(0L, await db.ScalarAsync("""
            select count(*) from public.engagement_clocks
            where tenant_id = $1 and (compliance_status, days_overdue) is distinct from (
              case when next_touch_due < $2 then 'overdue' when next_touch_due <= $2 + interval '3 days' then 'due_soon' else 'compliant' end,
              case when next_touch_due < $2 then floor(extract(epoch from ($2 - next_touch_due)) / 86400)::int else 0 end)
            """, tenant, now));
}
