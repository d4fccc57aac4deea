using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// One row of a table, found again by its key: <c>id</c>, or the composite primary key of
/// <c>tenant_members</c> (tenant_id, user_id), <c>tenant_roles</c> (tenant_id, role) and <c>agent_tenant_locks</c> (tenant_id, lock_type).
/// <see cref="KeyPredicate"/> binds <see cref="KeyValues"/> as $1, $2, …
/// </summary>
internal sealed record SampleRow(string Table, Guid TenantId, string KeyPredicate, object[] KeyValues)
{
    /// <summary>The row's <c>id</c>; only for tables keyed by one.</summary>
    public Guid Id => KeyPredicate == "id = $1" ? (Guid)KeyValues[0] : throw new InvalidOperationException($"{Table} has no id column");

    public string QualifiedTable => Qualified(Table);

    /// <summary>The column that says whose row it is: <c>id</c> for tenants, <c>tenant_id</c> everywhere else.</summary>
    public static string TenantColumn(string table) => table == "tenants" ? "id" : "tenant_id";

    public static string Qualified(string table) => "public." + SqlIdentifier.Quote(table);

    public static SampleRow ById(string table, Guid tenantId, Guid id) => new(table, tenantId, "id = $1", [id]);

    /// <summary>The parameters of <see cref="KeyPredicate"/> followed by <paramref name="more"/> ($n+1, …).</summary>
    public object?[] KeyThen(params object?[] more) => [.. KeyValues, .. more];

    /// <summary>Counts this row: 1 when the caller can see it, 0 when not.</summary>
    public string CountSql => $"select count(*) from {QualifiedTable} where {KeyPredicate}";

    /// <summary>A harmless change every table allows (all have created_at), addressed by key only, no tenant filter.</summary>
    public string UpdateSql => $"update {QualifiedTable} set created_at = created_at - interval '1 day' where {KeyPredicate}";

    public string DeleteSql => $"delete from {QualifiedTable} where {KeyPredicate}";

    /// <summary>Moves the row to the tenant bound after the key ($n+1): see <see cref="KeyThen"/>.</summary>
    public string MoveToTenantSql => $"update {QualifiedTable} set {TenantColumn(Table)} = ${KeyValues.Length + 1} where {KeyPredicate}";

    public override string ToString() => $"{Table} ({string.Join(", ", KeyValues)})";
}

/// <summary>An INSERT of one valid row whose parents already exist, not yet run: it can be attempted as any role.</summary>
internal sealed record SampleInsert(SampleRow Row, string Sql, object?[] Parameters);

/// <summary>
/// Valid rows of every table in <see cref="SchemaContract.AllTables"/> for a given tenant. Parents are created, as
/// the superuser, in the same tenant (the composite foreign keys (tenant_id, x_id) → parent (tenant_id, id)
/// demand it), and every unique key is fresh, so the INSERT itself can only fail for reasons of privilege or
/// row-level security.
/// </summary>
internal sealed class SampleRowFactory(NpgsqlDataSource superuser)
{
    // agent_hourly_reflections is unique per (tenant, hour): every row gets an hour of its own.
    private static int s_hours;
    private static int s_policyVersions;
    private static readonly DateTimeOffset s_firstHour = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public const string LockHolder = "sample-holder";

