using Hourglass.Cycles;
using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Engagement.Outbox;

/// <summary>
/// Enqueues messages in the caller's transaction, so a message exists if and only if the work that decided
/// to send it committed. The idempotency key is unique per tenant: enqueueing the same key again does nothing.
/// </summary>
internal static class OutboxWriter
{
    /// <summary>Validates and inserts <paramref name="message"/>; returns its id, or null when the key was already enqueued.</summary>
    /// <exception cref="InvalidMessageException">A field is unusable; nothing was written.</exception>
    public static async Task<Guid?> EnqueueAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, NewMessage message,
        CancellationToken cancellationToken)
    {
        message.Validate();
        await using var command = new NpgsqlCommand("""
            insert into public.message_outbox (tenant_id, idempotency_key, channel, destination, subject, body, payload, run_id,
              max_attempts, next_attempt_at, created_at, updated_at)
            values ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, 8), hourglass.now(), hourglass.now(), hourglass.now())
            on conflict (tenant_id, idempotency_key) do nothing
            returning id
            """, connection, transaction);
        command.Parameters.Add(new() { Value = message.TenantId });
        command.Parameters.Add(new() { Value = message.IdempotencyKey });
        command.Parameters.Add(new() { Value = message.Channel });
        command.Parameters.Add(new() { Value = message.Destination.Trim() });
        command.Parameters.Add(new() { Value = (object?)message.Subject ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = message.Body });
        command.Parameters.Add(JsonbParameter.From(message.Payload ?? []));
        command.Parameters.Add(new() { Value = (object?)message.RunId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new() { Value = (object?)message.MaxAttempts ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        return await command.ExecuteScalarAsync(cancellationToken) as Guid?;
    }
}
