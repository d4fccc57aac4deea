using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Engagement;
using Hourglass.Insights;
using Hourglass.Orders;
using Hourglass.Policies;
using Hourglass.Storage;
using Hourglass.Tenancy;
using Npgsql;

namespace Hourglass.Simulation;

/// <summary>
/// Writes the world's starting state into an empty database, set-based: tenants (their schedules come from the
/// schema's trigger), owners as members, accounts, contacts (their clocks from the trigger, then moved to each
/// contact's last touch before the run), the catalogue and the strategic tier's price rule, the email channel, the
/// three success strategies and each tenant's policy document.
/// </summary>
internal static class SimulationSeeder
{
    public static async Task SeedAsync(NpgsqlDataSource dataSource, SimWorld world, CancellationToken cancellationToken)
    {
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            if (await TenancyStore.TenantCountAsync(connection, transaction, cancellationToken) is var n and > 0)
            {
                throw new HourglassException(
                    $"simulate needs an empty database: this one has {n} tenant(s). It moves the database clock (hourglass.freeze_time), which would move it for them too");
            }

            await LoadAsync(connection, transaction, world, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        foreach (var tenant in world.Tenants)
        {
            await PolicyStore.SaveAsync(dataSource, tenant.Id, PolicyJson(world.Options, tenant), "simulator", "the simulated world's policy",
                cancellationToken: cancellationToken);
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await EngagementStore.RefreshComplianceAsync(connection, null, tenant.Id, cancellationToken);
        }

        await using var analyze = dataSource.CreateCommand("analyze");
        await analyze.ExecuteNonQueryAsync(cancellationToken);
    }

    // Every tenant's rows, table by table, through the owning stores' bulk loads (one COPY per table for all tenants).
    private static async Task LoadAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, SimWorld world, CancellationToken cancellationToken)
    {
        var tenants = world.Tenants;
        await TenancyStore.LoadTenantsAsync(connection, tenants.Select(t => new TenancyStore.TenantLoad(t.Id, t.Name, t.ZoneName,
            $$"""{"due_soon_days": {{world.Options.DueSoonDays}}, "level_ahead_days": {{world.Options.LevelAheadDays}}}""")), cancellationToken);
        await TenancyStore.LoadMembersAsync(connection,
            tenants.SelectMany(t => t.Owners.Select(o => new TenancyStore.MemberLoad(t.Id, o.UserId, "member"))), cancellationToken);
        await TenancyStore.LoadAccountsAsync(connection, tenants.SelectMany(t => t.Accounts.Select(a => new TenancyStore.AccountLoad(a.Id, t.Id, a.Name,
            a.Tier, "distribution", a.Owner.UserId, RequiresPo: a.RequiresPo, DefaultShipTo: new JsonObject
            {
                ["line1"] = a.Name + " dock 1", ["city"] = "Springfield", ["postal_code"] = "62701", ["country"] = "US",
            }.ToJsonString()))), cancellationToken);
        await TenancyStore.LoadContactsAsync(connection, tenants.SelectMany(t => t.Contacts.Select(c => new TenancyStore.ContactLoad(c.Id, t.Id,
            c.Account.Id, c.Name, c.Email, Timezone: c.ZoneName))), cancellationToken);

        // Each contact was last touched before the run (the account with its latest contact), next due one cadence later:
        // the clocks' touch record as the product would have written it, so written under its setting (docs/schema.md).
        await using (var allow = new NpgsqlCommand(DerivedColumns.AllowProductWriteSql, connection, transaction))
        {
            await allow.ExecuteNonQueryAsync(cancellationToken);
        }

        foreach (var tenant in tenants)
        {
            await EngagementStore.BackdateFirstTouchesAsync(connection, transaction, tenant.Id, tenant.Contacts.Select(c => c.Id).ToArray(),
                tenant.Contacts.Select(c => c.Account.Id).ToArray(), tenant.Contacts.Select(c => c.InitialTouch).ToArray(), cancellationToken);
        }

        // Cost is 60% of list, in cents (numeric's round(…, 2) keeps two decimals: 15.00, not 15.0).
        await OrderStore.LoadProductsAsync(connection, tenants.SelectMany(t => SimCatalog.Products.Select((p, i) => new OrderStore.ProductLoad(
            ProductId(world, t, i), t.Id, p.Sku, p.Name, p.ListPrice, Math.Round(p.ListPrice * 0.6m, 2, MidpointRounding.AwayFromZero) + 0.00m))),
            cancellationToken);
        await OrderStore.LoadTierDiscountsAsync(connection, tenants.Select(t => new OrderStore.TierDiscountLoad(t.Id, "Strategic accounts: 10% off",
            "strategic", 10m)), cancellationToken);

        // The email channel; the simulator's transport stands in for the relay, so nothing is ever sent anywhere.
        await EngagementStore.LoadEmailChannelsAsync(connection, tenants.Select(t => new EngagementStore.EmailChannelLoad(t.Id, "smtp.sim.invalid", 587,
            "starttls", $"agent@t{t.Index + 1}.sim.example")), cancellationToken);

        foreach (var tenant in tenants)
        {
            foreach (var strategy in SimWorld.Strategies)
            {
                var template = strategy.Kind == "send_message"
                    ? new JsonObject
                    {
                        ["kind"] = "send_message", ["channel"] = "email",
                        ["subject"] = strategy.Key == "idea-email" ? "An idea for {account}" : "Checking in, {name}",
                        ["body"] = strategy.Key == "idea-email" ? "Hi {name}, we saw something that could help {account}." : "Hi {name}, how is {account} doing?",
                    }
                    : new JsonObject { ["kind"] = "touch_task" };
                await using var insert = new NpgsqlCommand(InsightsStore.InsertStrategySql, connection, transaction)
                {
                    Parameters =
                    {
                        new() { Value = tenant.Id }, new() { Value = strategy.Key }, new() { Value = strategy.Name }, new() { Value = template.ToJsonString() },
                    },
                };
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }

    public static Guid ProductId(SimWorld world, SimTenant tenant, int product) => world.Random.Id("product", tenant.Index, product);

    /// <summary>
    /// The tenant's policy: the built-in default's rules with the world's caps, its holidays, email only, and — for
    /// every n-th tenant — a person's approval for every message.
    /// </summary>
    public static string PolicyJson(SimulationOptions options, SimTenant tenant)
    {
        var rules = new JsonArray
        {
            new JsonObject { ["id"] = "do-not-contact", ["kind"] = "do_not_contact", ["severity"] = "error" },
            new JsonObject { ["id"] = "one-open-touch", ["kind"] = "one_open_touch" },
            new JsonObject { ["id"] = "contact-weekly-cap", ["kind"] = "cap", ["scope"] = "contact", ["window"] = "week", ["limit"] = options.ContactWeeklyCap },
            new JsonObject { ["id"] = "min-gap-48h", ["kind"] = "min_gap", ["hours"] = 48 },
            new JsonObject { ["id"] = "email-daily-cap", ["kind"] = "cap", ["scope"] = "channel", ["channel"] = "email", ["window"] = "day", ["limit"] = options.EmailDailyCap },
            new JsonObject
            {
                ["id"] = "business-hours", ["kind"] = "send_window", ["days"] = new JsonArray("mon", "tue", "wed", "thu", "fri"),
                ["start"] = "08:00", ["end"] = "18:00",
            },
            new JsonObject
            {
                ["id"] = "holidays", ["kind"] = "holidays",
                ["dates"] = new JsonArray(tenant.Holidays.Select(d => (JsonNode)d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)).ToArray()),
            },
            new JsonObject { ["id"] = "channels", ["kind"] = "channel_allowlist", ["channels"] = new JsonArray("email") },
            new JsonObject { ["id"] = "large-orders", ["kind"] = "order_value_approval", ["above"] = 50000 },
            new JsonObject { ["id"] = "auto-fix-ceiling", ["kind"] = "auto_fix_ceiling", ["max_price_change_pct"] = 10, ["max_discount_change_pct"] = 5 },
            new JsonObject { ["id"] = "credit-hold", ["kind"] = "credit_hold" },
            new JsonObject { ["id"] = "cycle-budget", ["kind"] = "cycle_budget", ["max_actions"] = 100 },
        };
        if (tenant.ApprovesMessages)
        {
            rules.Add(new JsonObject
            {
                ["id"] = "approve-every-message", ["kind"] = "cap", ["scope"] = "tenant", ["window"] = "hour", ["limit"] = 0,
                ["decision"] = "require_approval", ["applies_to"] = new JsonArray("send_message"),
                ["description"] = "A person approves every message before it goes out.",
            });
        }

        return new JsonObject
        {
            ["schema"] = "hourglass.policy/v1",
            ["default_decision"] = "deny",
            ["actions"] = new JsonArray("touch_task", "send_message", "order_auto_fix", "order_release"),
            ["rules"] = rules,
        }.ToJsonString();
    }
}
