namespace Hourglass.Storage;

/// <summary>Quoting for the few identifiers that cannot be bound as parameters (database names in DDL).</summary>
internal static class SqlIdentifier
{
    /// <summary>Double-quotes an identifier, doubling embedded quotes (PostgreSQL docs, 4.1.1).</summary>
    public static string Quote(string identifier)
    {
        ArgumentException.ThrowIfNullOrEmpty(identifier);
        if (identifier.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("an identifier cannot contain a NUL character", nameof(identifier));
        }

        return "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }
}