    /// <summary>Creates the parents of a new <paramref name="table"/> row in <paramref name="tenantId"/> and returns the row's INSERT.</summary>
    /// <remarks>A <c>tenants</c> row "for" a tenant is a new tenant nobody belongs to: the table has no tenant_id.</remarks>
    public async Task<SampleInsert> PrepareAsync(string table, Guid tenantId)
    {
        var id = Guid.NewGuid();
        switch (table)
        {
            case "tenants":
                return new(SampleRow.ById(table, id, id), "insert into public.tenants (id, name) values ($1, $2)", [id, $"probe-{id:N}"]);
            case "tenant_members":
                var user = Guid.NewGuid();
                return new(new SampleRow(table, tenantId, "tenant_id = $1 and user_id = $2", [tenantId, user]),
                    "insert into public.tenant_members (tenant_id, user_id, role) values ($1, $2, 'member')", [tenantId, user]);
            case "tenant_roles":
                var role = $"probe_{id:N}";
                return new(new SampleRow(table, tenantId, "tenant_id = $1 and role = $2", [tenantId, role]),
                    "insert into public.tenant_roles (tenant_id, role, capabilities) values ($1, $2, '{read}')", [tenantId, role]);
            case "agent_tenant_locks":
                var lockType = $"probe-{id:N}";
                return new(new SampleRow(table, tenantId, "tenant_id = $1 and lock_type = $2", [tenantId, lockType]),
                    "insert into public.agent_tenant_locks (tenant_id, lock_type, locked_by, expires_at) values ($1, $2, $3, now() + interval '1 hour')",
                    [tenantId, lockType, LockHolder]);
            case "message_channels":
                // One row per (tenant, channel): like schedules, an upsert stamped with an updated_at of its own.
                var channelStamp = s_firstHour.AddSeconds(Interlocked.Increment(ref s_hours));
                return new(new SampleRow(table, tenantId, "tenant_id = $1 and updated_at = $2", [tenantId, channelStamp]),
                    "insert into public.message_channels (tenant_id, channel, webhook_url, secret_ref, updated_at) " +
                    "values ($1, 'webhook', 'https://hooks.example.com/hourglass', 'HOURGLASS_SAMPLE_SECRET', $2) " +
                    "on conflict (tenant_id, channel) do update set updated_at = excluded.updated_at", [tenantId, channelStamp]);
            case "insight_detector_state":
                var detector = $"probe_{id:N}";
                return new(new SampleRow(table, tenantId, "tenant_id = $1 and detector = $2", [tenantId, detector]),
                    "insert into public.insight_detector_state (tenant_id, detector, watermark_seq) values ($1, $2, 0)", [tenantId, detector]);
            case "agent_tenant_schedules":
                // Every tenant has its schedule from creation, so the sample "insert" is an upsert that stamps the
                // row with an updated_at of its own: the sample row is the tenant's schedule carrying that stamp.
                var stamp = s_firstHour.AddSeconds(Interlocked.Increment(ref s_hours));
                return new(new SampleRow(table, tenantId, "tenant_id = $1 and updated_at = $2", [tenantId, stamp]),
                    "insert into public.agent_tenant_schedules (tenant_id, next_due_at, updated_at) values ($1, now() + interval '1 hour', $2) " +
                    "on conflict (tenant_id) do update set updated_at = excluded.updated_at", [tenantId, stamp]);
        }

        var row = SampleRow.ById(table, tenantId, id);
        return table switch
        {
            "accounts" => new(row, "insert into public.accounts (id, tenant_id, name) values ($1, $2, 'Sample account')", [id, tenantId]),
            "contacts" => new(row, "insert into public.contacts (id, tenant_id, account_id, name) values ($1, $2, $3, 'Sample contact')",
                [id, tenantId, await InsertAsync("accounts", tenantId)]),
            "products" => new(row, "insert into public.products (id, tenant_id, sku, name, list_price) values ($1, $2, $3, 'Sample product', 10)",
                [id, tenantId, $"SKU-{id:N}"]),
            // A draft: a placed order queues itself (a trigger), and the sample queue entry is a row of its own.
            "orders" => new(row, "insert into public.orders (id, tenant_id, account_id, contact_id, status) values ($1, $2, $3, $4, 'draft')",
                [id, tenantId, await InsertAsync("accounts", tenantId), await InsertAsync("contacts", tenantId)]),
            "order_lines" => new(row,
                "insert into public.order_lines (id, tenant_id, order_id, product_id, quantity, unit_price) values ($1, $2, $3, $4, 1, 10)",
                [id, tenantId, await InsertAsync("orders", tenantId), await InsertAsync("products", tenantId)]),
            "cards" => new(row, "insert into public.cards (id, tenant_id, kind, title, run_id) values ($1, $2, 'notice', 'Sample card', $3)",
                [id, tenantId, await InsertAsync("agent_autonomous_runs", tenantId)]),
            "agent_autonomous_runs" => new(row, "insert into public.agent_autonomous_runs (id, tenant_id, trigger) values ($1, $2, 'manual')", [id, tenantId]),
            // Contacts and accounts get their clocks by trigger; a sample clock is one for an entity of an outside
            // system (no row of ours), so it is new whatever exists.
            "engagement_clocks" => new(row,
                "insert into public.engagement_clocks (id, tenant_id, entity_type, entity_id, next_touch_due, last_card_id) " +
                "values ($1, $2, 'contact', $3, now() + interval '21 days', $4)",
                [id, tenantId, Guid.NewGuid(), await InsertAsync("cards", tenantId)]),
            "agent_policy_violations" => new(row,
                "insert into public.agent_policy_violations (id, tenant_id, run_id, policy_key, action_type, decision) " +
                "values ($1, $2, $3, 'sample_policy', 'send_email', 'deny')",
                [id, tenantId, await InsertAsync("agent_autonomous_runs", tenantId)]),
            "order_processing_queue" => new(row, "insert into public.order_processing_queue (id, tenant_id, order_id) values ($1, $2, $3)",
                [id, tenantId, await InsertAsync("orders", tenantId)]),
            "order_processing_exceptions" => await PrepareExceptionAsync(row),
            "warehouse_events" => new(row,
                "insert into public.warehouse_events (id, tenant_id, event_type, idempotency_key) values ($1, $2, 'sample.event', $3)",
                [id, tenantId, $"probe-{id:N}"]),
            "client_patterns" => new(row,
                "insert into public.client_patterns (id, tenant_id, entity_type, entity_id, pattern_type, confidence) " +
                "values ($1, $2, 'account', $3, 'order_cadence', 0.5)",
                [id, tenantId, Guid.NewGuid()]),
            "success_strategies" => new(row,
                "insert into public.success_strategies (id, tenant_id, strategy_key, name) values ($1, $2, $3, 'Sample strategy')",
                [id, tenantId, $"probe-{id:N}"]),
            "agent_hourly_reflections" => new(row,
                "insert into public.agent_hourly_reflections (id, tenant_id, run_id, hour_bucket) values ($1, $2, $3, $4)",
                [id, tenantId, await InsertAsync("agent_autonomous_runs", tenantId), s_firstHour.AddHours(Interlocked.Increment(ref s_hours))]),
            "agent_actions" => new(row,
                "insert into public.agent_actions (id, tenant_id, run_id, idempotency_key, hour_bucket, kind, reason, status) " +
                "values ($1, $2, $3, $4, $5, 'sample_action', 'sample', 'succeeded')",
                [id, tenantId, await InsertAsync("agent_autonomous_runs", tenantId), $"probe-{id:N}", s_firstHour]),
            "engagement_frequency_rules" => new(row,
                "insert into public.engagement_frequency_rules (id, tenant_id, dimension, value, touch_frequency_days) values ($1, $2, 'segment', $3, 14)",
                [id, tenantId, $"probe-{id:N}"]),
            "message_outbox" => new(row,
                "insert into public.message_outbox (id, tenant_id, idempotency_key, channel, destination, body) " +
                "values ($1, $2, $3, 'email', 'someone@example.com', 'hello')",
                [id, tenantId, $"probe-{id:N}"]),
            "message_outbox_attempts" => new(row,
                "insert into public.message_outbox_attempts (id, tenant_id, message_id, attempt, outcome) values ($1, $2, $3, 1, 'transient_error')",
                [id, tenantId, await InsertAsync("message_outbox", tenantId)]),
            // Versions are unique per tenant: every sample row gets a version of its own.
            "tenant_policy_documents" => new(row,
                "insert into public.tenant_policy_documents (id, tenant_id, version, document, created_by) " +
                "values ($1, $2, $3, '{\"schema\": \"hourglass.policy/v1\"}', 'probe')",
                [id, tenantId, Interlocked.Increment(ref s_policyVersions)]),
            "price_rules" => new(row,
                "insert into public.price_rules (id, tenant_id, name, product_id, unit_price) values ($1, $2, 'Sample rule', $3, 9.5)",
                [id, tenantId, await InsertAsync("products", tenantId)]),
            "order_requirement_rules" => new(row,
                "insert into public.order_requirement_rules (id, tenant_id, rule_key, description, condition) " +
                "values ($1, $2, $3, 'Ships domestically', '{\"field\": \"ship_to.country\", \"op\": \"eq\", \"value\": \"US\"}')",
                [id, tenantId, $"probe-{id:N}"]),
            "order_processing_fixes" => await PrepareFixAsync(row),
            "strategy_attributions" => new(row,
                "insert into public.strategy_attributions (id, tenant_id, action_id, strategy_key, touched_at, outcome, decided_at) " +
                "values ($1, $2, $3, 'probe', now(), 'success', now())",
                [id, tenantId, Guid.NewGuid()]),
            _ => throw new ArgumentOutOfRangeException(nameof(table), table, "not a table of the schema contract"),
        };
    }

