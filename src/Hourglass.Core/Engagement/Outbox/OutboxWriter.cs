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
        return await EngagementStore.EnqueueMessageAsync(connection, transaction, message, cancellationToken);
    }
}
