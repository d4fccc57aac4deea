using System.Text.RegularExpressions;
using Npgsql;

namespace Hourglass.Simulation;

/// <summary>
/// The answers a person gets when the card they act on is no longer open (<c>complete_touch_card</c>,
/// <c>decide_approval</c>, <c>dismiss_card</c>: SQLSTATE 55000, "card … is expired, not open"): the simulated people meet
/// them as real ones do, as an answer that is recorded and counted, not as a fault. Nothing else is: any other error of
/// these functions, or of anything else, is a bug and ends the run.
/// </summary>
internal static partial class SimRefusals
{
    /// <summary>
    /// The refusal's reason, the function and the card's status ("decide_approval: expired", "complete_touch_card: done"…), or
    /// null when the error is not such a refusal.
    /// </summary>
    public static string? Reason(PostgresException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (error.SqlState != PostgresErrorCodes.ObjectNotInPrerequisiteState)
        {
            return null;
        }

        var match = NotOpen().Match(error.MessageText);
        return match.Success ? $"{match.Groups["function"].Value}: {match.Groups["status"].Value}" : null;
    }

    [GeneratedRegex(@"^(?<function>complete_touch_card|decide_approval|dismiss_card): card [0-9a-f-]+ is (?<status>[a-z_]+), not open", RegexOptions.CultureInvariant)]
    private static partial Regex NotOpen();
}
