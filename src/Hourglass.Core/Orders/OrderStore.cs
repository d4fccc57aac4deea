using Npgsql;

namespace Hourglass.Orders;

/// <summary>
/// The only code that names the order tables in SQL: <c>orders</c>, <c>order_lines</c>, the processing queue, its
/// exceptions and fixes, requirement and price rules, <c>products</c> and <c>monitoring_order_throughput</c>
/// (docs/development.md, "Where SQL goes").
/// </summary>
internal static class OrderStore
{
}