    /// <summary>Inserts, as the superuser, one row of <paramref name="table"/> (and its parents) for <paramref name="tenantId"/>.</summary>
    public async Task<SampleRow> CreateAsync(string table, Guid tenantId)
    {
        var insert = await PrepareAsync(table, tenantId);
        await using var command = superuser.CreateCommand(insert.Sql);
        foreach (var parameter in insert.Parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter ?? DBNull.Value });
        }

        await command.ExecuteNonQueryAsync();
        return insert.Row;
    }

    /// <summary>The row as JSON, read as the superuser; null when it does not exist.</summary>
    public async Task<string?> SnapshotAsync(SampleRow row)
    {
        await using var command = superuser.CreateCommand($"select to_jsonb(t)::text from {row.QualifiedTable} t where {row.KeyPredicate}");
        foreach (var value in row.KeyValues)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return (string?)await command.ExecuteScalarAsync();
    }

    /// <summary>How many rows of <paramref name="table"/> belong to <paramref name="tenantId"/>, or to anyone when null; as the superuser.</summary>
    public async Task<long> CountAsync(string table, Guid? tenantId = null)
    {
        await using var command = superuser.CreateCommand(
            $"select count(*) from {SampleRow.Qualified(table)} where $1::uuid is null or {SampleRow.TenantColumn(table)} = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)tenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid });
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private async Task<Guid> InsertAsync(string table, Guid tenantId) => (await CreateAsync(table, tenantId)).Id;

    private async Task<SampleInsert> PrepareFixAsync(SampleRow row)
    {
        var queue = await CreateAsync("order_processing_queue", row.TenantId);
        await using var command = superuser.CreateCommand("select order_id from public.order_processing_queue where id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = queue.Id });
        var orderId = (Guid)(await command.ExecuteScalarAsync())!;
        return new(row,
            "insert into public.order_processing_fixes (id, tenant_id, queue_id, order_id, attempt, fix_type, before, after) " +
            "values ($1, $2, $3, $4, 1, 'recompute_totals', '{\"total\": 10}', '{\"total\": 12}')",
            [row.Id, row.TenantId, queue.Id, orderId]);
    }

    private async Task<SampleInsert> PrepareExceptionAsync(SampleRow row)
    {
        var queue = await CreateAsync("order_processing_queue", row.TenantId);
        await using var command = superuser.CreateCommand("select order_id from public.order_processing_queue where id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = queue.Id });
        var orderId = (Guid)(await command.ExecuteScalarAsync())!;
        return new(row,
            "insert into public.order_processing_exceptions (id, tenant_id, queue_id, order_id, exception_type) values ($1, $2, $3, $4, 'credit_hold')",
            [row.Id, row.TenantId, queue.Id, orderId]);
    }
}
