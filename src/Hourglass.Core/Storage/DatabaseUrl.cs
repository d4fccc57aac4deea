using System.Globalization;
using Npgsql;

namespace Hourglass.Storage;

/// <summary>
/// Turns what users paste as a database address into an Npgsql connection string: a URI as Supabase and
/// most hosts print it (<c>postgresql://user:password@host:5432/db?sslmode=require</c>), or an Npgsql
/// keyword string (<c>Host=…;Username=…</c>). Anything else is refused with the reason.
/// </summary>
internal static class DatabaseUrl
{
    private static readonly Dictionary<string, string> s_queryKeywords = new(StringComparer.OrdinalIgnoreCase)
    {
        ["sslmode"] = "SSL Mode",
        ["application_name"] = "Application Name",
        ["connect_timeout"] = "Timeout",
        ["options"] = "Options",
        ["target_session_attrs"] = "Target Session Attributes",
        ["search_path"] = "Search Path",
    };

    public static string ToConnectionString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var trimmed = value.Trim();
        if (trimmed.Length == 0)
        {
            throw new HourglassException("the database address is empty; give a postgresql:// URL or an Npgsql connection string.");
        }

        return trimmed.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
            || trimmed.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase)
            ? FromUri(trimmed)
            : FromKeywords(trimmed);
    }

    /// <summary>The address without its password, for messages.</summary>
    public static string Describe(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return $"{builder.Host}:{builder.Port}/{builder.Database}";
    }

    private static string FromKeywords(string value)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(value);
        }
        catch (ArgumentException ex)
        {
            throw new HourglassException($"invalid database connection string: {ex.Message} (expected a postgresql:// URL or 'Host=…;Username=…;Password=…;Database=…')", ex);
        }
        catch (FormatException ex)
        {
            throw new HourglassException($"invalid database connection string: {ex.Message}", ex);
        }

        if (string.IsNullOrEmpty(builder.Host))
        {
            throw new HourglassException("invalid database connection string: no Host given (expected a postgresql:// URL or 'Host=…;Username=…;Password=…;Database=…')");
        }

        return builder.ConnectionString;
    }

    private static string FromUri(string value)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new HourglassException("invalid database URL: expected postgresql://user:password@host:port/database");
        }

        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host.Trim('[', ']'),
            Port = uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')) is { Length: > 0 } database ? database : "postgres",
        };

        if (uri.UserInfo.Length > 0)
        {
            var separator = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            builder.Username = Uri.UnescapeDataString(separator < 0 ? uri.UserInfo : uri.UserInfo[..separator]);
            if (separator >= 0)
            {
                builder.Password = Uri.UnescapeDataString(uri.UserInfo[(separator + 1)..]);
            }
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString(equals < 0 ? pair : pair[..equals]);
            var raw = equals < 0 ? "" : Uri.UnescapeDataString(pair[(equals + 1)..]);
            if (!s_queryKeywords.TryGetValue(key, out var keyword))
            {
                throw new HourglassException(
                    $"invalid database URL: unsupported parameter '{key}' (supported: {string.Join(", ", s_queryKeywords.Keys)})");
            }

            try
            {
                builder[keyword] = keyword == "SSL Mode" ? ToSslMode(raw) : raw;
            }
            catch (ArgumentException ex)
            {
                throw new HourglassException($"invalid database URL: bad value '{raw}' for {key}: {ex.Message}", ex);
            }
        }

        return builder.ConnectionString;
    }

    // libpq spells modes in lower case with hyphens (verify-full); Npgsql's enum is VerifyFull.
    private static string ToSslMode(string value) =>
        string.Concat(value.Split('-').Select(part => part.Length == 0 ? part : char.ToUpper(part[0], CultureInfo.InvariantCulture) + part[1..]));
}
