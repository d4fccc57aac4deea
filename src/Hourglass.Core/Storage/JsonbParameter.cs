using System.Text.Json.Nodes;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Storage;

/// <summary>A JSON value as a <c>jsonb</c> parameter (SQL null for a null node).</summary>
internal static class JsonbParameter
{
    public static NpgsqlParameter From(JsonNode? node) =>
        new() { Value = node is null ? DBNull.Value : node.ToJsonString(), NpgsqlDbType = NpgsqlDbType.Jsonb };
}
