using Npgsql;

namespace Hourglass.Engagement.Inbound;

/// <summary>
/// Records a delivery event for a tenant and applies its effect, in one transaction (docs/inbound.md, "What each event
/// does"): matched to the tenant's message, written once to <c>message_delivery_events</c> and the event store, then
/// hard bounce → address suppressed and an owner card; soft bounce → retried, hard after the tenant's limit; complaint or
/// unsubscribe → opted out; reply → a touch at the reply's time (out of office → the next touch waits).
/// </summary>
internal sealed class InboundRecorder(NpgsqlDataSource dataSource, ReplyClassifier? classifier = null)
{
    /// <summary>Records one event; a retry of one already recorded writes nothing and says <c>duplicate</c>.</summary>
    public Task<InboundOutcome> RecordAsync(Guid tenantId, DeliveryEvent delivery, CancellationToken cancellationToken) =>
        throw new NotImplementedException($"the recorder lands with the core of issue 17 ({dataSource.ConnectionString.Length}, {classifier})");
}
