using System.Globalization;
using System.Text.Json.Nodes;
using Hourglass.Insights;
using Hourglass.Policies;
using Hourglass.Storage;
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
            if (await ScalarAsync(connection, transaction, "select count(*) from public.tenants", cancellationToken) is long n and > 0)
            {
                throw new HourglassException(
                    $"simulate needs an empty database: this one has {n} tenant(s). It moves the database clock (hourglass.freeze_time), which would move it for them too");
            }

            foreach (var tenant in world.Tenants)
            {
                await SeedTenantAsync(connection, transaction, world, tenant, cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        foreach (var tenant in world.Tenants)
        {
            await PolicyStore.SaveAsync(dataSource, tenant.Id, PolicyJson(world.Options, tenant), "simulator", "the simulated world's policy",
                cancellationToken: cancellationToken);
            await using var refresh = dataSource.CreateCommand("select public.refresh_engagement_compliance($1)");
            refresh.Parameters.Add(new() { Value = tenant.Id });
            await refresh.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var analyze = dataSource.CreateCommand("analyze");
        await analyze.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task SeedTenantAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, SimWorld world, SimTenant tenant,
        CancellationToken cancellationToken)
    {
        await ExecuteAsync(connection, transaction, "insert into public.tenants (id, name, timezone, settings) values ($1, $2, $3, $4::jsonb)", cancellationToken,
            tenant.Id, tenant.Name, tenant.ZoneName, $$"""{"due_soon_days": {{world.Options.DueSoonDays}}}""");
        await ExecuteAsync(connection, transaction, """
            insert into public.tenant_members (tenant_id, user_id, role) select $1, u, 'member' from unnest($2::uuid[]) u
            """, cancellationToken, tenant.Id, tenant.Owners.Select(o => o.UserId).ToArray());

        var accounts = tenant.Accounts;
        await ExecuteAsync(connection, transaction, """
            insert into public.accounts (id, tenant_id, name, tier, segment, owner_user_id, requires_po, default_ship_to)
            select a.id, $1, a.name, a.tier, 'distribution', a.owner, a.requires_po,
                   jsonb_build_object('line1', a.name || ' dock 1', 'city', 'Springfield', 'postal_code', '62701', 'country', 'US')
            from unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::boolean[]) a(id, name, tier, owner, requires_po)
            """, cancellationToken, tenant.Id, accounts.Select(a => a.Id).ToArray(), accounts.Select(a => a.Name).ToArray(),
            accounts.Select(a => a.Tier).ToArray(), accounts.Select(a => a.Owner.UserId).ToArray(), accounts.Select(a => a.RequiresPo).ToArray());

        var contacts = tenant.Contacts;
        await ExecuteAsync(connection, transaction, """
            insert into public.contacts (id, tenant_id, account_id, name, email, timezone)
            select c.id, $1, c.account_id, c.name, c.email, c.timezone
            from unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[]) c(id, account_id, name, email, timezone)
            """, cancellationToken, tenant.Id, contacts.Select(c => c.Id).ToArray(), contacts.Select(c => c.Account.Id).ToArray(),
            contacts.Select(c => c.Name).ToArray(), contacts.Select(c => c.Email).ToArray(), contacts.Select(c => c.ZoneName).ToArray());

        // Each contact was last touched before the run (the account with its latest contact), next due one cadence later:
        // the clocks' touch record as the product would have written it, so written under its setting (docs/schema.md).
        await ExecuteAsync(connection, transaction, DerivedColumns.AllowProductWriteSql, cancellationToken);
        await ExecuteAsync(connection, transaction, """
            with touched as (
              select t.entity_type, t.entity_id, max(t.at) as at
              from unnest($2::uuid[], $3::uuid[], $4::timestamptz[]) x(contact_id, account_id, at)
              cross join lateral (values ('contact', x.contact_id, x.at), ('account', x.account_id, x.at)) t(entity_type, entity_id, at)
              group by t.entity_type, t.entity_id
            )
            update public.engagement_clocks c
            set last_touch_at = t.at, last_touch_type = 'email', last_touch_by = 'import', touch_count = 1,
                next_touch_due = t.at + make_interval(days => c.touch_frequency_days), created_at = t.at
            from touched t
            where c.tenant_id = $1 and c.entity_type = t.entity_type and c.entity_id = t.entity_id
            """, cancellationToken, tenant.Id, contacts.Select(c => c.Id).ToArray(), contacts.Select(c => c.Account.Id).ToArray(),
            contacts.Select(c => c.InitialTouch).ToArray());

        await ExecuteAsync(connection, transaction, """
            insert into public.products (id, tenant_id, sku, name, list_price, unit_cost)
            select p.id, $1, p.sku, p.name, p.price, round(p.price * 0.6, 2)
            from unnest($2::uuid[], $3::text[], $4::text[], $5::numeric[]) p(id, sku, name, price)
            """, cancellationToken, tenant.Id, SimCatalog.Products.Select((_, i) => ProductId(world, tenant, i)).ToArray(),
            SimCatalog.Products.Select(p => p.Sku).ToArray(), SimCatalog.Products.Select(p => p.Name).ToArray(),
            SimCatalog.Products.Select(p => p.ListPrice).ToArray());
        await ExecuteAsync(connection, transaction,
            "insert into public.price_rules (tenant_id, name, tier, discount_pct) values ($1, 'Strategic accounts: 10% off', 'strategic', 10)",
            cancellationToken, tenant.Id);

        // The email channel; the simulator's transport stands in for the relay, so nothing is ever sent anywhere.
        await ExecuteAsync(connection, transaction, """
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', 'smtp.sim.invalid', 587, 'starttls', $2)
            """, cancellationToken, tenant.Id, $"agent@t{tenant.Index + 1}.sim.example");

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
            await ExecuteAsync(connection, transaction, InsightsStore.InsertStrategySql, cancellationToken, tenant.Id, strategy.Key, strategy.Name, template.ToJsonString());
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

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken,
        params object?[] values)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var value in values)
        {
            command.Parameters.Add(new() { Value = value ?? DBNull.Value });
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        return await command.ExecuteScalarAsync(cancellationToken);
    }
}
