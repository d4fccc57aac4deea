using Hourglass.Engagement.Outbox;
using Hourglass.Storage;
using Npgsql;

namespace Hourglass.IntegrationTests.Infrastructure;

/// <summary>Small helpers over a test database: tenants, members, running SQL as a role, the clock.</summary>
public sealed class TestDb(NpgsqlDataSource dataSource)
{
    public NpgsqlDataSource DataSource { get; } = dataSource;

    public async Task<Guid> CreateTenantAsync(string? name = null, string settingsJson = "{}")
    {
        return (Guid)(await ScalarAsync(
            "insert into public.tenants (name, settings) values ($1, $2::jsonb) returning id",
            name ?? $"tenant-{Guid.NewGuid():N}", settingsJson))!;
    }

    public async Task<Guid> AddMemberAsync(Guid tenantId, Guid? userId = null, string role = "member")
    {
        var user = userId ?? Guid.NewGuid();
        await ExecuteAsync("insert into public.tenant_members (tenant_id, user_id, role) values ($1, $2, $3)", tenantId, user, role);
        return user;
    }

    /// <summary>
    /// An email channel for the tenant (an SMTP relay on loopback nothing listens on unless a test starts one) and a success
    /// strategy <c>email</c> that touches contacts by email: what a cycle needs to choose a message rather than a card.
    /// </summary>
    public async Task EnableContactEmailAsync(Guid tenantId)
    {
        await ExecuteAsync("""
            insert into public.message_channels (tenant_id, channel, smtp_host, smtp_port, smtp_security, smtp_from)
            values ($1, 'email', '127.0.0.1', 2525, 'none', 'agent@vendor.example')
            """, tenantId);
        await ExecuteAsync("""
            insert into public.success_strategies (tenant_id, strategy_key, name, applies_to, action_template)
            values ($1, 'email', 'Email', '{"entity_type": "contact"}', '{"kind": "send_message", "channel": "email", "subject": "Hi", "body": "Hello {name}"}')
            """, tenantId);
    }

    public async Task<Guid> CreateAccountAsync(Guid tenantId, string name = "Acme")
    {
        return (Guid)(await ScalarAsync("insert into public.accounts (tenant_id, name) values ($1, $2) returning id", tenantId, name))!;
    }

    public async Task<Guid> CreateContactAsync(Guid tenantId, Guid? accountId = null, string name = "Pat Doe")
    {
        return (Guid)(await ScalarAsync(
            "insert into public.contacts (tenant_id, account_id, name) values ($1, $2, $3) returning id",
            tenantId, (object?)accountId ?? DBNull.Value, name))!;
    }

    /// <summary>
    /// Queues <paramref name="message"/> in the outbox in a transaction of its own, as the product's writer does: its id,
    /// or null when the tenant already has a message under its key.
    /// </summary>
    internal async Task<Guid?> EnqueueMessageAsync(NewMessage message)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var id = await OutboxWriter.EnqueueAsync(connection, transaction, message, default);
        await transaction.CommitAsync();
        return id;
    }

    /// <summary>Sets the database clock (hourglass.now()) to a fixed instant.</summary>
    public Task FreezeTimeAsync(DateTimeOffset at) => ExecuteAsync("select hourglass.freeze_time($1)", at);

    public async Task<object?> ScalarAsync(string sql, params object?[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        Bind(command, parameters);
        var value = await command.ExecuteScalarAsync();
        return value is DBNull ? null : value;
    }

    public async Task<int> ExecuteAsync(string sql, params object?[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        Bind(command, parameters);
        return await command.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Runs <paramref name="sql"/> in a transaction of its own under the product's setting for derived columns
    /// (<see cref="DerivedColumns.ProductWriteSetting"/>): a fixture that puts clocks, queue entries or counters into a
    /// state the product itself reaches only over days. Written directly, those columns are refused (docs/schema.md).
    /// </summary>
    public async Task<int> ExecuteAsProductAsync(string sql, params object?[] parameters)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await ExecuteAsync(connection, transaction, DerivedColumns.AllowProductWriteSql);
        var rows = await ExecuteAsync(connection, transaction, sql, parameters);
        await transaction.CommitAsync();
        return rows;
    }

    /// <summary>Runs <paramref name="work"/> in a transaction as an authenticated user, as the API would; rolled back unless committed.</summary>
    public async Task<T> AsUserAsync<T>(Guid userId, Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work, bool commit = true)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await DbSession.BeginAsUserAsync(connection, userId);
        var result = await work(connection, transaction);
        if (commit)
        {
            await transaction.CommitAsync();
        }

        return result;
    }

    public async Task<T> AsRoleAsync<T>(string role, Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = role switch
        {
            "anon" => await DbSession.BeginAsAnonAsync(connection),
            "service_role" => await DbSession.BeginAsServiceRoleAsync(connection),
            _ => throw new ArgumentOutOfRangeException(nameof(role), role, "anon or service_role"),
        };
        var result = await work(connection, transaction);
        await transaction.CommitAsync();
        return result;
    }

    public static async Task<object?> ScalarAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, params object?[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        Bind(command, parameters);
        var value = await command.ExecuteScalarAsync();
        return value is DBNull ? null : value;
    }

    public static async Task<int> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, params object?[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        Bind(command, parameters);
        return await command.ExecuteNonQueryAsync();
    }

    private static void Bind(NpgsqlCommand command, object?[] parameters)
    {
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter ?? DBNull.Value });
        }
    }
}
