using Npgsql;

namespace Hourglass.Tenancy;

/// <summary>
/// The only code that names the tenancy tables in SQL: <c>tenants</c>, <c>tenant_members</c>, <c>tenant_roles</c>,
/// <c>accounts</c>, <c>contacts</c>, <c>hourglass.function_capabilities</c> and <c>hourglass.timezones</c>
/// (docs/development.md, "Where SQL goes").
/// </summary>
internal static class TenancyStore
{
}
