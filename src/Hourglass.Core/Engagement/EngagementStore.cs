using Npgsql;

namespace Hourglass.Engagement;

/// <summary>
/// The only code that names the engagement tables in SQL: clocks and frequency rules, <c>cards</c>, message
/// channels, the outbox and its attempts, and <c>monitoring_engagement_compliance</c>
/// (docs/development.md, "Where SQL goes").
/// </summary>
internal static class EngagementStore
{
}
