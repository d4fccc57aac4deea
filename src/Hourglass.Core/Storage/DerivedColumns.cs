namespace Hourglass.Storage;

/// <summary>
/// Columns the product derives (a clock's due date and compliance, the order processor's verdicts, strategy counters,
/// detector findings, an hour's roll-up of its runs) are written only by the product's own functions; a direct write
/// is honoured where it has a meaning (a clock's frequency becomes its override) and otherwise refused, naming the
/// column and what to do instead (docs/schema.md, "Derived columns").
/// </summary>
internal static class DerivedColumns
{
    /// <summary>
    /// SQLSTATE of a refused direct write: PostgreSQL's own <c>generated_always</c> (428C9), the code it gives for a
    /// write to a generated column, which is what a derived column is.
    /// </summary>
    public const string RefusedSqlState = "428C9";

    /// <summary>
    /// The transaction-local setting under which the product's functions write derived columns (each sets it for its
    /// own duration only: a function's SET clause). A repair or a test fixture may set it, deliberately, for one transaction.
    /// </summary>
    public const string ProductWriteSetting = "hourglass.derived_write";

    /// <summary>Sets <see cref="ProductWriteSetting"/> for the rest of the current transaction (and only it).</summary>
    public const string AllowProductWriteSql = "select pg_catalog.set_config('hourglass.derived_write', 'on', true)";
}
